//! The server under test as a child process: started with its stdout piped,
//! ready when it prints its URL, stopped by pid (SIGTERM, then SIGKILL), and
//! killed on drop so an error path never leaves it running.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::procfs::{self, Memory};
use crate::BenchError;

/// A running server process.
pub struct ServerProcess {
    child: Child,
    pid: u32,
    /// The URL from its "... at https://..." line.
    pub url: String,
    log: PathBuf,
}

impl ServerProcess {
    /// Starts `cmd` (stderr goes to `log`) and waits up to `deadline` for a
    /// stdout line containing `" at https://"`.
    pub async fn start(
        mut cmd: Command,
        log: &Path,
        deadline: Duration,
    ) -> Result<Self, BenchError> {
        let io = |e: std::io::Error| BenchError::Io(format!("{}: {e}", log.display()));
        let stderr = std::fs::File::create(log).map_err(io)?;
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .map_err(|e| BenchError::Server(format!("spawning {cmd:?}: {e}")))?;
        let pid = child
            .id()
            .ok_or_else(|| BenchError::Server("server exited at once".into()))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| BenchError::Server("no stdout pipe".into()))?;
        let mut lines = BufReader::new(stdout).lines();
        let url = tokio::time::timeout(deadline, async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(i) = line.find(" at https://") {
                    return Some(line[i + 4..].trim().to_string());
                }
            }
            None
        })
        .await;
        let url = match url {
            Ok(Some(u)) => u,
            Ok(None) => {
                return Err(BenchError::Server(format!(
                    "server exited before printing its URL; log tail:\n{}",
                    tail(log, 20)
                )))
            }
            Err(_) => {
                return Err(BenchError::Server(format!(
                    "no URL line within {deadline:?}; log tail:\n{}",
                    tail(log, 20)
                )))
            }
        };
        // Keep draining stdout so the server never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Self {
            child,
            pid,
            url,
            log: log.to_path_buf(),
        })
    }

    /// VmRSS / VmHWM now.
    pub fn memory(&self) -> Memory {
        procfs::memory(self.pid).unwrap_or_default()
    }

    /// User + system CPU seconds so far.
    pub fn cpu_seconds(&self) -> f64 {
        procfs::cpu_seconds(self.pid).unwrap_or(0.0)
    }

    /// The last `n` lines of the server's stderr.
    pub fn log_tail(&self, n: usize) -> String {
        tail(&self.log, n)
    }

    /// SIGTERM, up to 5 s to exit, then SIGKILL; always reaps the child.
    pub async fn stop(mut self) {
        if let Ok(pid) = i32::try_from(self.pid) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        if tokio::time::timeout(Duration::from_secs(5), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
