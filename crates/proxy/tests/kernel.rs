//! Kernel tests: the planned ruleset programmed into a node namespace of a
//! throwaway topology (client ↔ node ↔ two pods), checked with real traffic,
//! once through each applier (`nft` text and netlink). They need root (to
//! create namespaces) and skip without it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod netns;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use netns::*;
use portico_proxy::plan::{Base, ServicePlan};
use portico_proxy::{ConntrackCli, Nft, NftCli, NftNetlink, Proxier};
use serde_json::json;

type P = Proxier<Box<dyn Nft>, ConntrackCli>;

/// Which applier programs the kernel.
#[derive(Debug, Clone, Copy)]
enum Applier {
    Cli,
    Netlink,
}

fn applier(t: &Topology, a: Applier) -> Box<dyn Nft> {
    match a {
        Applier::Cli => Box::new(NftCli { prefix: t.prefix() }),
        Applier::Netlink => Box::new(NftNetlink::open_in_netns(&t.node).unwrap()),
    }
}

fn proxier(t: &Topology, a: Applier) -> P {
    proxier_with(t, a, base())
}

fn proxier_with(t: &Topology, a: Applier, b: Base) -> P {
    Proxier::new(applier(t, a), ConntrackCli { prefix: t.prefix() }, b)
}

/// Plans `services` as node `node` sees them and syncs every one of them.
fn program(
    p: &mut P,
    node: &str,
    b: &Base,
    services: &[(&Service, &[EndpointSlice])],
) -> portico_proxy::SyncStats {
    let mut desired: BTreeMap<String, Arc<ServicePlan>> = p.applied().clone();
    let mut changed: BTreeSet<String> = p.applied().keys().cloned().collect();
    desired.clear();
    for (svc, slices) in services {
        let key = format!("default/{}", svc.metadata.name.as_deref().unwrap());
        desired.insert(key.clone(), Arc::new(plan(svc, slices, node, b)));
        changed.insert(key);
    }
    p.sync(&desired, &changed, Instant::now()).unwrap()
}

fn pods() -> Vec<(&'static str, &'static str, bool)> {
    vec![(POD_A, "node-a", true), (POD_B, "node-b", true)]
}

fn nodeport_svc(port: u16, node_port: u16, extra: serde_json::Value) -> Service {
    let mut spec = json!({"type": "NodePort", "clusterIP": "10.96.0.30",
                          "ports": [{"port": port, "targetPort": 8080, "nodePort": node_port}]});
    if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
        s.extend(e.clone());
    }
    svc("web", spec)
}

fn names(bodies: &[String]) -> BTreeSet<String> {
    bodies
        .iter()
        .map(|b| b.split(' ').next().unwrap().to_string())
        .collect()
}

fn set(v: &[&str]) -> BTreeSet<String> {
    v.iter().map(ToString::to_string).collect()
}

macro_rules! require_root {
    () => {
        if !is_root() {
            eprintln!("skipping: kernel tests need root to create network namespaces");
            return;
        }
    };
}

fn nodeport_and_cluster_ip_balance_across_two_backends_and_restart_converges(a: Applier) {
    require_root!();
    let mut t = Topology::new();
    t.start_backends(8080);
    let s = nodeport_svc(80, 30080, json!({}));
    let slices = [slice("web", &pods(), &[("", 8080, "TCP")])];
    let mut p = proxier(&t, a);
    let stats = program(&mut p, "node-a", &base(), &[(&s, &slices)]);
    assert!(stats.full);

    // client -> NodeIP:30080 -> pod:8080, source masqueraded to the node.
    let bodies = http_many(&t.client, addr(&format!("{NODE_IP}:30080")), 40);
    assert_eq!(names(&bodies), set(&["pod-a", "pod-b"]), "{bodies:?}");
    assert!(
        bodies.iter().all(|b| b.ends_with(NODE_POD_GW)),
        "{bodies:?}"
    );
    // The ClusterIP from the node itself.
    let bodies = http_many(&t.node, addr("10.96.0.30:80"), 40);
    assert_eq!(names(&bodies), set(&["pod-a", "pod-b"]), "{bodies:?}");

    // A restarted proxy (fresh state, full sync) programs the same ruleset.
    let before = t.list_table();
    let mut restarted = proxier(&t, a);
    assert!(program(&mut restarted, "node-a", &base(), &[(&s, &slices)]).full);
    assert_eq!(before, t.list_table());
    // Re-planning unchanged input changes nothing.
    let stats = program(&mut restarted, "node-a", &base(), &[(&s, &slices)]);
    assert_eq!((stats.full, stats.changed_services), (false, 0));
}

