//! Compact views of Services and EndpointSlices: only what the planner reads,
//! converted once when a watch event arrives. The watch cache keeps every
//! object of the cluster, and typed API objects cost kilobytes each (an
//! EndpointSlice of 10 endpoints about 8 KiB); these views cost tens of
//! bytes per Service plus 5 bytes per endpoint.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

use crate::model::{cluster_ipv4, is_proxied, Endpoint, Proto, SvcPort, DEFAULT_AFFINITY_TIMEOUT};

/// What the planner needs of one Service.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SvcView {
    /// IPv4 ClusterIP; `None` for a Service this proxy ignores.
    cluster_ip: Option<Ipv4Addr>,
    /// `externalTrafficPolicy: Local`.
    external_local: bool,
    /// `internalTrafficPolicy: Local`.
    internal_local: bool,
    /// Ports with a known protocol and a valid port number.
    ports: Box<[PortView]>,
    /// The fields most Services leave unset, boxed so that those pay one pointer.
    extra: Option<Box<Extra>>,
}

/// The rarely set parts of a [`SvcView`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Extra {
    external_ips: Box<[Ipv4Addr]>,
    /// Only for `type: LoadBalancer` (ignored otherwise, as by kube-proxy).
    lb_ips: Box<[Ipv4Addr]>,
    /// Only for `type: LoadBalancer`.
    source_ranges: Box<[Ipv4Net]>,
    affinity_timeout: Option<u32>,
    /// Only with `externalTrafficPolicy: Local`.
    health_check_node_port: Option<u16>,
}

/// One `spec.ports[]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PortView {
    name: Box<str>,
    proto: Proto,
    port: u16,
    node_port: Option<u16>,
}

/// What the planner needs of one EndpointSlice, with endpoint locality
/// resolved against this node (the node name never changes for a proxy).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SliceView {
    /// Ports with a known protocol and a port number, in slice order.
    ports: Box<[SlicePortView]>,
    /// Endpoints with a parseable first address; empty for non-IPv4 slices.
    endpoints: Box<[EpView]>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct SlicePortView {
    name: Box<str>,
    proto: Proto,
    /// Kept as sent: a match outside the u16 range skips the slice, as before.
    port: i32,
}

/// One endpoint: its first address and condition bits (5 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct EpView {
    ip: Ipv4Addr,
    flags: u8,
}

const READY: u8 = 1;
const SERVING: u8 = 2;
const TERMINATING: u8 = 4;
const LOCAL: u8 = 8;

fn v4_sorted<'a>(v: impl Iterator<Item = &'a str>) -> Box<[Ipv4Addr]> {
    let mut ips: Vec<Ipv4Addr> = v.filter_map(|s| s.parse().ok()).collect();
    ips.sort();
    ips.dedup();
    ips.into_boxed_slice()
}

impl SvcView {
    /// The view of `svc` (an empty one when this proxy ignores it).
    pub fn new(svc: &Service) -> SvcView {
        let (true, Some(spec), Some(cluster_ip)) =
            (is_proxied(svc), svc.spec.as_ref(), cluster_ipv4(svc))
        else {
            return SvcView::default();
        };
        let is_lb = spec.type_.as_deref() == Some("LoadBalancer");
        let external_local = spec.external_traffic_policy.as_deref() == Some("Local");
        let internal_local = spec.internal_traffic_policy.as_deref() == Some("Local");
        let external_ips = v4_sorted(spec.external_ips.iter().flatten().map(String::as_str));
        let lb_ips = if is_lb {
            v4_sorted(
                svc.status
                    .as_ref()
                    .and_then(|s| s.load_balancer.as_ref())
                    .and_then(|lb| lb.ingress.as_ref())
                    .into_iter()
                    .flatten()
                    .filter(|i| i.ip_mode.as_deref() != Some("Proxy"))
                    .filter_map(|i| i.ip.as_deref()),
            )
        } else {
            Box::default()
        };
        let source_ranges: Box<[Ipv4Net]> = if is_lb {
            spec.load_balancer_source_ranges
                .iter()
                .flatten()
                .filter_map(|s| s.trim().parse::<Ipv4Net>().ok())
                .map(|n| n.trunc())
                .collect()
        } else {
            Box::default()
        };
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
            .filter(|p| *p > 0 && external_local);
        let extra = Extra {
            external_ips,
            lb_ips,
            source_ranges,
            affinity_timeout,
            health_check_node_port,
        };
        let ports = spec
            .ports
            .iter()
            .flatten()
            .filter_map(|sp| {
                Some(PortView {
                    proto: Proto::parse(sp.protocol.as_deref())?,
                    port: u16::try_from(sp.port).ok()?,
                    name: sp.name.as_deref().unwrap_or("").into(),
                    node_port: sp
                        .node_port
                        .and_then(|p| u16::try_from(p).ok())
                        .filter(|p| *p > 0),
                })
            })
            .collect();
        SvcView {
            cluster_ip: Some(cluster_ip),
            external_local,
            internal_local,
            ports,
            extra: (extra != Extra::default()).then(|| Box::new(extra)),
        }
    }

