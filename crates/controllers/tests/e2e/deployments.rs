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
            let l = pods
                .list(&ListParams::default().labels("app=nginx"))
                .await
                .ok()?;
            let nodes: Vec<String> = l
                .items
                .iter()
                .filter_map(|p| p.spec.as_ref()?.node_name.clone())
                .collect();
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
    for p in pods
        .list(&ListParams::default().labels("app=nginx"))
        .await
        .unwrap()
    {
        assert!(p.name_any().starts_with(&format!("{rs_name}-")));
        assert_eq!(p.labels()["pod-template-hash"], hash);
        let owner = &p.owner_references()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str(), owner.controller),
            ("ReplicaSet", rs_name.as_str(), Some(true))
        );
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
    // The columns kubectl prints from the server-side Table.
    let (ok, table, err) = c.kubectl(&["get", "deploy", "nginx-deployment"]).await;
    assert!(ok, "{err}");
    let header: Vec<&str> = table
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
        "{table}"
    );
    let cols: Vec<&str> = table
        .lines()
        .nth(1)
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(&cols[..4], ["nginx-deployment", "2/2", "2", "2"], "{table}");
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
                .kubectl(&[
                    "get",
                    "endpoints",
                    "nginx-service-nodeport",
                    "-o",
                    "jsonpath={range .subsets[*]}{range .addresses[*]}{.ip}{\",\"}{end}{end}",
                ])
                .await;
            let mut got: Vec<String> = out
                .split(',')
                .filter(|s| !s.is_empty())
                .map(|ip| format!("{ip}:80"))
                .collect();
            got.sort_by_key(|s| s.parse::<std::net::SocketAddr>().unwrap());
            (got.join(",") == want).then_some(())
        }
    })
    .await;
    // `kubectl get endpoints` prints them in its ENDPOINTS column.
    let (ok, out, err) = c
        .kubectl(&["get", "endpoints", "nginx-service-nodeport", "--no-headers"])
        .await;
    assert!(ok, "{err}");
    let column = out
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_string();
    let mut printed: Vec<&str> = column.split(',').collect();
    printed.sort_by_key(|s| s.parse::<std::net::SocketAddr>().ok());
    assert_eq!(printed.join(","), want, "{out}");
    let (ok, out, err) = c
        .kubectl(&["describe", "svc", "nginx-service-nodeport"])
        .await;
    assert!(ok, "{err}");
    let line = out
        .lines()
        .find(|l| l.starts_with("Endpoints:"))
        .unwrap_or_default()
        .to_string();
    for ip in &ips {
        assert!(
            line.contains(&format!("{ip}:80")),
            "describe shows {ip}:80 in {line:?}"
        );
    }
    let (ok, out, err) = c
        .kubectl(&[
            "rollout",
            "status",
            "deployment/nginx-deployment",
            "--timeout=30s",
        ])
        .await;
    assert!(ok && out.contains("successfully rolled out"), "{out} {err}");
    let eps: Api<Endpoints> = Api::namespaced(c.client.clone(), "default");
    assert!(eps.get("nginx-service-nodeport").await.is_ok());
    let (_, out, _) = c
        .kubectl(&[
            "get",
            "events",
            "--field-selector",
            "reason=ScalingReplicaSet",
            "-o",
            "jsonpath={.items[*].message}",
        ])
        .await;
    assert!(
        out.contains(&format!("Scaled up replica set {rs_name} from 0 to 2")),
        "{out}"
    );
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
        async move {
            (pods
                .list(&ListParams::default().labels("app=nginx"))
                .await
                .ok()?
                .items
                .len()
                == 2)
                .then_some(())
        }
    })
    .await;
    let (ok, _, err) = c
        .kubectl(&["delete", "deployment", "nginx-deployment", "--wait=false"])
        .await;
    assert!(ok, "{err}");
    eventually(30, "pods and ReplicaSets gone", || {
        let (pods, c) = (pods.clone(), &c);
        async move {
            let rs: Api<ReplicaSet> = Api::namespaced(c.client.clone(), "default");
            let p = pods
                .list(&ListParams::default().labels("app=nginx"))
                .await
                .ok()?;
            let r = rs.list(&ListParams::default()).await.ok()?;
            (p.items.is_empty() && r.items.is_empty()).then_some(())
        }
    })
    .await;
    assert!(d.get_opt("nginx-deployment").await.unwrap().is_none());
    c.stop().await;
}

const ROLLING: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 3
  revisionHistoryLimit: 5
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxSurge: 1
      maxUnavailable: 0
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: web
        image: nginx:1.25
"#;

