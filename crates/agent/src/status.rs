//! What the runtime knows about a pod (pure data) and how the kubelet turns
//! that into `PodStatus`: phase, conditions, container statuses; plus the
//! restart decision and its back-off. No IO.

use std::net::Ipv4Addr;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus, HostIP, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// One container's state as the runtime tracks it.
#[derive(Debug, Clone, PartialEq)]
pub enum CState {
    Waiting {
        reason: String,
        message: Option<String>,
    },
    Running {
        started_at: Timestamp,
    },
    Terminated {
        exit_code: i32,
        signal: Option<i32>,
        reason: String,
        started_at: Option<Timestamp>,
        finished_at: Timestamp,
    },
}

/// A container of a running pod.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerRt {
    pub name: String,
    pub image: String,
    pub state: CState,
    pub last_state: Option<CState>,
    pub restart_count: i32,
    pub ready: bool,
    pub started: bool,
    pub container_id: Option<String>,
}

impl ContainerRt {
    pub fn new(name: &str, image: &str) -> Self {
        Self {
            name: name.to_string(),
            image: image.to_string(),
            state: CState::Waiting {
                reason: "ContainerCreating".into(),
                message: None,
            },
            last_state: None,
            restart_count: 0,
            ready: false,
            started: false,
            container_id: None,
        }
    }
}

/// A pod as the runtime tracks it.
#[derive(Debug, Clone, PartialEq)]
pub struct PodRt {
    pub pod_ip: Option<Ipv4Addr>,
    pub host_ip: Ipv4Addr,
    pub start_time: Timestamp,
    /// The sandbox (netns, veth, files) is up.
    pub sandbox_ready: bool,
    pub containers: Vec<ContainerRt>,
}

/// The pod phase per the kubelet's `getPhase`.
pub fn phase(containers: &[ContainerRt], restart_policy: &str) -> &'static str {
    let (mut waiting, mut running, mut stopped, mut succeeded) = (0, 0, 0, 0);
    for c in containers {
        match &c.state {
            CState::Running { .. } => running += 1,
            CState::Terminated { exit_code, .. } => {
                stopped += 1;
                if *exit_code == 0 {
                    succeeded += 1;
                }
            }
            // A waiting container that ran before is restarting: it counts as stopped.
            CState::Waiting { .. } => match &c.last_state {
                Some(CState::Terminated { exit_code, .. }) => {
                    stopped += 1;
                    if *exit_code == 0 {
                        succeeded += 1;
                    }
                }
                _ => waiting += 1,
            },
        }
    }
    if waiting > 0 || containers.is_empty() {
        "Pending"
    } else if running > 0 {
        "Running"
    } else if stopped > 0 {
        match restart_policy {
            "Always" => "Running",
            "OnFailure" if stopped == succeeded => "Succeeded",
            "OnFailure" => "Running",
            _ if stopped == succeeded => "Succeeded",
            _ => "Failed",
        }
    } else {
        "Pending"
    }
}

fn time(t: Timestamp) -> Time {
    Time(t)
}

fn to_state(s: &CState) -> ContainerState {
    match s {
        CState::Waiting { reason, message } => ContainerState {
            waiting: Some(ContainerStateWaiting {
                reason: Some(reason.clone()),
                message: message.clone(),
            }),
            ..Default::default()
        },
        CState::Running { started_at } => ContainerState {
            running: Some(ContainerStateRunning {
                started_at: Some(time(*started_at)),
            }),
            ..Default::default()
        },
        CState::Terminated {
            exit_code,
            signal,
            reason,
            started_at,
            finished_at,
        } => ContainerState {
            terminated: Some(ContainerStateTerminated {
                exit_code: *exit_code,
                signal: *signal,
                reason: Some(reason.clone()),
                started_at: started_at.map(time),
                finished_at: Some(time(*finished_at)),
                ..Default::default()
            }),
            ..Default::default()
        },
    }
}

/// The container status the API shows.
pub fn container_status(c: &ContainerRt) -> ContainerStatus {
    let running = matches!(c.state, CState::Running { .. });
    ContainerStatus {
        name: c.name.clone(),
        image: c.image.clone(),
        image_id: format!("portico://{}", c.image),
        container_id: c.container_id.clone(),
        ready: c.ready && running,
        started: Some(c.started && running),
        restart_count: c.restart_count,
        state: Some(to_state(&c.state)),
        last_state: Some(c.last_state.as_ref().map(to_state).unwrap_or_default()),
        ..Default::default()
    }
}

/// A condition, keeping the previous transition time when the status is unchanged.
fn condition(
    prev: Option<&PodStatus>,
    kind: &str,
    ok: bool,
    reason: Option<&str>,
    message: Option<String>,
    now: Timestamp,
) -> PodCondition {
    let status = if ok { "True" } else { "False" };
    let prior = prev
        .and_then(|p| p.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == kind))
        .filter(|c| c.status == status)
        .and_then(|c| c.last_transition_time.clone());
    PodCondition {
        type_: kind.to_string(),
        status: status.to_string(),
        last_transition_time: Some(prior.unwrap_or(Time(now))),
        reason: reason.map(String::from),
        message,
        ..Default::default()
    }
}

