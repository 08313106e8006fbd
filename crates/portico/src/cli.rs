//! Command-line flags of `portico up`, `portico server` and `portico agent`.
//!
//! Flag names follow the Kubernetes components' where one exists
//! (`--service-cluster-ip-range`, `--service-node-port-range`, `--cluster-cidr`,
//! `--nodeport-addresses`, `--cluster-domain`).

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use ipnet::{IpNet, Ipv4Net};

/// Kubernetes Service networking in one binary.
#[derive(Debug, Parser)]
#[command(name = "portico", version, about)]
pub struct Cli {
    /// Log filter (tracing env-filter syntax), e.g. `info,portico_proxy=debug`.
    #[arg(long, global = true, env = "PORTICO_LOG", default_value = "info")]
    pub log: String,
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Server, controllers and node agent(s) in one process: a whole cluster.
    Up(UpArgs),
    /// The API server and the controllers.
    Server(ServerArgs),
    /// The node agent: pods, Service proxy and DNS for the node it runs in.
    Agent(AgentArgs),
    /// The built-in agnhost-compatible test server (what agnhost images run).
    #[command(hide = true)]
    Agnhost {
        /// agnhost arguments, e.g. `netexec --http-port=8080`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

/// Flags shared by `up` and `server`.
#[derive(Debug, Clone, Args)]
pub struct ClusterArgs {
    /// Where the store, certificates, tokens and kubeconfig live.
    #[arg(long, default_value = "/var/lib/portico")]
    pub data_dir: PathBuf,
    /// Address the API server listens on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:6443")]
    pub listen: SocketAddr,
    /// CIDR ClusterIPs are allocated from.
    #[arg(long, default_value = "10.96.0.0/12")]
    pub service_cluster_ip_range: IpNet,
    /// Port range NodePorts are allocated from.
    #[arg(long, default_value = "30000-32767", value_parser = parse_port_range)]
    pub service_node_port_range: std::ops::RangeInclusive<u16>,
    /// CIDR pod addresses come from (a /24 per node).
    #[arg(long, default_value = "10.244.0.0/16")]
    pub cluster_cidr: Ipv4Net,
    /// LoadBalancer address pools, comma separated CIDRs.
    #[arg(long, value_delimiter = ',')]
    pub lb_pool: Vec<IpNet>,
    /// Seconds without a lease renewal before a node turns NotReady.
    #[arg(long, default_value_t = 40)]
    pub node_lease_timeout: u64,
}

/// `portico server`.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Cluster-wide flags.
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

/// `portico up`.
#[derive(Debug, Args)]
pub struct UpArgs {
    /// Cluster-wide flags.
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Run N nodes, each in its own network namespace on a private LAN
    /// (`NAME-node1`..`NAME-nodeN`, plus `NAME-client` as an outside client).
    /// Without it, the namespace `portico up` runs in is the single node.
    #[arg(long)]
    pub nodes: Option<u8>,
    /// Cluster name, prefix of the namespaces made by --nodes.
    #[arg(long, default_value = "portico")]
    pub name: String,
    /// Node address (single node); default: the address of the interface
    /// holding the default route.
    #[arg(long)]
    pub node_ip: Option<Ipv4Addr>,
    /// Node name (single node); default: the hostname.
    #[arg(long)]
    pub node_name: Option<String>,
    /// Node-level flags.
    #[command(flatten)]
    pub node: NodeArgs,
}

/// Flags of a node (agent), shared by `up` and `agent`.
#[derive(Debug, Clone, Args)]
pub struct NodeArgs {
    /// Node addresses that serve NodePorts (CIDRs, comma separated); default all local addresses.
    #[arg(long, value_delimiter = ',')]
    pub nodeport_addresses: Vec<IpNet>,
    /// The cluster DNS zone.
    #[arg(long, default_value = "cluster.local")]
    pub cluster_domain: String,
    /// The cluster DNS address pods use (the kube-dns ClusterIP).
    #[arg(long, default_value = "10.96.0.10")]
    pub cluster_dns: Ipv4Addr,
    /// Upstream resolvers for names outside the cluster (IP:PORT, comma
    /// separated); default: the node's /etc/resolv.conf.
    #[arg(long, value_delimiter = ',')]
    pub dns_upstream: Vec<SocketAddr>,
    /// Masquerade with `fully-random` source ports, as kube-proxy does;
    /// default: keep the client's port while free (faster new connections).
    #[arg(long)]
    pub masquerade_fully_random: bool,
}

/// `portico agent`.
#[derive(Debug, Args)]
pub struct AgentArgs {
    /// API server URL, e.g. https://192.168.77.1:6443.
    #[arg(long, required_unless_present = "kubeconfig")]
    pub server: Option<String>,
    /// File holding the node token (DATA_DIR/node-token of the server).
    #[arg(long, required_unless_present = "kubeconfig")]
    pub token_file: Option<PathBuf>,
    /// CA certificate of the API server (PEM); default: the system roots.
    #[arg(long)]
    pub ca_file: Option<PathBuf>,
    /// Use a kubeconfig instead of --server/--token-file (e.g. a real cluster's).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Node name; default: the hostname.
    #[arg(long)]
    pub node_name: Option<String>,
    /// Node address; default: the address of the interface holding the default route.
    #[arg(long)]
    pub node_ip: Option<Ipv4Addr>,
    /// Node state (pod directories, logs).
    #[arg(long, default_value = "/var/lib/portico-agent")]
    pub data_dir: PathBuf,
    /// CIDR of pod addresses, to tell pod traffic from outside traffic.
    #[arg(long, default_value = "10.244.0.0/16")]
    pub cluster_cidr: Ipv4Net,
    /// Run inside this network namespace (a path like /run/netns/NAME).
    #[arg(long, hide = true)]
    pub netns: Option<String>,
    /// Node-level flags.
    #[command(flatten)]
    pub node: NodeArgs,
}

fn parse_port_range(s: &str) -> Result<std::ops::RangeInclusive<u16>, String> {
    let (a, b) = s
        .split_once('-')
        .ok_or_else(|| format!("expected FIRST-LAST, got {s:?}"))?;
    let first: u16 = a.trim().parse().map_err(|e| format!("{a:?}: {e}"))?;
    let last: u16 = b.trim().parse().map_err(|e| format!("{b:?}: {e}"))?;
    if first == 0 || first > last {
        return Err(format!("invalid port range {s:?}"));
    }
    Ok(first..=last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_up_with_nodes() {
        let cli = Cli::try_parse_from([
            "portico",
            "up",
            "--nodes",
            "3",
            "--data-dir",
            "/tmp/x",
            "--lb-pool",
            "10.0.0.0/28,10.0.1.0/28",
        ])
        .unwrap();
        let Command::Up(up) = cli.command else {
            panic!("not up")
        };
        assert_eq!(up.nodes, Some(3));
        assert_eq!(up.name, "portico");
        assert_eq!(up.cluster.lb_pool.len(), 2);
        assert_eq!(up.cluster.service_node_port_range, 30000..=32767);
        assert_eq!(
            up.cluster.service_cluster_ip_range.to_string(),
            "10.96.0.0/12"
        );
    }

    #[test]
    fn masquerade_fully_random_is_off_unless_asked_for() {
        let parse = |extra: &[&str]| {
            let mut argv = vec!["portico", "agent", "--kubeconfig", "/k"];
            argv.extend_from_slice(extra);
            let Command::Agent(a) = Cli::try_parse_from(argv).unwrap().command else {
                panic!("not agent")
            };
            a.node.masquerade_fully_random
        };
        assert!(!parse(&[]));
        assert!(parse(&["--masquerade-fully-random"]));
        let Command::Up(up) = Cli::try_parse_from(["portico", "up", "--masquerade-fully-random"])
            .unwrap()
            .command
        else {
            panic!("not up")
        };
        assert!(up.node.masquerade_fully_random);
    }

    #[test]
    fn port_range_errors() {
        assert!(parse_port_range("30000").is_err());
        assert!(parse_port_range("400-300").is_err());
        assert_eq!(parse_port_range("30000-30010").unwrap(), 30000..=30010);
    }

    #[test]
    fn agent_needs_server_or_kubeconfig() {
        assert!(Cli::try_parse_from(["portico", "agent"]).is_err());
        assert!(Cli::try_parse_from(["portico", "agent", "--kubeconfig", "/k"]).is_ok());
        assert!(Cli::try_parse_from([
            "portico",
            "agent",
            "--server",
            "https://x",
            "--token-file",
            "/t"
        ])
        .is_ok());
    }
}
