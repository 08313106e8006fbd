//! URL routing as a pure function: a request path becomes a [`Route`].
//!
//! Kubernetes paths: `/api/v1/{plural}`, `/api/v1/namespaces/{ns}/{plural}/{name}/{sub}`,
//! `/apis/{group}/{version}/...`, plus discovery, OpenAPI and health endpoints.

use portico_api::resource::{ResourceInfo, RESOURCES};

/// What a request path addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route {
    /// `/healthz`, `/readyz`, `/livez` (and their `/...` sub-checks).
    Health,
    /// `/version`.
    Version,
    /// `/metrics`.
    Metrics,
    /// `/api`.
    CoreVersions,
    /// `/apis`.
    Groups,
    /// `/apis/{group}`.
    Group(String),
    /// `/api/v1` or `/apis/{group}/{version}`.
    ResourceList(String, String),
    /// `/openapi/v2`, `/openapi/v3`, `/openapi/v3/...`.
    OpenApi(String),
    /// A resource collection, object or subresource.
    Resource(Target),
    /// Anything else.
    NotFound,
}

/// A REST target under a group/version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    pub info: &'static ResourceInfo,
    /// Namespace from the URL (`None` for cluster-scoped kinds and all-namespaces lists).
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
}

fn find_in(group: &str, version: &str, plural: &str) -> Option<&'static ResourceInfo> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// Parses a request path (without query).
pub(crate) fn route(path: &str) -> Route {
    let trimmed = path.trim_end_matches('/');
    let segs: Vec<&str> = trimmed.split('/').filter(|s| !s.is_empty()).collect();
    match segs.as_slice() {
        [] => Route::NotFound,
        ["healthz" | "readyz" | "livez", ..] => Route::Health,
        ["version"] => Route::Version,
        ["metrics"] => Route::Metrics,
        ["openapi", rest @ ..] => Route::OpenApi(rest.join("/")),
        ["api"] => Route::CoreVersions,
        ["api", "v1"] => Route::ResourceList(String::new(), "v1".into()),
        ["api", "v1", rest @ ..] => resource_route("", "v1", rest),
        ["apis"] => Route::Groups,
        ["apis", g] => Route::Group((*g).to_string()),
        ["apis", g, v] => Route::ResourceList((*g).to_string(), (*v).to_string()),
        ["apis", g, v, rest @ ..] => resource_route(g, v, rest),
        _ => Route::NotFound,
    }
}

fn target(
    info: &'static ResourceInfo,
    namespace: Option<&str>,
    name: Option<&str>,
    sub: Option<&str>,
) -> Route {
    if let Some(s) = sub {
        if !info.subresources.contains(&s) {
            return Route::NotFound;
        }
    }
    Route::Resource(Target {
        info,
        namespace: namespace.map(str::to_string),
        name: name.map(str::to_string),
        subresource: sub.map(str::to_string),
    })
}

fn resource_route(group: &str, version: &str, rest: &[&str]) -> Route {
    // Namespaced form first: /namespaces/{ns}/{plural}[/{name}[/{sub}]].
    if let ["namespaces", ns, plural, tail @ ..] = rest {
        if let Some(info) = find_in(group, version, plural).filter(|i| i.namespaced) {
            return match tail {
                [] => target(info, Some(ns), None, None),
                [name] => target(info, Some(ns), Some(name), None),
                [name, sub] => target(info, Some(ns), Some(name), Some(sub)),
                _ => Route::NotFound,
            };
        }
    }
    let Some((plural, tail)) = rest.split_first() else {
        return Route::NotFound;
    };
    let Some(info) = find_in(group, version, plural) else {
        return Route::NotFound;
    };
    match (info.namespaced, tail) {
        // All-namespaces collection of a namespaced kind.
        (true, []) => target(info, None, None, None),
        (true, _) => Route::NotFound,
        (false, []) => target(info, None, None, None),
        (false, [name]) => target(info, None, Some(name), None),
        (false, [name, sub]) => target(info, None, Some(name), Some(sub)),
        (false, _) => Route::NotFound,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(path: &str) -> Target {
        match route(path) {
            Route::Resource(t) => t,
            other => panic!("{path}: {other:?}"),
        }
    }

    #[test]
    fn core_and_group_paths() {
        let t = res("/api/v1/namespaces/default/services/web");
        assert_eq!(
            (t.info.plural, t.namespace.as_deref(), t.name.as_deref()),
            ("services", Some("default"), Some("web"))
        );
        let t = res("/api/v1/services");
        assert_eq!((t.namespace, t.name), (None, None));
        let t = res("/apis/apps/v1/namespaces/ns/deployments/d/scale");
        assert_eq!(t.subresource.as_deref(), Some("scale"));
        let t = res("/api/v1/namespaces/kube-system");
        assert_eq!(
            (t.info.plural, t.name.as_deref()),
            ("namespaces", Some("kube-system"))
        );
        let t = res("/api/v1/namespaces/x/finalize");
        assert_eq!(
            (t.name.as_deref(), t.subresource.as_deref()),
            (Some("x"), Some("finalize"))
        );
        let t = res("/api/v1/namespaces/x/status");
        assert_eq!(t.subresource.as_deref(), Some("status"));
        let t = res("/api/v1/nodes/n1/status");
        assert_eq!(t.info.kind, "Node");
    }

    #[test]
    fn discovery_and_unknown_paths() {
        assert_eq!(route("/api"), Route::CoreVersions);
        assert_eq!(
            route("/apis/apps/v1"),
            Route::ResourceList("apps".into(), "v1".into())
        );
        assert_eq!(route("/healthz/ping"), Route::Health);
        assert_eq!(
            route("/api/v1/namespaces/a/services/b/nope"),
            Route::NotFound
        );
        assert_eq!(route("/api/v1/widgets"), Route::NotFound);
        assert_eq!(route("/api/v1/services/x"), Route::NotFound);
    }
}
