//! `GET pods/{name}/log`: picks the container, finds the pod's node and
//! proxies the node agent's `/containerLogs` answer (streamed for `follow`).

use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use http::{header, HeaderValue, StatusCode};
use http_body_util::BodyExt as _;
use hyper_util::rt::TokioIo;
use portico_api::status::ApiError;
use serde_json::Value;

use crate::http::{ApiResult, AppState, Req};
use crate::objects;
use crate::rest::{read, store_err};

/// Opens a TCP connection to a node address (the API server may live in
/// another network namespace than the nodes, see `ServerConfig::node_dialer`).
pub type NodeDialer = Arc<dyn Fn(SocketAddr) -> std::io::Result<TcpStream> + Send + Sync>;

/// The kubelet port assumed when a Node reports none (kube-apiserver's
/// `--kubelet-port` default).
const DEFAULT_KUBELET_PORT: u16 = 10250;

/// How long connecting to a node may take.
const DIAL_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest error body read back from an agent.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// Query parameters passed on to the agent, as `PodLogOptions` names them.
const FORWARDED: &[&str] = &[
    "follow",
    "previous",
    "tailLines",
    "timestamps",
    "limitBytes",
    "sinceSeconds",
];

/// The container whose log is wanted, with kube-apiserver's errors
/// (`pod.ValidateContainer`): the only container when none is named.
pub(crate) fn pick_container(pod: &Value, requested: Option<&str>) -> Result<String, ApiError> {
    let pod_name = pod["metadata"]["name"].as_str().unwrap_or("");
    let names_in = |field: &str| -> Vec<String> {
        pod["spec"][field]
            .as_array()
            .map(|cs| {
                cs.iter()
                    .filter_map(|c| c["name"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let containers = names_in("containers");
    // Kubernetes lists init, regular, then ephemeral containers.
    let all: Vec<String> = names_in("initContainers")
        .into_iter()
        .chain(containers.iter().cloned())
        .chain(names_in("ephemeralContainers"))
        .collect();
    match requested {
        Some(c) if all.iter().any(|n| n == c) => Ok(c.to_string()),
        Some(c) => Err(ApiError::bad_request(format!(
            "container {c} is not valid for pod {pod_name}"
        ))),
        None => match containers.as_slice() {
            [only] => Ok(only.clone()),
            [] => Err(ApiError::bad_request(format!(
                "a container name must be specified for pod {pod_name}"
            ))),
            _ => Err(ApiError::bad_request(format!(
                "a container name must be specified for pod {pod_name}, choose one of: [{}]",
                all.join(" ")
            ))),
        },
    }
}

/// The agent's address on a Node: its InternalIP and kubelet port.
pub(crate) fn node_address(node: &Value) -> Result<SocketAddr, ApiError> {
    let name = node["metadata"]["name"].as_str().unwrap_or("");
    let ip: IpAddr = node["status"]["addresses"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["type"] == "InternalIP")
        .find_map(|a| a["address"].as_str().and_then(|s| s.parse().ok()))
        .ok_or_else(|| {
            ApiError::internal(format!(
                "no preferred addresses found; known addresses: [] for node {name}"
            ))
        })?;
    let port = node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"]
        .as_u64()
        .and_then(|p| u16::try_from(p).ok())
        .filter(|p| *p != 0)
        .unwrap_or(DEFAULT_KUBELET_PORT);
    Ok(SocketAddr::new(ip, port))
}

/// The agent's URL path for a container log, with the options it understands.
pub(crate) fn agent_path(
    rq_query: &std::collections::HashMap<String, String>,
    ns: &str,
    pod: &str,
    container: &str,
) -> String {
    let mut path = format!("/containerLogs/{ns}/{pod}/{container}");
    let mut sep = '?';
    for key in FORWARDED {
        // Only plain values (numbers, booleans): nothing to escape.
        if let Some(v) = rq_query
            .get(*key)
            .filter(|v| !v.is_empty() && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
        {
            path.push(sep);
            path.push_str(key);
            path.push('=');
            path.push_str(v);
            sep = '&';
        }
    }
    path
}

/// Serves `GET pods/{name}/log`.
pub(crate) async fn logs(st: &AppState, rq: &Req) -> ApiResult {
    let (_, pod) = read(st, rq).await?;
    let container = pick_container(&pod, rq.q("container"))?;
    let Some(node_name) = pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) else {
        // Like kube-apiserver: a pod not yet scheduled has no log, and no error.
        return Ok(text_response(StatusCode::OK, Body::empty()));
    };
    let nodes = portico_api::resource::find("", "v1", "nodes")
        .ok_or_else(|| ApiError::internal("nodes are not served"))?;
    let kv = st
        .store
        .get(&objects::key(nodes, None, node_name))
        .await
        .map_err(store_err)?
        .ok_or_else(|| ApiError::not_found("", "nodes", node_name))?;
    let addr = node_address(&objects::decode(&kv)?)?;
    let ns = rq.target.namespace.as_deref().unwrap_or("default");
    let pod_name = pod["metadata"]["name"].as_str().unwrap_or("");
    let path = agent_path(&rq.query, ns, pod_name, &container);
    let url = format!("http://{addr}{path}");
    let fail = |e: &dyn std::fmt::Display| ApiError::internal(format!("Get \"{url}\": {e}"));

    let dial = st.node_dialer.clone();
    let stream = tokio::time::timeout(
        DIAL_TIMEOUT,
        tokio::task::spawn_blocking(move || match dial {
            Some(d) => d(addr),
            None => TcpStream::connect_timeout(&addr, DIAL_TIMEOUT),
        }),
    )
    .await
    .map_err(|_| fail(&format!("dial tcp {addr}: i/o timeout")))?
    .map_err(|e| fail(&e))?
    .map_err(|e| fail(&format!("dial tcp {addr}: {e}")))?;
    stream.set_nonblocking(true).map_err(|e| fail(&e))?;
    let stream = tokio::net::TcpStream::from_std(stream).map_err(|e| fail(&e))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| fail(&e))?;
    tokio::spawn(async move {
        // Ends when the response body is read to the end or dropped (the
        // client hung up on a follow).
        let _ = conn.await;
    });
    let req = http::Request::get(&path)
        .header(header::HOST, addr.to_string())
        .header(header::AUTHORIZATION, format!("Bearer {}", st.node_token()))
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .map_err(|e| fail(&e))?;
    let resp = sender.send_request(req).await.map_err(|e| fail(&e))?;
    let status = resp.status();
    if !status.is_success() {
        // The agent's message is what the user needs ("container ... is
        // not available"), with its code, as kube-apiserver passes kubelet
        // errors on.
        let body = http_body_util::Limited::new(resp.into_body(), MAX_ERROR_BODY)
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let message = String::from_utf8_lossy(&body).trim().to_string();
        return Err(agent_error(status, message));
    }
    Ok(text_response(StatusCode::OK, Body::new(resp.into_body())))
}

/// An agent's error answer as an API error with the same code.
fn agent_error(status: StatusCode, message: String) -> ApiError {
    let reason = match status.as_u16() {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        _ => "InternalError",
    };
    ApiError {
        code: status.as_u16(),
        reason: reason.into(),
        message,
        details: None,
    }
}

fn text_response(code: StatusCode, body: Body) -> Response {
    let mut r = Response::new(body);
    *r.status_mut() = code;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(containers: &[&str], init: &[&str]) -> Value {
        let cs = |n: &[&str]| n.iter().map(|c| json!({"name": c})).collect::<Vec<_>>();
        json!({"metadata": {"name": "web"}, "spec": {"containers": cs(containers), "initContainers": cs(init)}})
    }

    #[test]
    fn the_only_container_is_the_default() {
        assert_eq!(pick_container(&pod(&["app"], &[]), None).unwrap(), "app");
    }

    #[test]
    fn several_containers_need_a_name() {
        let e = pick_container(&pod(&["a", "b"], &["init"]), None).unwrap_err();
        assert_eq!(e.code, 400);
        assert_eq!(
            e.message,
            "a container name must be specified for pod web, choose one of: [init a b]"
        );
        assert_eq!(
            pick_container(&pod(&["a", "b"], &["init"]), Some("b")).unwrap(),
            "b"
        );
        assert_eq!(
            pick_container(&pod(&["a", "b"], &["init"]), Some("init")).unwrap(),
            "init"
        );
    }

    #[test]
    fn an_unknown_container_is_refused() {
        let e = pick_container(&pod(&["a"], &[]), Some("x")).unwrap_err();
        assert_eq!(e.code, 400);
        assert_eq!(e.message, "container x is not valid for pod web");
    }

    #[test]
    fn node_address_is_the_internal_ip_and_kubelet_port() {
        let n = json!({"metadata": {"name": "n1"}, "status": {
            "addresses": [{"type": "Hostname", "address": "n1"}, {"type": "InternalIP", "address": "10.0.0.2"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10251}}}});
        assert_eq!(node_address(&n).unwrap(), "10.0.0.2:10251".parse().unwrap());
        let n = json!({"metadata": {"name": "n1"}, "status": {
            "addresses": [{"type": "InternalIP", "address": "10.0.0.2"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 0}}}});
        assert_eq!(node_address(&n).unwrap(), "10.0.0.2:10250".parse().unwrap());
    }

    #[test]
    fn only_known_plain_options_reach_the_agent() {
        let q: std::collections::HashMap<String, String> = [
            ("follow", "true"),
            ("tailLines", "1"),
            ("container", "c"),
            ("previous", "x&y=1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(
            agent_path(&q, "default", "web", "c"),
            "/containerLogs/default/web/c?follow=true&tailLines=1"
        );
    }
}
