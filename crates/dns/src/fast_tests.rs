//! The fast path must answer exactly what the general path answers: every
//! question is asked both ways and the decoded responses compared.

use super::*;
use crate::plan;
use crate::wire::{self, Parsed, Transport};
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::Name;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::json;

fn zone() -> Zone {
    let services: Vec<Service> = [
        json!({"metadata": {"name": "api", "namespace": "default"},
               "spec": {"clusterIP": "10.96.0.20", "clusterIPs": ["10.96.0.20", "fd00::20"],
                        "ports": [{"name": "http", "port": 80}, {"name": "dns", "port": 53, "protocol": "UDP"}]}}),
        json!({"metadata": {"name": "web", "namespace": "ns1"},
               "spec": {"clusterIP": "None", "ports": [{"name": "http", "port": 80}]}}),
        json!({"metadata": {"name": "big", "namespace": "ns1"},
               "spec": {"clusterIP": "None", "ports": [{"name": "http", "port": 80}]}}),
        json!({"metadata": {"name": "empty", "namespace": "ns1"},
               "spec": {"clusterIP": "None"}}),
        json!({"metadata": {"name": "ext", "namespace": "default"},
               "spec": {"type": "ExternalName", "externalName": "api.example.com"}}),
    ]
    .into_iter()
    .map(|v| serde_json::from_value(v).unwrap())
    .collect();
    let big: Vec<_> = (0..120)
        .map(|i| json!({"addresses": [format!("10.244.3.{i}")], "hostname": format!("big-{i}")}))
        .collect();
    let slices: Vec<EndpointSlice> = [
        json!({
            "metadata": {"name": "web-x1", "namespace": "ns1",
                         "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080}],
            "endpoints": [
                {"addresses": ["10.244.1.5"], "hostname": "web-0"},
                {"addresses": ["10.244.2.6"]}
            ]
        }),
        json!({
            "metadata": {"name": "big-x1", "namespace": "ns1",
                         "labels": {"kubernetes.io/service-name": "big"}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080}],
            "endpoints": big
        }),
    ]
    .into_iter()
    .map(|v| serde_json::from_value(v).unwrap())
    .collect();
    plan(&services, &slices, &[], "cluster.local", 5).unwrap()
}

