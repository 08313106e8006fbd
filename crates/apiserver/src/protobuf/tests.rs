//! Unit tests of the protobuf body decoder, on bodies encoded the way Go's
//! generated marshalers write them (every non-pointer field, zero or not).

use serde_json::json;

use super::*;

fn varint(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

fn len_field(out: &mut Vec<u8>, tag: u32, data: &[u8]) {
    varint(out, u64::from(tag) << 3 | 2);
    varint(out, data.len() as u64);
    out.extend_from_slice(data);
}

fn int_field(out: &mut Vec<u8>, tag: u32, v: i64) {
    varint(out, u64::from(tag) << 3);
    varint(out, v as u64);
}

fn map_entry(out: &mut Vec<u8>, tag: u32, k: &str, v: &[u8]) {
    let mut e = Vec::new();
    len_field(&mut e, 1, k.as_bytes());
    len_field(&mut e, 2, v);
    len_field(out, tag, &e);
}

/// ObjectMeta as Go writes it: all non-pointer scalars, zero creationTimestamp.
fn meta(name: &str, labels: &[(&str, &str)]) -> Vec<u8> {
    let mut m = Vec::new();
    len_field(&mut m, 1, name.as_bytes());
    for tag in 2..=6 {
        len_field(&mut m, tag, b"");
    }
    int_field(&mut m, 7, 0);
    let mut t = Vec::new();
    int_field(&mut t, 1, GO_ZERO_TIME_SECONDS);
    int_field(&mut t, 2, 0);
    len_field(&mut m, 8, &t);
    for (k, v) in labels {
        map_entry(&mut m, 11, k, v.as_bytes());
    }
    m
}

fn envelope(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
    let mut tm = Vec::new();
    len_field(&mut tm, 1, api_version.as_bytes());
    len_field(&mut tm, 2, kind.as_bytes());
    let mut u = Vec::new();
    len_field(&mut u, 1, &tm);
    len_field(&mut u, 2, raw);
    len_field(&mut u, 3, b"");
    len_field(&mut u, 4, b"");
    let mut out = b"k8s\0".to_vec();
    out.extend(u);
    out
}

#[test]
fn namespace_as_kubectl_sends_it() {
    let mut ns = Vec::new();
    len_field(&mut ns, 1, &meta("x", &[]));
    len_field(&mut ns, 2, b"");
    let mut st = Vec::new();
    len_field(&mut st, 1, b"");
    len_field(&mut ns, 3, &st);
    let v = decode(&envelope("v1", "Namespace", &ns)).unwrap();
    assert_eq!(
        serde_json::to_string(&v).unwrap(),
        r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"x"}}"#
    );
}

#[test]
fn secret_bytes_become_base64_and_pointer_zero_is_kept() {
    let mut s = Vec::new();
    len_field(&mut s, 1, &meta("s", &[]));
    map_entry(&mut s, 2, "k", b"v\x00");
    len_field(&mut s, 3, b"Opaque");
    int_field(&mut s, 5, 0);
    let v = decode(&envelope("v1", "Secret", &s)).unwrap();
    assert_eq!(
        v,
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
               "immutable": false, "data": {"k": "dgA="}, "type": "Opaque"})
    );
}

#[test]
fn service_ports_with_int_and_string_target_ports() {
    let mut p1 = Vec::new();
    len_field(&mut p1, 1, b"80-8080");
    len_field(&mut p1, 2, b"TCP");
    int_field(&mut p1, 3, 80);
    let mut ios = Vec::new();
    int_field(&mut ios, 1, 0);
    int_field(&mut ios, 2, 8080);
    len_field(&mut ios, 3, b"");
    len_field(&mut p1, 4, &ios);
    int_field(&mut p1, 5, 0);
    let mut p2 = Vec::new();
    int_field(&mut p2, 3, 443);
    let mut ios = Vec::new();
    int_field(&mut ios, 1, 1);
    len_field(&mut ios, 3, b"https");
    len_field(&mut p2, 4, &ios);
    let mut spec = Vec::new();
    len_field(&mut spec, 1, &p1);
    len_field(&mut spec, 1, &p2);
    map_entry(&mut spec, 2, "app", b"web");
    len_field(&mut spec, 3, b"");
    len_field(&mut spec, 4, b"ClusterIP");
    let mut svc = Vec::new();
    len_field(&mut svc, 1, &meta("web", &[("app", "web")]));
    len_field(&mut svc, 2, &spec);
    let v = decode(&envelope("v1", "Service", &svc)).unwrap();
    assert_eq!(
        v["spec"],
        json!({"ports": [
                 {"name": "80-8080", "protocol": "TCP", "port": 80, "targetPort": 8080},
                 {"port": 443, "targetPort": "https"}],
               "selector": {"app": "web"}, "type": "ClusterIP"})
    );
    assert_eq!(v["metadata"]["labels"], json!({"app": "web"}));
}

