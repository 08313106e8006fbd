//! First-start objects: the system namespaces and the `kubernetes` and `kube-dns` Services.
//!
//! Runs on every start and creates only what is missing, so a restart never
//! touches objects users changed. The Services' IPs (.1 and .10 of the range) go
//! through the same allocator as every other Service.

use std::net::IpAddr;

use portico_api::resource::{find, ResourceInfo};
use serde_json::{json, Value};

use crate::hooks;
use crate::http::AppState;
use crate::objects;
use crate::rest::now;
use crate::services::{self, Expect, WriteError};
use crate::ServerError;

/// Namespaces that always exist.
pub(crate) const NAMESPACES: &[&str] =
    &["default", "kube-system", "kube-public", "kube-node-lease"];

/// The `offset`-th address of the range (`.1`, `.10`).
pub(crate) fn nth_ip(cidr: &ipnet::IpNet, offset: u32) -> IpAddr {
    match cidr.network() {
        IpAddr::V4(n) => IpAddr::V4((u32::from(n).wrapping_add(offset)).into()),
        IpAddr::V6(n) => IpAddr::V6((u128::from(n).wrapping_add(u128::from(offset))).into()),
    }
}

/// The objects bootstrap ensures, in creation order (pure).
pub(crate) fn objects(cidr: &ipnet::IpNet) -> Vec<(&'static str, Value)> {
    let mut out: Vec<(&'static str, Value)> = NAMESPACES
        .iter()
        .map(|ns| {
            (
                "namespaces",
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": {"kubernetes.io/metadata.name": ns}}, "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}),
            )
        })
        .collect();
    out.push((
        "services",
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "kubernetes", "namespace": "default", "labels": {"component": "apiserver", "provider": "kubernetes"}},
            "spec": {
                "type": "ClusterIP", "clusterIP": nth_ip(cidr, 1).to_string(), "sessionAffinity": "None", "internalTrafficPolicy": "Cluster",
                "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}],
            },
            "status": {"loadBalancer": {}},
        }),
    ));
    out.push((
        "services",
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "kube-dns", "namespace": "kube-system", "labels": {
                "k8s-app": "kube-dns", "kubernetes.io/name": "CoreDNS", "kubernetes.io/cluster-service": "true",
                "service.kubernetes.io/service-proxy-name": "portico-node-local-dns",
            }},
            "spec": {
                "type": "ClusterIP", "clusterIP": nth_ip(cidr, 10).to_string(), "selector": {"k8s-app": "kube-dns"},
                "sessionAffinity": "None", "internalTrafficPolicy": "Cluster",
                "ports": [
                    {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                    {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
                ],
            },
            "status": {"loadBalancer": {}},
        }),
    ));
    out
}

fn info(group: &str, plural: &str) -> Result<&'static ResourceInfo, ServerError> {
    find(group, "v1", plural)
        .ok_or_else(|| ServerError::Bootstrap(format!("{plural} not registered")))
}

/// The address and port clients reach this server on, if the advertise URL names an IP.
pub(crate) fn advertise_endpoint(url: &str) -> Option<(IpAddr, u16)> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next()?;
    let (host, port) = authority.rsplit_once(':')?;
    let ip = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()?;
    Some((ip, port.parse().ok()?))
}

