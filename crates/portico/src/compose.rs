//! Composition of the components: the control plane (API server + controllers)
//! and a node (agent + Service proxy + DNS), each stopped by one cancellation token.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use base64::Engine as _;
use kube::config::{KubeConfigOptions, Kubeconfig};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::cli::{AgentArgs, ClusterArgs, NodeArgs, ServerArgs};

/// Cancels `token` on SIGINT or SIGTERM.
pub fn cancel_on_signal(token: CancellationToken) {
    tokio::spawn(async move {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(error = %e, "cannot listen for SIGTERM");
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        tracing::info!("shutting down");
        token.cancel();
    });
}

/// A running control plane.
pub struct ControlPlane {
    /// What `prepare` wrote: kubeconfig, CA, tokens.
    pub prepared: portico_apiserver::Prepared,
    /// A client with admin credentials for in-process components.
    pub client: kube::Client,
    /// URL written into the kubeconfig.
    pub url: String,
}

/// Starts the API server on `listeners` (the first one is advertised) and the
/// controllers, as tasks in `tasks`. `node_dialer` is how the server reaches
/// node agents when they live in other network namespaces.
pub async fn start_control_plane(
    args: &ClusterArgs,
    listeners: Vec<TcpListener>,
    extra_sans: Vec<String>,
    node_dialer: Option<portico_apiserver::NodeDialer>,
    tasks: &mut JoinSet<anyhow::Result<()>>,
    token: &CancellationToken,
) -> anyhow::Result<ControlPlane> {
    let first = listeners.first().context("no listener")?.local_addr()?;
    let host = if first.ip().is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        first.ip().to_string()
    };
    let url = format!("https://{host}:{}", first.port());
    for l in &listeners {
        l.set_nonblocking(true)?;
    }
    let config = portico_apiserver::ServerConfig {
        data_dir: args.data_dir.clone(),
        listeners,
        advertise_url: url.clone(),
        service_cluster_ip_range: args.service_cluster_ip_range,
        service_node_port_range: args.service_node_port_range.clone(),
        extra_sans,
        node_dialer,
    };
    let prepared = portico_apiserver::prepare(&config).context("preparing the API server")?;
    let shutdown = token.clone().cancelled_owned();
    tasks.spawn(async move {
        portico_apiserver::run(config, shutdown)
            .await
            .context("API server")
    });
    // Built from what prepare returned rather than by reading the kubeconfig
    // file, which the server rewrites when it starts.
    let client =
        client_from_token(&url, &prepared.admin_token, Some(&prepared.ca_cert_pem)).await?;
    let controllers = portico_controllers::ControllersConfig {
        cluster_cidr: args.cluster_cidr,
        node_cidr_prefix: 24,
        lb_pools: args.lb_pool.clone(),
        node_lease_timeout: Duration::from_secs(args.node_lease_timeout),
    };
    let c = client.clone();
    let shutdown = token.clone().cancelled_owned();
    tasks.spawn(async move {
        portico_controllers::run(c, controllers, shutdown)
            .await
            .context("controllers")
    });
    Ok(ControlPlane {
        prepared,
        client,
        url,
    })
}

/// Builds a client from a kubeconfig file.
pub async fn client_from_kubeconfig(path: &Path) -> anyhow::Result<kube::Client> {
    let kc = Kubeconfig::read_from(path).with_context(|| format!("reading {}", path.display()))?;
    let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?;
    Ok(kube::Client::try_from(config)?)
}

/// Builds a client from a server URL, a token and an optional CA file.
pub async fn client_from_token(
    server: &str,
    token: &str,
    ca_pem: Option<&str>,
) -> anyhow::Result<kube::Client> {
    let ca = match ca_pem {
        Some(pem) => format!(
            "    certificate-authority-data: {}\n",
            base64::engine::general_purpose::STANDARD.encode(pem)
        ),
        None => String::new(),
    };
    let yaml = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: portico\n  cluster:\n    server: {server}\n{ca}users:\n- name: node\n  user:\n    token: {token}\ncontexts:\n- name: portico\n  context:\n    cluster: portico\n    user: node\ncurrent-context: portico\n"
    );
    let kc = Kubeconfig::from_yaml(&yaml)?;
    let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?;
    Ok(kube::Client::try_from(config)?)
}

/// Everything a node needs to run.
pub struct NodeSpec {
    /// Node name.
    pub name: String,
    /// InternalIP.
    pub ip: Ipv4Addr,
    /// Node state directory.
    pub data_dir: PathBuf,
    /// Pod CIDR of the whole cluster.
    pub cluster_cidr: ipnet::Ipv4Net,
    /// Node flags.
    pub args: NodeArgs,
    /// The node token: the agent's log endpoint requires it as Bearer auth
    /// (the API server presents it when it proxies `pods/log`).
    pub token: Option<String>,
}

