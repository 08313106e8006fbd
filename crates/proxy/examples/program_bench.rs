//! Control-plane benchmark: time to program N Services × 10 endpoints from
//! scratch into a throwaway network namespace, then one Service added and one
//! Service's endpoints changed, through the `nft` applier, the netlink one,
//! or both. Needs root. Usage:
//! `cargo run --release -p portico-proxy --example program_bench -- [--applier nft|netlink|both] 1000 10000 30000`
//! Environment: `BENCH_PHASES=1` prints memory by phase, `BENCH_CACHE=1`
//! plans through the proxy's watch cache (every Service and EndpointSlice
//! held as the agent holds them) so the RSS includes it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::watcher::Event;
use portico_proxy::cache::Cache;
use portico_proxy::model::service_ports;
use portico_proxy::plan::{plan_service, Base, ServicePlan};
use portico_proxy::{ConntrackCli, Nft, NftCli, NftNetlink, Proxier, Txn};
use serde_json::json;

struct Netns(String);

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn ip(base: u32, i: u32) -> Ipv4Addr {
    Ipv4Addr::from(base + i)
}

fn service(i: u32, endpoint_gen: u32) -> (Service, EndpointSlice) {
    let name = format!("svc-{i}");
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"namespace": "bench", "name": name},
        "spec": {"clusterIP": ip(u32::from(Ipv4Addr::new(10, 96, 0, 0)), i + 1).to_string(),
                 "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}
    }))
    .unwrap();
    let pod_base = u32::from(Ipv4Addr::new(10, 128, 0, 0));
    let eps: Vec<_> = (0..10)
        .map(|e| json!({"addresses": [ip(pod_base, i * 10 + e + endpoint_gen * 1_000_000).to_string()], "nodeName": "n1"}))
        .collect();
    let slice: EndpointSlice = serde_json::from_value(json!({
        "metadata": {"namespace": "bench", "name": format!("{name}-x"), "labels": {"kubernetes.io/service-name": name}},
        "addressType": "IPv4", "endpoints": eps,
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]
    }))
    .unwrap();
    (svc, slice)
}

fn plan(i: u32, gen: u32, base: &Base) -> Arc<ServicePlan> {
    let (svc, slice) = service(i, gen);
    Arc::new(plan_service(&service_ports(&svc, &[&slice], "n1"), base))
}

/// A field of /proc/self/status in KiB (`VmRSS:` now, `VmHWM:` the peak).
fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Memory by phase (`BENCH_PHASES=1`): RSS with the plans built, then the
/// full-sync batch encoded on its own (its size and the peak it causes).
fn phases(desired: &BTreeMap<String, Arc<ServicePlan>>, base: &Base) {
    let rss = status_kib("VmRSS:");
    println!(
        "phase plans built: {} Services, RSS {} MiB, peak {} MiB",
        desired.len(),
        rss / 1024,
        status_kib("VmHWM:") / 1024
    );
    let mut enc = NftNetlink::open().unwrap();
    let txn = Txn::Full {
        base,
        plans: desired.values().map(|p| &**p).collect(),
    };
    let t = Instant::now();
    let batches = enc.encode(&txn).unwrap();
    let sizes: Vec<usize> = batches.iter().map(|b| b.byte_len()).collect();
    println!(
        "phase batches encoded in {}: {} transactions, {} messages, {} MiB (largest {} KiB), RSS {} MiB (+{} MiB), peak {} MiB",
        ms(t.elapsed()),
        batches.len(),
        batches.iter().map(|b| b.len()).sum::<usize>(),
        sizes.iter().sum::<usize>() >> 20,
        sizes.iter().max().unwrap_or(&0) >> 10,
        status_kib("VmRSS:") / 1024,
        status_kib("VmRSS:").saturating_sub(rss) / 1024,
        status_kib("VmHWM:") / 1024
    );
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut appliers = vec!["nft", "netlink"];
    if let Some(i) = args.iter().position(|a| a == "--applier") {
        match args.get(i + 1).map(String::as_str) {
            Some("nft") => appliers = vec!["nft"],
            Some("netlink") => appliers = vec!["netlink"],
            _ => {}
        }
    }
    let shards = match args.iter().position(|a| a == "--shards") {
        Some(i) => args.get(i + 1).and_then(|v| v.parse().ok()).unwrap(),
        None => portico_proxy::plan::DEFAULT_SHARDS,
    };
    let sizes: Vec<u32> = args
        .iter()
        .enumerate()
        .filter(|(i, _)| *i == 0 || args[i - 1] != "--shards")
        .filter_map(|(_, a)| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![1000, 10000, 30000]
    } else {
        sizes
    };
    let base = Base {
        cluster_cidr: "10.244.0.0/16".parse().unwrap(),
        nodeport_addresses: vec![],
        shards,
        masquerade_fully_random: false,
    };
    println!("| applier | Services × 10 endpoints | plan | full sync | rules | +1 Service | endpoints of 1 Service changed | RSS after | peak RSS |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for applier in appliers {
        for &n in &sizes {
            run(applier, n, &base);
        }
    }
}

