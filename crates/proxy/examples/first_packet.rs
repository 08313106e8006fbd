//! First-packet benchmark: time for fresh TCP connections to a ClusterIP
//! when 1 or N Services are programmed, and the same connections straight to
//! the endpoint with no rules (the floor). A client namespace and a backend
//! namespace joined by a veth pair are created and removed by the benchmark;
//! the backend holds the Service's 10 endpoint addresses and one listener.
//! Needs root. Usage:
//! `cargo run --release -p portico-proxy --example first_packet -- [--shards K] [--connects C] 1 30000`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use portico_proxy::model::service_ports;
use portico_proxy::plan::{plan_service, Base, ServicePlan};
use portico_proxy::{ConntrackCli, NftNetlink, Proxier};
use serde_json::json;

const PROBE_VIP: &str = "10.111.255.254";
const BACKEND_PORT: u16 = 8080;

/// Two namespaces joined by a veth pair, removed on drop.
struct Pair {
    client: String,
    backend: String,
}

impl Drop for Pair {
    fn drop(&mut self) {
        for ns in [&self.client, &self.backend] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

fn ip_cmd(args: &[&str]) {
    let out = Command::new("ip").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn pair(tag: &str) -> Pair {
    let id = std::process::id();
    let p = Pair {
        client: format!("portico-fp-{id}-{tag}-c"),
        backend: format!("portico-fp-{id}-{tag}-b"),
    };
    ip_cmd(&["netns", "add", &p.client]);
    ip_cmd(&["netns", "add", &p.backend]);
    let c = |args: &[&str]| {
        let mut a = vec!["-n", p.client.as_str()];
        a.extend_from_slice(args);
        ip_cmd(&a);
    };
    let b = |args: &[&str]| {
        let mut a = vec!["-n", p.backend.as_str()];
        a.extend_from_slice(args);
        ip_cmd(&a);
    };
    c(&[
        "link", "add", "v0", "type", "veth", "peer", "name", "v1", "netns", &p.backend,
    ]);
    c(&["link", "set", "lo", "up"]);
    c(&["link", "set", "v0", "up"]);
    c(&["addr", "add", "192.168.100.1/24", "dev", "v0"]);
    // Service addresses are routed towards the backend, as a node routes them.
    c(&["route", "add", "10.96.0.0/12", "dev", "v0"]);
    b(&["link", "set", "lo", "up"]);
    b(&["link", "set", "v1", "up"]);
    for e in 0..10 {
        b(&[
            "addr",
            "add",
            &format!("192.168.100.{}/24", 2 + e),
            "dev",
            "v1",
        ]);
    }
    p
}

fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).unwrap();
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        f()
    })
    .join()
    .unwrap()
}

/// Starts an accept loop in the backend namespace (it ends with the namespace's process use).
fn serve(ns: &str) {
    let listener: TcpListener =
        in_netns(ns, || TcpListener::bind(("0.0.0.0", BACKEND_PORT)).unwrap());
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            drop(conn);
        }
    });
}

/// `n` fresh connections from the client namespace; their connect times, sorted.
fn connects(ns: &str, target: SocketAddr, n: usize) -> Vec<Duration> {
    in_netns(ns, move || {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut times = Vec::with_capacity(n);
        for _ in 0..n {
            assert!(Instant::now() < deadline, "connects took over 60 s");
            let t = Instant::now();
            let s = TcpStream::connect_timeout(&target, Duration::from_secs(2)).unwrap();
            times.push(t.elapsed());
            // RST instead of FIN: no TIME_WAIT pile-up across thousands of connects.
            let linger = nix::libc::linger {
                l_onoff: 1,
                l_linger: 0,
            };
            let _ = nix::sys::socket::setsockopt(&s, nix::sys::socket::sockopt::Linger, &linger);
        }
        times.sort();
        times
    })
}

