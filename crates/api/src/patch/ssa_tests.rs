//! Tests of server-side apply and `managedFields` recording.

use serde_json::{json, Value};

use super::*;
use crate::resource::find_kind;

const T0: &str = "2026-12-04T10:00:00Z";
const T1: &str = "2026-12-04T11:00:00Z";
const T2: &str = "2026-12-04T12:00:00Z";

fn svc() -> &'static ResourceInfo {
    find_kind("", "Service").unwrap()
}

fn service_config(ports: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
        "spec": {"selector": {"app": "web"}, "ports": ports}
    })
}

/// What the API server adds after apply/create: defaults and allocations.
fn server_defaults(mut obj: Value) -> Value {
    obj["metadata"]["uid"] = json!("u-1");
    obj["metadata"]["resourceVersion"] = json!("5");
    obj["spec"]["type"] = json!("ClusterIP");
    obj["spec"]["clusterIP"] = json!("10.96.0.50");
    if let Some(ports) = obj["spec"]["ports"].as_array_mut() {
        for p in ports {
            if p.get("protocol").is_none() {
                p["protocol"] = json!("TCP");
            }
        }
    }
    obj
}

fn managers(obj: &Value) -> Vec<(String, String)> {
    obj["metadata"]["managedFields"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| {
                    (
                        e["manager"].as_str().unwrap().to_string(),
                        e["operation"].as_str().unwrap().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn entry<'a>(obj: &'a Value, manager: &str) -> &'a Value {
    obj["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["manager"] == manager)
        .unwrap()
}

#[test]
fn apply_creates_the_object_with_an_apply_entry() {
    let cfg = service_config(json!([{"name": "http", "port": 80, "targetPort": 8080}]));
    let obj = server_side_apply(svc(), None, &cfg, "kubectl", false, T0).unwrap();
    assert_eq!(obj["spec"]["ports"], cfg["spec"]["ports"]);
    assert_eq!(obj["metadata"]["name"], "web");
    assert_eq!(
        obj["metadata"]["managedFields"],
        json!([{
            "manager": "kubectl", "operation": "Apply", "apiVersion": "v1", "time": T0,
            "fieldsType": "FieldsV1",
            "fieldsV1": {
                "f:metadata": {"f:labels": {"f:app": {}}},
                "f:spec": {
                    "f:ports": {"k:{\"port\":80,\"protocol\":\"TCP\"}": {".": {}, "f:name": {}, "f:port": {}, "f:targetPort": {}}},
                    "f:selector": {}
                }
            }
        }])
    );
}

#[test]
fn reapply_changes_adds_and_prunes_fields_it_owned() {
    let cfg1 = service_config(
        json!([{"name": "http", "port": 80, "targetPort": 8080}, {"name": "metrics", "port": 9100}]),
    );
    let live =
        server_defaults(server_side_apply(svc(), None, &cfg1, "kubectl", false, T0).unwrap());

    // Change targetPort, add https, drop metrics.
    let cfg2 = service_config(
        json!([{"name": "http", "port": 80, "targetPort": 9090}, {"name": "https", "port": 443}]),
    );
    let obj = server_side_apply(svc(), Some(&live), &cfg2, "kubectl", false, T1).unwrap();
    assert_eq!(
        obj["spec"]["ports"],
        json!([
            {"name": "http", "port": 80, "targetPort": 9090, "protocol": "TCP"},
            {"name": "https", "port": 443}
        ])
    );
    // Server-set fields nobody applied stay.
    assert_eq!(obj["spec"]["clusterIP"], "10.96.0.50");
    assert_eq!(obj["metadata"]["uid"], "u-1");
    assert_eq!(
        managers(&obj),
        vec![("kubectl".to_string(), "Apply".to_string())]
    );
    assert_eq!(entry(&obj, "kubectl")["time"], T1);
    let fields = &entry(&obj, "kubectl")["fieldsV1"]["f:spec"]["f:ports"];
    assert!(fields
        .get("k:{\"port\":443,\"protocol\":\"TCP\"}")
        .is_some());
    assert!(fields
        .get("k:{\"port\":9100,\"protocol\":\"TCP\"}")
        .is_none());

    // Re-applying the same configuration changes nothing.
    let again = server_side_apply(svc(), Some(&obj), &cfg2, "kubectl", false, T2).unwrap();
    assert_eq!(again, obj);
}

#[test]
fn apply_conflicts_with_an_updater_and_force_takes_ownership() {
    // `kubectl create` (an Update by kubectl-create) then server-side apply by kubectl.
    let cfg = service_config(json!([{"port": 80, "targetPort": 8080}]));
    let mut created = server_defaults(cfg.clone());
    record_update(svc(), None, &mut created, "kubectl-create", T0);
    assert_eq!(
        managers(&created),
        vec![("kubectl-create".to_string(), "Update".to_string())]
    );

    let changed = service_config(json!([{"port": 80, "targetPort": 9090}]));
    let err = server_side_apply(svc(), Some(&created), &changed, "kubectl", false, T1).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Apply failed with 1 conflict: conflict with \"kubectl-create\" using v1: .spec.ports[port=80,protocol=\"TCP\"].targetPort"
    );
    let api = err.to_api_error(svc(), "web");
    assert_eq!(api.code, 409);
    assert_eq!(api.reason, "Conflict");
    assert_eq!(
        api.details.unwrap()["causes"],
        json!([{
            "reason": "FieldManagerConflict",
            "message": "conflict with \"kubectl-create\" using v1",
            "field": ".spec.ports[port=80,protocol=\"TCP\"].targetPort"
        }])
    );

    // The same value is shared ownership, not a conflict.
    let same = server_side_apply(svc(), Some(&created), &cfg, "kubectl", false, T1).unwrap();
    assert_eq!(managers(&same).len(), 2);

    // --force-conflicts moves the field to the applier.
    let forced = server_side_apply(svc(), Some(&created), &changed, "kubectl", true, T1).unwrap();
    assert_eq!(forced["spec"]["ports"][0]["targetPort"], 9090);
    let create_ports = &entry(&forced, "kubectl-create")["fieldsV1"]["f:spec"]["f:ports"]
        ["k:{\"port\":80,\"protocol\":\"TCP\"}"];
    assert!(create_ports.get("f:targetPort").is_none());
    assert!(create_ports.get("f:protocol").is_some());
    let apply_ports = &entry(&forced, "kubectl")["fieldsV1"]["f:spec"]["f:ports"]
        ["k:{\"port\":80,\"protocol\":\"TCP\"}"];
    assert!(apply_ports.get("f:targetPort").is_some());
}

#[test]
fn two_appliers_conflict_and_messages_list_every_field() {
    let cfg = service_config(json!([{"port": 80, "targetPort": 8080}]));
    let live = server_defaults(server_side_apply(svc(), None, &cfg, "kubectl", false, T0).unwrap());
    let mut other = service_config(json!([{"port": 80, "targetPort": 1}]));
    other["spec"]["selector"] = json!({"app": "other"});
    let err = server_side_apply(svc(), Some(&live), &other, "ci", false, T1).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Apply failed with 2 conflicts: conflicts with \"kubectl\":\n- .spec.ports[port=80,protocol=\"TCP\"].targetPort\n- .spec.selector"
    );
}

#[test]
fn client_side_apply_fields_can_be_taken_over_by_kubectl_server_side() {
    // Created by client-side apply: the last-applied annotation matches live.
    let cfg = service_config(json!([{"port": 80, "targetPort": 8080}]));
    let mut csa = cfg.clone();
    csa["metadata"]["annotations"] = json!({
        "kubectl.kubernetes.io/last-applied-configuration": serde_json::to_string(&cfg).unwrap()
    });
    let mut live = server_defaults(csa);
    record_update(svc(), None, &mut live, "kubectl-client-side-apply", T0);

    let changed = service_config(json!([{"port": 80, "targetPort": 9090}]));
    let obj = server_side_apply(svc(), Some(&live), &changed, "kubectl", false, T1).unwrap();
    assert_eq!(obj["spec"]["ports"][0]["targetPort"], 9090);
    // kubectl keeps the annotation in step with what it applied.
    let last: Value = serde_json::from_str(
        obj["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(last["spec"]["ports"][0]["targetPort"], 9090);

    // kubectl 1.32 then applies the annotation it got back as
    // `kubectl-last-applied`; that must not conflict either.
    let annotation =
        obj["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"].clone();
    let last_cfg = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "namespace": "default",
                     "annotations": {"kubectl.kubernetes.io/last-applied-configuration": annotation}}
    });
    let obj2 = server_side_apply(
        svc(),
        Some(&obj),
        &last_cfg,
        "kubectl-last-applied",
        false,
        T2,
    )
    .unwrap();
    assert_eq!(obj2["spec"], obj["spec"]);
    assert!(managers(&obj2).contains(&("kubectl-last-applied".to_string(), "Apply".to_string())));

    // Another manager name gets the conflict.
    let err = server_side_apply(svc(), Some(&live), &changed, "helm", false, T1).unwrap_err();
    assert!(err
        .to_string()
        .contains("conflict with \"kubectl-client-side-apply\" using v1"));
}

