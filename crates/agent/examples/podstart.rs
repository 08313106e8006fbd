//! Benchmark: pod start latency (start → Running and Ready) of N agnhost pods
//! started at once on one node, through the runtime (no API server), inside a
//! throwaway node namespace; prints p50/p99 and the process RSS.
//!
//! `cargo run --release -p portico-agent --example podstart -- 100`
//! (run as root; the agnhost binary is `portico-agent-testbin`, build it first
//! with `cargo build --release -p portico-agent`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::net::Ipv4Addr;
use std::process::Command;
use std::time::{Duration, Instant};

use portico_agent::{CState, Runtime, RuntimeConfig};

struct Ns(String);

impl Drop for Ns {
    fn drop(&mut self) {
        let prefix = format!("{}-", self.0);
        for e in std::fs::read_dir("/run/netns")
            .into_iter()
            .flatten()
            .flatten()
        {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.starts_with(&prefix) || n == self.0 {
                let _ = Command::new("ip").args(["netns", "del", &n]).status();
            }
        }
    }
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next().and_then(|n| n.parse().ok()))
        .unwrap_or(0)
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100)
        .min(250);
    let ns = Ns(format!("portico-bench-{}", std::process::id()));
    assert!(Command::new("ip")
        .args(["netns", "add", &ns.0])
        .status()
        .unwrap()
        .success());
    let exe = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("portico-agent-testbin");
    let data = tempfile::tempdir().unwrap();
    let path = format!("/run/netns/{}", ns.0);
    let node = ns.0.clone();
    std::thread::spawn(move || {
        nix::sched::setns(std::fs::File::open(&path).unwrap(), nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        // Worker threads start in this thread's namespace only if created
        // after setns: they are, since the runtime is built here.
        rt.block_on(async move {
            let runtime = Runtime::new(RuntimeConfig {
                node_name: node,
                node_ip: Ipv4Addr::new(192, 168, 1, 2),
                data_dir: data.path().to_path_buf(),
                cluster_dns: Ipv4Addr::new(10, 96, 0, 10),
                cluster_domain: "cluster.local".into(),
                bridge_name: "portico0".into(),
                agnhost_exe: exe,
            })
            .unwrap();
            runtime.setup_node("10.244.0.0/24".parse().unwrap()).await.unwrap();
            let mut tasks = Vec::new();
            for i in 0..n {
                let runtime = runtime.clone();
                tasks.push(tokio::spawn(async move {
                    let pod = serde_json::from_value(serde_json::json!({
                        "metadata": {"name": format!("agn-{i}"), "namespace": "default", "uid": format!("bench-{i}")},
                        "spec": {"containers": [{"name": "agnhost", "image": "registry.k8s.io/e2e-test-images/agnhost:2.53",
                            "args": ["netexec", "--http-port=8080"],
                            "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 10}}]}
                    }))
                    .unwrap();
                    let t = Instant::now();
                    let mut rx = runtime.start_pod(&pod, &[]).await.unwrap();
                    loop {
                        if rx.borrow_and_update().containers.iter().all(|c| c.ready && matches!(c.state, CState::Running { .. })) {
                            return t.elapsed();
                        }
                        tokio::time::timeout(Duration::from_secs(30), rx.changed()).await.unwrap().unwrap();
                    }
                }));
            }
            let mut lat = Vec::new();
            for t in tasks {
                lat.push(t.await.unwrap());
            }
            lat.sort();
            let pct = |p: f64| lat[((lat.len() as f64 * p).ceil() as usize).saturating_sub(1).min(lat.len() - 1)];
            println!("pods: {n}");
            println!("start to Ready p50: {:?}", pct(0.50));
            println!("start to Ready p99: {:?}", pct(0.99));
            println!("runtime process RSS with {n} pods: {} MiB", rss_kib() / 1024);
            runtime.shutdown(Duration::from_secs(5)).await;
        });
    })
    .join()
    .unwrap();
}
