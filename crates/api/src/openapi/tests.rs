//! OpenAPI v3 tests: what kubectl's query-param verifier and patcher read.

use super::*;

fn patch_ops(doc: &Value) -> Vec<(&String, &Value)> {
    doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .filter_map(|(p, item)| item.get("patch").map(|op| (p, op)))
        .collect()
}

#[test]
fn index_lists_every_group_version_with_hash() {
    let index = v3_index();
    let paths = index["paths"].as_object().unwrap();
    for gv in [
        "api/v1",
        "apis/apps/v1",
        "apis/discovery.k8s.io/v1",
        "apis/networking.k8s.io/v1",
        "apis/events.k8s.io/v1",
        "apis/coordination.k8s.io/v1",
    ] {
        let url = paths[gv]["serverRelativeURL"].as_str().unwrap();
        let hash = v3_hash(gv).unwrap();
        assert_eq!(url, format!("/openapi/v3/{gv}?hash={hash}"));
        assert_eq!(hash.len(), 32);
    }
    assert_eq!(v3_index(), index, "documents and hashes are stable");
}

#[test]
fn document_lookup_accepts_request_paths() {
    assert!(v3_document("api/v1").is_some());
    assert!(v3_document("/openapi/v3/apis/apps/v1?hash=abc").is_some());
    assert!(v3_document("/apis/networking.k8s.io/v1").is_some());
    assert!(v3_document("v3/api/v1").is_some());
    assert_eq!(v3_hash("v3/api/v1"), v3_hash("api/v1"));
    assert!(v3_document("apis/apps/v2").is_none());
    assert!(v3_document("apis/batch/v1").is_none());
}

/// Mirrors cli-runtime's `supportsQueryParamV3` for every served kind.
#[test]
fn every_kind_has_a_patch_op_with_field_validation() {
    for r in RESOURCES {
        let doc = v3_document(&gv_path(r.group, r.version)).unwrap();
        let gvk = json!({"group": r.group, "kind": r.kind, "version": r.version});
        let ops: Vec<_> = patch_ops(&doc)
            .into_iter()
            .filter(|(_, op)| op["x-kubernetes-group-version-kind"] == gvk)
            .collect();
        assert!(!ops.is_empty(), "{} has no PATCH op", r.kind);
        for (path, op) in ops {
            let has = op["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == "fieldValidation" && p["in"] == "query");
            assert!(has, "{path} lacks fieldValidation");
            let content = op["requestBody"]["content"].as_object().unwrap();
            assert!(content.contains_key("application/merge-patch+json"));
            assert!(content.contains_key("application/apply-patch+yaml"));
            // kubectl must fall back to its compiled-in SMP types.
            assert!(!content.contains_key("application/strategic-merge-patch+json"));
        }
    }
}

#[test]
fn kind_schemas_carry_gvk_and_generated_properties() {
    let core = v3_document("api/v1").unwrap();
    let schemas = core["components"]["schemas"].as_object().unwrap();
    let svc = &schemas["io.k8s.api.core.v1.Service"];
    assert_eq!(
        svc["x-kubernetes-group-version-kind"],
        json!([{"group": "", "kind": "Service", "version": "v1"}])
    );
    let spec = &schemas["io.k8s.api.core.v1.ServiceSpec"];
    assert_eq!(spec["properties"]["ports"]["type"], "array");
    assert!(spec["properties"]["ports"]["items"]["$ref"]
        .as_str()
        .unwrap()
        .ends_with("/io.k8s.api.core.v1.ServicePort"));
    assert_eq!(
        schemas["io.k8s.api.core.v1.ServiceList"]["x-kubernetes-group-version-kind"],
        json!([{"group": "", "kind": "ServiceList", "version": "v1"}])
    );
    assert!(schemas.contains_key("io.k8s.api.core.v1.PodSpec"));
    assert!(schemas.contains_key("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"));
    // Every $ref resolves inside the document.
    let text = core.to_string();
    for part in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
        let name = part.split('"').next().unwrap();
        assert!(schemas.contains_key(name), "dangling $ref {name}");
    }
    let apps = v3_document("apis/apps/v1").unwrap();
    let scale = &apps["components"]["schemas"]["io.k8s.api.autoscaling.v1.Scale"];
    assert_eq!(
        scale["x-kubernetes-group-version-kind"],
        json!([{"group": "autoscaling", "kind": "Scale", "version": "v1"}])
    );
    assert_eq!(
        apps["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"]["patch"]
            ["x-kubernetes-group-version-kind"]["kind"],
        "Scale"
    );
}

#[test]
fn paths_follow_kube_apiserver_layout() {
    let core = v3_document("api/v1").unwrap();
    let paths = core["paths"].as_object().unwrap();
    for p in [
        "/api/v1/namespaces/{namespace}/services",
        "/api/v1/namespaces/{namespace}/services/{name}",
        "/api/v1/namespaces/{namespace}/services/{name}/status",
        "/api/v1/services",
        "/api/v1/nodes",
        "/api/v1/nodes/{name}",
        "/api/v1/namespaces/{name}/finalize",
        "/api/v1/namespaces/{namespace}/pods/{name}/log",
        "/api/v1/namespaces/{namespace}/pods/{name}/binding",
    ] {
        assert!(paths.contains_key(p), "{p}");
    }
    let op = &paths["/api/v1/namespaces/{namespace}/services/{name}"]["patch"];
    assert_eq!(op["operationId"], "patchCoreV1NamespacedService");
    assert_eq!(op["x-kubernetes-action"], "patch");
    let ing = v3_document("apis/networking.k8s.io/v1").unwrap();
    assert_eq!(
        ing["paths"]["/apis/networking.k8s.io/v1/ingressclasses/{name}"]["get"]["operationId"],
        "readNetworkingV1IngressClass"
    );
}

#[test]
fn v2_protobuf_carries_patch_ops_with_gvk_and_field_validation() {
    let doc = v2_protobuf();
    // Starts with `swagger: "2.0"` (field 1) and names every kind's GVK as YAML.
    assert!(doc.starts_with(b"\x0a\x032.0"));
    let text = String::from_utf8_lossy(doc);
    for r in RESOURCES {
        let yaml = format!(
            "group: \"{}\"\nkind: {}\nversion: {}\n",
            r.group, r.kind, r.version
        );
        assert!(text.contains(&yaml), "{}", r.kind);
    }
    assert!(text.contains("fieldValidation"));
    assert!(text.contains("application/merge-patch+json"));
    assert!(!text.contains("strategic-merge-patch"));
}
