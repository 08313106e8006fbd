//! EndpointSlice benchmark: the real API server in-process, the controllers over kube-rs,
//! synthetic Ready pods (as kwok would report them). Splits where the time goes:
//!
//! * `cold` — every Service and Ready pod is written first, with the controllers stopped (a
//!   cluster as kwok leaves it, or a controller-manager restart); then the controllers start:
//!   time from their start (list + reconcile everything) to every slice and Endpoints correct.
//! * `services` — the Ready pods exist, the controllers run (warmed up); then the Services are
//!   created: time from the first Service write to every slice and Endpoints correct.
//! * `empty` — the controllers run on an empty cluster; Services, then pods (create + status
//!   write) are written: time from the first write to all correct, pod writes included.
//!
//! Afterwards (steady state) one pod at a time turns unready: the delay from the status write
//! to its slice update as seen by a watch (p50/p99), samples `SPACING_MS` apart.
//!
//! `cargo run --release -p portico-controllers --example endpoints_bench -- MODE SERVICES PODS_PER_SERVICE SAMPLES [SPACING_MS]`
//! (defaults: cold 1000 10 200 50). The bench writes over HTTP/2, many requests in flight.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Endpoints, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Patch, PatchParams, PostParams};
use kube::client::ConfigExt;
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use tokio::sync::Notify;

const NS: &str = "default";
/// Requests in flight while the bench writes (over one HTTP/2 connection).
const IN_FLIGHT: usize = 256;

/// Per-Service counts kept up to date from watches of slices and Endpoints.
#[derive(Default)]
struct Counts {
    /// Ready endpoints each Service should end with.
    want: HashMap<String, usize>,
    /// slice name -> (Service, ready endpoints)
    slices: HashMap<String, (String, usize)>,
    slice_ready: HashMap<String, usize>,
    ep_ready: HashMap<String, usize>,
    ok_slices: usize,
    ok_eps: usize,
    /// When a Service's slice counts last changed (watch event arrival).
    slice_changed: HashMap<String, Instant>,
}

impl Counts {
    fn set(&mut self, slices: bool, svc: &str, n: usize) {
        let want = self.want.get(svc).copied();
        let (map, ok) = if slices {
            (&mut self.slice_ready, &mut self.ok_slices)
        } else {
            (&mut self.ep_ready, &mut self.ok_eps)
        };
        let old = map.insert(svc.to_string(), n);
        if want.is_some() && old == want {
            *ok -= 1;
        }
        if want == Some(n) {
            *ok += 1;
        }
    }

    fn apply_slice(&mut self, s: Option<&EndpointSlice>, name: &str) {
        let svc_of = |s: &EndpointSlice| {
            s.labels()
                .get("kubernetes.io/service-name")
                .cloned()
                .unwrap_or_default()
        };
        let new = s.map(|s| {
            let ready = s
                .endpoints
                .iter()
                .filter(|e| e.conditions.as_ref().and_then(|c| c.ready) == Some(true))
                .count();
            (svc_of(s), ready)
        });
        let old = match &new {
            Some(v) => self.slices.insert(name.to_string(), v.clone()),
            None => self.slices.remove(name),
        };
        for (svc, delta) in [
            old.map(|(s, n)| (s, -(n as i64))),
            new.map(|(s, n)| (s, n as i64)),
        ]
        .into_iter()
        .flatten()
        {
            let cur = self.slice_ready.get(&svc).copied().unwrap_or(0) as i64;
            self.set(true, &svc, (cur + delta).max(0) as usize);
            self.slice_changed.insert(svc, Instant::now());
        }
    }
}

#[derive(Default)]
struct Tracker {
    counts: Mutex<Counts>,
    notify: Notify,
}

impl Tracker {
    /// Waits until `pred` holds (checked after every watch event), up to `limit`.
    async fn wait(&self, limit: Duration, pred: impl Fn(&Counts) -> bool) -> Instant {
        let deadline = Instant::now() + limit;
        loop {
            let n = self.notify.notified();
            tokio::pin!(n);
            n.as_mut().enable();
            if pred(&self.counts.lock().unwrap()) {
                return Instant::now();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "bench: condition not reached in {limit:?}");
            let _ = tokio::time::timeout(left, n).await;
        }
    }
}

