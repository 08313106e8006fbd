//! Validation tests for names and the remaining kinds.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{json, Value};

use super::test_util::message;

const SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";

#[test]
fn names_per_kind() {
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "Bad_Name", "namespace": "default"}});
    assert_eq!(
        message("", "ConfigMap", cm, None),
        format!("ConfigMap \"Bad_Name\" is invalid: metadata.name: Invalid value: \"Bad_Name\": {SUBDOMAIN_MSG}")
    );
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team.a"}});
    assert_eq!(
        message("", "Namespace", ns, None),
        "Namespace \"team.a\" is invalid: metadata.name: Invalid value: \"team.a\": must not contain dots"
    );
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "Team"}});
    assert_eq!(
        message("", "Namespace", ns, None),
        format!(
            "Namespace \"Team\" is invalid: metadata.name: Invalid value: \"Team\": {LABEL_MSG}"
        )
    );
    let dots_ok = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web.v1", "namespace": "default"},
        "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}},
            "spec": {"containers": [{"name": "c", "image": "i"}]}}}});
    assert_eq!(message("apps", "Deployment", dots_ok, None), "valid");
    let missing =
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"namespace": "default"}});
    assert_eq!(
        message("", "Secret", missing, None),
        "Secret \"\" is invalid: metadata.name: Required value: name or generateName is required"
    );
    let generated = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"generateName": "s-", "name": "s-x1y2z", "namespace": "default"}});
    assert_eq!(message("", "Secret", generated, None), "valid");
}

fn ing(paths: Value) -> Value {
    json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "my-ingress", "namespace": "default"},
        "spec": {"ingressClassName": "portico", "rules": [{"host": "app.example.com", "http": {"paths": paths}}]}})
}

#[test]
fn ingress_messages() {
    let backend = json!({"service": {"name": "my-app-service", "port": {"number": 80}}});
    let cases: Vec<(Value, &str)> = vec![
        (ing(json!([{"path": "/", "pathType": "Prefix", "backend": backend}])), "valid"),
        (
            ing(json!([{"path": "/", "backend": backend}])),
            "Ingress.networking.k8s.io \"my-ingress\" is invalid: spec.rules[0].http.paths[0].pathType: Required value: pathType must be specified",
        ),
        (
            ing(json!([{"path": "api", "pathType": "Prefix", "backend": backend}])),
            "Ingress.networking.k8s.io \"my-ingress\" is invalid: spec.rules[0].http.paths[0].path: Invalid value: \"api\": must be an absolute path",
        ),
        (
            ing(json!([{"path": "/", "pathType": "Regex", "backend": backend}])),
            "Ingress.networking.k8s.io \"my-ingress\" is invalid: spec.rules[0].http.paths[0].pathType: Unsupported value: \"Regex\": supported values: \"Exact\", \"ImplementationSpecific\", \"Prefix\"",
        ),
        (
            ing(json!([{"path": "/", "pathType": "Exact", "backend": {"service": {"name": "svc"}}}])),
            "Ingress.networking.k8s.io \"my-ingress\" is invalid: spec.rules[0].http.paths[0].backend: Required value: port name or number is required",
        ),
        (
            ing(json!([{"path": "/", "pathType": "Exact", "backend": {"service": {"port": {"number": 80}}}}])),
            "Ingress.networking.k8s.io \"my-ingress\" is invalid: spec.rules[0].http.paths[0].backend.service.name: Required value",
        ),
        (
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "i", "namespace": "d"}, "spec": {}}),
            "Ingress.networking.k8s.io \"i\" is invalid: spec: Invalid value: []networking.IngressRule(nil): either `defaultBackend` or `rules` must be specified",
        ),
    ];
    for (obj, want) in cases {
        assert_eq!(
            message("networking.k8s.io", "Ingress", obj.clone(), None),
            want,
            "object: {obj}"
        );
    }
    let class = json!({"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass", "metadata": {"name": "portico"},
        "spec": {"controller": "portico.dev/ingress"}});
    assert_eq!(
        message("networking.k8s.io", "IngressClass", class.clone(), None),
        "valid"
    );
    let mut bad = class.clone();
    bad["spec"]["controller"] = json!("portico");
    assert_eq!(
        message("networking.k8s.io", "IngressClass", bad, None),
        "IngressClass.networking.k8s.io \"portico\" is invalid: spec.controller: Invalid value: \"portico\": must be a domain-prefixed path (such as \"acme.io/foo\")"
    );
    let mut changed = class.clone();
    changed["spec"]["controller"] = json!("other.dev/x");
    assert_eq!(
        message("networking.k8s.io", "IngressClass", changed, Some(class)),
        "IngressClass.networking.k8s.io \"portico\" is invalid: spec.controller: Invalid value: \"other.dev/x\": field is immutable"
    );
}

