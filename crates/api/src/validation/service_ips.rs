//! Service cluster IP and IP family rules: `ValidateServiceClusterIPsRelatedFields`
//! and the update-time `validateUpgradeDowngradeClusterIPs`/`IPFamilies`
//! checks, whose `[]string{...}` values kubectl prints verbatim.

use serde_json::Value;

use super::names;
use super::service::{cluster_ips, is_headless};
use super::{get, get_arr, get_str, invalid_str, not_supported_str, str_list, valid_ip};
use crate::gofmt;
use crate::status::FieldError;

fn cluster_ips_shown(svc: &Value) -> String {
    match get(svc, &["spec", "clusterIPs"]) {
        Some(Value::Array(_)) => {
            gofmt::string_slice(Some(&str_list(get_arr(svc, &["spec", "clusterIPs"]))))
        }
        _ => gofmt::string_slice(None),
    }
}

/// `ValidateServiceClusterIPsRelatedFields`.
pub(crate) fn cluster_ips_related(out: &mut Vec<FieldError>, svc: &Value) {
    if get_str(svc, &["spec", "type"]) == "ExternalName" {
        return;
    }
    let cluster_ip = get_str(svc, &["spec", "clusterIP"]);
    let ips = str_list(get_arr(svc, &["spec", "clusterIPs"]));
    if !cluster_ip.is_empty() {
        if ips.is_empty() {
            out.push(FieldError::required("spec.clusterIPs", ""));
        } else if ips[0] != cluster_ip {
            out.push(FieldError::invalid(
                "spec.clusterIPs",
                cluster_ips_shown(svc),
                "first value must match `clusterIP`",
            ));
        }
    } else if !ips.is_empty() {
        out.push(FieldError::invalid(
            "spec.clusterIPs",
            cluster_ips_shown(svc),
            "must be empty when `clusterIP` is not specified",
        ));
    }

    let families = str_list(get_arr(svc, &["spec", "ipFamilies"]));
    let mut seen: Vec<&str> = Vec::new();
    for (i, f) in families.iter().enumerate() {
        if f != "IPv4" && f != "IPv6" {
            out.push(not_supported_str(
                format!("spec.ipFamilies[{i}]"),
                f,
                &["IPv4", "IPv6"],
            ));
        }
        if seen.contains(&f.as_str()) {
            out.push(FieldError::duplicate(
                format!("spec.ipFamilies[{i}]"),
                gofmt::quote(f),
            ));
        }
        seen.push(f);
    }
    if let Some(policy) = get(svc, &["spec", "ipFamilyPolicy"]).and_then(Value::as_str) {
        if !["PreferDualStack", "RequireDualStack", "SingleStack"].contains(&policy) {
            out.push(not_supported_str(
                "spec.ipFamilyPolicy",
                policy,
                &["PreferDualStack", "RequireDualStack", "SingleStack"],
            ));
        }
    }

    let mut invalid = false;
    for (i, ip) in ips.iter().enumerate() {
        if i == 0 && ip == "None" {
            if ips.len() > 1 {
                invalid = true;
                out.push(FieldError::invalid(
                    "spec.clusterIPs",
                    cluster_ips_shown(svc),
                    "'None' must be the first and only value",
                ));
            }
            continue;
        }
        if !valid_ip(out, &format!("spec.clusterIPs[{i}]"), ip) {
            invalid = true;
        }
    }
    if ips.len() > 2 {
        out.push(FieldError::invalid(
            "spec.clusterIPs",
            cluster_ips_shown(svc),
            "may only hold up to 2 values",
        ));
    }
    if invalid {
        return;
    }
    if ips.len() > 1 {
        let v6: Vec<bool> = ips
            .iter()
            .map(|ip| matches!(names::parse_ip_sloppy(ip), Some(std::net::IpAddr::V6(_))))
            .collect();
        if ips.len() != 2 || v6[0] == v6[1] {
            out.push(FieldError::invalid(
                "spec.clusterIPs",
                cluster_ips_shown(svc),
                "may specify no more than one IP for each IP family",
            ));
        }
    }
    if !is_headless(svc) && !families.is_empty() {
        for (i, ip) in ips.iter().enumerate() {
            let Some(fam) = families.get(i) else { break };
            let is_v6 = matches!(names::parse_ip_sloppy(ip), Some(std::net::IpAddr::V6(_)));
            if fam == "IPv4" && is_v6 {
                out.push(invalid_str(
                    format!("spec.clusterIPs[{i}]"),
                    ip,
                    format!("expected an IPv4 value as indicated by `ipFamilies[{i}]`"),
                ));
            }
            if fam == "IPv6" && !is_v6 {
                out.push(invalid_str(
                    format!("spec.clusterIPs[{i}]"),
                    ip,
                    format!("expected an IPv6 value as indicated by `ipFamilies[{i}]`"),
                ));
            }
        }
    }
}

