//! A throwaway PostgreSQL server: `initdb` into a private temporary directory, `postgres` on a
//! free loopback port, trust authentication on loopback only (nothing else reaches it).

use std::ffi::OsString;
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::programs::Program;
use crate::throwaway::{Account, Throwaway, free_port};

/// How the server trades durability for speed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// `fsync`, synchronous commit and full-page writes off: for tests.
    Fast,
    /// PostgreSQL's defaults: for benches, whose figures should resemble production's.
    Default,
}

/// A running throwaway PostgreSQL server.
#[derive(Debug)]
pub struct PostgresServer {
    port: u16,
    process: Throwaway,
}

impl PostgresServer {
    /// Starts a new server; it is stopped and its files removed when this value is dropped,
    /// or at the latest when the process ends.
    ///
    /// # Errors
    /// A message naming the Debian package if PostgreSQL is not installed, or saying what
    /// failed (with the end of the server's log).
    pub fn start(durability: Durability) -> Result<PostgresServer, String> {
        let bin = Program::PostgresServer
            .locate()
            .map_err(|e| e.to_string())?;
        let account = Account::for_servers()?;
        let mut last_error = String::new();
        // A port found free can be taken by another process before the server binds it.
        for _ in 0..3 {
            match Self::start_once(&bin, account, durability) {
                Ok(server) => return Ok(server),
                Err(e) => last_error = e,
            }
        }
        Err(last_error)
    }

    fn start_once(
        bin: &Path,
        account: Account,
        durability: Durability,
    ) -> Result<PostgresServer, String> {
        let dir = account.private_dir("postgres")?;
        let data = dir.join("data");
        if let Err(e) = initdb(bin, account, &dir, &data) {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(e);
        }
        let port = free_port()?;
        let mut args: Vec<OsString> = vec!["-D".into(), data.into_os_string()];
        let mut settings = vec![
            format!("port={port}"),
            "listen_addresses=127.0.0.1".to_owned(),
            format!("unix_socket_directories={}", dir.display()),
            "max_connections=400".to_owned(),
            "shared_buffers=64MB".to_owned(),
        ];
        if durability == Durability::Fast {
            settings.extend(
                [
                    "fsync=off",
                    "synchronous_commit=off",
                    "full_page_writes=off",
                ]
                .map(String::from),
            );
        }
        for setting in settings {
            args.push("-c".into());
            args.push(setting.into());
        }
        let mut process = Throwaway::spawn(account, dir, "QUIT", &bin.join("postgres"), &args)?;
        process.wait_until_ready("postgres", Duration::from_secs(60), |dir| {
            accepting(dir) && TcpStream::connect(("127.0.0.1", port)).is_ok()
        })?;
        Ok(PostgresServer { port, process })
    }

    /// The server's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A URL for the `postgres` superuser and database.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Stops the server now and removes its files.
    ///
    /// # Errors
    /// If waiting for the server's keeper fails.
    pub fn stop(self) -> std::io::Result<()> {
        self.process.stop()
    }

    /// The directory the server lives in (removed when it stops).
    pub fn dir(&self) -> &Path {
        self.process.dir()
    }
}

fn initdb(bin: &Path, account: Account, dir: &Path, data: &Path) -> Result<(), String> {
    let log = dir.join("initdb.log");
    let log_file =
        std::fs::File::create(&log).map_err(|e| format!("creating {}: {e}", log.display()))?;
    let mut command = Command::new(bin.join("initdb"));
    command
        .arg("-D")
        .arg(data)
        .args([
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-locale",
            "--no-sync",
        ])
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log_file);
    account.apply(&mut command);
    let status = command
        .status()
        .map_err(|e| format!("running initdb: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        let output = std::fs::read_to_string(&log).unwrap_or_default();
        Err(format!("initdb failed ({status}): {}", output.trim()))
    }
}

/// Whether the postmaster says it accepts connections: the eighth line of `postmaster.pid`
/// is its status, `ready` once it does.
fn accepting(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("data").join("postmaster.pid"))
        .is_ok_and(|pid_file| pid_file.lines().nth(7).is_some_and(|s| s.trim() == "ready"))
}
