//! Service ClusterIP and NodePort allocation as pure planning, the way kube-apiserver does it.
//!
//! [`plan`] looks at the old and new Service, fills in allocated values and says
//! which allocation keys to claim (with `KeyMissing` compares, so concurrent writers
//! never get the same value) and which to release, all in the Service's own store
//! transaction. Random choices come from a caller-supplied chooser so tests are
//! deterministic; the caller retries with fresh choices when a claim loses a race.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::ops::RangeInclusive;

use ipnet::IpNet;
use portico_api::status::{quote, FieldError};
use serde_json::{json, Value};

/// Prefix of ClusterIP allocation keys.
pub(crate) const IP_PREFIX: &str = "/registry-alloc/clusterip/";
/// Prefix of NodePort allocation keys.
pub(crate) const PORT_PREFIX: &str = "/registry-alloc/nodeport/";

/// The Service ranges of this server.
#[derive(Debug, Clone)]
pub(crate) struct Ranges {
    pub cidr: IpNet,
    pub ports: RangeInclusive<u16>,
}

/// One allocation the write must win.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Claim {
    pub key: String,
    /// The error to report if the key is already taken and the value was requested
    /// by the user; `None` for a randomly chosen value (then the caller retries).
    pub taken_error: Option<FieldError>,
}

/// Allocation changes of one Service write.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Plan {
    pub claims: Vec<Claim>,
    pub releases: Vec<String>,
}

/// Source of random picks (the caller passes a real RNG; tests pass a script).
pub(crate) trait Chooser {
    /// A random IP offset in `1..=max`.
    fn ip_offset(&mut self, max: u64) -> u64;
    /// A random index below `n`.
    fn index(&mut self, n: usize) -> usize;
}

pub(crate) fn ip_key(ip: &IpAddr) -> String {
    format!("{IP_PREFIX}{ip}")
}

pub(crate) fn port_key(port: u16) -> String {
    format!("{PORT_PREFIX}{port}")
}

fn svc_type(svc: &Value) -> &str {
    svc["spec"]["type"].as_str().unwrap_or("ClusterIP")
}

fn needs_cluster_ip(svc: &Value) -> bool {
    svc_type(svc) != "ExternalName"
}

fn needs_node_ports(svc: &Value) -> bool {
    match svc_type(svc) {
        "NodePort" => true,
        "LoadBalancer" => svc["spec"]["allocateLoadBalancerNodePorts"]
            .as_bool()
            .unwrap_or(true),
        _ => false,
    }
}

fn needs_hc_port(svc: &Value) -> bool {
    svc_type(svc) == "LoadBalancer"
        && svc["spec"]["externalTrafficPolicy"].as_str() == Some("Local")
}

fn cluster_ip(svc: &Value) -> Option<String> {
    svc["spec"]["clusterIP"]
        .as_str()
        .filter(|s| !s.is_empty())
        .or_else(|| {
            svc["spec"]["clusterIPs"][0]
                .as_str()
                .filter(|s| !s.is_empty())
        })
        .map(str::to_string)
}

/// Allocated IP of a Service, if any (not `None`, not empty).
fn allocated_ip(svc: &Value) -> Option<IpAddr> {
    cluster_ip(svc).and_then(|s| s.parse().ok())
}

fn node_ports(svc: &Value) -> BTreeSet<u16> {
    let mut out = BTreeSet::new();
    if let Some(ports) = svc["spec"]["ports"].as_array() {
        for p in ports {
            if let Some(n) = p["nodePort"]
                .as_u64()
                .and_then(|n| u16::try_from(n).ok())
                .filter(|n| *n != 0)
            {
                out.insert(n);
            }
        }
    }
    out
}

fn hc_port(svc: &Value) -> Option<u16> {
    svc["spec"]["healthCheckNodePort"]
        .as_u64()
        .and_then(|n| u16::try_from(n).ok())
        .filter(|n| *n != 0)
}

