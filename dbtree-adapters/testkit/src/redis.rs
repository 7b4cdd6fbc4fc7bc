//! A throwaway Redis server: `redis-server` on a free loopback port, nothing persisted.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::Duration;

use crate::programs::Program;
use crate::throwaway::{Account, Throwaway, free_port};

/// A throwaway Redis server, which a test may stop and start again on the same port.
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    program: PathBuf,
    account: Account,
    process: Option<Throwaway>,
}

impl RedisServer {
    /// Starts a new server; it is stopped and its files removed when this value is dropped,
    /// or at the latest when the process ends.
    ///
    /// # Errors
    /// A message naming the Debian package if `redis-server` is not installed, or saying what
    /// failed (with the end of the server's log).
    pub fn start() -> Result<RedisServer, String> {
        let program = Program::RedisServer.locate().map_err(|e| e.to_string())?;
        let account = Account::for_servers()?;
        let mut last_error = String::new();
        // A port found free can be taken by another process before the server binds it.
        for _ in 0..3 {
            let mut server = RedisServer {
                port: free_port()?,
                program: program.clone(),
                account,
                process: None,
            };
            match server.start_again() {
                Ok(()) => return Ok(server),
                Err(e) => last_error = e,
            }
        }
        Err(last_error)
    }

    /// The server's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:<port>/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Stops the server (its data is not kept); [`RedisServer::start_again`] brings up a new
    /// one on the same port.
    pub fn stop(&mut self) {
        if let Some(process) = self.process.take() {
            let _ = process.stop();
        }
    }

    /// Starts the server again on the same port, empty (does nothing if it runs).
    ///
    /// # Errors
    /// If it does not answer `PING` within 20 s (with the end of its log).
    pub fn start_again(&mut self) -> Result<(), String> {
        if self.process.is_some() {
            return Ok(());
        }
        let dir = self.account.private_dir("redis")?;
        let args: Vec<OsString> = vec![
            "--port".into(),
            self.port.to_string().into(),
            "--bind".into(),
            "127.0.0.1".into(),
            "--save".into(),
            "".into(),
            "--appendonly".into(),
            "no".into(),
            "--dir".into(),
            dir.clone().into_os_string(),
            "--daemonize".into(),
            "no".into(),
            "--maxclients".into(),
            "2000".into(),
        ];
        let mut process = Throwaway::spawn(self.account, dir, "TERM", &self.program, &args)?;
        let port = self.port;
        process.wait_until_ready("redis-server", Duration::from_secs(20), |_| pong(port))?;
        self.process = Some(process);
        Ok(())
    }
}

/// Whether the server on `port` answers `PING` with `PONG`.
fn pong(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    let mut reply = [0u8; 7];
    stream.write_all(b"PING\r\n").is_ok()
        && stream.read_exact(&mut reply).is_ok()
        && &reply == b"+PONG\r\n"
}
