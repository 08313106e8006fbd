//! End-to-end harness: runs the real `portico up` binary in namespaces of its own and
//! drives it with real kubectl and curl, cleaning everything up on drop.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub mod lan;
pub mod traffic;

pub mod node;
pub mod pods;

/// The `portico` binary under test: `PORTICO_E2E_BIN` if set (e.g. a release
/// build), else the one Cargo built for this test.
pub fn portico_exe() -> String {
    std::env::var("PORTICO_E2E_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_portico").to_string())
}

/// A unique short name for namespaces of one test.
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}{}{}", std::process::id() % 1000, nanos % 100_000)
}

/// Polls `f` until it returns Some or the deadline passes.
pub fn eventually<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The kubectl binary of a given minor version (None = the default one).
pub fn kubectl_bin(minor: Option<u32>) -> PathBuf {
    let default = PathBuf::from("kubectl");
    match minor {
        None => default,
        Some(m) => {
            let path = which("kubectl").expect("kubectl on PATH");
            let real = std::fs::canonicalize(path).unwrap();
            real.parent().unwrap().join(format!("kubectl.1.{m}"))
        }
    }
}

fn which(cmd: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(cmd))
            .find(|p| p.is_file())
    })
}

/// How the cluster under test is laid out.
pub enum Layout {
    /// `portico up` inside a fresh namespace (the node), with a client namespace
    /// joined to it by a veth.
    Single,
    /// `portico up --nodes N`.
    Nodes(u8),
}

/// A running `portico up`.
pub struct Cluster {
    child: Option<Child>,
    /// Data dir (kubeconfig, logs).
    pub dir: tempfile::TempDir,
    /// Namespace kubectl must run in (None: the test's own).
    pub kubectl_ns: Option<String>,
    /// Namespace of the outside client.
    pub client_ns: String,
    /// Node IPs, in node order.
    pub node_ips: Vec<String>,
    /// Namespaces this harness created itself (single-node layout).
    own_namespaces: Vec<String>,
    /// Cluster name (multi-node layout).
    pub name: String,
}

impl Cluster {
    /// Starts a cluster and waits until every node is Ready.
    pub fn up(layout: Layout) -> Cluster {
        Cluster::up_with_args(layout, &[])
    }

    /// Starts a cluster with extra `portico up` flags (e.g. `--dns-upstream`)
    /// and waits until every node is Ready.
    pub fn up_with_args(layout: Layout, extra: &[&str]) -> Cluster {
        assert!(
            nix_is_root(),
            "end-to-end tests need root (network namespaces)"
        );
        let dir = tempfile::tempdir().unwrap();
        let exe = portico_exe();
        let exe = exe.as_str();
        let log = std::fs::File::create(dir.path().join("up.log")).unwrap();
        let name = unique("pe");
        let (child, kubectl_ns, client_ns, node_ips, own) = match layout {
            Layout::Single => {
                let node = format!("{name}-n");
                let client = format!("{name}-c");
                ip(&["netns", "add", &node]);
                ip(&["netns", "add", &client]);
                ip(&["-n", &node, "link", "set", "lo", "up"]);
                ip(&["-n", &client, "link", "set", "lo", "up"]);
                ip(&[
                    "-n", &node, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0",
                    "netns", &client,
                ]);
                ip(&["-n", &node, "addr", "add", "192.168.78.2/24", "dev", "eth0"]);
                ip(&[
                    "-n",
                    &client,
                    "addr",
                    "add",
                    "192.168.78.100/24",
                    "dev",
                    "eth0",
                ]);
                ip(&["-n", &node, "link", "set", "eth0", "up"]);
                ip(&["-n", &client, "link", "set", "eth0", "up"]);
                ip(&[
                    "-n",
                    &node,
                    "route",
                    "add",
                    "default",
                    "via",
                    "192.168.78.100",
                ]);
                let child = Command::new("ip")
                    .args([
                        "netns",
                        "exec",
                        &node,
                        exe,
                        "up",
                        "--listen",
                        "127.0.0.1:0",
                        "--node-name",
                        &node,
                        "--data-dir",
                    ])
                    .arg(dir.path())
                    .args(extra)
                    .stdin(Stdio::null())
                    .stdout(log.try_clone().unwrap())
                    .stderr(log)
                    .spawn()
                    .unwrap();
                (
                    child,
                    Some(node.clone()),
                    client.clone(),
                    vec!["192.168.78.2".to_string()],
                    vec![node, client],
                )
            }
            Layout::Nodes(n) => {
                let child = Command::new(exe)
                    .args([
                        "up",
                        "--nodes",
                        &n.to_string(),
                        "--name",
                        &name,
                        "--listen",
                        "127.0.0.1:0",
                        "--data-dir",
                    ])
                    .arg(dir.path())
                    .args(extra)
                    .stdin(Stdio::null())
                    .stdout(log.try_clone().unwrap())
                    .stderr(log)
                    .spawn()
                    .unwrap();
                let ips = (1..=n).map(|i| format!("192.168.77.{}", 10 + i)).collect();
                (child, None, format!("{name}-client"), ips, Vec::new())
            }
        };
        let mut cluster = Cluster {
            child: Some(child),
            dir,
            kubectl_ns,
            client_ns,
            node_ips,
            own_namespaces: own,
            name,
        };
        let kubeconfig = cluster.kubeconfig();
        eventually("kubeconfig", Duration::from_secs(30), || {
            cluster.assert_running();
            kubeconfig.exists().then_some(())
        });
        let want = cluster.node_ips.len();
        eventually("nodes Ready", Duration::from_secs(60), || {
            cluster.assert_running();
            let out = cluster.kubectl(&[
                "get",
                "nodes",
                "-o",
                r#"jsonpath={range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}"#,
            ]);
            let ready = out.lines().filter(|l| *l == "True").count();
            (ready == want).then_some(())
        });
        cluster
    }