fn service(i: u32, vip: Ipv4Addr, eps: &[Ipv4Addr]) -> (Service, EndpointSlice) {
    let name = format!("svc-{i}");
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"namespace": "bench", "name": name},
        "spec": {"clusterIP": vip.to_string(), "ports": [{"name": "http", "port": 80, "targetPort": BACKEND_PORT}]}
    }))
    .unwrap();
    let eps: Vec<_> = eps
        .iter()
        .map(|ip| json!({"addresses": [ip.to_string()], "nodeName": "n1"}))
        .collect();
    let slice: EndpointSlice = serde_json::from_value(json!({
        "metadata": {"namespace": "bench", "name": format!("{name}-x"), "labels": {"kubernetes.io/service-name": name}},
        "addressType": "IPv4", "endpoints": eps,
        "ports": [{"name": "http", "port": BACKEND_PORT, "protocol": "TCP"}]
    }))
    .unwrap();
    (svc, slice)
}

fn plans(n: u32, base: &Base) -> BTreeMap<String, Arc<ServicePlan>> {
    let backends: Vec<Ipv4Addr> = (0..10)
        .map(|e| Ipv4Addr::new(192, 168, 100, 2 + e))
        .collect();
    let mut out = BTreeMap::new();
    // The probed Service, then n - 1 others with unreachable endpoints.
    let (s, e) = service(0, PROBE_VIP.parse().unwrap(), &backends);
    out.insert(
        "bench/svc-0".to_string(),
        Arc::new(plan_service(&service_ports(&s, &[&e], "n1"), base)),
    );
    for i in 1..n {
        let vip = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 96, 0, 0)) + i);
        let eps: Vec<Ipv4Addr> = (0..10)
            .map(|k| Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 128, 0, 0)) + i * 10 + k))
            .collect();
        let (s, e) = service(i, vip, &eps);
        out.insert(
            format!("bench/svc-{i}"),
            Arc::new(plan_service(&service_ports(&s, &[&e], "n1"), base)),
        );
    }
    out
}

fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

fn report(label: &str, times: &[Duration]) {
    let pick = |q: f64| times[((times.len() as f64 - 1.0) * q) as usize];
    let mean = times.iter().sum::<Duration>() / u32::try_from(times.len()).unwrap();
    println!(
        "| {label} | {} | {} | {} | {} |",
        times.len(),
        us(pick(0.5)),
        us(pick(0.99)),
        us(mean)
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opt = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse::<u32>().ok())
    };
    let shards = opt("--shards").map_or(portico_proxy::plan::DEFAULT_SHARDS, |v| {
        u16::try_from(v).unwrap()
    });
    let count = opt("--connects").unwrap_or(2000) as usize;
    let sizes: Vec<u32> = args
        .iter()
        .enumerate()
        .filter(|(i, _)| *i == 0 || !args[i - 1].starts_with("--"))
        .filter_map(|(_, a)| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![1, 30000]
    } else {
        sizes
    };
    let base = Base {
        cluster_cidr: "10.244.0.0/16".parse().unwrap(),
        nodeport_addresses: vec![],
        shards,
        masquerade_fully_random: false,
    };
    println!("| path (shards = {shards}) | connects | p50 | p99 | mean |");
    println!("|---|---|---|---|---|");
    for &n in &sizes {
        let p = pair(&n.to_string());
        serve(&p.backend);
        let direct: SocketAddr = format!("192.168.100.2:{BACKEND_PORT}").parse().unwrap();
        let vip: SocketAddr = format!("{PROBE_VIP}:80").parse().unwrap();
        // Warm up (ARP, listener), then the floor: no rules at all.
        connects(&p.client, direct, 50);
        report("endpoint, no rules", &connects(&p.client, direct, count));
        let mut proxier = Proxier::new(
            NftNetlink::open_in_netns(&p.client).unwrap(),
            ConntrackCli {
                prefix: vec!["ip".into(), "netns".into(), "exec".into(), p.client.clone()],
            },
            base.clone(),
        );
        let desired = plans(n, &base);
        let all: BTreeSet<String> = desired.keys().cloned().collect();
        proxier.sync(&desired, &all, Instant::now()).unwrap();
        connects(&p.client, vip, 50);
        report(
            &format!("ClusterIP, {n} Services"),
            &connects(&p.client, vip, count),
        );
        report("endpoint, same rules", &connects(&p.client, direct, count));
    }
}