/// Every allocation key a stored Service holds (released when it is deleted).
pub(crate) fn held_keys(svc: &Value) -> Vec<String> {
    let mut keys: Vec<String> = allocated_ip(svc).iter().map(ip_key).collect();
    let mut ports = node_ports(svc);
    ports.extend(hc_port(svc));
    keys.extend(ports.into_iter().map(port_key));
    keys
}

/// kube-apiserver's `patchAllocatedValues` + `dropTypeDependentFields` for updates:
/// values the client left out are kept from the old object, and values the old
/// type needed but the new one does not are cleared if the client did not touch them.
fn carry_over(old: &Value, new: &mut Value) {
    if needs_cluster_ip(old) && needs_cluster_ip(new) && cluster_ip(new).is_none() {
        if let Some(ip) = cluster_ip(old) {
            new["spec"]["clusterIP"] = json!(ip);
            new["spec"]["clusterIPs"] = old["spec"]["clusterIPs"].clone();
        }
    }
    if needs_node_ports(old) && needs_node_ports(new) {
        let old_ports = old["spec"]["ports"].as_array().cloned().unwrap_or_default();
        if let Some(ports) = new["spec"]["ports"].as_array_mut() {
            for p in ports.iter_mut() {
                if p["nodePort"].as_u64().unwrap_or(0) != 0 {
                    continue;
                }
                let proto = p["protocol"].as_str().unwrap_or("TCP").to_string();
                let found = old_ports.iter().find(|o| {
                    o["port"] == p["port"] && o["protocol"].as_str().unwrap_or("TCP") == proto
                });
                if let Some(n) = found
                    .and_then(|o| o["nodePort"].as_u64())
                    .filter(|n| *n != 0)
                {
                    p["nodePort"] = json!(n);
                }
            }
        }
    }
    if needs_hc_port(old) && needs_hc_port(new) && hc_port(new).is_none() {
        if let Some(n) = hc_port(old) {
            new["spec"]["healthCheckNodePort"] = json!(n);
        }
    }
    // dropTypeDependentFields: only clear what still equals the old value.
    if svc_type(old) != svc_type(new) {
        if !needs_cluster_ip(new)
            && new["spec"]["clusterIPs"] == old["spec"]["clusterIPs"]
            && new["spec"]["clusterIP"] == old["spec"]["clusterIP"]
        {
            if let Some(spec) = new["spec"].as_object_mut() {
                for f in ["clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"] {
                    spec.remove(f);
                }
            }
        }
        if !needs_node_ports(new) {
            let old_ports = old["spec"]["ports"].as_array().cloned().unwrap_or_default();
            if let Some(ports) = new["spec"]["ports"].as_array_mut() {
                for p in ports.iter_mut() {
                    let same = old_ports
                        .iter()
                        .any(|o| o["port"] == p["port"] && o["nodePort"] == p["nodePort"]);
                    if same {
                        if let Some(m) = p.as_object_mut() {
                            m.remove("nodePort");
                        }
                    }
                }
            }
        }
        if !needs_hc_port(new)
            && new["spec"]["healthCheckNodePort"] == old["spec"]["healthCheckNodePort"]
        {
            if let Some(spec) = new["spec"].as_object_mut() {
                spec.remove("healthCheckNodePort");
            }
        }
    }
}

fn ip_range_error(ip: &str, why: &str) -> FieldError {
    FieldError::invalid(
        "spec.clusterIPs",
        format!("[]string{{{}}}", quote(ip)),
        format!("failed to allocate IP {ip}: {why}"),
    )
}

fn port_error(field: &str, port: u16, ranges: &Ranges, in_range: bool) -> FieldError {
    let detail = if in_range {
        "provided port is already allocated".to_string()
    } else {
        format!(
            "provided port is not in the valid range. The range of valid ports is {}-{}",
            ranges.ports.start(),
            ranges.ports.end()
        )
    };
    FieldError::invalid(field, port.to_string(), detail)
}

