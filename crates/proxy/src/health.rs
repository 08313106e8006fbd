//! HTTP servers of the proxy: health check node ports for
//! `externalTrafficPolicy: Local` Services (200 with the local endpoint
//! count, 503 with none) and `/healthz` + `/metrics`.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use prometheus_client::registry::Registry;
use tokio::task::JoinHandle;

use crate::plan::HealthCheck;

/// The body a health check node port answers with.
pub fn health_body(hc: &HealthCheck) -> (StatusCode, String) {
    let body = serde_json::json!({
        "service": {"namespace": hc.namespace, "name": hc.name},
        "localEndpoints": hc.local_endpoints,
    });
    let code = if hc.local_endpoints > 0 {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, body.to_string())
}

type Shared = Arc<RwLock<HealthCheck>>;

async fn serve_check(State(hc): State<Shared>) -> Response {
    let hc = match hc.read() {
        Ok(g) => g.clone(),
        Err(p) => p.into_inner().clone(),
    };
    let (code, body) = health_body(&hc);
    (code, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// The running health check servers, one per node port.
pub struct HealthServers {
    bind_ip: IpAddr,
    servers: BTreeMap<u16, (Shared, JoinHandle<()>)>,
}

impl Default for HealthServers {
    fn default() -> Self {
        HealthServers::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
    }
}

impl HealthServers {
    /// Servers listening on `bind_ip` (all addresses of the node in production).
    pub fn new(bind_ip: IpAddr) -> Self {
        HealthServers {
            bind_ip,
            servers: BTreeMap::new(),
        }
    }

    /// Ports being served.
    pub fn ports(&self) -> Vec<u16> {
        self.servers.keys().copied().collect()
    }

    /// Starts, updates and stops servers to match `wanted`.
    pub async fn update(&mut self, wanted: &BTreeMap<u16, HealthCheck>) {
        let gone: Vec<u16> = self
            .servers
            .keys()
            .filter(|p| !wanted.contains_key(*p))
            .copied()
            .collect();
        for port in gone {
            if let Some((_, task)) = self.servers.remove(&port) {
                task.abort();
            }
        }
        for (port, hc) in wanted {
            if let Some((shared, _)) = self.servers.get(port) {
                match shared.write() {
                    Ok(mut g) => *g = hc.clone(),
                    Err(p) => *p.into_inner() = hc.clone(),
                }
                continue;
            }
            let addr = SocketAddr::new(self.bind_ip, *port);
            let listener = match tokio::net::TcpListener::bind(addr).await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(port, error = %e, "cannot serve health check node port");
                    continue;
                }
            };
            let shared: Shared = Arc::new(RwLock::new(hc.clone()));
            let app = Router::new()
                .fallback(get(serve_check))
                .with_state(shared.clone());
            let task = tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, app).await {
                    tracing::warn!(error = %e, "health check server stopped");
                }
            });
            self.servers.insert(*port, (shared, task));
        }
    }

    /// Stops every server.
    pub fn stop(&mut self) {
        for (_, (_, task)) in std::mem::take(&mut self.servers) {
            task.abort();
        }
    }
}

/// Shared state of `/healthz`: healthy when the last sync succeeded recently
/// enough or nothing was pending.
#[derive(Debug, Clone, Default)]
pub struct Healthz {
    inner: Arc<RwLock<HealthState>>,
}

#[derive(Debug, Default)]
struct HealthState {
    last_success: Option<SystemTime>,
    failing_since: Option<SystemTime>,
}

impl Healthz {
    /// Records a sync result.
    pub fn record(&self, ok: bool) {
        let now = SystemTime::now();
        let mut g = match self.inner.write() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if ok {
            g.last_success = Some(now);
            g.failing_since = None;
        } else if g.failing_since.is_none() {
            g.failing_since = Some(now);
        }
    }

    fn status(&self) -> (StatusCode, String) {
        let g = match self.inner.read() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let unhealthy = g
            .failing_since
            .is_some_and(|t| t.elapsed().unwrap_or_default() > Duration::from_secs(60))
            || g.last_success.is_none();
        let secs = |t: Option<SystemTime>| {
            t.and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
                .map(|d| d.as_secs_f64())
        };
        let body = serde_json::json!({"lastUpdated": secs(g.last_success), "failingSince": secs(g.failing_since)});
        let code = if unhealthy {
            StatusCode::SERVICE_UNAVAILABLE
        } else {
            StatusCode::OK
        };
        (code, body.to_string())
    }
}

