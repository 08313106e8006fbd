//! Unit tests of the record planner: exact names, TTLs and record data.

use super::*;
use hickory_proto::rr::Name;
use serde_json::json;

fn svc(v: serde_json::Value) -> Service {
    serde_json::from_value(v).unwrap()
}
fn slice(v: serde_json::Value) -> EndpointSlice {
    serde_json::from_value(v).unwrap()
}

fn cluster_ip_svc() -> Service {
    svc(json!({
        "metadata": {"name": "my-app-service", "namespace": "default"},
        "spec": {"clusterIP": "10.96.0.20", "ports": [
            {"name": "http", "port": 80, "targetPort": 3000},
            {"port": 9090}
        ]}
    }))
}

fn headless_svc(publish: bool) -> Service {
    svc(json!({
        "metadata": {"name": "web", "namespace": "ns1"},
        "spec": {"clusterIP": "None", "publishNotReadyAddresses": publish,
                 "ports": [{"name": "http", "port": 80}]}
    }))
}

fn web_slice() -> EndpointSlice {
    slice(json!({
        "metadata": {"name": "web-x1", "namespace": "ns1",
                     "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": [
            {"addresses": ["10.244.1.5"], "hostname": "web-0", "conditions": {"ready": true}},
            {"addresses": ["10.244.2.6"], "conditions": {"ready": true}},
            {"addresses": ["10.244.3.7"], "hostname": "web-2", "conditions": {"ready": false}}
        ]
    }))
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn host(name: &str, ips: &[&str], ptr: bool) -> HostEntry {
    HostEntry {
        name: Box::from(name),
        ips: ips.iter().map(|s| ip(s)).collect(),
        ptr,
    }
}

fn ptr_targets(zone: &Zone, addr: &str) -> Vec<(String, Option<String>)> {
    zone.ptr
        .get(&ip(addr))
        .map(|set| {
            set.iter()
                .map(|(owner, host)| (owner.to_string(), host.as_deref().map(str::to_string)))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn cluster_ip_service_gets_addresses_srv_for_named_ports_and_ptr() {
    let zone = plan(&[cluster_ip_svc()], &[], &[], "cluster.local", 5).unwrap();
    let sz = zone.service("default", "my-app-service").unwrap();
    assert_eq!(
        sz.records,
        ServiceRecords::ClusterIp(vec![ip("10.96.0.20")])
    );
    assert_eq!(
        sz.srv,
        vec![SrvSet {
            label: Box::from("_http._tcp"),
            targets: vec![(80, None)]
        }],
        "the unnamed port has no SRV record"
    );
    assert_eq!(sz.protocols, vec![Box::<str>::from("_tcp")]);
    assert_eq!(
        ptr_targets(&zone, "10.96.0.20"),
        vec![("my-app-service.default".to_string(), None)]
    );
}

#[test]
fn dual_stack_service_keeps_both_families() {
    let s = svc(json!({
        "metadata": {"name": "ds", "namespace": "default"},
        "spec": {"clusterIP": "10.96.0.30", "clusterIPs": ["10.96.0.30", "fd00:10:96::30"]}
    }));
    let zone = plan(&[s], &[], &[], "cluster.local", 5).unwrap();
    let sz = zone.service("default", "ds").unwrap();
    assert_eq!(
        sz.records,
        ServiceRecords::ClusterIp(vec![ip("10.96.0.30"), ip("fd00:10:96::30")])
    );
    assert_eq!(ptr_targets(&zone, "fd00:10:96::30").len(), 1);
}

#[test]
fn headless_service_publishes_ready_endpoints_hostnames_and_srv() {
    let zone = plan(
        &[headless_svc(false)],
        &[web_slice()],
        &[],
        "cluster.local",
        5,
    )
    .unwrap();
    let sz = zone.service("ns1", "web").unwrap();
    assert_eq!(
        sz.records,
        ServiceRecords::Headless {
            addresses: vec![ip("10.244.1.5"), ip("10.244.2.6")],
            hosts: vec![
                host("10-244-2-6", &["10.244.2.6"], true),
                host("web-0", &["10.244.1.5"], true),
            ],
        },
        "not-ready endpoints are left out; endpoints without hostname get their dashed IP"
    );
    assert_eq!(
        sz.srv,
        vec![SrvSet {
            label: Box::from("_http._tcp"),
            targets: vec![(8080, Some(0)), (8080, Some(1))]
        }]
    );
    assert_eq!(
        ptr_targets(&zone, "10.244.1.5"),
        vec![("web.ns1".to_string(), Some("web-0".to_string()))]
    );
}

#[test]
fn publish_not_ready_addresses_includes_not_ready_endpoints() {
    let zone = plan(
        &[headless_svc(true)],
        &[web_slice()],
        &[],
        "cluster.local",
        5,
    )
    .unwrap();
    let ServiceRecords::Headless { addresses, hosts } =
        &zone.service("ns1", "web").unwrap().records
    else {
        panic!("headless expected");
    };
    assert_eq!(addresses.len(), 3);
    assert!(hosts.iter().any(|h| &*h.name == "web-2"));
}

#[test]
fn headless_service_without_endpoints_has_no_name() {
    let zone = plan(&[headless_svc(false)], &[], &[], "cluster.local", 5).unwrap();
    assert!(!zone.service("ns1", "web").unwrap().name_exists());
}

#[test]
fn external_name_is_a_cname_target() {
    let s = svc(json!({
        "metadata": {"name": "ext", "namespace": "default"},
        "spec": {"type": "ExternalName", "externalName": "api.example.com"}
    }));
    let zone = plan(&[s], &[], &[], "cluster.local", 5).unwrap();
    assert_eq!(
        zone.service("default", "ext").unwrap().records,
        ServiceRecords::ExternalName(Name::from_ascii("api.example.com.").unwrap())
    );
}

#[test]
fn pod_hostname_and_subdomain_get_a_name_under_the_headless_service() {
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "busybox-1", "namespace": "ns1"},
        "spec": {"hostname": "busybox-1", "subdomain": "web", "containers": []},
        "status": {"podIP": "10.244.9.9", "conditions": [{"type": "Ready", "status": "True"}]}
    }))
    .unwrap();
    let zone = plan(&[headless_svc(false)], &[], &[pod], "cluster.local", 5).unwrap();
    let ServiceRecords::Headless { hosts, .. } = &zone.service("ns1", "web").unwrap().records
    else {
        panic!("headless expected");
    };
    assert_eq!(hosts, &vec![host("busybox-1", &["10.244.9.9"], false)]);
    assert!(ptr_targets(&zone, "10.244.9.9").is_empty());
}

fn address_count(zone: &Zone) -> usize {
    match &zone.service("ns1", "web").unwrap().records {
        ServiceRecords::Headless { addresses, .. } => addresses.len(),
        _ => 0,
    }
}

#[test]
fn incremental_changes_follow_readiness_and_deletion() {
    let mut planner = Planner::new("cluster.local", 5).unwrap();
    planner.apply(Change::UpsertService(
        ServiceInfo::from_service(&headless_svc(false)).unwrap(),
    ));
    let mut info = SliceInfo::from_slice(&web_slice()).unwrap();
    planner.apply(Change::UpsertSlice(info.clone()));
    let before = planner.zone().clone();
    assert_eq!(address_count(planner.zone()), 2);

    info.endpoints[2].ready = true;
    planner.apply(Change::UpsertSlice(info));
    assert_eq!(address_count(planner.zone()), 3);
    assert_eq!(address_count(&before), 2, "snapshots are immutable");
    assert!(planner
        .zone()
        .ptr
        .get(&"10.244.3.7".parse().unwrap())
        .is_some());

    planner.apply(Change::DeleteSlice {
        namespace: "ns1".into(),
        name: "web-x1".into(),
    });
    assert!(!planner.zone().service("ns1", "web").unwrap().name_exists());
    assert!(planner
        .zone()
        .ptr
        .get(&"10.244.3.7".parse().unwrap())
        .is_none());

    planner.apply(Change::DeleteService {
        namespace: "ns1".into(),
        name: "web".into(),
    });
    assert!(planner.zone().service("ns1", "web").is_none());
    assert!(planner.zone().namespaces.get("ns1").is_none());
}

#[test]
fn slices_seen_before_their_service_count_once_it_appears() {
    let mut planner = Planner::new("cluster.local", 5).unwrap();
    planner.apply(Change::UpsertSlice(
        SliceInfo::from_slice(&web_slice()).unwrap(),
    ));
    assert!(planner.zone().service("ns1", "web").is_none());
    planner.apply(Change::UpsertService(
        ServiceInfo::from_service(&headless_svc(false)).unwrap(),
    ));
    assert_eq!(address_count(planner.zone()), 2);
}

#[test]
fn dashed_hostnames_match_coredns() {
    assert_eq!(dashed("10.244.0.5".parse().unwrap()), "10-244-0-5");
    assert_eq!(dashed("fd00::5".parse().unwrap()), "fd00--5");
}
