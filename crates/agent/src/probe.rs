//! Container probes (httpGet, tcpSocket, exec) and the kubelet's threshold
//! logic. HTTP and TCP probes connect from the node to the pod IP like the
//! kubelet; exec probes run inside the pod's namespaces.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// Probe timing with Kubernetes' defaults applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    pub initial_delay: Duration,
    pub period: Duration,
    pub timeout: Duration,
    pub success_threshold: u32,
    pub failure_threshold: u32,
}

impl Timing {
    pub fn of(p: &Probe) -> Self {
        let secs = |v: Option<i32>, d: i32| {
            Duration::from_secs(u64::try_from(v.unwrap_or(d).max(0)).unwrap_or(0))
        };
        let count = |v: Option<i32>, d: i32| u32::try_from(v.unwrap_or(d).max(1)).unwrap_or(1);
        Self {
            initial_delay: secs(p.initial_delay_seconds, 0),
            period: secs(p.period_seconds, 10).max(Duration::from_secs(1)),
            timeout: secs(p.timeout_seconds, 1).max(Duration::from_secs(1)),
            success_threshold: count(p.success_threshold, 1),
            failure_threshold: count(p.failure_threshold, 3),
        }
    }
}

/// Consecutive-result bookkeeping: flips only after the threshold is met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Threshold {
    pub ok: bool,
    successes: u32,
    failures: u32,
}

impl Threshold {
    pub fn new(initial: bool) -> Self {
        Self {
            ok: initial,
            successes: 0,
            failures: 0,
        }
    }

    /// Records one result; returns the (possibly new) verdict.
    pub fn record(&mut self, success: bool, t: &Timing) -> bool {
        if success {
            self.failures = 0;
            self.successes = self.successes.saturating_add(1);
            if self.successes >= t.success_threshold {
                self.ok = true;
            }
        } else {
            self.successes = 0;
            self.failures = self.failures.saturating_add(1);
            if self.failures >= t.failure_threshold {
                self.ok = false;
            }
        }
        self.ok
    }
}

/// Resolves a probe port (number or a container port name).
pub fn port(p: &IntOrString, c: &Container) -> Option<u16> {
    match p {
        IntOrString::Int(n) => u16::try_from(*n).ok(),
        IntOrString::String(name) => c
            .ports
            .as_deref()
            .unwrap_or_default()
            .iter()
            .find(|cp| cp.name.as_deref() == Some(name.as_str()))
            .and_then(|cp| u16::try_from(cp.container_port).ok())
            .or_else(|| name.parse().ok()),
    }
}

/// The status code of an HTTP/1.x response's first line.
pub fn parse_status(head: &[u8]) -> Option<u16> {
    let line = head.split(|b| *b == b'\n').next()?;
    let s = std::str::from_utf8(line).ok()?;
    let mut parts = s.split_whitespace();
    let proto = parts.next()?;
    if !proto.starts_with("HTTP/") {
        return None;
    }
    parts.next()?.parse().ok()
}

