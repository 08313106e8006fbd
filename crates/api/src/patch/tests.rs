//! Tests of strategic merge patch, merge patch and JSON patch as kubectl uses them.

use serde_json::{json, Value};

use super::*;
use crate::resource::find_kind;

fn deploy() -> &'static ResourceInfo {
    find_kind("apps", "Deployment").unwrap()
}

fn svc() -> &'static ResourceInfo {
    find_kind("", "Service").unwrap()
}

fn pod() -> &'static ResourceInfo {
    find_kind("", "Pod").unwrap()
}

/// (name, resource, original, patch, expected)
type Case = (&'static str, &'static ResourceInfo, Value, Value, Value);

#[test]
fn strategic_merge_directives() {
    let cases: Vec<Case> = vec![
        (
            "null deletes a field",
            svc(),
            json!({"spec": {"type": "NodePort", "externalTrafficPolicy": "Cluster"}}),
            json!({"spec": {"externalTrafficPolicy": null, "missing": null}}),
            json!({"spec": {"type": "NodePort"}}),
        ),
        (
            "maps merge, scalars replace",
            svc(),
            json!({"metadata": {"labels": {"a": "1", "b": "2"}}, "spec": {"type": "ClusterIP"}}),
            json!({"metadata": {"labels": {"b": "3", "c": "4"}}, "spec": {"type": "NodePort"}}),
            json!({"metadata": {"labels": {"a": "1", "b": "3", "c": "4"}}, "spec": {"type": "NodePort"}}),
        ),
        (
            "$patch: replace on a map",
            svc(),
            json!({"metadata": {"labels": {"a": "1", "b": "2"}}}),
            json!({"metadata": {"labels": {"$patch": "replace", "c": "3"}}}),
            json!({"metadata": {"labels": {"c": "3"}}}),
        ),
        (
            "$patch: delete on a map empties it",
            svc(),
            json!({"metadata": {"labels": {"a": "1"}}}),
            json!({"metadata": {"labels": {"$patch": "delete"}}}),
            json!({"metadata": {"labels": {}}}),
        ),
        (
            "list items merge by key, new items appended",
            svc(),
            json!({"spec": {"ports": [{"name": "a", "port": 80, "targetPort": 80}]}}),
            json!({"spec": {"ports": [{"port": 80, "targetPort": 8080}, {"name": "b", "port": 443}]}}),
            json!({"spec": {"ports": [{"name": "a", "port": 80, "targetPort": 8080}, {"name": "b", "port": 443}]}}),
        ),
        (
            "$patch: delete removes a list item by merge key",
            svc(),
            json!({"spec": {"ports": [{"port": 80}, {"port": 443}]}}),
            json!({"spec": {"ports": [{"$patch": "delete", "port": 80}]}}),
            json!({"spec": {"ports": [{"port": 443}]}}),
        ),
        (
            "$patch: replace in a list replaces the list",
            svc(),
            json!({"spec": {"ports": [{"port": 80}, {"port": 443}]}}),
            json!({"spec": {"ports": [{"port": 8080}, {"$patch": "replace"}]}}),
            json!({"spec": {"ports": [{"port": 8080}]}}),
        ),
        (
            "lists without a merge key are replaced",
            pod(),
            json!({"spec": {"tolerations": [{"key": "a"}], "containers": [{"name": "c", "args": ["x", "y"]}]}}),
            json!({"spec": {"tolerations": [{"key": "b"}], "containers": [{"name": "c", "args": ["z"]}]}}),
            json!({"spec": {"tolerations": [{"key": "b"}], "containers": [{"name": "c", "args": ["z"]}]}}),
        ),
        (
            "env merges by name inside a container merged by name",
            pod(),
            json!({"spec": {"containers": [{"name": "c", "image": "a", "env": [{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}]}]}}),
            json!({"spec": {"containers": [{"name": "c", "env": [{"name": "Y", "value": "3"}, {"$patch": "delete", "name": "X"}]}]}}),
            json!({"spec": {"containers": [{"name": "c", "image": "a", "env": [{"name": "Y", "value": "3"}]}]}}),
        ),
        (
            "primitive list with strategy merge is a union",
            pod(),
            json!({"metadata": {"finalizers": ["a", "b"]}}),
            json!({"metadata": {"finalizers": ["b", "c"]}}),
            json!({"metadata": {"finalizers": ["a", "b", "c"]}}),
        ),
        (
            "$deleteFromPrimitiveList removes primitives",
            pod(),
            json!({"metadata": {"finalizers": ["a", "b", "c"]}}),
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["b"]}}),
            json!({"metadata": {"finalizers": ["a", "c"]}}),
        ),
        (
            "$retainKeys drops keys not listed (Deployment strategy to Recreate)",
            deploy(),
            json!({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}}}),
            json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate", "rollingUpdate": null}}}),
            json!({"spec": {"strategy": {"type": "Recreate"}}}),
        ),
        (
            "volume items merge by name and honour $retainKeys",
            pod(),
            json!({"spec": {"volumes": [{"name": "v", "configMap": {"name": "a"}}, {"name": "w", "emptyDir": {}}]}}),
            json!({"spec": {"$setElementOrder/volumes": [{"name": "v"}, {"name": "w"}],
                "volumes": [{"$retainKeys": ["name", "secret"], "name": "v", "secret": {"secretName": "s"}}]}}),
            json!({"spec": {"volumes": [{"name": "v", "secret": {"secretName": "s"}}, {"name": "w", "emptyDir": {}}]}}),
        ),
        (
            "ownerReferences merge by uid",
            pod(),
            json!({"metadata": {"ownerReferences": [{"uid": "1", "name": "a"}, {"uid": "2", "name": "b"}]}}),
            json!({"metadata": {"ownerReferences": [{"uid": "2", "controller": true}, {"$patch": "delete", "uid": "1"}]}}),
            json!({"metadata": {"ownerReferences": [{"uid": "2", "name": "b", "controller": true}]}}),
        ),
        (
            "status conditions merge by type",
            pod(),
            json!({"status": {"conditions": [{"type": "Ready", "status": "False"}, {"type": "Initialized", "status": "True"}]}}),
            json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
            json!({"status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "Initialized", "status": "True"}]}}),
        ),
        (
            "$setElementOrder orders merged items",
            svc(),
            json!({"spec": {"ports": [{"port": 80}, {"port": 443}, {"port": 53}]}}),
            json!({"spec": {"$setElementOrder/ports": [{"port": 443}, {"port": 80}, {"port": 53}]}}),
            json!({"spec": {"ports": [{"port": 443}, {"port": 80}, {"port": 53}]}}),
        ),
        (
            "$setElementOrder of primitives",
            pod(),
            json!({"metadata": {"finalizers": ["a", "b"]}}),
            json!({"metadata": {"$setElementOrder/finalizers": ["c", "b", "a"], "finalizers": ["c"]}}),
            json!({"metadata": {"finalizers": ["c", "b", "a"]}}),
        ),
        (
            "a new field's directives and nulls are not stored",
            svc(),
            json!({"spec": {}}),
            json!({"spec": {"ports": [{"port": 80, "name": null}, {"$patch": "delete", "port": 1}]}}),
            json!({"spec": {"ports": [{"port": 80}]}}),
        ),
    ];
    for (name, res, original, patch, expected) in cases {
        let got = strategic_merge(res, &original, &patch).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(got, expected, "{name}");
    }
}

