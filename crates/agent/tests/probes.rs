//! Probe, restart-policy and termination behaviour of the runtime, with real
//! processes inside a throwaway node namespace.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{eventually, in_node, runtime, NodeNs};
use k8s_openapi::api::core::v1::Pod;
use portico_agent::{CState, ContainerRt};

fn pod(name: &str, policy: &str, grace: i64, containers: serde_json::Value) -> Pod {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}")},
        "spec": {"containers": containers, "restartPolicy": policy, "terminationGracePeriodSeconds": grace}
    }))
    .unwrap()
}

async fn container(
    rx: &tokio::sync::watch::Receiver<portico_agent::PodRt>,
    what: &str,
    f: impl Fn(&ContainerRt) -> bool,
) -> ContainerRt {
    eventually(Duration::from_secs(10), what, || {
        let c = rx.borrow().containers[0].clone();
        let ok = f(&c);
        async move { ok.then_some(c) }
    })
    .await
}

const AGNHOST: &str = "registry.k8s.io/e2e-test-images/agnhost:2.53";

#[test]
fn readiness_failure_keeps_pod_unready_and_liveness_failure_restarts() {
    let node = NodeNs::new("pr1");
    let data = tempfile::tempdir().unwrap();
    let rt = runtime(&node, data.path());
    in_node(&node, move || async move {
        rt.setup_node("10.244.11.0/24".parse().unwrap())
            .await
            .unwrap();
        // Readiness on a port nothing listens on: Running but never Ready.
        let unready = pod(
            "unready",
            "Always",
            1,
            serde_json::json!([{"name": "c", "image": AGNHOST,
            "args": ["netexec", "--http-port=8080"],
            "readinessProbe": {"tcpSocket": {"port": 9999}, "periodSeconds": 1}}]),
        );
        // Liveness via exec that fails: restarted after 2 failures.
        let dying = pod(
            "dying",
            "Always",
            1,
            serde_json::json!([{"name": "c", "image": AGNHOST,
            "args": ["netexec", "--http-port=8080"],
            "livenessProbe": {"exec": {"command": ["sh", "-c", "exit 1"]}, "periodSeconds": 1, "failureThreshold": 2}}]),
        );
        let a = rt.start_pod(&unready, &[]).await.unwrap();
        let b = rt.start_pod(&dying, &[]).await.unwrap();
        let c = container(&b, "liveness restart", |c| c.restart_count >= 1).await;
        assert!(
            matches!(c.last_state, Some(CState::Terminated { .. })),
            "{c:?}"
        );
        let c = a.borrow().containers[0].clone();
        assert!(matches!(c.state, CState::Running { .. }));
        assert!(!c.ready, "readiness probe fails, so not ready");
        let st = portico_agent::pod_status(&a.borrow(), "Always", None, jiff::Timestamp::now());
        let ready = st
            .conditions
            .unwrap()
            .into_iter()
            .find(|c| c.type_ == "Ready")
            .unwrap();
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_deref()),
            ("False", Some("ContainersNotReady"))
        );
        rt.shutdown(Duration::from_secs(1)).await;
    });
}

#[test]
fn restart_policies_and_crash_loop_backoff() {
    let node = NodeNs::new("pr2");
    let data = tempfile::tempdir().unwrap();
    let rt = runtime(&node, data.path());
    in_node(&node, move || async move {
        rt.setup_node("10.244.12.0/24".parse().unwrap())
            .await
            .unwrap();
        let never = pod(
            "never",
            "Never",
            1,
            serde_json::json!([{"name": "c", "image": "busybox", "command": ["sh", "-c", "exit 3"]}]),
        );
        let done = pod(
            "done",
            "OnFailure",
            1,
            serde_json::json!([{"name": "c", "image": "busybox", "command": ["true"]}]),
        );
        let crash = pod(
            "crash",
            "Always",
            1,
            serde_json::json!([{"name": "c", "image": "busybox", "command": ["sh", "-c", "exit 1"]}]),
        );
        let n = rt.start_pod(&never, &[]).await.unwrap();
        let d = rt.start_pod(&done, &[]).await.unwrap();
        let c = rt.start_pod(&crash, &[]).await.unwrap();
        let nc = container(&n, "Never: terminated", |c| {
            matches!(c.state, CState::Terminated { .. })
        })
        .await;
        assert!(
            matches!(nc.state, CState::Terminated { exit_code: 3, ref reason, .. } if reason == "Error")
        );
        assert_eq!(nc.restart_count, 0);
        let st = portico_agent::pod_status(&n.borrow(), "Never", None, jiff::Timestamp::now());
        assert_eq!(st.phase.as_deref(), Some("Failed"));
        let dc = container(&d, "OnFailure: completed", |c| {
            matches!(c.state, CState::Terminated { .. })
        })
        .await;
        assert!(
            matches!(dc.state, CState::Terminated { exit_code: 0, ref reason, .. } if reason == "Completed")
        );
        assert_eq!(
            portico_agent::pod_status(&d.borrow(), "OnFailure", None, jiff::Timestamp::now())
                .phase
                .as_deref(),
            Some("Succeeded")
        );
        // Always: first restart at once, then CrashLoopBackOff with 10 s.
        let cc = container(
            &c,
            "CrashLoopBackOff",
            |c| matches!(&c.state, CState::Waiting { reason, .. } if reason == "CrashLoopBackOff"),
        )
        .await;
        assert_eq!(cc.restart_count, 2);
        match cc.state {
            CState::Waiting { message, .. } => assert!(
                message
                    .unwrap()
                    .starts_with("back-off 10s restarting failed container=c pod=crash_default"),
                "message"
            ),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            portico_agent::pod_status(&c.borrow(), "Always", None, jiff::Timestamp::now())
                .phase
                .as_deref(),
            Some("Running")
        );
        rt.shutdown(Duration::from_secs(1)).await;
    });
}

#[test]
fn termination_sends_sigterm_then_sigkill_after_grace() {
    let node = NodeNs::new("pr3");
    let data = tempfile::tempdir().unwrap();
    let rt = runtime(&node, data.path());
    in_node(&node, move || async move {
        rt.setup_node("10.244.13.0/24".parse().unwrap())
            .await
            .unwrap();
        // Ignores SIGTERM: only SIGKILL after the grace period stops it.
        let stubborn = pod(
            "stubborn",
            "Always",
            1,
            serde_json::json!([{"name": "c", "image": "busybox",
            "command": ["sh", "-c", "trap '' TERM; while true; do sleep 0.1; done"]}]),
        );
        let polite = pod(
            "polite",
            "Always",
            30,
            serde_json::json!([{"name": "c", "image": AGNHOST, "args": ["pause"]}]),
        );
        let s = rt.start_pod(&stubborn, &[]).await.unwrap();
        let p = rt.start_pod(&polite, &[]).await.unwrap();
        container(&s, "running", |c| matches!(c.state, CState::Running { .. })).await;
        container(&p, "running", |c| matches!(c.state, CState::Running { .. })).await;
        let t = Instant::now();
        rt.stop_pod("uid-polite", Duration::from_secs(30)).await;
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "pause exits on SIGTERM"
        );
        let t = Instant::now();
        rt.stop_pod("uid-stubborn", Duration::from_secs(2)).await;
        let took = t.elapsed();
        assert!(
            took >= Duration::from_secs(2) && took < Duration::from_secs(6),
            "{took:?}"
        );
        assert!(rt.pod_uids().is_empty());
        rt.shutdown(Duration::from_secs(1)).await;
    });
}