#[test]
fn record_update_merges_into_the_managers_entry_and_takes_fields_from_others() {
    let cfg = service_config(json!([{"port": 80, "targetPort": 8080}]));
    let live = server_defaults(server_side_apply(svc(), None, &cfg, "kubectl", false, T0).unwrap());

    // kubectl edit changes targetPort and adds a label.
    let mut edited = live.clone();
    edited["spec"]["ports"][0]["targetPort"] = json!(7070);
    edited["metadata"]["labels"]["tier"] = json!("web");
    record_update(svc(), Some(&live), &mut edited, "kubectl-edit", T1);
    let edit = entry(&edited, "kubectl-edit");
    assert_eq!(edit["operation"], "Update");
    assert_eq!(edit["apiVersion"], "v1");
    assert_eq!(edit["time"], T1);
    assert_eq!(
        edit["fieldsV1"],
        json!({"f:metadata": {"f:labels": {"f:tier": {}}},
               "f:spec": {"f:ports": {"k:{\"port\":80,\"protocol\":\"TCP\"}": {"f:targetPort": {}}}}})
    );
    let apply_ports = &entry(&edited, "kubectl")["fieldsV1"]["f:spec"]["f:ports"]
        ["k:{\"port\":80,\"protocol\":\"TCP\"}"];
    assert!(apply_ports.get("f:targetPort").is_none());

    // A second edit merges into the same entry.
    let mut edited2 = edited.clone();
    edited2["spec"]["sessionAffinity"] = json!("ClientIP");
    record_update(svc(), Some(&edited), &mut edited2, "kubectl-edit", T2);
    let edit = entry(&edited2, "kubectl-edit");
    assert_eq!(edit["time"], T2);
    assert!(edit["fieldsV1"]["f:spec"]
        .get("f:sessionAffinity")
        .is_some());
    assert!(edit["fieldsV1"]["f:metadata"]["f:labels"]
        .get("f:tier")
        .is_some());
    assert_eq!(
        managers(&edited2)
            .iter()
            .filter(|(m, _)| m == "kubectl-edit")
            .count(),
        1
    );

    // Now the applier wants its old targetPort back: conflict with kubectl-edit.
    let err = server_side_apply(svc(), Some(&edited2), &cfg, "kubectl", false, T2).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Apply failed with 1 conflict: conflict with \"kubectl-edit\" using v1: .spec.ports[port=80,protocol=\"TCP\"].targetPort"
    );
}