#[test]
fn endpoint_slices_and_endpoints() {
    let slice = json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "web-abc", "namespace": "default", "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4", "endpoints": [{"addresses": ["10.244.1.5"], "conditions": {"ready": true}, "nodeName": "node-1"}],
        "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]});
    assert_eq!(
        message("discovery.k8s.io", "EndpointSlice", slice.clone(), None),
        "valid"
    );
    let mut bad = slice.clone();
    bad["addressType"] = json!("IPv5");
    assert_eq!(
        message("discovery.k8s.io", "EndpointSlice", bad, None),
        "EndpointSlice.discovery.k8s.io \"web-abc\" is invalid: addressType: Unsupported value: \"IPv5\": supported values: \"FQDN\", \"IPv4\", \"IPv6\""
    );
    let mut bad = slice.clone();
    bad["endpoints"][0]["addresses"] = json!(["fd00::1"]);
    assert_eq!(
        message("discovery.k8s.io", "EndpointSlice", bad, None),
        "EndpointSlice.discovery.k8s.io \"web-abc\" is invalid: endpoints[0].addresses[0]: Invalid value: \"fd00::1\": must be a valid IPv4 address"
    );
    let mut changed = slice.clone();
    changed["addressType"] = json!("IPv6");
    changed["endpoints"] = json!([]);
    assert_eq!(
        message("discovery.k8s.io", "EndpointSlice", changed, Some(slice.clone())),
        "EndpointSlice.discovery.k8s.io \"web-abc\" is invalid: addressType: Invalid value: \"IPv6\": field is immutable"
    );
    let mut many = slice.clone();
    let addrs: Vec<String> = (0..101)
        .map(|i| format!("10.244.{}.{}", i / 200, i % 200 + 1))
        .collect();
    many["endpoints"][0]["addresses"] = json!(addrs);
    assert_eq!(
        message("discovery.k8s.io", "EndpointSlice", many, None),
        "EndpointSlice.discovery.k8s.io \"web-abc\" is invalid: endpoints[0].addresses: Too many: 101: must have at most 100 items"
    );
    let ep = json!({"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "web", "namespace": "default"},
        "subsets": [{"addresses": [{"ip": "10.244.1.5"}], "ports": [{"port": 80}, {"name": "b", "port": 81}]}]});
    assert_eq!(
        message("", "Endpoints", ep, None),
        "Endpoints \"web\" is invalid: subsets[0].ports[0].name: Required value"
    );
}

#[test]
fn config_maps_secrets_events_leases_nodes() {
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "d"}, "data": {"a/b": "x"}});
    assert_eq!(
        message("", "ConfigMap", cm, None),
        "ConfigMap \"c\" is invalid: data[a/b]: Invalid value: \"a/b\": a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"
    );
    let tls = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "t", "namespace": "d"}, "type": "kubernetes.io/tls", "data": {"tls.crt": "eA=="}});
    assert_eq!(
        message("", "Secret", tls, None),
        "Secret \"t\" is invalid: data[tls.key]: Required value"
    );
    let old = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "d"}, "type": "Opaque"});
    let mut new = old.clone();
    new["type"] = json!("kubernetes.io/tls");
    new["data"] = json!({"tls.crt": "eA==", "tls.key": "eA=="});
    assert_eq!(
        message("", "Secret", new, Some(old)),
        "Secret \"s\" is invalid: type: Invalid value: \"kubernetes.io/tls\": field is immutable"
    );
    let ev = json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "x.17a2b3c4d5e6f", "namespace": "default"},
        "involvedObject": {"kind": "Service", "name": "x", "namespace": "default"}, "reason": "Created", "type": "Normal"});
    assert_eq!(message("", "Event", ev.clone(), None), "valid");
    let mut wrong_ns = ev.clone();
    wrong_ns["involvedObject"]["namespace"] = json!("other");
    assert_eq!(
        message("", "Event", wrong_ns, None),
        "Event \"x.17a2b3c4d5e6f\" is invalid: involvedObject.namespace: Invalid value: \"other\": does not match event.namespace"
    );
    let lease = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "node-1", "namespace": "kube-node-lease"},
        "spec": {"holderIdentity": "node-1", "leaseDurationSeconds": 0}});
    assert_eq!(
        message("coordination.k8s.io", "Lease", lease, None),
        "Lease.coordination.k8s.io \"node-1\" is invalid: spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0"
    );
    let node = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-1"}, "spec": {"podCIDRs": ["10.244.1.0/24"]}});
    assert_eq!(message("", "Node", node.clone(), None), "valid");
    let mut moved = node.clone();
    moved["spec"]["podCIDRs"] = json!(["10.244.2.0/24"]);
    assert_eq!(
        message("", "Node", moved, Some(node)),
        "Node \"node-1\" is invalid: spec.podCIDRs: Forbidden: node updates may not change podCIDR except from \"\" to valid"
    );
    let ns_in_cluster_scoped = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n", "namespace": "default"}});
    assert_eq!(
        message("", "Node", ns_in_cluster_scoped, None),
        "Node \"n\" is invalid: metadata.namespace: Forbidden: not allowed on this type"
    );
}
