//! Two agents in two node namespaces on a private LAN with one API server:
//! each node routes the other's podCIDR (host-gw), so a pod on node A reaches
//! a pod on node B by pod IP without NAT.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::{curl, eventually, NodeNs};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, Patch, PatchParams, PostParams};
use portico_agent::AgentConfig;

async fn client_for(kubeconfig: &std::path::Path) -> kube::Client {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig).unwrap();
    let cfg = kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
        .await
        .unwrap();
    kube::Client::try_from(cfg).unwrap()
}

/// Enters a node namespace on this thread and builds its runtime.
fn enter(path: &str) -> tokio::runtime::Runtime {
    let fd = std::fs::File::open(path).unwrap();
    nix::sched::setns(fd, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
    assert!(Command::new("ip")
        .args(["link", "set", "lo", "up"])
        .status()
        .unwrap()
        .success());
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn agent_config(name: &str, ip: Ipv4Addr, dir: &std::path::Path) -> AgentConfig {
    AgentConfig {
        node_name: name.to_string(),
        node_ip: ip,
        data_dir: dir.to_path_buf(),
        cluster_dns: Ipv4Addr::new(10, 96, 0, 10),
        cluster_domain: "cluster.local".into(),
        bridge_name: "portico0".into(),
        kubelet_port: 0,
        endpoint_token: None,
    }
}

fn ip(args: &[&str]) {
    assert!(
        Command::new("ip").args(args).status().unwrap().success(),
        "ip {args:?}"
    );
}

fn exe() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_portico-agent-testbin"))
}

#[test]
fn pods_on_different_nodes_reach_each_other_by_pod_ip() {
    let a = NodeNs::new("mna");
    let b = NodeNs::new("mnb");
    // The LAN: one veth pair between the two node namespaces.
    let (la, lb) = (
        format!("pa{}", std::process::id() % 100000),
        format!("pb{}", std::process::id() % 100000),
    );
    ip(&[
        "link", "add", &la, "netns", &a.name, "type", "veth", "peer", "name", &lb, "netns", &b.name,
    ]);
    ip(&["-n", &a.name, "addr", "add", "192.168.93.2/24", "dev", &la]);
    ip(&["-n", &b.name, "addr", "add", "192.168.93.3/24", "dev", &lb]);
    ip(&["-n", &a.name, "link", "set", &la, "up"]);
    ip(&["-n", &b.name, "link", "set", &lb, "up"]);

    let (kc_tx, kc_rx) = tokio::sync::oneshot::channel::<PathBuf>();
    let (stop_b_tx, stop_b_rx) = tokio::sync::oneshot::channel::<()>();
    let b_name = b.name.clone();
    let b_dir = tempfile::tempdir().unwrap();
    let b_path = b_dir.path().to_path_buf();
    let b_path_ns = b.path();
    let thread_b = std::thread::spawn(move || {
        let rt = enter(&b_path_ns);
        rt.block_on(async move {
            let kubeconfig = kc_rx.await.unwrap();
            let client = client_for(&kubeconfig).await;
            let cfg = agent_config(&b_name, Ipv4Addr::new(192, 168, 93, 3), &b_path);
            portico_agent::run_with_exe(client, cfg, exe(), async move {
                let _ = stop_b_rx.await;
            })
            .await
            .unwrap();
        });
    });

    let a_name = a.name.clone();
    let b_name = b.name.clone();
    let a_path_ns = a.path();
    let thread_a = std::thread::spawn(move || {
        let rt = enter(&a_path_ns);
        rt.block_on(async move {
            let server_dir = tempfile::tempdir().unwrap();
            let a_dir = tempfile::tempdir().unwrap();
            let listener = std::net::TcpListener::bind("192.168.93.2:0").unwrap();
            let port = listener.local_addr().unwrap().port();
            let mut cfg = portico_apiserver::ServerConfig::new(
                server_dir.path(),
                format!("https://192.168.93.2:{port}"),
            );
            cfg.listeners = vec![listener];
            let prepared = portico_apiserver::prepare(&cfg).unwrap();
            let (stop_server, server_stopped) = tokio::sync::oneshot::channel::<()>();
            let server = tokio::spawn(portico_apiserver::run(cfg, async move {
                let _ = server_stopped.await;
            }));
            kc_tx.send(prepared.kubeconfig_path.clone()).unwrap();
            let client = client_for(&prepared.kubeconfig_path).await;
            let (stop_a, a_stopped) = tokio::sync::oneshot::channel::<()>();
            let agent_a = tokio::spawn(portico_agent::run_with_exe(
                client.clone(),
                agent_config(&a_name, Ipv4Addr::new(192, 168, 93, 2), a_dir.path()),
                exe(),
                async move {
                    let _ = a_stopped.await;
                },
            ));

            // The controllers' part, done by the test: a podCIDR per node.
            let nodes: Api<Node> = Api::all(client.clone());
            for (n, cidr) in [(&a_name, "10.244.20.0/24"), (&b_name, "10.244.21.0/24")] {
                eventually(Duration::from_secs(15), "node registered", || {
                    let nodes = nodes.clone();
                    let n = n.clone();
                    async move { nodes.get(&n).await.ok() }
                })
                .await;
                let patch = serde_json::json!({"spec": {"podCIDR": cidr, "podCIDRs": [cidr]}});
                nodes
                    .patch(n, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .unwrap();
            }
            let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
            for (name, node) in [("pa", &a_name), ("pb", &b_name)] {
                let pod: Pod = serde_json::from_value(serde_json::json!({
                    "metadata": {"name": name},
                    "spec": {"nodeName": node, "terminationGracePeriodSeconds": 2, "containers": [{
                        "name": "agnhost", "image": "registry.k8s.io/e2e-test-images/agnhost:2.53",
                        "args": ["netexec", "--http-port=8080"]}]}
                }))
                .unwrap();
                pods.create(&PostParams::default(), &pod).await.unwrap();
            }
            let mut ips = Vec::new();
            for name in ["pa", "pb"] {
                let ip = eventually(Duration::from_secs(15), "pod running", || {
                    let pods = pods.clone();
                    async move {
                        let p = pods.get(name).await.ok()?;
                        let s = p.status?;
                        (s.phase.as_deref() == Some("Running")).then_some(s.pod_ip?)
                    }
                })
                .await;
                ips.push(ip);
            }
            let (ip_a, ip_b) = (ips[0].clone(), ips[1].clone());
            assert!(
                ip_a.starts_with("10.244.20.") && ip_b.starts_with("10.244.21."),
                "{ip_a} {ip_b}"
            );
            // Node A reaches pod B through B's InternalIP.
            let host = eventually(Duration::from_secs(10), "cross-node pod IP", || {
                curl(format!("http://{ip_b}:8080/hostname"))
            })
            .await;
            assert_eq!(host, "pb");
            // Pod A reaches pod B, which sees pod A's own IP (no NAT).
            let list = String::from_utf8(
                Command::new("ip")
                    .args(["netns", "list"])
                    .output()
                    .unwrap()
                    .stdout,
            )
            .unwrap();
            let pod_a_ns = list
                .lines()
                .filter_map(|l| l.split_whitespace().next())
                .find(|n| n.starts_with(&format!("{a_name}-default-pa-")))
                .unwrap()
                .to_string();
            let out = Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    &pod_a_ns,
                    "curl",
                    "-s",
                    "--max-time",
                    "3",
                    &format!("http://{ip_b}:8080/clientip"),
                ])
                .output()
                .unwrap();
            let seen = String::from_utf8_lossy(&out.stdout).to_string();
            assert!(
                seen.starts_with(&format!("{ip_a}:")),
                "pod B saw {seen:?}, pod A is {ip_a}"
            );

            stop_b_tx.send(()).unwrap();
            stop_a.send(()).unwrap();
            tokio::time::timeout(Duration::from_secs(30), agent_a)
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            let routes =
                String::from_utf8(Command::new("ip").args(["route"]).output().unwrap().stdout)
                    .unwrap();
            assert!(!routes.contains("10.244.21.0/24"), "{routes}");
            let _ = stop_server.send(());
            let _ = tokio::time::timeout(Duration::from_secs(10), server).await;
        });
    });
    let ra = thread_a.join();
    let rb = thread_b.join();
    if let Err(e) = ra {
        std::panic::resume_unwind(e);
    }
    if let Err(e) = rb {
        std::panic::resume_unwind(e);
    }
}
