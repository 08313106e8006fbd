//! LoadBalancer addresses, scheduling failures, podCIDRs, node lifecycle, namespaces.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Event, Namespace, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{ListParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

use super::common::{set_pod_status, MANUAL_LABEL};
use super::{default_config, eventually, Cluster};

fn lb_service(name: &str, extra: serde_json::Value) -> Service {
    let mut spec =
        json!({"type": "LoadBalancer", "selector": {"app": name}, "ports": [{"port": 80}]});
    if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
        s.extend(e.clone());
    }
    serde_json::from_value(
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec}),
    )
    .unwrap()
}

async fn lb_ip(svcs: &Api<Service>, name: &str) -> Option<String> {
    svcs.get(name)
        .await
        .ok()?
        .status?
        .load_balancer?
        .ingress?
        .first()?
        .ip
        .clone()
}

async fn events_for(client: &Client, ns: &str, name: &str, reason: &str) -> Vec<Event> {
    let api: Api<Event> = Api::namespaced(client.clone(), ns);
    api.list(&ListParams::default().fields(&format!("involvedObject.name={name},reason={reason}")))
        .await
        .map(|l| l.items)
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn load_balancer_ips_come_from_the_pool_and_exhaustion_is_explained() {
    let mut cfg = default_config();
    cfg.lb_pools = vec!["192.168.50.240/31".parse().unwrap()];
    let c = Cluster::start(cfg, 1).await;
    let svcs: Api<Service> = Api::namespaced(c.client.clone(), "default");
    svcs.create(&PostParams::default(), &lb_service("a", json!({})))
        .await
        .unwrap();
    svcs.create(
        &PostParams::default(),
        &lb_service("b", json!({"loadBalancerIP": "192.168.50.241"})),
    )
    .await
    .unwrap();
    let a = eventually(5, "a gets an address", || lb_ip(&svcs, "a")).await;
    let b = eventually(5, "b gets its requested address", || lb_ip(&svcs, "b")).await;
    assert_eq!(
        (a.as_str(), b.as_str()),
        ("192.168.50.240", "192.168.50.241")
    );
    let (_, out, _) = c
        .kubectl(&[
            "get",
            "svc",
            "a",
            "-o",
            "jsonpath={.status.loadBalancer.ingress[0].ip}",
        ])
        .await;
    assert_eq!(out, "192.168.50.240");

    // Pool exhausted: the next one stays pending with an Event saying why.
    svcs.create(&PostParams::default(), &lb_service("c", json!({})))
        .await
        .unwrap();
    let ev = eventually(5, "AllocationFailed event", || {
        let client = c.client.clone();
        async move {
            events_for(&client, "default", "c", "AllocationFailed")
                .await
                .into_iter()
                .next()
        }
    })
    .await;
    assert_eq!(ev.type_.as_deref(), Some("Warning"));
    assert_eq!(
        ev.message.as_deref(),
        Some("Failed to allocate IP for \"default/c\": no available IPs in the configured pools")
    );
    assert_eq!(lb_ip(&svcs, "c").await, None);
    // Another class is not ours.
    svcs.create(
        &PostParams::default(),
        &lb_service("other", json!({"loadBalancerClass": "example.com/lb"})),
    )
    .await
    .unwrap();
    assert!(!events_for(&c.client, "default", "a", "IPAllocated")
        .await
        .is_empty());

    // Deleting a frees its address for c.
    svcs.delete("a", &Default::default()).await.unwrap();
    let cip = eventually(5, "c gets the freed address", || lb_ip(&svcs, "c")).await;
    assert_eq!(cip, "192.168.50.240");
    // Type change away from LoadBalancer releases too.
    let patch = json!({"spec": {"type": "ClusterIP"}});
    svcs.patch("b", &Default::default(), &kube::api::Patch::Merge(&patch))
        .await
        .unwrap();
    eventually(5, "b released", || {
        let svcs = svcs.clone();
        async move { lb_ip(&svcs, "b").await.is_none().then_some(()) }
    })
    .await;
    assert_eq!(lb_ip(&svcs, "other").await, None);
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nodes_get_pod_cidrs_and_unschedulable_pods_get_failed_scheduling() {
    let c = Cluster::start(default_config(), 2).await;
    let nodes: Api<Node> = Api::all(c.client.clone());
    let cidrs = eventually(5, "podCIDRs on both nodes", || {
        let nodes = nodes.clone();
        async move {
            let mut v: Vec<String> = Vec::new();
            for n in nodes.list(&ListParams::default()).await.ok()? {
                let spec = n.spec?;
                assert_eq!(spec.pod_cidrs.clone()?, vec![spec.pod_cidr.clone()?]);
                v.push(spec.pod_cidr?);
            }
            v.sort();
            (v.len() == 2).then_some(v)
        }
    })
    .await;
    assert_eq!(cidrs, ["10.244.0.0/24", "10.244.1.0/24"]);

    let pods: Api<Pod> = Api::namespaced(c.client.clone(), "default");
    let pod: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "picky"},
        "spec": {"nodeSelector": {"disk": "ssd"}, "containers": [{"name": "c", "image": "x"}]},
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let ev = eventually(5, "FailedScheduling event", || {
        let client = c.client.clone();
        async move {
            events_for(&client, "default", "picky", "FailedScheduling")
                .await
                .into_iter()
                .next()
        }
    })
    .await;
    assert_eq!(
        ev.message.as_deref(),
        Some("0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector. preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling.")
    );
    let p = pods.get("picky").await.unwrap();
    let cond = p
        .status
        .unwrap()
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "PodScheduled")
        .unwrap();
    assert_eq!(
        (cond.status.as_str(), cond.reason.as_deref()),
        ("False", Some("Unschedulable"))
    );

    // A matching node appears: the pod is bound there, with a Scheduled event.
    c.add_node("node-ssd", &[("disk", "ssd")]).await;
    eventually(5, "picky bound to node-ssd", || {
        let pods = pods.clone();
        async move { (pods.get("picky").await.ok()?.spec?.node_name? == "node-ssd").then_some(()) }
    })
    .await;
    let ev = eventually(5, "Scheduled event", || {
        let client = c.client.clone();
        async move {
            events_for(&client, "default", "picky", "Scheduled")
                .await
                .into_iter()
                .next()
        }
    })
    .await;
    assert_eq!(
        ev.message.as_deref(),
        Some("Successfully assigned default/picky to node-ssd")
    );
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_whose_lease_expires_turns_unknown_and_its_endpoints_not_ready() {
    let mut cfg = default_config();
    cfg.node_lease_timeout = Duration::from_secs(2);
    let c = Cluster::start(cfg, 1).await;
    let client = c.client.clone();
    // The node's agent renews its Lease once, then stops.
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let lease: Lease = serde_json::from_value(json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "node-1"},
        "spec": {"holderIdentity": "node-1", "leaseDurationSeconds": 40, "renewTime": jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()},
    }))
    .unwrap();
    leases.create(&PostParams::default(), &lease).await.unwrap();
    let svcs: Api<Service> = Api::namespaced(client.clone(), "default");
    let svc: Service = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]},
    }))
    .unwrap();
    svcs.create(&PostParams::default(), &svc).await.unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pod: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p", "labels": {"app": "web", MANUAL_LABEL: "true"}},
        "spec": {"nodeName": "node-1", "containers": [{"name": "c", "image": "x"}]},
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    set_pod_status(&client, "default", "p", "10.244.0.9", true).await;
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
    let ready = |want: bool| {
        let slices = slices.clone();
        async move {
            let l = slices
                .list(&ListParams::default().labels("kubernetes.io/service-name=web"))
                .await
                .ok()?;
            let e = l.items.first()?.endpoints.first()?.clone();
            (e.conditions?.ready? == want).then_some(())
        }
    };
    eventually(5, "endpoint ready", || ready(true)).await;
    let nodes: Api<Node> = Api::all(client.clone());
    let cond = eventually(10, "node Ready=Unknown", || {
        let nodes = nodes.clone();
        async move {
            let n = nodes.get("node-1").await.ok()?;
            n.status?
                .conditions?
                .into_iter()
                .find(|c| c.type_ == "Ready" && c.status == "Unknown")
        }
    })
    .await;
    assert_eq!(cond.reason.as_deref(), Some("NodeStatusUnknown"));
    assert_eq!(
        cond.message.as_deref(),
        Some("Kubelet stopped posting node status.")
    );
    eventually(5, "endpoint not ready", || ready(false)).await;
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deleting_a_namespace_empties_it_then_removes_it() {
    let c = Cluster::start(default_config(), 1).await;
    c.apply("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: scratch\n")
        .await;
    c.apply(
        &super::deployments::NGINX
            .replace(
                "metadata:\n  name: nginx-deployment",
                "metadata:\n  name: nginx-deployment\n  namespace: scratch",
            )
            .replace(
                "metadata:\n  name: nginx-service-nodeport",
                "metadata:\n  name: nginx-service-nodeport\n  namespace: scratch",
            )
            .replace("nodePort: 30080", "nodePort: 30081"),
    )
    .await;
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), "scratch");
    eventually(20, "pods in scratch", || {
        let pods = pods.clone();
        async move { (pods.list(&ListParams::default()).await.ok()?.items.len() == 2).then_some(()) }
    })
    .await;
    let (ok, _, err) = c
        .kubectl(&["delete", "namespace", "scratch", "--wait=false"])
        .await;
    assert!(ok, "{err}");
    let ns: Api<Namespace> = Api::all(c.client.clone());
    eventually(30, "namespace gone", || {
        let ns = ns.clone();
        async move { ns.get_opt("scratch").await.ok()?.is_none().then_some(()) }
    })
    .await;
    let svcs: Api<Service> = Api::namespaced(c.client.clone(), "scratch");
    assert!(svcs
        .list(&ListParams::default())
        .await
        .map(|l| l.items.is_empty())
        .unwrap_or(true));
    assert!(pods
        .list(&ListParams::default())
        .await
        .map(|l| l.items.is_empty())
        .unwrap_or(true));
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn repeated_events_are_counted_not_duplicated() {
    let c = Cluster::start(default_config(), 1).await;
    let (recorder, publisher) = portico_controllers::recorder::Recorder::new(c.client.clone());
    let task = tokio::spawn(publisher);
    let rec = recorder.for_component("test-controller");
    let regarding = k8s_openapi::api::core::v1::ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Service".into()),
        namespace: Some("default".into()),
        name: Some("kubernetes".into()),
        ..Default::default()
    };
    for _ in 0..3 {
        rec.warning(&regarding, "Repeated", "the same thing happened");
    }
    let ev = eventually(5, "one event with count 3", || {
        let client = c.client.clone();
        async move {
            let evs = events_for(&client, "default", "kubernetes", "Repeated").await;
            (evs.len() == 1 && evs[0].count == Some(3)).then(|| evs[0].clone())
        }
    })
    .await;
    assert_eq!(
        ev.source.and_then(|s| s.component).as_deref(),
        Some("test-controller")
    );
    assert!(ev.last_timestamp >= ev.first_timestamp);
    task.abort();
    c.stop().await;
}