fn track(client: &Client, tracker: Arc<Tracker>) {
    let t = tracker.clone();
    let slices = watcher::watcher(
        Api::<EndpointSlice>::namespaced(client.clone(), NS),
        watcher::Config::default(),
    )
    .default_backoff()
    .for_each(move |ev| {
        if let Ok(Event::Apply(s) | Event::InitApply(s)) = &ev {
            t.counts.lock().unwrap().apply_slice(Some(s), &s.name_any());
        } else if let Ok(Event::Delete(s)) = &ev {
            t.counts.lock().unwrap().apply_slice(None, &s.name_any());
        }
        t.notify.notify_waiters();
        futures::future::ready(())
    });
    tokio::spawn(slices);
    let t = tracker;
    let eps = watcher::watcher(
        Api::<Endpoints>::namespaced(client.clone(), NS),
        watcher::Config::default(),
    )
    .default_backoff()
    .for_each(move |ev| {
        let (e, n) = match &ev {
            Ok(Event::Apply(e) | Event::InitApply(e)) => {
                let n = e
                    .subsets
                    .iter()
                    .flatten()
                    .map(|s| s.addresses.as_ref().map_or(0, Vec::len))
                    .sum();
                (e, n)
            }
            Ok(Event::Delete(e)) => (e, 0),
            _ => return futures::future::ready(()),
        };
        t.counts.lock().unwrap().set(false, &e.name_any(), n);
        t.notify.notify_waiters();
        futures::future::ready(())
    });
    tokio::spawn(eps);
}

fn pod_ip(k: usize) -> String {
    format!("10.{}.{}.{}", 64 + k / 65536, (k / 256) % 256, k % 256)
}

fn pod_status(ip: &str, ready: bool) -> serde_json::Value {
    let now = jiff::Timestamp::now().to_string();
    let r = if ready { "True" } else { "False" };
    json!({"status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
        "conditions": [{"type": "Ready", "status": r, "lastTransitionTime": now}]}})
}

/// Creates Services `svc-{from..to}`, each selecting `app-{i}`.
async fn create_services(api: &Api<Service>, range: std::ops::Range<usize>) {
    futures::stream::iter(range)
        .map(|i| async move {
            let svc: Service =
                serde_json::from_value(json!({"metadata": {"name": format!("svc-{i}")},
                "spec": {"selector": {"app": format!("app-{i}")}, "ports": [{"port": 80}]}}))
                .unwrap();
            api.create(&PostParams::default(), &svc).await.unwrap();
        })
        .buffer_unordered(IN_FLIGHT)
        .collect::<Vec<_>>()
        .await;
}

/// Creates `per` Ready pods for each of `services` Services (create, then status write).
async fn create_pods(api: &Api<Pod>, services: usize, per: usize) {
    futures::stream::iter(0..services * per)
        .map(|k| async move {
            let (i, j) = (k / per, k % per);
            let name = format!("pod-{i}-{j}");
            let pod: Pod = serde_json::from_value(json!({"metadata": {"name": name, "labels": {"app": format!("app-{i}")}},
                "spec": {"nodeName": format!("node-{}", k % 10), "containers": [{"name": "c", "image": "x"}]}}))
            .unwrap();
            api.create(&PostParams::default(), &pod).await.unwrap();
            let st = Patch::Merge(pod_status(&pod_ip(k), true));
            api.patch_status(&name, &PatchParams::default(), &st).await.unwrap();
        })
        .buffer_unordered(IN_FLIGHT)
        .collect::<Vec<_>>()
        .await;
}

/// A kube client speaking HTTP/2 only (many requests multiplexed on one connection).
fn h2_client(cfg: &kube::Config) -> Client {
    let tls = cfg.rustls_client_config().unwrap();
    let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only()
        .enable_http2()
        .wrap_connector(http);
    let hyper = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build::<_, kube::client::Body>(https);
    let svc = tower::ServiceBuilder::new()
        .layer(cfg.base_uri_layer())
        .option_layer(cfg.auth_layer().unwrap())
        .map_err(tower::BoxError::from)
        .service(hyper);
    Client::new(svc, NS)
}

/// CPU seconds this process (API server + controllers + bench) used so far.
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let f: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, r)| r.split_whitespace().collect())
        .unwrap_or_default();
    let tick = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (tick(11) + tick(12)) / 100.0
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

struct Controllers {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), portico_controllers::ControllerError>>,
}