/// Usable host offsets of the range: excludes the network and broadcast address.
fn ip_capacity(cidr: &IpNet) -> u64 {
    let bits = u32::from(cidr.max_prefix_len() - cidr.prefix_len()).min(63);
    (1u64 << bits).saturating_sub(2).max(1)
}

fn ip_at(cidr: &IpNet, offset: u64) -> Option<IpAddr> {
    match cidr.network() {
        IpAddr::V4(n) => {
            let base = u64::from(u32::from(n));
            u32::try_from(base + offset)
                .ok()
                .map(|v| IpAddr::V4(Ipv4Addr::from(v)))
        }
        IpAddr::V6(n) => {
            let base = u128::from(n);
            Some(IpAddr::V6((base + u128::from(offset)).into()))
        }
    }
}

fn in_ip_range(cidr: &IpNet, ip: &IpAddr) -> bool {
    cidr.contains(ip)
        && *ip != cidr.network()
        && (matches!(ip, IpAddr::V6(_)) || *ip != cidr.broadcast())
}

/// Plans the allocations of a Service create (`old` = None) or update, filling in
/// `new`'s clusterIP(s), nodePorts and healthCheckNodePort. `ports_taken` is the
/// set of NodePorts held by other Services (a snapshot; races are caught by the
/// claims' compares). Errors are the allocator's field errors, verbatim.
pub(crate) fn plan(
    old: Option<&Value>,
    new: &mut Value,
    ranges: &Ranges,
    ports_taken: &BTreeSet<u16>,
    chooser: &mut dyn Chooser,
) -> Result<Plan, Vec<FieldError>> {
    if let Some(old) = old {
        carry_over(old, new);
    }
    let mut plan = Plan::default();
    let old_ip = old.and_then(allocated_ip);
    let old_ports: BTreeSet<u16> = old
        .map(node_ports)
        .unwrap_or_default()
        .into_iter()
        .chain(old.and_then(hc_port))
        .collect();

    // ClusterIP.
    let mut new_ip = None;
    if needs_cluster_ip(new) {
        match cluster_ip(new) {
            Some(s) if s == "None" => {
                new["spec"]["clusterIPs"] = json!(["None"]);
            }
            Some(s) => {
                let ip: IpAddr = s.parse().map_err(|_| {
                    vec![FieldError::invalid(
                        "spec.clusterIPs[0]",
                        quote(&s),
                        "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
                    )]
                })?;
                if !in_ip_range(&ranges.cidr, &ip) {
                    return Err(vec![ip_range_error(
                        &s,
                        &format!(
                            "provided IP is not in the valid range. The range of valid IPs is {}",
                            ranges.cidr
                        ),
                    )]);
                }
                if old_ip != Some(ip) {
                    plan.claims.push(Claim {
                        key: ip_key(&ip),
                        taken_error: Some(ip_range_error(&s, "provided IP is already allocated")),
                    });
                }
                new_ip = Some(ip);
            }
            None => {
                let cap = ip_capacity(&ranges.cidr);
                let ip = ip_at(&ranges.cidr, chooser.ip_offset(cap)).ok_or_else(|| {
                    vec![FieldError::invalid(
                        "spec.clusterIPs",
                        "[]string{}",
                        "failed to allocate IP: range is full",
                    )]
                })?;
                plan.claims.push(Claim {
                    key: ip_key(&ip),
                    taken_error: None,
                });
                new_ip = Some(ip);
            }
        }
        if let Some(ip) = new_ip {
            new["spec"]["clusterIP"] = json!(ip.to_string());
            new["spec"]["clusterIPs"] = json!([ip.to_string()]);
        }
        if new["spec"]["ipFamilies"].is_null() {
            new["spec"]["ipFamilies"] = json!([if matches!(new_ip, Some(IpAddr::V6(_))) {
                "IPv6"
            } else {
                "IPv4"
            }]);
        }
        if new["spec"]["ipFamilyPolicy"].is_null() {
            new["spec"]["ipFamilyPolicy"] = json!("SingleStack");
        }
    }
    if let Some(ip) = old_ip.filter(|ip| Some(*ip) != new_ip) {
        plan.releases.push(ip_key(&ip));
    }

    // NodePorts (and the health check port), one allocation per distinct number.
    let mut kept: BTreeSet<u16> = BTreeSet::new();
    let mut chosen: BTreeSet<u16> = BTreeSet::new();
    let free = |chosen: &BTreeSet<u16>, kept: &BTreeSet<u16>| -> Vec<u16> {
        // One walk of the range beside the sorted taken set, rather than a tree
        // lookup per port (the range holds thousands; the other sets a few).
        let mut taken = ports_taken.range(ranges.ports.clone()).peekable();
        ranges
            .ports
            .clone()
            .filter(|p| {
                while taken.next_if(|t| *t < p).is_some() {}
                taken.next_if_eq(&p).is_none()
                    && !chosen.contains(p)
                    && !kept.contains(p)
                    && !old_ports.contains(p)
            })
            .collect()
    };
    let mut errors = Vec::new();
    if needs_node_ports(new) {
        let count = new["spec"]["ports"].as_array().map_or(0, Vec::len);
        for i in 0..count {
            let field = format!("spec.ports[{i}].nodePort");
            let requested = new["spec"]["ports"][i]["nodePort"]
                .as_u64()
                .filter(|n| *n != 0);
            match requested {
                Some(n) => {
                    let Ok(port) = u16::try_from(n) else {
                        errors.push(FieldError::invalid(
                            &field,
                            n.to_string(),
                            "must be between 1 and 65535, inclusive",
                        ));
                        continue;
                    };
                    if !ranges.ports.contains(&port) {
                        errors.push(port_error(&field, port, ranges, false));
                        continue;
                    }
                    if old_ports.contains(&port) || kept.contains(&port) || chosen.contains(&port) {
                        kept.insert(port);
                        continue;
                    }
                    chosen.insert(port);
                    plan.claims.push(Claim {
                        key: port_key(port),
                        taken_error: Some(port_error(&field, port, ranges, true)),
                    });
                }
                None => {
                    let candidates = free(&chosen, &kept);
                    let Some(port) = (!candidates.is_empty())
                        .then(|| candidates[chooser.index(candidates.len())])
                    else {
                        errors.push(FieldError::invalid(
                            &field,
                            "0",
                            "failed to allocate a nodePort: range is full",
                        ));
                        continue;
                    };
                    chosen.insert(port);
                    new["spec"]["ports"][i]["nodePort"] = json!(port);
                    plan.claims.push(Claim {
                        key: port_key(port),
                        taken_error: None,
                    });
                }
            }
        }
    }
    if needs_hc_port(new) {
        let field = "spec.healthCheckNodePort";
        match hc_port(new) {
            Some(port) if !ranges.ports.contains(&port) => {
                errors.push(port_error(field, port, ranges, false))
            }
            Some(port) if old_ports.contains(&port) => {
                kept.insert(port);
            }
            Some(port) if chosen.contains(&port) || kept.contains(&port) => {
                errors.push(port_error(field, port, ranges, true));
            }
            Some(port) => {
                chosen.insert(port);
                plan.claims.push(Claim {
                    key: port_key(port),
                    taken_error: Some(port_error(field, port, ranges, true)),
                });
            }
            None => {
                let candidates = free(&chosen, &kept);
                if candidates.is_empty() {
                    errors.push(FieldError::invalid(
                        field,
                        "0",
                        "failed to allocate a nodePort: range is full",
                    ));
                } else {
                    let port = candidates[chooser.index(candidates.len())];
                    chosen.insert(port);
                    new["spec"]["healthCheckNodePort"] = json!(port);
                    plan.claims.push(Claim {
                        key: port_key(port),
                        taken_error: None,
                    });
                }
            }
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    for p in &old_ports {
        if !kept.contains(p) && !chosen.contains(p) {
            plan.releases.push(port_key(*p));
        }
    }
    Ok(plan)
}

#[cfg(test)]
mod tests;