#[test]
fn strategic_merge_errors_are_worded_like_kubernetes() {
    let cases: Vec<(&str, Value, Value, u16, &str)> = vec![
        (
            "item without merge key",
            json!({"spec": {"ports": [{"port": 80}]}}),
            json!({"spec": {"ports": [{"targetPort": 80}]}}),
            500,
            "map: map[targetPort:80] does not contain declared merge key: port",
        ),
        (
            "retainKeys not a list",
            json!({"spec": {}}),
            json!({"spec": {"$retainKeys": "type"}}),
            400,
            "invalid patch format of retainKeys",
        ),
        (
            "unknown $patch",
            json!({"spec": {}}),
            json!({"spec": {"$patch": "bogus"}}),
            500,
            "unknown patch type: bogus in map: map[$patch:bogus]",
        ),
        (
            "setElementOrder not a list",
            json!({"spec": {}}),
            json!({"spec": {"$setElementOrder/ports": 3}}),
            400,
            "invalid patch format of setElementOrder list",
        ),
        (
            "list of lists",
            json!({"spec": {"ports": [[1]]}}),
            json!({"spec": {"ports": [[2]]}}),
            422,
            "the server rejected our request due to an error in our request",
        ),
        (
            "patch not an object",
            json!({"spec": {}}),
            json!([1]),
            400,
            "invalid JSON document",
        ),
    ];
    for (name, original, patch, code, message) in cases {
        let err = strategic_merge(svc(), &original, &patch).expect_err(name);
        let api = err.to_api_error();
        assert_eq!((api.code, api.message.as_str()), (code, message), "{name}");
    }
}

