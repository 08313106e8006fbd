//! Plain-data view of the Kubernetes objects the proxy needs: one
//! [`SvcPort`] per Service port with its resolved endpoints (pure conversion).

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

/// Label that ties an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// Services carrying this label are handled by another proxy (kube-proxy skips them too).
pub const SERVICE_PROXY_NAME_LABEL: &str = "service.kubernetes.io/service-proxy-name";
/// Services carrying this label are headless for proxies.
pub const HEADLESS_LABEL: &str = "service.kubernetes.io/headless";
/// Default ClientIP affinity timeout (Kubernetes default: 3 hours).
pub const DEFAULT_AFFINITY_TIMEOUT: u32 = 10800;

/// L4 protocol of a Service port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Proto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

impl Proto {
    /// Parses the Kubernetes spelling (`TCP`, the default when absent).
    pub fn parse(s: Option<&str>) -> Option<Proto> {
        match s.unwrap_or("TCP") {
            "TCP" => Some(Proto::Tcp),
            "UDP" => Some(Proto::Udp),
            "SCTP" => Some(Proto::Sctp),
            _ => None,
        }
    }

    /// The nftables spelling.
    pub fn nft(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Sctp => "sctp",
        }
    }
}

/// One endpoint address of a Service port.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Endpoint {
    /// Pod IP.
    pub ip: Ipv4Addr,
    /// Resolved target port.
    pub port: u16,
    /// Runs on this node.
    pub local: bool,
    /// `conditions.ready` (absent means ready).
    pub ready: bool,
    /// `conditions.serving` (absent means the value of ready).
    pub serving: bool,
    /// `conditions.terminating` (absent means false).
    pub terminating: bool,
}

/// One port of one proxied Service, with everything the planner needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SvcPort {
    /// Namespace of the Service.
    pub namespace: String,
    /// Name of the Service.
    pub name: String,
    /// `spec.ports[].name` (may be empty for a single-port Service).
    pub port_name: String,
    /// Protocol.
    pub proto: Proto,
    /// IPv4 ClusterIP.
    pub cluster_ip: Ipv4Addr,
    /// Service port.
    pub port: u16,
    /// NodePort, when allocated.
    pub node_port: Option<u16>,
    /// `spec.externalIPs` (IPv4 only).
    pub external_ips: Vec<Ipv4Addr>,
    /// `status.loadBalancer.ingress[].ip` (IPv4, not `ipMode: Proxy`).
    pub lb_ips: Vec<Ipv4Addr>,
    /// `spec.loadBalancerSourceRanges` (IPv4 only).
    pub source_ranges: Vec<Ipv4Net>,
    /// `externalTrafficPolicy: Local` (only meaningful with external addresses).
    pub external_local: bool,
    /// `internalTrafficPolicy: Local`.
    pub internal_local: bool,
    /// ClientIP affinity timeout in seconds, when affinity is on.
    pub affinity_timeout: Option<u32>,
    /// `spec.healthCheckNodePort`, for `externalTrafficPolicy: Local`.
    pub health_check_node_port: Option<u16>,
    /// Endpoints of this port, deduplicated and sorted.
    pub endpoints: Vec<Endpoint>,
}

impl SvcPort {
    /// Whether the port is reachable from outside the cluster network.
    pub fn has_external(&self) -> bool {
        self.node_port.is_some() || !self.external_ips.is_empty() || !self.lb_ips.is_empty()
    }

    /// Endpoints used for cluster-wide traffic: ready ones, else the serving
    /// terminating ones (the KEP-1669 fallback).
    pub fn cluster_endpoints(&self) -> Vec<&Endpoint> {
        pick(self.endpoints.iter())
    }

    /// Endpoints used for Local policies, with the same fallback.
    pub fn local_endpoints(&self) -> Vec<&Endpoint> {
        pick(self.endpoints.iter().filter(|e| e.local))
    }

    /// The count the health check node port reports: ready local endpoints
    /// only (terminating ones fail the health check, as in kube-proxy).
    pub fn ready_local_count(&self) -> usize {
        self.endpoints.iter().filter(|e| e.local && e.ready).count()
    }
}

fn pick<'a>(eps: impl Iterator<Item = &'a Endpoint> + Clone) -> Vec<&'a Endpoint> {
    let ready: Vec<_> = eps.clone().filter(|e| e.ready).collect();
    if !ready.is_empty() {
        return ready;
    }
    eps.filter(|e| e.serving && e.terminating).collect()
}

/// Whether this proxy programs the Service at all.
pub fn is_proxied(svc: &Service) -> bool {
    let labels = svc.metadata.labels.as_ref();
    if labels
        .is_some_and(|l| l.contains_key(SERVICE_PROXY_NAME_LABEL) || l.contains_key(HEADLESS_LABEL))
    {
        return false;
    }
    let Some(spec) = svc.spec.as_ref() else {
        return false;
    };
    if spec.type_.as_deref() == Some("ExternalName") {
        return false;
    }
    cluster_ipv4(svc).is_some()
}

fn cluster_ipv4(svc: &Service) -> Option<Ipv4Addr> {
    let spec = svc.spec.as_ref()?;
    let mut ips: Vec<&String> = spec.cluster_ips.iter().flatten().collect();
    if ips.is_empty() {
        ips.extend(spec.cluster_ip.as_ref());
    }
    ips.iter().find_map(|s| s.parse::<Ipv4Addr>().ok())
}

