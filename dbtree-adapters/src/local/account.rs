//! The system accounts engines run as. A driver running as root gives every instance an
//! unprivileged system account of its own (`dbtree-<16 hex digits of the instance id>`, no home,
//! no login shell), created with the instance and removed with it; a driver that is not root
//! runs engines as itself (isolation is then by database role only).

use std::fmt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use dbtree_core::boundary::ClusterError;
use dbtree_core::ids::InstanceId;
use nix::unistd::{Gid, Uid, User, getegid, geteuid};
use tokio::process::Command;

use super::process;

/// The prefix of every per-instance account.
pub(crate) const ACCOUNT_PREFIX: &str = "dbtree-";

/// The system user one engine runs as.
#[derive(Clone)]
pub(crate) struct RunAs {
    pub(crate) name: String,
    pub(crate) uid: Uid,
    gid: Gid,
    /// Whether spawning must switch to this user (it differs from the driver's own).
    switch: bool,
}

impl fmt::Debug for RunAs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RunAs({}, uid {})", self.name, self.uid)
    }
}

impl RunAs {
    /// The driver's own user.
    pub(crate) fn current() -> RunAs {
        let euid = geteuid();
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

    /// Makes `command` run as this user (with no supplementary group).
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
}

/// How instances get their accounts.
#[derive(Debug)]
pub(crate) struct Accounts {
    /// Root: one system account per instance.
    per_instance: bool,
    /// The comment (GECOS) of this data directory's accounts: `dbtree <hash of the directory>`,
    /// so that a driver only ever sweeps its own (several servers may share a machine).
    marker: String,
    /// `useradd`/`userdel` lock the account files: one at a time.
    changing: tokio::sync::Mutex<()>,
}

impl Accounts {
    /// Per-instance accounts when running as root, else the driver's own user; accounts are
    /// marked as belonging to `instances_dir`.
    pub(crate) fn detect(instances_dir: &Path) -> Accounts {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(instances_dir.as_os_str().as_encoded_bytes());
        let hash: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
        Accounts {
            per_instance: Self::per_instance_here(),
            marker: format!("dbtree {hash}"),
            changing: tokio::sync::Mutex::new(()),
        }
    }

    /// Whether a driver in this process gives every instance an account of its own: it runs
    /// as root.
    pub(crate) fn per_instance_here() -> bool {
        geteuid().is_root()
    }

    /// Whether every instance gets an account of its own.
    pub(crate) fn per_instance(&self) -> bool {
        self.per_instance
    }

    /// The account name of an instance.
    pub(crate) fn name_for(id: InstanceId) -> String {
        let hex: String = id
            .to_string()
            .chars()
            .filter(|c| *c != '-')
            .take(16)
            .collect();
        format!("{ACCOUNT_PREFIX}{hex}")
    }

    /// The instance's account, if it exists.
    pub(crate) fn lookup(&self, id: InstanceId) -> Result<Option<RunAs>, ClusterError> {
        if !self.per_instance {
            return Ok(Some(RunAs::current()));
        }
        let name = Self::name_for(id);
        let user = User::from_name(&name)
            .map_err(|e| ClusterError::transient(format!("looking up the user `{name}`: {e}")))?;
        Ok(user.map(|u| RunAs {
            name: u.name,
            uid: u.uid,
            gid: u.gid,
            switch: true,
        }))
    }

    /// The instance's account, created if missing (`useradd --system`, no home, no shell).
    pub(crate) async fn create(&self, id: InstanceId) -> Result<RunAs, ClusterError> {
        if let Some(existing) = self.lookup(id)? {
            return Ok(existing);
        }
        let name = Self::name_for(id);
        let args = [
            "--system",
            "--no-create-home",
            "--home-dir",
            "/nonexistent",
            "--shell",
            "/usr/sbin/nologin",
            "--user-group",
            "--comment",
            self.marker.as_str(),
            name.as_str(),
        ];
        self.account_tool("useradd", &args).await?;
        self.lookup(id)?.ok_or_else(|| {
            ClusterError::transient(format!("useradd did not create the user `{name}`"))
        })
    }

    /// Removes the instance's account after killing every process it still runs.
    pub(crate) async fn remove(&self, id: InstanceId) -> Result<(), ClusterError> {
        let Some(run_as) = self.lookup(id)?.filter(|_| self.per_instance) else {
            return Ok(());
        };
        self.remove_user(&run_as.name, run_as.uid).await
    }

    /// Kills the processes of a per-instance user and removes it (with its group).
    pub(crate) async fn remove_user(&self, name: &str, uid: Uid) -> Result<(), ClusterError> {
        if !name.starts_with(ACCOUNT_PREFIX) || uid.is_root() {
            return Err(ClusterError::permanent(format!(
                "refusing to remove `{name}`: not an instance account"
            )));
        }
        process::kill_user(uid).await;
        self.account_tool("userdel", &[name]).await
    }

    /// This data directory's instance accounts that exist on this machine (name and uid).
    pub(crate) fn existing(&self) -> Vec<(String, Uid)> {
        if !self.per_instance {
            return Vec::new();
        }
        let Ok(passwd) = std::fs::read_to_string("/etc/passwd") else {
            return Vec::new();
        };
        passwd
            .lines()
            .filter_map(|line| {
                let fields: Vec<&str> = line.split(':').collect();
                let (name, uid, comment) = (fields.first()?, fields.get(2)?, fields.get(4)?);
                let uid = uid.parse().ok()?;
                let tail = name.strip_prefix(ACCOUNT_PREFIX)?;
                (tail.len() == 16
                    && tail.chars().all(|c| c.is_ascii_hexdigit())
                    && *comment == self.marker)
                    .then(|| ((*name).to_owned(), Uid::from_raw(uid)))
            })
            .collect()
    }

    /// Runs `useradd`/`userdel`, one at a time, retrying while the account files are locked.
    async fn account_tool(&self, tool: &str, args: &[&str]) -> Result<(), ClusterError> {
        let _one_at_a_time = self.changing.lock().await;
        let mut last = String::new();
        for attempt in 0..5u32 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
            }
            let output = Command::new(tool)
                .args(args)
                .env_clear()
                .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
                .stdin(std::process::Stdio::null())
                .output()
                .await
                .map_err(|e| ClusterError::permanent(format!("running {tool}: {e}")))?;
            // userdel: 6 = no such user (already gone)
            if output.status.success() || (tool == "userdel" && output.status.code() == Some(6)) {
                return Ok(());
            }
            last = String::from_utf8_lossy(&output.stderr).trim().to_owned();
            // 1 and 10: the password or group file is locked by someone else; worth retrying
            if !matches!(output.status.code(), Some(1 | 10)) {
                break;
            }
        }
        Err(ClusterError::transient(format!("{tool} failed: {last}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_names_fit_and_are_per_instance() {
        let a = InstanceId::from_random_bytes([7; 16]);
        let b = InstanceId::from_random_bytes([8; 16]);
        let name = Accounts::name_for(a);
        assert!(name.starts_with(ACCOUNT_PREFIX));
        assert_eq!(name.len(), ACCOUNT_PREFIX.len() + 16);
        assert!(name.len() <= 32, "useradd's limit");
        assert_ne!(name, Accounts::name_for(b));
    }
}
