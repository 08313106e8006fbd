//! `pods/log` in process: container selection errors as kube-apiserver words
//! them, and the proxying of a node agent's answer (with the node token).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::TestServer;
use http::Method;
use http::{HeaderMap, StatusCode, Uri};
use k8s_openapi::api::core::v1::Pod;
use kube::api::LogParams;
use serde_json::json;

fn pod(name: &str, containers: &[&str], node: &str) -> serde_json::Value {
    let cs: Vec<_> = containers
        .iter()
        .map(|c| json!({"name": c, "image": "busybox"}))
        .collect();
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
           "spec": {"containers": cs, "nodeName": node}})
}

async fn api_error(api: &kube::Api<Pod>, name: &str, lp: &LogParams) -> (u16, String) {
    match api.logs(name, lp).await {
        Err(kube::Error::Api(s)) => (s.code, s.message.clone()),
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn container_selection_errors_read_like_kubernetes() {
    let s = TestServer::start().await;
    let (code, _) = s
        .req(
            Method::POST,
            "/api/v1/namespaces/default/pods",
            Some(&pod("two", &["a", "b"], "")),
        )
        .await;
    assert_eq!(code, 201);
    let api: kube::Api<Pod> = kube::Api::namespaced(s.client.clone(), "default");
    assert_eq!(
        api_error(&api, "two", &LogParams::default()).await,
        (
            400,
            "a container name must be specified for pod two, choose one of: [a b]".into()
        )
    );
    let lp = LogParams {
        container: Some("x".into()),
        ..LogParams::default()
    };
    assert_eq!(
        api_error(&api, "two", &lp).await,
        (400, "container x is not valid for pod two".into())
    );
    assert_eq!(
        api_error(&api, "nope", &LogParams::default()).await,
        (404, "pods \"nope\" not found".into())
    );
    // Not scheduled yet: no log, no error (as kube-apiserver answers).
    let lp = LogParams {
        container: Some("a".into()),
        ..LogParams::default()
    };
    assert_eq!(api.logs("two", &lp).await.unwrap(), "");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_come_from_the_agent_of_the_pods_node() {
    let s = TestServer::start().await;
    let node_token = std::fs::read_to_string(&s.prepared.node_token_path)
        .unwrap()
        .trim()
        .to_string();
    // A stand-in agent: answers with what it was asked, if given the node token.
    let agent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = agent.local_addr().unwrap().port();
    let app = axum::Router::new().route(
        "/containerLogs/{ns}/{pod}/{c}",
        axum::routing::get(move |uri: Uri, headers: HeaderMap| {
            let want = format!("Bearer {node_token}");
            async move {
                if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(want.as_str())
                {
                    return (StatusCode::UNAUTHORIZED, "Unauthorized".to_string());
                }
                if uri.path().ends_with("/gone") {
                    let msg = "container \"gone\" in pod \"web\" is not available".to_string();
                    return (StatusCode::NOT_FOUND, msg);
                }
                (StatusCode::OK, format!("hello-from-pod\n{uri}\n"))
            }
        }),
    );
    tokio::spawn(async move { axum::serve(agent, app).await });

    let node = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}});
    assert_eq!(
        s.req(Method::POST, "/api/v1/nodes", Some(&node)).await.0,
        201
    );
    let status = json!({"status": {
        "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": port}}}});
    let (code, _) = s
        .patch(
            "/api/v1/nodes/n1/status",
            &status,
            "application/merge-patch+json",
        )
        .await;
    assert_eq!(code, 200);
    let (code, _) = s
        .req(
            Method::POST,
            "/api/v1/namespaces/default/pods",
            Some(&pod("web", &["app", "gone"], "n1")),
        )
        .await;
    assert_eq!(code, 201);

    let api: kube::Api<Pod> = kube::Api::namespaced(s.client.clone(), "default");
    let lp = LogParams {
        container: Some("app".into()),
        tail_lines: Some(1),
        follow: false,
        ..LogParams::default()
    };
    assert_eq!(
        api.logs("web", &lp).await.unwrap(),
        "hello-from-pod\n/containerLogs/default/web/app?tailLines=1\n"
    );
    let lp = LogParams {
        container: Some("gone".into()),
        ..LogParams::default()
    };
    assert_eq!(
        api_error(&api, "web", &lp).await,
        (
            404,
            "container \"gone\" in pod \"web\" is not available".into()
        )
    );
    s.stop().await;
}
