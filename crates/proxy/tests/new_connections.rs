//! Kernel test of the masquerade's effect on new connections: many
//! sequential short connections through Service paths (node → ClusterIP, not
//! masqueraded; outside client → NodePort, masqueraded) must all be accepted
//! at once by a
//! server that closes first (so it holds TIME_WAIT sockets), with no SYN
//! refused by PAWS and no SYN retransmitted. A masquerade that rewrites
//! source ports (`fully-random`) lands new SYNs on unrelated TIME_WAIT
//! sockets, whose timestamps do not follow on, and fails this. Needs root
//! (network namespaces); skips without it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod netns;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use netns::*;
use portico_proxy::{ConntrackCli, Nft, NftCli, NftNetlink, Proxier};
use serde_json::json;

/// Connections per path: with random source ports dozens of 4,000 land on
/// a server TIME_WAIT tuple whose conntrack entry is gone, so the old rules
/// fail reliably; a kept port never repeats within the client's ~14,000
/// ports of one parity.
const CONNECTIONS: usize = 4000;
/// The whole run per path may not take longer (each refused SYN costs 1 s).
const RUN_LIMIT: Duration = Duration::from_secs(40);
/// Backend ports: one per path, so the paths do not share server TIME_WAIT
/// tuples (both are masqueraded to the same node address).
const CLUSTER_IP_BACKEND: u16 = 9090;
const NODE_PORT_BACKEND: u16 = 9091;

/// A TcpExt counter of namespace `ns`.
fn tcpext(ns: &str, field: &str) -> u64 {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "cat", "/proc/net/netstat"])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines().filter(|l| l.starts_with("TcpExt:"));
    let names: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    let values: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    let i = names.iter().position(|n| *n == field).unwrap();
    values[i].parse().unwrap()
}

/// A server in pod A's namespace that answers "ok" and closes first, so
/// every connection leaves a TIME_WAIT socket on the server.
struct CloseFirstServer {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl CloseFirstServer {
    fn start(ns: &str, port: u16) -> CloseFirstServer {
        let listener = in_netns(ns, move || {
            TcpListener::bind(format!("{POD_A}:{port}")).unwrap()
        });
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut s, _)) => {
                        let _ = s.set_nonblocking(false);
                        let _ = s.write_all(b"ok");
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    Err(_) => break,
                }
            }
        });
        CloseFirstServer {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for CloseFirstServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Sequential connections from `ns` to `target`, each read to the server's
/// close; returns how many completed before the limit.
fn connect_many(ns: &str, target: SocketAddr) -> usize {
    in_netns(ns, move || {
        let started = Instant::now();
        let mut done = 0;
        while done < CONNECTIONS && started.elapsed() < RUN_LIMIT {
            let mut s = TcpStream::connect_timeout(&target, Duration::from_secs(5)).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut buf = Vec::new();
            s.read_to_end(&mut buf).unwrap();
            assert_eq!(buf, b"ok");
            done += 1;
        }
        done
    })
}

fn new_connections_through_services_never_hit_time_wait(applier: &str) {
    if !is_root() {
        eprintln!("skipping: kernel tests need root to create network namespaces");
        return;
    }
    let t = Topology::new();
    let _servers =
        [CLUSTER_IP_BACKEND, NODE_PORT_BACKEND].map(|p| CloseFirstServer::start(&t.pod_a, p));
    let nft: Box<dyn Nft> = if applier == "netlink" {
        Box::new(NftNetlink::open_in_netns(&t.node).unwrap())
    } else {
        Box::new(NftCli { prefix: t.prefix() })
    };
    let b = base();
    let mut p = Proxier::new(nft, ConntrackCli { prefix: t.prefix() }, b.clone());
    let s = svc(
        "web",
        json!({"type": "NodePort", "clusterIP": "10.96.0.30",
               "ports": [{"name": "a", "port": 80, "targetPort": CLUSTER_IP_BACKEND, "nodePort": 30080},
                         {"name": "b", "port": 81, "targetPort": NODE_PORT_BACKEND, "nodePort": 30081}]}),
    );
    let slices = [slice(
        "web",
        &[(POD_A, "node-a", true)],
        &[
            ("a", CLUSTER_IP_BACKEND, "TCP"),
            ("b", NODE_PORT_BACKEND, "TCP"),
        ],
    )];
    let key = "default/web".to_string();
    let desired = [(key.clone(), Arc::new(plan(&s, &slices, "node-a", &b)))]
        .into_iter()
        .collect();
    p.sync(&desired, &[key].into_iter().collect(), Instant::now())
        .unwrap();
    // Conntrack keeps a closed connection's entry (TIME_WAIT, 120 s) longer
    // than the server keeps its TIME_WAIT socket (60 s), which hides the
    // clash in a short test: NAT never reuses a port with a live entry. A
    // busy node loses entries earlier (a full table evicts them; a reset
    // leaves CLOSE, 10 s), so model that in the node's own namespace.
    let status = Command::new("ip")
        .args(["netns", "exec", &t.node, "sysctl", "-qw"])
        .arg("net.netfilter.nf_conntrack_tcp_timeout_time_wait=1")
        .status()
        .unwrap();
    assert!(status.success());

    for (ns, target) in [
        (&t.node, "10.96.0.30:80".to_string()),
        (&t.client, format!("{NODE_IP}:30081")),
    ] {
        let paws0 = tcpext(&t.pod_a, "PAWSTimewait");
        let syn0 = tcpext(ns, "TCPSynRetrans");
        let started = Instant::now();
        let done = connect_many(ns, addr(&target));
        let took = started.elapsed();
        let paws = tcpext(&t.pod_a, "PAWSTimewait") - paws0;
        let syn = tcpext(ns, "TCPSynRetrans") - syn0;
        assert_eq!(
            (done, paws, syn),
            (CONNECTIONS, 0, 0),
            "{target} from {ns}: connections done, SYNs refused by PAWS in TIME_WAIT, \
             SYN retransmits (in {took:?})"
        );
    }
}

#[test]
fn new_connections_through_services_never_hit_time_wait_nft() {
    new_connections_through_services_never_hit_time_wait("nft");
}

#[test]
fn new_connections_through_services_never_hit_time_wait_netlink() {
    new_connections_through_services_never_hit_time_wait("netlink");
}
