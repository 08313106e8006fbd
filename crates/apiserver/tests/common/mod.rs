//! Test harness: runs the API server in-process on an ephemeral 127.0.0.1 port in a
//! temp dir, with a kube-rs client and raw-request helpers.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::path::Path;
use std::time::{Duration, Instant};

use http::{Method, Request};
use http_body_util::BodyExt;
use portico_apiserver::{prepare, run, Prepared, ServerConfig};
use serde_json::Value;
use tempfile::TempDir;

pub struct TestServer {
    pub dir: TempDir,
    pub url: String,
    pub prepared: Prepared,
    pub client: kube::Client,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<()>>,
}

pub fn config(dir: &Path, listener: std::net::TcpListener) -> ServerConfig {
    let port = listener.local_addr().unwrap().port();
    let mut cfg = ServerConfig::new(dir, format!("https://127.0.0.1:{port}"));
    cfg.listeners = vec![listener];
    cfg
}

pub async fn client_for(kubeconfig: &Path) -> kube::Client {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig).unwrap();
    let cfg =
        match kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await
        {
            Ok(c) => c,
            Err(e) => panic!(
                "{e}: kubeconfig is {:?}",
                std::fs::read_to_string(kubeconfig)
            ),
        };
    kube::Client::try_from(cfg).unwrap()
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_in(tempfile::tempdir().unwrap()).await
    }

    pub async fn start_in(dir: TempDir) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let cfg = config(dir.path(), listener);
        let url = cfg.advertise_url.clone();
        let prepared = prepare(&cfg).unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(async move {
            run(cfg, async move {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
        let client = client_for(&prepared.kubeconfig_path).await;
        let s = Self {
            dir,
            url,
            prepared,
            client,
            shutdown: Some(tx),
            handle: Some(handle),
        };
        s.wait_ready().await;
        s
    }

    async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok((200, _)) = self
                .try_req(
                    Method::GET,
                    "/api/v1/namespaces/default",
                    None,
                    "application/json",
                )
                .await
            {
                return;
            }
            assert!(Instant::now() < deadline, "server did not become ready");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the server and returns its data dir (for restarts).
    pub async fn stop(mut self) -> TempDir {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            h.await.unwrap();
        }
        self.dir
    }

    pub async fn try_req(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        content_type: &str,
    ) -> Result<(u16, Value), kube::Error> {
        let body = body
            .map(|b| serde_json::to_vec(b).unwrap())
            .unwrap_or_default();
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", content_type)
            .body(kube::client::Body::from(body))
            .unwrap();
        let resp = self.client.send(req).await?;
        let code = resp.status().as_u16();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let v = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        Ok((code, v))
    }

    pub async fn req(&self, method: Method, path: &str, body: Option<&Value>) -> (u16, Value) {
        self.try_req(method, path, body, "application/json")
            .await
            .unwrap()
    }

    pub async fn patch(&self, path: &str, body: &Value, content_type: &str) -> (u16, Value) {
        self.try_req(Method::PATCH, path, Some(body), content_type)
            .await
            .unwrap()
    }

    pub fn kubeconfig(&self) -> &Path {
        &self.prepared.kubeconfig_path
    }

    /// Runs kubectl against this server; returns (exit ok, stdout, stderr).
    pub async fn kubectl(&self, args: &[&str]) -> (bool, String, String) {
        kubectl_at(self.kubeconfig(), args).await
    }
}

pub async fn kubectl_at(kubeconfig: &Path, args: &[&str]) -> (bool, String, String) {
    let out = tokio::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .output()
        .await
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub fn nodeport_svc(name: &str, node_port: Option<u16>) -> Value {
    let mut port = serde_json::json!({"port": 80, "targetPort": 80, "protocol": "TCP"});
    if let Some(n) = node_port {
        port["nodePort"] = n.into();
    }
    serde_json::json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name},
        "spec": {"type": "NodePort", "selector": {"app": "nginx"}, "ports": [port]},
    })
}
