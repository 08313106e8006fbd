//! One benchmark target end to end: start the server process, wait until it is
//! ready, open the watch, run the creates and the trickle, verify, measure, stop.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::Method;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::child::ServerProcess;
use crate::client::{Client, Conn};
use crate::load::{self, CreateRecord, WatchLog};
use crate::procfs::{self, Memory};
use crate::stats::{self, Allocated, Correctness, Summary};
use crate::BenchError;

/// Time between trickle creates: light enough that the server is idle in between.
pub const TRICKLE_INTERVAL: Duration = Duration::from_millis(20);
/// How long the watch may lag behind the last create before it counts as missing events.
const WATCH_GRACE: Duration = Duration::from_secs(30);
/// Bound on waiting for the server to go quiet after the bulk.
const SETTLE_BOUND: Duration = Duration::from_secs(60);
/// CPU sampling window for "quiet": under 10 % of one core over this window.
const SETTLE_WINDOW: Duration = Duration::from_millis(500);
/// Per-request timeout.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Which server to run.
#[derive(Debug, Clone)]
pub enum Target {
    /// `portico server` from this binary path, with an optional `--log` filter.
    Portico {
        binary: PathBuf,
        log: Option<String>,
    },
    /// This benchmark's own baseline server (`--serve-baseline`).
    Baseline { fsync: bool },
}

impl Target {
    /// Column title in the report.
    pub fn label(&self) -> &'static str {
        match self {
            Target::Portico { .. } => "portico server",
            Target::Baseline { fsync: false } => "baseline: in-memory echo",
            Target::Baseline { fsync: true } => "baseline: echo + fsync",
        }
    }
}

/// The knobs of a run.
#[derive(Debug, Clone)]
pub struct Load {
    /// Services created in the bulk phase.
    pub services: usize,
    /// How many of them are NodePort.
    pub nodeports: usize,
    /// Concurrent create requests.
    pub concurrency: usize,
    /// Paced single creates after the bulk.
    pub trickle: usize,
    /// Namespace the Services go to.
    pub namespace: String,
    /// Offer only HTTP/1.1 over ALPN.
    pub http1: bool,
    /// Where temporary data dirs go.
    pub work_dir: Option<PathBuf>,
    /// Bound on one target's whole run.
    pub timeout: Duration,
}

/// Everything measured against one target.
#[derive(Debug, Clone, Default)]
pub struct TargetResult {
    /// Column title.
    pub label: String,
    /// Whether this is the system under test (gets the store checks).
    pub is_portico: bool,
    /// Negotiated protocol.
    pub protocol: String,
    /// First request sent to last response received, bulk phase.
    pub bulk_elapsed: Duration,
    /// Bulk creates that succeeded.
    pub bulk_ok: usize,
    /// Bulk create latency (successful ones), ms.
    pub create: Option<Summary>,
    /// ADDED event arrival − create request sent, ms (upper bound of write → event).
    pub watch_from_sent: Option<Summary>,
    /// ADDED event arrival − create response received, ms (lower bound; may be negative).
    pub watch_from_ack: Option<Summary>,
    /// Trickle create latency, ms.
    pub trickle_create: Option<Summary>,
    /// Trickle watch delay from request sent, ms.
    pub trickle_watch_from_sent: Option<Summary>,
    /// Trickle watch delay from response received, ms.
    pub trickle_watch_from_ack: Option<Summary>,
    /// Failed creates by HTTP status (0: no response).
    pub failures: BTreeMap<u16, usize>,
    /// A few failures verbatim: `name: HTTP status: message`.
    pub first_errors: Vec<String>,
    /// Uniqueness and completeness of the bulk phase.
    pub correctness: Correctness,
    /// Watch events by type, and why the watch ended early if it did.
    pub watch_events: BTreeMap<String, usize>,
    /// Set when the watch stream ended or errored before all events arrived.
    pub watch_ended: Option<String>,
    /// Server memory before the creates, after the bulk phase, and at the end.
    pub mem_idle: Memory,
    /// After the bulk phase.
    pub mem_after_bulk: Memory,
    /// After the paced phase, before the verifying lists.
    pub mem_before_list: Memory,
    /// At the end (VmHWM is the peak of the whole run).
    pub mem_end: Memory,
    /// How long the server kept a core >10 % busy after the bulk (controllers
    /// catching up); `None` if it was still busy at the bound.
    pub settle: Option<Duration>,
    /// The same after the paced phase: the memory figures after it are taken
    /// once the controllers have caught up (or at the bound).
    pub settle_end: Option<Duration>,
    /// Server CPU seconds used during the bulk phase.
    pub cpu_bulk: f64,
    /// Server CPU seconds for the whole run, startup included.
    pub cpu_total: f64,
    /// Services a paged list returned after the run, their distinct ClusterIPs, and the list time.
    pub listed: Option<(usize, usize, Duration)>,
    /// EndpointSlices in the namespace after the run (the controllers' work), or why unknown.
    pub endpointslices: Option<Result<usize, String>>,
    /// Load average before and after.
    pub load_before: String,
    /// Load average after.
    pub load_after: String,
}