fn pods_keep_their_source_ip_and_hairpin_is_masqueraded(a: Applier) {
    require_root!();
    let mut t = Topology::new();
    t.start_backends(8080);
    let s = nodeport_svc(80, 30080, json!({}));
    let slices = [slice("web", &pods(), &[("", 8080, "TCP")])];
    let mut p = proxier(&t, a);
    program(&mut p, "node-a", &base(), &[(&s, &slices)]);
    let bodies = http_many(&t.pod_a, addr("10.96.0.30:80"), 40);
    assert_eq!(names(&bodies), set(&["pod-a", "pod-b"]), "{bodies:?}");
    for b in &bodies {
        if b.starts_with("pod-b") {
            // pod -> ClusterIP -> other pod: no SNAT.
            assert_eq!(b, &format!("pod-b {POD_A}"));
        } else {
            // pod -> ClusterIP -> itself: masqueraded to the node, or it would answer itself.
            assert_eq!(b, &format!("pod-a {NODE_POD_GW}"));
        }
    }
}

fn established_connections_survive_a_restart_full_sync(a: Applier) {
    require_root!();
    let mut t = Topology::new();
    t.start_backends(8080);
    let s = nodeport_svc(80, 30080, json!({}));
    let slices = [slice("web", &pods(), &[("", 8080, "TCP")])];
    let mut p = proxier(&t, a);
    program(&mut p, "node-a", &base(), &[(&s, &slices)]);
    let mut conn = Conn::open(&t.client, addr(&format!("{NODE_IP}:30080")));
    let first = conn.ask("ECHO 1");
    let pod = first.split(' ').next().unwrap().to_string();
    // A restarted agent recreates the table in one transaction.
    let mut restarted = proxier(&t, a);
    assert!(program(&mut restarted, "node-a", &base(), &[(&s, &slices)]).full);
    assert_eq!(conn.ask("ECHO 2"), format!("{pod} ECHO 2"));
}

fn service_without_endpoints_refuses_at_once(a: Applier) {
    require_root!();
    let t = Topology::new();
    let s = nodeport_svc(80, 30080, json!({}));
    let mut p = proxier(&t, a);
    program(&mut p, "node-a", &base(), &[(&s, &[])]);
    for (ns, target) in [
        (&t.client, format!("{NODE_IP}:30080")),
        (&t.node, "10.96.0.30:80".to_string()),
    ] {
        let started = Instant::now();
        let err = http_get(ns, addr(&target), Duration::from_secs(3)).unwrap_err();
        assert_eq!(
            err.kind(),
            std::io::ErrorKind::ConnectionRefused,
            "{target}: {err}"
        );
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "{target} took {:?}",
            started.elapsed()
        );
    }
}

fn external_traffic_policy_local_keeps_client_ip_and_other_nodes_drop(a: Applier) {
    require_root!();
    let mut t = Topology::new();
    t.start_backends(8080);
    let s = nodeport_svc(
        80,
        30080,
        json!({"externalTrafficPolicy": "Local", "healthCheckNodePort": 32000}),
    );
    let slices = [slice("web", &pods(), &[("", 8080, "TCP")])];
    let mut p = proxier(&t, a);
    program(&mut p, "node-a", &base(), &[(&s, &slices)]);
    let bodies = http_many(&t.client, addr(&format!("{NODE_IP}:30080")), 20);
    // Only the local pod serves, and it sees the real client address.
    assert!(
        bodies.iter().all(|b| b == &format!("pod-a {CLIENT_IP}")),
        "{bodies:?}"
    );
    assert_eq!(p.applied()["default/web"].health[&32000].local_endpoints, 1);

    // The same Service as a node without local endpoints sees it: dropped, not refused.
    let stats = program(&mut p, "node-c", &base(), &[(&s, &slices)]);
    assert!(!stats.full);
    let err = http_get(
        &t.client,
        addr(&format!("{NODE_IP}:30080")),
        Duration::from_millis(800),
    )
    .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut, "{err}");
    assert_eq!(p.applied()["default/web"].health[&32000].local_endpoints, 0);
    // The ClusterIP still works from the node.
    let bodies = http_many(&t.node, addr("10.96.0.30:80"), 20);
    assert_eq!(names(&bodies), set(&["pod-a", "pod-b"]));
}

