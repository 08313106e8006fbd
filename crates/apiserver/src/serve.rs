//! TLS listeners: rustls with ALPN h2/http1.1, one task per connection, stopped on shutdown.

use std::future::Future;
use std::sync::Arc;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::http::AppState;
use crate::pki::Material;
use crate::ServerError;

fn tls_config(m: &Material) -> Result<rustls::ServerConfig, ServerError> {
    let tls = |e: &dyn std::fmt::Display| ServerError::Tls(e.to_string());
    let certs: Vec<_> = rustls_pemfile::certs(&mut m.server_cert_pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| tls(&e))?;
    let key = rustls_pemfile::private_key(&mut m.server_key_pem.as_bytes())
        .map_err(|e| tls(&e))?
        .ok_or_else(|| ServerError::Tls("no private key in server.key".into()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls(&e))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| tls(&e))?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(cfg)
}

/// Serves HTTPS on every listener until `shutdown` resolves.
pub(crate) async fn serve(
    state: Arc<AppState>,
    listeners: Vec<std::net::TcpListener>,
    material: &Material,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let acceptor = TlsAcceptor::from(Arc::new(tls_config(material)?));
    let router = crate::http::router(state);
    let mut tasks = JoinSet::new();
    for l in listeners {
        l.set_nonblocking(true)
            .map_err(|e| ServerError::Io(e.to_string()))?;
        let listener =
            tokio::net::TcpListener::from_std(l).map_err(|e| ServerError::Io(e.to_string()))?;
        let acceptor = acceptor.clone();
        let router = router.clone();
        tasks.spawn(async move {
            // Connections live in this set, so aborting the accept loop on
            // shutdown also drops every open connection (watches included).
            let mut conns = JoinSet::new();
            loop {
                let (tcp, _) = match listener.accept().await {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        continue;
                    }
                };
                let _ = tcp.set_nodelay(true);
                let acceptor = acceptor.clone();
                let svc = TowerToHyperService::new(router.clone());
                conns.spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let builder = auto::Builder::new(TokioExecutor::new());
                    if let Err(e) = builder
                        .serve_connection_with_upgrades(TokioIo::new(tls), svc)
                        .await
                    {
                        tracing::debug!(error = %e, "connection ended");
                    }
                });
                // Reap finished connections so the set does not grow without bound.
                while conns.try_join_next().is_some() {}
            }
        });
    }
    shutdown.await;
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    Ok(())
}
