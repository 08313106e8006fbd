//! Forwarding to the node's upstream resolvers: UDP first, TCP when the
//! answer is truncated, each upstream in turn, answers cached.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use crate::cache::{Cache, Upstream};
use crate::metrics::DnsMetrics;

/// How long one upstream gets to answer.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);
/// Cached upstream answers.
const CACHE_CAPACITY: usize = 10_000;

/// Why forwarding failed (the client gets SERVFAIL).
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// No upstream is configured.
    #[error("no upstream resolvers")]
    NoUpstreams,
    /// Too many questions are already waiting on upstreams.
    #[error("too many questions in flight upstream")]
    Overloaded,
    /// Every upstream failed; the last error.
    #[error("upstream {upstream}: {reason}")]
    Upstream {
        /// The upstream that failed last.
        upstream: SocketAddr,
        /// What went wrong.
        reason: String,
    },
}

/// Resolves questions outside the cluster zone through upstream resolvers.
#[derive(Debug)]
pub struct Forwarder {
    upstreams: Vec<SocketAddr>,
    cache: Cache,
    metrics: DnsMetrics,
}

impl Forwarder {
    /// A forwarder over `upstreams`, tried in order.
    pub fn new(upstreams: Vec<SocketAddr>, metrics: DnsMetrics) -> Self {
        Self {
            upstreams,
            cache: Cache::new(CACHE_CAPACITY),
            metrics,
        }
    }

    /// The answer to `name`/`qtype`, from the cache or an upstream.
    pub async fn resolve(
        &self,
        name: &Name,
        qtype: RecordType,
        class: DNSClass,
    ) -> Result<Upstream, ForwardError> {
        if let Some(hit) = self.cache.get(name, qtype, class, Instant::now()) {
            self.metrics.cache_hit();
            return Ok(hit);
        }
        self.metrics.cache_miss();
        if self.upstreams.is_empty() {
            return Err(ForwardError::NoUpstreams);
        }
        let mut last = ForwardError::NoUpstreams;
        for upstream in &self.upstreams {
            self.metrics.forwarded();
            match exchange(*upstream, name, qtype, class).await {
                Ok(answer) => {
                    self.cache
                        .put(name, qtype, class, answer.clone(), Instant::now());
                    return Ok(answer);
                }
                Err(reason) => {
                    self.metrics.forward_error();
                    tracing::debug!(%upstream, %name, %reason, "upstream failed");
                    last = ForwardError::Upstream {
                        upstream: *upstream,
                        reason,
                    };
                }
            }
        }
        Err(last)
    }
}

/// One question to one upstream: UDP, then TCP if the UDP answer was truncated.
async fn exchange(
    upstream: SocketAddr,
    name: &Name,
    qtype: RecordType,
    class: DNSClass,
) -> Result<Upstream, String> {
    let id: u16 = rand::random();
    let mut request = Message::new(id, MessageType::Query, OpCode::Query);
    request.metadata.recursion_desired = true;
    let mut query = Query::query(name.clone(), qtype);
    query.set_query_class(class);
    request.add_query(query);
    let mut edns = Edns::new();
    edns.set_max_payload(crate::wire::SERVER_UDP_PAYLOAD);
    request.set_edns(edns);
    let bytes = request.to_vec().map_err(|e| e.to_string())?;

    let response = tokio::time::timeout(UPSTREAM_TIMEOUT, udp_exchange(upstream, &bytes, &request))
        .await
        .map_err(|_| "timed out over UDP".to_string())??;
    let response = if response.metadata.truncation {
        tokio::time::timeout(UPSTREAM_TIMEOUT, tcp_exchange(upstream, &bytes, &request))
            .await
            .map_err(|_| "timed out over TCP".to_string())??
    } else {
        response
    };
    Ok(Upstream {
        rcode: response.metadata.response_code,
        answers: response.answers,
        authorities: response.authorities,
        additionals: response.additionals,
    })
}

async fn udp_exchange(
    upstream: SocketAddr,
    bytes: &[u8],
    request: &Message,
) -> Result<Message, String> {
    let local: IpAddr = match upstream {
        SocketAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
        SocketAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
    };
    // A fresh socket per exchange: a random source port, and a connected
    // socket only accepts datagrams from the upstream.
    let socket = UdpSocket::bind((local, 0))
        .await
        .map_err(|e| e.to_string())?;
    socket.connect(upstream).await.map_err(|e| e.to_string())?;
    socket.send(bytes).await.map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 65535];
    loop {
        let n = socket.recv(&mut buf).await.map_err(|e| e.to_string())?;
        let Some(data) = buf.get(..n) else { continue };
        if let Ok(response) = Message::from_vec(data) {
            if matches_request(&response, request) {
                return Ok(response);
            }
        }
    }
}

async fn tcp_exchange(
    upstream: SocketAddr,
    bytes: &[u8],
    request: &Message,
) -> Result<Message, String> {
    let mut stream = TcpStream::connect(upstream)
        .await
        .map_err(|e| e.to_string())?;
    let len = u16::try_from(bytes.len()).map_err(|e| e.to_string())?;
    let mut framed = Vec::with_capacity(bytes.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(bytes);
    stream.write_all(&framed).await.map_err(|e| e.to_string())?;
    let len = stream.read_u16().await.map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; usize::from(len)];
    stream
        .read_exact(&mut buf)
        .await
        .map_err(|e| e.to_string())?;
    let response = Message::from_vec(&buf).map_err(|e| e.to_string())?;
    if !matches_request(&response, request) {
        return Err("mismatched response".to_string());
    }
    Ok(response)
}

fn matches_request(response: &Message, request: &Message) -> bool {
    response.metadata.id == request.metadata.id
        && response.metadata.message_type == MessageType::Response
        && response.queries == request.queries
        && response.metadata.response_code != ResponseCode::FormErr
}

/// Upstream resolvers from resolv.conf text: every `nameserver` line, port 53.
pub fn parse_resolv_conf(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            (words.next()? == "nameserver").then_some(())?;
            // Strip an IPv6 zone (`fe80::1%eth0`), which SocketAddr cannot carry.
            let ip: IpAddr = words.next()?.split('%').next()?.parse().ok()?;
            Some(SocketAddr::new(ip, 53))
        })
        .collect()
}

/// The node's upstream resolvers: `/etc/resolv.conf`, or systemd-resolved's
/// real upstreams when resolv.conf only names its local stub (which would
/// not be reachable from the node's network namespace, and would loop).
pub fn system_upstreams() -> Vec<SocketAddr> {
    let main = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let upstreams = parse_resolv_conf(&main);
    if !upstreams.is_empty() && upstreams.iter().all(|u| u.ip().is_loopback()) {
        let resolved =
            std::fs::read_to_string("/run/systemd/resolve/resolv.conf").unwrap_or_default();
        let real = parse_resolv_conf(&resolved);
        if !real.is_empty() {
            return real;
        }
    }
    upstreams
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_nameservers() {
        let text = "# generated\nsearch example.com\nnameserver 10.0.0.2\nnameserver fe80::1%eth0\noptions ndots:2\nnameserver bogus\n";
        assert_eq!(
            parse_resolv_conf(text),
            vec![
                "10.0.0.2:53".parse().unwrap(),
                "[fe80::1]:53".parse().unwrap()
            ]
        );
    }
}
