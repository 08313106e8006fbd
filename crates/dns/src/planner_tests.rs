//! Unit tests of the record planner: exact names, TTLs and record data.

use super::*;
use serde_json::json;

fn svc(v: serde_json::Value) -> Service {
    serde_json::from_value(v).unwrap()
}
fn slice(v: serde_json::Value) -> EndpointSlice {
    serde_json::from_value(v).unwrap()
}

fn texts(records: &[Record]) -> Vec<String> {
    records
        .iter()
        .map(|r| format!("{} {} {} {}", r.name, r.ttl, r.record_type(), r.data))
        .collect()
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

#[test]
fn cluster_ip_service_gets_a_srv_and_ptr() {
    let zone = plan(&[cluster_ip_svc()], &[], &[], "cluster.local", 5).unwrap();
    let sz = zone.service("default", "my-app-service").unwrap();
    assert_eq!(texts(&sz.a), vec!["my-app-service.default.svc.cluster.local. 5 A 10.96.0.20"]);
    assert!(sz.aaaa.is_empty());
    let srv = sz.srv.get("_http._tcp").unwrap();
    assert_eq!(
        texts(&srv.records),
        vec!["_http._tcp.my-app-service.default.svc.cluster.local. 5 SRV 0 100 80 my-app-service.default.svc.cluster.local."]
    );
    assert_eq!(texts(&srv.additionals), texts(&sz.a));
    assert_eq!(sz.srv.len(), 1, "the unnamed port has no SRV record");
    let ptr: Vec<Record> = sz.ptrs.iter().map(|(_, r)| r.clone()).collect();
    assert_eq!(
        texts(&ptr),
        vec!["20.0.96.10.in-addr.arpa. 5 PTR my-app-service.default.svc.cluster.local."]
    );
}

#[test]
fn dual_stack_service_gets_a_and_aaaa() {
    let s = svc(json!({
        "metadata": {"name": "ds", "namespace": "default"},
        "spec": {"clusterIP": "10.96.0.30", "clusterIPs": ["10.96.0.30", "fd00:10:96::30"]}
    }));
    let zone = plan(&[s], &[], &[], "cluster.local", 5).unwrap();
    let sz = zone.service("default", "ds").unwrap();
    assert_eq!(texts(&sz.aaaa), vec!["ds.default.svc.cluster.local. 5 AAAA fd00:10:96::30"]);
    assert_eq!(sz.ptrs.len(), 2);
}

#[test]
fn headless_service_publishes_ready_endpoints_hostnames_and_srv() {
    let zone = plan(&[headless_svc(false)], &[web_slice()], &[], "cluster.local", 5).unwrap();
    let sz = zone.service("ns1", "web").unwrap();
    assert_eq!(
        texts(&sz.a),
        vec![
            "web.ns1.svc.cluster.local. 5 A 10.244.1.5",
            "web.ns1.svc.cluster.local. 5 A 10.244.2.6",
        ]
    );
    assert_eq!(
        texts(&sz.hosts.get("web-0").unwrap().a),
        vec!["web-0.web.ns1.svc.cluster.local. 5 A 10.244.1.5"]
    );
    assert_eq!(
        texts(&sz.hosts.get("10-244-2-6").unwrap().a),
        vec!["10-244-2-6.web.ns1.svc.cluster.local. 5 A 10.244.2.6"]
    );
    assert!(sz.hosts.get("web-2").is_none(), "not-ready endpoints are left out");
    assert_eq!(
        texts(&sz.srv.get("_http._tcp").unwrap().records),
        vec![
            "_http._tcp.web.ns1.svc.cluster.local. 5 SRV 0 50 8080 10-244-2-6.web.ns1.svc.cluster.local.",
            "_http._tcp.web.ns1.svc.cluster.local. 5 SRV 0 50 8080 web-0.web.ns1.svc.cluster.local.",
        ]
    );
    let mut ptr: Vec<String> = sz.ptrs.iter().map(|(_, r)| format!("{} {}", r.name, r.data)).collect();
    ptr.sort();
    assert_eq!(
        ptr,
        vec![
            "5.1.244.10.in-addr.arpa. web-0.web.ns1.svc.cluster.local.",
            "6.2.244.10.in-addr.arpa. 10-244-2-6.web.ns1.svc.cluster.local.",
        ]
    );
}

#[test]
fn publish_not_ready_addresses_includes_not_ready_endpoints() {
    let zone = plan(&[headless_svc(true)], &[web_slice()], &[], "cluster.local", 5).unwrap();
    let sz = zone.service("ns1", "web").unwrap();
    assert_eq!(sz.a.len(), 3);
    assert!(sz.hosts.contains_key("web-2"));
}

#[test]
fn headless_service_without_endpoints_has_no_name() {
    let zone = plan(&[headless_svc(false)], &[], &[], "cluster.local", 5).unwrap();
    assert!(!zone.service("ns1", "web").unwrap().name_exists());
}

#[test]
fn external_name_is_a_cname() {
    let s = svc(json!({
        "metadata": {"name": "ext", "namespace": "default"},
        "spec": {"type": "ExternalName", "externalName": "api.example.com"}
    }));
    let zone = plan(&[s], &[], &[], "cluster.local", 5).unwrap();
    let sz = zone.service("default", "ext").unwrap();
    assert_eq!(
        texts(&[sz.cname.clone().unwrap()]),
        vec!["ext.default.svc.cluster.local. 5 CNAME api.example.com."]
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
    let sz = zone.service("ns1", "web").unwrap();
    assert_eq!(
        texts(&sz.hosts.get("busybox-1").unwrap().a),
        vec!["busybox-1.web.ns1.svc.cluster.local. 5 A 10.244.9.9"]
    );
}

#[test]
fn incremental_changes_follow_readiness_and_deletion() {
    let mut planner = Planner::new("cluster.local", 5).unwrap();
    planner.apply(Change::UpsertService(ServiceInfo::from_service(&headless_svc(false)).unwrap()));
    let mut info = SliceInfo::from_slice(&web_slice()).unwrap();
    planner.apply(Change::UpsertSlice(info.clone()));
    let before = planner.zone().clone();
    assert_eq!(planner.zone().service("ns1", "web").unwrap().a.len(), 2);

    info.endpoints[2].ready = true;
    planner.apply(Change::UpsertSlice(info));
    assert_eq!(planner.zone().service("ns1", "web").unwrap().a.len(), 3);
    assert_eq!(before.service("ns1", "web").unwrap().a.len(), 2, "snapshots are immutable");
    assert!(planner.zone().ptr.get(&"10.244.3.7".parse().unwrap()).is_some());

    planner.apply(Change::DeleteSlice { namespace: "ns1".into(), name: "web-x1".into() });
    assert!(!planner.zone().service("ns1", "web").unwrap().name_exists());
    assert!(planner.zone().ptr.get(&"10.244.3.7".parse().unwrap()).is_none());

    planner.apply(Change::DeleteService { namespace: "ns1".into(), name: "web".into() });
    assert!(planner.zone().service("ns1", "web").is_none());
    assert!(planner.zone().namespaces.get("ns1").is_none());
}

#[test]
fn slices_seen_before_their_service_count_once_it_appears() {
    let mut planner = Planner::new("cluster.local", 5).unwrap();
    planner.apply(Change::UpsertSlice(SliceInfo::from_slice(&web_slice()).unwrap()));
    assert!(planner.zone().service("ns1", "web").is_none());
    planner.apply(Change::UpsertService(ServiceInfo::from_service(&headless_svc(false)).unwrap()));
    assert_eq!(planner.zone().service("ns1", "web").unwrap().a.len(), 2);
}

#[test]
fn dashed_hostnames_match_coredns() {
    assert_eq!(dashed("10.244.0.5".parse().unwrap()), "10-244-0-5");
    assert_eq!(dashed("fd00::5".parse().unwrap()), "fd00--5");
}
