//! The host: which user engines run as, where their binaries are, and who may reach which
//! directory.

use std::ffi::CString;
use std::fmt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use dbtree_core::boundary::ClusterError;
use dbtree_core::ids::InstanceId;
use nix::unistd::{Gid, Uid, User, getegid, geteuid, getgrouplist};
use tokio::process::Command;

use super::disk::Layout;

/// The system user engines run as.
#[derive(Clone)]
pub(crate) struct RunAs {
    pub(crate) name: String,
    uid: Uid,
    gid: Gid,
    /// Whether spawning must switch to this user (it differs from the driver's own).
    switch: bool,
}

impl fmt::Debug for RunAs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "RunAs({}, uid {}, gid {})",
            self.name, self.uid, self.gid
        )
    }
}

impl RunAs {
    /// Resolves the configured user, or the default: `postgres` when running as root and that
    /// user exists (PostgreSQL refuses to run as root), otherwise the current user.
    pub(crate) fn resolve(requested: Option<&str>) -> Result<RunAs, ClusterError> {
        let euid = geteuid();
        let user = match requested {
            Some(name) => Some(lookup(name)?.ok_or_else(|| {
                ClusterError::permanent(format!("the run-as user `{name}` does not exist"))
            })?),
            None if euid.is_root() => lookup("postgres")?,
            None => None,
        };
        let Some(user) = user else {
            return Ok(Self::current(euid));
        };
        let switch = user.uid != euid;
        if switch && !euid.is_root() {
            return Err(ClusterError::permanent(format!(
                "running engines as `{}` needs root; leave run_as unset to use the current user",
                user.name
            )));
        }
        Ok(RunAs {
            name: user.name,
            uid: user.uid,
            gid: user.gid,
            switch,
        })
    }

    fn current(euid: Uid) -> RunAs {
        let name = User::from_uid(euid)
            .ok()
            .flatten()
            .map_or_else(|| euid.to_string(), |u| u.name);
        RunAs {
            name,
            uid: euid,
            gid: getegid(),
            switch: false,
        }
    }

    /// Makes `command` run as this user.
    pub(crate) fn apply(&self, command: &mut Command) {
        if self.switch {
            command.uid(self.uid.as_raw()).gid(self.gid.as_raw());
        }
    }

    /// Gives `path` to this user (nothing to do when it is the driver's own). A symbolic link
    /// is never followed.
    pub(crate) fn own(&self, path: &Path) -> std::io::Result<()> {
        if self.switch {
            std::os::unix::fs::lchown(path, Some(self.uid.as_raw()), Some(self.gid.as_raw()))?;
        }
        Ok(())
    }

    /// Gives an open file to this user.
    pub(crate) fn own_file(&self, file: &std::fs::File) -> std::io::Result<()> {
        if self.switch {
            std::os::unix::fs::fchown(file, Some(self.uid.as_raw()), Some(self.gid.as_raw()))?;
        }
        Ok(())
    }

    /// Whether `pid` belongs to this user (unknown on a system without `/proc`: assumed yes).
    pub(crate) fn owns_process(&self, pid: i32) -> bool {
        match std::fs::metadata(format!("/proc/{pid}")) {
            Ok(meta) => meta.uid() == self.uid.as_raw(),
            Err(_) => !Path::new("/proc/self").exists(),
        }
    }

    /// Makes sure this user can reach `data_dir`: its ancestors must let it through, and
    /// `data_dir` itself (dbtree's own) is made traversable (`o+x`, no listing) if needed.
    pub(crate) fn ensure_reachable(&self, data_dir: &Path) -> Result<(), ClusterError> {
        if !self.switch {
            return Ok(());
        }
        let groups = self.groups();
        let meta = std::fs::metadata(data_dir).map_err(|e| io_error("inspecting", data_dir, &e))?;
        if !self.may_traverse(&meta, &groups) {
            let mode = meta.permissions().mode() | 0o001;
            std::fs::set_permissions(data_dir, std::fs::Permissions::from_mode(mode))
                .map_err(|e| io_error("making traversable", data_dir, &e))?;
        }
        for ancestor in data_dir.ancestors().skip(1) {
            let Ok(meta) = std::fs::metadata(ancestor) else {
                continue;
            };
            if !self.may_traverse(&meta, &groups) {
                return Err(ClusterError::permanent(format!(
                    "the run-as user `{}` cannot reach {}: make {} traversable (chmod o+x) or \
                     choose another data directory",
                    self.name,
                    data_dir.display(),
                    ancestor.display()
                )));
            }
        }
        Ok(())
    }

