//! Throwaway network topology for kernel tests: a node namespace with a
//! bridge and two "pod" namespaces behind it, and a client namespace on a
//! point-to-point link. Everything is removed by `Drop`, also on failure.
#![allow(dead_code)]

use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use nix::sched::{setns, CloneFlags};

/// Node address on the client link.
pub const NODE_IP: &str = "192.168.77.1";
/// Client address.
pub const CLIENT_IP: &str = "192.168.77.2";
/// Node address on the pod bridge.
pub const NODE_POD_GW: &str = "10.244.1.1";
/// Pod addresses.
pub const POD_A: &str = "10.244.1.10";
pub const POD_B: &str = "10.244.1.11";

/// Answers TCP with an HTTP/1.0 response and UDP with a datagram, both
/// "<name> <peer address>", so tests see which pod answered and whom it saw.
const BACKEND: &str = r#"
import socket, sys, threading
name, port = sys.argv[1], int(sys.argv[2])
def serve(c, a):
    try:
        c.settimeout(10); first = c.recv(4096)
        if first.startswith(b"ECHO"):
            # A long-lived connection: answer every line until the client closes.
            data = first
            while data:
                c.sendall(("%s %s\n" % (name, data.decode().strip())).encode())
                data = c.recv(4096)
        else:
            body = ("%s %s\n" % (name, a[0])).encode()
            c.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    except Exception:
        pass
    c.close()
def tcp():
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port)); s.listen(128)
    while True:
        c, a = s.accept()
        threading.Thread(target=serve, args=(c, a), daemon=True).start()
def udp():
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("0.0.0.0", port))
    while True:
        d, a = u.recvfrom(2048)
        u.sendto(("%s %s" % (name, a[0])).encode(), a)
threading.Thread(target=udp, daemon=True).start()
tcp()
"#;

pub fn is_root() -> bool {
    nix::unistd::Uid::effective().is_root()
}

fn run(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub struct Topology {
    pub node: String,
    pub client: String,
    pub pod_a: String,
    pub pod_b: String,
    namespaces: Vec<String>,
    children: Vec<Child>,
}

impl Topology {
    pub fn new() -> Topology {
        static N: AtomicU32 = AtomicU32::new(0);
        let id = format!(
            "{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        let name = |role: &str| format!("portico-t-{id}-{role}");
        let mut t = Topology {
            node: name("node"),
            client: name("client"),
            pod_a: name("pa"),
            pod_b: name("pb"),
            namespaces: Vec::new(),
            children: Vec::new(),
        };
        for ns in [
            t.node.clone(),
            t.client.clone(),
            t.pod_a.clone(),
            t.pod_b.clone(),
        ] {
            run(&["ip", "netns", "add", &ns]);
            t.namespaces.push(ns.clone());
            run(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
        }
        let node = t.node.clone();
        run(&["ip", "-n", &node, "link", "add", "br0", "type", "bridge"]);
        run(&[
            "ip",
            "-n",
            &node,
            "addr",
            "add",
            &format!("{NODE_POD_GW}/24"),
            "dev",
            "br0",
        ]);
        run(&["ip", "-n", &node, "link", "set", "br0", "up"]);
        for (ns, ip, veth) in [
            (t.pod_a.clone(), POD_A, "vpa"),
            (t.pod_b.clone(), POD_B, "vpb"),
        ] {
            run(&[
                "ip", "-n", &node, "link", "add", veth, "type", "veth", "peer", "name", "eth0",
                "netns", &ns,
            ]);
            run(&[
                "ip", "-n", &node, "link", "set", veth, "master", "br0", "up",
            ]);
            // With bridge netfilter (on by default in a new netns), a pod reaching
            // itself through a Service leaves by the port it came in: hairpin mode.
            run(&[
                "ip",
                "-n",
                &node,
                "link",
                "set",
                veth,
                "type",
                "bridge_slave",
                "hairpin",
                "on",
            ]);
            run(&[
                "ip",
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{ip}/24"),
                "dev",
                "eth0",
            ]);
            run(&["ip", "-n", &ns, "link", "set", "eth0", "up"]);
            run(&[
                "ip",
                "-n",
                &ns,
                "route",
                "add",
                "default",
                "via",
                NODE_POD_GW,
            ]);
        }
        let client = t.client.clone();
        run(&[
            "ip", "-n", &node, "link", "add", "vc", "type", "veth", "peer", "name", "eth0",
            "netns", &client,
        ]);
        run(&[
            "ip",
            "-n",
            &node,
            "addr",
            "add",
            &format!("{NODE_IP}/24"),
            "dev",
            "vc",
        ]);
        run(&["ip", "-n", &node, "link", "set", "vc", "up"]);
        run(&[
            "ip",
            "-n",
            &client,
            "addr",
            "add",
            &format!("{CLIENT_IP}/24"),
            "dev",
            "eth0",
        ]);
        run(&["ip", "-n", &client, "link", "set", "eth0", "up"]);
        run(&[
            "ip", "-n", &client, "route", "add", "default", "via", NODE_IP,
        ]);
        // Like a real node, the node has a default route (here: via the client).
        run(&[
            "ip", "-n", &node, "route", "add", "default", "via", CLIENT_IP,
        ]);
        run(&[
            "ip",
            "netns",
            "exec",
            &node,
            "sysctl",
            "-qw",
            "net.ipv4.ip_forward=1",
        ]);
        t
    }

    /// Starts the backend in both pods on `port` (TCP and UDP) and waits until they answer.
    pub fn start_backends(&mut self, port: u16) {
        for (ns, name, ip) in [
            (self.pod_a.clone(), "pod-a", POD_A),
            (self.pod_b.clone(), "pod-b", POD_B),
        ] {
            let child = Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    &ns,
                    "python3",
                    "-c",
                    BACKEND,
                    name,
                    &port.to_string(),
                ])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            self.children.push(child);
            let addr: SocketAddr = format!("{ip}:{port}").parse().unwrap();
            let node = self.node.clone();
            eventually(Duration::from_secs(10), || {
                http_get(&node, addr, Duration::from_millis(500)).is_ok()
            });
        }
    }

    pub fn prefix(&self) -> Vec<String> {
        vec![
            "ip".into(),
            "netns".into(),
            "exec".into(),
            self.node.clone(),
        ]
    }

    /// Every table of the node namespace (the shared one and the shards).
    pub fn list_table(&self) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.node, "nft", "list", "ruleset"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in self.namespaces.iter().rev() {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// Runs `f` on a thread inside network namespace `ns`.
pub fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = File::open(&path).unwrap();
        setns(&file, CloneFlags::CLONE_NEWNET).unwrap();
        f()
    })
    .join()
    .unwrap()
}

