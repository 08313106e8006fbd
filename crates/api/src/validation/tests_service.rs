//! Service validation tests: every Service message SPEC.md section 2 lists,
//! checked as the text kubectl prints.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{json, Value};

use super::test_util::message;

fn svc(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"}, "spec": spec})
}

#[test]
fn service_create_messages() {
    let cases: Vec<(Value, &str)> = vec![
        (
            svc("x", json!({"ports": [{"port": 80}], "selector": {"app": "x"}})),
            "valid",
        ),
        (
            svc("x", json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]})),
            "valid",
        ),
        (
            // Defaulting copies port 0 into targetPort, so Kubernetes reports both.
            svc("x", json!({"ports": [{"port": 0}]})),
            "Service \"x\" is invalid: [spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive, spec.ports[0].targetPort: Invalid value: 0: must be between 1 and 65535, inclusive]",
        ),
        (
            svc("x", json!({"ports": [{"name": "http", "port": 80}, {"port": 81}]})),
            "Service \"x\" is invalid: spec.ports[1].name: Required value",
        ),
        (
            svc("x", json!({"type": "ClusterIP", "ports": [{"port": 80, "nodePort": 30080}]})),
            "Service \"x\" is invalid: spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'",
        ),
        (
            svc("My_Svc", json!({"ports": [{"port": 80}]})),
            "Service \"My_Svc\" is invalid: metadata.name: Invalid value: \"My_Svc\": a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')",
        ),
        (
            svc("x", json!({"selector": {"app": "x"}})),
            "Service \"x\" is invalid: spec.ports: Required value",
        ),
        (
            svc("x", json!({"ports": [{"name": "http", "port": 80}, {"name": "http", "port": 81}]})),
            "Service \"x\" is invalid: spec.ports[1].name: Duplicate value: \"http\"",
        ),
        (
            svc("x", json!({"ports": [{"name": "HTTP", "port": 80}]})),
            "Service \"x\" is invalid: spec.ports[0].name: Invalid value: \"HTTP\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
        ),
        (
            svc("x", json!({"ports": [{"port": 80, "targetPort": "my_port"}]})),
            "Service \"x\" is invalid: spec.ports[0].targetPort: Invalid value: \"my_port\": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)",
        ),
        (
            svc("x", json!({"ports": [{"name": "a", "port": 80}, {"name": "b", "port": 80}]})),
            "Service \"x\" is invalid: spec.ports[1]: Duplicate value: core.ServicePort{Name:\"\", Protocol:\"TCP\", AppProtocol:(*string)(nil), Port:80, TargetPort:intstr.IntOrString{Type:0, IntVal:0, StrVal:\"\"}, NodePort:0}",
        ),
        (
            svc("x", json!({"type": "NodePort", "ports": [{"name": "a", "port": 80, "nodePort": 30080}, {"name": "b", "port": 81, "nodePort": 30080}]})),
            "Service \"x\" is invalid: spec.ports[1].nodePort: Duplicate value: 30080",
        ),
        (
            svc("x", json!({"ports": [{"port": 80, "protocol": "HTTP"}]})),
            "Service \"x\" is invalid: spec.ports[0].protocol: Unsupported value: \"HTTP\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
        ),
        (
            svc("x", json!({"type": "Foo", "ports": [{"port": 80}]})),
            "Service \"x\" is invalid: spec.type: Unsupported value: \"Foo\": supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\"",
        ),
        (
            svc("x", json!({"type": "NodePort", "clusterIP": "None", "ports": [{"port": 80}]})),
            "Service \"x\" is invalid: spec.clusterIPs[0]: Invalid value: \"None\": may not be set to 'None' for NodePort services",
        ),
        (
            svc("x", json!({"clusterIP": "None", "selector": {"app": "db"}})),
            "valid",
        ),
        (
            svc("x", json!({"type": "ExternalName", "externalName": "example.com"})),
            "valid",
        ),
        (
            svc("x", json!({"type": "ExternalName"})),
            "Service \"x\" is invalid: spec.externalName: Required value",
        ),
        (
            svc("x", json!({"type": "ExternalName", "externalName": "Bad_Host"})),
            "Service \"x\" is invalid: spec.externalName: Invalid value: \"Bad_Host\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
        ),
        (
            svc("x", json!({"type": "ExternalName", "externalName": "example.com", "clusterIP": "10.96.0.5"})),
            "Service \"x\" is invalid: spec.clusterIPs: Forbidden: may not be set for ExternalName services",
        ),
        (
            svc("x", json!({"sessionAffinity": "Sticky", "ports": [{"port": 80}]})),
            "Service \"x\" is invalid: spec.sessionAffinity: Unsupported value: \"Sticky\": supported values: \"ClientIP\", \"None\"",
        ),
        (
            svc("x", json!({"sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 0}}, "ports": [{"port": 80}]})),
            "Service \"x\" is invalid: spec.sessionAffinityConfig.clientIP.timeoutSeconds: Invalid value: 0: must be greater than 0 and less than 86400",
        ),
        (
            svc("x", json!({"externalTrafficPolicy": "Local", "ports": [{"port": 80}]})),
            "Service \"x\" is invalid: spec.externalTrafficPolicy: Invalid value: \"Local\": may only be set for externally-accessible services",
        ),
        (
            svc("x", json!({"type": "LoadBalancer", "loadBalancerSourceRanges": ["10.0.0.0/8", "nope"], "ports": [{"port": 80}]})),
            "Service \"x\" is invalid: spec.LoadBalancerSourceRanges[1]: Invalid value: \"nope\": must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
        ),
        (
            svc("x", json!({"externalIPs": ["1.2.3.4", "bad"], "ports": [{"port": 80}]})),
            "Service \"x\" is invalid: spec.externalIPs[1]: Invalid value: \"bad\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
        ),
        (
            svc("x", json!({"clusterIP": "10.96.0.300", "ports": [{"port": 80}]})),
            "Service \"x\" is invalid: spec.clusterIPs[0]: Invalid value: \"10.96.0.300\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
        ),
        (
            svc("x", json!({"ports": [{"port": 0, "targetPort": 8080}, {"port": 70000, "targetPort": 8080}]})),
            "Service \"x\" is invalid: [spec.ports[0].name: Required value, spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive, spec.ports[1].name: Required value, spec.ports[1].port: Invalid value: 70000: must be between 1 and 65535, inclusive]",
        ),
    ];
    for (obj, want) in cases {
        assert_eq!(
            message("", "Service", obj.clone(), None),
            want,
            "object: {obj}"
        );
    }
}

fn stored(spec: Value) -> Value {
    let mut s = svc("x", spec);
    s["metadata"]["uid"] = json!("u1");
    s["metadata"]["resourceVersion"] = json!("5");
    s["metadata"]["creationTimestamp"] = json!("2026-01-01T00:00:00Z");
    s
}

#[test]
fn service_update_messages() {
    let old = stored(
        json!({"clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"], "ports": [{"port": 80}]}),
    );
    // Changing the clusterIP.
    let new = svc(
        "x",
        json!({"clusterIP": "10.96.0.20", "clusterIPs": ["10.96.0.10"], "ports": [{"port": 80}]}),
    );
    assert_eq!(
        message("", "Service", new, Some(old.clone())),
        "Service \"x\" is invalid: spec.clusterIPs[0]: Invalid value: []string{\"10.96.0.20\"}: may not change once set"
    );
    // Unsetting the primary IP explicitly.
    let mut new = svc(
        "x",
        json!({"clusterIP": "", "clusterIPs": [], "ports": [{"port": 80}]}),
    );
    new["spec"]["type"] = json!("ClusterIP");
    let msg = message("", "Service", new, Some(old.clone()));
    assert_eq!(
        msg, "valid",
        "omitted IPs are carried over from the stored object"
    );
    // A client that omits clusterIP keeps the allocated one (kubectl replace).
    let new = svc("x", json!({"ports": [{"port": 80}, ]}));
    assert_eq!(message("", "Service", new, Some(old.clone())), "valid");
    // Type change ClusterIP -> NodePort keeps the IP and is valid.
    let new = svc(
        "x",
        json!({"type": "NodePort", "clusterIP": "10.96.0.10", "ports": [{"port": 80}]}),
    );
    assert_eq!(message("", "Service", new, Some(old.clone())), "valid");
    // NodePort -> ClusterIP with the old nodePort left in: wiped, valid.
    let old_np = stored(
        json!({"type": "NodePort", "clusterIP": "10.96.0.10", "ports": [{"port": 80, "nodePort": 30080}]}),
    );
    let new = svc(
        "x",
        json!({"type": "ClusterIP", "clusterIP": "10.96.0.10", "externalTrafficPolicy": "Cluster", "ports": [{"port": 80, "nodePort": 30080}]}),
    );
    assert_eq!(message("", "Service", new, Some(old_np.clone())), "valid");
    // ClusterIP -> ExternalName drops the IP fields.
    let mut new = old.clone();
    new["spec"]["type"] = json!("ExternalName");
    new["spec"]["externalName"] = json!("example.com");
    assert_eq!(message("", "Service", new, Some(old.clone())), "valid");
    // Renaming is impossible.
    let mut new = old.clone();
    new["metadata"]["uid"] = json!("u2");
    assert_eq!(
        message("", "Service", new, Some(old.clone())),
        "Service \"x\" is invalid: metadata.uid: Invalid value: \"u2\": field is immutable"
    );
}

