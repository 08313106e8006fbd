//! The Pod printer: READY, STATUS (kubectl's status reasoning), RESTARTS
//! (`1 (5s ago)`), AGE, and IP/NODE/NOMINATED NODE/READINESS GATES in -o wide.

use super::{age, arr, col, i, name_of, s, wide, Col, AGE, NAME};
use jiff::Timestamp;
use serde_json::{json, Value};

pub(crate) const COLUMNS: &[Col] = &[
    NAME,
    col(
        "Ready",
        "string",
        "The aggregate readiness state of this pod for accepting traffic.",
    ),
    col(
        "Status",
        "string",
        "The aggregate status of the containers in this pod.",
    ),
    col(
        "Restarts",
        "string",
        "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
    ),
    AGE,
    wide("IP", "string", "podIP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated."),
    wide("Node", "string", "NodeName indicates in which node this pod is scheduled."),
    wide("Nominated Node", "string", "nominatedNodeName is set only when this pod preempts other pods on the node, but it cannot be scheduled right away as preemption victims receive their graceful termination periods."),
    wide("Readiness Gates", "string", "If specified, all readiness gates will be evaluated for pod readiness."),
];

fn is_restartable_init(pod: &Value, name: &str) -> bool {
    arr(pod, "/spec/initContainers")
        .iter()
        .any(|c| s(c, "/name") == name && s(c, "/restartPolicy") == "Always")
}

fn has_condition_true(pod: &Value, ty: &str) -> bool {
    arr(pod, "/status/conditions")
        .iter()
        .any(|c| s(c, "/type") == ty && s(c, "/status") == "True")
}

