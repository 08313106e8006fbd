//! The supervisor of one pod: a task per container that starts its process,
//! runs its probes, restarts it per `restartPolicy` with back-off, and stops it
//! gracefully (SIGTERM, grace period, SIGKILL) when the pod goes away.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::os::unix::process::ExitStatusExt as _;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Container, Pod, Service};
use nix::sys::signal::Signal;
use tokio::process::Child;
use tokio::sync::{mpsc, watch};

use crate::envvars::{self, RuntimeFacts};
use crate::image::{self, Launch};
use crate::names;
use crate::podfiles;
use crate::probe::{self, Action, Threshold, Timing};
use crate::process::{self, Exec};
use crate::runtime::{log_path, PodEvent, Runtime};
use crate::status::{self, CState, PodRt};

/// What every container task of a pod shares.
pub(crate) struct PodCtx {
    pub runtime: Arc<Runtime>,
    pub pod: Pod,
    pub services: Vec<Service>,
    pub status: watch::Sender<PodRt>,
    pub netns_path: PathBuf,
    pub pod_dir: PathBuf,
    pub ip: Ipv4Addr,
    pub uid: String,
    pub namespace: String,
    pub name: String,
}

type Stop = watch::Receiver<Option<Duration>>;

/// Runs all containers of the pod until `stop` carries a grace period.
pub(crate) async fn supervise(ctx: Arc<PodCtx>, stop: Stop) {
    let n = ctx
        .pod
        .spec
        .as_ref()
        .map(|s| s.containers.len())
        .unwrap_or(0);
    let tasks: Vec<_> = (0..n)
        .map(|i| tokio::spawn(run_container(Arc::clone(&ctx), i, stop.clone())))
        .collect();
    for t in tasks {
        let _ = t.await;
    }
}

/// Waits until the pod is told to stop; returns the grace period.
async fn stopped(stop: &mut Stop) -> Duration {
    loop {
        if let Some(g) = *stop.borrow_and_update() {
            return g;
        }
        if stop.changed().await.is_err() {
            return Duration::ZERO;
        }
    }
}

fn event(ctx: &PodCtx, container: &str, type_: &'static str, reason: &str, message: String) {
    ctx.runtime.emit(PodEvent {
        uid: ctx.uid.clone(),
        namespace: ctx.namespace.clone(),
        pod: ctx.name.clone(),
        container: container.to_string(),
        type_,
        reason: reason.to_string(),
        message,
    });
}

fn set(ctx: &PodCtx, idx: usize, f: impl FnOnce(&mut status::ContainerRt) -> bool) {
    ctx.status
        .send_if_modified(|p| p.containers.get_mut(idx).map(f).unwrap_or(false));
}

fn exit_code(s: &ExitStatus) -> (i32, Option<i32>) {
    match (s.code(), s.signal()) {
        (Some(c), _) => (c, None),
        (None, Some(sig)) => (128 + sig, Some(sig)),
        _ => (255, None),
    }
}

/// SIGTERM the container's process group, SIGKILL after `grace`.
async fn terminate(child: &mut Child, pid: u32, grace: Duration) -> Option<ExitStatus> {
    process::signal_group(pid, Signal::SIGTERM);
    match tokio::time::timeout(grace, child.wait()).await {
        Ok(r) => r.ok(),
        Err(_) => {
            process::signal_group(pid, Signal::SIGKILL);
            child.wait().await.ok()
        }
    }
}

/// The argv and extra environment for a resolved launch, preparing files the
/// program needs (nginx's config). `Err` is a waiting reason and message.
fn prepare(
    ctx: &PodCtx,
    c: &Container,
    launch: Launch,
    vars: &BTreeMap<String, String>,
) -> Result<Vec<String>, (String, String)> {
    let expand = |v: Vec<String>| {
        v.iter()
            .map(|a| envvars::expand(a, vars))
            .collect::<Vec<_>>()
    };
    match launch {
        Launch::Unsupported { reason, message } => Err((reason, message)),
        Launch::Agnhost { args } => {
            let mut argv = vec![
                ctx.runtime.cfg.agnhost_exe.to_string_lossy().into_owned(),
                "agnhost".to_string(),
            ];
            argv.extend(expand(args));
            Ok(argv)
        }
        Launch::Host { argv } => Ok(expand(argv)),
        Launch::Nginx => {
            let fail = |e: std::io::Error| {
                (
                    "CreateContainerError".to_string(),
                    format!("preparing nginx: {e}"),
                )
            };
            let Some(nginx) = process::which("nginx") else {
                return Err((
                    "ImageNotSupported".into(),
                    "image nginx needs the node's nginx (/usr/sbin/nginx), which is not installed"
                        .into(),
                ));
            };
            let dir = ctx.pod_dir.join("containers").join(&c.name);
            let html = dir.join("html");
            std::fs::create_dir_all(&html).map_err(fail)?;
            std::fs::write(html.join("index.html"), podfiles::NGINX_WELCOME).map_err(fail)?;
            let conf = dir.join("nginx.conf");
            std::fs::write(&conf, podfiles::nginx_conf(&dir, &html)).map_err(fail)?;
            let p = |x: &std::path::Path| x.to_string_lossy().into_owned();
            Ok(vec![
                p(&nginx),
                "-p".into(),
                p(&dir),
                "-c".into(),
                p(&conf),
                "-e".into(),
                "stderr".into(),
            ])
        }
    }
}