/// Runs one target; the server process is stopped on every path.
pub async fn run(target: &Target, load: &Load) -> Result<TargetResult, BenchError> {
    let io = |e: std::io::Error| BenchError::Io(format!("temp dir: {e}"));
    let tmp = match &load.work_dir {
        Some(d) => tempfile::Builder::new()
            .prefix("portico-bench-")
            .tempdir_in(d)
            .map_err(io)?,
        None => tempfile::Builder::new()
            .prefix("portico-bench-")
            .tempdir()
            .map_err(io)?,
    };
    let data = tmp.path().join("data");
    let mut cmd = match target {
        Target::Portico { binary, log } => {
            let mut c = tokio::process::Command::new(binary);
            if let Some(l) = log {
                c.arg("--log").arg(l);
            }
            c.arg("server")
                .arg("--data-dir")
                .arg(&data)
                .arg("--listen")
                .arg("127.0.0.1:0");
            c
        }
        Target::Baseline { fsync } => {
            std::fs::create_dir_all(&data).map_err(io)?;
            let exe = std::env::current_exe().map_err(io)?;
            let mut c = tokio::process::Command::new(exe);
            c.arg("--serve-baseline").arg(&data);
            if *fsync {
                c.arg("--baseline-fsync");
            }
            c
        }
    };
    cmd.current_dir(tmp.path());
    let server = ServerProcess::start(
        cmd,
        &tmp.path().join("server.log"),
        Duration::from_secs(120),
    )
    .await?;
    let outcome = tokio::time::timeout(load.timeout, drive(target, load, &server, &data)).await;
    let tail = server.log_tail(30);
    server.stop().await;
    match outcome {
        Ok(Ok(r)) => Ok(r),
        Ok(Err(e)) => Err(BenchError::Server(format!(
            "{}: {e}\nserver log tail:\n{tail}",
            target.label()
        ))),
        Err(_) => Err(BenchError::Server(format!(
            "{}: not done within {:?}\nserver log tail:\n{tail}",
            target.label(),
            load.timeout
        ))),
    }
}

