//! The server's data directory and the secret key kept in it.
//!
//! The directory holds the SQLite database, the key file and (with the local engine driver) the
//! instances' directories. It is created 0700 (its owner only); an existing one that others
//! may enter is restricted at start. The key file, `secret.key`, is created 0600 on first start
//! with 32 random bytes; sign-in codes are stored as HMAC-SHA-256 under it, so a copy of the
//! database alone does not reveal a pending code. `DBTREE_SECRET_KEY` replaces the file (and
//! must be the same on every replica sharing one database).

use std::fs::{self, DirBuilder, OpenOptions, Permissions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use dbtree_core::auth::CodeKey;
use dbtree_core::boundary::Entropy;

/// The key file's name inside the data directory.
pub const KEY_FILE: &str = "secret.key";

/// A data-directory step that failed; the message names the path.
#[derive(Debug, thiserror::Error)]
#[error("{action} {}: {source}", path.display())]
pub struct DataDirError {
    action: &'static str,
    path: PathBuf,
    #[source]
    source: io::Error,
}

fn failed(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> DataDirError {
    let path = path.to_path_buf();
    move |source| DataDirError {
        action,
        path,
        source,
    }
}

/// Creates the data directory (and missing parents) with mode 0700, or restricts an existing
/// one that others may list or write to 0700. This is the one place the server creates it.
///
/// Traversal alone (`o+x`) is left as it is: running as root, the local engine driver grants it
/// so that each instance's own account can reach its directory, without listing anything; the
/// database and key files are 0600 either way.
///
/// # Errors
/// [`DataDirError`] if it cannot be created or restricted.
pub fn prepare(dir: &Path) -> Result<(), DataDirError> {
    create(dir)?;
    restrict(dir, 0o700, 0o001)
}

/// Creates a directory the server keeps files in (and missing parents) with mode 0700; an
/// existing directory is left as it is (it may be shared, like the parent of a SQLite file
/// configured outside the data directory).
///
/// # Errors
/// [`DataDirError`] if it cannot be created.
pub fn create(dir: &Path) -> Result<(), DataDirError> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(failed("cannot create", dir))
}

/// Sets `path` to `mode` if group or others have any permission beyond `tolerated`.
fn restrict(path: &Path, mode: u32, tolerated: u32) -> Result<(), DataDirError> {
    let current = fs::metadata(path)
        .map_err(failed("cannot inspect", path))?
        .permissions()
        .mode();
    if current & 0o077 & !tolerated != 0 {
        fs::set_permissions(path, Permissions::from_mode(mode))
            .map_err(failed("cannot restrict", path))?;
        tracing::warn!(
            path = %path.display(),
            was = format!("{:o}", current & 0o777),
            now = format!("{mode:o}"),
            "restricted permissions others had"
        );
    }
    Ok(())
}

/// The key sign-in codes are stored under: `configured` (from `DBTREE_SECRET_KEY`) if given,
/// else the key file in `dir`, created 0600 with a new random key on first start.
///
/// # Errors
/// [`DataDirError`] if the key file cannot be read, written or holds no valid key, or the
/// random source fails.
pub fn code_key(
    dir: &Path,
    configured: Option<CodeKey>,
    entropy: &dyn Entropy,
) -> Result<CodeKey, DataDirError> {
    if let Some(key) = configured {
        tracing::info!("sign-in codes: keyed by DBTREE_SECRET_KEY");
        return Ok(key);
    }
    let path = dir.join(KEY_FILE);
    let created = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path);
    match created {
        Ok(mut file) => {
            let mut bytes = [0u8; 32];
            entropy
                .fill(&mut bytes)
                .map_err(|e| failed("cannot draw a key for", &path)(io::Error::other(e)))?;
            let key = CodeKey::from_bytes(bytes);
            writeln!(file, "{}", key.expose())
                .and_then(|()| file.sync_all())
                .map_err(failed("cannot write", &path))?;
            tracing::info!(path = %path.display(), "sign-in codes: created a new secret key");
            Ok(key)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            restrict(&path, 0o600, 0)?;
            let mut text = String::new();
            fs::File::open(&path)
                .and_then(|mut f| f.read_to_string(&mut text))
                .map_err(failed("cannot read", &path))?;
            let key = CodeKey::parse(&text).map_err(|e| {
                failed("no valid key in", &path)(io::Error::new(io::ErrorKind::InvalidData, e))
            })?;
            tracing::info!(path = %path.display(), "sign-in codes: keyed by the key file");
            Ok(key)
        }
        Err(e) => Err(failed("cannot create", &path)(e)),
    }
}

#[cfg(test)]
mod tests {
    use dbtree_adapters::system::OsEntropy;

    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn the_directory_is_created_and_kept_owner_only() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b/data");
        prepare(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        fs::set_permissions(&dir, Permissions::from_mode(0o755)).unwrap();
        prepare(&dir).unwrap();
        assert_eq!(
            mode(&dir),
            0o700,
            "an existing open directory is restricted"
        );
    }

    #[test]
    fn the_key_file_is_created_once_0600_and_read_back() {
        let tmp = tempfile::tempdir().unwrap();
        let first = code_key(tmp.path(), None, &OsEntropy).unwrap();
        let path = tmp.path().join(KEY_FILE);
        assert_eq!(mode(&path), 0o600);
        assert_ne!(first, CodeKey::default());
        let again = code_key(tmp.path(), None, &OsEntropy).unwrap();
        assert_eq!(first, again, "the same key across restarts");
        fs::set_permissions(&path, Permissions::from_mode(0o644)).unwrap();
        code_key(tmp.path(), None, &OsEntropy).unwrap();
        assert_eq!(
            mode(&path),
            0o600,
            "a key file others could read is restricted"
        );
    }

    #[test]
    fn a_configured_key_wins_and_a_damaged_file_is_named() {
        let tmp = tempfile::tempdir().unwrap();
        let configured = CodeKey::from_bytes([9; 32]);
        let key = code_key(tmp.path(), Some(configured.clone()), &OsEntropy).unwrap();
        assert_eq!(key, configured);
        assert!(
            !tmp.path().join(KEY_FILE).exists(),
            "no file when configured"
        );
        fs::write(tmp.path().join(KEY_FILE), "not a key").unwrap();
        let err = code_key(tmp.path(), None, &OsEntropy).unwrap_err();
        assert!(err.to_string().contains(KEY_FILE), "{err}");
    }
}