async fn run_container(ctx: Arc<PodCtx>, idx: usize, mut stop: Stop) {
    let Some(c) = ctx
        .pod
        .spec
        .as_ref()
        .and_then(|s| s.containers.get(idx))
        .cloned()
    else {
        return;
    };
    let spec = ctx.pod.spec.clone().unwrap_or_default();
    let policy = spec
        .restart_policy
        .clone()
        .unwrap_or_else(|| "Always".into());
    let pod_grace = Duration::from_secs(
        u64::try_from(spec.termination_grace_period_seconds.unwrap_or(30).max(0)).unwrap_or(30),
    );
    let mut level = 0u32;
    loop {
        if stop.borrow().is_some() {
            return;
        }
        let image = c.image.clone().unwrap_or_default();
        let launch = image::resolve(
            &image,
            c.command.as_deref().unwrap_or_default(),
            c.args.as_deref().unwrap_or_default(),
            |p| process::which(p).is_some(),
        );
        let facts = RuntimeFacts {
            pod_ip: ctx.ip,
            host_ip: ctx.runtime.cfg.node_ip,
        };
        let (mut env, unresolved) = envvars::container_env(&ctx.pod, &c, &ctx.services, facts);
        if !unresolved.is_empty() {
            tracing::warn!(pod = %ctx.name, container = %c.name, vars = ?unresolved, "env valueFrom sources not supported; left unset");
        }
        let hostname = spec.hostname.clone().unwrap_or_else(|| ctx.name.clone());
        let mut base = vec![
            ("PATH".to_string(), process::DEFAULT_PATH.to_string()),
            ("HOSTNAME".to_string(), hostname.clone()),
            ("HOME".to_string(), "/root".to_string()),
        ];
        base.retain(|(k, _)| !env.iter().any(|(e, _)| e == k));
        base.append(&mut env);
        let env = base;
        let vars: BTreeMap<String, String> = env.iter().cloned().collect();
        let argv = match prepare(&ctx, &c, launch, &vars) {
            Ok(a) => a,
            Err((reason, message)) => {
                tracing::warn!(pod = %ctx.name, container = %c.name, %reason, %message, "container cannot start");
                event(
                    &ctx,
                    &c.name,
                    "Warning",
                    "Failed",
                    format!("Error: {reason}: {message}"),
                );
                set(&ctx, idx, |s| {
                    let w = CState::Waiting {
                        reason: reason.clone(),
                        message: Some(message.clone()),
                    };
                    let changed = s.state != w;
                    s.state = w;
                    changed
                });
                stopped(&mut stop).await;
                return;
            }
        };
        let restart_count = ctx
            .status
            .borrow()
            .containers
            .get(idx)
            .map(|s| s.restart_count)
            .unwrap_or(0);
        let log = log_path(
            &ctx.runtime.cfg.data_dir,
            &ctx.namespace,
            &ctx.name,
            &ctx.uid,
            &c.name,
            restart_count,
        );
        let exec = Exec {
            netns: &ctx.netns_path,
            pod_dir: &ctx.pod_dir,
            hostname: &hostname,
            workdir: c.working_dir.as_deref(),
            argv: &argv,
            env: &env,
        };
        event(
            &ctx,
            &c.name,
            "Normal",
            "Pulled",
            format!("Container image \"{image}\" already present on machine"),
        );
        let started_at = Timestamp::now();
        let spawned = process::log_stdio(&log).and_then(|(out, err)| {
            process::command(&ctx.runtime.tools, &exec)
                .stdout(out)
                .stderr(err)
                .spawn()
                .map_err(|e| {
                    crate::error::AgentError::io(format!("starting {}", argv.join(" ")), e)
                })
        });
        let (code, signal, reason, liveness_kill) = match spawned {
            Err(e) => {
                tracing::warn!(pod = %ctx.name, container = %c.name, error = %e, "start failed");
                event(&ctx, &c.name, "Warning", "Failed", format!("Error: {e}"));
                (128, None, "StartError".to_string(), false)
            }
            Ok(mut child) => {
                let pid = child.id().unwrap_or(0);
                event(
                    &ctx,
                    &c.name,
                    "Normal",
                    "Created",
                    format!("Created container: {}", c.name),
                );
                event(
                    &ctx,
                    &c.name,
                    "Normal",
                    "Started",
                    format!("Started container {}", c.name),
                );
                process::record_pid(&ctx.pod_dir.join("pids"), &c.name, pid);
                let has_startup = c.startup_probe.is_some();
                let has_readiness = c.readiness_probe.is_some();
                set(&ctx, idx, |s| {
                    s.state = CState::Running { started_at };
                    s.container_id = Some(names::container_id(&ctx.uid, &c.name, restart_count));
                    s.started = !has_startup;
                    s.ready = !has_startup && !has_readiness;
                    true
                });
                tracing::info!(pod = %format!("{}/{}", ctx.namespace, ctx.name), container = %c.name, pid, "container started");
                let (kill_tx, mut kill_rx) = mpsc::channel::<String>(1);
                let probes = tokio::spawn(run_probes(Arc::clone(&ctx), idx, c.clone(), kill_tx));
                let outcome = tokio::select! {
                    r = child.wait() => (r.ok(), false, None),
                    Some(why) = kill_rx.recv() => {
                        tracing::info!(pod = %ctx.name, container = %c.name, %why, "probe failed; restarting container");
                        event(&ctx, &c.name, "Normal", "Killing", why.clone());
                        (terminate(&mut child, pid, pod_grace).await, true, None)
                    }
                    g = stopped(&mut stop) => {
                        event(&ctx, &c.name, "Normal", "Killing", format!("Stopping container {}", c.name));
                        (terminate(&mut child, pid, g).await, false, Some(()))
                    }
                };
                probes.abort();
                // Children that outlived the main process (nginx workers) go too.
                process::signal_group(pid, Signal::SIGKILL);
                let (code, signal) = outcome.0.as_ref().map(exit_code).unwrap_or((255, None));
                let reason = if code == 0 { "Completed" } else { "Error" }.to_string();
                if outcome.2.is_some() {
                    set(&ctx, idx, |s| {
                        s.state = CState::Terminated {
                            exit_code: code,
                            signal,
                            reason: reason.clone(),
                            started_at: Some(started_at),
                            finished_at: Timestamp::now(),
                        };
                        s.ready = false;
                        s.started = false;
                        true
                    });
                    return;
                }
                (code, signal, reason, outcome.1)
            }
        };
        let finished_at = Timestamp::now();
        let terminated = CState::Terminated {
            exit_code: code,
            signal,
            reason,
            started_at: Some(started_at),
            finished_at,
        };
        tracing::info!(pod = %ctx.name, container = %c.name, code, "container exited");
        let restart = liveness_kill || status::should_restart(&policy, code);
        set(&ctx, idx, |s| {
            s.state = terminated.clone();
            s.ready = false;
            s.started = false;
            true
        });
        if !restart {
            stopped(&mut stop).await;
            return;
        }
        let ran = finished_at.duration_since(started_at).unsigned_abs();
        if ran >= status::BACKOFF_RESET {
            level = 0;
        }
        let delay = status::backoff(level);
        level = level.saturating_add(1);
        set(&ctx, idx, |s| {
            s.last_state = Some(terminated.clone());
            if !delay.is_zero() {
                s.state = CState::Waiting {
                    reason: "CrashLoopBackOff".into(),
                    message: Some(format!(
                        "back-off {}s restarting failed container={} pod={}_{}({})",
                        delay.as_secs(),
                        c.name,
                        ctx.name,
                        ctx.namespace,
                        ctx.uid
                    )),
                };
            }
            s.restart_count += 1;
            true
        });
        if !delay.is_zero() {
            let msg = format!(
                "Back-off restarting failed container {} in pod {}_{}({})",
                c.name, ctx.name, ctx.namespace, ctx.uid
            );
            event(&ctx, &c.name, "Warning", "BackOff", msg);
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = stopped(&mut stop) => return,
            }
        }
    }
}