    fn groups(&self) -> Vec<Gid> {
        CString::new(self.name.clone())
            .ok()
            .and_then(|name| getgrouplist(&name, self.gid).ok())
            .unwrap_or_else(|| vec![self.gid])
    }

    fn may_traverse(&self, meta: &std::fs::Metadata, groups: &[Gid]) -> bool {
        let mode = meta.permissions().mode();
        (meta.uid() == self.uid.as_raw() && mode & 0o100 != 0)
            || (groups.iter().any(|g| g.as_raw() == meta.gid()) && mode & 0o010 != 0)
            || mode & 0o001 != 0
    }
}

fn lookup(name: &str) -> Result<Option<User>, ClusterError> {
    User::from_name(name)
        .map_err(|e| ClusterError::transient(format!("looking up the user `{name}`: {e}")))
}

/// An io error as a cluster error naming what was done to which path.
pub(crate) fn io_error(doing: &str, path: &Path, e: &std::io::Error) -> ClusterError {
    ClusterError::transient(format!("{doing} {}: {e}", path.display()))
}

/// The engine binaries found on this machine.
#[derive(Clone, Debug, Default)]
pub(crate) struct Binaries {
    pub(crate) redis_server: Option<PathBuf>,
    /// `initdb` and `postgres`, from the same directory (the same version).
    pub(crate) postgres: Option<(PathBuf, PathBuf)>,
    pub(crate) mongod: Option<PathBuf>,
    pub(crate) mongosh: Option<PathBuf>,
}

impl Binaries {
    /// Looks on `PATH`, and for PostgreSQL also in `/usr/lib/postgresql/*/bin`, highest
    /// version first.
    pub(crate) fn discover() -> Binaries {
        let path: Vec<PathBuf> = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).collect())
            .unwrap_or_default();
        let pg_dirs = path
            .iter()
            .cloned()
            .chain(postgres_dirs(Path::new("/usr/lib/postgresql")));
        let postgres = pg_dirs.into_iter().find_map(|dir| {
            let initdb = executable(&dir, "initdb")?;
            let postgres = executable(&dir, "postgres")?;
            Some((initdb, postgres))
        });
        let find = |name: &str| path.iter().find_map(|dir| executable(dir, name));
        Binaries {
            redis_server: find("redis-server"),
            postgres,
            mongod: find("mongod"),
            mongosh: find("mongosh"),
        }
    }
}

fn executable(dir: &Path, name: &str) -> Option<PathBuf> {
    let path = dir.join(name);
    let meta = std::fs::metadata(&path).ok()?;
    (meta.is_file() && meta.permissions().mode() & 0o111 != 0).then_some(path)
}

/// `<root>/<version>/bin`, highest version first.
fn postgres_dirs(root: &Path) -> Vec<PathBuf> {
    let mut versions: Vec<(Vec<u32>, PathBuf)> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_str()?.to_owned();
            let version = name
                .split('.')
                .map(str::parse)
                .collect::<Result<Vec<u32>, _>>()
                .ok()?;
            Some((version, entry.path().join("bin")))
        })
        .collect();
    versions.sort_by(|a, b| b.0.cmp(&a.0));
    versions.into_iter().map(|(_, dir)| dir).collect()
}

/// Everything about the machine the driver needs.
#[derive(Debug)]
pub(crate) struct Host {
    pub(crate) bind_host: String,
    pub(crate) run_as: RunAs,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_versions_sort_highest_first() {
        let root = tempfile::tempdir().unwrap();
        for v in ["9.6", "15", "13", "notaversion"] {
            std::fs::create_dir_all(root.path().join(v).join("bin")).unwrap();
        }
        let dirs = postgres_dirs(root.path());
        let names: Vec<_> = dirs
            .iter()
            .map(|d| {
                d.parent()
                    .unwrap()
                    .file_name()
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert_eq!(names, ["15", "13", "9.6"]);
    }
}