/// The live Deployment as the server stores it (defaulted, with status).
fn live_deployment() -> Value {
    let last = r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"annotations":{},"labels":{"app":"nginx"},"name":"nginx","namespace":"default"},"spec":{"replicas":2,"selector":{"matchLabels":{"app":"nginx"}},"template":{"metadata":{"labels":{"app":"nginx"}},"spec":{"containers":[{"image":"nginx:1.25","name":"nginx","ports":[{"containerPort":80},{"containerPort":443}]}]}}}}"#;
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "nginx", "namespace": "default", "uid": "u1", "resourceVersion": "7", "generation": 1,
            "labels": {"app": "nginx"},
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": format!("{last}\n")}},
        "spec": {
            "replicas": 2, "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600,
            "selector": {"matchLabels": {"app": "nginx"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "template": {
                "metadata": {"labels": {"app": "nginx"}},
                "spec": {
                    "containers": [{
                        "name": "nginx", "image": "nginx:1.25", "imagePullPolicy": "IfNotPresent",
                        "ports": [{"containerPort": 80, "protocol": "TCP"}, {"containerPort": 443, "protocol": "TCP"}],
                        "resources": {}, "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File"
                    }],
                    "restartPolicy": "Always", "dnsPolicy": "ClusterFirst", "schedulerName": "default-scheduler",
                    "securityContext": {}, "terminationGracePeriodSeconds": 30
                }
            }
        },
        "status": {"replicas": 2, "readyReplicas": 2}
    })
}

#[test]
fn kubectl_apply_three_way_patch_of_a_deployment() {
    // Captured from kubectl 1.32 `apply` after the manifest changed the image,
    // dropped port 443, set replicas to 3, switched the strategy to Recreate
    // and added an env var (CreateThreeWayMergePatch).
    let new_last = r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"annotations":{},"labels":{"app":"nginx"},"name":"nginx","namespace":"default"},"spec":{"replicas":3,"selector":{"matchLabels":{"app":"nginx"}},"strategy":{"type":"Recreate"},"template":{"metadata":{"labels":{"app":"nginx"}},"spec":{"containers":[{"env":[{"name":"A","value":"1"}],"image":"nginx:1.27","name":"nginx","ports":[{"containerPort":80}]}]}}}}"#;
    let patch = json!({
        "metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": format!("{new_last}\n")}},
        "spec": {
            "replicas": 3,
            "strategy": {"$retainKeys": ["type"], "type": "Recreate"},
            "template": {"spec": {
                "$setElementOrder/containers": [{"name": "nginx"}],
                "containers": [{
                    "$setElementOrder/ports": [{"containerPort": 80}],
                    "env": [{"name": "A", "value": "1"}],
                    "image": "nginx:1.27", "name": "nginx",
                    "ports": [{"$patch": "delete", "containerPort": 443}]
                }]
            }}
        }
    });
    let got = strategic_merge(deploy(), &live_deployment(), &patch).unwrap();
    let mut want = live_deployment();
    want["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] =
        json!(format!("{new_last}\n"));
    want["spec"]["replicas"] = json!(3);
    want["spec"]["strategy"] = json!({"type": "Recreate"});
    let c = &mut want["spec"]["template"]["spec"]["containers"][0];
    c["image"] = json!("nginx:1.27");
    c["ports"] = json!([{"containerPort": 80, "protocol": "TCP"}]);
    c["env"] = json!([{"name": "A", "value": "1"}]);
    assert_eq!(got, want);
}

#[test]
fn kubectl_edit_two_way_patch_of_a_deployment() {
    // Captured from kubectl 1.32 `edit` after changing the image, replacing
    // port 443 with 8443 and setting replicas to 4.
    let patch = json!({"spec": {"replicas": 4, "template": {"spec": {
        "$setElementOrder/containers": [{"name": "nginx"}],
        "containers": [{
            "$setElementOrder/ports": [{"containerPort": 80}, {"containerPort": 8443}],
            "image": "nginx:1.26", "name": "nginx",
            "ports": [{"containerPort": 8443, "protocol": "TCP"}, {"$patch": "delete", "containerPort": 443}]
        }]
    }}}});
    let got = strategic_merge(deploy(), &live_deployment(), &patch).unwrap();
    let c = &got["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(got["spec"]["replicas"], 4);
    assert_eq!(c["image"], "nginx:1.26");
    assert_eq!(
        c["ports"],
        json!([{"containerPort": 80, "protocol": "TCP"}, {"containerPort": 8443, "protocol": "TCP"}])
    );
    assert_eq!(c["imagePullPolicy"], "IfNotPresent");
}

#[test]
fn kubectl_apply_three_way_patch_of_a_service() {
    let live = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "my-app-service", "namespace": "default"},
        "spec": {
            "type": "ClusterIP", "clusterIP": "10.96.0.20", "clusterIPs": ["10.96.0.20"],
            "selector": {"app": "my-app"}, "sessionAffinity": "None",
            "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 3000}]
        },
        "status": {"loadBalancer": {}}
    });
    // Captured from kubectl 1.32 `apply`: targetPort 3000 -> 3001 and a new
    // https port (annotation update left out).
    let patch = json!({
        "spec": {
            "$setElementOrder/ports": [{"port": 80}, {"port": 443}],
            "ports": [{"port": 80, "targetPort": 3001}, {"name": "https", "port": 443, "protocol": "TCP", "targetPort": 3443}]
        }
    });
    let got = strategic_merge(svc(), &live, &patch).unwrap();
    assert_eq!(
        got["spec"]["ports"],
        json!([
            {"name": "http", "port": 80, "protocol": "TCP", "targetPort": 3001},
            {"name": "https", "port": 443, "protocol": "TCP", "targetPort": 3443}
        ])
    );
    assert_eq!(got["spec"]["clusterIPs"], json!(["10.96.0.20"]));
    assert_eq!(got["spec"]["selector"], json!({"app": "my-app"}));
}

