//! Discovery documents (`/version`, `/api`, `/apis`, `/api/v1`, `/apis/{g}/{v}`),
//! legacy and aggregated (apidiscovery.k8s.io/v2), all derived from `RESOURCES`.
//!
//! kubectl resolves short names (`svc`, `po`, ...) and `kubectl get all`
//! (categories) only from these documents, so every field it reads is here.

use crate::resource::{group_versions, ResourceInfo, RESOURCES};
use serde_json::{json, Map, Value};

/// Content-Type of an aggregated discovery answer. client-go picks its decoder
/// from this header (`ContentTypeIsGVK`), so it must be exactly this.
pub const AGGREGATED_CONTENT_TYPE: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// The Kubernetes version Portico reports; kubectl compares it for skew warnings.
pub const KUBERNETES_MINOR: &str = "33";

/// Server address reported in `APIVersions` when the caller does not know its own.
const DEFAULT_SERVER_ADDRESS: &str = "127.0.0.1:6443";

/// Whether an `Accept` header asks for aggregated discovery v2.
///
/// client-go (1.30+) sends the v2 media type first, then v2beta1, then plain
/// JSON. Older clients ask only for v2beta1, which we do not serve: they get the
/// legacy documents, which they handle just as well.
pub fn wants_aggregated(accept: &str) -> bool {
    accept.split(',').any(|range| {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or_default();
        if !media.eq_ignore_ascii_case("application/json") {
            return false;
        }
        let (mut g, mut v, mut as_, mut q_zero) = (false, false, false, false);
        for p in parts {
            let Some((k, val)) = p.split_once('=') else {
                continue;
            };
            match (k.trim(), val.trim()) {
                ("g", "apidiscovery.k8s.io") => g = true,
                ("v", "v2") => v = true,
                ("as", "APIGroupDiscoveryList") => as_ = true,
                ("q", q) => q_zero = q.parse::<f32>().map(|q| q <= 0.0).unwrap_or(false),
                _ => {}
            }
        }
        g && v && as_ && !q_zero
    })
}

/// `GET /api` (legacy): the core group's versions.
pub fn api_versions() -> Value {
    api_versions_with_address(DEFAULT_SERVER_ADDRESS)
}

/// `GET /api` with the address clients should use (kube-apiserver reports its
/// advertise address for the `0.0.0.0/0` client CIDR).
pub fn api_versions_with_address(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [
            {"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}
        ]
    })
}

/// The named groups (everything but core) with their versions, in discovery order.
fn named_groups() -> Vec<(&'static str, Vec<&'static str>)> {
    let mut out: Vec<(&'static str, Vec<&'static str>)> = Vec::new();
    for (g, v) in group_versions() {
        if g.is_empty() {
            continue;
        }
        match out.iter_mut().find(|(name, _)| *name == g) {
            Some((_, versions)) => versions.push(v),
            None => out.push((g, vec![v])),
        }
    }
    out
}

/// `GET /apis` (legacy): `APIGroupList`.
pub fn api_group_list() -> Value {
    let groups: Vec<Value> = named_groups()
        .into_iter()
        .map(|(g, versions)| {
            let gvs: Vec<Value> = versions
                .iter()
                .map(|v| json!({"groupVersion": format!("{g}/{v}"), "version": v}))
                .collect();
            let preferred = gvs.first().cloned().unwrap_or(Value::Null);
            json!({"name": g, "versions": gvs, "preferredVersion": preferred})
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// What a subresource returns and which verbs it takes, as kube-apiserver
/// registers them: `(group, version, kind, verbs)`.
fn subresource_shape(
    res: &ResourceInfo,
    sub: &str,
) -> (
    &'static str,
    &'static str,
    &'static str,
    &'static [&'static str],
) {
    const GPU: &[&str] = &["get", "patch", "update"];
    match sub {
        "scale" => ("autoscaling", "v1", "Scale", GPU),
        "log" => ("", "v1", "Pod", &["get"]),
        "binding" => ("", "v1", "Binding", &["create"]),
        "eviction" => ("policy", "v1", "Eviction", &["create"]),
        "finalize" => (res.group, res.version, res.kind, &["update"]),
        // status and anything else served on the object itself.
        _ => (res.group, res.version, res.kind, GPU),
    }
}

fn resources_in<'a>(
    group: &'a str,
    version: &'a str,
) -> impl Iterator<Item = &'static ResourceInfo> + 'a {
    RESOURCES
        .iter()
        .filter(move |r| r.group == group && r.version == version)
}

/// `GET /api/v1` or `GET /apis/{group}/{version}`: `APIResourceList`, with one
/// entry per resource and one per subresource (`services/status`, ...).
/// `None` when the group/version is not served.
pub fn api_resource_list(group: &str, version: &str) -> Option<Value> {
    let mut resources = Vec::new();
    for r in resources_in(group, version) {
        let mut entry = Map::new();
        entry.insert("name".into(), json!(r.plural));
        entry.insert("singularName".into(), json!(r.singular));
        entry.insert("namespaced".into(), json!(r.namespaced));
        entry.insert("kind".into(), json!(r.kind));
        entry.insert("verbs".into(), json!(r.verbs()));
        if !r.short_names.is_empty() {
            entry.insert("shortNames".into(), json!(r.short_names));
        }
        if !r.categories.is_empty() {
            entry.insert("categories".into(), json!(r.categories));
        }
        resources.push(Value::Object(entry));
        for sub in r.subresources {
            let (g, v, kind, verbs) = subresource_shape(r, sub);
            let mut entry = Map::new();
            entry.insert("name".into(), json!(format!("{}/{}", r.plural, sub)));
            entry.insert("singularName".into(), json!(""));
            entry.insert("namespaced".into(), json!(r.namespaced));
            // Only a subresource returning another group's kind names it.
            if g != group || v != version {
                entry.insert("group".into(), json!(g));
                entry.insert("version".into(), json!(v));
            }
            entry.insert("kind".into(), json!(kind));
            entry.insert("verbs".into(), json!(verbs));
            resources.push(Value::Object(entry));
        }
    }
    if resources.is_empty() {
        return None;
    }
    let group_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    }))
}

