//! End-to-end tests of the DNS server on loopback: a static zone, queried with
//! hickory's client and with real `dig`, and a tiny upstream server of the
//! test's own for forwarding and caching. No traffic leaves loopback.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use hickory_net::client::{Client, ClientHandle};
use hickory_net::runtime::TokioRuntimeProvider;
use hickory_net::tcp::TcpClientStream;
use hickory_net::udp::UdpClientStream;
use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::{A, SOA};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use portico_dns::{plan, DnsMetrics, DnsServer, Handler};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UdpSocket;

/// A loopback upstream that knows `api.example.test` and counts its queries.
struct FakeUpstream {
    addr: SocketAddr,
    queries: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The fake upstream's answer: `api.example.test` A 192.0.2.10;
/// `big.example.test` 3 A records but truncated (TC, no answers) over UDP;
/// NXDOMAIN with an SOA for anything else.
fn upstream_answer(request: &Message, tcp: bool) -> Message {
    let mut response = Message::new(
        request.metadata.id,
        MessageType::Response,
        request.metadata.op_code,
    );
    response.metadata.recursion_desired = request.metadata.recursion_desired;
    response.metadata.recursion_available = true;
    response.add_queries(request.queries.clone());
    let q = &request.queries[0];
    let name = q.name().to_ascii().to_ascii_lowercase();
    if name == "api.example.test." {
        if q.query_type() == RecordType::A {
            response.add_answer(Record::from_rdata(
                q.name().clone(),
                300,
                RData::A(A::new(192, 0, 2, 10)),
            ));
        }
    } else if name == "big.example.test." {
        if tcp {
            for i in 1..=3 {
                response.add_answer(Record::from_rdata(
                    q.name().clone(),
                    300,
                    RData::A(A::new(192, 0, 2, i)),
                ));
            }
        } else {
            response.metadata.truncation = true;
        }
    } else {
        response.metadata.response_code = ResponseCode::NXDomain;
        let soa = SOA::new(
            Name::from_ascii("ns.example.test.").unwrap(),
            Name::from_ascii("h.example.test.").unwrap(),
            1,
            60,
            60,
            60,
            30,
        );
        response.add_authority(Record::from_rdata(
            Name::from_ascii("example.test.").unwrap(),
            30,
            RData::SOA(soa),
        ));
    }
    response
}

async fn fake_upstream() -> FakeUpstream {
    // UDP and TCP on the same ephemeral port number: the TCP port may be taken
    // by someone else, so try a few UDP ports.
    let mut bound = None;
    for _ in 0..32 {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        if let Ok(listener) = tokio::net::TcpListener::bind(addr).await {
            bound = Some((socket, addr, listener));
            break;
        }
    }
    let (socket, addr, listener) = bound.expect("a port free for both UDP and TCP");
    let queries = Arc::new(AtomicUsize::new(0));
    let counter = queries.clone();
    let task = tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        loop {
            tokio::select! {
                received = socket.recv_from(&mut buf) => {
                    let (n, peer) = received.unwrap();
                    counter.fetch_add(1, Ordering::SeqCst);
                    let request = Message::from_vec(&buf[..n]).unwrap();
                    let response = upstream_answer(&request, false);
                    socket.send_to(&response.to_vec().unwrap(), peer).await.unwrap();
                }
                accepted = listener.accept() => {
                    let (mut stream, _) = accepted.unwrap();
                    counter.fetch_add(1, Ordering::SeqCst);
                    let len = stream.read_u16().await.unwrap();
                    let mut msg = vec![0u8; usize::from(len)];
                    stream.read_exact(&mut msg).await.unwrap();
                    let request = Message::from_vec(&msg).unwrap();
                    let bytes = upstream_answer(&request, true).to_vec().unwrap();
                    stream.write_u16(u16::try_from(bytes.len()).unwrap()).await.unwrap();
                    stream.write_all(&bytes).await.unwrap();
                }
            }
        }
    });
    FakeUpstream {
        addr,
        queries,
        task,
    }
}

