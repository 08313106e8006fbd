//! The whole component through its public entry point: `start` against a fake
//! Kubernetes API (an in-process tower service answering list and watch
//! requests), queried with real `dig` on loopback. Checks that the zone comes
//! from the API and that a watch event reaches answers within a second.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::channel::Sender;
use http_body_util::{Channel, Either, Full};
use portico_dns::{DnsConfig, DnsMetrics};
use serde_json::{json, Value};

/// Watch bodies kept open, by resource path; the test pushes events into them.
type Watches = Arc<Mutex<Vec<(String, Sender<Bytes>)>>>;

fn list(kind: &str, items: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "apiVersion": "v1", "kind": kind,
        "metadata": {"resourceVersion": "1"},
        "items": items
    }))
    .unwrap()
}

fn web_slice(second_ready: bool) -> Value {
    json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "web-1", "namespace": "ns1", "resourceVersion": "2",
                     "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": [
            {"addresses": ["10.244.1.5"], "hostname": "web-0", "conditions": {"ready": true}},
            {"addresses": ["10.244.2.6"], "hostname": "web-1", "conditions": {"ready": second_ready}}
        ]
    })
}

/// A fake API server: fixed lists, and watches that stay open.
fn fake_api(watches: Watches) -> kube::Client {
    let service = tower::service_fn(move |req: http::Request<kube::client::Body>| {
        let watches = watches.clone();
        async move {
            let path = req.uri().path().to_string();
            let query = req.uri().query().unwrap_or_default().to_string();
            let body = if query.contains("watch=true") {
                let (sender, body) = Channel::<Bytes>::new(16);
                watches.lock().unwrap().push((path, sender));
                Either::Left(body)
            } else {
                let bytes = match path.as_str() {
                    "/api/v1/services" => list(
                        "ServiceList",
                        json!([
                            {"metadata": {"name": "my-app-service", "namespace": "default"},
                             "spec": {"clusterIP": "10.96.0.20", "ports": [{"name": "http", "port": 80}]}},
                            {"metadata": {"name": "web", "namespace": "ns1"},
                             "spec": {"clusterIP": "None", "ports": [{"name": "http", "port": 80}]}}
                        ]),
                    ),
                    "/apis/discovery.k8s.io/v1/endpointslices" => {
                        list("EndpointSliceList", json!([web_slice(false)]))
                    }
                    "/api/v1/pods" => list("PodList", json!([])),
                    other => panic!("unexpected request {other}?{query}"),
                };
                Either::Right(Full::new(Bytes::from(bytes)))
            };
            Ok::<_, Infallible>(http::Response::new(body))
        }
    });
    kube::Client::new(service, "default")
}

async fn dig(addr: SocketAddr, args: &[&str]) -> String {
    let out = tokio::process::Command::new("dig")
        .args([
            "@127.0.0.1",
            "-p",
            &addr.port().to_string(),
            "+tries=1",
            "+time=1",
        ])
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

/// Polls `dig` until it prints `want`, for at most `limit`; returns the time taken.
async fn until(addr: SocketAddr, args: &[&str], want: &str, limit: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let got = dig(addr, args).await;
        if got == want {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "still {got:?} after {limit:?}, want {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn serves_the_cluster_from_the_api_and_follows_watch_events() {
    let watches: Watches = Arc::default();
    let client = fake_api(watches.clone());
    // An upstream that never answers: nothing here may leave loopback.
    let black_hole = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let config = DnsConfig {
        listen: vec!["127.0.0.1:0".parse().unwrap()],
        cluster_domain: "cluster.local".into(),
        ttl: 5,
        upstreams: vec![black_hole.local_addr().unwrap()],
    };
    let running = portico_dns::start(client, config, DnsMetrics::default())
        .await
        .unwrap();
    let addr = running.local_addrs()[0];
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(running.wait(async move {
        let _ = stopped.await;
    }));

    until(
        addr,
        &["+short", "my-app-service.default.svc.cluster.local"],
        "10.96.0.20",
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(
        dig(addr, &["+short", "web.ns1.svc.cluster.local"]).await,
        "10.244.1.5"
    );

    // The second endpoint becomes ready: one watch event, visible within a second.
    let event = json!({"type": "MODIFIED", "object": web_slice(true)});
    let mut line = serde_json::to_vec(&event).unwrap();
    line.push(b'\n');
    let mut sender = {
        let mut watches = watches.lock().unwrap();
        let i = watches
            .iter()
            .position(|(path, _)| path == "/apis/discovery.k8s.io/v1/endpointslices")
            .expect("the EndpointSlice watch is open");
        watches.remove(i).1
    };
    sender.send_data(Bytes::from(line)).await.unwrap();
    let took = until(
        addr,
        &["+short", "web.ns1.svc.cluster.local"],
        "10.244.1.5\n10.244.2.6",
        Duration::from_secs(1),
    )
    .await;
    assert!(took < Duration::from_secs(1), "{took:?}");
    assert_eq!(
        dig(addr, &["+short", "web-1.web.ns1.svc.cluster.local"]).await,
        "10.244.2.6"
    );

    stop.send(()).unwrap();
    serving.await.unwrap().unwrap();
    drop(sender);
}
