//! The seeds' main flow end to end: the nginx Deployment and the NodePort Service
//! applied with real kubectl, pods running, and `curl NodeIP:30080` answered by
//! nginx on every node from an outside client.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use support::{eventually, example, Cluster, Layout};

fn seed_flow(cluster: &Cluster) {
    cluster.apply_file(&example("nginx-deployment.yaml"));
    cluster.apply_file(&example("nginx-service-nodeport.yaml"));

    let svc = cluster.kubectl(&["get", "svc", "nginx-service-nodeport", "--no-headers"]);
    let cols: Vec<&str> = svc.split_whitespace().collect();
    assert_eq!(cols[0], "nginx-service-nodeport");
    assert_eq!(cols[1], "NodePort");
    let cluster_ip: std::net::Ipv4Addr = cols[2].parse().unwrap();
    let range: std::net::Ipv4Addr = "10.96.0.0".parse().unwrap();
    // 10.96.0.0/12: the first 12 bits match.
    assert_eq!(
        u32::from(cluster_ip) >> 20,
        u32::from(range) >> 20,
        "cluster IP {svc}"
    );
    assert_eq!(cols[3], "<none>");
    assert_eq!(cols[4], "80:30080/TCP");

    let ips = eventually(
        "2 nginx pods Running and Ready",
        Duration::from_secs(30),
        || {
            let out = cluster.kubectl(&[
                "get",
                "pods",
                "-l",
                "app=nginx",
                "-o",
                "wide",
                "--no-headers",
            ]);
            let rows: Vec<Vec<String>> = out
                .lines()
                .map(|l| l.split_whitespace().map(str::to_string).collect())
                .collect();
            let ok = rows.len() == 2 && rows.iter().all(|r| r[1] == "1/1" && r[2] == "Running");
            ok.then(|| rows.iter().map(|r| r[5].clone()).collect::<BTreeSet<_>>())
        },
    );
    assert_eq!(ips.len(), 2, "pods have distinct IPs: {ips:?}");

    for node_ip in &cluster.node_ips {
        let url = format!("http://{node_ip}:30080/");
        let body = eventually(&format!("nginx at {url}"), Duration::from_secs(10), || {
            cluster.client_curl(&url)
        });
        assert!(body.contains("Welcome to nginx!"), "{url} answered: {body}");
    }

    let ep = eventually("endpoints list both pods", Duration::from_secs(10), || {
        let out = cluster.kubectl(&["get", "endpoints", "nginx-service-nodeport", "--no-headers"]);
        (out.split_whitespace().nth(1).map(|e| e.split(',').count()) == Some(2)).then_some(out)
    });
    for ip in &ips {
        assert!(
            ep.contains(&format!("{ip}:80")),
            "endpoints {ep} lack {ip}:80"
        );
    }
}

#[test]
fn seed_flow_single_node() {
    let cluster = Cluster::up(Layout::Single);
    seed_flow(&cluster);
}

#[test]
fn seed_flow_three_nodes() {
    let cluster = Cluster::up(Layout::Nodes(3));
    seed_flow(&cluster);
}
