//! Defaulting tests: objects come out as kube-apiserver stores them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{json, Value};

use super::*;
use crate::resource::find_kind;

fn defaulted(group: &str, kind: &str, mut obj: Value) -> Value {
    apply(find_kind(group, kind).unwrap(), &mut obj);
    obj
}

#[test]
fn cluster_ip_service() {
    let s = defaulted(
        "",
        "Service",
        json!({"metadata": {"name": "a"}, "spec": {"ports": [{"port": 80}]}}),
    );
    assert_eq!(
        s["spec"],
        json!({"ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}], "sessionAffinity": "None",
            "type": "ClusterIP", "internalTrafficPolicy": "Cluster", "ipFamilyPolicy": "SingleStack", "ipFamilies": ["IPv4"]})
    );
    assert_eq!(s["status"], json!({"loadBalancer": {}}));
}

#[test]
fn node_port_and_load_balancer_services() {
    let s = defaulted(
        "",
        "Service",
        json!({"spec": {"type": "NodePort", "ports": [{"port": 80, "targetPort": "http"}]}}),
    );
    assert_eq!(s["spec"]["externalTrafficPolicy"], "Cluster");
    assert_eq!(s["spec"]["ports"][0]["targetPort"], "http");
    assert!(s["spec"].get("allocateLoadBalancerNodePorts").is_none());
    let s = defaulted(
        "",
        "Service",
        json!({"spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}}),
    );
    assert_eq!(s["spec"]["allocateLoadBalancerNodePorts"], true);
    assert_eq!(s["spec"]["externalTrafficPolicy"], "Cluster");
}

#[test]
fn session_affinity_client_ip_gets_timeout() {
    let s = defaulted(
        "",
        "Service",
        json!({"spec": {"sessionAffinity": "ClientIP", "ports": [{"port": 80}]}}),
    );
    assert_eq!(
        s["spec"]["sessionAffinityConfig"],
        json!({"clientIP": {"timeoutSeconds": 10800}})
    );
}

#[test]
fn external_name_and_headless() {
    let s = defaulted(
        "",
        "Service",
        json!({"spec": {"type": "ExternalName", "externalName": "example.com"}}),
    );
    assert!(s["spec"].get("ipFamilies").is_none());
    assert!(s["spec"].get("ipFamilyPolicy").is_none());
    assert!(s["spec"].get("clusterIPs").is_none());
    assert!(s["spec"].get("internalTrafficPolicy").is_none());
    let s = defaulted(
        "",
        "Service",
        json!({"spec": {"clusterIP": "None", "selector": {"a": "b"}}}),
    );
    assert_eq!(s["spec"]["clusterIPs"], json!(["None"]));
    assert_eq!(s["spec"]["ipFamilies"], json!(["IPv4"]));
    let s = defaulted(
        "",
        "Service",
        json!({"spec": {"clusterIP": "fd00::10", "ports": [{"port": 1}]}}),
    );
    assert_eq!(s["spec"]["ipFamilies"], json!(["IPv6"]));
}

#[test]
fn pod_defaults() {
    let p = defaulted(
        "",
        "Pod",
        json!({"spec": {"containers": [
            {"name": "a", "image": "nginx", "ports": [{"containerPort": 80}],
             "readinessProbe": {"httpGet": {"port": 80}}},
            {"name": "b", "image": "nginx:1.27"},
            {"name": "c", "image": "reg:5000/x:latest"},
            {"name": "d", "image": "nginx@sha256:abc"}
        ]}}),
    );
    let spec = &p["spec"];
    assert_eq!(spec["restartPolicy"], "Always");
    assert_eq!(spec["dnsPolicy"], "ClusterFirst");
    assert_eq!(spec["terminationGracePeriodSeconds"], 30);
    assert_eq!(spec["schedulerName"], "default-scheduler");
    assert_eq!(spec["securityContext"], json!({}));
    assert_eq!(spec["enableServiceLinks"], true);
    let c = &spec["containers"];
    assert_eq!(c[0]["imagePullPolicy"], "Always");
    assert_eq!(c[1]["imagePullPolicy"], "IfNotPresent");
    assert_eq!(c[2]["imagePullPolicy"], "Always");
    assert_eq!(c[3]["imagePullPolicy"], "IfNotPresent");
    assert_eq!(c[0]["terminationMessagePath"], "/dev/termination-log");
    assert_eq!(c[0]["terminationMessagePolicy"], "File");
    assert_eq!(c[0]["ports"][0]["protocol"], "TCP");
    assert_eq!(
        c[0]["readinessProbe"],
        json!({"httpGet": {"port": 80, "path": "/", "scheme": "HTTP"}, "timeoutSeconds": 1, "periodSeconds": 10,
            "successThreshold": 1, "failureThreshold": 3})
    );
    assert_eq!(
        p["status"],
        json!({"phase": "Pending", "qosClass": "BestEffort"})
    );
    assert_eq!(spec["tolerations"].as_array().unwrap().len(), 2);
}

#[test]
fn deployment_defaults() {
    let d = defaulted(
        "apps",
        "Deployment",
        json!({"spec": {"selector": {"matchLabels": {"a": "b"}},
            "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "x:1"}]}}}}),
    );
    let spec = &d["spec"];
    assert_eq!(spec["replicas"], 1);
    assert_eq!(
        spec["strategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}})
    );
    assert_eq!(spec["revisionHistoryLimit"], 10);
    assert_eq!(spec["progressDeadlineSeconds"], 600);
    assert_eq!(spec["template"]["spec"]["restartPolicy"], "Always");
    assert!(spec["template"]["spec"].get("enableServiceLinks").is_none());
    let r = defaulted(
        "apps",
        "ReplicaSet",
        json!({"spec": {"template": {"spec": {"containers": []}}}}),
    );
    assert_eq!(r["spec"]["replicas"], 1);
    let d = defaulted(
        "apps",
        "Deployment",
        json!({"spec": {"strategy": {"type": "Recreate"}}}),
    );
    assert_eq!(d["spec"]["strategy"], json!({"type": "Recreate"}));
}

#[test]
fn namespace_secret_and_slices() {
    let n = defaulted("", "Namespace", json!({"metadata": {"name": "team-a"}}));
    assert_eq!(
        n["metadata"]["labels"]["kubernetes.io/metadata.name"],
        "team-a"
    );
    assert_eq!(n["spec"]["finalizers"], json!(["kubernetes"]));
    assert_eq!(n["status"]["phase"], "Active");
    let s = defaulted("", "Secret", json!({"metadata": {"name": "s"}}));
    assert_eq!(s["type"], "Opaque");
    let e = defaulted(
        "discovery.k8s.io",
        "EndpointSlice",
        json!({"ports": [{"port": 80}]}),
    );
    assert_eq!(
        e["ports"][0],
        json!({"port": 80, "name": "", "protocol": "TCP"})
    );
    let c = defaulted(
        "networking.k8s.io",
        "IngressClass",
        json!({"spec": {"parameters": {"kind": "K", "name": "n"}}}),
    );
    assert_eq!(c["spec"]["parameters"]["scope"], "Cluster");
}

#[test]
fn defaulting_is_idempotent() {
    let once = defaulted(
        "",
        "Pod",
        json!({"spec": {"containers": [{"name": "a", "image": "nginx"}]}}),
    );
    let twice = defaulted("", "Pod", once.clone());
    assert_eq!(once, twice);
    let once = defaulted(
        "",
        "Service",
        json!({"spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}}),
    );
    assert_eq!(defaulted("", "Service", once.clone()), once);
}

#[test]
fn service_update_carries_allocations() {
    let res = find_kind("", "Service").unwrap();
    let old = defaulted(
        "",
        "Service",
        json!({"metadata": {"name": "a", "uid": "u", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"type": "NodePort", "clusterIP": "10.96.0.7", "ports": [{"name": "http", "port": 80, "nodePort": 30080}]}}),
    );
    let mut new = defaulted(
        "",
        "Service",
        json!({"metadata": {"name": "a"}, "spec": {"type": "NodePort", "ports": [{"name": "http", "port": 80}]}}),
    );
    prepare_update(res, &mut new, &old);
    assert_eq!(new["spec"]["clusterIP"], "10.96.0.7");
    assert_eq!(new["spec"]["clusterIPs"], json!(["10.96.0.7"]));
    assert_eq!(new["spec"]["ports"][0]["nodePort"], 30080);
    assert_eq!(new["metadata"]["uid"], "u");
    assert_eq!(new["metadata"]["creationTimestamp"], "2026-01-01T00:00:00Z");
    // NodePort -> ClusterIP drops the node port and the traffic policy.
    let mut to_cip = old.clone();
    to_cip["spec"]["type"] = json!("ClusterIP");
    apply(res, &mut to_cip);
    prepare_update(res, &mut to_cip, &old);
    assert!(to_cip["spec"]["ports"][0].get("nodePort").is_none());
    assert!(to_cip["spec"].get("externalTrafficPolicy").is_none());
}
