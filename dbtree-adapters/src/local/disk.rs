//! State on disk: an instance's directory, its record (never the password), and its pid and log
//! files.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use dbtree_core::ids::InstanceId;
use dbtree_core::instance::{Engine, NodePort, Password, Resources, RunState};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use super::account::RunAs;

/// Which server program runs an instance.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Backend {
    /// The engine's own server (`postgres`, `redis-server`, `mongod`).
    #[default]
    Native,
    /// FerretDB over SQLite, for MongoDB when `mongod` is not installed.
    Ferretdb,
}

/// What `instance.json` holds: enough to run the instance again, and no secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct InstanceRecord {
    pub(crate) engine: Engine,
    pub(crate) node_port: NodePort,
    pub(crate) resources: Resources,
    /// The run state dbtree wants (a restarted driver starts `Running` instances again).
    pub(crate) run_state: RunState,
    /// The server program.
    #[serde(default)]
    pub(crate) backend: Backend,
    /// What that program is, for people ("MongoDB-compatible: FerretDB 1.24.2").
    #[serde(default)]
    pub(crate) server: String,
}

/// Log files are cut back when an engine starts and they have grown past this.
const LOG_LIMIT: u64 = 1 << 20;

/// The files of one instance. `data_dir/instances/<id>/` belongs to the driver and holds the
/// record, the pid and the log (so the engine's user can neither forge a pid the driver would
/// signal nor redirect a file the driver writes); its `engine/` directory belongs to the
/// run-as user and holds the engine's data and sockets.
#[derive(Clone, Debug)]
pub(crate) struct Layout {
    pub(crate) dir: PathBuf,
}

impl Layout {
    pub(crate) fn new(dir: PathBuf) -> Layout {
        Layout { dir }
    }

    /// A file of the driver's, in the instance directory.
    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The engine's own directory (data and sockets), private to the run-as user.
    pub(crate) fn engine_dir(&self) -> PathBuf {
        self.dir.join("engine")
    }

    /// A file or directory in the engine's directory.
    pub(crate) fn engine_path(&self, name: &str) -> PathBuf {
        self.engine_dir().join(name)
    }

    /// Creates the instance directory (the driver's, traversable by the engine's user) and the
    /// engine's directory (private to the run-as user).
    pub(crate) fn create(&self, run_as: &RunAs) -> std::io::Result<()> {
        std::fs::DirBuilder::new().mode(0o711).create(&self.dir)?;
        std::fs::set_permissions(&self.dir, std::fs::Permissions::from_mode(0o711))?;
        create_private_dir(&self.engine_dir(), run_as)
    }

    fn admin_password_path(&self) -> PathBuf {
        self.path("admin.pw")
    }

    /// Keeps the instance's administrator password: the driver's alone (mode 0600, owned by
    /// the driver, never readable by the engine's account).
    pub(crate) fn write_admin_password(&self, password: &Password) -> std::io::Result<()> {
        write_private(
            &self.admin_password_path(),
            password.expose().as_bytes(),
            None,
        )
    }

    /// The instance's administrator password.
    pub(crate) fn read_admin_password(&self) -> std::io::Result<Password> {
        let text = std::fs::read_to_string(self.admin_password_path())?;
        Ok(Password::from_secret(SecretString::from(
            text.trim().to_owned(),
        )))
    }

    fn record_path(&self) -> PathBuf {
        self.path("instance.json")
    }

    fn pid_path(&self) -> PathBuf {
        self.path("engine.pid")
    }

    fn log_path(&self) -> PathBuf {
        self.path("engine.log")
    }

