//! Test harness: the real API server in-process (ephemeral port, temp dir), the controllers
//! against it through kube-rs, a fake kubelet marking pods Running/Ready with IPs from their
//! node's podCIDR, and kubectl helpers.

use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use portico_apiserver::{prepare, run, ServerConfig};
use portico_controllers::ControllersConfig;
use serde_json::json;
use tempfile::TempDir;

pub struct Cluster {
    pub dir: TempDir,
    pub kubeconfig: PathBuf,
    pub client: Client,
    stops: Vec<tokio::sync::oneshot::Sender<()>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

pub fn default_config() -> ControllersConfig {
    ControllersConfig {
        node_lease_timeout: Duration::from_secs(3600),
        ..ControllersConfig::default()
    }
}

async fn client_for(kubeconfig: &std::path::Path) -> Client {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig).unwrap();
    let cfg = kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
        .await
        .unwrap();
    Client::try_from(cfg).unwrap()
}

/// Polls `f` every 20 ms until it returns `Some`, failing after `secs` seconds.
pub async fn eventually<T, F, Fut>(secs: u64, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

impl Cluster {
    /// API server + controllers + `nodes` Ready nodes (node-1..node-N) + fake kubelet.
    pub async fn start(config: ControllersConfig, nodes: usize) -> Self {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let dir = tempfile::tempdir().unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut cfg = ServerConfig::new(dir.path(), format!("https://127.0.0.1:{port}"));
        cfg.listeners = vec![listener];
        let prepared = prepare(&cfg).unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            run(cfg, async move {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
        let client = client_for(&prepared.kubeconfig_path).await;
        let ns_api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
        eventually(20, "API server ready", || {
            let ns_api = ns_api.clone();
            async move { ns_api.get("default").await.ok() }
        })
        .await;
        let mut c = Self {
            dir,
            kubeconfig: prepared.kubeconfig_path.clone(),
            client: client.clone(),
            stops: vec![tx],
            tasks: vec![server],
        };
        for i in 1..=nodes {
            c.add_node(&format!("node-{i}"), &[]).await;
        }
        let (ctx, crx) = tokio::sync::oneshot::channel::<()>();
        let cl = client.clone();
        c.tasks.push(tokio::spawn(async move {
            portico_controllers::run(cl, config, async move {
                let _ = crx.await;
            })
            .await
            .unwrap();
        }));
        c.stops.push(ctx);
        let (ktx, mut krx) = tokio::sync::oneshot::channel::<()>();
        let cl = client.clone();
        c.tasks.push(tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = &mut krx => return,
                    _ = tokio::time::sleep(Duration::from_millis(30)) => fake_kubelet_pass(&cl).await,
                }
            }
        }));
        c.stops.push(ktx);
        c
    }

    /// Registers a Ready node with labels (status written through the status subresource).
    pub async fn add_node(&self, name: &str, labels: &[(&str, &str)]) {
        let nodes: Api<Node> = Api::all(self.client.clone());
        let mut l: serde_json::Map<String, serde_json::Value> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        l.insert("kubernetes.io/hostname".into(), json!(name));
        let node: Node = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": l},
        }))
        .unwrap();
        nodes.create(&PostParams::default(), &node).await.unwrap();
        set_node_ready(&self.client, name, "True").await;
    }

    /// Runs kubectl against the cluster; returns (success, stdout, stderr).
    pub async fn kubectl(&self, args: &[&str]) -> (bool, String, String) {
        let mut cmd = tokio::process::Command::new("kubectl");
        cmd.arg("--kubeconfig").arg(&self.kubeconfig).args(args);
        let out = tokio::time::timeout(Duration::from_secs(120), cmd.output())
            .await
            .expect("kubectl timed out")
            .expect("kubectl runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// kubectl apply -f - with `yaml`.
    pub async fn apply(&self, yaml: &str) {
        let path = self.dir.path().join(format!("m-{}.yaml", rand_suffix()));
        std::fs::write(&path, yaml).unwrap();
        let file = path.to_str().unwrap();
        let (ok, out, err) = self.kubectl(&["apply", "-f", file]).await;
        assert!(ok, "kubectl apply failed: {out} {err}");
    }

    pub async fn stop(mut self) {
        for s in self.stops.drain(..).rev() {
            let _ = s.send(());
        }
        for t in self.tasks.drain(..).rev() {
            let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
        }
    }
}

fn rand_suffix() -> String {
    format!("{:016x}", rand::random::<u64>())
}

pub async fn set_node_ready(client: &Client, name: &str, status: &str) {
    let nodes: Api<Node> = Api::all(client.clone());
    let now = jiff::Timestamp::now().to_string();
    let patch = json!({"status": {"conditions": [{
        "type": "Ready", "status": status, "reason": "KubeletReady",
        "message": "kubelet is posting ready status",
        "lastHeartbeatTime": now, "lastTransitionTime": now,
    }]}});
    nodes
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
}

/// Marks a pod Running with `ip` and the given readiness (what a kubelet reports).
pub async fn set_pod_status(client: &Client, ns: &str, name: &str, ip: &str, ready: bool) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let now = jiff::Timestamp::now().to_string();
    let r = if ready { "True" } else { "False" };
    let patch = json!({"status": {
        "phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}], "hostIP": "10.0.0.1",
        "startTime": now,
        "conditions": [
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
            {"type": "Initialized", "status": "True", "lastTransitionTime": now},
            {"type": "ContainersReady", "status": r, "lastTransitionTime": now},
            {"type": "Ready", "status": r, "lastTransitionTime": now},
        ],
    }});
    pods.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
}