    /// One [`SvcPort`] per port of Service `namespace/name`, with the
    /// endpoints of `slices`; nothing for an ignored Service.
    pub fn ports(&self, namespace: &str, name: &str, slices: &[&SliceView]) -> Vec<SvcPort> {
        let Some(cluster_ip) = self.cluster_ip else {
            return Vec::new();
        };
        let none = Extra::default();
        let extra = self.extra.as_deref().unwrap_or(&none);
        self.ports
            .iter()
            .map(|p| SvcPort {
                namespace: namespace.to_string(),
                name: name.to_string(),
                port_name: p.name.to_string(),
                proto: p.proto,
                cluster_ip,
                port: p.port,
                node_port: p.node_port,
                external_ips: extra.external_ips.to_vec(),
                lb_ips: extra.lb_ips.to_vec(),
                source_ranges: extra.source_ranges.to_vec(),
                external_local: self.external_local,
                internal_local: self.internal_local,
                affinity_timeout: extra.affinity_timeout,
                health_check_node_port: extra.health_check_node_port,
                endpoints: endpoints_for(slices, &p.name, p.proto),
            })
            .collect()
    }
}

impl SliceView {
    /// The view of `slice` as seen from node `node_name`.
    pub fn new(slice: &EndpointSlice, node_name: &str) -> SliceView {
        if slice.address_type != "IPv4" {
            return SliceView::default();
        }
        let ports = slice
            .ports
            .iter()
            .flatten()
            .filter_map(|p| {
                Some(SlicePortView {
                    proto: Proto::parse(p.protocol.as_deref())?,
                    port: p.port?,
                    name: p.name.as_deref().unwrap_or("").into(),
                })
            })
            .collect();
        let endpoints = slice
            .endpoints
            .iter()
            .filter_map(|ep| {
                // One address per endpoint is what Kubernetes uses (the rest are ignored).
                let ip = ep.addresses.first()?.parse::<Ipv4Addr>().ok()?;
                let cond = ep.conditions.as_ref();
                let ready = cond.and_then(|c| c.ready).unwrap_or(true);
                let serving = cond.and_then(|c| c.serving).unwrap_or(ready);
                let terminating = cond.and_then(|c| c.terminating).unwrap_or(false);
                let local = ep.node_name.as_deref() == Some(node_name);
                let bit = |on: bool, b: u8| if on { b } else { 0 };
                let flags = bit(ready, READY)
                    | bit(serving, SERVING)
                    | bit(terminating, TERMINATING)
                    | bit(local, LOCAL);
                Some(EpView { ip, flags })
            })
            .collect();
        SliceView { ports, endpoints }
    }
}