    fn assert_running(&mut self) {
        if let Some(child) = self.child.as_mut() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("portico up exited early ({status}):\n{}", self.log());
            }
        }
    }

    /// The log of `portico up` (and, multi-node, of the agents).
    pub fn log(&self) -> String {
        let mut s = std::fs::read_to_string(self.dir.path().join("up.log")).unwrap_or_default();
        if let Ok(rd) = std::fs::read_dir(self.dir.path().join("logs")) {
            for e in rd.flatten() {
                s.push_str(&format!("\n--- {}\n", e.path().display()));
                s.push_str(&std::fs::read_to_string(e.path()).unwrap_or_default());
            }
        }
        s
    }

    /// Path of the admin kubeconfig.
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig.yaml")
    }

    /// Runs kubectl (default version) and returns its Output.
    pub fn kubectl_output(&self, minor: Option<u32>, args: &[&str], stdin: Option<&str>) -> Output {
        let bin = kubectl_bin(minor);
        let mut cmd = match &self.kubectl_ns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(&bin);
                c
            }
            None => Command::new(&bin),
        };
        cmd.arg("--kubeconfig").arg(self.kubeconfig()).args(args);
        cmd.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        if let Some(input) = stdin {
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(input.as_bytes())
                .unwrap();
        }
        child.wait_with_output().unwrap()
    }

    /// Runs kubectl and returns stdout, panicking with stderr on failure.
    pub fn kubectl(&self, args: &[&str]) -> String {
        let out = self.kubectl_output(None, args, None);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    /// `kubectl apply -f path`.
    pub fn apply_file(&self, path: &Path) -> String {
        self.kubectl(&["apply", "-f", path.to_str().unwrap()])
    }

    /// curl from the outside client namespace; returns the body or None on failure.
    pub fn client_curl(&self, url: &str) -> Option<String> {
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.client_ns,
                "curl",
                "-s",
                "--max-time",
                "3",
                url,
            ])
            .output()
            .unwrap();
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).to_string())
    }

    /// Stops `portico up` with SIGTERM and waits; returns its exit status.
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(st)) = child.try_wait() {
                return Some(st);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return child.wait().ok();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
        for ns in self.own_namespaces.drain(..) {
            let _ = Command::new("ip").args(["netns", "del", &ns]).output();
        }
        if std::thread::panicking() {
            eprintln!("---- portico log ----\n{}", self.log());
        }
    }
}

fn nix_is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Path of a file in the repository's examples/.
pub fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(name)
}
