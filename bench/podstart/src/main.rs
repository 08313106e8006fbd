//! Benchmark of pod start through the API (issue 4): a release `portico up`
//! on one node, 100 agnhost pods created at once with kube-rs, each timed
//! from its create request to Ready=True seen in a watch (split into
//! scheduling, start and readiness), the agent's RSS with the pods running,
//! and a baseline in the same run: the same pods created one at a time.
//!
//! `cargo build --release -p portico -p portico-bench-podstart && sudo
//! target/release/portico-bench-podstart --portico target/release/portico`

mod cluster;
mod measure;
mod procfs;
mod stats;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;

use crate::cluster::{Cluster, Mode};
use crate::stats::{ms, phases, summarize, Marks};

/// Errors of the benchmark.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// Files, processes, namespaces.
    #[error("io: {0}")]
    Io(String),
    /// The cluster misbehaved (exit, timeout, API error).
    #[error("server: {0}")]
    Server(String),
}

#[derive(Debug, Parser)]
#[command(name = "portico-bench-podstart")]
struct Args {
    /// The portico binary under test (a release build).
    #[arg(long)]
    portico: PathBuf,
    /// Pods created at once.
    #[arg(long, default_value_t = 100)]
    pods: usize,
    /// Pods of the one-at-a-time baseline (0 skips it).
    #[arg(long, default_value_t = 100)]
    sequential: usize,
    /// Layouts to run: `single` (agent in the `portico up` process) and/or
    /// `nodes1` (`portico up --nodes 1`, the agent a child process).
    #[arg(long, value_delimiter = ',', default_value = "single,nodes1")]
    modes: Vec<String>,
    /// Longest wait for all pods of one run to be Ready.
    #[arg(long, default_value_t = 120)]
    timeout_secs: u64,
    /// Also print every pod's milestones of the burst (ms after its create).
    #[arg(long)]
    per_pod: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if !nix::unistd::geteuid().is_root() {
        eprintln!("portico-bench-podstart needs root (network namespaces)");
        return ExitCode::FAILURE;
    }
    let mut ok = true;
    for m in &args.modes {
        let mode = match m.as_str() {
            "single" => Mode::Single,
            "nodes1" => Mode::Nodes1,
            other => {
                eprintln!("unknown mode {other:?} (single, nodes1)");
                return ExitCode::FAILURE;
            }
        };
        if let Err(e) = run_mode(&args, mode) {
            eprintln!("{m}: {e}");
            ok = false;
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn run_mode(args: &Args, mode: Mode) -> Result<(), BenchError> {
    let cluster = Cluster::start(&args.portico, mode)?;
    // The client runs on a thread of its own: in single mode it enters the
    // node namespace (where the API server's loopback is) before its tokio
    // threads exist, so all of them are in it; the main thread stays out.
    let netns = cluster.netns.clone();
    let kubeconfig = cluster.kubeconfig();
    let pid = cluster.pid();
    let agent = move || cluster_agent_pid(mode, pid);
    let per_pod = args.per_pod;
    let args = (args.pods, args.sequential, args.timeout_secs);
    let res = std::thread::spawn(move || -> Result<Report, BenchError> {
        if let Some(ns) = netns {
            let f = std::fs::File::open(format!("/run/netns/{ns}"))
                .map_err(|e| BenchError::Io(format!("opening netns {ns}: {e}")))?;
            nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(|e| BenchError::Io(format!("entering netns {ns}: {e}")))?;
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| BenchError::Io(e.to_string()))?;
        rt.block_on(client_run(kubeconfig, pid, agent, args))
    })
    .join()
    .map_err(|_| BenchError::Io("the client thread panicked".into()))?;
    match res {
        Ok(r) => {
            print_report(mode, args.0, &r);
            println!(
                "- pod sandboxes that fell back to `ip` (agent log): {}",
                cluster.ip_fallbacks()
            );
            if per_pod {
                print_per_pod(&r.burst);
            }
            Ok(())
        }
        Err(e) => Err(BenchError::Server(format!(
            "{e}\n--- portico up log (tail) ---\n{}",
            cluster.log_tail()
        ))),
    }
}

fn cluster_agent_pid(mode: Mode, up: Option<u32>) -> Option<u32> {
    match mode {
        Mode::Single => up,
        Mode::Nodes1 => up.and_then(procfs::agent_child),
    }
}

/// What one layout measured.
struct Report {
    /// Burst netns when the pods were gone from the API, after waiting (up
    /// to 20 s), and the wait.
    netns_left: (usize, usize, Duration),
    seq: Vec<Marks>,
    burst: Vec<Marks>,
    burst_wall: Duration,
    load: Vec<(String, String)>,
    rss_idle_kib: Option<u64>,
    rss_pods_kib: Option<u64>,
    up_rss_pods_kib: Option<u64>,
}

async fn client_run(
    kubeconfig: PathBuf,
    up_pid: Option<u32>,
    agent_pid: impl Fn() -> Option<u32>,
    (n, n_seq, timeout): (usize, usize, u64),
) -> Result<Report, BenchError> {
    let timeout = Duration::from_secs(timeout);
    let kc = kube::config::Kubeconfig::read_from(&kubeconfig)
        .map_err(|e| BenchError::Io(format!("reading kubeconfig: {e}")))?;
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .map_err(|e| BenchError::Io(format!("kubeconfig: {e}")))?;
    let client = kube::Client::try_from(cfg).map_err(|e| BenchError::Io(e.to_string()))?;
    measure::wait_node_ready(&client, Duration::from_secs(90)).await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    // Warm the client's connection pool (TLS handshakes are the client's
    // cost, not the cluster's): as many concurrent requests as pods.
    let warm = (0..n).map(|_| {
        let p = pods.clone();
        async move { p.list(&kube::api::ListParams::default().limit(1)).await }
    });
    futures::future::join_all(warm).await;
    let rss_idle_kib = agent_pid().and_then(procfs::rss_kib);
    let mut load = Vec::new();
    let mut seq = Vec::new();
    if n_seq > 0 {
        let before = procfs::loadavg();
        seq = measure::sequential(&pods, "seq", n_seq, timeout).await?;
        load.push((
            "sequential".to_string(),
            format!("{before} → {}", procfs::loadavg()),
        ));
        measure::delete_run(&pods, "seq", timeout).await?;
    }
    let before = procfs::loadavg();
    let (burst, burst_wall) = measure::burst(&pods, "burst", n, timeout).await?;
    load.push((
        "burst".to_string(),
        format!("{before} → {}", procfs::loadavg()),
    ));
    let rss_pods_kib = agent_pid().and_then(procfs::rss_kib);
    let up_rss_pods_kib = up_pid.and_then(procfs::rss_kib);
    measure::delete_run(&pods, "burst", timeout).await?;
    // The agent deletes a pod object only after its sandbox is gone; count
    // what is left of the burst's netns now and after a bounded wait.
    let burst_netns = || {
        std::fs::read_dir("/run/netns")
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter(|e| e.file_name().to_string_lossy().contains("-default-burst-"))
                    .count()
            })
            .unwrap_or(0)
    };
    let netns_at_delete = burst_netns();
    let waited = std::time::Instant::now();
    while burst_netns() > 0 && waited.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let netns_left = (netns_at_delete, burst_netns(), waited.elapsed());
    Ok(Report {
        netns_left,
        seq,
        burst,
        burst_wall,
        load,
        rss_idle_kib,
        rss_pods_kib,
        up_rss_pods_kib,
    })
}

fn row(label: &str, v: Vec<Duration>) -> String {
    match summarize(v) {
        Some(s) => format!(
            "| {label} | {} | {} | {} | {} |",
            s.n,
            ms(s.p50),
            ms(s.p99),
            ms(s.max)
        ),
        None => format!("| {label} | 0 | – | – | – |"),
    }
}

fn table(title: &str, marks: &[Marks]) {
    println!("\n{title}\n");
    println!("| phase | n | p50 | p99 | max |\n|---|---|---|---|---|");
    let col = |i: usize| -> Vec<Duration> { marks.iter().filter_map(|m| phases(m)[i]).collect() };
    println!("{}", row("create sent → Ready seen", col(0)));
    println!(
        "{}",
        row(
            "create request (sent → response)",
            marks.iter().filter_map(|m| m.created).collect()
        )
    );
    println!("{}", row("sent → scheduled (nodeName)", col(1)));
    println!("{}", row("scheduled → Running", col(2)));
    println!("{}", row("Running → Ready", col(3)));
}

fn print_report(mode: Mode, n: usize, r: &Report) {
    let name = match mode {
        Mode::Single => "portico up (one process: server, controllers, agent)",
        Mode::Nodes1 => "portico up --nodes 1 (agent a child process)",
    };
    println!("\n## {name}");
    for (what, l) in &r.load {
        println!("- load average during {what}: {l}");
    }
    if !r.seq.is_empty() {
        table(
            &format!("Baseline: {} pods one at a time", r.seq.len()),
            &r.seq,
        );
    }
    table(&format!("{n} pods created at once"), &r.burst);
    println!("\n- all {n} Ready after {}", ms(r.burst_wall));
    let mib = |k: Option<u64>| {
        k.map(|k| format!("{:.1} MiB", k as f64 / 1024.0))
            .unwrap_or_else(|| "?".into())
    };
    let who = match mode {
        Mode::Single => "portico up process",
        Mode::Nodes1 => "portico agent process",
    };
    println!(
        "- {who} RSS: {} idle, {} with {n} pods",
        mib(r.rss_idle_kib),
        mib(r.rss_pods_kib)
    );
    let (at, left, after) = r.netns_left;
    println!(
        "- burst pod netns when the pods were gone from the API: {at}; {left} after {}",
        ms(after)
    );
    if mode == Mode::Nodes1 {
        println!(
            "- portico up (server + controllers) RSS with {n} pods: {}",
            mib(r.up_rss_pods_kib)
        );
    }
}

fn print_per_pod(marks: &[Marks]) {
    let f = |d: Option<Duration>| d.map(|d| d.as_millis().to_string()).unwrap_or_default();
    println!("\npod,created_ms,scheduled_ms,running_ms,ready_ms");
    for (i, m) in marks.iter().enumerate() {
        println!(
            "{i},{},{},{},{}",
            f(m.created),
            f(m.scheduled),
            f(m.running),
            f(m.ready)
        );
    }
}