async fn ready(client: &Client) -> Result<Conn, BenchError> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = String::new();
    while Instant::now() < deadline {
        match client.connect().await {
            Ok(mut conn) => match conn
                .call(client.request(Method::GET, "/readyz", None)?)
                .await
            {
                Ok((200, _)) => return Ok(conn),
                Ok((s, b)) => {
                    last = format!("GET /readyz: HTTP {s}: {}", String::from_utf8_lossy(&b))
                }
                Err(e) => last = e.to_string(),
            },
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(BenchError::Server(format!("not ready within 60 s: {last}")))
}

async fn drive(
    target: &Target,
    load: &Load,
    server: &ServerProcess,
    data: &std::path::Path,
) -> Result<TargetResult, BenchError> {
    let kc_path = data.join("kubeconfig.yaml");
    let kc = std::fs::read_to_string(&kc_path)
        .map_err(|e| BenchError::Io(format!("{}: {e}", kc_path.display())))?;
    let mut creds = crate::kubeconfig::parse(&kc)?;
    // The address the server printed is where it listens (the kubeconfig may advertise another).
    creds.server = server.url.clone();
    let client = Client::new(&creds, load.http1)?;
    let mut conn = ready(&client).await?;
    let mut r = TargetResult {
        label: target.label().to_string(),
        is_portico: matches!(target, Target::Portico { .. }),
        protocol: conn.protocol().to_string(),
        load_before: procfs::loadavg(),
        mem_idle: server.memory(),
        ..TargetResult::default()
    };
    let ns = &load.namespace;

    let ns_body = serde_json::to_vec(
        &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
    )
    .unwrap_or_default();
    let (status, body) = conn
        .call(client.request(Method::POST, "/api/v1/namespaces", Some(ns_body))?)
        .await?;
    if status != 201 && status != 409 {
        return Err(BenchError::Server(format!(
            "POST /api/v1/namespaces: HTTP {status}: {}",
            String::from_utf8_lossy(&body)
        )));
    }
    let list = load::get_json(
        &client,
        &mut conn,
        &format!("/api/v1/namespaces/{ns}/services?limit=1"),
    )
    .await?;
    let rv = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or_default()
        .to_string();

    // The watch gets its own connection so its stream never queues behind creates.
    let mut wconn = client.connect().await?;
    let wpath = format!("/api/v1/namespaces/{ns}/services?watch=true&resourceVersion={rv}&allowWatchBookmarks=true&timeoutSeconds=1800");
    let wresp = wconn
        .send(client.request(Method::GET, &wpath, None)?)
        .await?;
    if wresp.status() != 200 {
        return Err(BenchError::Server(format!(
            "GET {wpath}: HTTP {}",
            wresp.status()
        )));
    }
    let stop = CancellationToken::new();
    let watch = tokio::spawn(load::read_watch(
        wresp,
        load.services + load.trickle,
        stop.clone(),
    ));

    let plan: Vec<(String, bool)> = (0..load.services)
        .map(|i| {
            (
                format!("svc-{i:05}"),
                stats::is_nodeport(i, load.services, load.nodeports),
            )
        })
        .collect();
    let cpu0 = server.cpu_seconds();
    let bulk = load::create_all(
        &client,
        &conn,
        ns,
        Arc::new(plan),
        load.concurrency,
        REQUEST_TIMEOUT,
    )
    .await?;
    r.cpu_bulk = server.cpu_seconds() - cpu0;
    r.mem_after_bulk = server.memory();
    let first = bulk.iter().map(|c| c.sent).min();
    let last = bulk.iter().map(|c| c.done).max();
    r.bulk_elapsed = match (first, last) {
        (Some(a), Some(b)) => b.duration_since(a),
        _ => Duration::ZERO,
    };

    r.settle = settle(server).await;

    let tplan: Vec<(String, bool)> = (0..load.trickle)
        .map(|i| (format!("trickle-{i:04}"), false))
        .collect();
    let trickled = load::trickle(
        &client,
        &mut conn,
        ns,
        &tplan,
        TRICKLE_INTERVAL,
        REQUEST_TIMEOUT,
    )
    .await;

    let mut watch = watch;
    let wlog = match tokio::time::timeout(WATCH_GRACE, &mut watch).await {
        Ok(j) => j.unwrap_or_default(),
        Err(_) => {
            // Keep what arrived; the missing events show up in the correctness check.
            stop.cancel();
            let mut l = watch.await.unwrap_or_default();
            l.ended.get_or_insert_with(|| {
                format!("not all ADDED events within {WATCH_GRACE:?} after the last create")
            });
            l
        }
    };
    summarize_into(&mut r, &bulk, &trickled, &wlog);
    // Memory is only comparable between runs once the in-process controllers
    // have written every EndpointSlice, which on a loaded machine can take
    // longer than the paced phase.
    r.settle_end = settle(server).await;
    r.mem_before_list = server.memory();

    if r.is_portico {
        let (items, took) = load::list_all(
            &client,
            &mut conn,
            &format!("/api/v1/namespaces/{ns}/services"),
        )
        .await?;
        let ips: std::collections::HashSet<&str> = items
            .iter()
            .filter_map(|s| s["spec"]["clusterIP"].as_str())
            .collect();
        r.listed = Some((items.len(), ips.len(), took));
        r.endpointslices = Some(
            load::list_all(
                &client,
                &mut conn,
                &format!("/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices"),
            )
            .await
            .map(|(i, _)| i.len())
            .map_err(|e| e.to_string()),
        );
    }
    r.mem_end = server.memory();
    r.cpu_total = server.cpu_seconds();
    r.load_after = procfs::loadavg();
    Ok(r)
}

/// Waits until the server's CPU use over a window drops under 10 % of a core,
/// so the paced phase sees a quiet server; returns how long that took.
async fn settle(server: &ServerProcess) -> Option<Duration> {
    let start = Instant::now();
    let mut tick = tokio::time::interval(SETTLE_WINDOW);
    tick.tick().await;
    let mut before = server.cpu_seconds();
    while start.elapsed() < SETTLE_BOUND {
        tick.tick().await;
        let now = server.cpu_seconds();
        if now - before < 0.1 * SETTLE_WINDOW.as_secs_f64() {
            return Some(start.elapsed());
        }
        before = now;
    }
    None
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Signed `a − b` in ms.
fn signed_ms(a: Instant, b: Instant) -> f64 {
    if a >= b {
        ms(a - b)
    } else {
        -ms(b - a)
    }
}

/// Latency and watch-delay summaries of a set of creates: (create, from sent, from ack).
fn delays(
    recs: &[CreateRecord],
    wlog: &WatchLog,
) -> (Option<Summary>, Option<Summary>, Option<Summary>) {
    let ok: Vec<&CreateRecord> = recs.iter().filter(|c| c.error.is_none()).collect();
    let lat: Vec<f64> = ok.iter().map(|c| ms(c.done - c.sent)).collect();
    let from_sent: Vec<f64> = ok
        .iter()
        .filter_map(|c| wlog.added.get(&c.name).map(|&t| signed_ms(t, c.sent)))
        .collect();
    let from_ack: Vec<f64> = ok
        .iter()
        .filter_map(|c| wlog.added.get(&c.name).map(|&t| signed_ms(t, c.done)))
        .collect();
    (
        stats::summarize(&lat),
        stats::summarize(&from_sent),
        stats::summarize(&from_ack),
    )
}

fn summarize_into(
    r: &mut TargetResult,
    bulk: &[CreateRecord],
    trickled: &[CreateRecord],
    wlog: &WatchLog,
) {
    (r.create, r.watch_from_sent, r.watch_from_ack) = delays(bulk, wlog);
    (
        r.trickle_create,
        r.trickle_watch_from_sent,
        r.trickle_watch_from_ack,
    ) = delays(trickled, wlog);
    let ok: Vec<Allocated> = bulk
        .iter()
        .filter(|c| c.error.is_none())
        .map(|c| Allocated {
            name: c.name.clone(),
            nodeport_wanted: c.nodeport_wanted,
            cluster_ip: c.cluster_ip.clone(),
            node_port: c.node_port,
        })
        .collect();
    r.bulk_ok = ok.len();
    r.correctness = stats::check(&ok, |n| wlog.added.contains_key(n));
    for c in bulk.iter().chain(trickled).filter(|c| c.error.is_some()) {
        *r.failures.entry(c.status).or_default() += 1;
        if r.first_errors.len() < 5 {
            r.first_errors.push(format!(
                "POST {}: HTTP {}: {}",
                c.name,
                c.status,
                c.error.as_deref().unwrap_or("")
            ));
        }
    }
    r.watch_events = wlog.by_type.clone();
    r.watch_ended = wlog.ended.clone();
}
