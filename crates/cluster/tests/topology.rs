//! Kernel test: a 2-node topology is created in fresh namespaces, the client reaches
//! a node over the LAN, and every namespace is gone after drop.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use portico_cluster::{existing_namespaces, netns, LanPlan, Topology};

fn unique_name() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("pt{}-{}", std::process::id() % 10000, nanos % 100000)
}

#[test]
fn client_reaches_node_over_the_lan_and_drop_cleans_up() {
    let plan = LanPlan::new(&unique_name(), 2).unwrap();
    let names = plan.namespaces();
    {
        let topo = Topology::create(plan.clone()).unwrap();
        let node2 = SocketAddr::new(plan.node_ip(2).into(), 8080);
        let listener = netns::bind_tcp_in(&Topology::ns_path(&plan.node_ns(2)), node2).unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, peer) = listener.accept().unwrap();
            s.write_all(peer.ip().to_string().as_bytes()).unwrap();
        });
        let client_ns = Topology::ns_path(&plan.client_ns());
        let seen = std::thread::spawn(move || {
            netns::enter(&client_ns).unwrap();
            let mut s = TcpStream::connect(node2).unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).unwrap();
            out
        })
        .join()
        .unwrap();
        server.join().unwrap();
        // The node sees the client's own LAN address: nothing NATs on the LAN.
        assert_eq!(seen, plan.client_ip().to_string());
        // Nodes send no ICMP redirects (they would eat the REJECT rate limit).
        let out = std::process::Command::new("ip")
            .args([
                "netns",
                "exec",
                &plan.node_ns(1),
                "cat",
                "/proc/sys/net/ipv4/conf/all/send_redirects",
            ])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "0");
        drop(topo);
    }
    let left = existing_namespaces();
    for n in names {
        assert!(!left.contains(&n), "namespace {n} left behind");
    }
}

#[test]
fn second_cluster_with_the_same_name_is_refused() {
    let plan = LanPlan::new(&unique_name(), 1).unwrap();
    let _topo = Topology::create(plan.clone()).unwrap();
    let err = Topology::create(plan.clone()).unwrap_err();
    assert!(err.to_string().contains("already exists"), "{err}");
}
