//! The agent's pod loop: watches the pods bound to this node, starts and
//! stops them in the [`Runtime`], writes their status through `pods/status`,
//! and finalizes deleted pods (delete with grace 0 once stopped, like the
//! kubelet).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt as _;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Pod, PodStatus, Service};
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt as _};
use tokio::sync::watch;

use crate::runtime::Runtime;
use crate::status::{self, PodRt};
use crate::svcenv::EnvServices;

/// What the agent is doing with a pod uid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Starting,
    Running,
    Stopping,
    /// Stopped and its deletion sent; nothing more to do.
    Done,
}

struct State {
    phases: HashMap<String, Phase>,
    /// Uids whose start failed, with when to retry.
    retry_at: HashMap<String, tokio::time::Instant>,
    /// Uids whose `start_pod` is in flight.
    starting: HashSet<String>,
}

/// Runs the pod loop until the task is dropped.
pub async fn run(client: kube::Client, runtime: Arc<Runtime>) {
    let node = runtime.config().node_name.clone();
    let pods: Api<Pod> = Api::all(client.clone());
    let services: Api<Service> = Api::all(client.clone());
    let (pod_reader, pod_writer) = reflector::store();
    let pod_stream = reflector::reflector(
        pod_writer,
        watcher(
            pods,
            watcher::Config::default().fields(&format!("spec.nodeName={node}")),
        ),
    )
    .default_backoff()
    .boxed();
    // Every Service of the cluster, kept compactly (not a reflector of typed
    // objects: at 30,000 Services those would cost more than the proxy).
    let env_services = Arc::new(Mutex::new(EnvServices::default()));
    let (listed_tx, mut listed_rx) = watch::channel(false);
    let svc_stream = watcher(services, watcher::Config::default()).default_backoff();
    // Services only need to be current; drive their stream on its own
    // (stopped with this loop).
    let svc_cache = Arc::clone(&env_services);
    let _svc_task = AbortOnDrop(tokio::spawn(async move {
        let mut s = std::pin::pin!(svc_stream);
        while let Some(ev) = s.next().await {
            match ev {
                Ok(ev) => {
                    let mut c = lock(&svc_cache);
                    c.apply(ev);
                    if c.listed() {
                        listed_tx.send_if_modified(|l| !std::mem::replace(l, true));
                    }
                }
                Err(e) => tracing::debug!(error = %e, "watching services"),
            }
        }
    }));
    let state = Arc::new(Mutex::new(State {
        phases: HashMap::new(),
        retry_at: HashMap::new(),
        starting: HashSet::new(),
    }));
    let mut pod_stream = pod_stream;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    // Service env vars need the Services that exist when a pod starts; give
    // the Service cache its initial list first (bounded: an API without
    // Services must not stop pods from running).
    let _ = tokio::time::timeout(Duration::from_secs(5), listed_rx.wait_for(|l| *l)).await;
    loop {
        tokio::select! {
            ev = pod_stream.next() => match ev {
                Some(Ok(_)) => {}
                Some(Err(e)) => { tracing::warn!(error = %e, "watching pods"); continue; }
                None => return,
            },
            _ = tick.tick() => {}
        }
        // Only once the initial list is in: before that, "not in the store"
        // does not mean "deleted". (Checked without waiting: the store only
        // fills while this loop polls the stream.)
        match futures::FutureExt::now_or_never(pod_reader.wait_until_ready()) {
            Some(Ok(())) => {}
            Some(Err(_)) => return,
            None => continue,
        }
        sync(&client, &runtime, &state, &pod_reader, &env_services, &node);
    }
}

/// Aborts a background task when the loop that owns it ends.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn grace_of(pod: &Pod) -> Duration {
    let secs = pod
        .metadata
        .deletion_grace_period_seconds
        .or_else(|| {
            pod.spec
                .as_ref()
                .and_then(|s| s.termination_grace_period_seconds)
        })
        .unwrap_or(30)
        .max(0);
    Duration::from_secs(u64::try_from(secs).unwrap_or(30))
}

