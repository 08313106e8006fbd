//! The measurements through the API: a watch that timestamps each pod's
//! milestones as the client receives them, a burst of concurrent creates,
//! and the one-at-a-time baseline.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::watcher;
use tokio::sync::Notify;

use crate::stats::Marks;
use crate::BenchError;

/// The pod every run creates: what a typical user manifest for agnhost has —
/// the netexec server on 8080 and an httpGet readiness probe on /healthz with
/// Kubernetes' defaults (no initial delay, period 10 s).
pub fn pod_manifest(name: &str, run: &str) -> Result<Pod, BenchError> {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "podstart", "run": run}},
        "spec": {"containers": [{
            "name": "agnhost",
            "image": "registry.k8s.io/e2e-test-images/agnhost:2.53",
            "args": ["netexec", "--http-port=8080"],
            "ports": [{"containerPort": 8080}],
            "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080}}
        }]}
    }))
    .map_err(|e| BenchError::Server(e.to_string()))
}

/// Send times and milestones per pod name, filled by [`Tracker::watch`].
#[derive(Default)]
struct Seen {
    sent: HashMap<String, Instant>,
    marks: HashMap<String, Marks>,
}

/// Timestamps what the client's watch shows for pods with label `run=<run>`.
#[derive(Clone)]
pub struct Tracker {
    seen: Arc<Mutex<Seen>>,
    changed: Arc<Notify>,
}

fn lock(m: &Mutex<Seen>) -> std::sync::MutexGuard<'_, Seen> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn is_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

impl Tracker {
    /// Starts the watch and returns once its initial list is in (so no event
    /// of a pod created afterwards can be missed).
    pub async fn start(pods: Api<Pod>, run: &str) -> Result<Tracker, BenchError> {
        let t = Tracker {
            seen: Arc::new(Mutex::new(Seen::default())),
            changed: Arc::new(Notify::new()),
        };
        let (synced_tx, synced_rx) = tokio::sync::oneshot::channel();
        let cfg = watcher::Config::default().labels(&format!("run={run}"));
        let stream = watcher(pods, cfg);
        let me = t.clone();
        tokio::spawn(async move {
            let mut synced = Some(synced_tx);
            let mut stream = std::pin::pin!(stream);
            while let Some(ev) = stream.next().await {
                match ev {
                    Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p)) => me.observe(&p),
                    Ok(watcher::Event::InitDone) => {
                        if let Some(tx) = synced.take() {
                            let _ = tx.send(());
                        }
                    }
                    Ok(_) => {}
                    Err(e) => eprintln!("watch error: {e}"),
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(30), synced_rx)
            .await
            .map_err(|_| BenchError::Server("the pod watch did not sync in 30 s".into()))?
            .map_err(|_| BenchError::Server("the pod watch ended".into()))?;
        Ok(t)
    }

    fn observe(&self, p: &Pod) {
        let now = Instant::now();
        let Some(name) = p.metadata.name.clone() else {
            return;
        };
        let scheduled = p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some();
        let running = p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
        let ready = is_ready(p);
        let mut s = lock(&self.seen);
        // The send time is stored before the request goes out, so every
        // event of our pods finds it; other pods are not ours to time.
        let Some(sent) = s.sent.get(&name).copied() else {
            return;
        };
        let m = s.marks.entry(name).or_default();
        let at = now.saturating_duration_since(sent);
        for (slot, hit) in [
            (&mut m.scheduled, scheduled),
            (&mut m.running, running),
            (&mut m.ready, ready),
        ] {
            if hit && slot.is_none() {
                *slot = Some(at);
            }
        }
        drop(s);
        self.changed.notify_waiters();
    }

    /// Creates one pod, recording when the request was sent and returned.
    pub async fn create(&self, pods: &Api<Pod>, pod: &Pod) -> Result<(), BenchError> {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let sent = Instant::now();
        lock(&self.seen).sent.insert(name.clone(), sent);
        pods.create(&PostParams::default(), pod)
            .await
            .map_err(|e| BenchError::Server(format!("creating pod {name}: {e}")))?;
        let done = sent.elapsed();
        lock(&self.seen).marks.entry(name).or_default().created = Some(done);
        Ok(())
    }

    /// Waits until every named pod was seen Ready, or fails at the deadline.
    pub async fn wait_ready(&self, names: &[String], timeout: Duration) -> Result<(), BenchError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.changed.notified();
            let missing = {
                let s = lock(&self.seen);
                names
                    .iter()
                    .filter(|n| s.marks.get(*n).and_then(|m| m.ready).is_none())
                    .count()
            };
            if missing == 0 {
                return Ok(());
            }
            // The watch wakes us; the short timeout only bounds a missed wake-up.
            if tokio::time::Instant::now() > deadline {
                return Err(BenchError::Server(format!(
                    "{missing} of {} pods not Ready after {timeout:?}",
                    names.len()
                )));
            }
            let _ = tokio::time::timeout(Duration::from_millis(200), notified).await;
        }
    }

    /// The marks of the named pods.
    pub fn marks(&self, names: &[String]) -> Vec<Marks> {
        let s = lock(&self.seen);
        names
            .iter()
            .map(|n| s.marks.get(n).copied().unwrap_or_default())
            .collect()
    }
}

