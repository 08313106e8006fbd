//! The agent's Node: registration (labels, addresses, capacity, nodeInfo,
//! Ready condition), the Lease heartbeat, waiting for the podCIDR, and the
//! host-gw routes to the other nodes' podCIDRs.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use futures::StreamExt as _;
use ipnet::Ipv4Net;
use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::{watcher, WatchStreamExt as _};
use serde_json::json;

use crate::error::AgentError;
use crate::netops;
use crate::AgentConfig;

/// The kubelet version the Node reports.
pub const KUBELET_VERSION: &str = "v1.33.0-portico";
/// Lease renewal period (the kubelet's default).
pub const LEASE_RENEW: Duration = Duration::from_secs(10);
/// Node status heartbeat period (the lease carries liveness in between).
pub const STATUS_PERIOD: Duration = Duration::from_secs(60);

fn is_status(e: &kube::Error, code: u16) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == code)
}

fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

fn read_trim(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn os_image() -> String {
    read_trim("/etc/os-release")
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_string())
        .unwrap_or_else(|| "Linux".to_string())
}

fn memory_ki() -> u64 {
    read_trim("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next().and_then(|n| n.parse().ok()))
        .unwrap_or(0)
}

/// A timestamp as the API writes it.
fn time(t: Timestamp) -> serde_json::Value {
    serde_json::to_value(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(t))
        .unwrap_or_default()
}

/// The Node object the agent creates (labels; spec is the controllers' job).
pub fn node_object(name: &str) -> serde_json::Value {
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels(name)},
    })
}

fn labels(name: &str) -> serde_json::Value {
    json!({
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": arch(),
        "beta.kubernetes.io/os": "linux",
        "beta.kubernetes.io/arch": arch(),
    })
}