#[test]
fn changed_cluster_ips_report_both_rules() {
    use super::test_util::errors;
    let old = stored(
        json!({"clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"], "ports": [{"port": 80}]}),
    );
    // clusterIP kept but clusterIPs changed to a different single value.
    let new = svc(
        "x",
        json!({"clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.11"], "ports": [{"port": 80}]}),
    );
    let errs = errors("", "Service", new, Some(old));
    let texts: Vec<String> = errs.iter().map(ToString::to_string).collect();
    assert_eq!(
        texts,
        vec![
            "spec.clusterIPs[0]: Invalid value: []string{\"10.96.0.11\"}: may not change once set".to_string(),
            "spec.clusterIPs: Invalid value: []string{\"10.96.0.11\"}: first value must match `clusterIP`".to_string(),
        ]
    );
}

#[test]
fn load_balancer_status_updates() {
    use crate::defaults;
    use crate::resource::find_kind;
    let res = find_kind("", "Service").unwrap();
    let mut old =
        stored(json!({"type": "LoadBalancer", "clusterIP": "10.96.0.9", "ports": [{"port": 80}]}));
    defaults::apply(res, &mut old);
    let mut new = old.clone();
    new["status"] = json!({"loadBalancer": {"ingress": [{"ip": "192.168.1.240"}]}});
    defaults::apply(res, &mut new);
    assert_eq!(new["status"]["loadBalancer"]["ingress"][0]["ipMode"], "VIP");
    assert!(super::validate_status(res, &new, &old).is_empty());
    new["status"]["loadBalancer"]["ingress"][0]["ip"] = json!("not-an-ip");
    let texts: Vec<String> = super::validate_status(res, &new, &old)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        texts,
        vec!["status.loadBalancer.ingress[0].ip: Invalid value: \"not-an-ip\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)".to_string()]
    );
    let mut cip = stored(json!({"clusterIP": "10.96.0.9", "ports": [{"port": 80}]}));
    defaults::apply(res, &mut cip);
    let mut with_lb = cip.clone();
    with_lb["status"] =
        json!({"loadBalancer": {"ingress": [{"ip": "192.168.1.240", "ipMode": "VIP"}]}});
    let texts: Vec<String> = super::validate_status(res, &with_lb, &cip)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        texts,
        vec!["status.loadBalancer.ingress: Forbidden: may only be used when `spec.type` is 'LoadBalancer'".to_string()]
    );
}

#[test]
fn unsetting_the_primary_cluster_ip_is_rejected() {
    // Without the registry's carry-over (e.g. a caller that skips
    // `prepare_update`), dropping the IPs is reported as Kubernetes does.
    use crate::resource::find_kind;
    let res = find_kind("", "Service").unwrap();
    let mut old = stored(
        json!({"clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"], "ports": [{"port": 80}]}),
    );
    crate::defaults::apply(res, &mut old);
    let mut new = old.clone();
    new["spec"]["clusterIP"] = json!("");
    new["spec"]["clusterIPs"] = json!([]);
    let texts: Vec<String> = super::validate(res, &new, Some(&old))
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        texts,
        vec![
            "spec.clusterIPs[0]: Invalid value: []string{}: primary clusterIP can not be unset"
                .to_string()
        ]
    );
}
