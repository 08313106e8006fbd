//! Harness additions for reading pods the way a user does: `kubectl get pods`
//! as JSON and as table rows, waiting for Ready, and EndpointSlice addresses.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use serde_json::Value;

use super::{eventually, Cluster};

/// What `kubectl get pods -o json` says about one pod.
#[derive(Debug, Clone)]
pub struct PodView {
    pub name: String,
    pub phase: String,
    pub ready: bool,
    pub ip: String,
    pub node: String,
    pub restarts: i64,
}

/// The pods matching `selector` that are not being deleted.
pub fn pods(c: &Cluster, selector: &str) -> Vec<PodView> {
    let out = c.kubectl(&["get", "pods", "-l", selector, "-o", "json"]);
    let v: Value = serde_json::from_str(&out).unwrap();
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .map(|p| PodView {
            name: p["metadata"]["name"].as_str().unwrap_or("").to_string(),
            phase: p["status"]["phase"].as_str().unwrap_or("").to_string(),
            ready: p["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "True"),
            ip: p["status"]["podIP"].as_str().unwrap_or("").to_string(),
            node: p["spec"]["nodeName"].as_str().unwrap_or("").to_string(),
            restarts: p["status"]["containerStatuses"][0]["restartCount"]
                .as_i64()
                .unwrap_or(0),
        })
        .collect()
}

/// Waits for exactly `n` pods matching `selector`, all Running and Ready with an IP.
pub fn wait_ready(c: &Cluster, selector: &str, n: usize, timeout: Duration) -> Vec<PodView> {
    eventually(
        &format!("{n} pods {selector} Running and Ready"),
        timeout,
        || {
            let p = pods(c, selector);
            let ok = p.len() == n
                && p.iter()
                    .all(|p| p.phase == "Running" && p.ready && !p.ip.is_empty());
            ok.then_some(p)
        },
    )
}

/// The row of `kubectl get pods NAME --no-headers`, split in columns
/// (RESTARTS may read `1 (4s ago)`, so only the first four are stable).
pub fn pod_row(c: &Cluster, name: &str) -> Vec<String> {
    c.kubectl(&["get", "pod", name, "--no-headers"])
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// Endpoint addresses of a Service's EndpointSlices: (ip, ready).
pub fn slice_endpoints(c: &Cluster, service: &str) -> Vec<(String, bool)> {
    let out = c.kubectl(&[
        "get",
        "endpointslices",
        "-l",
        &format!("kubernetes.io/service-name={service}"),
        "-o",
        "json",
    ]);
    let v: Value = serde_json::from_str(&out).unwrap();
    let mut eps = Vec::new();
    for slice in v["items"].as_array().unwrap() {
        for ep in slice["endpoints"].as_array().into_iter().flatten() {
            let ready = ep["conditions"]["ready"].as_bool().unwrap_or(true);
            for a in ep["addresses"].as_array().into_iter().flatten() {
                eps.push((a.as_str().unwrap_or("").to_string(), ready));
            }
        }
    }
    eps
}