/// The `kubernetes` Endpoints and EndpointSlice pointing at this server, as
/// kube-apiserver's endpoint reconciler keeps them (pure).
pub(crate) fn apiserver_endpoints(
    ip: IpAddr,
    port: u16,
) -> Vec<(&'static str, &'static str, Value)> {
    let family = if ip.is_ipv4() { "IPv4" } else { "IPv6" };
    vec![
        (
            "",
            "endpoints",
            json!({
                "apiVersion": "v1", "kind": "Endpoints",
                "metadata": {"name": "kubernetes", "namespace": "default", "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
                "subsets": [{"addresses": [{"ip": ip.to_string()}], "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}],
            }),
        ),
        (
            "discovery.k8s.io",
            "endpointslices",
            json!({
                "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": {"name": "kubernetes", "namespace": "default", "labels": {"kubernetes.io/service-name": "kubernetes"}},
                "addressType": family,
                "endpoints": [{"addresses": [ip.to_string()], "conditions": {"ready": true}}],
                "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
            }),
        ),
    ]
}

/// Creates or refreshes the `kubernetes` endpoints (the advertise address may change between starts).
async fn reconcile_endpoints(st: &AppState, advertise_url: &str) -> Result<(), ServerError> {
    let Some((ip, port)) = advertise_endpoint(advertise_url) else {
        return Ok(());
    };
    for (group, plural, mut obj) in apiserver_endpoints(ip, port) {
        let info = info(group, plural)?;
        let key = objects::key(info, Some("default"), "kubernetes");
        let now = now();
        let result = match st.store.get(&key).await? {
            Some(kv) => {
                let old = objects::decode(&kv).map_err(|e| ServerError::Bootstrap(e.message))?;
                let same = ["subsets", "endpoints", "ports", "addressType"]
                    .iter()
                    .all(|f| old.get(*f) == obj.get(*f));
                if same {
                    continue;
                }
                objects::prepare_update(info, &old, &mut obj);
                services::put(
                    st,
                    info,
                    &key,
                    Expect::Rev(kv.mod_revision),
                    Some(&old),
                    &mut obj,
                    false,
                )
                .await
            }
            None => {
                objects::prepare_create(info, &mut obj, &uuid::Uuid::new_v4().to_string(), &now);
                hooks::default_object(info, &mut obj);
                services::put(st, info, &key, Expect::Missing, None, &mut obj, false).await
            }
        };
        match result {
            Ok(_) | Err(WriteError::Conflict) => {}
            Err(WriteError::Api(e)) => {
                return Err(ServerError::Bootstrap(format!(
                    "{plural}/kubernetes: {}",
                    e.message
                )))
            }
        }
    }
    Ok(())
}

/// Creates whatever of [`objects`] is missing and points the `kubernetes`
/// endpoints at `advertise_url`.
pub(crate) async fn run(st: &AppState, advertise_url: &str) -> Result<(), ServerError> {
    for (plural, mut obj) in objects(&st.ranges.cidr) {
        let info = info("", plural)?;
        let name = obj["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let ns = obj["metadata"]["namespace"].as_str().map(str::to_string);
        let key = objects::key(info, ns.as_deref(), &name);
        if st.store.get(&key).await?.is_some() {
            continue;
        }
        let now = now();
        objects::prepare_create(info, &mut obj, &uuid::Uuid::new_v4().to_string(), &now);
        hooks::default_object(info, &mut obj);
        hooks::record_update(info, None, &mut obj, "kube-apiserver", &now);
        match services::put(st, info, &key, Expect::Missing, None, &mut obj, false).await {
            Ok(_) | Err(WriteError::Conflict) => {}
            Err(WriteError::Api(e)) => {
                return Err(ServerError::Bootstrap(format!(
                    "{plural}/{name}: {}",
                    e.message
                )))
            }
        }
    }
    reconcile_endpoints(st, advertise_url).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_services_use_first_and_tenth_ip() {
        let cidr: ipnet::IpNet = "10.96.0.0/12".parse().unwrap();
        let objs = objects(&cidr);
        assert_eq!(objs.len(), 6);
        assert_eq!(objs[4].1["spec"]["clusterIP"], "10.96.0.1");
        assert_eq!(objs[5].1["spec"]["clusterIP"], "10.96.0.10");
        assert_eq!(objs[5].1["spec"]["ports"][1]["name"], "dns-tcp");
    }

    #[test]
    fn apiserver_endpoints_follow_the_advertise_url() {
        assert_eq!(
            advertise_endpoint("https://10.0.0.5:6443"),
            Some(("10.0.0.5".parse().unwrap(), 6443))
        );
        assert_eq!(advertise_endpoint("https://localhost:6443"), None);
        let eps = apiserver_endpoints("10.0.0.5".parse().unwrap(), 6443);
        assert_eq!(eps[0].2["subsets"][0]["addresses"][0]["ip"], "10.0.0.5");
        assert_eq!(eps[1].2["endpoints"][0]["addresses"][0], "10.0.0.5");
        assert_eq!(eps[1].2["ports"][0]["port"], 6443);
    }
}
