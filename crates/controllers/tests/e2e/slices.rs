//! EndpointSlices and Endpoints follow pods: named and multiple ports, readiness,
//! termination, publishNotReadyAddresses, selector changes — each within one second.

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

use super::common::{set_pod_status, MANUAL_LABEL};
use super::{default_config, eventually, Cluster};

/// A pod placed on node-1 directly, with named container ports; status set by hand.
async fn make_pod(client: &Client, name: &str, app: &str, ports: &[(&str, i32)]) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let ports: Vec<_> = ports
        .iter()
        .map(|(n, p)| json!({"name": n, "containerPort": p, "protocol": "TCP"}))
        .collect();
    let pod: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": app, MANUAL_LABEL: "true"}},
        "spec": {"nodeName": "node-1", "containers": [{"name": "c", "image": "x", "ports": ports}]},
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
}

/// (ip, ready, serving, terminating, ports) of every endpoint in the Service's slices.
async fn slice_view(
    client: &Client,
    svc: &str,
) -> Vec<(String, bool, bool, bool, Vec<(String, i32)>)> {
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
    let list = slices
        .list(&ListParams::default().labels(&format!("kubernetes.io/service-name={svc}")))
        .await
        .unwrap();
    let mut out = Vec::new();
    for s in list.items {
        assert_eq!(
            s.metadata.labels.as_ref().unwrap()["endpointslice.kubernetes.io/managed-by"],
            "endpointslice-controller.k8s.io"
        );
        assert!(s.endpoints.len() <= 100);
        let mut ports: Vec<(String, i32)> = s
            .ports
            .iter()
            .flatten()
            .map(|p| {
                (
                    p.name.clone().unwrap_or_default(),
                    p.port.unwrap_or_default(),
                )
            })
            .collect();
        ports.sort();
        for e in &s.endpoints {
            let c = e.conditions.clone().unwrap_or_default();
            out.push((
                e.addresses[0].clone(),
                c.ready.unwrap_or(false),
                c.serving.unwrap_or(false),
                c.terminating.unwrap_or(false),
                ports.clone(),
            ));
        }
    }
    out.sort();
    out
}

type View = Vec<(String, bool, bool, bool, Vec<(String, i32)>)>;

async fn expect_within_1s(client: &Client, svc: &str, want: View, what: &str) {
    eventually(1, what, || {
        let want = want.clone();
        async move { (slice_view(client, svc).await == want).then_some(()) }
    })
    .await;
}

