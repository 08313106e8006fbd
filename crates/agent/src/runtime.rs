//! The pod runtime: pod sandboxes (netns + veth + the pod's files) and the
//! supervisor task of each pod. It needs no API server: the agent (or a test)
//! hands it `Pod` objects and reads back [`PodRt`] through a watch channel.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ipnet::Ipv4Net;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Pod, Service};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::container;
use crate::error::AgentError;
use crate::ipam::{self, Ipam};
use crate::names;
use crate::netops::{self, Sandbox};
use crate::podfiles;
use crate::process::{self, Tools};
use crate::status::{ContainerRt, PodRt};

/// Everything the runtime needs to know about its node.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    pub node_name: String,
    pub node_ip: Ipv4Addr,
    /// Per node state: pod dirs, logs, IP allocations.
    pub data_dir: PathBuf,
    pub cluster_dns: Ipv4Addr,
    pub cluster_domain: String,
    pub bridge_name: String,
    /// A binary that runs `<exe> agnhost <args>` (the `portico` binary itself).
    pub agnhost_exe: PathBuf,
}

/// Where a container's log for one run (restart count) is written.
pub fn log_path(
    data_dir: &Path,
    namespace: &str,
    pod: &str,
    uid: &str,
    container: &str,
    restart_count: i32,
) -> PathBuf {
    data_dir
        .join("logs")
        .join(format!("{namespace}_{pod}_{uid}"))
        .join(container)
        .join(format!("{restart_count}.log"))
}

/// What a pod dir records so a later agent can clean up after this one.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct SandboxRecord {
    namespace: String,
    name: String,
    uid: String,
    sandbox: Sandbox,
}

struct NodeNet {
    cidr: Ipv4Net,
    ipam: Ipam,
}

struct PodHandle {
    status: watch::Receiver<PodRt>,
    stop: watch::Sender<Option<Duration>>,
    task: Option<JoinHandle<()>>,
    sandbox: Sandbox,
    namespace: String,
    name: String,
}

/// The pod runtime of one node.
pub struct Runtime {
    pub(crate) cfg: RuntimeConfig,
    pub(crate) tools: Tools,
    net: Mutex<Option<NodeNet>>,
    pods: Mutex<HashMap<String, PodHandle>>,
    events_tx: mpsc::Sender<PodEvent>,
    events_rx: Mutex<Option<mpsc::Receiver<PodEvent>>>,
}

