//! The host: where engine binaries are (and which server each is), how instances get their
//! accounts, and who may reach the data directory.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use dbtree_core::boundary::ClusterError;
use dbtree_core::ids::InstanceId;

use super::account::Accounts;
use super::disk::Layout;

mod ferretdb;

/// An io error as a cluster error naming what was done to which path.
pub(crate) fn io_error(doing: &str, path: &Path, e: &std::io::Error) -> ClusterError {
    ClusterError::transient(format!("{doing} {}: {e}", path.display()))
}

/// One engine server program found on this machine.
#[derive(Clone, Debug)]
pub(crate) struct Program {
    pub(crate) path: PathBuf,
    /// What it is, for people: "Redis 7.0.15", "MongoDB-compatible: FerretDB 1.24.2".
    pub(crate) server: String,
}

/// The engine binaries found on this machine.
#[derive(Clone, Debug, Default)]
pub(crate) struct Binaries {
    pub(crate) redis_server: Option<Program>,
    /// `postgres`, with `initdb` from the same directory (the same version).
    pub(crate) postgres: Option<(PathBuf, Program)>,
    pub(crate) mongod: Option<Program>,
    pub(crate) ferretdb: Option<Program>,
    /// Why the FerretDB found (none usable) cannot serve, if one was found.
    pub(crate) ferretdb_refused: Option<String>,
}

impl Binaries {
    /// Looks on `PATH`; for PostgreSQL also in `/usr/lib/postgresql/*/bin` (highest version
    /// first); for FerretDB the given path, then `PATH`, then the cache `.ci/ferretdb` builds
    /// (`~/.cache/dbtree/ferretdb-<version>/bin`, highest version first): the first of those
    /// built by `.ci/ferretdb` (see [`ferretdb`]).
    pub(crate) fn discover(ferretdb: Option<&Path>) -> Binaries {
        let path: Vec<PathBuf> = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).collect())
            .unwrap_or_default();
        let pg_dirs =
            path.iter()
                .cloned()
                .chain(versioned_dirs(Path::new("/usr/lib/postgresql"), "", "bin"));
        let postgres = pg_dirs.into_iter().find_map(|dir| {
            let initdb = executable(&dir, "initdb")?;
            let postgres = executable(&dir, "postgres")?;
            let server = version_of(&postgres, "--version", |out| {
                // "postgres (PostgreSQL) 15.14 (Debian 15.14-0+deb12u1)"
                let v = out.split_whitespace().nth(2)?;
                Some(format!("PostgreSQL {v}"))
            });
            Some((
                initdb,
                Program {
                    path: postgres,
                    server,
                },
            ))
        });
        let find = |name: &str| path.iter().find_map(|dir| executable(dir, name));
        let redis_server = find("redis-server").map(|p| {
            let server = version_of(&p, "--version", |out| {
                // "Redis server v=7.0.15 sha=…"
                let v = out.split_whitespace().find_map(|w| w.strip_prefix("v="))?;
                Some(format!("Redis {v}"))
            });
            Program { path: p, server }
        });
        let mongod = find("mongod").map(|p| {
            let server = version_of(&p, "--version", |out| {
                // "db version v7.0.14"
                let v = out.lines().next()?.split_whitespace().last()?;
                Some(format!("MongoDB {}", v.trim_start_matches('v')))
            });
            Program { path: p, server }
        });
        let candidates = ferretdb
            .map(Path::to_path_buf)
            .filter(|p| is_executable(p))
            .into_iter()
            .chain(find("ferretdb"))
            .chain(std::env::var_os("HOME").into_iter().flat_map(|home| {
                versioned_dirs(
                    &PathBuf::from(home).join(".cache/dbtree"),
                    "ferretdb-v",
                    "bin",
                )
                .into_iter()
                .filter_map(|dir| executable(&dir, "ferretdb"))
            }));
        let (ferretdb, ferretdb_refused) = ferretdb::choose(candidates);
        Binaries {
            redis_server,
            postgres,
            mongod,
            ferretdb,
            ferretdb_refused,
        }
    }
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn executable(dir: &Path, name: &str) -> Option<PathBuf> {
    let path = dir.join(name);
    is_executable(&path).then_some(path)
}

/// Runs `program flag` (at most two seconds) and reads its version with `parse`; the file name
/// if that fails.
pub(crate) fn version_of(
    program: &Path,
    flag: &str,
    parse: impl Fn(&str) -> Option<String>,
) -> String {
    let fallback = || {
        program
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
    };
    let Ok(mut child) = std::process::Command::new(program)
        .arg(flag)
        .env_clear()
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
    else {
        return fallback();
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    while matches!(child.try_wait(), Ok(None)) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    if matches!(child.try_wait(), Ok(None)) {
        let _ = child.kill();
        let _ = child.wait();
        return fallback();
    }
    let mut out = String::new();
    if let Some(mut stdout) = child.stdout.take() {
        let _ = std::io::Read::read_to_string(&mut stdout, &mut out);
    }
    parse(&out).unwrap_or_else(fallback)
}

/// `<root>/<prefix><version>/<sub>`, highest version first.
fn versioned_dirs(root: &Path, prefix: &str, sub: &str) -> Vec<PathBuf> {
    let mut versions: Vec<(Vec<u32>, PathBuf)> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_str()?.to_owned();
            let version = name
                .strip_prefix(prefix)?
                .split('.')
                .map(str::parse)
                .collect::<Result<Vec<u32>, _>>()
                .ok()?;
            Some((version, entry.path().join(sub)))
        })
        .collect();
    versions.sort_by(|a, b| b.0.cmp(&a.0));
    versions.into_iter().map(|(_, dir)| dir).collect()
}

