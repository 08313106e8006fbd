//! Unit tests of answers: rcodes, sections and exact records per question.

use super::*;
use crate::plan;
use hickory_proto::rr::Name;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::json;

fn zone() -> Zone {
    let services: Vec<Service> = [
        json!({"metadata": {"name": "my-app-service", "namespace": "default"},
               "spec": {"clusterIP": "10.96.0.20", "ports": [{"name": "http", "port": 80}]}}),
        json!({"metadata": {"name": "web", "namespace": "ns1"},
               "spec": {"clusterIP": "None", "ports": [{"name": "http", "port": 80}]}}),
        json!({"metadata": {"name": "empty", "namespace": "ns1"},
               "spec": {"clusterIP": "None"}}),
        json!({"metadata": {"name": "ext", "namespace": "default"},
               "spec": {"type": "ExternalName", "externalName": "api.example.com"}}),
        json!({"metadata": {"name": "alias", "namespace": "default"},
               "spec": {"type": "ExternalName", "externalName": "my-app-service.default.svc.cluster.local"}}),
    ]
    .into_iter()
    .map(|v| serde_json::from_value(v).unwrap())
    .collect();
    let slices: Vec<EndpointSlice> = vec![serde_json::from_value(json!({
        "metadata": {"name": "web-x1", "namespace": "ns1",
                     "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080}],
        "endpoints": [
            {"addresses": ["10.244.1.5"], "hostname": "web-0"},
            {"addresses": ["10.244.2.6"]}
        ]
    }))
    .unwrap()];
    plan(&services, &slices, &[], "cluster.local", 5).unwrap()
}

fn name(text: &str) -> Name {
    Name::from_ascii(text).unwrap()
}

/// Renders an outcome as `RCODE aa=… | answers | authorities | additionals`.
fn show(outcome: &Outcome) -> String {
    let section = |records: &[Record]| {
        records
            .iter()
            .map(|r| format!("{} {} {} {}", r.name, r.ttl, r.record_type(), r.data))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match outcome {
        Outcome::Forward => "FORWARD".to_string(),
        Outcome::Answer(r) => format!(
            "{} aa={} | {} | {} | {}",
            r.rcode,
            r.authoritative,
            section(&r.answers),
            section(&r.authorities),
            section(&r.additionals)
        ),
        Outcome::Chase { response, target } => {
            format!("CHASE {target} | {}", section(&response.answers))
        }
    }
}

fn ask(zone: &Zone, q: &str, t: RecordType) -> String {
    show(&answer(zone, &name(q), t))
}

const SOA: &str =
    "cluster.local. 5 SOA ns.dns.cluster.local. hostmaster.cluster.local. 1 7200 1800 86400 5";

#[test]
fn dns_version_txt() {
    let z = zone();
    assert_eq!(
        ask(&z, "dns-version.cluster.local.", RecordType::TXT),
        "No Error aa=true | dns-version.cluster.local. 5 TXT 1.1.0 |  | "
    );
    assert_eq!(
        ask(&z, "dns-version.cluster.local.", RecordType::A),
        format!("No Error aa=true |  | {SOA} | ")
    );
}

#[test]
fn cluster_ip_a_is_case_insensitive_and_aaaa_is_nodata() {
    let z = zone();
    let expected =
        "No Error aa=true | my-app-service.default.svc.cluster.local. 5 A 10.96.0.20 |  | ";
    assert_eq!(
        ask(
            &z,
            "my-app-service.default.svc.cluster.local.",
            RecordType::A
        ),
        expected
    );
    assert_eq!(
        ask(
            &z,
            "MY-APP-SERVICE.Default.SVC.Cluster.Local.",
            RecordType::A
        ),
        "No Error aa=true | MY-APP-SERVICE.Default.SVC.Cluster.Local. 5 A 10.96.0.20 |  | ",
        "matching is case-insensitive and the answer echoes the question's case"
    );
    assert_eq!(
        ask(
            &z,
            "my-app-service.default.svc.cluster.local.",
            RecordType::AAAA
        ),
        format!("No Error aa=true |  | {SOA} | ")
    );
}

#[test]
fn srv_for_named_port_with_additional_addresses() {
    let z = zone();
    assert_eq!(
        ask(&z, "_http._tcp.my-app-service.default.svc.cluster.local.", RecordType::SRV),
        "No Error aa=true | _http._tcp.my-app-service.default.svc.cluster.local. 5 SRV 0 100 80 my-app-service.default.svc.cluster.local. |  | my-app-service.default.svc.cluster.local. 5 A 10.96.0.20"
    );
    assert_eq!(
        ask(
            &z,
            "_http._udp.my-app-service.default.svc.cluster.local.",
            RecordType::SRV
        ),
        format!("Non-Existent Domain aa=true |  | {SOA} | ")
    );
    assert_eq!(
        ask(
            &z,
            "_tcp.my-app-service.default.svc.cluster.local.",
            RecordType::SRV
        ),
        format!("No Error aa=true |  | {SOA} | "),
        "`_tcp` is an empty non-terminal"
    );
}

#[test]
fn headless_answers_endpoints_hostnames_and_srv_per_endpoint() {
    let z = zone();
    assert_eq!(
        ask(&z, "web.ns1.svc.cluster.local.", RecordType::A),
        "No Error aa=true | web.ns1.svc.cluster.local. 5 A 10.244.1.5, web.ns1.svc.cluster.local. 5 A 10.244.2.6 |  | "
    );
    assert_eq!(
        ask(&z, "web-0.web.ns1.svc.cluster.local.", RecordType::A),
        "No Error aa=true | web-0.web.ns1.svc.cluster.local. 5 A 10.244.1.5 |  | "
    );
    assert_eq!(
        ask(&z, "10-244-2-6.web.ns1.svc.cluster.local.", RecordType::A),
        "No Error aa=true | 10-244-2-6.web.ns1.svc.cluster.local. 5 A 10.244.2.6 |  | "
    );
    assert_eq!(
        ask(&z, "_http._tcp.web.ns1.svc.cluster.local.", RecordType::SRV),
        "No Error aa=true | _http._tcp.web.ns1.svc.cluster.local. 5 SRV 0 50 8080 10-244-2-6.web.ns1.svc.cluster.local., _http._tcp.web.ns1.svc.cluster.local. 5 SRV 0 50 8080 web-0.web.ns1.svc.cluster.local. |  | 10-244-2-6.web.ns1.svc.cluster.local. 5 A 10.244.2.6, web-0.web.ns1.svc.cluster.local. 5 A 10.244.1.5"
    );
    assert_eq!(
        ask(&z, "nope.web.ns1.svc.cluster.local.", RecordType::A),
        format!("Non-Existent Domain aa=true |  | {SOA} | ")
    );
}

#[test]
fn headless_without_ready_endpoints_is_nxdomain() {
    let z = zone();
    assert_eq!(
        ask(&z, "empty.ns1.svc.cluster.local.", RecordType::A),
        format!("Non-Existent Domain aa=true |  | {SOA} | ")
    );
}

#[test]
fn ptr_for_cluster_ip_and_headless_endpoint_and_forward_for_others() {
    let z = zone();
    assert_eq!(
        ask(&z, "20.0.96.10.in-addr.arpa.", RecordType::PTR),
        "No Error aa=true | 20.0.96.10.in-addr.arpa. 5 PTR my-app-service.default.svc.cluster.local. |  | "
    );
    assert_eq!(
        ask(&z, "5.1.244.10.IN-ADDR.ARPA.", RecordType::PTR),
        "No Error aa=true | 5.1.244.10.IN-ADDR.ARPA. 5 PTR web-0.web.ns1.svc.cluster.local. |  | "
    );
    assert_eq!(ask(&z, "8.8.8.8.in-addr.arpa.", RecordType::PTR), "FORWARD");
}

#[test]
fn external_name_cname_is_chased_upstream_or_in_zone() {
    let z = zone();
    assert_eq!(
        ask(&z, "ext.default.svc.cluster.local.", RecordType::A),
        "CHASE api.example.com. | ext.default.svc.cluster.local. 5 CNAME api.example.com."
    );
    assert_eq!(
        ask(&z, "ext.default.svc.cluster.local.", RecordType::CNAME),
        "No Error aa=true | ext.default.svc.cluster.local. 5 CNAME api.example.com. |  | "
    );
    assert_eq!(
        ask(&z, "alias.default.svc.cluster.local.", RecordType::A),
        "No Error aa=true | alias.default.svc.cluster.local. 5 CNAME my-app-service.default.svc.cluster.local., my-app-service.default.svc.cluster.local. 5 A 10.96.0.20 |  | "
    );
}

#[test]
fn nxdomain_versus_nodata_for_structural_names() {
    let z = zone();
    let nodata = format!("No Error aa=true |  | {SOA} | ");
    let nx = format!("Non-Existent Domain aa=true |  | {SOA} | ");
    assert_eq!(ask(&z, "cluster.local.", RecordType::A), nodata);
    assert_eq!(ask(&z, "svc.cluster.local.", RecordType::A), nodata);
    assert_eq!(ask(&z, "default.svc.cluster.local.", RecordType::A), nodata);
    assert_eq!(ask(&z, "nons.svc.cluster.local.", RecordType::A), nx);
    assert_eq!(
        ask(&z, "missing.default.svc.cluster.local.", RecordType::A),
        nx
    );
    assert_eq!(ask(&z, "whatever.cluster.local.", RecordType::A), nx);
    assert_eq!(
        ask(&z, "cluster.local.", RecordType::SOA),
        format!("No Error aa=true | {SOA} |  | ")
    );
}

#[test]
fn search_path_expansions_are_nxdomain_from_memory() {
    let z = zone();
    let nx = format!("Non-Existent Domain aa=true |  | {SOA} | ");
    for q in [
        "my-app-service.default.svc.cluster.local.default.svc.cluster.local.",
        "my-app-service.default.svc.cluster.local.svc.cluster.local.",
        "my-app-service.default.svc.cluster.local.cluster.local.",
        "example.com.default.svc.cluster.local.",
        "example.com.svc.cluster.local.",
        "example.com.cluster.local.",
    ] {
        assert_eq!(ask(&z, q, RecordType::A), nx, "{q}");
    }
}

#[test]
fn names_outside_the_zone_are_forwarded() {
    let z = zone();
    assert_eq!(ask(&z, "example.com.", RecordType::A), "FORWARD");
    assert_eq!(ask(&z, "local.", RecordType::A), "FORWARD");
}