/// One level-triggered pass: start new pods, stop deleted ones.
fn sync(
    client: &kube::Client,
    runtime: &Arc<Runtime>,
    state: &Arc<Mutex<State>>,
    pods: &Store<Pod>,
    services: &Mutex<EnvServices>,
    node: &str,
) {
    let all = pods.state();
    let mut seen = HashSet::new();
    for pod in all
        .iter()
        .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node))
    {
        let Some(uid) = pod.metadata.uid.clone() else {
            continue;
        };
        seen.insert(uid.clone());
        let phase = lock(state).phases.get(&uid).copied();
        if pod.metadata.deletion_timestamp.is_some() {
            if matches!(phase, Some(Phase::Stopping) | Some(Phase::Done)) {
                continue;
            }
            lock(state).phases.insert(uid.clone(), Phase::Stopping);
            let (client, runtime, state, pod) = (
                client.clone(),
                Arc::clone(runtime),
                Arc::clone(state),
                (**pod).clone(),
            );
            tokio::spawn(async move {
                wait_started(&state, &uid).await;
                runtime.stop_pod(&uid, grace_of(&pod)).await;
                finalize(&client, &pod).await;
                lock(&state).phases.insert(uid, Phase::Done);
            });
            continue;
        }
        if phase.is_some() {
            continue;
        }
        let terminal = matches!(
            pod.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Succeeded") | Some("Failed")
        );
        if terminal && !runtime.has_pod(&uid) {
            continue;
        }
        if let Some(at) = lock(state).retry_at.get(&uid) {
            if tokio::time::Instant::now() < *at {
                continue;
            }
        }
        {
            let mut s = lock(state);
            s.phases.insert(uid.clone(), Phase::Starting);
            s.starting.insert(uid.clone());
        }
        let svcs: Vec<Service> = lock(services).for_pod(pod);
        let (client, runtime, state, pod) = (
            client.clone(),
            Arc::clone(runtime),
            Arc::clone(state),
            (**pod).clone(),
        );
        tokio::spawn(async move {
            let result = runtime.start_pod(&pod, &svcs).await;
            lock(&state).starting.remove(&uid);
            match result {
                Ok(rx) => {
                    {
                        let mut s = lock(&state);
                        // A deletion seen meanwhile owns the pod now.
                        if s.phases.get(&uid) == Some(&Phase::Starting) {
                            s.phases.insert(uid.clone(), Phase::Running);
                        }
                        s.retry_at.remove(&uid);
                    }
                    write_status(client, pod, rx).await;
                }
                Err(e) => {
                    tracing::warn!(pod = ?pod.metadata.name, error = %e, "starting pod failed; retrying in 5 s");
                    let mut s = lock(&state);
                    if s.phases.get(&uid) == Some(&Phase::Starting) {
                        s.phases.remove(&uid);
                    }
                    s.retry_at
                        .insert(uid, tokio::time::Instant::now() + Duration::from_secs(5));
                }
            }
        });
    }
    // Pods gone from the API (deleted with grace 0 by someone else): stop them.
    let gone: Vec<String> = lock(state)
        .phases
        .iter()
        .filter(|(uid, p)| !seen.contains(*uid) && matches!(p, Phase::Running | Phase::Starting))
        .map(|(u, _)| u.clone())
        .collect();
    for uid in gone {
        lock(state).phases.insert(uid.clone(), Phase::Stopping);
        let (runtime, state) = (Arc::clone(runtime), Arc::clone(state));
        tokio::spawn(async move {
            wait_started(&state, &uid).await;
            runtime.stop_pod(&uid, Duration::from_secs(2)).await;
            lock(&state).phases.remove(&uid);
        });
    }
    // Forget finished uids that the API no longer has.
    lock(state)
        .phases
        .retain(|uid, p| seen.contains(uid) || *p != Phase::Done);
}

/// A stop must not race a start still creating the sandbox: wait (bounded)
/// until the runtime has the pod or the start gave up.
async fn wait_started(state: &Arc<Mutex<State>>, uid: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while lock(state).starting.contains(uid) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Deletes the pod object with grace 0 (the kubelet's last step), guarded by uid.
async fn finalize(client: &kube::Client, pod: &Pod) {
    let ns = pod
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let name = pod.metadata.name.clone().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let dp = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(Preconditions {
            uid: pod.metadata.uid.clone(),
            resource_version: None,
        }),
        ..Default::default()
    };
    match api.delete(&name, &dp).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
        Err(e) => {
            tracing::warn!(pod = %format!("{ns}/{name}"), error = %e, "finalizing pod deletion")
        }
    }
}

/// How long a starting pod's first status write waits for the pod to get
/// Ready. A pod usually goes ContainerCreating → Running → Ready within tens
/// of milliseconds; writing each step costs an API write and a watch event
/// to every pod watcher (scheduler, agents, DNS, EndpointSlices), which in a
/// burst of starts competes with the starts themselves. Holding the first
/// write briefly turns three writes into one; a pod that is not Ready by then
/// is reported as it is.
const START_HOLD: Duration = Duration::from_millis(150);

