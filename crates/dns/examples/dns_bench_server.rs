//! Benchmark server: plans a synthetic cluster (N Services, M endpoints each,
//! some headless) straight into the planner, reports memory, and serves it on
//! loopback until stdin closes. Used by `bench/dns/run.sh`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};
use portico_dns::model::{EndpointInfo, PortInfo, ServiceInfo, ServiceKind, SliceInfo};
use portico_dns::wire::Transport;
use portico_dns::{Change, DnsMetrics, DnsServer, Handler, Planner};
use tokio::io::AsyncReadExt;

fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(default)
}

fn ip(base: u32, i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(base + u32::try_from(i).unwrap()))
}

#[tokio::main]
async fn main() {
    let services = arg("--services", 10_000);
    let per_service = arg("--endpoints", 10);
    let headless_every = arg("--headless-every", 10);
    let port = u16::try_from(arg("--port", 0)).unwrap();

    let before = rss_kb();
    let start = std::time::Instant::now();
    let mut planner = Planner::new("cluster.local", 5).unwrap();
    let mut endpoint = 0usize;
    for i in 0..services {
        let namespace = format!("ns{}", i % 100);
        let name = format!("svc-{i}");
        let headless = headless_every > 0 && i % headless_every == 0;
        let endpoints = (0..per_service)
            .map(|j| {
                endpoint += 1;
                EndpointInfo {
                    addresses: [ip(0x0AF4_0000, endpoint)].into_iter().collect(),
                    hostname: headless.then(|| format!("{name}-{j}").into()),
                    ready: true,
                }
            })
            .collect();
        planner.apply(Change::UpsertSlice(SliceInfo {
            namespace: namespace.clone(),
            name: format!("{name}-abcde"),
            service: name.clone(),
            ports: vec![PortInfo {
                name: "http".into(),
                protocol: "tcp".into(),
                port: 8080,
            }],
            endpoints,
        }));
        planner.apply(Change::UpsertService(ServiceInfo {
            namespace,
            name,
            kind: if headless {
                ServiceKind::Headless
            } else {
                ServiceKind::ClusterIp(vec![ip(0x0A60_0100, i)])
            },
            ports: vec![PortInfo {
                name: "http".into(),
                protocol: "tcp".into(),
                port: 80,
            }],
            publish_not_ready: false,
        }));
    }
    let planned = start.elapsed();
    let after = rss_kb();
    let handler = Arc::new(Handler::new(
        planner.zone().clone(),
        vec![],
        DnsMetrics::default(),
    ));

    // In-process cost of one query (parse, answer, encode, metrics), without sockets.
    let queries: Vec<Vec<u8>> = (0..1000)
        .map(|i| {
            let i = (i * 7919) % services;
            let name = match i % 3 {
                0 => format!("svc-{i}.ns{}.svc.cluster.local.", i % 100),
                1 => format!(
                    "svc-{i}.ns{0}.svc.cluster.local.ns{0}.svc.cluster.local.",
                    i % 100
                ),
                _ => format!("_http._tcp.svc-{i}.ns{}.svc.cluster.local.", i % 100),
            };
            let qtype = if i % 3 == 2 {
                RecordType::SRV
            } else {
                RecordType::A
            };
            let mut m = Message::new(1, MessageType::Query, OpCode::Query);
            m.add_query(Query::query(Name::from_ascii(&name).unwrap(), qtype));
            m.to_vec().unwrap()
        })
        .collect();
    let rounds = 300;
    let t = std::time::Instant::now();
    for _ in 0..rounds {
        for q in &queries {
            std::hint::black_box(handler.handle(q, Transport::Udp).await);
        }
    }
    let per_query = t.elapsed() / (rounds * 1000);
    // The same questions through the UDP workers' fast path (no sockets).
    let mut out = Vec::with_capacity(512);
    let t = std::time::Instant::now();
    for _ in 0..rounds {
        for q in &queries {
            if !handler.answer_udp(q, &mut out) {
                std::hint::black_box(handler.handle(q, Transport::Udp).await);
            }
            std::hint::black_box(&out);
        }
    }
    let fast_per_query = t.elapsed() / (rounds * 1000);
    let listen: SocketAddr = SocketAddr::from(([127, 0, 0, 1], port));
    let server = DnsServer::start(&[listen], handler).await.unwrap();
    println!(
        "listening={} services={services} endpoints={endpoint} plan_ms={} rss_before_kb={before} rss_after_kb={after} in_process_ns_per_query={} fast_path_ns_per_query={}",
        server.local_addrs()[0],
        planned.as_millis(),
        per_query.as_nanos(),
        fast_per_query.as_nanos()
    );
    // Serve until the benchmark script closes our stdin.
    let mut sink = Vec::new();
    let _ = tokio::io::stdin().read_to_end(&mut sink).await;
    println!("rss_end_kb={}", rss_kb());
    server.shutdown().await;
}