fn client_ip_affinity_sticks_and_none_spreads_again(a: Applier) {
    require_root!();
    let mut t = Topology::new();
    t.start_backends(8080);
    let sticky = nodeport_svc(80, 30080, json!({"sessionAffinity": "ClientIP"}));
    let slices = [slice("web", &pods(), &[("", 8080, "TCP")])];
    let mut p = proxier(&t, a);
    program(&mut p, "node-a", &base(), &[(&sticky, &slices)]);
    let bodies = http_many(&t.client, addr(&format!("{NODE_IP}:30080")), 30);
    assert_eq!(names(&bodies).len(), 1, "{bodies:?}");
    let plain = nodeport_svc(80, 30080, json!({}));
    program(&mut p, "node-a", &base(), &[(&plain, &slices)]);
    let bodies = http_many(&t.client, addr(&format!("{NODE_IP}:30080")), 40);
    assert_eq!(names(&bodies), set(&["pod-a", "pod-b"]), "{bodies:?}");
}

fn udp_node_port_reaches_both_backends(a: Applier) {
    require_root!();
    let mut t = Topology::new();
    t.start_backends(8080);
    let s = svc(
        "web",
        json!({"type": "NodePort", "clusterIP": "10.96.0.30",
               "ports": [{"port": 53, "protocol": "UDP", "targetPort": 8080, "nodePort": 30053}]}),
    );
    let slices = [slice("web", &pods(), &[("", 8080, "UDP")])];
    let mut p = proxier(&t, a);
    program(&mut p, "node-a", &base(), &[(&s, &slices)]);
    let mut seen = BTreeSet::new();
    for _ in 0..40 {
        let answer = udp_ask(
            &t.client,
            addr(&format!("{NODE_IP}:30053")),
            Duration::from_secs(2),
        )
        .unwrap();
        seen.insert(answer.split(' ').next().unwrap().to_string());
    }
    assert_eq!(seen, set(&["pod-a", "pod-b"]));
}

fn removing_a_udp_endpoint_deletes_its_conntrack_entries(a: Applier) {
    require_root!();
    let mut t = Topology::new();
    t.start_backends(8080);
    let s = svc(
        "web",
        json!({"type": "NodePort", "clusterIP": "10.96.0.30",
               "ports": [{"port": 53, "protocol": "UDP", "targetPort": 8080, "nodePort": 30053}]}),
    );
    let mut p = proxier(&t, a);
    program(
        &mut p,
        "node-a",
        &base(),
        &[(&s, &[slice("web", &pods(), &[("", 8080, "UDP")])])],
    );
    let target = addr(&format!("{NODE_IP}:30053"));
    let first = udp_ask_from(&t.client, 40053, target, Duration::from_secs(2)).unwrap();
    let first = first.split(' ').next().unwrap().to_string();
    // The same 5-tuple keeps its conntrack entry, so the same pod answers.
    for _ in 0..5 {
        assert!(
            udp_ask_from(&t.client, 40053, target, Duration::from_secs(2))
                .unwrap()
                .starts_with(&first)
        );
    }
    // Remove the endpoint that answered (its process keeps running): the
    // stale entry must go, so the flow moves to the other pod.
    let (keep_ip, other) = if first == "pod-a" {
        (POD_B, "pod-b")
    } else {
        (POD_A, "pod-a")
    };
    let node = if keep_ip == POD_A { "node-a" } else { "node-b" };
    program(
        &mut p,
        "node-a",
        &base(),
        &[(
            &s,
            &[slice("web", &[(keep_ip, node, true)], &[("", 8080, "UDP")])],
        )],
    );
    let answer = udp_ask_from(&t.client, 40053, target, Duration::from_secs(2)).unwrap();
    assert!(answer.starts_with(other), "{answer}");
}