/// What a failed probe tried, for its Event message.
fn describe(a: &Action) -> String {
    match a {
        Action::Http { addr, path, .. } => {
            format!("Get \"http://{addr}{path}\": no 2xx/3xx response")
        }
        Action::Tcp { addr } => format!("dial tcp {addr}: connect failed"),
        Action::Exec { argv } => format!("command {argv:?} failed"),
        Action::Unsupported => "unsupported probe".to_string(),
    }
}

/// Runs one probe attempt.
async fn attempt(ctx: &PodCtx, action: &Action, timing: &Timing, c: &Container) -> bool {
    match action {
        Action::Http { addr, host, path } => {
            probe::http_get(*addr, host, path, timing.timeout).await
        }
        Action::Tcp { addr } => probe::tcp(*addr, timing.timeout).await,
        Action::Unsupported => true,
        Action::Exec { argv } => {
            let hostname = ctx
                .pod
                .spec
                .as_ref()
                .and_then(|s| s.hostname.clone())
                .unwrap_or_else(|| ctx.name.clone());
            let facts = RuntimeFacts {
                pod_ip: ctx.ip,
                host_ip: ctx.runtime.cfg.node_ip,
            };
            let (mut env, _) = envvars::container_env(&ctx.pod, c, &ctx.services, facts);
            env.insert(0, ("PATH".into(), process::DEFAULT_PATH.into()));
            let exec = Exec {
                netns: &ctx.netns_path,
                pod_dir: &ctx.pod_dir,
                hostname: &hostname,
                workdir: c.working_dir.as_deref(),
                argv,
                env: &env,
            };
            let mut cmd = process::command(&ctx.runtime.tools, &exec);
            cmd.stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .kill_on_drop(true);
            let Ok(mut child) = cmd.spawn() else {
                return false;
            };
            let pid = child.id().unwrap_or(0);
            match tokio::time::timeout(timing.timeout, child.wait()).await {
                Ok(Ok(s)) => s.success(),
                _ => {
                    process::signal_group(pid, Signal::SIGKILL);
                    false
                }
            }
        }
    }
}

