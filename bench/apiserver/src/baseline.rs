//! The baseline server: the same TLS stack (rustls + ring, ALPN h2/http1.1,
//! hyper-util's auto builder, TCP_NODELAY) as `portico server`, answering
//! the same requests with no validation, no store and no controllers. A create
//! decodes the JSON, stamps a resourceVersion, a ClusterIP and (for NodePort)
//! a nodePort from counters, optionally appends the object to a file and
//! fsyncs it (`--baseline-fsync`, one fsync per write, serialised), fans an
//! ADDED event out to watchers and answers 201 with the object. So it measures
//! the floor that client, TLS, HTTP and JSON put under any API server here.

use std::convert::Infallible;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::StreamExt as _;
use http::{Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::{json, Value};
use tokio::sync::broadcast;
use tokio_rustls::TlsAcceptor;
use tokio_stream::wrappers::BroadcastStream;

use crate::BenchError;

type Body = BoxBody<Bytes, Infallible>;

struct State {
    auth: String,
    revision: AtomicU64,
    services: AtomicU64,
    nodeports: AtomicU64,
    events: broadcast::Sender<Bytes>,
    wal: Option<Arc<Mutex<std::fs::File>>>,
}

/// Serves until the process is killed; writes `dir/kubeconfig.yaml` and prints
/// `Baseline server at https://127.0.0.1:PORT`.
pub async fn serve(dir: PathBuf, fsync: bool) -> Result<(), BenchError> {
    let io = |p: &Path| {
        let p = p.display().to_string();
        move |e: std::io::Error| BenchError::Io(format!("{p}: {e}"))
    };
    let tls = |e: &dyn std::fmt::Display| BenchError::Tls(e.to_string());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(io(&dir))?;
    let addr = listener.local_addr().map_err(io(&dir))?;
    let ck =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .map_err(|e| tls(&e))?;
    let cert_pem = ck.cert.pem();
    let token = format!("baseline-{}", std::process::id());
    let url = format!("https://{addr}");
    let kc = dir.join("kubeconfig.yaml");
    std::fs::write(&kc, crate::kubeconfig::render(&url, &cert_pem, &token)).map_err(io(&kc))?;

    let certs = vec![ck.cert.der().clone()];
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(ck.signing_key.serialize_der().into());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls(&e))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| tls(&e))?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = TlsAcceptor::from(Arc::new(cfg));

    let wal = if fsync {
        let p = dir.join("wal");
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&p)
            .map_err(io(&p))?;
        Some(Arc::new(Mutex::new(f)))
    } else {
        None
    };
    let (events, _) = broadcast::channel(1 << 16);
    let state = Arc::new(State {
        auth: format!("Bearer {token}"),
        revision: AtomicU64::new(1),
        services: AtomicU64::new(0),
        nodeports: AtomicU64::new(0),
        events,
        wal,
    });
    println!("Baseline server at {url}");
    loop {
        let (tcp, _) = match listener.accept().await {
            Ok(c) => c,
            Err(_) => continue,
        };
        let _ = tcp.set_nodelay(true);
        let (acceptor, state) = (acceptor.clone(), state.clone());
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            let svc = hyper::service::service_fn(move |req| handle(state.clone(), req));
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tls), svc)
                .await;
        });
    }
}

fn respond(status: StatusCode, body: impl Into<Bytes>) -> Result<Response<Body>, Infallible> {
    let mut r = Response::new(Full::new(body.into()).boxed());
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    Ok(r)
}

async fn handle(state: Arc<State>, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let authorized = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        == Some(state.auth.as_str());
    if !authorized {
        return respond(StatusCode::UNAUTHORIZED, r#"{"kind":"Status","code":401}"#);
    }
    let path = req.uri().path().to_string();
    let watch = req
        .uri()
        .query()
        .is_some_and(|q| q.split('&').any(|kv| kv == "watch=true"));
    match *req.method() {
        Method::GET if path == "/readyz" => respond(StatusCode::OK, "ok"),
        Method::GET if watch => {
            let rx = state.events.subscribe();
            let stream = BroadcastStream::new(rx)
                .filter_map(|r| async move { r.ok().map(|b| Ok::<_, Infallible>(Frame::data(b))) });
            let mut r = Response::new(BodyExt::boxed(StreamBody::new(stream)));
            r.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/json"),
            );
            Ok(r)
        }
        Method::GET => {
            let rv = state.revision.load(Ordering::SeqCst).to_string();
            respond(StatusCode::OK, json!({"kind": "List", "apiVersion": "v1", "metadata": {"resourceVersion": rv}, "items": []}).to_string())
        }
        Method::POST => {
            let Ok(body) = req.into_body().collect().await.map(|b| b.to_bytes()) else {
                return respond(StatusCode::BAD_REQUEST, "{}");
            };
            let Ok(mut obj) = serde_json::from_slice::<Value>(&body) else {
                return respond(StatusCode::BAD_REQUEST, "{}");
            };
            create(&state, &path, &mut obj).await
        }
        _ => respond(StatusCode::METHOD_NOT_ALLOWED, "{}"),
    }
}

async fn create(
    state: &Arc<State>,
    path: &str,
    obj: &mut Value,
) -> Result<Response<Body>, Infallible> {
    let rv = state.revision.fetch_add(1, Ordering::SeqCst) + 1;
    obj["metadata"]["resourceVersion"] = json!(rv.to_string());
    if path.ends_with("/services") {
        // 10.96.1.0 onwards, so no address repeats for up to 64k Services.
        let n = state.services.fetch_add(1, Ordering::SeqCst) + 256;
        let ip = format!("10.96.{}.{}", (n >> 8) & 0xff, n & 0xff);
        obj["spec"]["clusterIP"] = json!(ip);
        obj["spec"]["clusterIPs"] = json!([ip]);
        if obj["spec"]["type"] == "NodePort" {
            let p = 30000 + state.nodeports.fetch_add(1, Ordering::SeqCst) % 2768;
            obj["spec"]["ports"][0]["nodePort"] = json!(p);
        }
    }
    let bytes = Bytes::from(serde_json::to_vec(obj).unwrap_or_default());
    if let Some(wal) = &state.wal {
        let (wal, data) = (wal.clone(), bytes.clone());
        let synced = tokio::task::spawn_blocking(move || {
            let mut f = wal
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            f.write_all(&data)
                .and_then(|()| f.write_all(b"\n"))
                .and_then(|()| f.sync_data())
        })
        .await;
        if !matches!(synced, Ok(Ok(()))) {
            return respond(StatusCode::INTERNAL_SERVER_ERROR, "{}");
        }
    }
    let mut line = Vec::with_capacity(bytes.len() + 32);
    line.extend_from_slice(br#"{"type":"ADDED","object":"#);
    line.extend_from_slice(&bytes);
    line.extend_from_slice(b"}\n");
    // No watcher yet is fine (send only fails when nobody listens).
    let _ = state.events.send(Bytes::from(line));
    respond(StatusCode::CREATED, bytes)
}
