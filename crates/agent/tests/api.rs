//! Agent against the real in-process API server, all inside a throwaway node
//! namespace: node registration, lease, podCIDR, pods bound by spec.nodeName
//! running with a pod IP, graceful deletion finished by the agent, cleanup.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::Ipv4Addr;
use std::time::Duration;

use common::{curl, eventually, in_node, NodeNs};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use portico_agent::AgentConfig;

async fn client_for(kubeconfig: &std::path::Path) -> kube::Client {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig).unwrap();
    let cfg = kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
        .await
        .unwrap();
    kube::Client::try_from(cfg).unwrap()
}

#[test]
fn agent_registers_runs_bound_pods_and_cleans_up() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("portico_agent=debug")
        .with_test_writer()
        .try_init();
    let node = NodeNs::new("api");
    let node_name = node.name.clone();
    in_node(&node, move || async move {
        let server_dir = tempfile::tempdir().unwrap();
        let agent_dir = tempfile::tempdir().unwrap();
        // Bound inside the node namespace: the agent reaches it on its loopback.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut cfg = portico_apiserver::ServerConfig::new(
            server_dir.path(),
            format!("https://127.0.0.1:{port}"),
        );
        cfg.listeners = vec![listener];
        let prepared = portico_apiserver::prepare(&cfg).unwrap();
        let (stop_server, server_stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(portico_apiserver::run(cfg, async move {
            let _ = server_stopped.await;
        }));
        let client = client_for(&prepared.kubeconfig_path).await;

        // The agent needs a bridge address for its node IP; any address works here.
        let ok = std::process::Command::new("ip")
            .args([
                "link", "add", "lan0", "type", "veth", "peer", "name", "lan1",
            ])
            .status()
            .unwrap()
            .success();
        assert!(ok);
        std::process::Command::new("ip")
            .args(["addr", "add", "192.168.90.2/24", "dev", "lan0"])
            .status()
            .unwrap();
        std::process::Command::new("ip")
            .args(["link", "set", "lan0", "up"])
            .status()
            .unwrap();
        std::process::Command::new("ip")
            .args(["link", "set", "lan1", "up"])
            .status()
            .unwrap();
        std::process::Command::new("ip")
            .args(["route", "add", "default", "via", "192.168.90.1"])
            .status()
            .unwrap();
        assert_eq!(
            portico_agent::detect_node_ip().unwrap(),
            Ipv4Addr::new(192, 168, 90, 2)
        );

        let config = AgentConfig {
            node_name: node_name.clone(),
            node_ip: Ipv4Addr::new(192, 168, 90, 2),
            data_dir: agent_dir.path().to_path_buf(),
            cluster_dns: Ipv4Addr::new(10, 96, 0, 10),
            cluster_domain: "cluster.local".into(),
            bridge_name: "portico0".into(),
            kubelet_port: 0,
            endpoint_token: None,
        };
        let (stop_agent, agent_stopped) = tokio::sync::oneshot::channel::<()>();
        let exe = std::path::PathBuf::from(env!("CARGO_BIN_EXE_portico-agent-testbin"));
        let agent = tokio::spawn(portico_agent::run_with_exe(
            client.clone(),
            config,
            exe,
            async move {
                let _ = agent_stopped.await;
            },
        ));

        // Registration, then the controllers' job (done by the test): podCIDR.
        let nodes: Api<Node> = Api::all(client.clone());
        let n = eventually(Duration::from_secs(10), "node registered", || {
            let nodes = nodes.clone();
            let name = node_name.clone();
            async move { nodes.get(&name).await.ok() }
        })
        .await;
        let st = n.status.clone().unwrap();
        assert_eq!(st.addresses.unwrap()[0].address, "192.168.90.2");
        assert_eq!(st.node_info.unwrap().kubelet_version, "v1.33.0-portico");
        let ready = st
            .conditions
            .unwrap()
            .into_iter()
            .find(|c| c.type_ == "Ready")
            .unwrap();
        assert_eq!(ready.status, "True");
        assert_eq!(
            n.metadata.labels.unwrap().get("kubernetes.io/hostname"),
            Some(&node_name)
        );
        let patch = serde_json::json!({"spec": {"podCIDR": "10.244.3.0/24", "podCIDRs": ["10.244.3.0/24"]}});
        nodes
            .patch(&node_name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
        let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
        let lease = eventually(Duration::from_secs(10), "lease", || {
            let leases = leases.clone();
            let name = node_name.clone();
            async move { leases.get(&name).await.ok() }
        })
        .await;
        assert_eq!(
            lease.spec.unwrap().holder_identity.as_deref(),
            Some(node_name.as_str())
        );

        // A pod bound to the node runs with a pod IP within 10 s.
        let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web"},
            "spec": {"nodeName": node_name, "terminationGracePeriodSeconds": 5, "containers": [{
                "name": "agnhost", "image": "registry.k8s.io/e2e-test-images/agnhost:2.53",
                "args": ["netexec", "--http-port=8080"],
                "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 1}
            }]}
        }))
        .unwrap();
        let created = pods.create(&PostParams::default(), &pod).await.unwrap();
        let running = eventually(Duration::from_secs(10), "pod Running and Ready", || {
            let pods = pods.clone();
            async move {
                let p = pods.get("web").await.ok()?;
                let s = p.status.clone()?;
                let ready = s
                    .conditions
                    .as_ref()?
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True");
                (s.phase.as_deref() == Some("Running") && ready && s.pod_ip.is_some()).then_some(p)
            }
        })
        .await;
        let st = running.status.unwrap();
        let ip = st.pod_ip.unwrap();
        assert!(ip.starts_with("10.244.3."), "{ip}");
        assert_eq!(st.host_ip.as_deref(), Some("192.168.90.2"));
        let cs = &st.container_statuses.unwrap()[0];
        assert!(cs.ready);
        assert_eq!(cs.restart_count, 0);
        assert!(cs
            .container_id
            .as_deref()
            .unwrap()
            .starts_with("portico://"));
        assert_eq!(
            curl(format!("http://{ip}:8080/hostname")).await.as_deref(),
            Some("web")
        );

        // The kubelet-style Events `kubectl describe pod` shows.
        let events: Api<k8s_openapi::api::core::v1::Event> =
            Api::namespaced(client.clone(), "default");
        let reasons = eventually(Duration::from_secs(10), "pod events", || {
            let events = events.clone();
            async move {
                let list = events.list(&Default::default()).await.ok()?;
                let r: Vec<String> = list
                    .items
                    .iter()
                    .filter(|e| e.involved_object.name.as_deref() == Some("web"))
                    .filter_map(|e| e.reason.clone())
                    .collect();
                r.iter().any(|x| x == "Started").then_some(r)
            }
        })
        .await;
        assert!(
            reasons.contains(&"Pulled".to_string()) && reasons.contains(&"Created".to_string()),
            "{reasons:?}"
        );

        // Deleting: the API marks it, the agent stops it and finishes the delete.
        pods.delete("web", &DeleteParams::default()).await.unwrap();
        eventually(Duration::from_secs(10), "pod gone", || {
            let pods = pods.clone();
            async move {
                pods.get_opt("web")
                    .await
                    .ok()
                    .and_then(|p| p.is_none().then_some(()))
            }
        })
        .await;
        assert!(curl(format!("http://{ip}:8080/hostname")).await.is_none());
        let uid = created.metadata.uid.unwrap();
        let short = uid.chars().take(4).collect::<String>();
        let list = String::from_utf8(
            std::process::Command::new("ip")
                .args(["netns", "list"])
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap();
        assert!(
            !list.contains(&format!("{node_name}-default-web")),
            "{list} {short}"
        );

        // Shutdown removes the bridge.
        stop_agent.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(30), agent)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let links = String::from_utf8(
            std::process::Command::new("ip")
                .args(["-o", "link"])
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap();
        assert!(!links.contains("portico0"), "{links}");
        let _ = stop_server.send(());
        let _ = tokio::time::timeout(Duration::from_secs(10), server).await;
    });
}