/// Pods the fake kubelet leaves alone (tests drive their status by hand).
pub const MANUAL_LABEL: &str = "test.portico.io/manual";

/// One fake-kubelet pass: bound pods without an IP get one from the node's podCIDR and turn
/// Ready; pods being deleted are finished (gracePeriodSeconds=0).
async fn fake_kubelet_pass(client: &Client) {
    let pods: Api<Pod> = Api::all(client.clone());
    let nodes: Api<Node> = Api::all(client.clone());
    let (Ok(pods_list), Ok(node_list)) = (
        pods.list(&ListParams::default()).await,
        nodes.list(&ListParams::default()).await,
    ) else {
        return;
    };
    for pod in pods_list {
        if pod.labels().contains_key(MANUAL_LABEL) {
            continue;
        }
        let ns = pod.namespace().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
        if pod.metadata.deletion_timestamp.is_some() {
            let _ = api
                .delete(&pod.name_any(), &DeleteParams::default().grace_period(0))
                .await;
            continue;
        }
        let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.clone()) else {
            continue;
        };
        if pod
            .status
            .as_ref()
            .and_then(|s| s.pod_ip.as_ref())
            .is_some()
        {
            continue;
        }
        let Some(cidr) = node_list
            .iter()
            .find(|n| n.name_any() == node)
            .and_then(|n| n.spec.as_ref()?.pod_cidr.clone())
        else {
            continue;
        };
        let net: ipnet::Ipv4Net = cidr.parse().unwrap();
        let used = pods_list_ips(client, &node).await;
        let ip = net
            .hosts()
            .skip(1)
            .find(|ip| !used.contains(&ip.to_string()))
            .unwrap();
        set_pod_status(client, &ns, &pod.name_any(), &ip.to_string(), true).await;
    }
}

async fn pods_list_ips(client: &Client, node: &str) -> Vec<String> {
    let pods: Api<Pod> = Api::all(client.clone());
    pods.list(&ListParams::default())
        .await
        .map(|l| {
            l.items
                .iter()
                .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node))
                .filter_map(|p| p.status.as_ref()?.pod_ip.clone())
                .collect()
        })
        .unwrap_or_default()
}
