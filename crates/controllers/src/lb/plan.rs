//! Pure LoadBalancer address allocation from the `--lb-pool` ranges (MetalLB-style: every
//! address of a pool CIDR is usable; `spec.loadBalancerIP` honoured when free and in a pool).

use std::collections::HashSet;
use std::net::IpAddr;

use ipnet::IpNet;
use k8s_openapi::api::core::v1::Service;

/// The loadBalancerClass Portico implements (Services without a class are ours too).
pub const LB_CLASS: &str = "portico.io/lb";

/// Whether Portico should give `svc` an address.
pub fn wants_lb(svc: &Service) -> bool {
    let Some(spec) = svc.spec.as_ref() else {
        return false;
    };
    spec.type_.as_deref() == Some("LoadBalancer")
        && spec
            .load_balancer_class
            .as_deref()
            .is_none_or(|c| c == LB_CLASS)
}

/// Whether another implementation owns `svc` (a foreign loadBalancerClass): hands off.
pub fn foreign_class(svc: &Service) -> bool {
    svc.spec
        .as_ref()
        .and_then(|s| s.load_balancer_class.as_deref())
        .is_some_and(|c| c != LB_CLASS)
}

/// The ingress IP currently in the Service's status.
pub fn current_ip(svc: &Service) -> Option<IpAddr> {
    svc.status
        .as_ref()?
        .load_balancer
        .as_ref()?
        .ingress
        .as_ref()?
        .iter()
        .find_map(|i| i.ip.as_deref()?.parse().ok())
}

/// Whether `ip` lies in one of the pools.
pub fn in_pools(pools: &[IpNet], ip: IpAddr) -> bool {
    pools.iter().any(|p| p.contains(&ip))
}

/// Every address of a pool, in order (network and broadcast included, as MetalLB does).
fn addresses(pool: &IpNet) -> Box<dyn Iterator<Item = IpAddr> + '_> {
    match pool {
        IpNet::V4(n) => {
            let start = u32::from(n.network());
            let end = u32::from(n.broadcast());
            Box::new((start..=end).map(|a| IpAddr::V4(a.into())))
        }
        IpNet::V6(n) => {
            let start = u128::from(n.network());
            // Large v6 pools: bounded scan; nobody exhausts 2^16 addresses here.
            let end = u128::from(n.broadcast()).min(start.saturating_add(65_535));
            Box::new((start..=end).map(|a| IpAddr::V6(a.into())))
        }
    }
}

/// Chooses an address for a Service: the requested one if valid, else the first free one.
/// The error says why nothing could be allocated (it becomes the AllocationFailed Event).
pub fn pick_ip(
    pools: &[IpNet],
    used: &HashSet<IpAddr>,
    requested: Option<&str>,
) -> Result<IpAddr, String> {
    if pools.is_empty() {
        return Err("no address pools configured (start the server with --lb-pool CIDR)".into());
    }
    if let Some(req) = requested.filter(|r| !r.is_empty()) {
        let ip: IpAddr = req
            .parse()
            .map_err(|_| format!("spec.loadBalancerIP {req:?} is not a valid IP address"))?;
        if !in_pools(pools, ip) {
            return Err(format!("requested IP {ip} is not in any configured pool"));
        }
        if used.contains(&ip) {
            return Err(format!(
                "requested IP {ip} is already in use by another Service"
            ));
        }
        return Ok(ip);
    }
    pools
        .iter()
        .flat_map(addresses)
        .find(|ip| !used.contains(ip))
        .ok_or_else(|| "no available IPs in the configured pools".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pools(s: &[&str]) -> Vec<IpNet> {
        s.iter().map(|p| p.parse().unwrap()).collect()
    }

    #[test]
    fn allocates_in_order_honours_requests_and_reports_exhaustion() {
        let p = pools(&["192.168.50.240/31"]);
        let mut used = HashSet::new();
        let a = pick_ip(&p, &used, None).unwrap();
        assert_eq!(a.to_string(), "192.168.50.240");
        used.insert(a);
        let b = pick_ip(&p, &used, None).unwrap();
        assert_eq!(b.to_string(), "192.168.50.241");
        used.insert(b);
        assert_eq!(
            pick_ip(&p, &used, None).unwrap_err(),
            "no available IPs in the configured pools"
        );
        assert!(pick_ip(&p, &used, Some("192.168.50.241"))
            .unwrap_err()
            .contains("already in use"));
        assert!(pick_ip(&p, &used, Some("10.0.0.1"))
            .unwrap_err()
            .contains("not in any configured pool"));
        assert!(pick_ip(&[], &used, None).unwrap_err().contains("--lb-pool"));
        used.remove(&a);
        assert_eq!(pick_ip(&p, &used, Some("192.168.50.240")).unwrap(), a);
    }
}
