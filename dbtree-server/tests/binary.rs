//! The real `dbtree-server` binary with nothing configured: it serves the API and `/docs` with
//! the tree ripe, keeps its data directory 0700 and its database and key files 0600 (even under
//! umask 000), and a new user signs in with the code from its log.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

struct Server(Child);

fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn zero_configuration_start_and_sign_in_from_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // umask 000: every mode checked below is the one the server asked for, not the umask's
    let mut child = Command::new("sh")
        .args([
            "-c",
            "umask 000 && exec \"$0\"",
            env!("CARGO_BIN_EXE_dbtree-server"),
        ])
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DBTREE_LISTEN", format!("127.0.0.1:{port}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let _server = Server(child);
    let (lines, log) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let started = Instant::now();
    loop {
        if let Ok(r) = client.get(format!("{base}/readyz")).send().await
            && r.status().is_success()
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the server did not become ready"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        dir.path().join("dbtree-data/dbtree.sqlite").exists(),
        "the embedded default stores in ./dbtree-data"
    );
    let data = dir.path().join("dbtree-data");
    // nobody else may list or change it; running as root, the local engine driver may let
    // engine accounts traverse it (o+x) to reach their own directories
    assert_eq!(
        mode(&data) & 0o776,
        0o700,
        "the data directory is its owner's only: {:o}",
        mode(&data)
    );
    for file in [
        "dbtree.sqlite",
        "dbtree.sqlite-wal",
        "dbtree.sqlite-shm",
        "secret.key",
    ] {
        assert_eq!(mode(&data.join(file)), 0o600, "{file}");
    }
    let docs = client.get(format!("{base}/docs")).send().await.unwrap();
    assert!(docs.status().is_success());
    let tree: serde_json::Value = client
        .get(format!("{base}/api/v1/tree"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        tree["lemons"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|l| l["state"] == "ripe")
            .count(),
        10
    );

    let sent = client
        .post(format!("{base}/api/v1/auth/code"))
        .json(&serde_json::json!({ "email": "new@example.org" }))
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status().as_u16(), 202);
    let needle = "sign-in code for new@example.org: ";
    let code = loop {
        let line = log
            .recv_timeout(Duration::from_secs(10))
            .expect("the code line in the log");
        if let Some(at) = line.find(needle) {
            break line[at + needle.len()..]
                .chars()
                .take(6)
                .collect::<String>();
        }
    };
    assert!(
        code.len() == 6 && code.chars().all(|c| c.is_ascii_digit()),
        "{code}"
    );
    let session = client
        .post(format!("{base}/api/v1/auth/session"))
        .json(&serde_json::json!({ "email": "new@example.org", "code": code }))
        .send()
        .await
        .unwrap();
    assert_eq!(session.status().as_u16(), 201);
    let session: serde_json::Value = session.json().await.unwrap();
    assert_eq!(session["profile"]["balance"], 15);
    let token = session["token"].as_str().unwrap();
    // the token never appears in the log (only the code, by design of the console mailer)
    while let Ok(line) = log.recv_timeout(Duration::from_millis(300)) {
        assert!(!line.contains(token), "the token was logged: {line}");
    }
}