fn incremental_changes_take_effect(a: Applier) {
    require_root!();
    let mut t = Topology::new();
    t.start_backends(8080);
    let s = nodeport_svc(80, 30080, json!({}));
    let one = [slice(
        "web",
        &[(POD_A, "node-a", true)],
        &[("", 8080, "TCP")],
    )];
    let mut p = proxier(&t, a);
    program(&mut p, "node-a", &base(), &[(&s, &one)]);
    let bodies = http_many(&t.client, addr(&format!("{NODE_IP}:30080")), 10);
    assert_eq!(names(&bodies), set(&["pod-a"]));

    // Add an endpoint.
    let two = [slice("web", &pods(), &[("", 8080, "TCP")])];
    let stats = program(&mut p, "node-a", &base(), &[(&s, &two)]);
    assert_eq!((stats.full, stats.changed_services), (false, 1));
    let bodies = http_many(&t.client, addr(&format!("{NODE_IP}:30080")), 40);
    assert_eq!(names(&bodies), set(&["pod-a", "pod-b"]));

    // Change the Service port: the new one serves, the old one is gone.
    let moved = nodeport_svc(81, 30081, json!({}));
    assert!(!program(&mut p, "node-a", &base(), &[(&moved, &two)]).full);
    assert_eq!(
        names(&http_many(&t.node, addr("10.96.0.30:81"), 20)),
        set(&["pod-a", "pod-b"])
    );
    assert_eq!(
        names(&http_many(&t.client, addr(&format!("{NODE_IP}:30081")), 20)),
        set(&["pod-a", "pod-b"])
    );
    assert!(http_get(
        &t.client,
        addr(&format!("{NODE_IP}:30080")),
        Duration::from_millis(500)
    )
    .is_err());

    // Delete the Service; after the deferred deletion its chains are gone too.
    program(&mut p, "node-a", &base(), &[]);
    let table = t.list_table();
    assert!(
        !table.contains("dnat to") && !table.contains("goto service-"),
        "{table}"
    );
    assert!(http_get(
        &t.client,
        addr(&format!("{NODE_IP}:30081")),
        Duration::from_millis(500)
    )
    .is_err());
    std::thread::sleep(portico_proxy::apply::DELETE_DELAY);
    assert!(p.has_pending_deletes());
    p.sync(&BTreeMap::new(), &BTreeSet::new(), Instant::now())
        .unwrap();
    assert!(!p.has_pending_deletes());
    assert!(
        !t.list_table().contains("default/web"),
        "{}",
        t.list_table()
    );
}

fn load_balancer_source_ranges_filter_clients(a: Applier) {
    require_root!();
    let mut t = Topology::new();
    t.start_backends(8080);
    let lb = |ranges: serde_json::Value| {
        with_lb_ip(
            svc(
                "web",
                json!({"type": "LoadBalancer", "clusterIP": "10.96.0.30", "loadBalancerSourceRanges": ranges,
                       "ports": [{"port": 80, "targetPort": 8080, "nodePort": 30080}]}),
            ),
            "172.18.255.1",
        )
    };
    let slices = [slice("web", &pods(), &[("", 8080, "TCP")])];
    let mut p = proxier(&t, a);
    program(
        &mut p,
        "node-a",
        &base(),
        &[(&lb(json!(["192.168.77.0/24"])), &slices)],
    );
    assert_eq!(
        names(&http_many(&t.client, addr("172.18.255.1:80"), 20)),
        set(&["pod-a", "pod-b"])
    );
    program(
        &mut p,
        "node-a",
        &base(),
        &[(&lb(json!(["10.9.0.0/16"])), &slices)],
    );
    let err = http_get(
        &t.client,
        addr("172.18.255.1:80"),
        Duration::from_millis(800),
    )
    .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut, "{err}");
}