fn p(name: &str, port: i32) -> (String, i32) {
    (name.to_string(), port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slices_follow_ports_readiness_termination_and_selectors() {
    let c = Cluster::start(default_config(), 1).await;
    let client = c.client.clone();
    let svcs: Api<Service> = Api::namespaced(client.clone(), "default");
    let svc: Service = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [
            {"name": "http", "port": 80, "targetPort": "http-alt"},
            {"name": "metrics", "port": 9090, "targetPort": 9090},
        ]},
    }))
    .unwrap();
    svcs.create(&PostParams::default(), &svc).await.unwrap();

    // Named targetPort resolved per pod; a pod without the named port only serves metrics.
    make_pod(&client, "a", "web", &[("http-alt", 8080)]).await;
    make_pod(&client, "b", "web", &[("other", 8081)]).await;
    set_pod_status(&client, "default", "a", "10.244.0.5", true).await;
    set_pod_status(&client, "default", "b", "10.244.0.6", true).await;
    expect_within_1s(
        &client,
        "web",
        vec![
            (
                "10.244.0.5".into(),
                true,
                true,
                false,
                vec![p("http", 8080), p("metrics", 9090)],
            ),
            (
                "10.244.0.6".into(),
                true,
                true,
                false,
                vec![p("metrics", 9090)],
            ),
        ],
        "named and multiple ports",
    )
    .await;
    let (_, out, _) = c
        .kubectl(&["get", "endpoints", "web", "-o", "jsonpath={range .subsets[*]}{range .addresses[*]}{.ip}{\" \"}{end}{range .ports[*]}{.port}{\" \"}{end}|{end}"])
        .await;
    assert!(
        out.contains("10.244.0.5 8080 9090") || out.contains("10.244.0.5 9090 8080"),
        "legacy Endpoints: {out}"
    );

    // A pod turning unready.
    set_pod_status(&client, "default", "b", "10.244.0.6", false).await;
    expect_within_1s(
        &client,
        "web",
        vec![
            (
                "10.244.0.5".into(),
                true,
                true,
                false,
                vec![p("http", 8080), p("metrics", 9090)],
            ),
            (
                "10.244.0.6".into(),
                false,
                false,
                false,
                vec![p("metrics", 9090)],
            ),
        ],
        "unready pod",
    )
    .await;

    // A terminating pod: not ready, still serving, terminating (kept until the kubelet ends it).
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    pods.delete("a", &DeleteParams::default().grace_period(30))
        .await
        .unwrap();
    expect_within_1s(
        &client,
        "web",
        vec![
            (
                "10.244.0.5".into(),
                false,
                true,
                true,
                vec![p("http", 8080), p("metrics", 9090)],
            ),
            (
                "10.244.0.6".into(),
                false,
                false,
                false,
                vec![p("metrics", 9090)],
            ),
        ],
        "terminating pod",
    )
    .await;

    // publishNotReadyAddresses: every endpoint ready and serving.
    let patch = json!({"spec": {"publishNotReadyAddresses": true}});
    svcs.patch("web", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    expect_within_1s(
        &client,
        "web",
        vec![
            (
                "10.244.0.5".into(),
                true,
                true,
                true,
                vec![p("http", 8080), p("metrics", 9090)],
            ),
            (
                "10.244.0.6".into(),
                true,
                true,
                false,
                vec![p("metrics", 9090)],
            ),
        ],
        "publishNotReadyAddresses",
    )
    .await;

    // Selector change: only the new pod remains.
    make_pod(&client, "n", "new", &[("http-alt", 8082)]).await;
    set_pod_status(&client, "default", "n", "10.244.0.7", true).await;
    let patch = json!({"spec": {"selector": {"app": "new"}, "publishNotReadyAddresses": false}});
    svcs.patch("web", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    expect_within_1s(
        &client,
        "web",
        vec![(
            "10.244.0.7".into(),
            true,
            true,
            false,
            vec![p("http", 8082), p("metrics", 9090)],
        )],
        "selector change",
    )
    .await;

    // A Service without selector keeps its user-managed slices untouched.
    let manual: Service = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "external"},
        "spec": {"ports": [{"port": 80}]},
    }))
    .unwrap();
    svcs.create(&PostParams::default(), &manual).await.unwrap();
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
    let user: EndpointSlice = serde_json::from_value(json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "external-1", "labels": {"kubernetes.io/service-name": "external"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["192.0.2.10"]}],
        "ports": [{"port": 80}],
    }))
    .unwrap();
    slices.create(&PostParams::default(), &user).await.unwrap();
    // A later selector Service getting its slice shows the controller has moved past ours.
    let sentinel: Service = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "sentinel"},
        "spec": {"selector": {"app": "none"}, "ports": [{"port": 80}]},
    }))
    .unwrap();
    svcs.create(&PostParams::default(), &sentinel)
        .await
        .unwrap();
    eventually(5, "sentinel placeholder slice", || {
        let slices = slices.clone();
        async move {
            let l = slices
                .list(&ListParams::default().labels("kubernetes.io/service-name=sentinel"))
                .await
                .ok()?;
            (l.items.len() == 1).then_some(())
        }
    })
    .await;
    let list = slices
        .list(&ListParams::default().labels("kubernetes.io/service-name=external"))
        .await
        .unwrap();
    assert_eq!(list.items.len(), 1);
    assert_eq!(list.items[0].endpoints[0].addresses, ["192.0.2.10"]);
    c.stop().await;
}