/// Later of `current` and the container's `lastState.terminated.finishedAt`.
fn later_restart(current: Option<Timestamp>, status: &Value) -> Option<Timestamp> {
    let finished = status
        .pointer("/lastState/terminated/finishedAt")
        .and_then(age::parse_time);
    match (current, finished) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// `Signal:N` / `ExitCode:N` text of a terminated state without a reason.
fn exit_text(terminated: &Value, prefix: &str) -> String {
    let signal = i(terminated, "/signal");
    if signal != 0 {
        format!("{prefix}Signal:{signal}")
    } else {
        format!("{prefix}ExitCode:{}", i(terminated, "/exitCode"))
    }
}

/// What the pod row computes: (ready, total, reason, restarts, last restart).
struct PodSummary {
    ready: usize,
    total: usize,
    reason: String,
    restarts: i64,
    last_restart: Option<Timestamp>,
}

fn summarize(pod: &Value) -> PodSummary {
    let init_specs = arr(pod, "/spec/initContainers");
    let mut total = arr(pod, "/spec/containers").len()
        + init_specs
            .iter()
            .filter(|c| s(c, "/restartPolicy") == "Always")
            .count();
    let mut ready = 0usize;
    let mut restarts = 0i64;
    let mut sidecar_restarts = 0i64;
    let mut last_restart: Option<Timestamp> = None;
    let mut last_sidecar_restart: Option<Timestamp> = None;

    let mut reason = s(pod, "/status/phase").to_string();
    let status_reason = s(pod, "/status/reason");
    if !status_reason.is_empty() {
        reason = status_reason.to_string();
    }
    if arr(pod, "/status/conditions")
        .iter()
        .any(|c| s(c, "/type") == "PodScheduled" && s(c, "/reason") == "SchedulingGated")
    {
        reason = "SchedulingGated".to_string();
    }

    let mut initializing = false;
    for (idx, cs) in arr(pod, "/status/initContainerStatuses").iter().enumerate() {
        restarts += i(cs, "/restartCount");
        last_restart = later_restart(last_restart, cs);
        let sidecar = is_restartable_init(pod, s(cs, "/name"));
        if sidecar {
            sidecar_restarts += i(cs, "/restartCount");
            last_sidecar_restart = later_restart(last_sidecar_restart, cs);
        }
        let terminated = cs.pointer("/state/terminated").filter(|v| v.is_object());
        let waiting_reason = s(cs, "/state/waiting/reason");
        if terminated.is_some_and(|t| i(t, "/exitCode") == 0) {
            continue;
        }
        if sidecar && cs.get("started").and_then(Value::as_bool) == Some(true) {
            if cs.get("ready").and_then(Value::as_bool) == Some(true) {
                ready += 1;
            }
            continue;
        }
        if let Some(t) = terminated {
            let r = s(t, "/reason");
            reason = if r.is_empty() {
                exit_text(t, "Init:")
            } else {
                format!("Init:{r}")
            };
        } else if !waiting_reason.is_empty() && waiting_reason != "PodInitializing" {
            reason = format!("Init:{waiting_reason}");
        } else {
            reason = format!("Init:{idx}/{}", init_specs.len());
        }
        initializing = true;
        break;
    }

    if !initializing || has_condition_true(pod, "Initialized") {
        restarts = sidecar_restarts;
        last_restart = last_sidecar_restart;
        let mut has_running = false;
        // Kubernetes walks the statuses backwards, so the first container's
        // reason wins.
        for cs in arr(pod, "/status/containerStatuses").iter().rev() {
            restarts += i(cs, "/restartCount");
            last_restart = later_restart(last_restart, cs);
            let waiting_reason = s(cs, "/state/waiting/reason");
            let terminated = cs.pointer("/state/terminated").filter(|v| v.is_object());
            let running = cs.pointer("/state/running").is_some_and(Value::is_object);
            if !waiting_reason.is_empty() {
                reason = waiting_reason.to_string();
            } else if let Some(t) = terminated {
                let r = s(t, "/reason");
                reason = if r.is_empty() {
                    exit_text(t, "")
                } else {
                    r.to_string()
                };
            } else if cs.get("ready").and_then(Value::as_bool) == Some(true) && running {
                has_running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && has_running {
            reason = if has_condition_true(pod, "Ready") {
                "Running".to_string()
            } else {
                "NotReady".to_string()
            };
        }
    }

    let deleting = pod
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|v| !v.is_null());
    let phase = s(pod, "/status/phase");
    if deleting && status_reason == "NodeLost" {
        reason = "Unknown".to_string();
    } else if deleting && phase != "Succeeded" && phase != "Failed" {
        reason = "Terminating".to_string();
    }
    // Guard against an impossible ready > total when specs and statuses disagree.
    total = total.max(ready);
    PodSummary {
        ready,
        total,
        reason,
        restarts,
        last_restart,
    }
}

pub(crate) fn cells(pod: &Value, now: Timestamp) -> Vec<Value> {
    let sum = summarize(pod);
    let restarts = match sum.last_restart {
        Some(t) if sum.restarts != 0 => {
            format!("{} ({} ago)", sum.restarts, age::since_ts(t, now))
        }
        _ => sum.restarts.to_string(),
    };
    // v1 -> internal conversion fills podIPs from podIP.
    let mut ip = arr(pod, "/status/podIPs")
        .first()
        .map(|p| s(p, "/ip"))
        .unwrap_or("");
    if ip.is_empty() {
        ip = s(pod, "/status/podIP");
    }
    let or_none = |v: &str| {
        if v.is_empty() {
            "<none>".to_string()
        } else {
            v.to_string()
        }
    };
    let gates = arr(pod, "/spec/readinessGates");
    let readiness_gates = if gates.is_empty() {
        "<none>".to_string()
    } else {
        let conds = arr(pod, "/status/conditions");
        let true_count = gates
            .iter()
            .filter(|g| {
                let ty = s(g, "/conditionType");
                conds
                    .iter()
                    .find(|c| s(c, "/type") == ty)
                    .is_some_and(|c| s(c, "/status") == "True")
            })
            .count();
        format!("{true_count}/{}", gates.len())
    };
    vec![
        name_of(pod),
        Value::from(format!("{}/{}", sum.ready, sum.total)),
        Value::from(sum.reason),
        Value::from(restarts),
        super::age_of(pod, now),
        Value::from(or_none(ip)),
        Value::from(or_none(s(pod, "/spec/nodeName"))),
        Value::from(or_none(s(pod, "/status/nominatedNodeName"))),
        Value::from(readiness_gates),
    ]
}

/// Row conditions: `Completed` for pods that succeeded or failed.
pub(crate) fn conditions(pod: &Value) -> Option<Value> {
    match s(pod, "/status/phase") {
        "Succeeded" => Some(json!([{
            "type": "Completed", "status": "True", "reason": "Succeeded",
            "message": "The pod has completed successfully."
        }])),
        "Failed" => Some(json!([{
            "type": "Completed", "status": "True", "reason": "Failed",
            "message": "The pod failed."
        }])),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        "2026-12-04T12:10:00Z".parse().unwrap()
    }

    fn pod(status: Value) -> Value {
        json!({
            "metadata": {"name": "web-1", "namespace": "default", "creationTimestamp": "2026-12-04T12:00:00Z"},
            "spec": {"containers": [{"name": "app", "image": "nginx"}], "nodeName": "node-a"},
            "status": status,
        })
    }

    fn status_cells(status: Value) -> (String, String, String) {
        let c = cells(&pod(status), now());
        (
            c[1].as_str().unwrap().to_string(),
            c[2].as_str().unwrap().to_string(),
            c[3].as_str().unwrap().to_string(),
        )
    }

    #[test]
    fn pending_without_statuses() {
        assert_eq!(
            status_cells(json!({"phase": "Pending"})),
            ("0/1".into(), "Pending".into(), "0".into())
        );
    }

    #[test]
    fn container_creating_from_waiting_reason() {
        let st = json!({"phase": "Pending", "containerStatuses": [{
            "name": "app", "ready": false, "restartCount": 0,
            "state": {"waiting": {"reason": "ContainerCreating"}}}]});
        assert_eq!(status_cells(st).1, "ContainerCreating");
    }

    #[test]
    fn running_and_ready() {
        let st = json!({"phase": "Running", "podIP": "10.244.1.5",
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [{"name": "app", "ready": true, "restartCount": 0,
                "state": {"running": {"startedAt": "2026-12-04T12:00:01Z"}}}]});
        let c = cells(&pod(st), now());
        assert_eq!(
            c,
            vec![
                json!("web-1"),
                json!("1/1"),
                json!("Running"),
                json!("0"),
                json!("10m"),
                json!("10.244.1.5"),
                json!("node-a"),
                json!("<none>"),
                json!("<none>")
            ]
        );
    }

    #[test]
    fn crash_loop_with_restart_age() {
        let st = json!({"phase": "Running", "containerStatuses": [{
            "name": "app", "ready": false, "restartCount": 3,
            "state": {"waiting": {"reason": "CrashLoopBackOff"}},
            "lastState": {"terminated": {"exitCode": 1, "reason": "Error",
                "finishedAt": "2026-12-04T12:09:55Z"}}}]});
        assert_eq!(
            status_cells(st),
            ("0/1".into(), "CrashLoopBackOff".into(), "3 (5s ago)".into())
        );
    }

    #[test]
    fn completed_and_error_and_exit_codes() {
        let done = json!({"phase": "Succeeded", "containerStatuses": [{
            "name": "app", "ready": false, "restartCount": 0,
            "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]});
        assert_eq!(status_cells(done.clone()).1, "Completed");
        assert_eq!(
            conditions(&pod(done)).unwrap()[0]["reason"],
            json!("Succeeded")
        );
        let err = json!({"phase": "Failed", "containerStatuses": [{
            "name": "app", "restartCount": 0,
            "state": {"terminated": {"exitCode": 2, "reason": "Error"}}}]});
        assert_eq!(status_cells(err).1, "Error");
        let code = json!({"phase": "Failed", "containerStatuses": [{
            "name": "app", "restartCount": 0, "state": {"terminated": {"exitCode": 137}}}]});
        assert_eq!(status_cells(code).1, "ExitCode:137");
        let sig = json!({"phase": "Failed", "containerStatuses": [{
            "name": "app", "restartCount": 0, "state": {"terminated": {"exitCode": 0, "signal": 9}}}]});
        assert_eq!(status_cells(sig).1, "Signal:9");
    }

    #[test]
    fn image_pull_errors_show_waiting_reason() {
        for r in ["ErrImagePull", "ImagePullBackOff", "CreateContainerError"] {
            let st = json!({"phase": "Pending", "containerStatuses": [{
                "name": "app", "restartCount": 0, "state": {"waiting": {"reason": r, "message": "x"}}}]});
            assert_eq!(status_cells(st).1, r);
        }
    }

    #[test]
    fn terminating_overrides_running_but_not_terminal_phases() {
        let mut p = pod(json!({"phase": "Running", "containerStatuses": [{
            "name": "app", "ready": true, "restartCount": 0, "state": {"running": {}}}]}));
        p["metadata"]["deletionTimestamp"] = json!("2026-12-04T12:09:00Z");
        assert_eq!(cells(&p, now())[2], json!("Terminating"));
        p["status"]["phase"] = json!("Succeeded");
        p["status"]["containerStatuses"][0]["state"] =
            json!({"terminated": {"exitCode": 0, "reason": "Completed"}});
        assert_eq!(cells(&p, now())[2], json!("Completed"));
        p["status"]["phase"] = json!("Running");
        p["status"]["reason"] = json!("NodeLost");
        assert_eq!(cells(&p, now())[2], json!("Unknown"));
    }

    #[test]
    fn completed_with_running_sibling_reads_running_or_not_ready() {
        let mut p = pod(json!({"phase": "Running", "containerStatuses": [
            {"name": "a", "ready": true, "restartCount": 0, "state": {"running": {}}},
            {"name": "b", "ready": false, "restartCount": 0,
             "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}));
        p["spec"]["containers"] = json!([{"name": "a"}, {"name": "b"}]);
        assert_eq!(cells(&p, now())[2], json!("NotReady"));
        p["status"]["conditions"] = json!([{"type": "Ready", "status": "True"}]);
        assert_eq!(cells(&p, now())[1], json!("1/2"));
        assert_eq!(cells(&p, now())[2], json!("Running"));
    }

    #[test]
    fn init_containers_progress_and_failures() {
        let mut p = pod(json!({"phase": "Pending", "initContainerStatuses": [
            {"name": "init", "restartCount": 0, "state": {"running": {}}}]}));
        p["spec"]["initContainers"] = json!([{"name": "init"}]);
        assert_eq!(cells(&p, now())[2], json!("Init:0/1"));
        p["status"]["initContainerStatuses"][0]["state"] =
            json!({"waiting": {"reason": "CrashLoopBackOff"}});
        assert_eq!(cells(&p, now())[2], json!("Init:CrashLoopBackOff"));
        p["status"]["initContainerStatuses"][0]["state"] = json!({"terminated": {"exitCode": 3}});
        assert_eq!(cells(&p, now())[2], json!("Init:ExitCode:3"));
    }

    #[test]
    fn readiness_gates_count_true_conditions() {
        let mut p = pod(json!({"phase": "Running", "conditions": [
            {"type": "example.com/gate", "status": "True"}]}));
        p["spec"]["readinessGates"] = json!([
            {"conditionType": "example.com/gate"}, {"conditionType": "example.com/other"}]);
        assert_eq!(cells(&p, now())[8], json!("1/2"));
    }
}
