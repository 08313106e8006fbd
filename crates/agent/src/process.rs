//! Container processes: how one is started inside its pod's namespaces, and
//! how processes are signalled and found again.
//!
//! A container process is `<agent exe> agnhost portico-pod-init <netns>
//! <pod dir> <hostname> <workdir> <argv...>` (see `init`): one spawn, whose
//! init enters the pod's namespaces with system calls and `exec`s the
//! program, so the pid we hold is the container's own. This needs no
//! `unsafe` `pre_exec` in the multi-threaded agent.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use tokio::process::Command;

use crate::error::AgentError;

/// The programs the runtime starts containers with.
#[derive(Debug, Clone)]
pub struct Tools {
    /// The agent's own agnhost binary, which also serves the container init.
    pub init: PathBuf,
}

impl Tools {
    pub fn find(agnhost_exe: &Path) -> Result<Self, AgentError> {
        if !agnhost_exe.is_file() {
            return Err(AgentError::Other(format!(
                "the container init {} does not exist",
                agnhost_exe.display()
            )));
        }
        Ok(Self {
            init: agnhost_exe.to_path_buf(),
        })
    }
}

/// The host's standard program directories (the container PATH default too).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Finds a program on the host like a shell would with [`DEFAULT_PATH`].
pub fn which(program: &str) -> Option<PathBuf> {
    if program.contains('/') {
        let p = PathBuf::from(program);
        return p.is_file().then_some(p);
    }
    DEFAULT_PATH
        .split(':')
        .map(|d| Path::new(d).join(program))
        .find(|p| p.is_file())
}

/// What to start inside a pod.
#[derive(Debug, Clone)]
pub struct Exec<'a> {
    pub netns: &'a Path,
    /// Holds `resolv.conf`, `hosts`, `hostname`.
    pub pod_dir: &'a Path,
    pub hostname: &'a str,
    pub workdir: Option<&'a str>,
    pub argv: &'a [String],
    pub env: &'a [(String, String)],
}

/// The command that runs `e` inside the pod's namespaces, in its own process
/// group (so the whole container can be signalled at once).
pub fn command(tools: &Tools, e: &Exec<'_>) -> Command {
    let plan = crate::init::InitPlan {
        netns: e.netns.to_path_buf(),
        pod_dir: e.pod_dir.to_path_buf(),
        hostname: e.hostname.to_string(),
        workdir: e.workdir.filter(|w| !w.is_empty()).map(String::from),
        argv: e.argv.to_vec(),
    };
    let mut cmd = Command::new(&tools.init);
    cmd.arg("agnhost")
        .arg(crate::init::SUBCOMMAND)
        .args(plan.to_args())
        .env_clear()
        .envs(e.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .process_group(0);
    cmd
}

/// Opens (appending) a container log file and returns stdout/stderr handles.
pub fn log_stdio(path: &Path) -> Result<(Stdio, Stdio), AgentError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| AgentError::io(format!("creating {}", dir.display()), e))?;
    }
    let f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| AgentError::io(format!("opening {}", path.display()), e))?;
    let g = f
        .try_clone()
        .map_err(|e| AgentError::io("cloning log fd", e))?;
    Ok((Stdio::from(f), Stdio::from(g)))
}

/// Signals a container's process group (pid = pgid, see [`command`]).
pub fn signal_group(pid: u32, sig: Signal) {
    let Ok(raw) = i32::try_from(pid) else { return };
    if raw > 0 {
        let _ = nix::sys::signal::killpg(Pid::from_raw(raw), sig);
    }
}

/// Pids of all processes whose network namespace is the one at `netns_path`:
/// whatever a pod left behind, even processes that left its process group.
pub fn pids_in_netns(netns_path: &Path) -> Vec<i32> {
    use std::os::unix::fs::MetadataExt as _;
    let Ok(meta) = std::fs::metadata(netns_path) else {
        return Vec::new();
    };
    let want = format!("net:[{}]", meta.ino());
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()))
        .filter(|pid| {
            std::fs::read_link(format!("/proc/{pid}/ns/net"))
                .map(|l| l.to_string_lossy() == want)
                .unwrap_or(false)
        })
        .collect()
}

/// SIGKILLs every process in the pod's netns (the final sweep of a teardown).
pub fn kill_netns_processes(netns_path: &Path) {
    for pid in pids_in_netns(netns_path) {
        let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
}

/// A process's start time (clock ticks since boot, field 22 of
/// `/proc/<pid>/stat`): with the pid, it identifies a process across pid reuse.
pub fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces; fields resume after ')'.
    let rest = stat.rsplit_once(')')?.1;
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Records a container's process group so a later agent can stop it even if
/// its network namespace is no longer reachable (agent killed, mount
/// namespace gone).
pub fn record_pid(dir: &Path, container: &str, pid: u32) {
    let Ok(raw) = i32::try_from(pid) else { return };
    let Some(st) = start_time(raw) else { return };
    let _ = std::fs::create_dir_all(dir);
    let _ = std::fs::write(dir.join(container), format!("{pid} {st}\n"));
}

/// SIGKILLs the process groups recorded in `dir` whose leader is still the
/// same process (same pid and start time).
pub fn kill_recorded(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.filter_map(Result::ok) {
        let Ok(text) = std::fs::read_to_string(e.path()) else {
            continue;
        };
        let mut it = text.split_whitespace();
        let (Some(pid), Some(st)) = (
            it.next().and_then(|p| p.parse::<i32>().ok()),
            it.next().and_then(|s| s.parse::<u64>().ok()),
        ) else {
            continue;
        };
        if pid > 0 && start_time(pid) == Some(st) {
            let _ = nix::sys::signal::killpg(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt as _;

    #[test]
    fn recorded_processes_are_killed_only_if_still_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .process_group(0)
            .spawn()
            .unwrap();
        record_pid(dir.path(), "c", child.id());
        // A stale record (same pid, other start time) must be ignored.
        std::fs::write(
            dir.path().join("stale"),
            format!("{} 1\n", std::process::id()),
        )
        .unwrap();
        kill_recorded(dir.path());
        let status = child.wait().unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(9)
        );
    }
}