/// The Node status the agent reports. `ready_since` keeps the Ready
/// condition's transition time stable across heartbeats.
pub fn node_status(
    name: &str,
    ip: Ipv4Addr,
    kubelet_port: u16,
    now: Timestamp,
    ready_since: Timestamp,
) -> serde_json::Value {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let resources = json!({
        "cpu": cpus.to_string(),
        "memory": format!("{}Ki", memory_ki()),
        "pods": "110",
        "ephemeral-storage": "10Gi",
    });
    let cond = |t: &str, status: &str, reason: &str, message: &str| {
        json!({
            "type": t, "status": status, "reason": reason, "message": message,
            "lastHeartbeatTime": time(now), "lastTransitionTime": time(ready_since),
        })
    };
    json!({
        "addresses": [{"type": "InternalIP", "address": ip.to_string()}, {"type": "Hostname", "address": name}],
        "capacity": resources,
        "allocatable": resources,
        "conditions": [
            cond("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
            cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            cond("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
            cond("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": kubelet_port}},
        "nodeInfo": {
            "machineID": read_trim("/etc/machine-id"),
            "systemUUID": read_trim("/etc/machine-id"),
            "bootID": read_trim("/proc/sys/kernel/random/boot_id"),
            "kernelVersion": read_trim("/proc/sys/kernel/osrelease"),
            "osImage": os_image(),
            "containerRuntimeVersion": "portico://0.1.0",
            "kubeletVersion": KUBELET_VERSION,
            "kubeProxyVersion": KUBELET_VERSION,
            "operatingSystem": "linux",
            "architecture": arch(),
        },
    })
}

/// Creates or updates the Node and reports its status; returns the Node uid.
pub async fn register(
    client: &kube::Client,
    cfg: &AgentConfig,
    ready_since: Timestamp,
) -> Result<String, AgentError> {
    let api: Api<Node> = Api::all(client.clone());
    let obj: Node = serde_json::from_value(node_object(&cfg.node_name))
        .map_err(|e| AgentError::Other(e.to_string()))?;
    match api.create(&PostParams::default(), &obj).await {
        Ok(_) => tracing::info!(node = %cfg.node_name, "registered node"),
        Err(e) if is_status(&e, 409) => {
            let patch = json!({"metadata": {"labels": labels(&cfg.node_name)}});
            api.patch(
                &cfg.node_name,
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await?;
        }
        Err(e) => return Err(e.into()),
    }
    let node = report_status(&api, cfg, ready_since).await?;
    Ok(node.metadata.uid.unwrap_or_default())
}

/// Writes the Node status (heartbeat).
pub async fn report_status(
    api: &Api<Node>,
    cfg: &AgentConfig,
    ready_since: Timestamp,
) -> Result<Node, AgentError> {
    let status = node_status(
        &cfg.node_name,
        cfg.node_ip,
        cfg.kubelet_port,
        Timestamp::now(),
        ready_since,
    );
    let patch = json!({"status": status});
    Ok(api
        .patch_status(
            &cfg.node_name,
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await?)
}

/// Whether the stored Node shows what this agent reports (Ready=True).
pub fn reports_ready(n: &Node) -> bool {
    n.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Creates or renews the node's Lease in `kube-node-lease`.
pub async fn renew_lease(
    client: &kube::Client,
    node: &str,
    node_uid: &str,
) -> Result<(), AgentError> {
    let api: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let now = serde_json::to_value(MicroTime(Timestamp::now()))
        .map_err(|e| AgentError::Other(e.to_string()))?;
    let patch =
        json!({"spec": {"holderIdentity": node, "leaseDurationSeconds": 40, "renewTime": now}});
    match api
        .patch(node, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if is_status(&e, 404) => {
            let lease = json!({
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {
                    "name": node,
                    "namespace": "kube-node-lease",
                    "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": node, "uid": node_uid}],
                },
                "spec": patch["spec"],
            });
            let lease: Lease =
                serde_json::from_value(lease).map_err(|e| AgentError::Other(e.to_string()))?;
            api.create(&PostParams::default(), &lease).await?;
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// Waits until the controllers set `spec.podCIDR` on the Node.
pub async fn wait_pod_cidr(client: &kube::Client, node: &str) -> Ipv4Net {
    let api: Api<Node> = Api::all(client.clone());
    let mut logged = false;
    loop {
        match api.get(node).await {
            Ok(n) => {
                if let Some(c) = n
                    .spec
                    .and_then(|s| s.pod_cidr)
                    .and_then(|c| c.parse::<Ipv4Net>().ok())
                {
                    return c;
                }
                if !logged {
                    tracing::info!(%node, "waiting for the controllers to assign a podCIDR");
                    logged = true;
                }
            }
            Err(e) => tracing::warn!(error = %e, "reading own Node"),
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn pod_cidr(n: &Node) -> Option<Ipv4Net> {
    n.spec
        .as_ref()
        .and_then(|s| s.pod_cidr.as_deref())
        .and_then(|c| c.parse::<Ipv4Net>().ok())
}

/// The routes this node needs: every other node's podCIDR via its InternalIP. A range
/// overlapping this node's own is never routed away: that route would take the node's
/// own pods off its bridge.
pub fn plan_routes<'a>(
    me: &str,
    nodes: impl IntoIterator<Item = &'a Node> + Clone,
) -> BTreeMap<Ipv4Net, Ipv4Addr> {
    let own = nodes
        .clone()
        .into_iter()
        .find(|n| n.metadata.name.as_deref() == Some(me))
        .and_then(pod_cidr);
    let mut out = BTreeMap::new();
    for n in nodes {
        if n.metadata.name.as_deref() == Some(me) {
            continue;
        }
        let Some(cidr) = pod_cidr(n) else {
            continue;
        };
        if own.is_some_and(|o| o.contains(&cidr.network()) || cidr.contains(&o.network())) {
            continue;
        }
        let ip = n
            .status
            .as_ref()
            .and_then(|s| s.addresses.as_ref())
            .and_then(|a| a.iter().find(|a| a.type_ == "InternalIP"))
            .and_then(|a| a.address.parse::<Ipv4Addr>().ok());
        if let Some(ip) = ip {
            out.insert(cidr.trunc(), ip);
        }
    }
    out
}

/// Keeps the routes to other nodes' podCIDRs in line with the Nodes (forever).
pub async fn sync_routes(client: kube::Client, me: String) {
    let api: Api<Node> = Api::all(client);
    let (reader, writer) = kube::runtime::reflector::store();
    let stream = kube::runtime::reflector(writer, watcher(api, watcher::Config::default()))
        .default_backoff()
        .boxed();
    let mut stream = stream;
    let mut installed: BTreeMap<Ipv4Net, Ipv4Addr> = BTreeMap::new();
    while let Some(ev) = stream.next().await {
        if let Err(e) = ev {
            tracing::warn!(error = %e, "watching nodes");
            continue;
        }
        let nodes = reader.state();
        let want = plan_routes(&me, nodes.iter().map(|n| n.as_ref()));
        for (cidr, via) in &want {
            if installed.get(cidr) != Some(via) {
                match netops::set_route(*cidr, *via).await {
                    Ok(()) => {
                        tracing::info!(%cidr, %via, "route to node podCIDR");
                        installed.insert(*cidr, *via);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "installing a route to another node's pods")
                    }
                }
            }
        }
        let stale: Vec<Ipv4Net> = installed
            .keys()
            .filter(|c| !want.contains_key(c))
            .copied()
            .collect();
        for cidr in stale {
            netops::del_route(cidr).await;
            installed.remove(&cidr);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, cidr: Option<&str>, ip: Option<&str>) -> Node {
        serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {"podCIDR": cidr},
            "status": {"addresses": ip.map(|ip| vec![json!({"type": "InternalIP", "address": ip})]).unwrap_or_default()},
        }))
        .unwrap()
    }

    #[test]
    fn routes_point_at_other_nodes() {
        let nodes = vec![
            node("n1", Some("10.244.0.0/24"), Some("192.168.5.2")),
            node("n2", Some("10.244.1.0/24"), Some("192.168.5.3")),
            node("n3", None, Some("192.168.5.4")),
            node("n4", Some("10.244.3.0/24"), None),
        ];
        let r = plan_routes("n1", &nodes);
        assert_eq!(r.len(), 1);
        assert_eq!(
            r.get(&"10.244.1.0/24".parse().unwrap()),
            Some(&Ipv4Addr::new(192, 168, 5, 3))
        );
        // A node claiming n1's own range is not routed (it would cut n1 off its pods).
        let clash = vec![
            node("n1", Some("10.244.0.0/24"), Some("192.168.5.2")),
            node("n2", Some("10.244.1.0/24"), Some("192.168.5.3")),
            node("n5", Some("10.244.0.0/24"), Some("192.168.5.6")),
        ];
        let r = plan_routes("n1", &clash);
        assert_eq!(r.len(), 1);
        assert_eq!(
            r.get(&"10.244.1.0/24".parse().unwrap()),
            Some(&Ipv4Addr::new(192, 168, 5, 3))
        );
    }

    #[test]
    fn status_reports_what_kubectl_shows() {
        let s = node_status(
            "n1",
            Ipv4Addr::new(192, 168, 5, 2),
            10250,
            Timestamp::now(),
            Timestamp::now(),
        );
        assert_eq!(
            s["addresses"][0],
            json!({"type": "InternalIP", "address": "192.168.5.2"})
        );
        assert_eq!(s["capacity"]["pods"], "110");
        assert_eq!(s["daemonEndpoints"]["kubeletEndpoint"]["Port"], 10250);
        assert_eq!(s["nodeInfo"]["kubeletVersion"], "v1.33.0-portico");
        assert_eq!(s["nodeInfo"]["containerRuntimeVersion"], "portico://0.1.0");
        assert_eq!(s["conditions"][3]["type"], "Ready");
        // It must deserialize as a real NodeStatus.
        let _: k8s_openapi::api::core::v1::NodeStatus = serde_json::from_value(s).unwrap();
    }
}
