//! The real `dbtree-server` binary on the embedded default (SQLite in its data directory, the
//! local engine driver), with every line it logs captured, and the engines it started reaped
//! even when a test fails half-way.

use std::io::{BufRead, BufReader, Read};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::Value;

/// How long anything the server does in the background may take.
pub(crate) const DEADLINE: Duration = Duration::from_secs(60);

/// The server process and what it logged.
pub(crate) struct Server {
    child: Child,
    pub(crate) base: String,
    pub(crate) data_dir: PathBuf,
    pub(crate) node_ports: (u16, u16),
    log: Arc<Mutex<Vec<String>>>,
    readers: Vec<std::thread::JoinHandle<()>>,
    client: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        reap_engines(&self.data_dir);
    }
}

/// Kills every engine process group still recorded under the data directory (engines outlive
/// the driver by design, so a failed test must not leave them behind).
fn reap_engines(data_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(data_dir.join("instances")) else {
        return;
    };
    for entry in entries.flatten() {
        if let Ok(pid) = std::fs::read_to_string(entry.path().join("engine.pid")) {
            let pid = pid.trim();
            let group = format!("-{pid}");
            let _ = Command::new("kill")
                .args(["-KILL", "--", &group, pid])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Whether nothing listens on `port` (a connection is refused).
pub(crate) fn refused(port: u16) -> bool {
    matches!(
        TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(2)),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused
    )
}

/// Whether `port` can be bound on 127.0.0.1 right now.
pub(crate) fn bindable(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// Ten consecutive free NodePorts, chosen apart from other test processes by process id.
fn free_block() -> (u16, u16) {
    let blocks = 190u16; // 30100..=31999 in blocks of ten
    let start = (std::process::id() % u32::from(blocks)) as u16;
    for n in 0..blocks {
        let first = 30100 + ((start + n) % blocks) * 10;
        let last = first + 9;
        if (first..=last).all(|p| bindable(p) && refused(p)) {
            return (first, last);
        }
    }
    panic!("no block of ten free ports in 30100-31999");
}

fn capture(
    stream: impl Read + Send + 'static,
    log: Arc<Mutex<Vec<String>>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            log.lock().unwrap().push(line);
        }
    })
}

impl Server {
    /// Starts the binary in a fresh directory with nothing configured but where to listen,
    /// debug logging (so that "never logged" covers the most lines) and a block of NodePorts
    /// no other test uses; returns once `/readyz` answers.
    pub(crate) async fn start() -> Server {
        let dir = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let node_ports = free_block();
        let mut child = Command::new(env!("CARGO_BIN_EXE_dbtree-server"))
            .current_dir(dir.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DBTREE_LISTEN", format!("127.0.0.1:{port}"))
            .env("DBTREE_NODE_PORT_FIRST", node_ports.0.to_string())
            .env("DBTREE_NODE_PORT_LAST", node_ports.1.to_string())
            .env("DBTREE_LOG", "debug")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let readers = vec![
            capture(child.stdout.take().unwrap(), log.clone()),
            capture(child.stderr.take().unwrap(), log.clone()),
        ];
        let server = Server {
            child,
            base: format!("http://127.0.0.1:{port}"),
            data_dir: dir.path().join("dbtree-data"),
            node_ports,
            log,
            readers,
            client: reqwest::Client::new(),
            _dir: dir,
        };
        let started = Instant::now();
        loop {
            if let Ok(r) = server.client.get(server.url("/readyz")).send().await
                && r.status().is_success()
            {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the server did not become ready:\n{}",
                server.log_text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        server
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Everything logged so far.
    pub(crate) fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// The sign-in code the console mailer logged for `email`, waiting for it.
    pub(crate) async fn code_from_log(&self, email: &str) -> String {
        let needle = format!("sign-in code for {email}: ");
        let started = Instant::now();
        loop {
            let found = self.log.lock().unwrap().iter().find_map(|line| {
                let at = line.find(&needle)?;
                Some(
                    line[at + needle.len()..]
                        .chars()
                        .take(6)
                        .collect::<String>(),
                )
            });
            if let Some(code) = found {
                return code;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "no code logged"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// One API call: the status and the JSON body (null when empty).
    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.client.request(method, self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, body)
    }

    pub(crate) async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, Some(token), None).await
    }

    pub(crate) async fn post(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(token), Some(body)).await
    }

    /// The SQLite files of dbtree's own database (the database, its WAL and shared memory).
    pub(crate) fn database_files(&self) -> Vec<PathBuf> {
        let files: Vec<PathBuf> = std::fs::read_dir(&self.data_dir)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("dbtree.sqlite"))
            })
            .collect();
        assert!(
            files.iter().any(|p| p.ends_with("dbtree.sqlite")),
            "no database in {files:?}"
        );
        files
    }

    /// Stops the server as an operator would (SIGTERM) and waits for it to exit.
    pub(crate) async fn shut_down(&mut self) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(sent.success());
        let started = Instant::now();
        while self.child.try_wait().unwrap().is_none() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the server did not stop on SIGTERM"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // the readers reach end-of-file once nothing holds the pipes: every line is captured
        for reader in self.readers.drain(..) {
            let joined = tokio::time::timeout(
                Duration::from_secs(10),
                tokio::task::spawn_blocking(move || reader.join()),
            )
            .await;
            assert!(
                matches!(joined, Ok(Ok(Ok(())))),
                "the log pipes stayed open after the server exited"
            );
        }
    }
}

/// Every file under `dir` (recursively) whose bytes contain one of `secrets`, with the secret.
pub(crate) fn files_containing(dir: &Path, secrets: &[String]) -> Vec<(PathBuf, String)> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            if let Ok(entries) = std::fs::read_dir(&path) {
                stack.extend(entries.flatten().map(|e| e.path()));
            }
            continue;
        }
        if !meta.is_file() {
            continue;
        }
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        for secret in secrets {
            if bytes.windows(secret.len()).any(|w| w == secret.as_bytes()) {
                found.push((path.clone(), secret.clone()));
            }
        }
    }
    found
}