/// Something that happened to a pod's container, for the pod's Events
/// (what `kubectl describe pod` lists): the kubelet's reasons and messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodEvent {
    pub uid: String,
    pub namespace: String,
    pub pod: String,
    pub container: String,
    /// `Normal` or `Warning`.
    pub type_: &'static str,
    pub reason: String,
    pub message: String,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding these locks cannot leave the maps half-updated
    // in a way worse than losing the panicking operation.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Runtime {
    /// Checks the container init binary and creates the data dir.
    pub fn new(cfg: RuntimeConfig) -> Result<Arc<Self>, AgentError> {
        let tools = Tools::find(&cfg.agnhost_exe)?;
        let (events_tx, events_rx) = mpsc::channel(1024);
        std::fs::create_dir_all(cfg.data_dir.join("pods"))
            .map_err(|e| AgentError::io(format!("creating {}", cfg.data_dir.display()), e))?;
        Ok(Arc::new(Self {
            cfg,
            tools,
            net: Mutex::new(None),
            pods: Mutex::new(HashMap::new()),
            events_tx,
            events_rx: Mutex::new(Some(events_rx)),
        }))
    }

    /// The stream of container events (once; later calls get `None`).
    /// Events are dropped, not queued without bound, when nobody reads them.
    pub fn take_events(&self) -> Option<mpsc::Receiver<PodEvent>> {
        lock(&self.events_rx).take()
    }

    pub(crate) fn emit(&self, ev: PodEvent) {
        let _ = self.events_tx.try_send(ev);
    }

    pub fn config(&self) -> &RuntimeConfig {
        &self.cfg
    }

    /// Removes what an earlier agent with this data dir left behind (pods are
    /// recreated from the API, with new IPs), keeping the IP cursor so the
    /// old addresses are not handed out again right away.
    pub async fn cleanup_leftovers(&self) {
        let dir = self.cfg.data_dir.join("pods");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return;
        };
        for e in entries.filter_map(Result::ok) {
            let path = e.path();
            process::kill_recorded(&path.join("pids"));
            if let Ok(bytes) = std::fs::read(path.join("sandbox.json")) {
                if let Ok(rec) = serde_json::from_slice::<SandboxRecord>(&bytes) {
                    tracing::info!(pod = %format!("{}/{}", rec.namespace, rec.name), "removing a pod left by an earlier agent");
                    process::kill_netns_processes(&netops::netns_path(&rec.sandbox.netns));
                    netops::teardown_pod_network(&rec.sandbox).await;
                }
            }
            let _ = std::fs::remove_dir_all(&path);
        }
        let _ = std::fs::remove_dir_all(self.cfg.data_dir.join("logs"));
        if let Ok(bytes) = std::fs::read(ipam::state_path(&self.cfg.data_dir)) {
            if let Ok(mut s) = serde_json::from_slice::<Ipam>(&bytes) {
                s.allocated.clear();
                let _ = ipam::save(&self.cfg.data_dir, &s);
            }
        }
    }

    /// Sets the node up for `cidr`: the bridge with the gateway address,
    /// forwarding, and the IP allocator. Idempotent.
    pub async fn setup_node(&self, cidr: Ipv4Net) -> Result<(), AgentError> {
        let ipam = ipam::load(&self.cfg.data_dir, cidr);
        netops::setup_bridge(&self.cfg.bridge_name, ipam.gateway(), ipam.cidr).await?;
        *lock(&self.net) = Some(NodeNet {
            cidr: ipam.cidr,
            ipam,
        });
        Ok(())
    }

    /// The node's podCIDR once [`Runtime::setup_node`] ran.
    pub fn pod_cidr(&self) -> Option<Ipv4Net> {
        lock(&self.net).as_ref().map(|n| n.cidr)
    }

    fn allocate(&self, uid: &str) -> Result<(Ipv4Addr, Ipv4Addr, Ipv4Net), AgentError> {
        let mut g = lock(&self.net);
        let net = g.as_mut().ok_or(AgentError::NoPodCidr)?;
        let ip = net
            .ipam
            .allocate(uid)
            .ok_or_else(|| AgentError::IpExhausted(net.cidr.to_string()))?;
        if let Err(e) = ipam::save(&self.cfg.data_dir, &net.ipam) {
            tracing::warn!(error = %e, "saving IP allocations");
        }
        Ok((ip, net.ipam.gateway(), net.cidr))
    }

    fn release(&self, uid: &str) {
        let mut g = lock(&self.net);
        if let Some(net) = g.as_mut() {
            net.ipam.release(uid);
            if let Err(e) = ipam::save(&self.cfg.data_dir, &net.ipam) {
                tracing::warn!(error = %e, "saving IP allocations");
            }
        }
    }

    fn pod_dir(&self, uid: &str) -> PathBuf {
        self.cfg.data_dir.join("pods").join(uid)
    }

    /// The status channel of a pod the runtime runs.
    pub fn status(&self, uid: &str) -> Option<watch::Receiver<PodRt>> {
        lock(&self.pods).get(uid).map(|h| h.status.clone())
    }

    /// Uids of the pods the runtime runs.
    pub fn pod_uids(&self) -> Vec<String> {
        lock(&self.pods).keys().cloned().collect()
    }

    /// Creates the pod's sandbox and starts its containers. `services` are the
    /// Services that exist now (for the Service environment variables).
    /// Returns the pod's status channel; starting a running pod returns its channel.
    pub async fn start_pod(
        self: &Arc<Self>,
        pod: &Pod,
        services: &[Service],
    ) -> Result<watch::Receiver<PodRt>, AgentError> {
        let uid = pod
            .metadata
            .uid
            .clone()
            .ok_or_else(|| AgentError::Other("pod without uid".into()))?;
        if let Some(rx) = self.status(&uid) {
            return Ok(rx);
        }
        let namespace = pod
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let name = pod.metadata.name.clone().unwrap_or_default();
        let (ip, gateway, cidr) = self.allocate(&uid)?;
        let sandbox = Sandbox {
            netns: names::netns_name(&self.cfg.node_name, &namespace, &name, &uid),
            veth: names::veth_name(&uid),
            ip,
        };
        let dir = self.pod_dir(&uid);
        let prepared = self.write_pod_files(pod, &dir, &sandbox, &namespace, &name, &uid);
        let result = match prepared {
            Ok(()) => {
                netops::setup_pod_network(&sandbox, &self.cfg.bridge_name, gateway, cidr).await
            }
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            self.release(&uid);
            let _ = std::fs::remove_dir_all(&dir);
            return Err(e);
        }
        let spec = pod.spec.clone().unwrap_or_default();
        let rt = PodRt {
            pod_ip: Some(ip),
            host_ip: self.cfg.node_ip,
            start_time: Timestamp::now(),
            sandbox_ready: true,
            containers: spec
                .containers
                .iter()
                .map(|c| ContainerRt::new(&c.name, c.image.as_deref().unwrap_or("")))
                .collect(),
        };
        let (status_tx, status_rx) = watch::channel(rt);
        let (stop_tx, stop_rx) = watch::channel(None);
        let ctx = Arc::new(container::PodCtx {
            runtime: Arc::clone(self),
            pod: pod.clone(),
            services: services.to_vec(),
            status: status_tx,
            netns_path: netops::netns_path(&sandbox.netns),
            pod_dir: dir,
            ip,
            uid: uid.clone(),
            namespace: namespace.clone(),
            name: name.clone(),
        });
        let task = tokio::spawn(container::supervise(ctx, stop_rx));
        lock(&self.pods).insert(
            uid,
            PodHandle {
                status: status_rx.clone(),
                stop: stop_tx,
                task: Some(task),
                sandbox,
                namespace,
                name,
            },
        );
        Ok(status_rx)
    }

    fn write_pod_files(
        &self,
        pod: &Pod,
        dir: &Path,
        sandbox: &Sandbox,
        namespace: &str,
        name: &str,
        uid: &str,
    ) -> Result<(), AgentError> {
        let write = |file: &str, text: &str| {
            std::fs::write(dir.join(file), text)
                .map_err(|e| AgentError::io(format!("writing {file} of pod {name}"), e))
        };
        std::fs::create_dir_all(dir)
            .map_err(|e| AgentError::io(format!("creating {}", dir.display()), e))?;
        let record = SandboxRecord {
            namespace: namespace.to_string(),
            name: name.to_string(),
            uid: uid.to_string(),
            sandbox: sandbox.clone(),
        };
        let json =
            serde_json::to_string_pretty(&record).map_err(|e| AgentError::Other(e.to_string()))?;
        write("sandbox.json", &json)?;
        let spec = pod.spec.as_ref();
        let hostname = spec
            .and_then(|s| s.hostname.clone())
            .unwrap_or_else(|| name.to_string());
        let fqdn = spec.and_then(|s| s.subdomain.as_deref()).map(|sub| {
            format!(
                "{hostname}.{sub}.{namespace}.svc.{}",
                self.cfg.cluster_domain
            )
        });
        write(
            "resolv.conf",
            &podfiles::pod_resolv_conf(
                spec,
                self.cfg.cluster_dns,
                namespace,
                &self.cfg.cluster_domain,
                &std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
            ),
        )?;
        write(
            "hosts",
            &podfiles::hosts_file(sandbox.ip, &hostname, fqdn.as_deref()),
        )?;
        write("hostname", &format!("{hostname}\n"))?;
        Ok(())
    }

    /// Stops a pod: SIGTERM to every container, SIGKILL after `grace`, then
    /// removes its netns, veth, files and IP. Returns once all of it is gone.
    pub async fn stop_pod(&self, uid: &str, grace: Duration) {
        let (task, sandbox, ns, name) = {
            let mut pods = lock(&self.pods);
            let Some(h) = pods.get_mut(uid) else { return };
            h.stop.send_replace(Some(grace));
            (
                h.task.take(),
                h.sandbox.clone(),
                h.namespace.clone(),
                h.name.clone(),
            )
        };
        if let Some(task) = task {
            let _ = task.await;
        }
        process::kill_netns_processes(&netops::netns_path(&sandbox.netns));
        netops::teardown_pod_network(&sandbox).await;
        self.release(uid);
        let _ = std::fs::remove_dir_all(self.pod_dir(uid));
        let _ = std::fs::remove_dir_all(
            self.cfg
                .data_dir
                .join("logs")
                .join(format!("{ns}_{name}_{uid}")),
        );
        lock(&self.pods).remove(uid);
        tracing::info!(pod = %format!("{ns}/{name}"), "pod stopped and removed");
    }

    /// Stops every pod (grace capped at `max_grace`) and removes the bridge
    /// and routes: what `portico up`'s Ctrl-C needs.
    pub async fn shutdown(&self, max_grace: Duration) {
        let uids = self.pod_uids();
        let stops = uids.iter().map(|u| self.stop_pod(u, max_grace));
        futures::future::join_all(stops).await;
        netops::teardown_node(&self.cfg.bridge_name).await;
    }

    /// The network namespace name of a running pod (for `ip netns exec`).
    pub fn netns_of(&self, uid: &str) -> Option<String> {
        lock(&self.pods).get(uid).map(|h| h.sandbox.netns.clone())
    }

    /// Pids of every process in a pod's network namespace.
    pub fn pod_pids(&self, uid: &str) -> Vec<i32> {
        match self.netns_of(uid) {
            Some(ns) => process::pids_in_netns(&netops::netns_path(&ns)),
            None => Vec::new(),
        }
    }

    /// Whether the runtime still holds a pod.
    pub fn has_pod(&self, uid: &str) -> bool {
        lock(&self.pods).contains_key(uid)
    }
}
