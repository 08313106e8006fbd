//! Starts a release `portico up` in namespaces of its own and removes
//! everything on drop (also when the benchmark fails or panics).
//!
//! Single node: `portico up` runs inside a network namespace this benchmark
//! creates (`portico-b-<random>`, loopback up, `eth0` with 192.168.78.2/24 and
//! a default route, as the e2e harness does), and the client must enter that
//! namespace to reach the API server on its loopback. `--nodes 1`: `portico
//! up` creates its own namespaces (named after `--name`) and listens on the
//! machine's loopback; its node agent is a child `portico agent` process.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::BenchError;

/// How `portico up` is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Control plane and agent in one process, inside our node namespace.
    Single,
    /// `portico up --nodes 1`: the agent is a child process.
    Nodes1,
}

/// A running `portico up`.
pub struct Cluster {
    child: Option<Child>,
    pub dir: tempfile::TempDir,
    /// The namespace we created (single mode); the client enters it.
    pub netns: Option<String>,
    /// Prefix of every namespace that belongs to this run (for the sweep).
    prefix: String,
}

fn ip(args: &[&str]) -> Result<(), BenchError> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| BenchError::Io(format!("running ip: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(BenchError::Io(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// A short unique suffix: pid and clock (namespace and cluster names must be
/// unique on the machine, and `--name` has at most 20 characters).
pub fn unique() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{}{}", std::process::id() % 1000, nanos % 100_000)
}

impl Cluster {
    /// Starts `exe up` and waits (bounded) until its kubeconfig exists.
    pub fn start(exe: &Path, mode: Mode) -> Result<Cluster, BenchError> {
        let dir = tempfile::tempdir().map_err(|e| BenchError::Io(e.to_string()))?;
        let name = format!("portico-b-{}", unique());
        let log = std::fs::File::create(dir.path().join("up.log"))
            .map_err(|e| BenchError::Io(e.to_string()))?;
        let log2 = log.try_clone().map_err(|e| BenchError::Io(e.to_string()))?;
        // The guard exists before anything is created, so a failure below
        // still removes what was made.
        let mut cluster = Cluster {
            child: None,
            dir,
            netns: None,
            prefix: name.clone(),
        };
        let mut cmd = match mode {
            Mode::Single => {
                cluster.netns = Some(name.clone());
                ip(&["netns", "add", &name])?;
                let n = name.as_str();
                ip(&["-n", n, "link", "set", "lo", "up"])?;
                // Both veth ends stay in the node namespace: the node only
                // needs an address and a default route, no outside peer.
                ip(&[
                    "-n", n, "link", "add", "eth0", "type", "veth", "peer", "name", "peer0",
                ])?;
                ip(&["-n", n, "addr", "add", "192.168.78.2/24", "dev", "eth0"])?;
                ip(&["-n", n, "link", "set", "eth0", "up"])?;
                ip(&["-n", n, "link", "set", "peer0", "up"])?;
                ip(&["-n", n, "route", "add", "default", "via", "192.168.78.1"])?;
                let mut c = Command::new("ip");
                c.args(["netns", "exec", n]).arg(exe).args([
                    "up",
                    "--listen",
                    "127.0.0.1:0",
                    "--node-name",
                    n,
                ]);
                c
            }
            Mode::Nodes1 => {
                let mut c = Command::new(exe);
                c.args([
                    "up",
                    "--nodes",
                    "1",
                    "--name",
                    &name,
                    "--listen",
                    "127.0.0.1:0",
                ]);
                c
            }
        };
        cmd.arg("--data-dir")
            .arg(cluster.dir.path())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2);
        cluster.child = Some(
            cmd.spawn()
                .map_err(|e| BenchError::Io(format!("starting {}: {e}", exe.display())))?,
        );
        let kubeconfig = cluster.kubeconfig();
        cluster.wait("the kubeconfig", Duration::from_secs(60), || {
            kubeconfig.exists()
        })?;
        Ok(cluster)
    }

    /// Polls `f` until true; fails early if `portico up` exits.
    pub fn wait(
        &mut self,
        what: &str,
        timeout: Duration,
        mut f: impl FnMut() -> bool,
    ) -> Result<(), BenchError> {
        let deadline = Instant::now() + timeout;
        loop {
            if f() {
                return Ok(());
            }
            if let Some(Ok(Some(st))) = self.child.as_mut().map(Child::try_wait) {
                return Err(BenchError::Server(format!(
                    "portico up exited ({st}) while waiting for {what}:\n{}",
                    self.log_tail()
                )));
            }
            if Instant::now() > deadline {
                return Err(BenchError::Server(format!(
                    "timed out after {timeout:?} waiting for {what}"
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig.yaml")
    }

    /// Pid of the `portico up` process (`ip netns exec` execs it).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The last lines of `portico up`'s log (and of its agents').
    pub fn log_tail(&self) -> String {
        let s = self.log();
        let lines: Vec<&str> = s.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// The log of `portico up` and of its agents.
    pub fn log(&self) -> String {
        let mut s = std::fs::read_to_string(self.dir.path().join("up.log")).unwrap_or_default();
        if let Ok(rd) = std::fs::read_dir(self.dir.path().join("logs")) {
            for e in rd.flatten() {
                s.push_str(&std::fs::read_to_string(e.path()).unwrap_or_default());
            }
        }
        s
    }

    /// Pod sandboxes the agents made with `ip` instead of rtnetlink (their
    /// warnings in the log); 0 when the netlink path works.
    pub fn ip_fallbacks(&self) -> usize {
        self.log().matches("falling back to ip").count()
    }

    /// SIGTERM, then wait (bounded) so `portico up` removes its pods and
    /// namespaces itself; SIGKILL if it does not stop in time.
    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Ok(pid) = i32::try_from(child.id()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        let deadline = Instant::now() + Duration::from_secs(90);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
        // Whatever is left with our prefix (pod namespaces of a killed
        // agent, our node namespace): kill its processes (all started by our
        // `portico up`) and delete it.
        let Ok(rd) = std::fs::read_dir("/run/netns") else {
            return;
        };
        for e in rd.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.starts_with(&self.prefix) && n != self.netns.clone().unwrap_or_default() {
                sweep(&n);
            }
        }
        if let Some(ns) = self.netns.take() {
            sweep(&ns);
        }
    }
}

fn sweep(ns: &str) {
    let me = i32::try_from(std::process::id()).unwrap_or(0);
    for pid in portico_agent::pids_in_netns(&Path::new("/run/netns").join(ns)) {
        if pid == me {
            continue;
        }
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    let _ = Command::new("ip").args(["netns", "del", ns]).output();
}