#[test]
fn record_update_on_create_owns_every_set_field() {
    let mut obj = server_defaults(service_config(json!([{"port": 80}])));
    record_update(svc(), None, &mut obj, "kubectl-create", T0);
    assert_eq!(
        entry(&obj, "kubectl-create")["fieldsV1"],
        json!({
            "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
            "f:spec": {
                "f:clusterIP": {},
                "f:ports": {".": {}, "k:{\"port\":80,\"protocol\":\"TCP\"}": {".": {}, "f:port": {}, "f:protocol": {}}},
                "f:selector": {},
                "f:type": {}
            }
        })
    );
    // A no-op update leaves the entry (and its time) alone.
    let before = obj.clone();
    let mut same = obj.clone();
    record_update(svc(), Some(&before), &mut same, "kubectl-create", T1);
    assert_eq!(same, before);
}

#[test]
fn apply_rejects_bad_configurations() {
    let mut cfg = service_config(json!([]));
    cfg["kind"] = json!("Pod");
    let err = server_side_apply(svc(), None, &cfg, "kubectl", false, T0).unwrap_err();
    assert_eq!(err.to_api_error(svc(), "web").code, 400);
    let mut cfg = service_config(json!([]));
    cfg["metadata"]["managedFields"] = json!([{"manager": "x"}]);
    let err = server_side_apply(svc(), None, &cfg, "kubectl", false, T0).unwrap_err();
    assert_eq!(err.to_string(), "metadata.managedFields must be nil");
}

