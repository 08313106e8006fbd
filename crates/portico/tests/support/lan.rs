//! More plumbing for end-to-end tests (beside `node.rs`): curl and UDP inside
//! namespaces, pod namespaces, extra clients on the cluster's LAN
//! and extra nodes whose agent the test starts and kills itself.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs::OpenOptions;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::Cluster;

/// Runs `args` inside a network namespace: an `ip netns` name, or a path such
/// as `/proc/PID/ns/net` (pod namespaces made inside `portico up`'s own mount
/// namespace, as in the single-node layout, are only reachable that way).
pub fn ns_exec(ns: &str, args: &[&str]) -> Output {
    let mut cmd = if ns.starts_with('/') {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net={ns}")).arg("--");
        c
    } else {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns]);
        c
    };
    cmd.args(args).stdin(Stdio::null()).output().unwrap()
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What one curl run saw.
#[derive(Debug, Clone)]
pub struct Curl {
    /// curl's exit code (0 ok, 7 connection refused, 28 timeout).
    pub code: i32,
    /// Response body.
    pub body: String,
    /// HTTP status (0 when no response).
    pub status: u16,
    /// How long the transfer took (curl's `time_total`).
    pub elapsed: Duration,
}

impl Curl {
    /// The body when curl succeeded.
    pub fn ok(&self) -> Option<String> {
        (self.code == 0).then(|| self.body.clone())
    }
}

/// curl `url` from inside `ns`, giving up after `max_time`.
pub fn curl_in(ns: &str, url: &str, max_time: Duration) -> Curl {
    let secs = format!("{:.3}", max_time.as_secs_f64());
    let out = ns_exec(
        ns,
        &[
            "curl",
            "-s",
            "--max-time",
            &secs,
            "-w",
            "\n%{http_code} %{time_total}",
            url,
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, tail) = match text.rsplit_once('\n') {
        Some((b, t)) => (b.to_string(), t.to_string()),
        None => (String::new(), text.clone()),
    };
    let mut tail = tail.split_whitespace();
    let status = tail.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    // curl's own clock, so the time to start processes does not count.
    let elapsed = Duration::from_secs_f64(tail.next().and_then(|s| s.parse().ok()).unwrap_or(1e6));
    Curl {
        code: out.status.code().unwrap_or(-1),
        body,
        status,
        elapsed,
    }
}

/// Sends one UDP datagram `msg` to `host:port` from inside `ns` and returns the
/// reply, or None when none came within `timeout`.
pub fn udp_in(ns: &str, host: &str, port: u16, msg: &str, timeout: Duration) -> Option<String> {
    const SCRIPT: &str = "import socket,sys\n\
s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n\
s.settimeout(float(sys.argv[4]))\n\
s.sendto(sys.argv[3].encode(),(sys.argv[1],int(sys.argv[2])))\n\
try:\n    sys.stdout.write(s.recvfrom(4096)[0].decode())\n\
except socket.timeout:\n    sys.exit(1)\n";
    let out = ns_exec(
        ns,
        &[
            "python3",
            "-c",
            SCRIPT,
            host,
            &port.to_string(),
            msg,
            &format!("{:.3}", timeout.as_secs_f64()),
        ],
    );
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).to_string())
}

impl Cluster {
    /// The namespace holding the LAN bridge (multi-node layout).
    pub fn lan_ns(&self) -> String {
        format!("{}-lan", self.name)
    }

    /// The network namespace (as `/proc/PID/ns/net`) of this cluster's pod
    /// with IP `pod_ip`, for [`ns_exec`], [`curl_in`] and [`udp_in`].
    pub fn pod_net(&self, pod_ip: &str) -> Option<String> {
        self.pod_pids(pod_ip)
            .first()
            .map(|pid| format!("/proc/{pid}/ns/net"))
    }

    /// Adds an outside client at `192.168.77.<last>` on the LAN of a
    /// multi-node cluster, with the LoadBalancer pool routed via node 1 like
    /// the built-in client. Removed when the guard drops.
    pub fn add_lan_client(&self, last: u8) -> LanClient {
        let ns = format!("{}-c{last}", self.name);
        let lan = self.lan_ns();
        let port = format!("c{last}");
        let guard = LanClient {
            ns: ns.clone(),
            ip: format!("192.168.77.{last}"),
        };
        ip(&["netns", "add", &ns]);
        ip(&["-n", &ns, "link", "set", "lo", "up"]);
        ip(&[
            "-n", &lan, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", &ns,
        ]);
        ip(&["-n", &lan, "link", "set", &port, "master", "br0", "up"]);
        ip(&[
            "-n",
            &ns,
            "addr",
            "add",
            &format!("{}/24", guard.ip),
            "dev",
            "eth0",
        ]);
        ip(&["-n", &ns, "link", "set", "eth0", "up"]);
        ip(&[
            "-n",
            &ns,
            "route",
            "add",
            "192.168.77.240/28",
            "via",
            &self.node_ips[0],
        ]);
        guard
    }