/// Waits until the node reports Ready.
pub async fn wait_node_ready(client: &kube::Client, timeout: Duration) -> Result<(), BenchError> {
    let nodes: Api<Node> = Api::all(client.clone());
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(list) = nodes.list(&ListParams::default()).await {
            let ready = list.items.iter().any(|n| {
                n.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
            });
            if ready {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            return Err(BenchError::Server(format!(
                "no Ready node after {timeout:?}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Creates `n` pods at once (one task each) and waits until all are Ready.
pub async fn burst(
    pods: &Api<Pod>,
    run: &str,
    n: usize,
    timeout: Duration,
) -> Result<(Vec<Marks>, Duration), BenchError> {
    let tracker = Tracker::start(pods.clone(), run).await?;
    let names: Vec<String> = (0..n).map(|i| format!("{run}-{i}")).collect();
    let mut manifests = Vec::with_capacity(n);
    for name in &names {
        manifests.push(pod_manifest(name, run)?);
    }
    let start = Instant::now();
    let creates = manifests.into_iter().map(|p| {
        let (t, api) = (tracker.clone(), pods.clone());
        tokio::spawn(async move { t.create(&api, &p).await })
    });
    for r in futures::future::join_all(creates).await {
        r.map_err(|e| BenchError::Server(e.to_string()))??;
    }
    tracker.wait_ready(&names, timeout).await?;
    let wall = start.elapsed();
    Ok((tracker.marks(&names), wall))
}

/// Creates `n` pods one at a time, each after the previous one is Ready.
pub async fn sequential(
    pods: &Api<Pod>,
    run: &str,
    n: usize,
    timeout: Duration,
) -> Result<Vec<Marks>, BenchError> {
    let tracker = Tracker::start(pods.clone(), run).await?;
    let names: Vec<String> = (0..n).map(|i| format!("{run}-{i}")).collect();
    for name in &names {
        tracker.create(pods, &pod_manifest(name, run)?).await?;
        tracker
            .wait_ready(std::slice::from_ref(name), timeout)
            .await?;
    }
    Ok(tracker.marks(&names))
}

/// Deletes the run's pods (default grace, like `kubectl delete`) and waits
/// until the agent has stopped and finalized every one of them.
pub async fn delete_run(pods: &Api<Pod>, run: &str, timeout: Duration) -> Result<(), BenchError> {
    let lp = ListParams::default().labels(&format!("run={run}"));
    pods.delete_collection(&DeleteParams::default(), &lp)
        .await
        .map_err(|e| BenchError::Server(format!("deleting pods: {e}")))?;
    let deadline = Instant::now() + timeout;
    loop {
        let left = pods
            .list(&lp)
            .await
            .map_err(|e| BenchError::Server(e.to_string()))?
            .items
            .len();
        if left == 0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(BenchError::Server(format!(
                "{left} pods still there {timeout:?} after deletion"
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