fn zone() -> portico_dns::Zone {
    let services: Vec<Service> = [
        json!({"metadata": {"name": "my-app-service", "namespace": "default"},
               "spec": {"clusterIP": "10.96.0.20", "ports": [{"name": "http", "port": 80}]}}),
        json!({"metadata": {"name": "web", "namespace": "ns1"},
               "spec": {"clusterIP": "None", "ports": [{"name": "http", "port": 80}]}}),
        json!({"metadata": {"name": "big", "namespace": "ns1"}, "spec": {"clusterIP": "None"}}),
        json!({"metadata": {"name": "ext", "namespace": "default"},
               "spec": {"type": "ExternalName", "externalName": "api.example.test"}}),
    ]
    .into_iter()
    .map(|v| serde_json::from_value(v).unwrap())
    .collect();
    let big_endpoints: Vec<_> = (1..=100)
        .map(|i| json!({"addresses": [format!("10.244.7.{i}")]}))
        .collect();
    let slices: Vec<EndpointSlice> = [
        json!({"metadata": {"name": "web-1", "namespace": "ns1",
                            "labels": {"kubernetes.io/service-name": "web"}},
               "addressType": "IPv4", "ports": [{"name": "http", "port": 8080}],
               "endpoints": [{"addresses": ["10.244.1.5"], "hostname": "web-0"},
                             {"addresses": ["10.244.2.6"]}]}),
        json!({"metadata": {"name": "big-1", "namespace": "ns1",
                            "labels": {"kubernetes.io/service-name": "big"}},
               "addressType": "IPv4", "endpoints": big_endpoints}),
    ]
    .into_iter()
    .map(|v| serde_json::from_value(v).unwrap())
    .collect();
    plan(&services, &slices, &[], "cluster.local", 5).unwrap()
}

struct Fixture {
    server: DnsServer,
    upstream: FakeUpstream,
    metrics: DnsMetrics,
}

impl Fixture {
    fn port(&self) -> u16 {
        self.server.local_addrs()[0].port()
    }
    fn addr(&self) -> SocketAddr {
        self.server.local_addrs()[0]
    }
}

async fn fixture() -> Fixture {
    let upstream = fake_upstream().await;
    let metrics = DnsMetrics::default();
    let handler = Arc::new(Handler::new(zone(), vec![upstream.addr], metrics.clone()));
    let server = DnsServer::start(&["127.0.0.1:0".parse().unwrap()], handler)
        .await
        .unwrap();
    Fixture {
        server,
        upstream,
        metrics,
    }
}