/// Runs the agent, the Service proxy and the DNS of one node in the current
/// network namespace until `token` is cancelled, then removes what they made.
pub async fn run_node(
    client: kube::Client,
    node: NodeSpec,
    token: CancellationToken,
) -> anyhow::Result<()> {
    portico_dns::prepare_node_local_address(node.args.cluster_dns)
        .context("node-local DNS address")?;
    let agent = portico_agent::AgentConfig {
        node_name: node.name.clone(),
        node_ip: node.ip,
        data_dir: node.data_dir.clone(),
        cluster_dns: node.args.cluster_dns,
        cluster_domain: node.args.cluster_domain.clone(),
        bridge_name: "portico0".to_string(),
        kubelet_port: portico_agent::KUBELET_PORT,
        endpoint_token: node.token.clone(),
    };
    let proxy = portico_proxy::ProxyConfig {
        node_name: node.name.clone(),
        node_ips: vec![node.ip.into()],
        nodeport_addresses: node.args.nodeport_addresses.clone(),
        cluster_cidr: node.cluster_cidr.into(),
        masquerade_fully_random: node.args.masquerade_fully_random,
        healthz_bind: None,
        metrics: None,
    };
    let dns = portico_dns::DnsConfig {
        listen: vec![SocketAddr::new(node.args.cluster_dns.into(), 53)],
        cluster_domain: node.args.cluster_domain.clone(),
        ttl: 5,
        upstreams: node.args.dns_upstream.clone(),
    };
    let result = tokio::try_join!(
        async {
            portico_agent::run(client.clone(), agent, token.clone().cancelled_owned())
                .await
                .context("agent")
        },
        async {
            portico_proxy::run(client.clone(), proxy, token.clone().cancelled_owned())
                .await
                .context("service proxy")
        },
        async {
            portico_dns::run(client.clone(), dns, token.clone().cancelled_owned())
                .await
                .context("DNS")
        },
    );
    // Whatever happened, leave no rules or addresses behind in this node.
    if let Err(e) = portico_proxy::cleanup() {
        tracing::warn!(error = %e, "removing proxy rules");
    }
    if let Err(e) = portico_dns::remove_node_local_address(node.args.cluster_dns) {
        tracing::warn!(error = %e, "removing the node-local DNS address");
    }
    result.map(|_| ())
}

/// `portico server`.
pub async fn server(args: ServerArgs) -> anyhow::Result<()> {
    let token = CancellationToken::new();
    cancel_on_signal(token.clone());
    let listener = TcpListener::bind(args.cluster.listen)
        .with_context(|| format!("listening on {}", args.cluster.listen))?;
    let mut tasks = JoinSet::new();
    let cp = start_control_plane(
        &args.cluster,
        vec![listener],
        Vec::new(),
        None,
        &mut tasks,
        &token,
    )
    .await?;
    println!("Portico API server at {}", cp.url);
    println!(
        "  export KUBECONFIG={}",
        cp.prepared.kubeconfig_path.display()
    );
    println!(
        "  portico agent --server {} --token-file {}",
        cp.url,
        cp.prepared.node_token_path.display()
    );
    supervise(tasks, token).await
}

/// `portico agent`.
pub async fn agent(args: AgentArgs) -> anyhow::Result<()> {
    let token = CancellationToken::new();
    cancel_on_signal(token.clone());
    let node_token = match &args.token_file {
        Some(tf) => Some(
            std::fs::read_to_string(tf)
                .with_context(|| format!("reading {}", tf.display()))?
                .trim()
                .to_string(),
        ),
        None => None,
    };
    let client = match (&args.kubeconfig, &args.server, &node_token) {
        (Some(k), _, _) => client_from_kubeconfig(k).await?,
        (None, Some(server), Some(t)) => {
            let ca = match &args.ca_file {
                Some(p) => Some(
                    std::fs::read_to_string(p)
                        .with_context(|| format!("reading {}", p.display()))?,
                ),
                None => None,
            };
            client_from_token(server, t, ca.as_deref()).await?
        }
        _ => anyhow::bail!("either --kubeconfig or --server with --token-file is needed"),
    };
    let ip = match args.node_ip {
        Some(ip) => ip,
        None => {
            portico_agent::detect_node_ip().context("detecting the node IP (pass --node-ip)")?
        }
    };
    let name = match args.node_name {
        Some(n) => n,
        None => nix::unistd::gethostname()?.to_string_lossy().to_string(),
    };
    let node = NodeSpec {
        name,
        ip,
        data_dir: args.data_dir,
        cluster_cidr: args.cluster_cidr,
        args: args.node,
        token: node_token,
    };
    let mut tasks = JoinSet::new();
    let t = token.clone();
    tasks.spawn(async move { run_node(client, node, t).await });
    supervise(tasks, token).await
}

/// Waits until every task ends; the first failure cancels the others.
pub async fn supervise(
    mut tasks: JoinSet<anyhow::Result<()>>,
    token: CancellationToken,
) -> anyhow::Result<()> {
    let mut first_err: Option<anyhow::Error> = None;
    while let Some(done) = tasks.join_next().await {
        let r = match done {
            Ok(r) => r,
            Err(e) => Err(anyhow::anyhow!("task failed: {e}")),
        };
        if let Err(e) = r {
            tracing::error!(error = %format!("{e:#}"), "component stopped");
            if first_err.is_none() {
                first_err = Some(e);
            }
            token.cancel();
        } else if !token.is_cancelled() {
            // A component returning while nobody asked it to stop is a failure too.
            token.cancel();
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