#[test]
fn deployment_replicas_zero_is_kept_and_quantities_are_strings() {
    let mut res = Vec::new();
    let mut q = Vec::new();
    len_field(&mut q, 1, b"100m");
    map_entry(&mut res, 1, "cpu", &q);
    let mut c = Vec::new();
    len_field(&mut c, 1, b"nginx");
    len_field(&mut c, 2, b"nginx");
    len_field(&mut c, 8, &res);
    let mut pod = Vec::new();
    len_field(&mut pod, 2, &c);
    let mut tpl = Vec::new();
    len_field(&mut tpl, 1, &meta("", &[("app", "web")]));
    len_field(&mut tpl, 2, &pod);
    let mut sel = Vec::new();
    map_entry(&mut sel, 1, "app", b"web");
    let mut spec = Vec::new();
    int_field(&mut spec, 1, 0);
    len_field(&mut spec, 2, &sel);
    len_field(&mut spec, 3, &tpl);
    len_field(&mut spec, 4, b"");
    int_field(&mut spec, 5, 0);
    int_field(&mut spec, 7, 0);
    let mut d = Vec::new();
    len_field(&mut d, 1, &meta("web", &[]));
    len_field(&mut d, 2, &spec);
    len_field(&mut d, 3, b"");
    let v = decode(&envelope("apps/v1", "Deployment", &d)).unwrap();
    assert_eq!(
        v["spec"],
        json!({"replicas": 0, "selector": {"matchLabels": {"app": "web"}},
               "template": {"metadata": {"labels": {"app": "web"}},
                            "spec": {"containers": [{"name": "nginx", "image": "nginx",
                                                     "resources": {"limits": {"cpu": "100m"}}}]}}})
    );
    assert!(v.get("status").is_none());
}

#[test]
fn negative_int32_and_real_timestamps() {
    let mut m = meta("t", &[]);
    let mut t = Vec::new();
    int_field(&mut t, 1, 1_700_000_000);
    len_field(&mut m, 9, &t);
    let mut spec = Vec::new();
    int_field(&mut spec, 5, -1);
    let mut d = Vec::new();
    len_field(&mut d, 1, &m);
    len_field(&mut d, 2, &spec);
    let v = decode(&envelope("apps/v1", "Deployment", &d)).unwrap();
    assert_eq!(v["metadata"]["deletionTimestamp"], "2023-11-14T22:13:20Z");
    assert_eq!(v["spec"]["minReadySeconds"], -1);
}

#[test]
fn unknown_kinds_and_fields_are_refused_not_dropped() {
    let e = decode(&envelope("batch/v1", "Job", b"")).unwrap_err();
    assert!(e.is_unsupported());
    assert_eq!(
        e.to_string(),
        "protobuf is not supported for Job (batch/v1); send JSON"
    );
    let mut ns = Vec::new();
    len_field(&mut ns, 1, &meta("x", &[]));
    len_field(&mut ns, 9, b"");
    let e = decode(&envelope("v1", "Namespace", &ns)).unwrap_err();
    assert_eq!(
        e,
        ProtoError::UnsupportedField {
            message: "Namespace",
            tag: 9
        }
    );
}

#[test]
fn malformed_bodies_are_errors_not_panics() {
    assert_eq!(decode(b"{}").unwrap_err(), ProtoError::Magic);
    let mut b = envelope("v1", "Namespace", &meta("x", &[]));
    b.truncate(b.len() - 3);
    assert!(!decode(&b).unwrap_err().is_unsupported());
    let mut bad = b"k8s\0".to_vec();
    bad.extend([
        0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
    ]);
    assert_eq!(decode(&bad).unwrap_err(), ProtoError::Malformed);
    // A wrong wire type on a known field.
    let mut ns = Vec::new();
    int_field(&mut ns, 1, 5);
    assert!(matches!(
        decode(&envelope("v1", "Namespace", &ns)).unwrap_err(),
        ProtoError::WireType { .. }
    ));
}

#[test]
fn embedded_rule_value_is_inlined_into_the_ingress_rule() {
    let mut path = Vec::new();
    len_field(&mut path, 1, b"/");
    len_field(&mut path, 3, b"Prefix");
    let mut http = Vec::new();
    len_field(&mut http, 1, &path);
    let mut value = Vec::new();
    len_field(&mut value, 1, &http);
    let mut rule = Vec::new();
    len_field(&mut rule, 1, b"a.example");
    len_field(&mut rule, 2, &value);
    let mut spec = Vec::new();
    len_field(&mut spec, 3, &rule);
    let mut ing = Vec::new();
    len_field(&mut ing, 1, &meta("i", &[]));
    len_field(&mut ing, 2, &spec);
    let v = decode(&envelope("networking.k8s.io/v1", "Ingress", &ing)).unwrap();
    assert_eq!(
        v["spec"],
        json!({"rules": [{"host": "a.example",
                          "http": {"paths": [{"path": "/", "pathType": "Prefix"}]}}]})
    );
}
