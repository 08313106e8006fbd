//! The agent's error type.

/// Errors of the node agent and the pod runtime.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("command `{command}` failed: {stderr}")]
    Command { command: String, stderr: String },
    #[error("node IP: {0}")]
    NodeIp(String),
    #[error("pod CIDR {0} is exhausted")]
    IpExhausted(String),
    #[error("node not set up yet (no podCIDR)")]
    NoPodCidr,
    #[error("{0}")]
    Other(String),
}

impl AgentError {
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            what: what.into(),
            source,
        }
    }
}
