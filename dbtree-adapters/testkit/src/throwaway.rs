//! A server process that lives no longer than the test process that started it.
//!
//! The server is started by a small `sh` *keeper* whose standard input is a pipe from the test
//! process. The keeper waits for that pipe to close, which the kernel does when the test process
//! ends however it ends (tests passed, a test panicked, `SIGKILL`), then stops the server, waits
//! for it and removes its directory. Nothing has to run at exit, so nothing is left behind even
//! when no destructor runs (a server held in a `static` never has its destructor run).

use std::ffi::OsString;
use std::io::{self, Read};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use nix::unistd::{Gid, Uid, User, geteuid};

/// Stops the server on its signal once standard input closes, then removes the directory.
/// `$1` directory, `$2` signal name, the rest the server's command line.
const KEEPER: &str = r#"
dir=$1; sig=$2; shift 2
"$@" >"$dir/server.log" 2>&1 </dev/null &
server=$!
echo "$server" >"$dir/server.pid"
cat >/dev/null
kill -s "$sig" "$server" 2>/dev/null
wait "$server"
rm -rf "$dir"
"#;

/// The account servers run as: `nobody` when the tests run as root (PostgreSQL refuses to run
/// as root, and a throwaway server has no business with root's rights), otherwise the tests' own.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Account {
    switch_to: Option<(Uid, Gid)>,
}

impl Account {
    pub(crate) fn for_servers() -> Result<Account, String> {
        if !geteuid().is_root() {
            return Ok(Account { switch_to: None });
        }
        let nobody = User::from_name("nobody")
            .map_err(|e| format!("looking up the user `nobody`: {e}"))?
            .ok_or("the tests run as root and need the user `nobody` to run servers as")?;
        Ok(Account {
            switch_to: Some((nobody.uid, nobody.gid)),
        })
    }

    /// Makes `command` run as this account.
    pub(crate) fn apply(self, command: &mut Command) {
        if let Some((uid, gid)) = self.switch_to {
            command.uid(uid.as_raw()).gid(gid.as_raw());
        }
    }

    /// A new private (0700) directory for one server, owned by this account.
    pub(crate) fn private_dir(self, kind: &str) -> Result<PathBuf, String> {
        use std::os::unix::fs::{DirBuilderExt, chown};
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir = std::env::temp_dir().join(format!(
            "dbtree-test-{kind}-{}-{nanos:08x}",
            std::process::id()
        ));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(|e| format!("creating {}: {e}", dir.display()))?;
        if let Some((uid, gid)) = self.switch_to {
            chown(&dir, Some(uid.as_raw()), Some(gid.as_raw()))
                .map_err(|e| format!("giving {} to `nobody`: {e}", dir.display()))?;
        }
        Ok(dir)
    }
}

/// A running server and the pipe that keeps it alive.
#[derive(Debug)]
pub(crate) struct Throwaway {
    dir: PathBuf,
    keeper: Child,
    lifeline: Option<ChildStdin>,
}

impl Throwaway {
    /// Starts `program args…` as `account` in `dir` (which the keeper removes at the end),
    /// stopped with `signal` (a `kill -s` name).
    pub(crate) fn spawn(
        account: Account,
        dir: PathBuf,
        signal: &str,
        program: &Path,
        args: &[OsString],
    ) -> Result<Throwaway, String> {
        let mut command = Command::new("/bin/sh");
        command
            .arg("-c")
            .arg(KEEPER)
            .arg("dbtree-test-keeper")
            .arg(&dir)
            .arg(signal)
            .arg(program)
            .args(args)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group: Ctrl-C in the terminal ends the tests, and the keeper then
            // cleans up, instead of being interrupted half-way.
            .process_group(0);
        account.apply(&mut command);
        let mut keeper = command
            .spawn()
            .map_err(|e| format!("starting {}: {e}", program.display()))?;
        let lifeline = keeper.stdin.take();
        Ok(Throwaway {
            dir,
            keeper,
            lifeline,
        })
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Waits up to `limit` for `ready` to say yes; fails early, with the end of the server's
    /// log, if the server exits.
    pub(crate) fn wait_until_ready(
        &mut self,
        what: &str,
        limit: Duration,
        mut ready: impl FnMut(&Path) -> bool,
    ) -> Result<(), String> {
        let deadline = Instant::now() + limit;
        loop {
            if ready(&self.dir) {
                return Ok(());
            }
            if !self.server_alive() {
                return Err(format!("{what} exited at start: {}", self.log_tail()));
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "{what} did not become ready within {} s: {}",
                    limit.as_secs(),
                    self.log_tail()
                ));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Whether the server process still runs (`true` until its pid is known).
    fn server_alive(&mut self) -> bool {
        if matches!(self.keeper.try_wait(), Ok(Some(_))) {
            return false;
        }
        let Ok(pid) = std::fs::read_to_string(self.dir.join("server.pid")) else {
            return true;
        };
        match std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())) {
            // The third field is the state; `Z` is a server that exited but is not yet reaped.
            Ok(stat) => stat
                .rsplit(')')
                .next()
                .and_then(|rest| rest.split_whitespace().next())
                .is_some_and(|state| state != "Z"),
            Err(_) => false,
        }
    }

    /// The last lines the server logged.
    pub(crate) fn log_tail(&self) -> String {
        let mut log = String::new();
        let _ = std::fs::File::open(self.dir.join("server.log"))
            .and_then(|mut f| f.read_to_string(&mut log));
        let lines: Vec<&str> = log.lines().rev().take(8).collect();
        if lines.is_empty() {
            "(no output)".to_owned()
        } else {
            lines.into_iter().rev().collect::<Vec<_>>().join(" | ")
        }
    }

    /// Stops the server, waits for it and for its directory to be removed.
    pub(crate) fn stop(mut self) -> io::Result<()> {
        self.lifeline.take();
        self.keeper.wait().map(|_| ())
    }
}

impl Drop for Throwaway {
    fn drop(&mut self) {
        self.lifeline.take();
        let _ = self.keeper.wait();
    }
}

/// A TCP port on the loopback interface that nothing listens on right now.
pub(crate) fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("finding a free port: {e}"))
}
