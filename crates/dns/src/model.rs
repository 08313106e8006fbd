//! Compact views of Services, EndpointSlices and Pods: only the fields DNS needs.
//!
//! The watch caches keep these instead of whole API objects, which is what keeps
//! memory per object far below a reflector of full objects.

use std::net::IpAddr;

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;

/// The label an EndpointSlice uses to name its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// What a Service name resolves to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServiceKind {
    /// A Service with one ClusterIP per IP family.
    ClusterIp(Vec<IpAddr>),
    /// `clusterIP: None`: the name resolves to the endpoints.
    Headless,
    /// `type: ExternalName`: the name is a CNAME to this (lowercase, no trailing dot).
    ExternalName(String),
}

/// One Service or EndpointSlice port.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct PortInfo {
    /// Port name, lowercase; empty for an unnamed port (which gets no SRV record).
    pub name: String,
    /// Protocol, lowercase (`tcp`, `udp`, `sctp`).
    pub protocol: String,
    /// Port number (the Service port; for an EndpointSlice the endpoint port).
    pub port: u16,
}

/// The DNS-relevant part of a Service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceInfo {
    /// Namespace, lowercase.
    pub namespace: String,
    /// Name, lowercase.
    pub name: String,
    /// What the name resolves to.
    pub kind: ServiceKind,
    /// The Service's ports.
    pub ports: Vec<PortInfo>,
    /// `spec.publishNotReadyAddresses`: not-ready endpoints count as ready.
    pub publish_not_ready: bool,
}

/// An endpoint's addresses: almost always one, kept inline (no allocation),
/// which matters at 100,000 endpoints.
pub type EndpointAddresses = smallvec::SmallVec<[IpAddr; 1]>;

/// One endpoint of an EndpointSlice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointInfo {
    /// The endpoint's addresses (one family per slice).
    pub addresses: EndpointAddresses,
    /// `hostname`, lowercase, when set.
    pub hostname: Option<Box<str>>,
    /// `conditions.ready` (unset means ready, as the API documents).
    pub ready: bool,
}

/// The DNS-relevant part of an EndpointSlice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SliceInfo {
    /// Namespace, lowercase.
    pub namespace: String,
    /// Slice name.
    pub name: String,
    /// The owning Service (label `kubernetes.io/service-name`), lowercase.
    pub service: String,
    /// The slice's ports (endpoint port numbers).
    pub ports: Vec<PortInfo>,
    /// The endpoints.
    pub endpoints: Vec<EndpointInfo>,
}

/// The DNS-relevant part of a Pod that sets both `hostname` and `subdomain`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodInfo {
    /// Namespace, lowercase.
    pub namespace: String,
    /// Pod name.
    pub name: String,
    /// `spec.hostname`, lowercase.
    pub hostname: String,
    /// `spec.subdomain`, lowercase: the headless Service that publishes the pod.
    pub subdomain: String,
    /// `status.podIPs`.
    pub ips: Vec<IpAddr>,
    /// The Ready condition is True.
    pub ready: bool,
}

// === impl ServiceInfo ===

