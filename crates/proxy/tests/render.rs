//! Snapshot tests: the rendered nftables objects of every Service shape.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use portico_proxy::plan::Base;
use portico_proxy::render::{render_base, render_service, render_shard, render_shared};
use serde_json::json;

const TWO_PODS: &[(&str, &str, bool)] = &[
    ("10.244.1.10", "node-a", true),
    ("10.244.2.10", "node-b", true),
];

fn snap(
    name: &str,
    svc: &k8s_openapi::api::core::v1::Service,
    slices: &[k8s_openapi::api::discovery::v1::EndpointSlice],
) {
    let text = render_service(&plan(svc, slices, "node-a", &base()));
    insta::assert_snapshot!(name, text);
}

/// The shared table and the first shard (the others differ only in name).
fn skeleton(b: &Base) -> String {
    render_shared(b) + &render_shard(b, 0)
}

#[test]
fn base_table() {
    insta::assert_snapshot!("base", skeleton(&base()));
}

#[test]
fn every_shard_table_has_the_same_skeleton() {
    let b = base();
    let all = render_base(&b);
    assert!(all.starts_with(&render_shared(&b)));
    let first = render_shard(&b, 0);
    for k in 0..b.shards {
        let name = format!("portico-{k:02}");
        assert_eq!(
            render_shard(&b, k),
            first.replace("portico-00", &name),
            "shard {k}"
        );
        assert!(all.contains(&format!("table ip {name} {{")));
    }
    assert!(!all.contains(&format!("portico-{:02}", b.shards)));
}

#[test]
fn base_table_with_nodeport_addresses() {
    let mut b = base();
    b.nodeport_addresses = vec![
        "192.168.77.0/24".parse().unwrap(),
        "10.0.0.1/32".parse().unwrap(),
    ];
    insta::assert_snapshot!("base_nodeport_addresses", skeleton(&b));
}

/// `--masquerade-fully-random`: kube-proxy's `masquerade fully-random` on
/// both masquerade rules; nothing else in the skeleton changes.
#[test]
fn base_table_with_fully_random_masquerade() {
    let b = Base {
        masquerade_fully_random: true,
        ..base()
    };
    let text = skeleton(&b);
    assert_eq!(
        text.replace("masquerade fully-random", "masquerade"),
        skeleton(&base())
    );
    insta::assert_snapshot!("base_fully_random", text);
}

#[test]
fn cluster_ip() {
    let s = svc(
        "web",
        json!({"clusterIP": "10.96.0.20", "ports": [{"port": 80, "targetPort": 8080}]}),
    );
    snap(
        "cluster_ip",
        &s,
        &[slice("web", TWO_PODS, &[("", 8080, "TCP")])],
    );
}

#[test]
fn node_port() {
    let s = svc(
        "nginx-service-nodeport",
        json!({"type": "NodePort", "clusterIP": "10.96.0.30", "ports": [{"port": 80, "targetPort": 80, "nodePort": 30080}]}),
    );
    snap(
        "node_port",
        &s,
        &[slice(
            "nginx-service-nodeport",
            TWO_PODS,
            &[("", 80, "TCP")],
        )],
    );
}

#[test]
fn load_balancer_with_source_ranges() {
    let s = with_lb_ip(
        svc(
            "my-app-lb",
            json!({"type": "LoadBalancer", "clusterIP": "10.96.0.40",
                   "loadBalancerSourceRanges": ["192.168.77.0/24", "10.1.0.0/16"],
                   "ports": [{"port": 80, "targetPort": 3000, "nodePort": 31000}]}),
        ),
        "172.18.255.1",
    );
    snap(
        "load_balancer_source_ranges",
        &s,
        &[slice("my-app-lb", TWO_PODS, &[("", 3000, "TCP")])],
    );
}

#[test]
fn external_ips() {
    let s = svc(
        "ext",
        json!({"clusterIP": "10.96.0.50", "externalIPs": ["203.0.113.7"], "ports": [{"port": 80}]}),
    );
    snap(
        "external_ips",
        &s,
        &[slice("ext", TWO_PODS, &[("", 80, "TCP")])],
    );
}

#[test]
fn no_endpoints_reject_everywhere() {
    let s = svc(
        "empty",
        json!({"type": "NodePort", "clusterIP": "10.96.0.60", "ports": [{"port": 80, "nodePort": 30060}]}),
    );
    snap("no_endpoints", &s, &[]);
}