/// One `APIResourceDiscovery` (aggregated discovery v2).
fn aggregated_resource(r: &ResourceInfo) -> Value {
    let mut entry = Map::new();
    entry.insert("resource".into(), json!(r.plural));
    entry.insert(
        "responseKind".into(),
        json!({"group": r.group, "version": r.version, "kind": r.kind}),
    );
    let scope = if r.namespaced {
        "Namespaced"
    } else {
        "Cluster"
    };
    entry.insert("scope".into(), json!(scope));
    entry.insert("singularResource".into(), json!(r.singular));
    entry.insert("verbs".into(), json!(r.verbs()));
    if !r.short_names.is_empty() {
        entry.insert("shortNames".into(), json!(r.short_names));
    }
    if !r.categories.is_empty() {
        entry.insert("categories".into(), json!(r.categories));
    }
    if !r.subresources.is_empty() {
        let subs: Vec<Value> = r
            .subresources
            .iter()
            .map(|sub| {
                let (g, v, kind, verbs) = subresource_shape(r, sub);
                json!({
                    "subresource": sub,
                    "responseKind": {"group": g, "version": v, "kind": kind},
                    "verbs": verbs,
                })
            })
            .collect();
        entry.insert("subresources".into(), Value::Array(subs));
    }
    Value::Object(entry)
}

/// One `APIGroupDiscovery` for a group (empty name = core).
fn aggregated_group(group: &str, versions: &[&str]) -> Value {
    let versions: Vec<Value> = versions
        .iter()
        .map(|v| {
            let resources: Vec<Value> = resources_in(group, v).map(aggregated_resource).collect();
            json!({"version": v, "resources": resources, "freshness": "Current"})
        })
        .collect();
    let metadata = if group.is_empty() {
        json!({"creationTimestamp": null})
    } else {
        json!({"name": group, "creationTimestamp": null})
    };
    json!({"metadata": metadata, "versions": versions})
}

fn discovery_list(items: Vec<Value>) -> Value {
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {},
        "items": items,
    })
}

/// `GET /api` with the aggregated Accept header: the core group only.
pub fn aggregated_core() -> Value {
    discovery_list(vec![aggregated_group("", &["v1"])])
}

/// `GET /apis` with the aggregated Accept header: every named group.
pub fn aggregated_groups() -> Value {
    let items = named_groups()
        .iter()
        .map(|(g, versions)| aggregated_group(g, versions))
        .collect();
    discovery_list(items)
}

