//! kill -9 of a server process in the middle of 200 concurrent NodePort Service
//! creates: after a restart every acknowledged Service is there and no port or
//! ClusterIP is held twice.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{client_for, nodeport_svc};
use http::Method;
use http_body_util::BodyExt;
use serde_json::Value;

const CHILD_ENV: &str = "PORTICO_APISERVER_CRASH_CHILD_DIR";

/// Child half: serves the API from the given data dir until killed, printing its URL.
#[test]
fn crash_child_server() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return; // Only runs when re-executed by the parent test.
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let cfg = common::config(std::path::Path::new(&dir), listener);
        let url = cfg.advertise_url.clone();
        portico_apiserver::prepare(&cfg).unwrap();
        // Write to the real stdout (print macros are captured by the test harness).
        use std::io::Write;
        let mut out = std::io::stdout();
        writeln!(out, "URL {url}").unwrap();
        out.flush().unwrap();
        portico_apiserver::run(cfg, std::future::pending())
            .await
            .unwrap();
    });
}

/// Kills the child server (SIGKILL) when dropped, also when the test fails.
struct ChildGuard(std::process::Child);

impl ChildGuard {
    fn kill9(&mut self) {
        self.0.kill().unwrap();
        self.0.wait().unwrap();
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_child(dir: &PathBuf) -> ChildGuard {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "crash_child_server",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let guard = ChildGuard(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            // libtest may print "test name ... " on the same line first.
            if line.contains("URL https://") {
                let _ = tx.send(line);
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(60))
        .expect("child server did not start");
    guard
}

async fn send(
    client: &kube::Client,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> Option<(u16, Value)> {
    let bytes = body
        .map(|b| serde_json::to_vec(b).unwrap())
        .unwrap_or_default();
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json")
        .body(kube::client::Body::from(bytes))
        .unwrap();
    let resp = client.send(req).await.ok()?;
    let code = resp.status().as_u16();
    let b = resp.into_body().collect().await.ok()?.to_bytes();
    Some((code, serde_json::from_slice(&b).unwrap_or(Value::Null)))
}

async fn wait_ready(client: &kube::Client) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Some((200, _)) = send(client, Method::GET, "/api/v1/namespaces/default", None).await
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("server not ready");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill9_mid_nodeport_creates_keeps_acknowledged_services_and_unique_ports() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let mut child = spawn_child(&dir);
    let client = client_for(&dir.join("kubeconfig.yaml")).await;
    wait_ready(&client).await;

    let acked = Arc::new(std::sync::Mutex::new(
        HashMap::<String, (u64, String)>::new(),
    ));
    let mut tasks = Vec::new();
    for i in 0..200 {
        let client = client.clone();
        let acked = acked.clone();
        tasks.push(tokio::spawn(async move {
            let name = format!("crash-{i}");
            if let Some((201, svc)) = send(
                &client,
                Method::POST,
                "/api/v1/namespaces/default/services",
                Some(&nodeport_svc(&name, None)),
            )
            .await
            {
                let port = svc["spec"]["ports"][0]["nodePort"].as_u64().unwrap();
                let ip = svc["spec"]["clusterIP"].as_str().unwrap().to_string();
                acked.lock().unwrap().insert(name, (port, ip));
            }
        }));
    }
    // Kill once some (not all) creates have been acknowledged.
    let deadline = Instant::now() + Duration::from_secs(30);
    while acked.lock().unwrap().len() < 40 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    child.kill9();
    for t in tasks {
        t.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= 40,
        "only {} creates acknowledged",
        acked.len()
    );
    eprintln!("acknowledged before kill -9: {} of 200", acked.len());

    let mut child = spawn_child(&dir);
    let client = client_for(&dir.join("kubeconfig.yaml")).await;
    wait_ready(&client).await;
    let (code, list) = send(&client, Method::GET, "/api/v1/services", None)
        .await
        .unwrap();
    assert_eq!(code, 200);
    let items = list["items"].as_array().unwrap();
    let by_name: HashMap<String, &Value> = items
        .iter()
        .map(|s| (s["metadata"]["name"].as_str().unwrap().to_string(), s))
        .collect();
    for (name, (port, ip)) in &acked {
        let svc = by_name
            .get(name)
            .unwrap_or_else(|| panic!("acknowledged service {name} lost"));
        assert_eq!(svc["spec"]["ports"][0]["nodePort"].as_u64().unwrap(), *port);
        assert_eq!(svc["spec"]["clusterIP"].as_str().unwrap(), ip);
    }
    let mut ports = HashSet::new();
    let mut ips = HashSet::new();
    for s in items {
        if let Some(p) = s["spec"]["ports"][0]["nodePort"].as_u64() {
            assert!(ports.insert(p), "nodePort {p} held twice");
        }
        let ip = s["spec"]["clusterIP"].as_str().unwrap().to_string();
        assert!(ips.insert(ip.clone()), "clusterIP {ip} held twice");
    }
    // The allocator agrees with the objects: a surviving port cannot be taken again,
    // and new creates still succeed.
    let (taken_name, (taken_port, _)) = acked.iter().next().unwrap();
    let (code, st) = send(
        &client,
        Method::POST,
        "/api/v1/namespaces/default/services",
        Some(&nodeport_svc("again", Some(*taken_port as u16))),
    )
    .await
    .unwrap();
    assert_eq!(code, 422, "{taken_name}: {st}");
    let (code, _) = send(
        &client,
        Method::POST,
        "/api/v1/namespaces/default/services",
        Some(&nodeport_svc("fresh", None)),
    )
    .await
    .unwrap();
    assert_eq!(code, 201);
    child.kill9();
}