fn request(name: &str, qtype: RecordType, edns: Option<u16>) -> Vec<u8> {
    let mut m = Message::new(0x1234, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    if let Some(payload) = edns {
        let mut e = Edns::new();
        e.set_max_payload(payload);
        m.set_edns(e);
    }
    m.to_vec().unwrap()
}

/// What the general path (parse, answer, encode) sends back.
fn general(zone: &Zone, bytes: &[u8]) -> Vec<u8> {
    let Parsed::Query(request) = wire::parse(bytes) else {
        panic!("not a query")
    };
    let query = request.queries.first().unwrap();
    match crate::answer(zone, query.name(), query.query_type()) {
        Outcome::Answer(response) => wire::encode(&request, &response, Transport::Udp),
        other => panic!("general path would not answer locally: {other:?}"),
    }
}

fn same(fast: &[u8], general: &[u8], what: &str) {
    let (f, g) = (
        Message::from_vec(fast).unwrap(),
        Message::from_vec(general).unwrap(),
    );
    assert_eq!(f.metadata, g.metadata, "header of {what}");
    assert_eq!(f.queries, g.queries, "question of {what}");
    assert_eq!(f.answers, g.answers, "answers of {what}");
    assert_eq!(f.authorities, g.authorities, "authorities of {what}");
    assert_eq!(f.additionals, g.additionals, "additionals of {what}");
    assert_eq!(f.edns, g.edns, "EDNS of {what}");
}

use crate::answer::Outcome;

/// Questions the fast path must take itself.
const HANDLED: &[(&str, RecordType)] = &[
    ("api.default.svc.cluster.local.", RecordType::A),
    ("API.Default.SVC.cluster.LOCAL.", RecordType::A),
    ("api.default.svc.cluster.local.", RecordType::AAAA),
    ("api.default.svc.cluster.local.", RecordType::TXT),
    ("web.ns1.svc.cluster.local.", RecordType::A),
    ("web.ns1.svc.cluster.local.", RecordType::AAAA),
    ("web-0.web.ns1.svc.cluster.local.", RecordType::A),
    ("nope.web.ns1.svc.cluster.local.", RecordType::A),
    ("x.api.default.svc.cluster.local.", RecordType::A),
    ("empty.ns1.svc.cluster.local.", RecordType::A),
    ("missing.ns1.svc.cluster.local.", RecordType::A),
    ("_http._tcp.api.default.svc.cluster.local.", RecordType::SRV),
    ("_HTTP._TCP.Api.default.svc.cluster.local.", RecordType::SRV),
    ("_dns._udp.api.default.svc.cluster.local.", RecordType::SRV),
    ("_http._tcp.api.default.svc.cluster.local.", RecordType::A),
    ("_http._udp.api.default.svc.cluster.local.", RecordType::SRV),
    ("_http._tcp.web.ns1.svc.cluster.local.", RecordType::SRV),
    ("_tcp.api.default.svc.cluster.local.", RecordType::SRV),
    ("_sctp.api.default.svc.cluster.local.", RecordType::SRV),
    (
        "api.default.svc.cluster.local.default.svc.cluster.local.",
        RecordType::A,
    ),
    ("a.b.c.d.e.f.cluster.local.", RecordType::AAAA),
    ("default.svc.cluster.local.", RecordType::A),
    ("nons.svc.cluster.local.", RecordType::A),
    ("svc.cluster.local.", RecordType::A),
    ("foo.cluster.local.", RecordType::A),
    ("api.default.pod.cluster.local.", RecordType::A),
    ("20.0.96.10.in-addr.arpa.", RecordType::PTR),
    ("5.1.244.10.in-addr.arpa.", RecordType::PTR),
];

/// Questions the fast path leaves to the general path.
const DECLINED: &[(&str, RecordType)] = &[
    ("cluster.local.", RecordType::SOA),
    ("dns-version.cluster.local.", RecordType::TXT),
    ("ext.default.svc.cluster.local.", RecordType::A),
    ("api.default.svc.cluster.local.", RecordType::ANY),
    ("6.2.244.10.in-addr.arpa.", RecordType::A),
    ("99.99.99.10.in-addr.arpa.", RecordType::PTR),
    ("010.0.96.10.in-addr.arpa.", RecordType::PTR),
    ("example.com.", RecordType::A),
];

#[test]
fn fast_answers_equal_the_general_path() {
    let zone = zone();
    let mut out = Vec::new();
    for (name, qtype) in HANDLED {
        for edns in [None, Some(1232), Some(4096)] {
            let bytes = request(name, *qtype, edns);
            let what = format!("{name} {qtype} edns={edns:?}");
            let answered = answer(&zone, &bytes, &mut out)
                .unwrap_or_else(|| panic!("fast path declined {what}"));
            let general = general(&zone, &bytes);
            same(&out, &general, &what);
            let decoded = Message::from_vec(&general).unwrap();
            assert_eq!(answered.rcode, decoded.metadata.response_code, "{what}");
            assert_eq!(answered.qtype, *qtype, "{what}");
        }
    }
}

#[test]
fn answers_keep_the_question_case_and_srv_targets_are_spelled_out() {
    let zone = zone();
    let mut out = Vec::new();
    let bytes = request(
        "_HTTP._tcp.Api.default.svc.cluster.local.",
        RecordType::SRV,
        None,
    );
    answer(&zone, &bytes, &mut out).unwrap();
    let m = Message::from_vec(&out).unwrap();
    assert_eq!(
        m.answers[0].name.to_ascii(),
        "_HTTP._tcp.Api.default.svc.cluster.local."
    );
    assert_eq!(
        m.answers[0].data.to_string(),
        "0 100 80 Api.default.svc.cluster.local."
    );
    assert_eq!(m.additionals.len(), 2, "A and AAAA of the target");
    // The SRV RDATA holds the whole target name, no compression pointer.
    let target = b"\x03Api\x07default\x03svc\x07cluster\x05local\x00";
    assert!(out.windows(target.len()).filter(|w| w == target).count() >= 1);
}

#[test]
fn declined_questions_take_the_general_path() {
    let zone = zone();
    let mut out = Vec::new();
    for (name, qtype) in DECLINED {
        let bytes = request(name, *qtype, None);
        assert!(answer(&zone, &bytes, &mut out).is_none(), "{name} {qtype}");
    }
}

#[test]
fn answers_too_big_for_the_client_are_left_to_truncation() {
    let zone = zone();
    let mut out = Vec::new();
    // 120 A records do not fit in 512 bytes, but fit in 4096.
    let small = request("big.ns1.svc.cluster.local.", RecordType::A, None);
    assert!(answer(&zone, &small, &mut out).is_none());
    let large = request("big.ns1.svc.cluster.local.", RecordType::A, Some(4096));
    answer(&zone, &large, &mut out).unwrap();
    same(&out, &general(&zone, &large), "big with EDNS 4096");
    assert!(out.len() <= 4096);
}

#[test]
fn unusual_requests_are_declined() {
    let zone = zone();
    let mut out = Vec::new();
    let good = request("api.default.svc.cluster.local.", RecordType::A, None);
    assert!(answer(&zone, &good, &mut out).is_some());
    // A response, an opcode other than QUERY, two questions, trailing bytes,
    // class CHAOS, a truncated packet.
    let mut response = good.clone();
    response[2] |= 0x80;
    let mut notify = good.clone();
    notify[2] |= 4 << 3;
    let mut two = good.clone();
    two[5] = 2;
    let mut trailing = good.clone();
    trailing.push(0);
    let mut chaos = good.clone();
    let last = chaos.len() - 1;
    chaos[last] = 3;
    for bad in [response, notify, two, trailing, chaos, good[..20].to_vec()] {
        assert!(answer(&zone, &bad, &mut out).is_none(), "{bad:?}");
    }
}