/// Runs dig against the fixture and returns its stdout with whitespace runs collapsed.
async fn dig(f: &Fixture, args: &[&str]) -> String {
    let port = f.port().to_string();
    let out = tokio::process::Command::new("dig")
        .args(["@127.0.0.1", "-p", &port, "+tries=1", "+time=2"])
        .args(args)
        .output()
        .await
        .expect("dig is installed");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn dig_answers_every_record_type_exactly() {
    let f = fixture().await;
    assert_eq!(
        dig(
            &f,
            &[
                "+noall",
                "+answer",
                "my-app-service.default.svc.cluster.local"
            ]
        )
        .await,
        "my-app-service.default.svc.cluster.local. 5 IN A 10.96.0.20"
    );
    assert_eq!(
        dig(
            &f,
            &[
                "+noall",
                "+answer",
                "MY-APP-SERVICE.Default.svc.CLUSTER.local",
                "A"
            ]
        )
        .await,
        "MY-APP-SERVICE.Default.svc.CLUSTER.local. 5 IN A 10.96.0.20",
        "case-insensitive, and the answer echoes the question's case"
    );
    assert_eq!(
        dig(&f, &["+noall", "+answer", "+additional", "_http._tcp.my-app-service.default.svc.cluster.local", "SRV"]).await,
        "_http._tcp.my-app-service.default.svc.cluster.local. 5 IN SRV 0 100 80 my-app-service.default.svc.cluster.local.\n\
         my-app-service.default.svc.cluster.local. 5 IN A 10.96.0.20"
    );
    assert_eq!(
        dig(&f, &["+noall", "+answer", "web.ns1.svc.cluster.local"]).await,
        "web.ns1.svc.cluster.local. 5 IN A 10.244.1.5\nweb.ns1.svc.cluster.local. 5 IN A 10.244.2.6"
    );
    assert_eq!(
        dig(
            &f,
            &["+noall", "+answer", "web-0.web.ns1.svc.cluster.local"]
        )
        .await,
        "web-0.web.ns1.svc.cluster.local. 5 IN A 10.244.1.5"
    );
    assert_eq!(
        dig(&f, &["+noall", "+answer", "_http._tcp.web.ns1.svc.cluster.local", "SRV"]).await,
        "_http._tcp.web.ns1.svc.cluster.local. 5 IN SRV 0 50 8080 10-244-2-6.web.ns1.svc.cluster.local.\n\
         _http._tcp.web.ns1.svc.cluster.local. 5 IN SRV 0 50 8080 web-0.web.ns1.svc.cluster.local."
    );
    assert_eq!(
        dig(&f, &["+noall", "+answer", "-x", "10.96.0.20"]).await,
        "20.0.96.10.in-addr.arpa. 5 IN PTR my-app-service.default.svc.cluster.local."
    );
    assert_eq!(
        dig(&f, &["+noall", "+answer", "-x", "10.244.1.5"]).await,
        "5.1.244.10.in-addr.arpa. 5 IN PTR web-0.web.ns1.svc.cluster.local."
    );
    assert_eq!(
        dig(
            &f,
            &["+noall", "+answer", "dns-version.cluster.local", "TXT"]
        )
        .await,
        "dns-version.cluster.local. 5 IN TXT \"1.1.0\""
    );
    assert_eq!(
        dig(
            &f,
            &[
                "+noall",
                "+answer",
                "ext.default.svc.cluster.local",
                "CNAME"
            ]
        )
        .await,
        "ext.default.svc.cluster.local. 5 IN CNAME api.example.test."
    );
}

#[tokio::test]
async fn dig_sees_nxdomain_and_nodata_with_the_soa() {
    let f = fixture().await;
    let nx = dig(
        &f,
        &[
            "+noall",
            "+comments",
            "+authority",
            "missing.default.svc.cluster.local",
        ],
    )
    .await;
    assert!(nx.contains("status: NXDOMAIN"), "{nx}");
    assert!(nx.contains("flags: qr aa rd ra"), "{nx}");
    assert!(
        nx.contains("cluster.local. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. 1 7200 1800 86400 5"),
        "{nx}"
    );
    let nodata = dig(
        &f,
        &[
            "+noall",
            "+comments",
            "my-app-service.default.svc.cluster.local",
            "AAAA",
        ],
    )
    .await;
    assert!(nodata.contains("status: NOERROR"), "{nodata}");
    assert!(nodata.contains("ANSWER: 0, AUTHORITY: 1"), "{nodata}");
}

#[tokio::test]
async fn udp_truncates_and_dig_retries_over_tcp() {
    let f = fixture().await;
    let truncated = dig(
        &f,
        &[
            "+ignore",
            "+noedns",
            "+noall",
            "+comments",
            "big.ns1.svc.cluster.local",
        ],
    )
    .await;
    assert!(truncated.contains("flags: qr aa tc rd ra"), "{truncated}");
    assert!(truncated.contains("ANSWER: 0"), "{truncated}");
    let full = dig(
        &f,
        &["+noedns", "+noall", "+answer", "big.ns1.svc.cluster.local"],
    )
    .await;
    assert_eq!(full.lines().count(), 100, "{full}");
    let tcp = dig(
        &f,
        &["+tcp", "+noall", "+answer", "big.ns1.svc.cluster.local"],
    )
    .await;
    assert_eq!(tcp.lines().count(), 100);
}

#[tokio::test]
async fn hickory_client_over_udp_and_tcp() {
    let f = fixture().await;
    let name = Name::from_str("my-app-service.default.svc.cluster.local.").unwrap();

    let conn = UdpClientStream::builder(f.addr(), TokioRuntimeProvider::default()).build();
    let (mut udp, bg) = Client::<TokioRuntimeProvider>::from_sender(conn);
    tokio::spawn(bg);
    let response = udp
        .query(name.clone(), DNSClass::IN, RecordType::A)
        .await
        .unwrap();
    assert!(response.metadata.authoritative);
    assert_eq!(response.answers.len(), 1);
    assert_eq!(response.answers[0].ttl, 5);
    assert_eq!(response.answers[0].data, RData::A(A::new(10, 96, 0, 20)));

    let (stream, sender) = TcpClientStream::new(f.addr(), None, None, TokioRuntimeProvider::new());
    let (mut tcp, bg) = Client::<TokioRuntimeProvider>::new(stream.await.unwrap(), sender);
    tokio::spawn(bg);
    let srv_name = Name::from_str("_http._tcp.web.ns1.svc.cluster.local.").unwrap();
    let response = tcp
        .query(srv_name, DNSClass::IN, RecordType::SRV)
        .await
        .unwrap();
    assert_eq!(response.answers.len(), 2);
    assert_eq!(response.additionals.len(), 2);

    assert_eq!(
        f.metrics
            .query_count(RecordType::A, ResponseCode::NoError, false),
        1
    );
    assert_eq!(
        f.metrics
            .query_count(RecordType::SRV, ResponseCode::NoError, true),
        1
    );
}

#[tokio::test]
async fn names_outside_the_zone_are_forwarded_once_and_then_cached() {
    let f = fixture().await;
    let first = dig(&f, &["+noall", "+answer", "api.example.test"]).await;
    assert_eq!(first, "api.example.test. 300 IN A 192.0.2.10");
    let second = dig(&f, &["+noall", "+answer", "api.example.test"]).await;
    assert!(second.starts_with("api.example.test. "), "{second}");
    assert!(second.ends_with(" IN A 192.0.2.10"), "{second}");
    assert_eq!(f.upstream.queries.load(Ordering::SeqCst), 1);
    assert_eq!(f.metrics.cache_hit_count(), 1);

    // The ExternalName's target comes from the (cached) upstream answer.
    assert_eq!(
        dig(&f, &["+noall", "+answer", "ext.default.svc.cluster.local"]).await,
        "ext.default.svc.cluster.local. 5 IN CNAME api.example.test.\napi.example.test. 300 IN A 192.0.2.10"
            .replace("300", second.split(' ').nth(1).unwrap())
    );

    let nx = dig(&f, &["+noall", "+comments", "nothing.example.test"]).await;
    assert!(nx.contains("status: NXDOMAIN"), "{nx}");
    assert!(
        !nx.contains(" aa "),
        "forwarded answers are not authoritative: {nx}"
    );
    assert_eq!(f.upstream.queries.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn search_path_expansions_never_reach_the_upstream() {
    let f = fixture().await;
    for name in [
        "api.example.test.default.svc.cluster.local",
        "api.example.test.svc.cluster.local",
        "api.example.test.cluster.local",
        "my-app-service.default.svc.cluster.local.default.svc.cluster.local",
    ] {
        let out = dig(&f, &["+noall", "+comments", name]).await;
        assert!(out.contains("status: NXDOMAIN"), "{name}: {out}");
    }
    assert_eq!(f.upstream.queries.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_published_zone_is_served_immediately() {
    let f = fixture().await;
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"name": "late", "namespace": "default"},
        "spec": {"clusterIP": "10.96.0.99"}
    }))
    .unwrap();
    let zone = plan(&[svc], &[], &[], "cluster.local", 5).unwrap();
    f.server.handler().publish(Arc::new(zone));
    assert_eq!(
        dig(&f, &["+short", "late.default.svc.cluster.local"]).await,
        "10.96.0.99"
    );
}

#[tokio::test]
async fn truncated_upstream_answers_are_refetched_over_tcp() {
    let f = fixture().await;
    assert_eq!(
        dig(&f, &["+noall", "+answer", "big.example.test"]).await,
        "big.example.test. 300 IN A 192.0.2.1\n\
         big.example.test. 300 IN A 192.0.2.2\n\
         big.example.test. 300 IN A 192.0.2.3"
    );
    // One UDP exchange (truncated) and one TCP exchange.
    assert_eq!(f.upstream.queries.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn cluster_names_get_servfail_until_the_zone_is_synced() {
    let upstream = fake_upstream().await;
    let metrics = DnsMetrics::default();
    let handler = Arc::new(Handler::unsynced(
        portico_dns::Zone::new("cluster.local", 5).unwrap(),
        vec![upstream.addr],
        metrics.clone(),
    ));
    let server = DnsServer::start(&["127.0.0.1:0".parse().unwrap()], handler.clone())
        .await
        .unwrap();
    let f = Fixture {
        server,
        upstream,
        metrics,
    };
    let before = dig(
        &f,
        &[
            "+noall",
            "+comments",
            "my-app-service.default.svc.cluster.local",
        ],
    )
    .await;
    assert!(before.contains("status: SERVFAIL"), "{before}");
    // Names outside the zone are served meanwhile.
    assert_eq!(dig(&f, &["+short", "api.example.test"]).await, "192.0.2.10");
    handler.publish(Arc::new(zone()));
    assert_eq!(
        dig(&f, &["+short", "my-app-service.default.svc.cluster.local"]).await,
        "10.96.0.20"
    );
}

#[tokio::test]
async fn without_upstreams_external_names_get_servfail() {
    let upstream = fake_upstream().await;
    let metrics = DnsMetrics::default();
    let handler = Arc::new(Handler::new(zone(), vec![], metrics.clone()));
    let server = DnsServer::start(&["127.0.0.1:0".parse().unwrap()], handler)
        .await
        .unwrap();
    let f = Fixture {
        server,
        upstream,
        metrics,
    };
    let out = dig(&f, &["+noall", "+comments", "api.example.test"]).await;
    assert!(out.contains("status: SERVFAIL"), "{out}");
    assert_eq!(
        f.metrics
            .query_count(RecordType::A, ResponseCode::ServFail, false),
        1
    );
}
