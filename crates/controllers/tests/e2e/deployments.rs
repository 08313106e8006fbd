//! Deployments → ReplicaSets → pods, scheduling, Endpoints, rollouts, scale, deletion.

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Endpoints, Pod};
use kube::api::ListParams;
use kube::{Api, ResourceExt};

use super::{default_config, eventually, Cluster};

pub const NGINX: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: nginx-deployment
  labels:
    app: nginx
spec:
  replicas: 2
  selector:
    matchLabels:
      app: nginx
  template:
    metadata:
      labels:
        app: nginx
    spec:
      containers:
      - name: nginx
        image: nginx:1.25
        ports:
        - containerPort: 80
---
apiVersion: v1
kind: Service
metadata:
  name: nginx-service-nodeport
spec:
  type: NodePort
  selector:
    app: nginx
  ports:
  - port: 80
    targetPort: 80
    nodePort: 30080
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nginx_deployment_becomes_ready_and_endpoints_list_both_pods() {
    let c = Cluster::start(default_config(), 3).await;
    c.apply(NGINX).await;
    let rs_api: Api<ReplicaSet> = Api::namespaced(c.client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), "default");

    // One ReplicaSet named <deploy>-<hash>, two pods bound to two different nodes.
    let bound = eventually(20, "two bound pods", || {
        let pods = pods.clone();
        async move {
            let l = pods.list(&ListParams::default().labels("app=nginx")).await.ok()?;
            let nodes: Vec<String> = l.items.iter().filter_map(|p| p.spec.as_ref()?.node_name.clone()).collect();
            (nodes.len() == 2).then_some(nodes)
        }
    })
    .await;
    assert_ne!(bound[0], bound[1], "replicas spread across nodes");
    let rss = rs_api.list(&ListParams::default()).await.unwrap().items;
    assert_eq!(rss.len(), 1);
    let rs_name = rss[0].name_any();
    let hash = rss[0].labels()["pod-template-hash"].clone();
    assert_eq!(rs_name, format!("nginx-deployment-{hash}"));
    for p in pods.list(&ListParams::default().labels("app=nginx")).await.unwrap() {
        assert!(p.name_any().starts_with(&format!("{rs_name}-")));
        assert_eq!(p.labels()["pod-template-hash"], hash);
        let owner = &p.owner_references()[0];
        assert_eq!((owner.kind.as_str(), owner.name.as_str(), owner.controller), ("ReplicaSet", rs_name.as_str(), Some(true)));
    }

    // The fake kubelet marks them Ready: the Deployment reports 2/2 (what kubectl's READY,
    // UP-TO-DATE and AVAILABLE columns print).
    eventually(20, "deployment 2/2 ready, 2 up-to-date, 2 available", || {
        let c = &c;
        async move {
            let (_, out, _) = c
                .kubectl(&["get", "deploy", "nginx-deployment", "-o", "jsonpath={.status.readyReplicas}/{.spec.replicas} {.status.updatedReplicas} {.status.availableReplicas}"])
                .await;
            (out == "2/2 2 2").then_some(())
        }
    })
    .await;
    let (_, table, _) = c.kubectl(&["get", "deploy", "nginx-deployment"]).await;
    if table.starts_with("NAME") && table.contains("READY") {
        // Server-side Table printing (the API server's part) renders the same status.
        let cols: Vec<&str> = table.lines().nth(1).unwrap_or_default().split_whitespace().collect();
        assert_eq!(&cols[1..4], ["2/2", "2", "2"], "{table}");
    }
    let ips: Vec<String> = pods
        .list(&ListParams::default().labels("app=nginx"))
        .await
        .unwrap()
        .items
        .iter()
        .filter_map(|p| p.status.as_ref()?.pod_ip.clone())
        .collect();
    assert_eq!(ips.len(), 2);
    let mut want: Vec<String> = ips.iter().map(|ip| format!("{ip}:80")).collect();
    want.sort_by_key(|s| s.parse::<std::net::SocketAddr>().unwrap());
    let want = want.join(",");
    eventually(10, "kubectl get endpoints lists both IP:80", || {
        let (c, want) = (&c, want.clone());
        async move {
            let (_, out, _) = c
                .kubectl(&["get", "endpoints", "nginx-service-nodeport", "-o", "jsonpath={range .subsets[*]}{range .addresses[*]}{.ip}{\",\"}{end}{end}"])
                .await;
            let mut got: Vec<String> = out.split(',').filter(|s| !s.is_empty()).map(|ip| format!("{ip}:80")).collect();
            got.sort_by_key(|s| s.parse::<std::net::SocketAddr>().unwrap());
            (got.join(",") == want).then_some(())
        }
    })
    .await;
    let (ok, out, err) = c.kubectl(&["describe", "svc", "nginx-service-nodeport"]).await;
    assert!(ok, "{err}");
    let line = out.lines().find(|l| l.starts_with("Endpoints:")).unwrap_or_default().to_string();
    for ip in &ips {
        assert!(line.contains(&format!("{ip}:80")), "describe shows {ip}:80 in {line:?}");
    }
    let (ok, out, err) = c.kubectl(&["rollout", "status", "deployment/nginx-deployment", "--timeout=30s"]).await;
    assert!(ok && out.contains("successfully rolled out"), "{out} {err}");
    let eps: Api<Endpoints> = Api::namespaced(c.client.clone(), "default");
    assert!(eps.get("nginx-service-nodeport").await.is_ok());
    let (_, out, _) = c.kubectl(&["get", "events", "--field-selector", "reason=ScalingReplicaSet"]).await;
    assert!(out.contains(&format!("Scaled up replica set {rs_name} from 0 to 2")), "{out}");
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deleting_the_deployment_removes_its_pods() {
    let c = Cluster::start(default_config(), 2).await;
    c.apply(NGINX).await;
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), "default");
    let d: Api<Deployment> = Api::namespaced(c.client.clone(), "default");
    eventually(20, "two pods", || {
        let pods = pods.clone();
        async move { (pods.list(&ListParams::default().labels("app=nginx")).await.ok()?.items.len() == 2).then_some(()) }
    })
    .await;
    let (ok, _, err) = c.kubectl(&["delete", "deployment", "nginx-deployment", "--wait=false"]).await;
    assert!(ok, "{err}");
    eventually(30, "pods and ReplicaSets gone", || {
        let (pods, c) = (pods.clone(), &c);
        async move {
            let rs: Api<ReplicaSet> = Api::namespaced(c.client.clone(), "default");
            let p = pods.list(&ListParams::default().labels("app=nginx")).await.ok()?;
            let r = rs.list(&ListParams::default()).await.ok()?;
            (p.items.is_empty() && r.items.is_empty()).then_some(())
        }
    })
    .await;
    assert!(d.get_opt("nginx-deployment").await.unwrap().is_none());
    c.stop().await;
}
