//! `cargo xtask`: the set-up around the test suite, so that one command works on a bare Debian
//! machine with only Rust.
//!
//! - `cargo xtask test [ARGS…]` installs the Debian packages the tests need when they are
//!   missing (as root, with apt), or says exactly which to install; then runs
//!   `cargo test --workspace --locked ARGS…`; then waits for every throwaway server the tests
//!   started to be stopped and removed, and fails if any process of the tests is left behind.
//! - `cargo xtask install [--ci]` installs what the tests need (with `--ci`, also what the rest of
//!   `.ci/run` needs) and prints the versions found.

use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use dbtree_testkit::Program;
use nix::errno::Errno;
use nix::sys::prctl::set_child_subreaper;
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{Pid, geteuid};

/// A program `.ci/run` needs beyond the test suite's, with its Debian package.
const CI_ONLY: [(&str, &str); 1] = [("chromium", "chromium")];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("test") => test(&args[1..]),
        Some("install") if args.len() == 1 => install(false),
        Some("install") if args.len() == 2 && args[1] == "--ci" => install(true),
        _ => Err(
            "usage: cargo xtask test [cargo test arguments…] | cargo xtask install [--ci]"
                .to_owned(),
        ),
    };
    match result {
        Ok(code) => code,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The Debian packages behind the programs that are not installed.
fn missing(ci: bool) -> Vec<&'static str> {
    let mut packages: Vec<&'static str> = Program::ALL
        .into_iter()
        .filter(|program| program.locate().is_err())
        .map(Program::debian_package)
        .collect();
    if ci {
        packages.extend(
            CI_ONLY
                .into_iter()
                .filter(|(program, _)| !on_path(program))
                .map(|(_, package)| package),
        );
    }
    packages
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// Installs what is missing with apt when running as root; otherwise says what to install.
fn ensure_installed(ci: bool) -> Result<(), String> {
    let packages = missing(ci);
    if packages.is_empty() {
        return Ok(());
    }
    let list = packages.join(" ");
    if !geteuid().is_root() || !on_path("apt-get") {
        return Err(format!(
            "the tests need these Debian packages, which are not installed: {list}\n\
             install them (sudo apt-get install {list}) and run this again"
        ));
    }
    println!("xtask: installing {list} with apt-get");
    let started = Instant::now();
    run(Command::new("apt-get").args(["update", "-qq"]))?;
    run(Command::new("apt-get")
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(&packages)
        .env("DEBIAN_FRONTEND", "noninteractive"))?;
    println!(
        "xtask: installed {list} in {} s",
        started.elapsed().as_secs()
    );
    let still = missing(ci);
    if still.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "still missing after apt-get install: {}",
            still.join(" ")
        ))
    }
}

fn run(command: &mut Command) -> Result<(), String> {
    let status = command
        .status()
        .map_err(|e| format!("running {command:?}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{command:?} failed: {status}"))
    }
}

fn install(ci: bool) -> Result<ExitCode, String> {
    ensure_installed(ci)?;
    let postgres = Program::PostgresServer
        .locate()
        .map_err(|e| e.to_string())?
        .join("postgres");
    let mut versions = vec![
        version(postgres.to_string_lossy().as_ref()),
        version("redis-server"),
    ];
    if ci {
        versions.extend(CI_ONLY.iter().map(|(program, _)| version(program)));
    }
    for line in versions {
        println!("    {line}");
    }
    Ok(ExitCode::SUCCESS)
}

/// What `program --version` prints first.
fn version(program: &str) -> String {
    Command::new(program)
        .arg("--version")
        .output()
        .ok()
        .and_then(|out| {
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .next()
                .map(str::to_owned)
        })
        .unwrap_or_else(|| format!("{program}: no version"))
}

fn test(cargo_args: &[String]) -> Result<ExitCode, String> {
    ensure_installed(false)?;
    // Processes the tests leave behind (the keepers of throwaway servers, which outlive their
    // test binary by the time it takes to stop a server) become our children, so that we can
    // wait for them and see what is left.
    set_child_subreaper(true).map_err(|e| format!("becoming a subreaper: {e}"))?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let child = Command::new(cargo)
        .args(["test", "--workspace", "--locked"])
        .args(cargo_args)
        .spawn()
        .map_err(|e| format!("starting cargo test: {e}"))?;
    let cargo_pid = Pid::from_raw(i32::try_from(child.id()).map_err(|e| e.to_string())?);
    drop(child); // reaped below, with the orphans
    let mut cargo_status = None;
    let mut orphans = 0u32;
    let mut deadline = None;
    loop {
        let flags = cargo_status.map(|_| WaitPidFlag::WNOHANG);
        match waitpid(None::<Pid>, flags) {
            Ok(WaitStatus::Exited(pid, code)) if pid == cargo_pid => cargo_status = Some(code),
            Ok(WaitStatus::Signaled(pid, signal, _)) if pid == cargo_pid => {
                cargo_status = Some(128 + signal as i32);
            }
            Ok(WaitStatus::StillAlive) => {
                let limit =
                    *deadline.get_or_insert_with(|| Instant::now() + Duration::from_secs(30));
                if Instant::now() >= limit {
                    let left = stray_children();
                    for (pid, _) in &left {
                        let _ = kill(*pid, Signal::SIGKILL);
                    }
                    eprintln!(
                        "xtask: processes of the tests still running 30 s after the tests ended (killed now):"
                    );
                    for (pid, command) in &left {
                        eprintln!("    {pid} {command}");
                    }
                    return Ok(ExitCode::FAILURE);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            Ok(_) => orphans += 1,
            Err(Errno::ECHILD) => break,
            Err(Errno::EINTR) => {}
            Err(e) => return Err(format!("waiting for the tests: {e}")),
        }
    }
    println!(
        "xtask: every process the tests started has ended ({orphans} reaped after their test binary)"
    );
    let code = cargo_status.unwrap_or(1);
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
}

/// Our remaining children and their command lines.
fn stray_children() -> Vec<(Pid, String)> {
    let me = std::process::id().to_string();
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let pid: i32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            let ppid = stat.rsplit(')').next()?.split_whitespace().nth(1)?;
            (ppid == me).then(|| {
                let command = std::fs::read(entry.path().join("cmdline"))
                    .map(|raw| String::from_utf8_lossy(&raw).replace('\0', " "))
                    .unwrap_or_default();
                (Pid::from_raw(pid), command)
            })
        })
        .collect()
}
