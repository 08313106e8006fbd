//! Plain-data view of the Kubernetes objects the proxy needs: one
//! [`SvcPort`] per Service port with its resolved endpoints (pure conversion).

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

use crate::view::{SliceView, SvcView};

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

pub(crate) fn cluster_ipv4(svc: &Service) -> Option<Ipv4Addr> {
    let spec = svc.spec.as_ref()?;
    let mut ips: Vec<&String> = spec.cluster_ips.iter().flatten().collect();
    if ips.is_empty() {
        ips.extend(spec.cluster_ip.as_ref());
    }
    ips.iter().find_map(|s| s.parse::<Ipv4Addr>().ok())
}

/// Converts one Service and its EndpointSlices into one [`SvcPort`] per port.
/// Returns nothing for Services this proxy ignores. (The watch cache keeps
/// the [`crate::view`] forms instead and plans from those; this is the same
/// conversion for callers holding typed objects.)
pub fn service_ports(svc: &Service, slices: &[&EndpointSlice], node_name: &str) -> Vec<SvcPort> {
    let views: Vec<SliceView> = slices
        .iter()
        .map(|s| SliceView::new(s, node_name))
        .collect();
    let refs: Vec<&SliceView> = views.iter().collect();
    SvcView::new(svc).ports(
        svc.metadata.namespace.as_deref().unwrap_or(""),
        svc.metadata.name.as_deref().unwrap_or(""),
        &refs,
    )
}