/// `validateUpgradeDowngradeClusterIPs`.
pub(crate) fn upgrade_downgrade_cluster_ips(out: &mut Vec<FieldError>, old: &Value, svc: &Value) {
    if get_str(svc, &["spec", "type"]) == "ExternalName"
        || get_str(old, &["spec", "type"]) == "ExternalName"
    {
        return;
    }
    if is_headless(old) && is_headless(svc) {
        return;
    }
    let old_ips = cluster_ips(old);
    let new_ips = str_list(get_arr(svc, &["spec", "clusterIPs"]));
    let shown = cluster_ips_shown(svc);
    if old_ips.len() == new_ips.len() {
        for (i, ip) in old_ips.iter().enumerate() {
            if *ip != new_ips[i] {
                out.push(FieldError::invalid(
                    format!("spec.clusterIPs[{i}]"),
                    shown.clone(),
                    "may not change once set",
                ));
            }
        }
    } else if old_ips.len() > new_ips.len() {
        if new_ips.is_empty() {
            out.push(FieldError::invalid(
                "spec.clusterIPs[0]",
                shown.clone(),
                "primary clusterIP can not be unset",
            ));
        }
        if !old_ips.is_empty() && !new_ips.is_empty() && new_ips[0] != old_ips[0] {
            out.push(FieldError::invalid(
                "spec.clusterIPs[0]",
                shown.clone(),
                "may not change once set",
            ));
        }
        if new_ips.len() == 1 && get_str(svc, &["spec", "ipFamilyPolicy"]) != "SingleStack" {
            out.push(FieldError::invalid(
                "spec.ipFamilyPolicy",
                policy_shown(svc),
                "must be set to 'SingleStack' when releasing the secondary clusterIP",
            ));
        }
    } else if !old_ips.is_empty() && new_ips[0] != old_ips[0] {
        out.push(FieldError::invalid(
            "spec.clusterIPs[0]",
            shown,
            "may not change once set",
        ));
    }
}

fn policy_shown(svc: &Value) -> String {
    match get(svc, &["spec", "ipFamilyPolicy"]).and_then(Value::as_str) {
        Some(p) => gofmt::quote(p),
        None => "null".to_string(),
    }
}

/// `validateUpgradeDowngradeIPFamilies`.
pub(crate) fn upgrade_downgrade_ip_families(out: &mut Vec<FieldError>, old: &Value, svc: &Value) {
    if get_str(svc, &["spec", "type"]) == "ExternalName"
        || get_str(old, &["spec", "type"]) == "ExternalName"
    {
        return;
    }
    if is_headless(old) != is_headless(svc) || is_headless(svc) {
        return;
    }
    let old_f = str_list(get_arr(old, &["spec", "ipFamilies"]));
    let new_f = str_list(get_arr(svc, &["spec", "ipFamilies"]));
    let shown_f = gofmt::string_slice(Some(&new_f));
    let shown_ips = cluster_ips_shown(svc);
    if old_f.len() == new_f.len() {
        for (i, f) in old_f.iter().enumerate() {
            if *f != new_f[i] {
                out.push(FieldError::invalid(
                    "spec.ipFamilies[0]",
                    shown_f.clone(),
                    "may not change once set",
                ));
            }
        }
    } else if old_f.len() > new_f.len() {
        if cluster_ips(svc).is_empty() {
            out.push(FieldError::invalid(
                "spec.ipFamilies[0]",
                shown_f.clone(),
                "primary ipFamily can not be unset",
            ));
        }
        if !new_f.is_empty() && new_f[0] != old_f[0] {
            out.push(FieldError::invalid(
                "spec.ipFamilies[0]",
                shown_ips,
                "may not change once set",
            ));
        }
        if new_f.len() == 1 && get_str(svc, &["spec", "ipFamilyPolicy"]) != "SingleStack" {
            out.push(FieldError::invalid(
                "spec.ipFamilyPolicy",
                policy_shown(svc),
                "must be set to 'SingleStack' when releasing the secondary ipFamily",
            ));
        }
    } else if !old_f.is_empty() && !new_f.is_empty() && new_f[0] != old_f[0] {
        out.push(FieldError::invalid(
            "spec.ipFamilies[0]",
            shown_ips,
            "may not change once set",
        ));
    }
}
