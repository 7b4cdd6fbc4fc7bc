//! `cargo xtask`: the set-up around the test suite, so that one command works on a bare Debian
//! machine with only Rust.
//!
//! - `cargo xtask test [ARGS…]` installs the Debian packages the tests need when they are
//!   missing (as root, with apt), or says exactly which to install; builds FerretDB with
//!   `.ci/ferretdb` when no build of it is there and Go is installed (the MongoDB tests need it);
//!   then runs `cargo test --workspace --locked ARGS…`; then waits for every throwaway server the
//!   tests started to be stopped and removed, and fails if any process of the tests is left
//!   behind.
//! - `cargo xtask install [--ci]` does the same set-up (with `--ci`, also what the rest of
//!   `.ci/run` needs) and prints the versions found.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
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
fn missing(ci: bool) -> Vec<String> {
    let mut packages: Vec<String> = Program::ALL
        .into_iter()
        .filter(|program| program.locate().is_err())
        .map(|program| program.debian_package().to_owned())
        .collect();
    packages.extend(plperl_missing());
    if ci {
        packages.extend(
            CI_ONLY
                .into_iter()
                .filter(|(program, _)| !on_path(program))
                .map(|(_, package)| package.to_owned()),
        );
    }
    packages
}

/// PL/Perl for the PostgreSQL server found (`postgresql-plperl-<major>`), if it is missing: the
/// hostile-tenant suite proves that an installed untrusted language (`plperlu`) is refused to a
/// tenant. Only for Debian's layout (`/usr/lib/postgresql/<major>/bin`); nothing to say before
/// PostgreSQL itself is installed.
fn plperl_missing() -> Option<String> {
    let bin = Program::PostgresServer.locate().ok()?;
    let major: u32 = bin.parent()?.file_name()?.to_str()?.parse().ok()?;
    let control = format!("/usr/share/postgresql/{major}/extension/plperlu.control");
    (!Path::new(&control).exists()).then(|| format!("postgresql-plperl-{major}"))
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// Installs what is missing with apt when running as root; otherwise says what to install.
/// Twice at most: PL/Perl's package is known only once PostgreSQL is installed.
fn ensure_installed(ci: bool) -> Result<(), String> {
    for _ in 0..2 {
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
    }
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

/// `.ci/ferretdb`, next to this crate in the workspace.
fn ferretdb_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.ci/ferretdb")
}

/// FerretDB for the MongoDB tests (this machine has no `mongod`): `.ci/ferretdb` reuses its build
/// or makes one (Go needed; a few minutes the first time). Without Go and without a build, the
/// MongoDB tests fail at once naming the script: said here, not fatal, so that the rest of the
/// suite still runs. `DBTREE_FERRETDB` names a binary instead.
fn ensure_ferretdb() -> Result<(), String> {
    if std::env::var_os("DBTREE_FERRETDB").is_some() {
        return Ok(());
    }
    let script = ferretdb_script();
    let started = Instant::now();
    let status = Command::new(&script)
        .stdout(Stdio::null())
        .status()
        .map_err(|e| format!("running {}: {e}", script.display()))?;
    if status.success() {
        println!(
            "xtask: FerretDB ready for the MongoDB tests ({} s)",
            started.elapsed().as_secs()
        );
        Ok(())
    } else if on_path("go") {
        Err(format!("{} failed: {status}", script.display()))
    } else {
        eprintln!(
            "xtask: FerretDB is not built and Go is not installed: the MongoDB tests will fail \
             (install Go 1.22 or later and run .ci/ferretdb)"
        );
        Ok(())
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
    ensure_ferretdb()?;
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
    ensure_ferretdb()?;
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