fn nodeport_addresses_limit_which_addresses_serve(a: Applier) {
    require_root!();
    let mut t = Topology::new();
    t.start_backends(8080);
    let s = nodeport_svc(80, 30080, json!({}));
    let slices = [slice("web", &pods(), &[("", 8080, "TCP")])];
    // Only the pod-bridge address serves NodePorts; the client-facing one does not.
    let mut b = base();
    b.nodeport_addresses = vec!["10.244.1.0/24".parse().unwrap()];
    let mut p = proxier_with(&t, a, b.clone());
    program(&mut p, "node-a", &b, &[(&s, &slices)]);
    assert!(http_get(
        &t.client,
        addr(&format!("{NODE_IP}:30080")),
        Duration::from_millis(800)
    )
    .is_err());
    assert_eq!(
        names(&http_many(
            &t.client,
            addr(&format!("{NODE_POD_GW}:30080")),
            20
        )),
        set(&["pod-a", "pod-b"])
    );
}

fn type_changes_cluster_ip_node_port_load_balancer_and_back_apply_incrementally(a: Applier) {
    require_root!();
    let mut t = Topology::new();
    t.start_backends(8080);
    let slices = [slice("web", &pods(), &[("", 8080, "TCP")])];
    let cluster_ip = svc(
        "web",
        json!({"clusterIP": "10.96.0.30", "ports": [{"port": 80, "targetPort": 8080}]}),
    );
    let node_port = nodeport_svc(80, 30080, json!({}));
    let lb = with_lb_ip(
        svc(
            "web",
            json!({"type": "LoadBalancer", "clusterIP": "10.96.0.30",
                   "ports": [{"port": 80, "targetPort": 8080, "nodePort": 30080}]}),
        ),
        "172.18.255.1",
    );
    let both = set(&["pod-a", "pod-b"]);
    let nodeport = addr(&format!("{NODE_IP}:30080"));
    let lb_ip = addr("172.18.255.1:80");
    let short = Duration::from_millis(500);
    let mut p = proxier(&t, a);

    program(&mut p, "node-a", &base(), &[(&cluster_ip, &slices)]);
    assert_eq!(names(&http_many(&t.node, addr("10.96.0.30:80"), 20)), both);
    assert!(http_get(&t.client, nodeport, short).is_err());

    assert!(!program(&mut p, "node-a", &base(), &[(&node_port, &slices)]).full);
    assert_eq!(names(&http_many(&t.client, nodeport, 20)), both);

    assert!(!program(&mut p, "node-a", &base(), &[(&lb, &slices)]).full);
    assert_eq!(names(&http_many(&t.client, lb_ip, 20)), both);
    assert_eq!(names(&http_many(&t.client, nodeport, 20)), both);

    assert!(!program(&mut p, "node-a", &base(), &[(&cluster_ip, &slices)]).full);
    assert_eq!(names(&http_many(&t.node, addr("10.96.0.30:80"), 20)), both);
    assert!(http_get(&t.client, nodeport, short).is_err());
    assert!(http_get(&t.client, lb_ip, short).is_err());
}