fn start_controllers(client: Client) -> Controllers {
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(portico_controllers::run(
        client,
        portico_controllers::ControllersConfig {
            node_lease_timeout: Duration::from_secs(3600),
            ..Default::default()
        },
        async move {
            let _ = rx.await;
        },
    ));
    Controllers { stop, task }
}

/// Creates a one-pod Service and waits for its slice: the controllers have listed and run.
async fn warm_up(client: &Client, tracker: &Tracker) {
    let svc: Service = serde_json::from_value(json!({"metadata": {"name": "warmup"},
        "spec": {"selector": {"app": "warmup"}, "ports": [{"port": 80}]}}))
    .unwrap();
    let pod: Pod = serde_json::from_value(
        json!({"metadata": {"name": "warmup", "labels": {"app": "warmup"}},
        "spec": {"nodeName": "node-0", "containers": [{"name": "c", "image": "x"}]}}),
    )
    .unwrap();
    Api::<Service>::namespaced(client.clone(), NS)
        .create(&PostParams::default(), &svc)
        .await
        .unwrap();
    let pods = Api::<Pod>::namespaced(client.clone(), NS);
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let st = Patch::Merge(pod_status("10.63.0.1", true));
    pods.patch_status("warmup", &PatchParams::default(), &st)
        .await
        .unwrap();
    tracker
        .wait(Duration::from_secs(600), |c| {
            c.slice_ready.get("warmup") == Some(&1) && c.ep_ready.get("warmup") == Some(&1)
        })
        .await;
}