/// Converts one Service and its EndpointSlices into one [`SvcPort`] per port.
/// Returns nothing for Services this proxy ignores.
pub fn service_ports(svc: &Service, slices: &[&EndpointSlice], node_name: &str) -> Vec<SvcPort> {
    if !is_proxied(svc) {
        return Vec::new();
    }
    let (Some(spec), Some(cluster_ip)) = (svc.spec.as_ref(), cluster_ipv4(svc)) else {
        return Vec::new();
    };
    let namespace = svc.metadata.namespace.clone().unwrap_or_default();
    let name = svc.metadata.name.clone().unwrap_or_default();
    let v4 = |v: &Option<Vec<String>>| -> Vec<Ipv4Addr> {
        let mut ips: Vec<Ipv4Addr> = v.iter().flatten().filter_map(|s| s.parse().ok()).collect();
        ips.sort();
        ips.dedup();
        ips
    };
    let external_ips = v4(&spec.external_ips);
    let mut lb_ips: Vec<Ipv4Addr> = svc
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .into_iter()
        .flatten()
        .filter(|i| i.ip_mode.as_deref() != Some("Proxy"))
        .filter_map(|i| i.ip.as_deref()?.parse().ok())
        .collect();
    lb_ips.sort();
    lb_ips.dedup();
    let source_ranges: Vec<Ipv4Net> = spec
        .load_balancer_source_ranges
        .iter()
        .flatten()
        .filter_map(|s| s.trim().parse::<Ipv4Net>().ok())
        .map(|n| n.trunc())
        .collect();
    let is_lb = spec.type_.as_deref() == Some("LoadBalancer");
    let external_local = spec.external_traffic_policy.as_deref() == Some("Local");
    let internal_local = spec.internal_traffic_policy.as_deref() == Some("Local");
    let affinity_timeout = (spec.session_affinity.as_deref() == Some("ClientIP")).then(|| {
        spec.session_affinity_config
            .as_ref()
            .and_then(|c| c.client_ip.as_ref())
            .and_then(|c| c.timeout_seconds)
            .and_then(|t| u32::try_from(t).ok())
            .filter(|t| *t > 0)
            .unwrap_or(DEFAULT_AFFINITY_TIMEOUT)
    });
    let health_check_node_port = spec
        .health_check_node_port
        .and_then(|p| u16::try_from(p).ok())
        .filter(|p| *p > 0);
    let mut out = Vec::new();
    for sp in spec.ports.iter().flatten() {
        let Some(proto) = Proto::parse(sp.protocol.as_deref()) else {
            continue;
        };
        let Ok(port) = u16::try_from(sp.port) else {
            continue;
        };
        let port_name = sp.name.clone().unwrap_or_default();
        let node_port = sp
            .node_port
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p > 0);
        out.push(SvcPort {
            namespace: namespace.clone(),
            name: name.clone(),
            endpoints: endpoints_for(slices, &port_name, proto, node_name),
            port_name,
            proto,
            cluster_ip,
            port,
            node_port,
            external_ips: external_ips.clone(),
            lb_ips: if is_lb { lb_ips.clone() } else { Vec::new() },
            source_ranges: if is_lb {
                source_ranges.clone()
            } else {
                Vec::new()
            },
            external_local,
            internal_local,
            affinity_timeout,
            health_check_node_port: if external_local {
                health_check_node_port
            } else {
                None
            },
        });
    }
    out
}

/// Endpoints of one Service port: each slice port with the same name and
/// protocol gives the (possibly named, per-pod resolved) target port.
fn endpoints_for(
    slices: &[&EndpointSlice],
    port_name: &str,
    proto: Proto,
    node_name: &str,
) -> Vec<Endpoint> {
    let mut eps = Vec::new();
    for slice in slices {
        if slice.address_type != "IPv4" {
            continue;
        }
        let Some(port) = slice.ports.iter().flatten().find_map(|p| {
            let same_name = p.name.as_deref().unwrap_or("") == port_name;
            let same_proto = Proto::parse(p.protocol.as_deref()) == Some(proto);
            (same_name && same_proto).then_some(p.port).flatten()
        }) else {
            continue;
        };
        let Ok(port) = u16::try_from(port) else {
            continue;
        };
        for ep in &slice.endpoints {
            let cond = ep.conditions.as_ref();
            let ready = cond.and_then(|c| c.ready).unwrap_or(true);
            let serving = cond.and_then(|c| c.serving).unwrap_or(ready);
            let terminating = cond.and_then(|c| c.terminating).unwrap_or(false);
            let local = ep.node_name.as_deref() == Some(node_name);
            // One address per endpoint is what Kubernetes uses (the rest are ignored).
            if let Some(ip) = ep
                .addresses
                .first()
                .and_then(|a| a.parse::<Ipv4Addr>().ok())
            {
                eps.push(Endpoint {
                    ip,
                    port,
                    local,
                    ready,
                    serving,
                    terminating,
                });
            }
        }
    }
    eps.sort();
    // The same address may appear in two slices while a slice is being rewritten.
    eps.dedup_by(|a, b| a.ip == b.ip && a.port == b.port);
    eps
}
