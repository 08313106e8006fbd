//! Kernel networking of a node and its pods through the `ip` command: the pod
//! bridge, pod network namespaces with their veth pair, and routes to other
//! nodes' podCIDRs. Everything runs in the calling thread's network namespace
//! (the node), except `ip -n <pod netns>` which targets a pod.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;
use tokio::process::Command;

use crate::error::AgentError;
use crate::sandbox;

/// Routing protocol number that marks the routes the agent installs, so they
/// can be found and flushed (`ip route flush proto 202`).
pub const ROUTE_PROTO: &str = "202";

/// Runs `ip <args>` and returns its stdout.
pub async fn ip(args: &[&str]) -> Result<String, AgentError> {
    let out = Command::new("ip")
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|e| AgentError::io("running ip", e))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(AgentError::Command {
            command: format!("ip {}", args.join(" ")),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// Like [`ip`] but a failure is only logged (teardown is best effort).
pub async fn ip_quiet(args: &[&str]) {
    if let Err(e) = ip(args).await {
        tracing::debug!(error = %e, "ignored");
    }
}

/// `/run/netns/<name>`: what `ip netns add` creates and `nsenter --net=` takes.
pub fn netns_path(name: &str) -> PathBuf {
    Path::new("/run/netns").join(name)
}

/// Creates the pod bridge with the gateway address and turns on forwarding
/// (in this namespace only: `ip_forward` is per network namespace).
pub async fn setup_bridge(
    bridge: &str,
    gateway: Ipv4Addr,
    cidr: Ipv4Net,
) -> Result<(), AgentError> {
    if ip(&["link", "show", "dev", bridge]).await.is_err() {
        ip(&["link", "add", bridge, "type", "bridge"]).await?;
    }
    let addr = format!("{gateway}/{}", cidr.prefix_len());
    ip(&["addr", "replace", &addr, "dev", bridge]).await?;
    ip(&["link", "set", bridge, "up"]).await?;
    // Synchronous on purpose: /proc/sys/net follows the opening thread's
    // namespace, and a blocking-pool thread may be in another one.
    std::fs::write("/proc/sys/net/ipv4/ip_forward", "1")
        .map_err(|e| AgentError::io("enabling ip_forward", e))?;
    Ok(())
}

/// Removes the bridge and the agent's routes.
pub async fn teardown_node(bridge: &str) {
    ip_quiet(&["link", "del", bridge]).await;
    ip_quiet(&["route", "flush", "proto", ROUTE_PROTO]).await;
}

/// Everything that identifies a pod's network sandbox.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Sandbox {
    pub netns: String,
    pub veth: String,
    pub ip: Ipv4Addr,
}

/// Runs `ip [prefix] -batch -` with one command per line (one process for
/// several commands: pod start latency is dominated by process spawns).
/// Stops at the first failing line.
pub async fn ip_batch(prefix: &[&str], lines: &[String]) -> Result<(), AgentError> {
    use tokio::io::AsyncWriteExt as _;
    let mut child = Command::new("ip")
        .args(prefix)
        .args(["-batch", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| AgentError::io("running ip", e))?;
    if let Some(mut stdin) = child.stdin.take() {
        let text = lines.join("\n") + "\n";
        stdin
            .write_all(text.as_bytes())
            .await
            .map_err(|e| AgentError::io("writing to ip -batch", e))?;
    }
    let out = child
        .wait_with_output()
        .await
        .map_err(|e| AgentError::io("running ip", e))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(AgentError::Command {
            command: format!("ip {} -batch: {}", prefix.join(" "), lines.join("; ")),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// The `ip -batch` lines that create a pod's sandbox: first in the node
/// namespace, then inside the pod's (`ip -n <netns>`). Pure.
pub fn pod_network_batches(
    sb: &Sandbox,
    bridge: &str,
    gateway: Ipv4Addr,
    cidr: Ipv4Net,
) -> (Vec<String>, Vec<String>) {
    let node = vec![
        format!("netns add {}", sb.netns),
        format!(
            "link add {} type veth peer name eth0 netns {}",
            sb.veth, sb.netns
        ),
        format!("link set {} master {bridge} up", sb.veth),
        // A pod reaching itself through a Service is DNATed back to the bridge
        // port it came from; with bridge netfilter on, that needs hairpin mode
        // (the CNI bridge plugin's hairpinMode).
        format!("link set {} type bridge_slave hairpin on", sb.veth),
    ];
    let pod = vec![
        format!("addr add {}/{} dev eth0", sb.ip, cidr.prefix_len()),
        "link set lo up".to_string(),
        "link set eth0 up".to_string(),
        format!("route add default via {gateway} dev eth0"),
    ];
    (node, pod)
}

/// Creates the pod's netns and veth pair: `eth0` inside with `ip`, default
/// route via the bridge, `lo` up; the host end enslaved to the bridge.
/// Netlink first (no process spawns); the `ip` batches are the fallback.
pub async fn setup_pod_network(
    sb: &Sandbox,
    bridge: &str,
    gateway: Ipv4Addr,
    cidr: Ipv4Net,
) -> Result<(), AgentError> {
    match sandbox::setup(sb, bridge, gateway, cidr.prefix_len()).await {
        Ok(()) => return Ok(()),
        Err(e) => {
            // Loud on purpose: the fallback costs two process spawns per pod.
            tracing::warn!(error = %e, netns = %sb.netns, "netlink sandbox setup failed; falling back to ip");
            sandbox::count_fallback();
            teardown_pod_network(sb).await;
        }
    }
    let (node, pod) = pod_network_batches(sb, bridge, gateway, cidr);
    let attempt = || async {
        ip_batch(&[], &node).await?;
        ip_batch(&["-n", &sb.netns], &pod).await
    };
    let result = attempt().await;
    if result.is_err() {
        teardown_pod_network(sb).await;
    }
    result
}

/// Deletes the veth (both ends go) and the netns. Best effort and idempotent.
pub async fn teardown_pod_network(sb: &Sandbox) {
    if let Err(e) = sandbox::teardown(sb).await {
        tracing::warn!(error = %e, netns = %sb.netns, "netlink sandbox teardown failed; falling back to ip");
        if ip(&["link", "show", "dev", &sb.veth]).await.is_ok() {
            ip_quiet(&["link", "del", &sb.veth]).await;
        }
        if netns_path(&sb.netns).exists() {
            if let Err(e) = ip(&["netns", "del", &sb.netns]).await {
                tracing::warn!(error = %e, "removing the pod netns");
            }
        }
    }
}

/// Points `cidr` at another node (`via` its InternalIP); host-gw style.
pub async fn set_route(cidr: Ipv4Net, via: Ipv4Addr) -> Result<(), AgentError> {
    ip(&[
        "route",
        "replace",
        &cidr.to_string(),
        "via",
        &via.to_string(),
        "proto",
        ROUTE_PROTO,
    ])
    .await
    .map(|_| ())
}

/// Removes a route installed by [`set_route`].
pub async fn del_route(cidr: Ipv4Net) {
    ip_quiet(&["route", "del", &cidr.to_string(), "proto", ROUTE_PROTO]).await;
}

/// The IPv4 address of the interface holding the default route (sync: it
/// runs before any runtime exists).
pub fn default_route_ipv4() -> Result<Ipv4Addr, AgentError> {
    let run = |args: &[&str]| -> Result<serde_json::Value, AgentError> {
        let out = std::process::Command::new("ip")
            .args(args)
            .output()
            .map_err(|e| AgentError::io("running ip", e))?;
        serde_json::from_slice(&out.stdout)
            .map_err(|e| AgentError::NodeIp(format!("parsing `ip {}`: {e}", args.join(" "))))
    };
    let routes = run(&["-4", "-j", "route", "show", "default"])?;
    let dev = routes
        .as_array()
        .and_then(|a| {
            a.iter()
                .find_map(|r| r.get("dev").and_then(|d| d.as_str()).map(String::from))
        })
        .ok_or_else(|| {
            AgentError::NodeIp("no IPv4 default route in this network namespace".into())
        })?;
    let addrs = run(&["-4", "-j", "addr", "show", "dev", &dev])?;
    addrs
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| l.get("addr_info").and_then(|a| a.as_array()))
        .flatten()
        .filter_map(|a| a.get("local").and_then(|l| l.as_str()))
        .find_map(|s| s.parse::<Ipv4Addr>().ok())
        .ok_or_else(|| AgentError::NodeIp(format!("interface {dev} has no IPv4 address")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sandbox_commands() {
        let sb = Sandbox {
            netns: "n1-default-web-1a2b3c4d".into(),
            veth: "veth1a2b3c4d".into(),
            ip: Ipv4Addr::new(10, 244, 0, 5),
        };
        let (node, pod) = pod_network_batches(
            &sb,
            "portico0",
            Ipv4Addr::new(10, 244, 0, 1),
            "10.244.0.0/24".parse().unwrap(),
        );
        assert_eq!(
            node,
            vec![
                "netns add n1-default-web-1a2b3c4d",
                "link add veth1a2b3c4d type veth peer name eth0 netns n1-default-web-1a2b3c4d",
                "link set veth1a2b3c4d master portico0 up",
                "link set veth1a2b3c4d type bridge_slave hairpin on",
            ]
        );
        assert_eq!(
            pod,
            vec![
                "addr add 10.244.0.5/24 dev eth0",
                "link set lo up",
                "link set eth0 up",
                "route add default via 10.244.0.1 dev eth0"
            ]
        );
    }
}