/// `GET /version`: `version.Info` with every field kube-apiserver sets.
pub fn version_info() -> Value {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    json!({
        "major": "1",
        "minor": KUBERNETES_MINOR,
        "emulationMajor": "1",
        "emulationMinor": KUBERNETES_MINOR,
        "minCompatibilityMajor": "1",
        "minCompatibilityMinor": "32",
        "gitVersion": format!("v1.{KUBERNETES_MINOR}.0-portico"),
        "gitCommit": "portico",
        "gitTreeState": "clean",
        "buildDate": "1970-01-01T00:00:00Z",
        "goVersion": concat!("portico-", env!("CARGO_PKG_VERSION")),
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, arch),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find_resource<'a>(list: &'a Value, name: &str) -> &'a Value {
        list["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("{name} missing"))
    }

    #[test]
    fn accept_header_selects_aggregated_v2_only() {
        let kubectl_132 = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        assert!(wants_aggregated(kubectl_132));
        let kubectl_127 =
            "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        assert!(!wants_aggregated(kubectl_127));
        assert!(!wants_aggregated("application/json"));
        assert!(!wants_aggregated(""));
        assert!(!wants_aggregated(
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList;q=0"
        ));
        assert!(wants_aggregated(
            "application/json; g=apidiscovery.k8s.io; v=v2; as=APIGroupDiscoveryList"
        ));
    }

    #[test]
    fn legacy_core_list_has_short_names_categories_and_subresources() {
        let list = api_resource_list("", "v1").unwrap();
        assert_eq!(list["groupVersion"], "v1");
        for (name, short) in [
            ("services", "svc"),
            ("pods", "po"),
            ("endpoints", "ep"),
            ("namespaces", "ns"),
            ("nodes", "no"),
            ("configmaps", "cm"),
            ("events", "ev"),
        ] {
            assert_eq!(find_resource(&list, name)["shortNames"], json!([short]));
        }
        assert_eq!(
            find_resource(&list, "services")["categories"],
            json!(["all"])
        );
        assert_eq!(find_resource(&list, "pods")["categories"], json!(["all"]));
        assert!(find_resource(&list, "nodes").get("categories").is_none());
        assert_eq!(find_resource(&list, "nodes")["namespaced"], json!(false));
        let status = find_resource(&list, "services/status");
        assert_eq!(status["kind"], "Service");
        assert_eq!(status["verbs"], json!(["get", "patch", "update"]));
        assert_eq!(find_resource(&list, "pods/log")["verbs"], json!(["get"]));
        assert_eq!(find_resource(&list, "pods/binding")["kind"], "Binding");
    }

    #[test]
    fn legacy_apps_list_has_scale_as_autoscaling() {
        let list = api_resource_list("apps", "v1").unwrap();
        assert_eq!(list["groupVersion"], "apps/v1");
        assert_eq!(
            find_resource(&list, "deployments")["shortNames"],
            json!(["deploy"])
        );
        assert_eq!(
            find_resource(&list, "replicasets")["shortNames"],
            json!(["rs"])
        );
        let scale = find_resource(&list, "deployments/scale");
        assert_eq!(scale["group"], "autoscaling");
        assert_eq!(scale["version"], "v1");
        assert_eq!(scale["kind"], "Scale");
        let ing = api_resource_list("networking.k8s.io", "v1").unwrap();
        assert_eq!(
            find_resource(&ing, "ingresses")["shortNames"],
            json!(["ing"])
        );
        let eps = api_resource_list("discovery.k8s.io", "v1").unwrap();
        assert_eq!(
            find_resource(&eps, "endpointslices")["kind"],
            "EndpointSlice"
        );
        assert!(api_resource_list("apps", "v2").is_none());
        assert!(api_resource_list("nope", "v1").is_none());
    }

    #[test]
    fn group_list_names_every_named_group_once() {
        let list = api_group_list();
        let names: Vec<&str> = list["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "apps",
                "discovery.k8s.io",
                "networking.k8s.io",
                "events.k8s.io",
                "coordination.k8s.io"
            ]
        );
        assert_eq!(
            list["groups"][0]["preferredVersion"],
            json!({"groupVersion": "apps/v1", "version": "v1"})
        );
        assert_eq!(api_versions()["versions"], json!(["v1"]));
    }

    #[test]
    fn aggregated_documents_carry_everything_kubectl_resolves() {
        let core = aggregated_core();
        assert_eq!(core["kind"], "APIGroupDiscoveryList");
        assert_eq!(core["apiVersion"], "apidiscovery.k8s.io/v2");
        let v1 = &core["items"][0]["versions"][0];
        assert_eq!(v1["version"], "v1");
        let svc = v1["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["resource"] == "services")
            .unwrap();
        assert_eq!(
            svc,
            &json!({
                "resource": "services",
                "responseKind": {"group": "", "version": "v1", "kind": "Service"},
                "scope": "Namespaced",
                "singularResource": "service",
                "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
                "shortNames": ["svc"],
                "categories": ["all"],
                "subresources": [{
                    "subresource": "status",
                    "responseKind": {"group": "", "version": "v1", "kind": "Service"},
                    "verbs": ["get", "patch", "update"]
                }]
            })
        );
        let groups = aggregated_groups();
        let text = groups.to_string();
        for needle in [
            r#""shortNames":["deploy"]"#,
            r#""shortNames":["rs"]"#,
            r#""shortNames":["ing"]"#,
            r#""resource":"endpointslices""#,
            r#""kind":"Scale""#,
        ] {
            assert!(text.contains(needle), "{needle}");
        }
        let apps = &groups["items"][0];
        assert_eq!(apps["metadata"]["name"], "apps");
        assert_eq!(apps["versions"][0]["freshness"], "Current");
    }

    #[test]
    fn version_reports_kubernetes_1_33() {
        let v = version_info();
        assert_eq!(v["major"], "1");
        assert_eq!(v["minor"], "33");
        assert_eq!(v["gitVersion"], "v1.33.0-portico");
        assert!(v["platform"].as_str().unwrap().starts_with("linux/"));
    }
}
