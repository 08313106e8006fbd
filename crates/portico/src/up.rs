//! `portico up`: a whole cluster in one command.
//!
//! Single node: the control plane and the node run in this process, and the
//! network namespace `portico up` was started in is the node.
//! `--nodes N`: the namespaces of a [`portico_cluster::LanPlan`] are created, the
//! API server also listens on the LAN inside `NAME-lan`, and one `portico agent`
//! child process runs inside each node namespace (restarted if it dies). Ctrl-C stops the agents (which
//! remove their pods and rules) and deletes the namespaces.

use std::net::{SocketAddr, TcpListener};
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context as _;
use portico_cluster::{netns, LanPlan, Topology};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::cli::UpArgs;
use crate::compose::{self, NodeSpec};

/// How long agents get to stop their pods before they are killed.
const AGENT_STOP_GRACE: Duration = Duration::from_secs(40);

/// Pause before an agent that died is started again.
const AGENT_RESTART_DELAY: Duration = Duration::from_secs(1);

/// Runs `portico up`.
pub async fn run(args: UpArgs) -> anyhow::Result<()> {
    match args.nodes {
        None => single_node(args).await,
        Some(n) => multi_node(args, n).await,
    }
}

async fn single_node(args: UpArgs) -> anyhow::Result<()> {
    let token = CancellationToken::new();
    compose::cancel_on_signal(token.clone());
    let listener = TcpListener::bind(args.cluster.listen)
        .with_context(|| format!("listening on {}", args.cluster.listen))?;
    let mut tasks = JoinSet::new();
    let cp = compose::start_control_plane(
        &args.cluster,
        vec![listener],
        Vec::new(),
        None,
        &mut tasks,
        &token,
    )
    .await?;
    let ip = match args.node_ip {
        Some(ip) => ip,
        None => {
            portico_agent::detect_node_ip().context("detecting the node IP (pass --node-ip)")?
        }
    };
    let name = match args.node_name.clone() {
        Some(n) => n,
        None => nix::unistd::gethostname()?.to_string_lossy().to_string(),
    };
    let node = NodeSpec {
        name: name.clone(),
        ip,
        data_dir: args.cluster.data_dir.join("node"),
        cluster_cidr: args.cluster.cluster_cidr,
        args: args.node.clone(),
        token: Some(
            std::fs::read_to_string(&cp.prepared.node_token_path)
                .with_context(|| format!("reading {}", cp.prepared.node_token_path.display()))?
                .trim()
                .to_string(),
        ),
    };
    let client = cp.client.clone();
    let t = token.clone();
    tasks.spawn(async move { compose::run_node(client, node, t).await });
    println!("Portico is up: node {name} ({ip}), API server {}", cp.url);
    println!(
        "  export KUBECONFIG={}",
        cp.prepared.kubeconfig_path.display()
    );
    println!("  kubectl apply -f examples/ && kubectl get pods,svc -o wide");
    compose::supervise(tasks, token).await
}

