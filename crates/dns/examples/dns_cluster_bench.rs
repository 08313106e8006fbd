//! Cluster DNS benchmark helper (`bench/dns/cluster.sh`), run inside the
//! benchmark's node namespace against a real `portico server`:
//!
//! - `load KUBECONFIG SERVICES ENDPOINTS HEADLESS_EVERY CONCURRENCY` writes
//!   the synthetic cluster through the API: namespaces `ns0..ns99`, Services
//!   `svc-N` (selectorless, ClusterIP `10.100.0.0 + N`, every
//!   HEADLESS_EVERY-th headless) and one EndpointSlice each with ENDPOINTS
//!   endpoints (kwok-style pods that exist only as endpoints, `10.128.0.0 + k`;
//!   a headless Service's endpoints carry hostnames `svc-N-J`).
//! - `serve KUBECONFIG ADDR` runs the node-local DNS exactly as an agent does
//!   (kube-rs watches, address on the node's `lo`/dummy) until stdin closes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use futures::{stream, StreamExt};
use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::PostParams;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client};
use portico_dns::{DnsConfig, DnsMetrics};
use serde_json::json;
use tokio::io::AsyncReadExt;

const NAMESPACES: usize = 100;

async fn client(path: &str) -> Client {
    let kc = Kubeconfig::read_from(Path::new(path)).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .unwrap();
    Client::try_from(config).unwrap()
}

fn arg(args: &[String], i: usize) -> &str {
    args.get(i)
        .map(String::as_str)
        .unwrap_or_else(|| panic!("missing argument {i}: see the file header"))
}

fn num(args: &[String], i: usize) -> usize {
    arg(args, i).parse().unwrap()
}

/// `base + offset` as an IPv4 address.
fn ip(base: [u8; 4], offset: usize) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::from(base)) + u32::try_from(offset).unwrap())
}

/// Creates `object`, treating "already exists" as done (reruns).
async fn create<K>(api: &Api<K>, object: serde_json::Value)
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + serde::Serialize,
{
    let object: K = serde_json::from_value(object).unwrap();
    for attempt in 0..5 {
        match api.create(&PostParams::default(), &object).await {
            Ok(_) => return,
            Err(kube::Error::Api(status)) if status.code == 409 => return,
            Err(e) if attempt < 4 => {
                eprintln!("retrying a create: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            Err(e) => panic!("create failed: {e}"),
        }
    }
}

async fn load(args: &[String]) {
    let client = client(arg(args, 2)).await;
    let (services, endpoints, headless_every, concurrency) =
        (num(args, 3), num(args, 4), num(args, 5), num(args, 6));
    let started = Instant::now();
    let namespaces: Api<Namespace> = Api::all(client.clone());
    for n in 0..NAMESPACES {
        create(&namespaces, json!({"metadata": {"name": format!("ns{n}")}})).await;
    }
    let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    stream::iter(0..services)
        .for_each_concurrent(concurrency, |i| {
            let (client, done) = (client.clone(), done.clone());
            async move {
                let namespace = format!("ns{}", i % NAMESPACES);
                let name = format!("svc-{i}");
                let headless = headless_every > 0 && i % headless_every == 0;
                let cluster_ip = if headless {
                    "None".to_string()
                } else {
                    ip([10, 100, 0, 0], i).to_string()
                };
                let svc: Api<Service> = Api::namespaced(client.clone(), &namespace);
                create(
                    &svc,
                    json!({
                        "metadata": {"name": name},
                        "spec": {"clusterIP": cluster_ip,
                                 "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}
                    }),
                )
                .await;
                let eps: Vec<_> = (0..endpoints)
                    .map(|j| {
                        let mut e = json!({
                            "addresses": [ip([10, 128, 0, 0], i * endpoints + j).to_string()],
                            "conditions": {"ready": true},
                        });
                        if headless {
                            e["hostname"] = json!(format!("{name}-{j}"));
                        }
                        e
                    })
                    .collect();
                let slices: Api<EndpointSlice> = Api::namespaced(client, &namespace);
                create(
                    &slices,
                    json!({
                        "metadata": {"name": format!("{name}-bench"),
                                     "labels": {"kubernetes.io/service-name": name,
                                                "endpointslice.kubernetes.io/managed-by": "bench"}},
                        "addressType": "IPv4",
                        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
                        "endpoints": eps,
                    }),
                )
                .await;
                let n = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                if n % 2000 == 0 {
                    eprintln!("{n} Services in {:.1} s", started.elapsed().as_secs_f64());
                }
            }
        })
        .await;
    println!(
        "loaded services={services} endpoints={} seconds={:.1}",
        services * endpoints,
        started.elapsed().as_secs_f64()
    );
}

async fn serve(args: &[String]) {
    let client = client(arg(args, 2)).await;
    let listen: SocketAddr = arg(args, 3).parse().unwrap();
    let SocketAddr::V4(v4) = listen else {
        panic!("IPv4 listen address expected")
    };
    portico_dns::prepare_node_local_address(*v4.ip()).unwrap();
    let config = DnsConfig {
        listen: vec![listen],
        // Nothing in this benchmark leaves the cluster; a dead upstream
        // keeps forwarding from ever reaching the machine's resolvers.
        upstreams: vec![SocketAddr::from(([127, 0, 0, 1], 9))],
        ..DnsConfig::default()
    };
    let metrics = DnsMetrics::default();
    let running = portico_dns::start(client, config, metrics.clone())
        .await
        .unwrap();
    println!("serving={}", running.local_addrs()[0]);
    // Progress for the script: Services in the published zone.
    tokio::spawn(async move {
        let mut last = -1;
        loop {
            let now = metrics.service_count();
            if now != last {
                println!("services={now}");
                last = now;
            }
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
    });
    let shutdown = async {
        let mut sink = Vec::new();
        let _ = tokio::io::stdin().read_to_end(&mut sink).await;
    };
    let result = running.wait(shutdown).await;
    portico_dns::remove_node_local_address(*v4.ip()).unwrap();
    result.unwrap();
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    match arg(&args, 1) {
        "load" => load(&args).await,
        "serve" => serve(&args).await,
        other => panic!("unknown mode {other}: load or serve"),
    }
}