/// One HTTP/1.0 GET from namespace `ns`; returns the body ("<pod> <peer>").
pub fn http_get(ns: &str, addr: SocketAddr, timeout: Duration) -> std::io::Result<String> {
    in_netns(ns, move || {
        let mut s = TcpStream::connect_timeout(&addr, timeout)?;
        s.set_read_timeout(Some(Duration::from_secs(3)))?;
        s.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
        let mut buf = String::new();
        s.read_to_string(&mut buf)?;
        Ok(buf
            .split("\r\n\r\n")
            .nth(1)
            .unwrap_or("")
            .trim()
            .to_string())
    })
}

/// `n` GETs; returns the bodies.
pub fn http_many(ns: &str, addr: SocketAddr, n: usize) -> Vec<String> {
    in_netns(ns, move || {
        (0..n)
            .map(|_| {
                let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
                s.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
                let mut buf = String::new();
                s.read_to_string(&mut buf).unwrap();
                buf.split("\r\n\r\n")
                    .nth(1)
                    .unwrap_or("")
                    .trim()
                    .to_string()
            })
            .collect()
    })
}

/// One UDP exchange from a fresh socket (so a fresh conntrack entry).
pub fn udp_ask(ns: &str, addr: SocketAddr, timeout: Duration) -> std::io::Result<String> {
    in_netns(ns, move || {
        let s = UdpSocket::bind("0.0.0.0:0")?;
        s.set_read_timeout(Some(timeout))?;
        s.send_to(b"hello", addr)?;
        let mut buf = [0u8; 512];
        let (n, _) = s.recv_from(&mut buf)?;
        Ok(String::from_utf8_lossy(&buf[..n]).to_string())
    })
}

/// One UDP exchange from a fixed source port (so the same conntrack entry each time).
pub fn udp_ask_from(
    ns: &str,
    src_port: u16,
    addr: SocketAddr,
    timeout: Duration,
) -> std::io::Result<String> {
    in_netns(ns, move || {
        // A child process forked by a parallel test may briefly hold the
        // previous socket of this port (until its exec closes it): retry.
        let deadline = Instant::now() + Duration::from_secs(3);
        let s = loop {
            match UdpSocket::bind(("0.0.0.0", src_port)) {
                Ok(s) => break s,
                Err(e)
                    if e.kind() == std::io::ErrorKind::AddrInUse && Instant::now() < deadline =>
                {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => return Err(e),
            }
        };
        s.set_read_timeout(Some(timeout))?;
        s.send_to(b"hello", addr)?;
        let mut buf = [0u8; 512];
        let (n, _) = s.recv_from(&mut buf)?;
        Ok(String::from_utf8_lossy(&buf[..n]).to_string())
    })
}

/// A long-lived TCP connection opened from inside a namespace.
pub struct Conn(TcpStream);

impl Conn {
    pub fn open(ns: &str, addr: SocketAddr) -> Conn {
        let s = in_netns(ns, move || {
            TcpStream::connect_timeout(&addr, Duration::from_secs(2)).unwrap()
        });
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        Conn(s)
    }

    /// Sends one line and reads the answer ("<pod> <line>").
    pub fn ask(&mut self, line: &str) -> String {
        self.0.write_all(format!("{line}\n").as_bytes()).unwrap();
        let mut buf = [0u8; 512];
        let n = self.0.read(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).trim().to_string()
    }
}

/// Polls `f` until it holds or `limit` passes.
pub fn eventually(limit: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < limit,
            "condition not met within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}
