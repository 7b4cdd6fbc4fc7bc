//! The real `dbtree-server` binary on the embedded default (SQLite in its data directory, the
//! local engine driver), with every line it logs captured, and the engines it started reaped
//! even when a test fails half-way.
#![allow(dead_code)] // shared by several test binaries, each using a part

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
    /// `None` once handed to the next server on the same directory.
    dir: Option<tempfile::TempDir>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if self.dir.is_some() {
            reap_engines(&self.data_dir);
        }
    }
}

/// Kills every engine process group still recorded under the data directory, and every process
/// working in an instance directory, and (as root) removes the instance accounts: engines may
/// outlive the server, so a failed test must not leave them behind.
fn reap_engines(data_dir: &Path) {
    for pid in engine_processes(data_dir) {
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .stderr(Stdio::null())
            .status();
    }
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
        let name = entry.file_name().to_string_lossy().replace('-', "");
        if name.len() == 32 && is_root() {
            let account = format!("dbtree-{}", &name[..16]);
            let _ = Command::new("pkill")
                .args(["-KILL", "-u", &account])
                .stderr(Stdio::null())
                .status();
            std::thread::sleep(Duration::from_millis(200));
            let _ = Command::new("userdel")
                .arg(&account)
                .stderr(Stdio::null())
                .status();
        }
    }
}

pub(crate) fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// Live processes working in an instance directory under `data_dir`, with that instance's id.
pub(crate) fn engine_processes_by_instance(data_dir: &Path) -> Vec<(i32, String)> {
    let Ok(instances) = data_dir.join("instances").canonicalize() else {
        return Vec::new();
    };
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let pid: i32 = e.file_name().to_str()?.parse().ok()?;
            let cwd = std::fs::read_link(e.path().join("cwd")).ok()?;
            let text = cwd.to_str()?.trim_end_matches(" (deleted)").to_owned();
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            let zombie = stat
                .rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'));
            let below = Path::new(&text).strip_prefix(&instances).ok()?;
            let id = below.components().next()?.as_os_str().to_str()?.to_owned();
            (!zombie).then_some((pid, id))
        })
        .collect()
}

/// Live processes working in an instance directory under `data_dir`.
pub(crate) fn engine_processes(data_dir: &Path) -> Vec<i32> {
    engine_processes_by_instance(data_dir)
        .into_iter()
        .map(|(pid, _)| pid)
        .collect()
}

/// The `ferretdb` binary `.ci/ferretdb` builds (or `DBTREE_FERRETDB`); fails at once, naming
/// the script, when it is missing or is not such a build (dbtree runs only FerretDB built by
/// `.ci/ferretdb`, whose SCRAM sign-in completes with the Rust driver).
pub(crate) fn ferretdb() -> PathBuf {
    let cache = PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/dbtree");
    let path = ferretdb_found().unwrap_or_else(|| {
        panic!(
            "MongoDB instances need FerretDB here (no mongod): run .ci/ferretdb first (it \
             builds FerretDB into {}), or set DBTREE_FERRETDB",
            cache.display()
        )
    });
    let says = Command::new(&path)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    assert!(
        says.lines().any(|l| l == "package: dbtree+scram-done"),
        "{} is not a FerretDB built by .ci/ferretdb: run .ci/ferretdb",
        path.display()
    );
    path
}

/// `DBTREE_FERRETDB`, else the newest FerretDB `.ci/ferretdb` built, if any.
fn ferretdb_found() -> Option<PathBuf> {
    let cache = PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/dbtree");
    std::env::var_os("DBTREE_FERRETDB")
        .map(PathBuf::from)
        .or_else(|| {
            let mut found: Vec<PathBuf> = std::fs::read_dir(&cache)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path().join("bin/ferretdb"))
                .filter(|p| p.exists())
                .collect();
            found.sort();
            found.pop()
        })
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

/// Ten consecutive free NodePorts, chosen apart from other test processes by process id and
/// apart from the other tests of this process.
pub(crate) fn free_block() -> (u16, u16) {
    static NEXT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
    let blocks = 190u16; // 30100..=31999 in blocks of ten
    let start = (std::process::id() % u32::from(blocks)) as u16;
    let skip = NEXT.fetch_add(7, std::sync::atomic::Ordering::SeqCst);
    for n in 0..blocks {
        let first = 30100 + ((start + skip + n) % blocks) * 10;
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
        Server::boot(tempfile::tempdir().unwrap(), free_block(), &[]).await
    }

    /// Starts the binary with a given block of NodePorts and extra settings.
    pub(crate) async fn start_with(node_ports: (u16, u16), env: &[(&str, &str)]) -> Server {
        Server::boot(tempfile::tempdir().unwrap(), node_ports, env).await
    }

    /// A new server on this one's directory and ports, once this one has exited.
    pub(crate) async fn restart(mut self) -> Server {
        assert!(
            self.child.try_wait().unwrap().is_some(),
            "restart a server that still runs"
        );
        let dir = self.dir.take().unwrap();
        Server::boot(dir, self.node_ports, &[]).await
    }

    /// Kills the server with SIGKILL (its engines are not told).
    pub(crate) fn kill9(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    async fn boot(dir: tempfile::TempDir, node_ports: (u16, u16), env: &[(&str, &str)]) -> Server {
        // The engines are the installed programs: a missing one fails here, naming its package.
        for program in dbtree_testkit::Program::ALL {
            assert!(
                program.locate().is_ok(),
                "the local engines need {} here: install the Debian package `{}`, or run the \
                 tests with `cargo xtask test`, which installs what is missing",
                program.describe(),
                program.debian_package()
            );
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut command = Command::new(env!("CARGO_BIN_EXE_dbtree-server"));
        command
            .current_dir(dir.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DBTREE_LISTEN", format!("127.0.0.1:{port}"))
            .env("DBTREE_NODE_PORT_FIRST", node_ports.0.to_string())
            .env("DBTREE_NODE_PORT_LAST", node_ports.1.to_string())
            .env("DBTREE_LOG", "debug");
        if let Some(ferretdb) = ferretdb_found() {
            command.env("DBTREE_FERRETDB", ferretdb);
        }
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command
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
            dir: Some(dir),
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

    /// Signs `email` in with the code the console mailer logged; returns the session answer
    /// (`token`, `profile`).
    pub(crate) async fn sign_in(&self, email: &str) -> Value {
        let sent = self
            .call(
                Method::POST,
                "/api/v1/auth/code",
                None,
                Some(serde_json::json!({ "email": email })),
            )
            .await;
        assert_eq!(sent.0, StatusCode::ACCEPTED, "{}", sent.1);
        let code = self.code_from_log(email).await;
        let session = self
            .call(
                Method::POST,
                "/api/v1/auth/session",
                None,
                Some(serde_json::json!({ "email": email, "code": code })),
            )
            .await;
        assert_eq!(session.0, StatusCode::CREATED, "{}", session.1);
        session.1
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