/// The full pod status the agent writes through `pods/status`.
pub fn pod_status(
    rt: &PodRt,
    restart_policy: &str,
    prev: Option<&PodStatus>,
    now: Timestamp,
) -> PodStatus {
    let phase = phase(&rt.containers, restart_policy);
    let terminal = phase == "Succeeded" || phase == "Failed";
    let unready: Vec<&str> = rt
        .containers
        .iter()
        .filter(|c| !(c.ready && matches!(c.state, CState::Running { .. })))
        .map(|c| c.name.as_str())
        .collect();
    let all_ready = unready.is_empty() && !rt.containers.is_empty();
    let (reason, message) = if all_ready {
        (None, None)
    } else if terminal {
        (Some("PodCompleted"), None)
    } else {
        (
            Some("ContainersNotReady"),
            Some(format!(
                "containers with unready status: [{}]",
                unready.join(" ")
            )),
        )
    };
    let conditions = vec![
        condition(
            prev,
            "PodReadyToStartContainers",
            rt.sandbox_ready && !terminal,
            None,
            None,
            now,
        ),
        condition(prev, "Initialized", true, None, None, now),
        condition(prev, "Ready", all_ready, reason, message.clone(), now),
        condition(prev, "ContainersReady", all_ready, reason, message, now),
        condition(prev, "PodScheduled", true, None, None, now),
    ];
    let host = rt.host_ip.to_string();
    PodStatus {
        phase: Some(phase.to_string()),
        conditions: Some(conditions),
        host_ip: Some(host.clone()),
        host_ips: Some(vec![HostIP { ip: host }]),
        pod_ip: rt.pod_ip.map(|ip| ip.to_string()),
        pod_ips: rt.pod_ip.map(|ip| vec![PodIP { ip: ip.to_string() }]),
        start_time: Some(Time(rt.start_time)),
        container_statuses: Some(rt.containers.iter().map(container_status).collect()),
        qos_class: Some("BestEffort".to_string()),
        ..Default::default()
    }
}

/// Whether a container that exited with `exit_code` is started again.
pub fn should_restart(restart_policy: &str, exit_code: i32) -> bool {
    match restart_policy {
        "Never" => false,
        "OnFailure" => exit_code != 0,
        _ => true,
    }
}

/// The kubelet's crash back-off: the first restart is immediate, then 10 s
/// doubling up to 5 min. `level` counts the crashes since the last reset.
pub fn backoff(level: u32) -> Duration {
    if level == 0 {
        return Duration::ZERO;
    }
    let secs = 10u64.saturating_mul(1u64 << (level - 1).min(10));
    Duration::from_secs(secs.min(300))
}

/// A container that ran this long without crashing resets its back-off (the
/// kubelet resets after twice the maximum delay).
pub const BACKOFF_RESET: Duration = Duration::from_secs(600);

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap()
    }

    fn running(name: &str) -> ContainerRt {
        let mut c = ContainerRt::new(name, "nginx");
        c.state = CState::Running { started_at: ts(10) };
        c.started = true;
        c
    }

    fn term(code: i32) -> CState {
        CState::Terminated {
            exit_code: code,
            signal: None,
            reason: "Error".into(),
            started_at: None,
            finished_at: ts(20),
        }
    }

    #[test]
    fn phases_follow_the_kubelet() {
        assert_eq!(phase(&[ContainerRt::new("a", "x")], "Always"), "Pending");
        assert_eq!(phase(&[running("a")], "Always"), "Running");
        let mut crashed = ContainerRt::new("a", "x");
        crashed.state = CState::Waiting {
            reason: "CrashLoopBackOff".into(),
            message: None,
        };
        crashed.last_state = Some(term(1));
        assert_eq!(phase(std::slice::from_ref(&crashed), "Always"), "Running");
        let mut done = ContainerRt::new("a", "x");
        done.state = term(0);
        assert_eq!(phase(std::slice::from_ref(&done), "Never"), "Succeeded");
        done.state = term(2);
        assert_eq!(phase(std::slice::from_ref(&done), "Never"), "Failed");
        assert_eq!(phase(&[done], "OnFailure"), "Running");
    }

    #[test]
    fn ready_conditions_and_transition_times() {
        let mut rt = PodRt {
            pod_ip: Some(Ipv4Addr::new(10, 244, 0, 2)),
            host_ip: Ipv4Addr::new(192, 168, 0, 2),
            start_time: ts(1),
            sandbox_ready: true,
            containers: vec![running("web")],
        };
        let s1 = pod_status(&rt, "Always", None, ts(100));
        let ready = |s: &PodStatus| {
            s.conditions
                .as_ref()
                .unwrap()
                .iter()
                .find(|c| c.type_ == "Ready")
                .cloned()
                .unwrap()
        };
        assert_eq!(ready(&s1).status, "False");
        assert_eq!(
            ready(&s1).message.as_deref(),
            Some("containers with unready status: [web]")
        );
        assert_eq!(s1.pod_ip.as_deref(), Some("10.244.0.2"));
        assert_eq!(s1.phase.as_deref(), Some("Running"));
        rt.containers[0].ready = true;
        let s2 = pod_status(&rt, "Always", Some(&s1), ts(200));
        assert_eq!(ready(&s2).status, "True");
        assert_eq!(ready(&s2).last_transition_time, Some(Time(ts(200))));
        let s3 = pod_status(&rt, "Always", Some(&s2), ts(300));
        assert_eq!(ready(&s3).last_transition_time, Some(Time(ts(200))));
        let cs = &s3.container_statuses.unwrap()[0];
        assert!(cs.ready);
        assert_eq!(cs.started, Some(true));
    }

    #[test]
    fn restart_policy_and_backoff() {
        assert!(should_restart("Always", 0));
        assert!(!should_restart("OnFailure", 0));
        assert!(should_restart("OnFailure", 137));
        assert!(!should_restart("Never", 1));
        let d: Vec<u64> = (0..8).map(|l| backoff(l).as_secs()).collect();
        assert_eq!(d, vec![0, 10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(backoff(60).as_secs(), 300);
    }
}
