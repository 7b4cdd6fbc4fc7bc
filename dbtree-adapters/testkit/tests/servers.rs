//! The throwaway servers: they serve, and they leave nothing behind when they stop or when the
//! process that started them is killed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use dbtree_testkit::{Durability, PostgresServer, RedisServer};

fn redis_ping(port: u16) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    stream.write_all(b"PING\r\n").unwrap();
    let mut reply = [0u8; 7];
    stream.read_exact(&mut reply).unwrap();
    String::from_utf8_lossy(&reply).into_owned()
}

fn refused(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_err()
}

/// Waits up to 10 s for `done`.
fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "{what} within 10 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn postgres_serves_then_stop_removes_it() {
    let server = PostgresServer::start(Durability::Fast).unwrap();
    let port = server.port();
    let dir = server.dir().to_path_buf();
    assert!(server.url().ends_with(&format!(":{port}/postgres")));
    assert!(!refused(port), "postgres listens on {port}");
    assert!(dir.join("data/PG_VERSION").is_file());
    server.stop().unwrap();
    assert!(refused(port), "the port is free after stop");
    assert!(!dir.exists(), "{} is removed", dir.display());
}

#[test]
fn redis_serves_stops_and_starts_again_on_its_port() {
    let mut server = RedisServer::start().unwrap();
    let port = server.port();
    assert_eq!(redis_ping(port), "+PONG\r\n");
    server.stop();
    assert!(refused(port));
    server.start_again().unwrap();
    assert_eq!(server.port(), port);
    assert_eq!(redis_ping(port), "+PONG\r\n");
}

/// Run only as the child of `a_killed_test_process_leaves_nothing_behind`: starts both servers,
/// says where they are, and waits to be killed.
#[test]
#[ignore = "the child half of a_killed_test_process_leaves_nothing_behind"]
fn child_starts_servers_and_waits() {
    if std::env::var_os("DBTREE_TESTKIT_CHILD").is_none() {
        return;
    }
    let postgres = PostgresServer::start(Durability::Fast).unwrap();
    let redis = RedisServer::start().unwrap();
    println!(
        "SERVERS {} {} {}",
        postgres.port(),
        postgres.dir().display(),
        redis.port()
    );
    std::io::stdout().flush().unwrap();
    std::mem::forget((postgres, redis)); // no destructor runs, as in a static
    std::thread::sleep(Duration::from_secs(600));
}

#[test]
fn a_killed_test_process_leaves_nothing_behind() {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "child_starts_servers_and_waits",
            "--nocapture",
        ])
        .env("DBTREE_TESTKIT_CHILD", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let line = BufReader::new(stdout)
        .lines()
        .map(Result::unwrap)
        .find(|l| l.starts_with("SERVERS "))
        .expect("the child reports its servers");
    let fields: Vec<&str> = line.split_whitespace().collect();
    let pg_port: u16 = fields[1].parse().unwrap();
    let pg_dir = PathBuf::from(fields[2]);
    let redis_port: u16 = fields[3].parse().unwrap();
    assert!(!refused(pg_port) && !refused(redis_port));

    child.kill().unwrap(); // SIGKILL: no destructor, no exit handler runs
    child.wait().unwrap();

    eventually("postgres stops", || refused(pg_port));
    eventually("redis stops", || refused(redis_port));
    eventually("postgres's directory is removed", || !pg_dir.exists());
    eventually("no process of either server is left", || {
        servers_running(&pg_dir, redis_port).is_empty()
    });
}

/// Live processes whose command line names the directory or the Redis port.
fn servers_running(pg_dir: &Path, redis_port: u16) -> Vec<String> {
    let dir = pg_dir.to_string_lossy().into_owned();
    let port = format!("--port\0{redis_port}\0");
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|entry| {
            entry.file_name().to_str()?.parse::<u32>().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            let state = stat
                .rsplit(')')
                .next()?
                .split_whitespace()
                .next()?
                .to_owned();
            let cmdline =
                String::from_utf8_lossy(&std::fs::read(entry.path().join("cmdline")).ok()?)
                    .into_owned();
            (state != "Z" && (cmdline.contains(&dir) || cmdline.contains(&port)))
                .then(|| cmdline.replace('\0', " "))
        })
        .collect()
}