#[test]
fn status_writes_are_recorded_against_the_status_subresource_only() {
    let deploy = find_kind("apps", "Deployment").unwrap();
    let mut obj = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}}},
        "status": {"replicas": 0}
    });
    record_update(deploy, None, &mut obj, "kubectl-create", T0);
    // The main resource never owns status (kube-apiserver resets it there).
    assert!(entry(&obj, "kubectl-create")["fieldsV1"]
        .get("f:status")
        .is_none());

    let mut updated = obj.clone();
    updated["status"] =
        json!({"replicas": 1, "conditions": [{"type": "Available", "status": "True"}]});
    updated["spec"]["replicas"] = json!(9); // not writable through status
    record_update_subresource(
        deploy,
        Some(&obj),
        &mut updated,
        "portico-controllers",
        "status",
        T1,
    );
    let e = entry(&updated, "portico-controllers");
    assert_eq!(e["subresource"], "status");
    assert_eq!(
        e["fieldsV1"],
        json!({"f:status": {"f:conditions": {".": {}, "k:{\"type\":\"Available\"}": {".": {}, "f:status": {}, "f:type": {}}}, "f:replicas": {}}})
    );
}

#[test]
fn apply_of_a_deployment_tracks_containers_by_name_and_ports_by_key() {
    let deploy = find_kind("apps", "Deployment").unwrap();
    let cfg = |image: &str, ports: Value| {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "nginx", "namespace": "default"},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "nginx"}},
                "template": {
                    "metadata": {"labels": {"app": "nginx"}},
                    "spec": {"containers": [{"name": "nginx", "image": image, "ports": ports}]}
                }
            }
        })
    };
    let c1 = cfg(
        "nginx:1.25",
        json!([{"containerPort": 80}, {"containerPort": 443}]),
    );
    let mut live = server_side_apply(deploy, None, &c1, "kubectl", false, T0).unwrap();
    assert_eq!(
        entry(&live, "kubectl")["fieldsV1"]["f:spec"],
        json!({
            "f:replicas": {},
            "f:selector": {},
            "f:template": {
                "f:metadata": {"f:labels": {"f:app": {}}},
                "f:spec": {"f:containers": {"k:{\"name\":\"nginx\"}": {
                    ".": {}, "f:image": {}, "f:name": {},
                    "f:ports": {
                        "k:{\"containerPort\":443,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}},
                        "k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}}
                    }
                }}}
            }
        })
    );
    // Server defaults nobody applied.
    live["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = json!("IfNotPresent");
    // `kubectl scale` (an Update through the scale subresource) takes replicas.
    let mut scaled = live.clone();
    scaled["spec"]["replicas"] = json!(5);
    record_update_subresource(deploy, Some(&live), &mut scaled, "kubectl", "scale", T1);
    // Re-apply: new image, port 443 dropped, replicas 2 again -> conflict.
    let c2 = cfg("nginx:1.27", json!([{"containerPort": 80}]));
    let err = server_side_apply(deploy, Some(&scaled), &c2, "kubectl", false, T2).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Apply failed with 1 conflict: conflict with \"kubectl\" with subresource \"scale\" using apps/v1: .spec.replicas"
    );
    let forced = server_side_apply(deploy, Some(&scaled), &c2, "kubectl", true, T2).unwrap();
    let c = &forced["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["image"], "nginx:1.27");
    assert_eq!(c["ports"], json!([{"containerPort": 80}]));
    assert_eq!(c["imagePullPolicy"], "IfNotPresent");
    assert_eq!(forced["spec"]["replicas"], 2);
}

#[test]
fn record_update_on_create_of_a_deployment_matches_kube_apiserver_shape() {
    let deploy = find_kind("apps", "Deployment").unwrap();
    let mut obj = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "nginx", "namespace": "default", "labels": {"app": "nginx"}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "nginx"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%"}},
            "template": {
                "metadata": {"labels": {"app": "nginx"}},
                "spec": {"containers": [{"name": "nginx", "image": "nginx", "ports": [{"containerPort": 80, "protocol": "TCP"}]}]}
            }
        }
    });
    record_update(deploy, None, &mut obj, "kubectl-client-side-apply", T0);
    // As kube-apiserver records a create: struct fields that Go's zero value
    // already has carry no ".", maps and lists that appear do.
    assert_eq!(
        entry(&obj, "kubectl-client-side-apply")["fieldsV1"],
        json!({
            "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
            "f:spec": {
                "f:replicas": {},
                "f:selector": {},
                "f:strategy": {"f:rollingUpdate": {".": {}, "f:maxSurge": {}}, "f:type": {}},
                "f:template": {
                    "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
                    "f:spec": {"f:containers": {"k:{\"name\":\"nginx\"}": {
                        ".": {}, "f:image": {}, "f:name": {},
                        "f:ports": {".": {}, "k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}, "f:protocol": {}}}
                    }}}
                }
            }
        })
    );
}
