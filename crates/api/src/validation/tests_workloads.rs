//! Deployment, ReplicaSet and Pod validation tests (kubectl-visible texts).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{json, Value};

use super::test_util::message;

fn deploy(selector: Option<Value>, labels: Value) -> Value {
    let mut d = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"replicas": 2, "template": {"metadata": {"labels": labels},
            "spec": {"containers": [{"name": "nginx", "image": "nginx:1.27"}]}}}
    });
    if let Some(s) = selector {
        d["spec"]["selector"] = s;
    }
    d
}

#[test]
fn deployment_messages() {
    let cases: Vec<(Value, &str)> = vec![
        (deploy(Some(json!({"matchLabels": {"app": "web"}})), json!({"app": "web"})), "valid"),
        (
            deploy(Some(json!({"matchLabels": {"app": "web"}})), json!({"app": "x"})),
            "Deployment.apps \"web\" is invalid: spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"x\"}: `selector` does not match template `labels`",
        ),
        (
            deploy(None, json!({"app": "nginx"})),
            "Deployment.apps \"web\" is invalid: [spec.selector: Required value, spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"nginx\"}: `selector` does not match template `labels`]",
        ),
        (
            deploy(Some(json!({})), json!({"app": "web"})),
            "Deployment.apps \"web\" is invalid: spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid for deployment",
        ),
        (
            {
                let mut d = deploy(Some(json!({"matchLabels": {"app": "web"}})), json!({"app": "web"}));
                d["spec"]["replicas"] = json!(-1);
                d
            },
            "Deployment.apps \"web\" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0",
        ),
        (
            {
                let mut d = deploy(Some(json!({"matchLabels": {"app": "web"}})), json!({"app": "web"}));
                d["spec"]["template"]["spec"]["containers"] = json!([]);
                d
            },
            "Deployment.apps \"web\" is invalid: spec.template.spec.containers: Required value",
        ),
        (
            {
                let mut d = deploy(Some(json!({"matchLabels": {"app": "web"}})), json!({"app": "web"}));
                d["spec"]["strategy"] = json!({"type": "Recreate", "rollingUpdate": {"maxSurge": 1}});
                d
            },
            "Deployment.apps \"web\" is invalid: spec.strategy.rollingUpdate: Forbidden: may not be specified when strategy `type` is 'Recreate'",
        ),
        (
            {
                let mut d = deploy(Some(json!({"matchLabels": {"app": "web"}})), json!({"app": "web"}));
                d["spec"]["strategy"] = json!({"rollingUpdate": {"maxSurge": 0, "maxUnavailable": 0}});
                d
            },
            "Deployment.apps \"web\" is invalid: spec.strategy.rollingUpdate.maxUnavailable: Invalid value: intstr.IntOrString{Type:0, IntVal:0, StrVal:\"\"}: may not be 0 when `maxSurge` is 0",
        ),
        (
            {
                let mut d = deploy(Some(json!({"matchLabels": {"app": "web"}})), json!({"app": "web"}));
                d["spec"]["template"]["spec"]["restartPolicy"] = json!("Never");
                d
            },
            "Deployment.apps \"web\" is invalid: spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\"",
        ),
        (
            deploy(Some(json!({"matchExpressions": [{"key": "app", "operator": "In", "values": ["web", "api"]}]})), json!({"app": "api"})),
            "valid",
        ),
    ];
    for (obj, want) in cases {
        assert_eq!(
            message("apps", "Deployment", obj.clone(), None),
            want,
            "object: {obj}"
        );
    }
}

#[test]
fn deployment_selector_is_immutable() {
    let mut old = deploy(
        Some(json!({"matchLabels": {"app": "web"}})),
        json!({"app": "web"}),
    );
    old["metadata"]["uid"] = json!("u");
    let mut new = deploy(
        Some(json!({"matchLabels": {"app": "web2"}})),
        json!({"app": "web2"}),
    );
    new["metadata"]["uid"] = json!("u");
    assert_eq!(
        message("apps", "Deployment", new, Some(old.clone())),
        "Deployment.apps \"web\" is invalid: spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"web2\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable"
    );
    // Scaling and image changes are fine; an explicit empty expressions list is not a change.
    let mut new = old.clone();
    new["spec"]["replicas"] = json!(5);
    new["spec"]["selector"]["matchExpressions"] = json!([]);
    new["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:1.28");
    assert_eq!(message("apps", "Deployment", new, Some(old)), "valid");
}