/// Whether the first status write should wait (bounded by [`START_HOLD`]) for
/// the next change: nothing written yet and the pod still on its way to
/// Ready (no container ended or is stuck waiting for another reason). Pure.
fn hold_first_write(rt: &PodRt, written: bool) -> bool {
    use crate::status::CState;
    !written
        && !rt.containers.is_empty()
        && rt.containers.iter().any(|c| !c.ready)
        && rt.containers.iter().all(|c| match &c.state {
            CState::Running { .. } => true,
            CState::Waiting { reason, .. } => reason == "ContainerCreating",
            CState::Terminated { .. } => false,
        })
}

/// Writes the pod's status whenever the runtime's view of it changes, until
/// the pod's supervisor is gone.
async fn write_status(client: kube::Client, pod: Pod, mut rx: watch::Receiver<PodRt>) {
    let ns = pod
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let name = pod.metadata.name.clone().unwrap_or_default();
    let policy = pod
        .spec
        .as_ref()
        .and_then(|s| s.restart_policy.clone())
        .unwrap_or_else(|| "Always".into());
    let api: Api<Pod> = Api::namespaced(client, &ns);
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let mut last: Option<PodStatus> = pod.status.clone();
    let mut written: Option<PodStatus> = None;
    let hold_until = tokio::time::Instant::now() + START_HOLD;
    loop {
        let rt = rx.borrow_and_update().clone();
        if hold_first_write(&rt, written.is_some()) && tokio::time::Instant::now() < hold_until {
            // A change: look again. Timeout or supervisor gone: write what we have.
            if let Ok(Ok(())) = tokio::time::timeout_at(hold_until, rx.changed()).await {
                continue;
            }
        }
        let rt = rx.borrow_and_update().clone();
        let st = status::pod_status(&rt, &policy, last.as_ref(), Timestamp::now());
        if written.as_ref() != Some(&st) {
            // The uid makes the patch a precondition (as the kubelet does): a
            // new pod with the same name never gets this pod's status.
            let patch = serde_json::json!({ "metadata": { "uid": uid }, "status": st });
            match api
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => {
                    last = Some(st.clone());
                    written = Some(st);
                }
                Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => return,
                Err(e) => {
                    // The pod's supervisor is gone: nothing left to report.
                    if rx.has_changed().is_err() {
                        return;
                    }
                    tracing::warn!(pod = %format!("{ns}/{name}"), error = %e, "writing pod status; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            }
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::{CState, ContainerRt};

    fn rt(states: Vec<(CState, bool)>) -> PodRt {
        PodRt {
            pod_ip: None,
            host_ip: std::net::Ipv4Addr::LOCALHOST,
            start_time: Timestamp::UNIX_EPOCH,
            sandbox_ready: true,
            containers: states
                .into_iter()
                .map(|(state, ready)| ContainerRt {
                    state,
                    ready,
                    ..ContainerRt::new("c", "i")
                })
                .collect(),
        }
    }

    #[test]
    fn first_write_waits_only_while_the_pod_is_starting() {
        let creating = CState::Waiting {
            reason: "ContainerCreating".into(),
            message: None,
        };
        let running = CState::Running {
            started_at: Timestamp::UNIX_EPOCH,
        };
        assert!(hold_first_write(
            &rt(vec![(creating.clone(), false)]),
            false
        ));
        assert!(hold_first_write(&rt(vec![(running.clone(), false)]), false));
        // Ready: write at once.
        assert!(!hold_first_write(&rt(vec![(running.clone(), true)]), false));
        // Only the first write waits.
        assert!(!hold_first_write(
            &rt(vec![(creating.clone(), false)]),
            true
        ));
        // Problems are reported at once.
        let bad = CState::Waiting {
            reason: "ImageNotSupported".into(),
            message: None,
        };
        assert!(!hold_first_write(&rt(vec![(bad, false)]), false));
        let exited = CState::Terminated {
            exit_code: 1,
            signal: None,
            reason: "Error".into(),
            started_at: None,
            finished_at: Timestamp::UNIX_EPOCH,
        };
        assert!(!hold_first_write(
            &rt(vec![(exited, false), (running, true)]),
            false
        ));
        assert!(!hold_first_write(&rt(vec![]), false));
    }
}