fn ready_and_live(p: &Pod) -> bool {
    p.metadata.deletion_timestamp.is_none()
        && p.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

async fn image_of(c: &Cluster) -> String {
    let d: Api<Deployment> = Api::namespaced(c.client.clone(), "default");
    d.get("web")
        .await
        .unwrap()
        .spec
        .unwrap()
        .template
        .spec
        .unwrap()
        .containers[0]
        .image
        .clone()
        .unwrap()
}

async fn rollout_status(c: &Cluster) {
    let (ok, out, err) = c
        .kubectl(&["rollout", "status", "deployment/web", "--timeout=60s"])
        .await;
    assert!(
        ok && out.contains("successfully rolled out"),
        "rollout status: {out} {err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rolling_update_keeps_ready_replicas_then_undo_and_scale() {
    let c = Cluster::start(default_config(), 3).await;
    c.apply(ROLLING).await;
    rollout_status(&c).await;
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), "default");

    // Watch the ready, non-terminating replica count through the whole rollout.
    let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
    let monitor = {
        let pods = pods.clone();
        tokio::spawn(async move {
            let mut min = usize::MAX;
            loop {
                if let Ok(l) = pods.list(&ListParams::default().labels("app=web")).await {
                    min = min.min(l.items.iter().filter(|p| ready_and_live(p)).count());
                }
                tokio::select! {
                    _ = &mut stop_rx => return min,
                    _ = tokio::time::sleep(std::time::Duration::from_millis(5)) => {}
                }
            }
        })
    };
    let (ok, _, err) = c
        .kubectl(&["set", "image", "deployment/web", "web=nginx:1.26"])
        .await;
    assert!(ok, "{err}");
    rollout_status(&c).await;
    stop_tx.send(()).unwrap();
    let min_ready = monitor.await.unwrap();
    assert!(
        min_ready >= 3,
        "ready replicas dropped to {min_ready} with maxUnavailable 0"
    );

    let rs_api: Api<ReplicaSet> = Api::namespaced(c.client.clone(), "default");
    let rev = |rs: &ReplicaSet| rs.annotations()["deployment.kubernetes.io/revision"].clone();
    let spec_replicas = |rs: &ReplicaSet| rs.spec.as_ref().unwrap().replicas.unwrap();
    let image = |rs: &ReplicaSet| {
        rs.spec
            .clone()
            .unwrap()
            .template
            .unwrap()
            .spec
            .unwrap()
            .containers[0]
            .image
            .clone()
            .unwrap()
    };
    let rss = rs_api
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap()
        .items;
    assert_eq!(rss.len(), 2);
    let new = rss.iter().find(|r| image(r) == "nginx:1.26").unwrap();
    let old = rss.iter().find(|r| image(r) == "nginx:1.25").unwrap();
    assert_eq!((rev(new).as_str(), spec_replicas(new)), ("2", 3));
    assert_eq!((rev(old).as_str(), spec_replicas(old)), ("1", 0));

    // rollout undo goes back to the previous template; that ReplicaSet takes revision 3.
    let (ok, out, err) = c.kubectl(&["rollout", "undo", "deployment/web"]).await;
    assert!(ok, "rollout undo: {out} {err}");
    rollout_status(&c).await;
    assert_eq!(image_of(&c).await, "nginx:1.25");
    let back = rs_api.get(&old.name_any()).await.unwrap();
    assert_eq!((rev(&back).as_str(), spec_replicas(&back)), ("3", 3));

    // kubectl scale.
    let (ok, _, err) = c
        .kubectl(&["scale", "deployment/web", "--replicas=4"])
        .await;
    assert!(ok, "{err}");
    eventually(20, "4/4 after scale", || {
        let c = &c;
        async move {
            let (_, out, _) = c
                .kubectl(&[
                    "get",
                    "deploy",
                    "web",
                    "-o",
                    "jsonpath={.status.readyReplicas}/{.spec.replicas}",
                ])
                .await;
            (out == "4/4").then_some(())
        }
    })
    .await;
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn foreground_and_orphan_deletion_follow_owner_references() {
    let c = Cluster::start(default_config(), 2).await;
    let rs_api: Api<ReplicaSet> = Api::namespaced(c.client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), "default");
    let d: Api<Deployment> = Api::namespaced(c.client.clone(), "default");
    let count_pods = || {
        let pods = pods.clone();
        async move {
            pods.list(&ListParams::default().labels("app=nginx"))
                .await
                .map(|l| l.items.len())
                .unwrap_or(0)
        }
    };

    // Foreground: the Deployment stays (with the finalizer) until its dependents are gone.
    c.apply(NGINX).await;
    eventually(20, "two pods", || async {
        (count_pods().await == 2).then_some(())
    })
    .await;
    let (ok, _, err) = c
        .kubectl(&[
            "delete",
            "deployment",
            "nginx-deployment",
            "--cascade=foreground",
            "--wait=false",
        ])
        .await;
    assert!(ok, "{err}");
    eventually(30, "deployment, ReplicaSets and pods gone", || async {
        let gone = d.get_opt("nginx-deployment").await.ok()?.is_none();
        let rs = rs_api
            .list(&ListParams::default())
            .await
            .ok()?
            .items
            .is_empty();
        (gone && rs && count_pods().await == 0).then_some(())
    })
    .await;

    // Orphan: the ReplicaSet and pods stay, without the owner reference.
    c.apply(NGINX).await;
    eventually(20, "two pods again", || async {
        (count_pods().await == 2).then_some(())
    })
    .await;
    let (ok, _, err) = c
        .kubectl(&[
            "delete",
            "deployment",
            "nginx-deployment",
            "--cascade=orphan",
            "--wait=false",
        ])
        .await;
    assert!(ok, "{err}");
    eventually(30, "deployment gone, ReplicaSet orphaned", || async {
        let gone = d.get_opt("nginx-deployment").await.ok()?.is_none();
        let rss = rs_api.list(&ListParams::default()).await.ok()?.items;
        (gone && rss.len() == 1 && rss[0].owner_references().is_empty()).then_some(())
    })
    .await;
    assert_eq!(count_pods().await, 2);

    // Re-creating the Deployment adopts the orphaned ReplicaSet instead of starting over.
    let orphan = rs_api.list(&ListParams::default()).await.unwrap().items[0].name_any();
    c.apply(NGINX).await;
    eventually(20, "ReplicaSet adopted", || async {
        let rss = rs_api.list(&ListParams::default()).await.ok()?.items;
        let owner = rss.first()?.owner_references().first()?.kind.clone();
        (rss.len() == 1 && rss[0].name_any() == orphan && owner == "Deployment").then_some(())
    })
    .await;
    c.stop().await;
}