fn run(applier: &str, n: u32, base: &Base) {
    let ns = Netns(format!("portico-b-{}-{applier}-{n}", std::process::id()));
    assert!(Command::new("ip")
        .args(["netns", "add", &ns.0])
        .status()
        .unwrap()
        .success());
    let prefix = vec![
        "ip".to_string(),
        "netns".into(),
        "exec".into(),
        ns.0.clone(),
    ];
    let nft: Box<dyn Nft> = if applier == "netlink" {
        Box::new(NftNetlink::open_in_netns(&ns.0).unwrap())
    } else {
        Box::new(NftCli {
            prefix: prefix.clone(),
        })
    };
    let mut proxier = Proxier::new(nft, ConntrackCli { prefix }, base.clone());

    let t = Instant::now();
    // `BENCH_CACHE=1`: keep every Service and EndpointSlice in the proxy's
    // watch cache and plan from it, as the agent does, so RSS includes it.
    let mut cache = std::env::var_os("BENCH_CACHE").map(|_| Cache::new("n1"));
    let mut desired: BTreeMap<String, Arc<ServicePlan>> = (0..n)
        .map(|i| {
            let key = format!("bench/svc-{i}");
            let p = match &mut cache {
                Some(c) => {
                    let (svc, slice) = service(i, 0);
                    c.service_event(Event::Apply(svc));
                    c.slice_event(Event::Apply(slice));
                    Arc::new(c.plan(&key, base).unwrap())
                }
                None => plan(i, 0, base),
            };
            (key, p)
        })
        .collect();
    let plan_time = t.elapsed();
    let all: BTreeSet<String> = desired.keys().cloned().collect();
    if std::env::var_os("BENCH_PHASES").is_some() {
        phases(&desired, base);
    }
    let t = Instant::now();
    let stats = proxier.sync(&desired, &all, Instant::now()).unwrap();
    let full = t.elapsed();

    // Median of a few single-Service additions.
    let mut adds = Vec::new();
    for k in 0..5 {
        let key = format!("bench/svc-{}", n + k);
        let t = Instant::now();
        desired.insert(key.clone(), plan(n + k, 0, base));
        proxier
            .sync(&desired, &BTreeSet::from([key]), Instant::now())
            .unwrap();
        adds.push(t.elapsed());
    }
    adds.sort();
    let add_one = adds[adds.len() / 2];
    if std::env::var_os("BENCH_VERBOSE").is_some() {
        println!("adds: {adds:?}");
    }

    // Median of a few endpoint changes of one Service.
    let mut changes = Vec::new();
    for k in 0..5 {
        let key = format!("bench/svc-{}", n / 2 + k);
        let t = Instant::now();
        desired.insert(key.clone(), plan(n / 2 + k, 1, base));
        proxier
            .sync(&desired, &BTreeSet::from([key]), Instant::now())
            .unwrap();
        changes.push(t.elapsed());
    }
    changes.sort();
    let change_one = changes[changes.len() / 2];

    println!(
        "| {applier} | {n} | {} | {} | {} | {} | {} | {} MiB | {} MiB |",
        ms(plan_time),
        ms(full),
        stats.rules,
        ms(add_one),
        ms(change_one),
        status_kib("VmRSS:") / 1024,
        status_kib("VmHWM:") / 1024,
    );
}
