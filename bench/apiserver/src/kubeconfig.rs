//! Reads the three things the benchmark needs from an admin kubeconfig: the
//! server URL, the CA certificate and the bearer token.
//!
//! Portico writes a fixed, flat layout (one cluster, one user), so a line scan
//! is enough and keeps a YAML parser out of the benchmark.

use base64::Engine as _;

use crate::BenchError;

/// Credentials and address of an API server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// `clusters[0].cluster.server`, e.g. `https://127.0.0.1:40123`.
    pub server: String,
    /// PEM of `certificate-authority-data`.
    pub ca_pem: Vec<u8>,
    /// `users[0].user.token`.
    pub token: String,
}

/// Parses the first `server`, `certificate-authority-data` and `token` keys.
pub fn parse(text: &str) -> Result<Credentials, BenchError> {
    let value = |key: &str| -> Option<String> {
        text.lines().find_map(|l| {
            let l = l.trim_start().trim_start_matches("- ");
            l.strip_prefix(key)
                .and_then(|rest| rest.strip_prefix(':'))
                .map(|v| v.trim().trim_matches('"').to_string())
        })
    };
    let missing = |k: &str| BenchError::Kubeconfig(format!("no `{k}` in kubeconfig"));
    let server = value("server").ok_or_else(|| missing("server"))?;
    let ca_b64 =
        value("certificate-authority-data").ok_or_else(|| missing("certificate-authority-data"))?;
    let token = value("token").ok_or_else(|| missing("token"))?;
    let ca_pem = base64::engine::general_purpose::STANDARD
        .decode(ca_b64.as_bytes())
        .map_err(|e| BenchError::Kubeconfig(format!("certificate-authority-data: {e}")))?;
    Ok(Credentials {
        server,
        ca_pem,
        token,
    })
}

/// Writes a kubeconfig in the same layout (used by the baseline server).
pub fn render(server: &str, ca_pem: &str, token: &str) -> String {
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    certificate-authority-data: {ca}\n    server: {server}\n  name: bench\ncontexts:\n- context:\n    cluster: bench\n    user: bench\n  name: bench\ncurrent-context: bench\nusers:\n- name: bench\n  user:\n    token: {token}\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_the_portico_layout() {
        let text = render(
            "https://127.0.0.1:4000",
            "-----BEGIN CERTIFICATE-----\nabc\n",
            "tok123",
        );
        let c = parse(&text).unwrap();
        assert_eq!(c.server, "https://127.0.0.1:4000");
        assert_eq!(c.ca_pem, b"-----BEGIN CERTIFICATE-----\nabc\n");
        assert_eq!(c.token, "tok123");
    }

    #[test]
    fn says_which_key_is_missing() {
        let err =
            parse("apiVersion: v1\nclusters:\n- cluster:\n    server: https://x\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "kubeconfig: no `certificate-authority-data` in kubeconfig"
        );
    }

    #[test]
    fn rejects_bad_base64() {
        let err =
            parse("server: https://x\ncertificate-authority-data: !!!\ntoken: t\n").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("kubeconfig: certificate-authority-data:"),
            "{err}"
        );
    }
}