impl ServiceInfo {
    /// The compact view of a Service, or `None` when it has no DNS records yet
    /// (a ClusterIP Service whose IP is not allocated, a nameless object).
    pub fn from_service(svc: &Service) -> Option<Self> {
        let namespace = svc.metadata.namespace.as_deref()?.to_ascii_lowercase();
        let name = svc.metadata.name.as_deref()?.to_ascii_lowercase();
        let spec = svc.spec.as_ref()?;
        let kind = if spec.type_.as_deref() == Some("ExternalName") {
            let target = spec.external_name.as_deref().unwrap_or_default();
            let target = target.trim_end_matches('.').to_ascii_lowercase();
            if target.is_empty() {
                return None;
            }
            ServiceKind::ExternalName(target)
        } else {
            let mut ips: Vec<&str> = spec
                .cluster_ips
                .as_deref()
                .unwrap_or_default()
                .iter()
                .map(String::as_str)
                .collect();
            if ips.is_empty() {
                ips.extend(spec.cluster_ip.as_deref());
            }
            if ips.iter().any(|ip| ip.eq_ignore_ascii_case("none")) {
                ServiceKind::Headless
            } else {
                let parsed: Vec<IpAddr> = ips.iter().filter_map(|ip| ip.parse().ok()).collect();
                if parsed.is_empty() {
                    return None;
                }
                ServiceKind::ClusterIp(parsed)
            }
        };
        let ports = spec
            .ports
            .as_deref()
            .unwrap_or_default()
            .iter()
            .filter_map(|p| {
                Some(PortInfo {
                    name: p.name.as_deref().unwrap_or_default().to_ascii_lowercase(),
                    protocol: protocol_label(p.protocol.as_deref()),
                    port: u16::try_from(p.port).ok()?,
                })
            })
            .collect();
        Some(Self {
            namespace,
            name,
            kind,
            ports,
            publish_not_ready: spec.publish_not_ready_addresses.unwrap_or(false),
        })
    }
}

// === impl SliceInfo ===

impl SliceInfo {
    /// The compact view of an EndpointSlice, or `None` when it names no Service
    /// or carries FQDN addresses (which DNS does not publish).
    pub fn from_slice(slice: &EndpointSlice) -> Option<Self> {
        let namespace = slice.metadata.namespace.as_deref()?.to_ascii_lowercase();
        let name = slice.metadata.name.clone()?;
        let service = slice
            .metadata
            .labels
            .as_ref()?
            .get(SERVICE_NAME_LABEL)?
            .to_ascii_lowercase();
        if slice.address_type == "FQDN" {
            return None;
        }
        let ports = slice
            .ports
            .as_deref()
            .unwrap_or_default()
            .iter()
            .filter_map(|p| {
                Some(PortInfo {
                    name: p.name.as_deref().unwrap_or_default().to_ascii_lowercase(),
                    protocol: protocol_label(p.protocol.as_deref()),
                    port: u16::try_from(p.port?).ok()?,
                })
            })
            .collect();
        let endpoints = slice
            .endpoints
            .iter()
            .map(|ep| EndpointInfo {
                addresses: ep.addresses.iter().filter_map(|a| a.parse().ok()).collect(),
                hostname: ep
                    .hostname
                    .as_deref()
                    .filter(|h| !h.is_empty())
                    .map(|h| h.to_ascii_lowercase().into_boxed_str()),
                ready: ep.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true),
            })
            .collect();
        Some(Self {
            namespace,
            name,
            service,
            ports,
            endpoints,
        })
    }
}

// === impl PodInfo ===

impl PodInfo {
    /// The compact view of a Pod, or `None` unless it sets both `hostname` and
    /// `subdomain` (only those pods get records of their own).
    pub fn from_pod(pod: &Pod) -> Option<Self> {
        let namespace = pod.metadata.namespace.as_deref()?.to_ascii_lowercase();
        let name = pod.metadata.name.clone()?;
        let spec = pod.spec.as_ref()?;
        let hostname = spec.hostname.as_deref().filter(|h| !h.is_empty())?;
        let subdomain = spec.subdomain.as_deref().filter(|s| !s.is_empty())?;
        let status = pod.status.as_ref();
        let mut ips: Vec<IpAddr> = status
            .and_then(|s| s.pod_ips.as_ref())
            .map(|ips| ips.iter().filter_map(|ip| ip.ip.parse().ok()).collect())
            .unwrap_or_default();
        if ips.is_empty() {
            ips.extend(
                status
                    .and_then(|s| s.pod_ip.as_deref())
                    .and_then(|ip| ip.parse::<IpAddr>().ok()),
            );
        }
        let ready = status
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        Some(Self {
            namespace,
            name,
            hostname: hostname.to_ascii_lowercase(),
            subdomain: subdomain.to_ascii_lowercase(),
            ips,
            ready,
        })
    }
}