#[tokio::main]
async fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mode = if args.first().is_some_and(|a| a.parse::<usize>().is_err()) {
        args.remove(0)
    } else {
        "cold".to_string()
    };
    let arg = |i: usize, d: usize| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(d);
    let (services, per, samples, spacing) = (arg(0, 1000), arg(1, 10), arg(2, 200), arg(3, 50));
    assert!(
        ["cold", "services", "empty"].contains(&mode.as_str()),
        "MODE is cold, services or empty"
    );
    let total = services * per;

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
    // Separate clients: the controllers', the bench's writes (HTTP/2), the bench's watches.
    let ctl_client = if std::env::var_os("BENCH_KUBE_DEFAULT_CLIENT").is_some() {
        Client::try_from(kcfg.clone()).unwrap()
    } else {
        portico_controllers::client::client_nodelay(&kcfg).unwrap()
    };
    let writer = h2_client(&kcfg);
    let watch_client = portico_controllers::client::client_nodelay(&kcfg).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let probe = Api::<Service>::namespaced(writer.clone(), NS);
        match tokio::time::timeout(Duration::from_secs(2), probe.list(&Default::default())).await {
            Ok(Ok(_)) => break,
            Ok(Err(e)) => eprintln!("server not ready: {e}"),
            Err(_) => eprintln!("server not ready: timeout"),
        }
        assert!(Instant::now() < deadline, "server not ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let nodes: Api<Node> = Api::all(writer.clone());
    for n in 0..10 {
        let node: Node =
            serde_json::from_value(json!({"metadata": {"name": format!("node-{n}")}})).unwrap();
        nodes.create(&PostParams::default(), &node).await.unwrap();
    }
    let tracker = Arc::new(Tracker::default());
    {
        let mut c = tracker.counts.lock().unwrap();
        c.want = (0..services).map(|i| (format!("svc-{i}"), per)).collect();
    }
    track(&watch_client, tracker.clone());
    let svc_api: Api<Service> = Api::namespaced(writer.clone(), NS);
    let pod_api: Api<Pod> = Api::namespaced(writer.clone(), NS);
    let all_correct = |c: &Counts| c.ok_slices >= services && c.ok_eps >= services;
    let limit = Duration::from_secs(3600);
    println!(
        "mode {mode}: {services} Services x {per} pods = {total} pods; load {}",
        loadavg()
    );

    let ctl = match mode.as_str() {
        "cold" => {
            let t = Instant::now();
            create_services(&svc_api, 0..services).await;
            create_pods(&pod_api, services, per).await;
            let w = t.elapsed().as_secs_f64();
            let writes = services + 2 * total;
            println!(
                "seeded (controllers stopped): {writes} writes in {w:.1}s = {:.0} writes/s; load {}",
                writes as f64 / w,
                loadavg()
            );
            let (t, cpu) = (Instant::now(), cpu_secs());
            let ctl = start_controllers(ctl_client);
            let s = tracker.wait(limit, |c| c.ok_slices >= services).await;
            let e = tracker.wait(limit, all_correct).await;
            println!(
                "controllers cold start: all slices correct {:.2}s, all slices+Endpoints correct {:.2}s after start (process CPU {:.1}s); load {}",
                (s - t).as_secs_f64(),
                (e - t).as_secs_f64(),
                cpu_secs() - cpu,
                loadavg()
            );
            ctl
        }
        "services" => {
            let t = Instant::now();
            create_pods(&pod_api, services, per).await;
            let w = t.elapsed().as_secs_f64();
            println!(
                "seeded pods: {} writes in {w:.1}s = {:.0} writes/s; load {}",
                2 * total,
                2.0 * total as f64 / w,
                loadavg()
            );
            let ctl = start_controllers(ctl_client);
            warm_up(&writer, &tracker).await;
            let (t, cpu) = (Instant::now(), cpu_secs());
            create_services(&svc_api, 0..services).await;
            let w = t.elapsed();
            let e = tracker.wait(limit, all_correct).await;
            println!(
                "Services applied over existing pods: creates done {:.2}s, all slices+Endpoints correct {:.2}s after the first create (process CPU {:.1}s); load {}",
                w.as_secs_f64(),
                (e - t).as_secs_f64(),
                cpu_secs() - cpu,
                loadavg()
            );
            ctl
        }
        _ => {
            let ctl = start_controllers(ctl_client);
            warm_up(&writer, &tracker).await;
            let (t, cpu) = (Instant::now(), cpu_secs());
            create_services(&svc_api, 0..services).await;
            create_pods(&pod_api, services, per).await;
            let w = t.elapsed();
            let e = tracker.wait(limit, all_correct).await;
            let writes = services + 2 * total;
            println!(
                "from empty: {writes} writes done {:.2}s ({:.0} writes/s), all slices+Endpoints correct {:.2}s ({:.2}s after the last write; process CPU {:.1}s); load {}",
                w.as_secs_f64(),
                writes as f64 / w.as_secs_f64(),
                (e - t).as_secs_f64(),
                (e - t - w).as_secs_f64(),
                cpu_secs() - cpu,
                loadavg()
            );
            ctl
        }
    };

    // Steady state: one pod at a time turns unready, then ready again.
    let mut lat = Vec::with_capacity(samples);
    let mut ep_lat = Vec::with_capacity(samples);
    for s in 0..samples {
        let k = (s * 7919) % total;
        let (i, j) = (k / per, k % per);
        let (svc, pod) = (format!("svc-{i}"), format!("pod-{i}-{j}"));
        tokio::time::sleep(Duration::from_millis(spacing as u64)).await;
        let t0 = Instant::now();
        let st = Patch::Merge(pod_status(&pod_ip(k), false));
        pod_api
            .patch_status(&pod, &PatchParams::default(), &st)
            .await
            .unwrap();
        let lim = Duration::from_secs(60);
        tracker
            .wait(lim, |c| c.slice_ready.get(&svc) == Some(&(per - 1)))
            .await;
        let at = tracker.counts.lock().unwrap().slice_changed[&svc];
        lat.push(at - t0);
        let e = tracker
            .wait(lim, |c| c.ep_ready.get(&svc) == Some(&(per - 1)))
            .await;
        ep_lat.push(e - t0);
        let st = Patch::Merge(pod_status(&pod_ip(k), true));
        pod_api
            .patch_status(&pod, &PatchParams::default(), &st)
            .await
            .unwrap();
        tracker
            .wait(lim, |c| {
                c.slice_ready.get(&svc) == Some(&per) && c.ep_ready.get(&svc) == Some(&per)
            })
            .await;
    }
    if samples > 0 {
        let pct = |v: &mut Vec<Duration>, p: f64| {
            v.sort();
            v[((v.len() as f64 * p) as usize).min(v.len() - 1)]
        };
        println!(
            "readiness change -> slice update ({samples} samples, {spacing} ms apart): p50 {:?}, p99 {:?}, max {:?}; -> Endpoints p50 {:?}, p99 {:?}; load {}",
            pct(&mut lat, 0.50),
            pct(&mut lat, 0.99),
            lat[lat.len() - 1],
            pct(&mut ep_lat, 0.50),
            pct(&mut ep_lat, 0.99),
            loadavg()
        );
    }
    let _ = ctl.stop.send(());
    let _ = ctl.task.await;
    let _ = stop_tx.send(());
    let _ = server.await;
}