/// Serves `/healthz` and `/metrics` on `listener` until the task is aborted.
pub fn serve_admin(
    listener: tokio::net::TcpListener,
    healthz: Healthz,
    registry: Arc<Registry>,
) -> JoinHandle<()> {
    let app = Router::new()
        .route(
            "/healthz",
            get(move || {
                let h = healthz.clone();
                async move {
                    let (code, body) = h.status();
                    (code, [(header::CONTENT_TYPE, "application/json")], body)
                }
            }),
        )
        .route(
            "/metrics",
            get(move || {
                let r = registry.clone();
                async move {
                    let mut out = String::new();
                    match prometheus_client::encoding::text::encode(&mut out, &r) {
                        Ok(()) => (
                            StatusCode::OK,
                            [(
                                header::CONTENT_TYPE,
                                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                            )],
                            out,
                        ),
                        Err(_) => (
                            StatusCode::INTERNAL_SERVER_ERROR,
                            [(header::CONTENT_TYPE, "text/plain")],
                            String::new(),
                        ),
                    }
                }
            }),
        );
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!(error = %e, "proxy admin server stopped");
        }
    })
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    async fn get(port: u16) -> String {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        s.write_all(b"GET / HTTP/1.0\r\n\r\n").await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn health_check_node_port_follows_the_local_endpoint_count() {
        // An ephemeral port stands in for the healthCheckNodePort.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut servers = HealthServers::new(IpAddr::V4(Ipv4Addr::LOCALHOST));
        let mut hc = HealthCheck {
            namespace: "default".into(),
            name: "web".into(),
            local_endpoints: 1,
        };
        servers.update(&BTreeMap::from([(port, hc.clone())])).await;
        let answer = get(port).await;
        assert!(answer.starts_with("HTTP/1.0 200"), "{answer}");
        assert!(
            answer.ends_with(
                r#"{"service":{"namespace":"default","name":"web"},"localEndpoints":1}"#
            ),
            "{answer}"
        );
        hc.local_endpoints = 0;
        servers.update(&BTreeMap::from([(port, hc)])).await;
        assert!(get(port).await.starts_with("HTTP/1.0 503"));
        servers.update(&BTreeMap::new()).await;
        assert!(servers.ports().is_empty());
        servers.stop();
    }

    #[tokio::test]
    async fn admin_serves_healthz_and_metrics() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let metrics = crate::metrics::ProxyMetrics::new();
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        metrics.sync_duration.observe(0.004);
        metrics.rules.set(11);
        let healthz = Healthz::default();
        let task = serve_admin(listener, healthz.clone(), Arc::new(registry));
        let get_path = |path: &'static str| async move {
            let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .unwrap();
            s.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())
                .await
                .unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).await.unwrap();
            out
        };
        // Not healthy before the first sync.
        assert!(get_path("/healthz").await.starts_with("HTTP/1.0 503"));
        healthz.record(true);
        assert!(get_path("/healthz").await.starts_with("HTTP/1.0 200"));
        let m = get_path("/metrics").await;
        assert!(m.contains("portico_proxy_rules 11"), "{m}");
        assert!(
            m.contains("portico_proxy_sync_duration_seconds_count 1"),
            "{m}"
        );
        assert!(
            m.contains("portico_proxy_last_sync_timestamp_seconds"),
            "{m}"
        );
        task.abort();
    }

    #[test]
    fn health_check_answers_200_with_count_and_503_without() {
        let mut hc = HealthCheck {
            namespace: "default".into(),
            name: "web".into(),
            local_endpoints: 2,
        };
        let (code, body) = health_body(&hc);
        assert_eq!(code, StatusCode::OK);
        assert_eq!(
            body,
            r#"{"service":{"namespace":"default","name":"web"},"localEndpoints":2}"#
        );
        hc.local_endpoints = 0;
        assert_eq!(health_body(&hc).0, StatusCode::SERVICE_UNAVAILABLE);
    }
}