/// Runs each scenario once per applier.
macro_rules! both_appliers {
    ($($name:ident),* $(,)?) => {
        mod nft_cli {
            $(#[test] fn $name() { super::$name(super::Applier::Cli) })*
        }
        mod netlink {
            $(#[test] fn $name() { super::$name(super::Applier::Netlink) })*
        }
    };
}

both_appliers!(
    nodeport_and_cluster_ip_balance_across_two_backends_and_restart_converges,
    pods_keep_their_source_ip_and_hairpin_is_masqueraded,
    established_connections_survive_a_restart_full_sync,
    service_without_endpoints_refuses_at_once,
    external_traffic_policy_local_keeps_client_ip_and_other_nodes_drop,
    client_ip_affinity_sticks_and_none_spreads_again,
    udp_node_port_reaches_both_backends,
    removing_a_udp_endpoint_deletes_its_conntrack_entries,
    incremental_changes_take_effect,
    load_balancer_source_ranges_filter_clients,
    nodeport_addresses_limit_which_addresses_serve,
    type_changes_cluster_ip_node_port_load_balancer_and_back_apply_incrementally,
);

/// Every Service shape at once, for the parity test.
fn all_shapes() -> Vec<(Service, Vec<EndpointSlice>)> {
    let two = || vec![slice("web", &pods(), &[("", 8080, "TCP")])];
    vec![
        (nodeport_svc(80, 30080, json!({})), two()),
        (
            svc(
                "sticky",
                json!({"type": "NodePort", "clusterIP": "10.96.0.31", "sessionAffinity": "ClientIP",
                       "ports": [{"port": 80, "targetPort": 8080, "nodePort": 30081}]}),
            ),
            vec![slice("sticky", &pods(), &[("", 8080, "TCP")])],
        ),
        (
            svc(
                "local",
                json!({"type": "NodePort", "clusterIP": "10.96.0.32", "externalTrafficPolicy": "Local",
                       "internalTrafficPolicy": "Local", "healthCheckNodePort": 32000,
                       "ports": [{"port": 80, "targetPort": 8080, "nodePort": 30082}]}),
            ),
            vec![slice("local", &pods(), &[("", 8080, "TCP")])],
        ),
        (
            with_lb_ip(
                svc(
                    "lb",
                    json!({"type": "LoadBalancer", "clusterIP": "10.96.0.33",
                           "loadBalancerSourceRanges": ["192.168.77.0/24"], "externalIPs": ["172.18.0.9"],
                           "ports": [{"port": 53, "protocol": "UDP", "targetPort": 8080, "nodePort": 30053}]}),
                ),
                "172.18.255.1",
            ),
            vec![slice("lb", &pods(), &[("", 8080, "UDP")])],
        ),
        (
            svc(
                "empty",
                json!({"type": "NodePort", "clusterIP": "10.96.0.34",
                       "ports": [{"port": 80, "targetPort": 8080, "nodePort": 30084}]}),
            ),
            vec![],
        ),
    ]
}

#[test]
fn netlink_and_nft_program_the_same_table() {
    require_root!();
    let shapes = all_shapes();
    let input: Vec<(&Service, &[EndpointSlice])> =
        shapes.iter().map(|(s, e)| (s, e.as_slice())).collect();
    let (cli_ns, nl_ns) = (Topology::new(), Topology::new());
    let mut cli = proxier(&cli_ns, Applier::Cli);
    let mut nl = proxier(&nl_ns, Applier::Netlink);
    program(&mut cli, "node-a", &base(), &input);
    program(&mut nl, "node-a", &base(), &input);
    assert_eq!(cli_ns.list_table(), nl_ns.list_table());
    // And after an incremental change (one Service loses an endpoint, one goes away).
    let mut changed = input.clone();
    changed.truncate(4);
    let one = [slice(
        "web",
        &[(POD_A, "node-a", true)],
        &[("", 8080, "TCP")],
    )];
    changed[0].1 = &one;
    program(&mut cli, "node-a", &base(), &changed);
    program(&mut nl, "node-a", &base(), &changed);
    assert_eq!(cli_ns.list_table(), nl_ns.list_table());
}

#[test]
fn netlink_rejected_transaction_changes_nothing_and_reports_the_error() {
    require_root!();
    let t = Topology::new();
    let mut p = proxier(&t, Applier::Netlink);
    let s = nodeport_svc(80, 30080, json!({}));
    let slices = [slice("web", &pods(), &[("", 8080, "TCP")])];
    program(&mut p, "node-a", &base(), &[(&s, &slices)]);
    let before = t.list_table();
    // Deleting a chain that does not exist fails the whole batch.
    let mut nft = NftNetlink::open_in_netns(&t.node).unwrap();
    let diff = portico_proxy::render::Diff {
        add_elements: vec![(
            portico_proxy::plan::Table::Shard(0),
            portico_proxy::plan::Map::ServiceIps,
            "10.96.0.99 . tcp . 80".into(),
            "goto reject-chain".into(),
        )],
        ..Default::default()
    };
    let txn = portico_proxy::Txn::Incremental {
        diff: &diff,
        delete_chains: &[(
            portico_proxy::plan::Table::Shard(0),
            "no-such-chain".to_string(),
        )],
        delete_sets: &[],
    };
    let err = nft.apply_txn(&txn).unwrap_err().to_string();
    assert!(err.contains("No such file or directory"), "{err}");
    assert_eq!(before, t.list_table());
}