#[test]
fn external_traffic_policy_local() {
    let s = svc(
        "local",
        json!({"type": "NodePort", "clusterIP": "10.96.0.70", "externalTrafficPolicy": "Local",
               "healthCheckNodePort": 32000, "ports": [{"port": 80, "nodePort": 30070}]}),
    );
    snap(
        "etp_local",
        &s,
        &[slice("local", TWO_PODS, &[("", 80, "TCP")])],
    );
    // A node without a local endpoint drops external traffic.
    let only_b = &[("10.244.2.10", "node-b", true)];
    snap(
        "etp_local_no_local_endpoint",
        &s,
        &[slice("local", only_b, &[("", 80, "TCP")])],
    );
}

#[test]
fn internal_traffic_policy_local() {
    let s = svc(
        "itp",
        json!({"clusterIP": "10.96.0.80", "internalTrafficPolicy": "Local", "ports": [{"port": 80}]}),
    );
    snap(
        "itp_local",
        &s,
        &[slice("itp", TWO_PODS, &[("", 80, "TCP")])],
    );
}

#[test]
fn client_ip_affinity() {
    let s = svc(
        "sticky",
        json!({"clusterIP": "10.96.0.90", "sessionAffinity": "ClientIP",
               "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}}, "ports": [{"port": 80}]}),
    );
    snap(
        "affinity",
        &s,
        &[slice("sticky", TWO_PODS, &[("", 80, "TCP")])],
    );
}

#[test]
fn multi_port_with_named_target_ports() {
    let s = svc(
        "multi",
        json!({"clusterIP": "10.96.0.100", "ports": [
            {"name": "http", "port": 80, "targetPort": "web"},
            {"name": "https", "port": 443, "targetPort": 8443}]}),
    );
    snap(
        "multi_port",
        &s,
        &[slice(
            "multi",
            TWO_PODS,
            &[("http", 8080, "TCP"), ("https", 8443, "TCP")],
        )],
    );
}

#[test]
fn tcp_and_udp_on_the_same_port() {
    let s = svc(
        "dns",
        json!({"type": "NodePort", "clusterIP": "10.96.0.110", "ports": [
            {"name": "dns-tcp", "port": 53, "protocol": "TCP", "nodePort": 30053},
            {"name": "dns-udp", "port": 53, "protocol": "UDP", "nodePort": 30053}]}),
    );
    snap(
        "tcp_udp",
        &s,
        &[slice(
            "dns",
            TWO_PODS,
            &[("dns-tcp", 5353, "TCP"), ("dns-udp", 5353, "UDP")],
        )],
    );
}

#[test]
fn terminating_endpoints_are_a_fallback_only() {
    let s = svc(
        "term",
        json!({"clusterIP": "10.96.0.120", "ports": [{"port": 80}]}),
    );
    let mixed = &[
        ("10.244.1.10", "node-a", true),
        ("10.244.2.10", "node-b", false),
    ];
    let p = plan(
        &s,
        &[slice("term", mixed, &[("", 80, "TCP")])],
        "node-a",
        &base(),
    );
    let rules: Vec<String> = p
        .chains
        .values()
        .flatten()
        .map(ToString::to_string)
        .collect();
    assert!(rules.iter().any(|r| r.contains("dnat to 10.244.1.10:80")));
    assert!(
        !rules.iter().any(|r| r.contains("10.244.2.10")),
        "{rules:?}"
    );
    let only_terminating = &[("10.244.2.10", "node-b", false)];
    snap(
        "terminating_fallback",
        &s,
        &[slice("term", only_terminating, &[("", 80, "TCP")])],
    );
}

#[test]
fn ignored_services_have_no_rules() {
    let labelled: k8s_openapi::api::core::v1::Service = serde_json::from_value(json!({
        "metadata": {"namespace": "kube-system", "name": "kube-dns",
                     "labels": {"service.kubernetes.io/service-proxy-name": "portico-dns"}},
        "spec": {"clusterIP": "10.96.0.10", "ports": [{"port": 53, "protocol": "UDP"}]}
    }))
    .unwrap();
    let headless = svc(
        "headless",
        json!({"clusterIP": "None", "ports": [{"port": 80}]}),
    );
    let external_name = svc(
        "ext",
        json!({"type": "ExternalName", "externalName": "example.com"}),
    );
    for s in [labelled, headless, external_name] {
        assert_eq!(plan(&s, &[], "node-a", &base()), Default::default());
    }
}

#[test]
fn replanning_the_same_input_gives_the_same_plan() {
    let s = svc(
        "web",
        json!({"type": "NodePort", "clusterIP": "10.96.0.20", "ports": [{"port": 80, "nodePort": 30080}]}),
    );
    let slices = [slice("web", TWO_PODS, &[("", 80, "TCP")])];
    assert_eq!(
        plan(&s, &slices, "node-a", &base()),
        plan(&s, &slices, "node-a", &base())
    );
}
