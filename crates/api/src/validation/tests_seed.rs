//! The seed manifests in `examples/` (as kubectl sends them) default,
//! validate and strict-decode cleanly, and keep doing so after allocation
//! and a later update.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{json, Value};

use crate::defaults;
use crate::resource::find_kind;
use crate::strict;

fn seeds() -> Vec<(&'static str, &'static str, Value)> {
    let ns = "default";
    vec![
        (
            "",
            "Service",
            json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "external-db", "namespace": ns},
            "spec": {"type": "ExternalName", "externalName": "db.example.com"}}),
        ),
        (
            "apps",
            "Deployment",
            json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "my-app", "namespace": ns, "labels": {"app": "my-app"},
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"apiVersion\":\"apps/v1\"}\n"}},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "my-app"}},
                "template": {"metadata": {"labels": {"app": "my-app"}},
                    "spec": {"containers": [{"name": "my-app", "image": "registry.k8s.io/e2e-test-images/agnhost:2.53",
                        "args": ["netexec", "--http-port=3000"], "ports": [{"containerPort": 3000}]}]}}}}),
        ),
        (
            "",
            "Service",
            json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "my-app-lb", "namespace": ns},
            "spec": {"type": "LoadBalancer", "selector": {"app": "my-app"}, "ports": [{"port": 80, "targetPort": 3000}]}}),
        ),
        (
            "",
            "Service",
            json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "my-app-nodeport", "namespace": ns},
            "spec": {"type": "NodePort", "selector": {"app": "my-app"},
                "ports": [{"port": 80, "targetPort": 3000, "nodePort": 30081}]}}),
        ),
        (
            "",
            "Service",
            json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "my-app-service", "namespace": ns},
            "spec": {"type": "ClusterIP", "selector": {"app": "my-app"}, "ports": [{"port": 80, "targetPort": 3000}]}}),
        ),
        (
            "networking.k8s.io",
            "Ingress",
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": "my-ingress", "namespace": ns,
                "annotations": {"nginx.ingress.kubernetes.io/rewrite-target": "/"}},
            "spec": {"ingressClassName": "nginx", "rules": [{"host": "myapp.example.com", "http": {"paths": [
                {"path": "/api", "pathType": "Prefix", "backend": {"service": {"name": "api-service", "port": {"number": 8080}}}},
                {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web-service", "port": {"number": 80}}}}
            ]}}]}}),
        ),
        (
            "apps",
            "Deployment",
            json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "nginx-deployment", "namespace": ns, "labels": {"app": "nginx"}},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "nginx"}},
                "template": {"metadata": {"labels": {"app": "nginx"}},
                    "spec": {"containers": [{"name": "nginx", "image": "nginx:latest", "ports": [{"containerPort": 80}]}]}}}}),
        ),
        (
            "",
            "Service",
            json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "nginx-service-nodeport", "namespace": ns},
            "spec": {"selector": {"app": "nginx"}, "type": "NodePort",
                "ports": [{"protocol": "TCP", "port": 80, "targetPort": 80, "nodePort": 30080}]}}),
        ),
    ]
}

/// What the allocator does after validation on create of a NodePort or
/// LoadBalancer Service.
fn allocate(obj: &mut Value, ip: &str) {
    if obj["spec"]["type"] == "ExternalName" {
        return;
    }
    obj["spec"]["clusterIP"] = json!(ip);
    obj["spec"]["clusterIPs"] = json!([ip]);
    if let Some(ports) = obj["spec"]["ports"].as_array_mut() {
        for (i, p) in ports.iter_mut().enumerate() {
            if p.get("nodePort").is_none() {
                p["nodePort"] = json!(31000 + i);
            }
        }
    }
    obj["metadata"]["uid"] = json!("uid-1");
    obj["metadata"]["resourceVersion"] = json!("7");
    obj["metadata"]["creationTimestamp"] = json!("2026-12-04T00:00:00Z");
}

#[test]
fn seed_manifests_create_and_update_cleanly() {
    for (i, (group, kind, obj)) in seeds().into_iter().enumerate() {
        let res = find_kind(group, kind).unwrap();
        assert!(strict::unknown_fields(res, &obj).is_empty(), "{obj}");
        assert!(strict::decode_error(res, &obj).is_none(), "{obj}");
        let mut created = obj.clone();
        defaults::apply(res, &mut created);
        let errs = super::validate(res, &created, None);
        assert!(
            errs.is_empty(),
            "{kind} {}: {errs:?}",
            obj["metadata"]["name"]
        );
        if kind == "Service" && created["spec"]["type"] != "ClusterIP" {
            // Only NodePort/LoadBalancer get node ports from the allocator.
            allocate(&mut created, &format!("10.96.0.{}", 20 + i));
        } else if kind == "Service" {
            created["spec"]["clusterIP"] = json!(format!("10.96.0.{}", 20 + i));
            created["spec"]["clusterIPs"] = json!([format!("10.96.0.{}", 20 + i)]);
            created["metadata"]["uid"] = json!("uid-1");
        }
        assert!(
            strict::unknown_fields(res, &created).is_empty(),
            "{created}"
        );
        // Re-applying the original manifest (kubectl replace-style update).
        let mut updated = obj.clone();
        updated["metadata"]["resourceVersion"] = json!("7");
        defaults::apply(res, &mut updated);
        defaults::prepare_update(res, &mut updated, &created);
        let errs = super::validate(res, &updated, Some(&created));
        assert!(
            errs.is_empty(),
            "update {kind} {}: {errs:?}",
            obj["metadata"]["name"]
        );
    }
}