    /// Adds node `<name>-node<i>` at `192.168.77.<10+i>` on the LAN of a
    /// multi-node cluster and starts its agent as a child of the test (so the
    /// test may kill and restart it). Removed when the guard drops.
    pub fn add_node(&self, i: u8) -> ExtraNode {
        self.add_node_with_args(i, &[])
    }

    /// [`Cluster::add_node`] with extra `portico agent` flags (kept for restarts),
    /// e.g. `--nodeport-addresses`.
    pub fn add_node_with_args(&self, i: u8, agent_args: &[&str]) -> ExtraNode {
        let ns = format!("{}-node{i}", self.name);
        let lan = self.lan_ns();
        let port = format!("n{i}");
        let node = ExtraNode {
            ns: ns.clone(),
            ip: format!("192.168.77.{}", 10 + i),
            dir: self.dir.path().to_path_buf(),
            args: agent_args.iter().map(|a| a.to_string()).collect(),
            agent: None,
        };
        ip(&["netns", "add", &ns]);
        ip(&["-n", &ns, "link", "set", "lo", "up"]);
        ip(&[
            "-n", &lan, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", &ns,
        ]);
        ip(&["-n", &lan, "link", "set", &port, "master", "br0", "up"]);
        ip(&[
            "-n",
            &ns,
            "addr",
            "add",
            &format!("{}/24", node.ip),
            "dev",
            "eth0",
        ]);
        ip(&["-n", &ns, "link", "set", "eth0", "up"]);
        ip(&["-n", &ns, "route", "add", "default", "via", "192.168.77.1"]);
        let mut node = node;
        node.start();
        node
    }
}

/// An extra outside client on the LAN.
pub struct LanClient {
    /// Its namespace.
    pub ns: String,
    /// Its address.
    pub ip: String,
}

impl Drop for LanClient {
    fn drop(&mut self) {
        // Deleting the namespace deletes its veth pair too.
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).output();
    }
}

/// A node whose agent the test runs.
pub struct ExtraNode {
    /// Node name and namespace name.
    pub ns: String,
    /// InternalIP.
    pub ip: String,
    dir: std::path::PathBuf,
    args: Vec<String>,
    agent: Option<Child>,
}

impl ExtraNode {
    /// Starts the agent (appending to its log in the cluster's logs dir).
    pub fn start(&mut self) {
        assert!(self.agent.is_none(), "agent already running");
        let logs = self.dir.join("logs");
        std::fs::create_dir_all(&logs).unwrap();
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(logs.join(format!("{}.log", self.ns)))
            .unwrap();
        let child = Command::new(super::portico_exe())
            // Proxy syncs log at debug: tests read them to see a restarted agent synced.
            .args(["--log", "info,portico_proxy=debug"])
            .args(["agent", "--netns", &format!("/run/netns/{}", self.ns)])
            .args(["--server", "https://192.168.77.1:6443", "--token-file"])
            .arg(self.dir.join("node-token"))
            .arg("--ca-file")
            .arg(self.dir.join("ca.crt"))
            .args(["--node-name", &self.ns, "--node-ip", &self.ip, "--data-dir"])
            .arg(self.dir.join("nodes").join(&self.ns))
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.agent = Some(child);
    }

    /// The agent's pid, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.agent.as_ref().map(Child::id)
    }

    /// Path of the agent's log.
    pub fn log_path(&self) -> std::path::PathBuf {
        self.dir.join("logs").join(format!("{}.log", self.ns))
    }

    /// SIGKILLs the agent (no cleanup: its rules stay in the kernel).
    pub fn kill_agent(&mut self) {
        if let Some(mut child) = self.agent.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn stop_agent(&mut self) {
        let Some(mut child) = self.agent.take() else {
            return;
        };
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(40);
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

impl Drop for ExtraNode {
    fn drop(&mut self) {
        self.stop_agent();
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).output();
    }
}