/// Everything about the machine the driver needs.
#[derive(Debug)]
pub(crate) struct Host {
    pub(crate) bind_host: String,
    pub(crate) accounts: Accounts,
    pub(crate) binaries: Binaries,
    pub(crate) instances_dir: PathBuf,
}

impl Host {
    /// Where an instance lives.
    pub(crate) fn layout(&self, id: InstanceId) -> Layout {
        Layout::new(self.instances_dir.join(id.to_string()))
    }

    /// The address the driver connects to (a wildcard bind is reached over loopback).
    pub(crate) fn connect_host(&self) -> &str {
        match self.bind_host.as_str() {
            "0.0.0.0" | "*" | "" => "127.0.0.1",
            "::" => "::1",
            other => other,
        }
    }
}

/// With per-instance accounts, FerretDB (usually built into root's own cache, which no other
/// account may enter) is copied to `data_dir/engines/ferretdb` (root's, mode 0755) when that copy
/// differs, and run from there.
pub(crate) fn share_ferretdb(binaries: &mut Binaries, data_dir: &Path) -> Result<(), ClusterError> {
    use std::os::unix::fs::MetadataExt;
    let Some(program) = binaries.ferretdb.as_mut() else {
        return Ok(());
    };
    let dir = data_dir.join("engines");
    std::fs::create_dir_all(&dir).map_err(|e| io_error("creating", &dir, &e))?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o711))
        .map_err(|e| io_error("setting the permissions of", &dir, &e))?;
    let shared = dir.join("ferretdb");
    let source =
        std::fs::metadata(&program.path).map_err(|e| io_error("inspecting", &program.path, &e))?;
    let same = std::fs::metadata(&shared)
        .is_ok_and(|copy| copy.len() == source.len() && copy.mtime() >= source.mtime());
    if !same {
        let temp = dir.join(".ferretdb.tmp");
        std::fs::copy(&program.path, &temp).map_err(|e| io_error("copying", &program.path, &e))?;
        std::fs::set_permissions(&temp, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| io_error("setting the permissions of", &temp, &e))?;
        std::fs::rename(&temp, &shared).map_err(|e| io_error("installing", &shared, &e))?;
    }
    program.path = shared;
    Ok(())
}

/// The data directory's mode: see [`crate::local::data_dir_mode`].
pub(crate) const fn data_dir_mode(per_instance_accounts: bool) -> u32 {
    if per_instance_accounts { 0o701 } else { 0o700 }
}

/// Sets the data directory to [`data_dir_mode`] and `instances/` (created if missing) to 0711
/// with per-instance accounts (reachable, not listable), else 0700. With per-instance accounts
/// every ancestor of the data directory must already let others through.
pub(crate) fn set_modes(
    data_dir: &Path,
    instances_dir: &Path,
    per_instance_accounts: bool,
) -> Result<(), ClusterError> {
    std::fs::create_dir_all(instances_dir).map_err(|e| io_error("creating", instances_dir, &e))?;
    let instances_mode = if per_instance_accounts { 0o711 } else { 0o700 };
    for (dir, mode) in [
        (data_dir, data_dir_mode(per_instance_accounts)),
        (instances_dir, instances_mode),
    ] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))
            .map_err(|e| io_error("setting the permissions of", dir, &e))?;
    }
    if !per_instance_accounts {
        return Ok(());
    }
    for ancestor in data_dir.ancestors().skip(1) {
        let Ok(meta) = std::fs::metadata(ancestor) else {
            continue;
        };
        if meta.permissions().mode() & 0o001 == 0 {
            return Err(ClusterError::permanent(format!(
                "engines run as accounts of their own and cannot reach {}: make {} traversable \
                 (chmod o+x) or choose another data directory",
                data_dir.display(),
                ancestor.display()
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_sort_highest_first() {
        let root = tempfile::tempdir().unwrap();
        for v in [
            "9.6",
            "15",
            "13",
            "notaversion",
            "ferretdb-v1.24.2",
            "ferretdb-v1.9.0",
        ] {
            std::fs::create_dir_all(root.path().join(v).join("bin")).unwrap();
        }
        let names = |dirs: Vec<PathBuf>| -> Vec<String> {
            dirs.iter()
                .map(|d| {
                    d.parent()
                        .unwrap()
                        .file_name()
                        .unwrap()
                        .to_str()
                        .unwrap()
                        .to_owned()
                })
                .collect()
        };
        assert_eq!(
            names(versioned_dirs(root.path(), "", "bin")),
            ["15", "13", "9.6"]
        );
        assert_eq!(
            names(versioned_dirs(root.path(), "ferretdb-v", "bin")),
            ["ferretdb-v1.24.2", "ferretdb-v1.9.0"]
        );
    }
}
