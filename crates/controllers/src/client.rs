//! A kube-rs client for the controllers with TCP_NODELAY on its connections.
//!
//! kube's default client leaves Nagle's algorithm on: a request whose body goes out in a
//! second segment then waits for the server's delayed ACK (~40 ms on Linux), which showed up
//! as a 50 ms floor on every readiness change → EndpointSlice write. Same stack otherwise
//! (rustls from the kubeconfig, base URI, auth, extra headers).

use kube::client::ConfigExt;
use kube::{Client, Config};

/// Builds a client from `config` whose TCP connections set `TCP_NODELAY`.
pub fn client_nodelay(config: &Config) -> Result<Client, kube::Error> {
    let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    let https = config.rustls_https_connector_with_connector(http)?;
    let hyper = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build::<_, kube::client::Body>(https);
    let svc = tower::ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(config.auth_layer()?)
        .layer(config.extra_headers_layer()?)
        .map_err(tower::BoxError::from)
        .service(hyper);
    Ok(Client::new(svc, config.default_namespace.clone()))
}