async fn multi_node(args: UpArgs, nodes: u8) -> anyhow::Result<()> {
    let plan = LanPlan::new(&args.name, nodes)?;
    let topo = Topology::create(plan.clone())?;
    let token = CancellationToken::new();
    compose::cancel_on_signal(token.clone());

    let local = TcpListener::bind(args.cluster.listen)
        .with_context(|| format!("listening on {}", args.cluster.listen))?;
    let lan_addr = SocketAddr::new(plan.server_ip().into(), 6443);
    let lan = netns::bind_tcp_in(&Topology::ns_path(&plan.lan_ns()), lan_addr)?;
    let mut cluster = args.cluster.clone();
    if cluster.lb_pool.is_empty() {
        cluster.lb_pool = vec![plan.lb_pool().into()];
    }
    let mut tasks = JoinSet::new();
    let cp = compose::start_control_plane(
        &cluster,
        vec![local, lan],
        vec![plan.server_ip().to_string()],
        Some(lan_dialer(Topology::ns_path(&plan.lan_ns()))),
        &mut tasks,
        &token,
    )
    .await?;
    let ca_path = cluster.data_dir.join("ca.crt");
    std::fs::write(&ca_path, &cp.prepared.ca_cert_pem)?;

    let exe = std::env::current_exe()?;
    let log_dir = cluster.data_dir.join("logs");
    std::fs::create_dir_all(&log_dir)?;
    let mut agents = Vec::new();
    for i in 1..=nodes {
        let ns = plan.node_ns(i);
        let mut argv: Vec<String> = vec![
            "--log".into(),
            args_log(),
            "agent".into(),
            "--netns".into(),
            Topology::ns_path(&ns),
            "--server".into(),
            format!("https://{lan_addr}"),
            "--token-file".into(),
            cp.prepared.node_token_path.display().to_string(),
            "--ca-file".into(),
            ca_path.display().to_string(),
            "--node-name".into(),
            ns.clone(),
            "--node-ip".into(),
            plan.node_ip(i).to_string(),
            "--data-dir".into(),
            cluster
                .data_dir
                .join("nodes")
                .join(&ns)
                .display()
                .to_string(),
            "--cluster-cidr".into(),
            cluster.cluster_cidr.to_string(),
            "--cluster-domain".into(),
            args.node.cluster_domain.clone(),
            "--cluster-dns".into(),
            args.node.cluster_dns.to_string(),
        ];
        if !args.node.dns_upstream.is_empty() {
            let list: Vec<String> = args
                .node
                .dns_upstream
                .iter()
                .map(ToString::to_string)
                .collect();
            argv.push("--dns-upstream".into());
            argv.push(list.join(","));
        }
        if !args.node.nodeport_addresses.is_empty() {
            let list: Vec<String> = args
                .node
                .nodeport_addresses
                .iter()
                .map(ToString::to_string)
                .collect();
            argv.push("--nodeport-addresses".into());
            argv.push(list.join(","));
        }
        if args.node.masquerade_fully_random {
            argv.push("--masquerade-fully-random".into());
        }
        agents.push(Agent {
            ns,
            exe: exe.clone(),
            argv,
            log: log_dir.join(format!("{}.log", plan.node_ns(i))),
        });
    }
    // Start every agent before announcing the cluster, so a broken binary or
    // namespace fails `portico up` at once.
    let mut running = Vec::new();
    for agent in agents {
        let child = agent.spawn()?;
        running.push((agent, child));
    }
    println!(
        "Portico is up: {nodes} nodes ({}), API server {}",
        (1..=nodes)
            .map(|i| format!("{} {}", plan.node_ns(i), plan.node_ip(i)))
            .collect::<Vec<_>>()
            .join(", "),
        cp.url
    );
    println!(
        "  export KUBECONFIG={}",
        cp.prepared.kubeconfig_path.display()
    );
    println!(
        "  ip netns exec {} curl http://{}:30080/   # an outside client on the nodes' LAN",
        plan.client_ns(),
        plan.node_ip(1)
    );

    // Agents are supervised like a kubelet under systemd: one that dies
    // unexpectedly is started again (its node keeps its rules meanwhile).
    let mut waits = JoinSet::new();
    for (agent, child) in running {
        waits.spawn(supervise_agent(agent, child, token.clone()));
    }
    let result = compose::supervise(tasks, token.clone()).await;
    token.cancel();
    while waits.join_next().await.is_some() {}
    drop(topo);
    result
}

/// Connects to node addresses from inside the LAN namespace at `ns_path`
/// (this process stays in the machine's namespace, where node IPs do not
/// route): a short-lived thread enters the namespace and connects, and the
/// socket keeps working from any thread.
fn lan_dialer(ns_path: String) -> portico_apiserver::NodeDialer {
    std::sync::Arc::new(move |addr: SocketAddr| {
        let path = ns_path.clone();
        std::thread::spawn(move || {
            netns::enter(&path).map_err(std::io::Error::other)?;
            std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(10))
        })
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("connecting thread panicked")))
    })
}

/// How to start the agent of one node.
struct Agent {
    ns: String,
    exe: std::path::PathBuf,
    argv: Vec<String>,
    log: std::path::PathBuf,
}

impl Agent {
    fn spawn(&self) -> anyhow::Result<tokio::process::Child> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let child = tokio::process::Command::new(&self.exe)
            .args(&self.argv)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting the agent of {}", self.ns))?;
        Ok(child)
    }
}

/// Keeps one agent running until `token` is cancelled, then stops it.
async fn supervise_agent(agent: Agent, mut child: tokio::process::Child, token: CancellationToken) {
    loop {
        tokio::select! {
            status = child.wait() => {
                if token.is_cancelled() {
                    return;
                }
                tracing::warn!(node = %agent.ns, ?status, "agent exited; starting it again");
                tokio::select! {
                    _ = tokio::time::sleep(AGENT_RESTART_DELAY) => {}
                    _ = token.cancelled() => return,
                }
                match agent.spawn() {
                    Ok(c) => child = c,
                    Err(e) => {
                        tracing::error!(node = %agent.ns, error = %format!("{e:#}"), "cannot restart the agent");
                        token.cancel();
                        return;
                    }
                }
            }
            _ = token.cancelled() => {
                stop_child(&agent.ns, &mut child).await;
                return;
            }
        }
    }
}

fn args_log() -> String {
    std::env::var("PORTICO_LOG").unwrap_or_else(|_| "info".to_string())
}

async fn stop_child(ns: &str, child: &mut tokio::process::Child) {
    if let Some(pid) = child.id() {
        let pid = nix::unistd::Pid::from_raw(pid as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    }
    match tokio::time::timeout(AGENT_STOP_GRACE, child.wait()).await {
        Ok(_) => {}
        Err(_) => {
            tracing::warn!(node = %ns, "agent did not stop in time; killing it");
            let _ = child.kill().await;
        }
    }
}