    /// The record, `None` if the directory holds none (never provisioned to the end).
    pub(crate) fn read_record(&self) -> std::io::Result<Option<InstanceRecord>> {
        match std::fs::read(self.record_path()) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Replaces the record atomically.
    pub(crate) fn write_record(&self, record: &InstanceRecord) -> std::io::Result<()> {
        let json = serde_json::to_vec_pretty(record).map_err(std::io::Error::other)?;
        write_private(&self.record_path(), &json, None)
    }

    /// The pid the driver recorded when it last started the engine.
    pub(crate) fn read_pid(&self) -> Option<i32> {
        std::fs::read_to_string(self.pid_path())
            .ok()?
            .trim()
            .parse()
            .ok()
            .filter(|pid| *pid > 0)
    }

    pub(crate) fn write_pid(&self, pid: u32) -> std::io::Result<()> {
        write_private(&self.pid_path(), format!("{pid}\n").as_bytes(), None)
    }

    pub(crate) fn remove_pid(&self) {
        let _ = std::fs::remove_file(self.pid_path());
    }

    /// The engine's log, opened for appending (cut back first if it has grown too large). The
    /// file is the driver's; the engine writes to the descriptor it inherits.
    pub(crate) fn open_log(&self) -> std::io::Result<File> {
        let path = self.log_path();
        let too_big = std::fs::metadata(&path).is_ok_and(|m| m.len() > LOG_LIMIT);
        OpenOptions::new()
            .create(true)
            .append(!too_big)
            .write(true)
            .truncate(too_big)
            .mode(0o600)
            .open(&path)
    }

    /// The last non-empty line of the engine's log, shortened; a line that mentions a password
    /// is withheld.
    pub(crate) fn last_log_line(&self) -> Option<String> {
        let mut file = File::open(self.log_path()).ok()?;
        let len = file.metadata().ok()?.len();
        file.seek(SeekFrom::Start(len.saturating_sub(4096))).ok()?;
        let mut tail = Vec::new();
        file.read_to_end(&mut tail).ok()?;
        let text = String::from_utf8_lossy(&tail);
        let line = text.lines().rev().map(str::trim).find(|l| !l.is_empty())?;
        let lower = line.to_ascii_lowercase();
        if lower.contains("pass") {
            return Some("(a log line mentioning a password, withheld)".to_owned());
        }
        Some(line.chars().take(300).collect())
    }
}

/// Creates `path` (and nothing above it) as a directory only `run_as` may enter. An existing
/// directory is left as it is; an existing non-directory (a symbolic link) is refused.
pub(crate) fn create_private_dir(path: &Path, run_as: &RunAs) -> std::io::Result<()> {
    match std::fs::DirBuilder::new().mode(0o700).create(path) {
        Ok(()) => run_as.own(path),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            if std::fs::symlink_metadata(path)?.is_dir() {
                Ok(())
            } else {
                Err(std::io::Error::other(format!(
                    "{} is not a directory",
                    path.display()
                )))
            }
        }
        Err(e) => Err(e),
    }
}

/// Writes a file of mode 0600, owned by `owner` (the driver if `None`), atomically: a reader
/// sees the old contents or the new, and nobody else can read them on the way.
pub(crate) fn write_private(
    path: &Path,
    contents: &[u8],
    owner: Option<&RunAs>,
) -> std::io::Result<()> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| std::io::Error::other("not a file path"))?;
    let temp = path.with_file_name(format!(".{name}.tmp"));
    let _ = std::fs::remove_file(&temp);
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)?;
        file.write_all(contents)?;
        file.sync_all()?;
        if let Some(owner) = owner {
            owner.own_file(&file)?;
        }
        std::fs::rename(&temp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

/// Removes an instance directory and everything in it; a missing directory is fine.
pub(crate) async fn remove_dir(dir: PathBuf) -> std::io::Result<()> {
    tokio::task::spawn_blocking(move || match std::fs::remove_dir_all(&dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => other,
    })
    .await
    .map_err(std::io::Error::other)?
}

/// The instance directories under `instances_dir` (every directory named after an instance id).
pub(crate) fn scan(instances_dir: &Path) -> std::io::Result<Vec<(InstanceId, Layout)>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(instances_dir)? {
        let entry = entry?;
        if !entry.file_type()?.is_dir() {
            continue;
        }
        let Some(id) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<InstanceId>().ok())
        else {
            continue;
        };
        found.push((id, Layout::new(entry.path())));
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use dbtree_core::instance::MilliCpu;

    use super::*;

    #[test]
    fn records_round_trip_and_hold_no_secret() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path().to_path_buf());
        assert_eq!(layout.read_record().unwrap(), None);
        let record = InstanceRecord {
            engine: Engine::Redis,
            node_port: NodePort(30001),
            resources: Resources {
                cpu: MilliCpu(250),
                memory_mib: 256,
                disk_gib: 1,
            },
            run_state: RunState::Running,
            backend: Backend::Native,
            server: "Redis 7.0.15".to_owned(),
        };
        layout.write_record(&record).unwrap();
        assert_eq!(layout.read_record().unwrap(), Some(record));
        let text = std::fs::read_to_string(dir.path().join("instance.json")).unwrap();
        assert!(text.contains("\"nodePort\": 30001"), "{text}");
        assert!(!text.to_ascii_lowercase().contains("pass"));
    }

    #[test]
    fn log_lines_mentioning_passwords_are_withheld() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path().to_path_buf());
        std::fs::write(
            dir.path().join("engine.log"),
            "first\nbad requirepass x\n\n",
        )
        .unwrap();
        assert_eq!(
            layout.last_log_line().unwrap(),
            "(a log line mentioning a password, withheld)"
        );
        std::fs::write(dir.path().join("engine.log"), "a\nFATAL: could not bind\n").unwrap();
        assert_eq!(layout.last_log_line().unwrap(), "FATAL: could not bind");
    }
}
