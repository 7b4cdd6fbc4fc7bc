//! Engine processes: spawning them as the run-as user in a process group of their own (so they
//! outlive the driver and a terminal's Ctrl-C), signalling them, and telling whether they live.

use std::ffi::OsString;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::{Pid, Uid};
use tokio::process::{Child, Command};

use super::account::RunAs;
use super::disk::Layout;

/// The only environment variable engines get: the server's environment (which may hold
/// credentials of its own) is not passed on.
const ENGINE_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// A command for an engine tool or server: run as `run_as`, in `cwd`, with an empty
/// environment and no standard input.
pub(crate) fn command(program: &Path, args: &[OsString], cwd: &Path, run_as: &RunAs) -> Command {
    let mut command = Command::new(program);
    command
        .args(args)
        .current_dir(cwd)
        .env_clear()
        .env("PATH", ENGINE_PATH)
        .stdin(Stdio::null());
    run_as.apply(&mut command);
    command
}

/// [`command`] in the instance's engine directory, its output appended to the instance's log,
/// in a process group of its own (so a stop signal reaches every process it starts).
pub(crate) fn logged(
    program: &Path,
    args: &[OsString],
    layout: &Layout,
    run_as: &RunAs,
) -> std::io::Result<Command> {
    let log = layout.open_log()?;
    let err = log.try_clone()?;
    let mut command = command(program, args, &layout.engine_dir(), run_as);
    command
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(err))
        .process_group(0);
    Ok(command)
}

/// Starts an engine server, handing it `stdin` (then end of file) if any. Its output goes to
/// the instance's log; it is not killed when the driver (or its handle) goes away.
pub(crate) async fn spawn(
    program: &Path,
    args: &[OsString],
    stdin: Option<Vec<u8>>,
    layout: &Layout,
    run_as: &RunAs,
) -> std::io::Result<Child> {
    let mut command = logged(program, args, layout, run_as)?;
    command
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .kill_on_drop(false);
    let mut child = command.spawn()?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        use tokio::io::AsyncWriteExt;
        let written = pipe.write_all(&input).await;
        drop(pipe);
        if let Err(e) = written {
            if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) {
                kill_now(pid);
            }
            return Err(e);
        }
    }
    Ok(child)
}

/// Whether `pid` is a live process (a zombie is dead).
pub(crate) fn is_running(pid: i32) -> bool {
    match kill(Pid::from_raw(pid), None) {
        Ok(()) | Err(Errno::EPERM) => !is_zombie(pid),
        Err(_) => false,
    }
}

fn is_zombie(pid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // `pid (comm) state …`: the command may contain anything, the state follows the last ')'.
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.trim_start().chars().next())
        .is_some_and(|state| matches!(state, 'Z' | 'X'))
}

/// Whether `pid`'s command line names `program` (on a system without `/proc`: assumed yes).
pub(crate) fn runs_program(pid: i32, program: &str) -> bool {
    match std::fs::read(format!("/proc/{pid}/cmdline")) {
        Ok(cmdline) => String::from_utf8_lossy(&cmdline).contains(program),
        Err(_) => !Path::new("/proc/self").exists(),
    }
}

/// Stops `pid` with `signal`, waits up to `grace` for it to exit, then kills its whole process
/// group. `Err` (with the reason) only if it outlived that too.
pub(crate) async fn terminate(pid: i32, signal: Signal, grace: Duration) -> Result<(), String> {
    match kill(Pid::from_raw(pid), signal) {
        Ok(()) => {}
        Err(Errno::ESRCH) => return Ok(()),
        Err(e) => return Err(format!("could not signal process {pid}: {e}")),
    }
    if wait_gone(pid, grace).await {
        return Ok(());
    }
    let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
    let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    if wait_gone(pid, Duration::from_secs(5)).await {
        Ok(())
    } else {
        Err(format!("process {pid} survived SIGKILL"))
    }
}

/// Kills what is left of a process group (the children of an engine that died).
pub(crate) fn kill_group(pid: i32) {
    let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
}

async fn wait_gone(pid: i32, limit: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if !is_running(pid) {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every process on this machine with its owner and working directory (empty on a system
/// without `/proc`). A working directory that was removed ends in ` (deleted)`.
fn processes() -> Vec<(i32, u32, Option<PathBuf>)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let pid: i32 = entry.file_name().to_str()?.parse().ok()?;
            let uid = std::fs::metadata(entry.path()).ok()?.uid();
            let cwd = std::fs::read_link(entry.path().join("cwd")).ok();
            Some((pid, uid, cwd))
        })
        .filter(|(pid, _, _)| *pid != std::process::id() as i32)
        .collect()
}

/// The live processes whose working directory is inside `dir` (also when `dir` was removed
/// meanwhile), with the first component of that directory below `dir`.
pub(crate) fn working_in(dir: &Path) -> Vec<(i32, String)> {
    processes()
        .into_iter()
        .filter_map(|(pid, _, cwd)| {
            let cwd = cwd?;
            let text = cwd.to_str()?;
            let text = text.strip_suffix(" (deleted)").unwrap_or(text);
            let below = Path::new(text).strip_prefix(dir).ok()?;
            let first = below.components().next()?.as_os_str().to_str()?.to_owned();
            is_running(pid).then_some((pid, first))
        })
        .collect()
}

/// Kills (SIGKILL) every process of `uid`, waiting up to five seconds for them to go. Never
/// root's or the driver's own user's.
pub(crate) async fn kill_user(uid: Uid) {
    if uid.is_root() || uid == nix::unistd::geteuid() {
        return;
    }
    for _ in 0..50 {
        let pids: Vec<i32> = processes()
            .into_iter()
            .filter(|(pid, owner, _)| *owner == uid.as_raw() && is_running(*pid))
            .map(|(pid, _, _)| pid)
            .collect();
        if pids.is_empty() {
            return;
        }
        for pid in pids {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Kills (SIGKILL) a process and its process group.
pub(crate) fn kill_now(pid: i32) {
    let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
    let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
}

/// How a process ended, in words: "exited with status 1", "was killed by signal 9 (SIGKILL)".
pub(crate) fn describe_exit(status: ExitStatus) -> String {
    if let Some(code) = status.code() {
        return format!("exited with status {code}");
    }
    match status.signal() {
        Some(sig) => match Signal::try_from(sig) {
            Ok(name) => format!("was killed by signal {sig} ({})", name.as_str()),
            Err(_) => format!("was killed by signal {sig}"),
        },
        None => "exited".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exits_in_words() {
        assert_eq!(
            describe_exit(ExitStatus::from_raw(1 << 8)),
            "exited with status 1"
        );
        assert_eq!(
            describe_exit(ExitStatus::from_raw(9)),
            "was killed by signal 9 (SIGKILL)"
        );
    }

    #[test]
    fn this_process_runs_and_a_free_pid_does_not() {
        assert!(is_running(std::process::id() as i32));
        assert!(!is_running(i32::MAX - 1));
    }
}
