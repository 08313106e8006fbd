//! Local multi-node clusters on one machine: node network namespaces on a private LAN.
//!
//! [`plan`] decides names and addresses (pure); [`Topology`] creates the
//! namespaces with iproute2 and removes them when dropped. [`netns`] has the
//! per-thread namespace switch used to bind a listener inside a namespace and to
//! start an agent inside its node.

pub mod netns;
pub mod plan;

use std::process::Command;

pub use plan::{LanPlan, PlanError};

/// Errors creating or removing a topology.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// Bad parameters.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// A namespace with the cluster's name exists already.
    #[error("network namespace {0} already exists: is another cluster named like this running? (remove it with `ip netns del {0}`)")]
    Exists(String),
    /// An `ip` command failed.
    #[error("`ip {args}` failed: {stderr}")]
    Ip {
        /// The arguments.
        args: String,
        /// What ip printed.
        stderr: String,
    },
    /// `ip` could not be started.
    #[error("cannot run `ip` (iproute2 is needed for --nodes): {0}")]
    Spawn(std::io::Error),
    /// Namespace switch failed.
    #[error("entering network namespace {path}: {source}")]
    Setns {
        /// The namespace path.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Runs `ip` with the given arguments.
pub fn ip(args: &[String]) -> Result<(), ClusterError> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(ClusterError::Spawn)?;
    if out.status.success() {
        Ok(())
    } else {
        Err(ClusterError::Ip {
            args: args.join(" "),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// Names of the network namespaces that exist now.
pub fn existing_namespaces() -> Vec<String> {
    std::fs::read_dir("/run/netns")
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// A created topology; dropping it deletes its namespaces.
#[derive(Debug)]
pub struct Topology {
    /// The plan it was built from.
    pub plan: LanPlan,
    created: Vec<String>,
}

impl Topology {
    /// Creates every namespace, bridge, veth, address and route of the plan.
    /// On failure, whatever was created is removed again.
    pub fn create(plan: LanPlan) -> Result<Self, ClusterError> {
        let existing = existing_namespaces();
        if let Some(ns) = plan.namespaces().into_iter().find(|n| existing.contains(n)) {
            return Err(ClusterError::Exists(ns));
        }
        let mut topo = Topology {
            plan: plan.clone(),
            created: Vec::new(),
        };
        for cmd in plan.commands() {
            ip(&cmd)?;
            if cmd.first().map(String::as_str) == Some("netns")
                && cmd.get(1).map(String::as_str) == Some("add")
            {
                if let Some(ns) = cmd.get(2) {
                    topo.created.push(ns.clone());
                }
            }
        }
        Ok(topo)
    }

    /// Path of a namespace of this topology, for [`netns::enter`].
    pub fn ns_path(name: &str) -> String {
        format!("/run/netns/{name}")
    }

    /// Deletes the namespaces now (also done on drop).
    pub fn destroy(&mut self) {
        for ns in self.created.drain(..).rev() {
            if let Err(e) = ip(&["netns".to_string(), "del".to_string(), ns.clone()]) {
                tracing::warn!(%ns, error = %e, "removing network namespace");
            }
        }
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        self.destroy();
    }
}
