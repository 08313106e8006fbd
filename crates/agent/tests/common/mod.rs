//! Shared harness of the runtime tests: a throwaway network namespace that
//! plays the node, entered by one dedicated thread that runs the test.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::process::Command;
use std::time::{Duration, Instant};

/// A node network namespace; dropping it kills what runs inside it and in
/// its pods' namespaces, and deletes them all (also when a test fails).
pub struct NodeNs {
    pub name: String,
}

impl NodeNs {
    pub fn new(tag: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let name = format!(
            "portico-t-{tag}-{}-{:x}",
            std::process::id(),
            nanos & 0xffff
        );
        let ok = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .unwrap()
            .success();
        assert!(ok, "ip netns add {name}");
        Self { name }
    }

    pub fn path(&self) -> String {
        format!("/run/netns/{}", self.name)
    }
}

impl Drop for NodeNs {
    fn drop(&mut self) {
        // Pod namespaces are named `<node>-...`.
        let prefix = format!("{}-", self.name);
        let mut all: Vec<String> = std::fs::read_dir("/run/netns")
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter_map(|e| e.file_name().into_string().ok())
                    .collect()
            })
            .unwrap_or_default();
        all.retain(|n| n.starts_with(&prefix) || *n == self.name);
        for ns in all {
            let out = Command::new("ip").args(["netns", "pids", &ns]).output();
            if let Ok(out) = out {
                for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                    let _ = Command::new("kill").args(["-9", pid]).status();
                }
            }
            let _ = Command::new("ip").args(["netns", "del", &ns]).status();
        }
    }
}

/// Runs `f` on a new thread that first enters the node's network namespace
/// (namespaces are per thread), with a current-thread runtime so every
/// socket and child process is created in that namespace.
pub fn in_node<F, Fut>(node: &NodeNs, f: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    let path = node.path();
    let t = std::thread::spawn(move || {
        let fd = std::fs::File::open(&path).unwrap();
        nix::sched::setns(fd, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let ok = Command::new("ip")
            .args(["link", "set", "lo", "up"])
            .status()
            .unwrap()
            .success();
        assert!(ok);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(f());
    });
    if let Err(e) = t.join() {
        std::panic::resume_unwind(e);
    }
}

/// Polls `check` until it returns `Some` or `timeout` passes.
pub async fn eventually<T, Fut: Future<Output = Option<T>>>(
    timeout: Duration,
    what: &str,
    mut check: impl FnMut() -> Fut,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `curl -s --max-time 2 URL` from the current (node) namespace.
pub async fn curl(url: String) -> Option<String> {
    let out = tokio::process::Command::new("curl")
        .args(["-s", "--max-time", "2", &url])
        .output()
        .await
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The pod runtime of a test node, with the test helper binary as agnhost.
pub fn runtime(node: &NodeNs, data: &std::path::Path) -> std::sync::Arc<portico_agent::Runtime> {
    portico_agent::Runtime::new(portico_agent::RuntimeConfig {
        node_name: node.name.clone(),
        node_ip: std::net::Ipv4Addr::new(192, 168, 77, 2),
        data_dir: data.to_path_buf(),
        cluster_dns: std::net::Ipv4Addr::new(10, 96, 0, 10),
        cluster_domain: "cluster.local".into(),
        bridge_name: "portico0".into(),
        agnhost_exe: std::path::PathBuf::from(env!("CARGO_BIN_EXE_portico-agent-testbin")),
    })
    .unwrap()
}