/// Endpoints of one Service port: the first slice port with the same name
/// and protocol gives each slice's (possibly named, per-pod resolved) target port.
fn endpoints_for(slices: &[&SliceView], port_name: &str, proto: Proto) -> Vec<Endpoint> {
    let mut eps = Vec::new();
    for slice in slices {
        let Some(port) = slice
            .ports
            .iter()
            .find(|p| &*p.name == port_name && p.proto == proto)
        else {
            continue;
        };
        let Ok(port) = u16::try_from(port.port) else {
            continue;
        };
        eps.extend(slice.endpoints.iter().map(|e| Endpoint {
            ip: e.ip,
            port,
            local: e.flags & LOCAL != 0,
            ready: e.flags & READY != 0,
            serving: e.flags & SERVING != 0,
            terminating: e.flags & TERMINATING != 0,
        }));
    }
    eps.sort();
    // The same address may appear in two slices while a slice is being rewritten.
    eps.dedup_by(|a, b| a.ip == b.ip && a.port == b.port);
    eps
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn svc(spec: serde_json::Value, status: serde_json::Value) -> Service {
        serde_json::from_value(json!({
            "metadata": {"namespace": "ns", "name": "s"}, "spec": spec, "status": status
        }))
        .unwrap()
    }

    fn slice(address_type: &str, endpoints: serde_json::Value) -> EndpointSlice {
        serde_json::from_value(json!({
            "metadata": {"namespace": "ns", "name": "s-1"},
            "addressType": address_type, "endpoints": endpoints,
            "ports": [{"name": "p", "port": 8080, "protocol": "TCP"},
                      {"name": "p", "port": 9090, "protocol": "BOGUS"},
                      {"name": "q", "protocol": "UDP"}]
        }))
        .unwrap()
    }

    #[test]
    fn a_plain_service_pays_no_boxed_extras_and_ignored_ones_are_empty() {
        let plain = SvcView::new(&svc(
            json!({"clusterIP": "10.96.0.1", "ports": [{"port": 80}, {"port": 81, "protocol": "BOGUS"}]}),
            json!({}),
        ));
        assert!(plain.extra.is_none());
        assert_eq!(plain.ports.len(), 1);
        // Headless and ExternalName Services keep nothing.
        for spec in [
            json!({"clusterIP": "None", "ports": [{"port": 80}]}),
            json!({"type": "ExternalName", "externalName": "example.com"}),
        ] {
            let v = SvcView::new(&svc(spec, json!({})));
            assert_eq!(v, SvcView::default());
            assert!(v.ports("ns", "s", &[]).is_empty());
        }
    }

    #[test]
    fn load_balancer_fields_count_only_for_load_balancers() {
        let status = json!({"loadBalancer": {"ingress": [
            {"ip": "192.0.2.2"}, {"ip": "192.0.2.1"}, {"ip": "192.0.2.9", "ipMode": "Proxy"}]}});
        let spec = |ty: &str| {
            json!({"type": ty, "clusterIP": "10.96.0.1", "externalTrafficPolicy": "Local",
                   "healthCheckNodePort": 32000, "loadBalancerSourceRanges": [" 198.51.100.7/24"],
                   "ports": [{"port": 80, "nodePort": 30080}]})
        };
        let lb = SvcView::new(&svc(spec("LoadBalancer"), status.clone())).ports("ns", "s", &[]);
        assert_eq!(
            lb[0].lb_ips,
            vec![Ipv4Addr::new(192, 0, 2, 1), Ipv4Addr::new(192, 0, 2, 2)]
        );
        assert_eq!(
            lb[0].source_ranges,
            vec!["198.51.100.0/24".parse().unwrap()]
        );
        assert_eq!(lb[0].health_check_node_port, Some(32000));
        let np = SvcView::new(&svc(spec("NodePort"), status)).ports("ns", "s", &[]);
        assert!(np[0].lb_ips.is_empty() && np[0].source_ranges.is_empty());
        assert_eq!(np[0].node_port, Some(30080));
    }

    #[test]
    fn endpoints_keep_conditions_and_locality_and_match_ports_by_name_and_protocol() {
        let s = slice(
            "IPv4",
            json!([
                {"addresses": ["10.244.0.2"], "nodeName": "n1"},
                {"addresses": ["10.244.0.3"], "nodeName": "n2",
                 "conditions": {"ready": false, "serving": true, "terminating": true}},
                {"addresses": ["not-an-ip"]}
            ]),
        );
        let view = SliceView::new(&s, "n1");
        // Unknown protocols and ports without a number can never match.
        assert_eq!(view.ports.len(), 1);
        let eps = endpoints_for(&[&view], "p", Proto::Tcp);
        assert_eq!(
            eps,
            vec![
                Endpoint {
                    ip: Ipv4Addr::new(10, 244, 0, 2),
                    port: 8080,
                    local: true,
                    ready: true,
                    serving: true,
                    terminating: false,
                },
                Endpoint {
                    ip: Ipv4Addr::new(10, 244, 0, 3),
                    port: 8080,
                    local: false,
                    ready: false,
                    serving: true,
                    terminating: true,
                },
            ]
        );
        assert!(endpoints_for(&[&view], "p", Proto::Udp).is_empty());
        assert!(endpoints_for(&[&view], "q", Proto::Udp).is_empty());
        let v6 = SliceView::new(&slice("IPv6", json!([{"addresses": ["fd00::1"]}])), "n1");
        assert_eq!(v6, SliceView::default());
    }

    #[test]
    fn views_are_small() {
        // The cache holds one of each per Service: keep them compact.
        assert!(size_of::<SvcView>() <= 40);
        assert!(size_of::<SliceView>() <= 32);
        assert!(size_of::<EpView>() <= 8);
    }
}