/// The SRV protocol label for a Kubernetes protocol (default TCP).
fn protocol_label(protocol: Option<&str>) -> String {
    protocol.unwrap_or("TCP").to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(json: serde_json::Value) -> Service {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn cluster_ip_service_keeps_every_family_and_named_ports() {
        let s = svc(serde_json::json!({
            "metadata": {"name": "My-App", "namespace": "default"},
            "spec": {"clusterIP": "10.96.0.20", "clusterIPs": ["10.96.0.20", "fd00::20"],
                     "ports": [{"name": "HTTP", "port": 80}, {"port": 53, "protocol": "UDP"}]}
        }));
        let info = ServiceInfo::from_service(&s).unwrap();
        assert_eq!(info.name, "my-app");
        assert_eq!(
            info.kind,
            ServiceKind::ClusterIp(vec![
                "10.96.0.20".parse().unwrap(),
                "fd00::20".parse().unwrap()
            ])
        );
        assert_eq!(
            info.ports,
            vec![
                PortInfo {
                    name: "http".into(),
                    protocol: "tcp".into(),
                    port: 80
                },
                PortInfo {
                    name: String::new(),
                    protocol: "udp".into(),
                    port: 53
                },
            ]
        );
    }

    #[test]
    fn headless_external_name_and_unallocated_services() {
        let headless = svc(serde_json::json!({
            "metadata": {"name": "h", "namespace": "ns"},
            "spec": {"clusterIP": "None", "publishNotReadyAddresses": true}
        }));
        let info = ServiceInfo::from_service(&headless).unwrap();
        assert_eq!(info.kind, ServiceKind::Headless);
        assert!(info.publish_not_ready);

        let ext = svc(serde_json::json!({
            "metadata": {"name": "e", "namespace": "ns"},
            "spec": {"type": "ExternalName", "externalName": "WWW.Example.com."}
        }));
        assert_eq!(
            ServiceInfo::from_service(&ext).unwrap().kind,
            ServiceKind::ExternalName("www.example.com".into())
        );

        let pending = svc(serde_json::json!({
            "metadata": {"name": "p", "namespace": "ns"}, "spec": {}
        }));
        assert_eq!(ServiceInfo::from_service(&pending), None);
    }

    #[test]
    fn slice_readiness_defaults_to_ready_and_needs_the_service_label() {
        let slice: EndpointSlice = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "h-abc", "namespace": "ns",
                         "labels": {"kubernetes.io/service-name": "h"}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080}],
            "endpoints": [
                {"addresses": ["10.244.0.5"], "hostname": "web-0"},
                {"addresses": ["10.244.0.6"], "conditions": {"ready": false}}
            ]
        }))
        .unwrap();
        let info = SliceInfo::from_slice(&slice).unwrap();
        assert_eq!(info.service, "h");
        assert_eq!(info.ports[0].port, 8080);
        assert!(info.endpoints[0].ready);
        assert_eq!(info.endpoints[0].hostname.as_deref(), Some("web-0"));
        assert!(!info.endpoints[1].ready);

        let mut unlabeled = slice.clone();
        unlabeled.metadata.labels = None;
        assert_eq!(SliceInfo::from_slice(&unlabeled), None);
    }

    #[test]
    fn pods_need_hostname_and_subdomain() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p1", "namespace": "ns"},
            "spec": {"hostname": "Busy", "subdomain": "sub", "containers": []},
            "status": {"podIP": "10.244.1.7", "conditions": [{"type": "Ready", "status": "True"}]}
        }))
        .unwrap();
        let info = PodInfo::from_pod(&pod).unwrap();
        assert_eq!(info.hostname, "busy");
        assert_eq!(info.ips, vec!["10.244.1.7".parse::<IpAddr>().unwrap()]);
        assert!(info.ready);

        let mut plain = pod.clone();
        plain.spec.as_mut().unwrap().subdomain = None;
        assert_eq!(PodInfo::from_pod(&plain), None);
    }
}