/// One HTTP GET; success is a 2xx or 3xx status, like the kubelet.
pub async fn http_get(addr: SocketAddr, host: &str, path: &str, timeout: Duration) -> bool {
    let attempt = async {
        let mut s = TcpStream::connect(addr).await.ok()?;
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: kube-probe/1.33\r\nAccept: */*\r\nConnection: close\r\n\r\n"
        );
        s.write_all(req.as_bytes()).await.ok()?;
        let mut buf = vec![0u8; 512];
        let mut n = 0;
        while n < buf.len() {
            let r = s.read(&mut buf[n..]).await.ok()?;
            if r == 0 || buf[..n + r].contains(&b'\n') {
                n += r;
                break;
            }
            n += r;
        }
        parse_status(&buf[..n])
    };
    matches!(tokio::time::timeout(timeout, attempt).await, Ok(Some(code)) if (200..400).contains(&code))
}

/// One TCP connect.
pub async fn tcp(addr: SocketAddr, timeout: Duration) -> bool {
    matches!(
        tokio::time::timeout(timeout, TcpStream::connect(addr)).await,
        Ok(Ok(_))
    )
}

/// What a probe needs to reach the container.
#[derive(Debug, Clone)]
pub enum Action {
    Http {
        addr: SocketAddr,
        host: String,
        path: String,
    },
    Tcp {
        addr: SocketAddr,
    },
    Exec {
        argv: Vec<String>,
    },
    /// A probe this runtime cannot run (grpc): treated as succeeding, as the
    /// alternative would kill a healthy container.
    Unsupported,
}

/// Builds the action of a probe for a container at `pod_ip`.
pub fn action(p: &Probe, c: &Container, pod_ip: Ipv4Addr) -> Action {
    if let Some(h) = &p.http_get {
        let ip = h
            .host
            .as_deref()
            .and_then(|s| s.parse::<IpAddr>().ok())
            .unwrap_or(IpAddr::V4(pod_ip));
        return match port(&h.port, c) {
            Some(port) => Action::Http {
                addr: SocketAddr::new(ip, port),
                host: format!("{ip}:{port}"),
                path: h
                    .path
                    .clone()
                    .filter(|p| !p.is_empty())
                    .unwrap_or_else(|| "/".into()),
            },
            None => Action::Unsupported,
        };
    }
    if let Some(t) = &p.tcp_socket {
        let ip = t
            .host
            .as_deref()
            .and_then(|s| s.parse::<IpAddr>().ok())
            .unwrap_or(IpAddr::V4(pod_ip));
        return match port(&t.port, c) {
            Some(port) => Action::Tcp {
                addr: SocketAddr::new(ip, port),
            },
            None => Action::Unsupported,
        };
    }
    if let Some(e) = &p.exec {
        return Action::Exec {
            argv: e.command.clone().unwrap_or_default(),
        };
    }
    Action::Unsupported
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_kubernetes() {
        let t = Timing::of(&Probe::default());
        assert_eq!(t.period, Duration::from_secs(10));
        assert_eq!(t.timeout, Duration::from_secs(1));
        assert_eq!((t.success_threshold, t.failure_threshold), (1, 3));
    }

    #[test]
    fn thresholds_need_consecutive_results() {
        let t = Timing {
            failure_threshold: 2,
            success_threshold: 2,
            ..Timing::of(&Probe::default())
        };
        let mut th = Threshold::new(false);
        assert!(!th.record(true, &t));
        assert!(th.record(true, &t));
        assert!(th.record(false, &t));
        assert!(th.record(true, &t));
        assert!(th.record(false, &t));
        assert!(!th.record(false, &t));
    }

    #[test]
    fn status_lines() {
        assert_eq!(parse_status(b"HTTP/1.1 200 OK\r\n"), Some(200));
        assert_eq!(
            parse_status(b"HTTP/1.0 503 Service Unavailable\r\n"),
            Some(503)
        );
        assert_eq!(parse_status(b"garbage"), None);
    }

    #[test]
    fn named_ports_resolve() {
        let c: Container = serde_json::from_value(
            serde_json::json!({"name": "c", "ports": [{"name": "http", "containerPort": 8080}]}),
        )
        .unwrap();
        assert_eq!(port(&IntOrString::String("http".into()), &c), Some(8080));
        assert_eq!(port(&IntOrString::Int(80), &c), Some(80));
        assert_eq!(port(&IntOrString::String("nope".into()), &c), None);
    }

    #[tokio::test]
    async fn http_and_tcp_probes_against_a_local_server() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            for code in [200u16, 500] {
                let (mut s, _) = l.accept().await.unwrap();
                let mut b = [0u8; 256];
                let _ = s.read(&mut b).await;
                let _ = s
                    .write_all(format!("HTTP/1.1 {code} X\r\nContent-Length: 0\r\n\r\n").as_bytes())
                    .await;
            }
        });
        assert!(http_get(addr, "x", "/healthz", Duration::from_secs(2)).await);
        assert!(!http_get(addr, "x", "/healthz", Duration::from_secs(2)).await);
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap();
        assert!(!tcp(closed, Duration::from_secs(1)).await);
    }
}