#[test]
fn replica_set_messages() {
    let mut rs = deploy(
        Some(json!({"matchLabels": {"app": "web"}})),
        json!({"app": "web"}),
    );
    rs["kind"] = json!("ReplicaSet");
    assert_eq!(message("apps", "ReplicaSet", rs.clone(), None), "valid");
    rs["spec"]["selector"] = json!({"matchLabels": {"app": "other"}});
    assert_eq!(
        message("apps", "ReplicaSet", rs, None),
        "ReplicaSet.apps \"web\" is invalid: spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"web\"}: `selector` does not match template `labels`"
    );
}

fn pod(spec: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"}, "spec": spec})
}

#[test]
fn pod_messages() {
    let cases: Vec<(Value, &str)> = vec![
        (pod(json!({"containers": [{"name": "c", "image": "busybox"}]})), "valid"),
        (pod(json!({})), "Pod \"p\" is invalid: spec.containers: Required value"),
        (
            pod(json!({"containers": [{"name": "c"}]})),
            "Pod \"p\" is invalid: spec.containers[0].image: Required value",
        ),
        (
            pod(json!({"containers": [{"image": "busybox"}]})),
            "Pod \"p\" is invalid: spec.containers[0].name: Required value",
        ),
        (
            pod(json!({"containers": [{"name": "c", "image": "a"}, {"name": "c", "image": "b"}]})),
            "Pod \"p\" is invalid: spec.containers[1].name: Duplicate value: \"c\"",
        ),
        (
            pod(json!({"containers": [{"name": "Web", "image": "a"}]})),
            "Pod \"p\" is invalid: spec.containers[0].name: Invalid value: \"Web\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
        ),
        (
            pod(json!({"restartPolicy": "Sometimes", "containers": [{"name": "c", "image": "a"}]})),
            "Pod \"p\" is invalid: spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\"",
        ),
        (
            pod(json!({"containers": [{"name": "c", "image": "a", "ports": [{"containerPort": 0}]}]})),
            "Pod \"p\" is invalid: spec.containers[0].ports[0].containerPort: Required value",
        ),
        (
            pod(json!({"containers": [{"name": "c", "image": "a", "ports": [{"containerPort": 80, "name": "http"}, {"containerPort": 81, "name": "http"}]}]})),
            "Pod \"p\" is invalid: spec.containers[0].ports[1].name: Duplicate value: \"http\"",
        ),
        (
            pod(json!({"containers": [{"name": "c", "image": "a", "livenessProbe": {"httpGet": {"port": 8080}, "successThreshold": 2}}]})),
            "Pod \"p\" is invalid: spec.containers[0].livenessProbe.successThreshold: Invalid value: 2: must be 1",
        ),
        (
            pod(json!({"containers": [{"name": "c", "image": "a", "readinessProbe": {"periodSeconds": 5}}]})),
            "Pod \"p\" is invalid: spec.containers[0].readinessProbe: Required value: must specify a handler type",
        ),
    ];
    for (obj, want) in cases {
        assert_eq!(message("", "Pod", obj.clone(), None), want, "object: {obj}");
    }
}

#[test]
fn pod_updates_may_only_change_images() {
    let mut old = pod(
        json!({"containers": [{"name": "c", "image": "busybox:1", "ports": [{"containerPort": 80}]}]}),
    );
    old["metadata"]["uid"] = json!("u");
    let mut new = old.clone();
    new["spec"]["containers"][0]["image"] = json!("busybox:2");
    new["metadata"]["labels"] = json!({"a": "b"});
    assert_eq!(message("", "Pod", new, Some(old.clone())), "valid");
    let mut new = old.clone();
    new["spec"]["containers"][0]["ports"][0]["containerPort"] = json!(81);
    let msg = message("", "Pod", new, Some(old.clone()));
    assert!(
        msg.starts_with("Pod \"p\" is invalid: spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)\n"),
        "{msg}"
    );
    // Binding an unscheduled pod to a node through an update is allowed.
    let mut new = old.clone();
    new["spec"]["nodeName"] = json!("node-1");
    assert_eq!(message("", "Pod", new, Some(old)), "valid");
}