#[test]
fn kubectl_label_annotate_scale_and_edit_patches() {
    let live = live_deployment();
    // kubectl label deploy nginx tier=web
    let got = strategic_merge(
        deploy(),
        &live,
        &json!({"metadata": {"labels": {"tier": "web"}}}),
    )
    .unwrap();
    assert_eq!(
        got["metadata"]["labels"],
        json!({"app": "nginx", "tier": "web"})
    );
    // kubectl label deploy nginx app-
    let got = strategic_merge(
        deploy(),
        &got,
        &json!({"metadata": {"labels": {"app": null}}}),
    )
    .unwrap();
    assert_eq!(got["metadata"]["labels"], json!({"tier": "web"}));
    // kubectl annotate
    let got = strategic_merge(
        deploy(),
        &got,
        &json!({"metadata": {"annotations": {"note": "x"}}}),
    )
    .unwrap();
    assert_eq!(got["metadata"]["annotations"]["note"], "x");
    // kubectl scale sends a merge patch to the scale subresource; on the object it is:
    let got = merge(&got, &json!({"spec": {"replicas": 5}})).unwrap();
    assert_eq!(got["spec"]["replicas"], 5);
    // kubectl set image (captured), then kubectl patch adding an env var.
    let set_image = json!({"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "nginx"}],
        "containers": [{"image": "nginx:1.25", "name": "nginx"}]
    }}}});
    let got = strategic_merge(deploy(), &got, &set_image).unwrap();
    let edit = json!({"spec": {"template": {"spec": {
        "containers": [{"name": "nginx", "env": [{"name": "MODE", "value": "prod"}]}]
    }}}});
    let got = strategic_merge(deploy(), &got, &edit).unwrap();
    let c = &got["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["env"], json!([{"name": "MODE", "value": "prod"}]));
    assert_eq!(c["image"], "nginx:1.25");
    assert_eq!(c["ports"].as_array().unwrap().len(), 2);
}

#[test]
fn merge_patch_follows_rfc7386() {
    let original = json!({"a": 1, "b": {"c": 2, "d": 3}, "l": [1, 2]});
    let got = merge(&original, &json!({"b": {"c": null, "e": 4}, "l": [3]})).unwrap();
    assert_eq!(got, json!({"a": 1, "b": {"d": 3, "e": 4}, "l": [3]}));
    let err = merge(&original, &Value::Null).unwrap_err();
    assert_eq!(err.to_api_error().code, 400);
}

#[test]
fn json_patch_applies_and_reports_failures() {
    let original = json!({"spec": {"replicas": 1, "ports": [{"port": 80}]}});
    let patch = json!([
        {"op": "replace", "path": "/spec/replicas", "value": 3},
        {"op": "add", "path": "/spec/ports/-", "value": {"port": 443}},
        {"op": "test", "path": "/spec/replicas", "value": 3}
    ]);
    let got = json_patch(&original, &patch).unwrap();
    assert_eq!(
        got,
        json!({"spec": {"replicas": 3, "ports": [{"port": 80}, {"port": 443}]}})
    );

    let err = json_patch(
        &original,
        &json!([{"op": "remove", "path": "/spec/missing"}]),
    )
    .unwrap_err();
    let api = err.to_api_error();
    assert_eq!(api.code, 422);
    assert_eq!(
        api.message,
        "the server rejected our request due to an error in our request"
    );

    let err = json_patch(&original, &json!({"op": "bogus"})).unwrap_err();
    assert_eq!(err.to_api_error().code, 400);
}

#[test]
fn merged_fields_keep_their_position() {
    let original = json!({"spec": {"a": 1, "ports": [{"port": 80}], "z": 2}});
    let got = strategic_merge(
        svc(),
        &original,
        &json!({"spec": {"ports": [{"port": 81}], "a": null}}),
    )
    .unwrap();
    let keys: Vec<&String> = got["spec"].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["ports", "z"]);
}
