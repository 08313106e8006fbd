//! Runtime tests: real processes and a real kernel, inside a throwaway node
//! namespace, driving the pod runtime directly (no API server).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::Ipv4Addr;
use std::time::Duration;

use common::{curl, eventually, in_node, runtime, NodeNs};
use k8s_openapi::api::core::v1::{Pod, Service};
use portico_agent::{CState, PodRt};
use tokio::sync::watch;

fn pod(name: &str, uid: &str, containers: serde_json::Value) -> Pod {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "namespace": "default", "uid": uid},
        "spec": {"containers": containers, "terminationGracePeriodSeconds": 2}
    }))
    .unwrap()
}

async fn wait_ready(rx: &mut watch::Receiver<PodRt>) -> Ipv4Addr {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        {
            let s = rx.borrow_and_update();
            if s.containers
                .iter()
                .all(|c| c.ready && matches!(c.state, CState::Running { .. }))
            {
                return s.pod_ip.unwrap();
            }
        }
        tokio::time::timeout_at(deadline, rx.changed())
            .await
            .expect("pod ready within 10 s")
            .unwrap();
    }
}

#[test]
fn nginx_and_agnhost_pods_answer_on_their_pod_ips() {
    let node = NodeNs::new("rt1");
    let data = tempfile::tempdir().unwrap();
    let rt = runtime(&node, data.path());
    in_node(&node, move || async move {
        rt.setup_node("10.244.7.0/24".parse().unwrap())
            .await
            .unwrap();
        let nginx = pod(
            "web-1",
            "uid-nginx-1",
            serde_json::json!([{"name": "nginx", "image": "nginx:1.14.2", "ports": [{"containerPort": 80}]}]),
        );
        let agn = pod(
            "agn-1",
            "uid-agn-1",
            serde_json::json!([{"name": "agnhost", "image": "registry.k8s.io/e2e-test-images/agnhost:2.53",
                "args": ["netexec", "--http-port=8080"],
                "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 1}}]),
        );
        let mut a = rt.start_pod(&nginx, &[]).await.unwrap();
        let mut b = rt.start_pod(&agn, &[]).await.unwrap();
        let ip_a = wait_ready(&mut a).await;
        let ip_b = wait_ready(&mut b).await;
        assert_ne!(ip_a, ip_b);
        assert!(ip_a.to_string().starts_with("10.244.7."));
        let page = eventually(Duration::from_secs(5), "nginx welcome page", || {
            curl(format!("http://{ip_a}/"))
        })
        .await;
        assert!(page.contains("Welcome to nginx!"), "{page}");
        let host = curl(format!("http://{ip_b}:8080/hostname")).await.unwrap();
        assert_eq!(host, "agn-1");
        let echo = curl(format!("http://{ip_b}:8080/echo?msg=hi"))
            .await
            .unwrap();
        assert_eq!(echo, "hi");
        // The client is the node (gateway address on the bridge).
        let client = curl(format!("http://{ip_b}:8080/clientip")).await.unwrap();
        assert!(client.starts_with("10.244.7.1:"), "{client}");
        rt.shutdown(Duration::from_secs(2)).await;
        assert!(curl(format!("http://{ip_a}/")).await.is_none());
    });
}

#[test]
fn pod_sees_cluster_resolv_conf_hostname_and_service_env() {
    let node = NodeNs::new("rt2");
    let data = tempfile::tempdir().unwrap();
    let rt = runtime(&node, data.path());
    let data_dir = data.path().to_path_buf();
    in_node(&node, move || async move {
        rt.setup_node("10.244.8.0/24".parse().unwrap())
            .await
            .unwrap();
        let svc: Service = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "nginx-service-nodeport", "namespace": "default"},
            "spec": {"clusterIP": "10.96.0.77", "ports": [{"port": 80, "protocol": "TCP"}]}
        }))
        .unwrap();
        let p = pod(
            "shell",
            "uid-shell",
            serde_json::json!([{"name": "sh", "image": "busybox",
                "command": ["sh", "-c", "cat /etc/resolv.conf; echo host=$(hostname); env; sleep 30"],
                "env": [{"name": "GREETING", "value": "hello $(NGINX_SERVICE_NODEPORT_SERVICE_HOST)"}]}]),
        );
        let mut rx = rt.start_pod(&p, &[svc]).await.unwrap();
        wait_ready(&mut rx).await;
        let log = portico_agent::log_path(&data_dir, "default", "shell", "uid-shell", "sh", 0);
        let text = eventually(Duration::from_secs(5), "log output", || {
            let log = log.clone();
            async move {
                std::fs::read_to_string(&log)
                    .ok()
                    .filter(|t| t.contains("GREETING"))
            }
        })
        .await;
        assert!(
            text.starts_with("search default.svc.cluster.local svc.cluster.local cluster.local\nnameserver 10.96.0.10\noptions ndots:5\n"),
            "{text}"
        );
        assert!(text.contains("host=shell\n"), "{text}");
        assert!(
            text.contains("NGINX_SERVICE_NODEPORT_SERVICE_HOST=10.96.0.77\n"),
            "{text}"
        );
        assert!(
            text.contains("NGINX_SERVICE_NODEPORT_PORT_80_TCP_ADDR=10.96.0.77\n"),
            "{text}"
        );
        assert!(text.contains("GREETING=hello 10.96.0.77\n"), "{text}");
        // The machine's own files are untouched.
        assert_ne!(
            std::fs::read_to_string("/etc/hostname")
                .unwrap_or_default()
                .trim(),
            "shell"
        );
        rt.shutdown(Duration::from_secs(1)).await;
    });
}