/// Startup, then readiness and liveness probes of one container run.
/// Sends on `kill` when the container must be restarted.
async fn run_probes(ctx: Arc<PodCtx>, idx: usize, c: Container, kill: mpsc::Sender<String>) {
    if let Some(p) = &c.startup_probe {
        let t = Timing::of(p);
        let action = probe::action(p, &c, ctx.ip);
        tokio::time::sleep(t.initial_delay).await;
        let mut failures = 0;
        loop {
            if attempt(&ctx, &action, &t, &c).await {
                break;
            }
            failures += 1;
            if failures >= t.failure_threshold {
                let _ = kill
                    .send(format!(
                        "Container {} failed startup probe, will be restarted",
                        c.name
                    ))
                    .await;
                return;
            }
            tokio::time::sleep(t.period).await;
        }
        let ready = c.readiness_probe.is_none();
        set(&ctx, idx, |s| {
            s.started = true;
            s.ready = ready;
            true
        });
    }
    let readiness = async {
        let Some(p) = &c.readiness_probe else { return };
        let t = Timing::of(p);
        let action = probe::action(p, &c, ctx.ip);
        let mut th = Threshold::new(false);
        let mut ever_ok = false;
        // Like the kubelet, probe at once when the container starts; until
        // the first success, retry quickly (10 ms doubling to 50 ms: a
        // refused connect costs microseconds) so a pod is Ready as soon as
        // it serves; afterwards, every periodSeconds.
        let mut fast = Duration::from_millis(10);
        tokio::time::sleep(t.initial_delay).await;
        loop {
            let ok = th.record(attempt(&ctx, &action, &t, &c).await, &t);
            if ever_ok
                && !ok
                && ctx
                    .status
                    .borrow()
                    .containers
                    .get(idx)
                    .is_some_and(|s| s.ready)
            {
                event(
                    &ctx,
                    &c.name,
                    "Warning",
                    "Unhealthy",
                    format!("Readiness probe failed: {}", describe(&action)),
                );
            }
            ever_ok |= ok;
            set(&ctx, idx, |s| {
                let changed = s.ready != ok;
                s.ready = ok;
                changed
            });
            let wait = if ever_ok {
                t.period
            } else {
                let wait = fast;
                fast = (fast * 2).min(Duration::from_millis(50));
                t.period.min(wait)
            };
            tokio::time::sleep(wait).await;
        }
    };
    let liveness = async {
        let Some(p) = &c.liveness_probe else { return };
        let t = Timing::of(p);
        let action = probe::action(p, &c, ctx.ip);
        let mut th = Threshold::new(true);
        tokio::time::sleep(t.initial_delay).await;
        loop {
            if !th.record(attempt(&ctx, &action, &t, &c).await, &t) {
                event(
                    &ctx,
                    &c.name,
                    "Warning",
                    "Unhealthy",
                    format!("Liveness probe failed: {}", describe(&action)),
                );
                let _ = kill
                    .send(format!(
                        "Container {} failed liveness probe, will be restarted",
                        c.name
                    ))
                    .await;
                return;
            }
            tokio::time::sleep(t.period).await;
        }
    };
    tokio::join!(readiness, liveness);
}
