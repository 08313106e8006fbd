//! A kube-rs watcher/reflector against the server: initial list, live watch
//! events, and a relist after the server answers 410 Expired (history lost on restart).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{client_for, TestServer};
use futures::StreamExt;
use http::Method;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::runtime::{reflector, watcher, WatchStreamExt};
use kube::Api;
use portico_store::{Compare, Op, Store};
use serde_json::json;

async fn wait_for(store: &reflector::Store<ConfigMap>, name: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while tokio::time::Instant::now() < deadline {
        if store
            .state()
            .iter()
            .any(|c| c.metadata.name.as_deref() == Some(name))
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!(
        "reflector never saw {name}; has {:?}",
        store
            .state()
            .iter()
            .map(|c| c.metadata.name.clone())
            .collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflector_lists_watches_and_relists_after_410() {
    let s = TestServer::start().await;
    let port: u16 = s.url.rsplit(':').next().unwrap().parse().unwrap();
    s.req(
        Method::POST,
        "/api/v1/namespaces/default/configmaps",
        Some(&json!({"metadata": {"name": "first"}})),
    )
    .await;

    let client = client_for(s.kubeconfig()).await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let (reader, writer) = reflector::store();
    let inits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = inits.clone();
    let stream = watcher(api, watcher::Config::default().timeout(30))
        .default_backoff()
        .inspect(move |e| {
            if matches!(e, Ok(watcher::Event::Init)) {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        })
        .reflect(writer)
        .applied_objects();
    let task = tokio::spawn(async move {
        futures::pin_mut!(stream);
        while stream.next().await.is_some() {}
    });
    wait_for(&reader, "first").await;
    s.req(
        Method::POST,
        "/api/v1/namespaces/default/configmaps",
        Some(&json!({"metadata": {"name": "second"}})),
    )
    .await;
    wait_for(&reader, "second").await;
    assert_eq!(inits.load(std::sync::atomic::Ordering::SeqCst), 1);

    // While the server is down, a write lands directly in the store; the restarted
    // server has no history before it, so the watcher's resume gets 410 and relists.
    let dir = s.stop().await;
    {
        let store = portico_store::RedbStore::open(dir.path().join("store")).unwrap();
        let obj = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "offline", "namespace": "default", "uid": "u-offline", "creationTimestamp": "2024-01-01T00:00:00Z"}});
        let key = "/core/configmaps/default/offline".to_string();
        store
            .txn(
                vec![Compare::KeyMissing(key.clone())],
                vec![Op::Put(key, serde_json::to_vec(&obj).unwrap())],
            )
            .await
            .unwrap();
    }
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    let cfg = common::config(dir.path(), listener);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(portico_apiserver::run(cfg, async move {
        let _ = rx.await;
    }));
    wait_for(&reader, "offline").await;
    assert!(
        inits.load(std::sync::atomic::Ordering::SeqCst) >= 2,
        "the watcher relisted"
    );
    task.abort();
    let _ = tx.send(());
    server.await.unwrap().unwrap();
}