#[test]
fn killed_container_restarts_and_deleted_pod_leaves_nothing() {
    let node = NodeNs::new("rt3");
    let data = tempfile::tempdir().unwrap();
    let rt = runtime(&node, data.path());
    in_node(&node, move || async move {
        rt.setup_node("10.244.9.0/24".parse().unwrap())
            .await
            .unwrap();
        let p = pod(
            "agn",
            "uid-agn-kill",
            serde_json::json!([{"name": "agnhost", "image": "registry.k8s.io/e2e-test-images/agnhost:2.53", "args": ["netexec", "--http-port=8080"]}]),
        );
        let mut rx = rt.start_pod(&p, &[]).await.unwrap();
        let ip = wait_ready(&mut rx).await;
        let netns = rt.netns_of("uid-agn-kill").unwrap();
        // The container's process (alone in the pod's netns once it entered it).
        let pids = eventually(
            Duration::from_secs(5),
            "container process in the pod netns",
            || {
                let pids = rt.pod_pids("uid-agn-kill");
                // While the init script runs, `mount`/`hostname` children show up too.
                async move { (pids.len() == 1).then_some(pids) }
            },
        )
        .await;
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pids[0]),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
        let restarted = eventually(Duration::from_secs(5), "restart", || {
            let s = rx.borrow().clone();
            async move {
                let c = &s.containers[0];
                (c.restart_count == 1 && matches!(c.state, CState::Running { .. }))
                    .then(|| c.clone())
            }
        })
        .await;
        match restarted.last_state {
            Some(CState::Terminated {
                exit_code, signal, ..
            }) => assert_eq!((exit_code, signal), (137, Some(9))),
            other => panic!("last state {other:?}"),
        }
        let host = eventually(Duration::from_secs(5), "agnhost back", || {
            curl(format!("http://{ip}:8080/hostname"))
        })
        .await;
        assert_eq!(host, "agn");

        rt.stop_pod("uid-agn-kill", Duration::from_secs(2)).await;
        let list = String::from_utf8(
            std::process::Command::new("ip")
                .args(["netns", "list"])
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap();
        assert!(!list.contains(&netns), "{list}");
        let links = String::from_utf8(
            std::process::Command::new("ip")
                .args(["-o", "link"])
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap();
        assert!(!links.contains("veth"), "{links}");
        assert!(!rt.has_pod("uid-agn-kill"));

        // A replacement pod gets a new IP.
        let p2 = pod(
            "agn",
            "uid-agn-2",
            serde_json::json!([{"name": "agnhost", "image": "registry.k8s.io/e2e-test-images/agnhost:2.53"}]),
        );
        let mut rx2 = rt.start_pod(&p2, &[]).await.unwrap();
        let ip2 = wait_ready(&mut rx2).await;
        assert_ne!(ip, ip2);
        rt.shutdown(Duration::from_secs(1)).await;
        let links = String::from_utf8(
            std::process::Command::new("ip")
                .args(["-o", "link"])
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap();
        assert!(!links.contains("portico0"), "{links}");
    });
}

#[test]
fn unsupported_image_waits_with_a_reason() {
    let node = NodeNs::new("rt4");
    let data = tempfile::tempdir().unwrap();
    let rt = runtime(&node, data.path());
    in_node(&node, move || async move {
        rt.setup_node("10.244.10.0/24".parse().unwrap())
            .await
            .unwrap();
        let p = pod(
            "app",
            "uid-app",
            serde_json::json!([{"name": "app", "image": "mycompany/app:1.0"}]),
        );
        let mut rx = rt.start_pod(&p, &[]).await.unwrap();
        let (reason, message) = eventually(Duration::from_secs(5), "waiting reason", || {
            let s = rx.borrow_and_update().clone();
            async move {
                match &s.containers[0].state {
                    CState::Waiting { reason, message } if reason != "ContainerCreating" => {
                        Some((reason.clone(), message.clone()))
                    }
                    _ => None,
                }
            }
        })
        .await;
        assert_eq!(reason, "ImageNotSupported");
        assert!(message.unwrap().contains("mycompany/app:1.0"));
        let st = portico_agent::pod_status(&rx.borrow(), "Always", None, jiff::Timestamp::now());
        assert_eq!(st.phase.as_deref(), Some("Pending"));
        rt.shutdown(Duration::from_secs(1)).await;
    });
}
