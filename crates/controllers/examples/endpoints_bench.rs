//! EndpointSlice benchmark: the real API server in-process, the controllers over kube-rs,
//! synthetic Ready pods (as kwok would report them). Measures the time from the first write
//! to every Service's slices listing all its pods ready, then the delay from one pod's
//! readiness change to its slice update (p50/p99).
//!
//! `cargo run --release -p portico-controllers --example endpoints_bench -- SERVICES PODS_PER_SERVICE SAMPLES`
//! (defaults: 1000 10 200).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::{reflector, watcher, WatchStreamExt};
use kube::{Api, Client};
use serde_json::json;

fn arg(i: usize, default: usize) -> usize {
    std::env::args()
        .nth(i)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

fn pod_status(ip: &str, ready: bool) -> serde_json::Value {
    let now = jiff::Timestamp::now().to_string();
    let r = if ready { "True" } else { "False" };
    json!({"status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
        "conditions": [{"type": "Ready", "status": r, "lastTransitionTime": now}]}})
}

/// Ready endpoints per Service, from the slice cache.
fn ready_counts(store: &reflector::Store<EndpointSlice>) -> HashMap<String, usize> {
    let mut m: HashMap<String, usize> = HashMap::new();
    for s in store.state() {
        let Some(svc) = s
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("kubernetes.io/service-name"))
        else {
            continue;
        };
        let ready = s
            .endpoints
            .iter()
            .filter(|e| e.conditions.as_ref().and_then(|c| c.ready) == Some(true))
            .count();
        *m.entry(svc.clone()).or_default() += ready;
    }
    m
}

#[tokio::main]
async fn main() {
    let services = arg(1, 1000);
    let per = arg(2, 10);
    let samples = arg(3, 200);
    let dir = tempfile::tempdir().unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut cfg =
        portico_apiserver::ServerConfig::new(dir.path(), format!("https://127.0.0.1:{port}"));
    cfg.listeners = vec![listener];
    let prepared = portico_apiserver::prepare(&cfg).unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(portico_apiserver::run(cfg, async move {
        let _ = stop_rx.await;
    }));
    let kc = kube::config::Kubeconfig::read_from(&prepared.kubeconfig_path).unwrap();
    let kcfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    let client = Client::try_from(kcfg).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Api::<Service>::namespaced(client.clone(), "default")
        .list(&Default::default())
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "server not ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let nodes: Api<Node> = Api::all(client.clone());
    for n in 0..10 {
        let node: Node =
            serde_json::from_value(json!({"metadata": {"name": format!("node-{n}")}})).unwrap();
        nodes.create(&PostParams::default(), &node).await.unwrap();
    }
    let (ctl_tx, ctl_rx) = tokio::sync::oneshot::channel::<()>();
    let ctl = tokio::spawn(portico_controllers::run(
        client.clone(),
        portico_controllers::ControllersConfig {
            node_lease_timeout: Duration::from_secs(3600),
            ..Default::default()
        },
        async move {
            let _ = ctl_rx.await;
        },
    ));
    let (store, writer) = reflector::store::<EndpointSlice>();
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
    tokio::spawn(
        watcher(slices, watcher::Config::default())
            .default_backoff()
            .reflect(writer)
            .for_each(|_| async {}),
    );

    let start = Instant::now();
    let svc_api: Api<Service> = Api::namespaced(client.clone(), "default");
    let pod_api: Api<Pod> = Api::namespaced(client.clone(), "default");
    futures::stream::iter(0..services)
        .map(|i| {
            let svc_api = svc_api.clone();
            async move {
                let svc: Service =
                    serde_json::from_value(json!({"metadata": {"name": format!("svc-{i}")},
                    "spec": {"selector": {"app": format!("app-{i}")}, "ports": [{"port": 80}]}}))
                    .unwrap();
                svc_api.create(&PostParams::default(), &svc).await.unwrap();
            }
        })
        .buffer_unordered(64)
        .collect::<Vec<_>>()
        .await;
    let total = services * per;
    futures::stream::iter(0..total)
        .map(|k| {
            let pod_api = pod_api.clone();
            async move {
                let (i, j) = (k / per, k % per);
                let name = format!("pod-{i}-{j}");
                let ip = format!("10.{}.{}.{}", 64 + k / 65536, (k / 256) % 256, k % 256);
                let pod: Pod = serde_json::from_value(json!({"metadata": {"name": name, "labels": {"app": format!("app-{i}")}},
                    "spec": {"nodeName": format!("node-{}", k % 10), "containers": [{"name": "c", "image": "x"}]}}))
                .unwrap();
                pod_api.create(&PostParams::default(), &pod).await.unwrap();
                pod_api
                    .patch_status(&name, &PatchParams::default(), &Patch::Merge(&pod_status(&ip, true)))
                    .await
                    .unwrap();
            }
        })
        .buffer_unordered(128)
        .collect::<Vec<_>>()
        .await;
    let written = start.elapsed();
    loop {
        let counts = ready_counts(&store);
        if counts.values().filter(|c| **c == per).count() == services {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let converged = start.elapsed();
    println!("{services} Services x {per} pods = {total} pods");
    println!(
        "writes done after {:.2}s; all slices correct after {:.2}s ({:.2}s after the last write)",
        written.as_secs_f64(),
        converged.as_secs_f64(),
        (converged - written).as_secs_f64()
    );

    // Readiness flips: one pod at a time, time until its slice says so.
    let mut lat = Vec::with_capacity(samples);
    for s in 0..samples {
        let k = (s * 7919) % total;
        let (i, j) = (k / per, k % per);
        let ip = format!("10.{}.{}.{}", 64 + k / 65536, (k / 256) % 256, k % 256);
        let svc = format!("svc-{i}");
        let t0 = Instant::now();
        pod_api
            .patch_status(
                &format!("pod-{i}-{j}"),
                &PatchParams::default(),
                &Patch::Merge(&pod_status(&ip, false)),
            )
            .await
            .unwrap();
        while ready_counts(&store).get(&svc).copied() != Some(per - 1) {
            tokio::task::yield_now().await;
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        lat.push(t0.elapsed());
        pod_api
            .patch_status(
                &format!("pod-{i}-{j}"),
                &PatchParams::default(),
                &Patch::Merge(&pod_status(&ip, true)),
            )
            .await
            .unwrap();
        while ready_counts(&store).get(&svc).copied() != Some(per) {
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
    }
    lat.sort();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    println!(
        "readiness change -> slice update over {samples} samples: p50 {:?}, p99 {:?}, max {:?}",
        pct(0.50),
        pct(0.99),
        lat[lat.len() - 1]
    );
    let _ = ctl_tx.send(());
    let _ = stop_tx.send(());
    let _ = ctl.await;
    let _ = server.await;
}
