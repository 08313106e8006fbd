//! The UDP and TCP listeners and the per-query path: parse, answer from the
//! current zone snapshot (lock-free), or forward upstream.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, Record};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::answer::{answer, Outcome, Response};
use crate::forward::{ForwardError, Forwarder};
use crate::metrics::DnsMetrics;
use crate::udp::Workers;
use crate::wire::{self, Parsed, Transport};
use crate::zone::Zone;
use crate::DnsError;

/// A TCP connection idle this long is closed.
const TCP_IDLE: Duration = Duration::from_secs(10);
/// Questions waiting on upstreams at once; beyond this they get SERVFAIL at
/// once, so a flood of external names (or a dead upstream) cannot pile up
/// tasks and memory (CoreDNS's `max_concurrent`).
const MAX_UPSTREAM_IN_FLIGHT: usize = 1000;

/// Answers raw queries: the part of the server that is not sockets.
#[derive(Debug)]
pub struct Handler {
    zone: ArcSwap<Zone>,
    /// False until the first complete zone is published: until then cluster
    /// names get SERVFAIL (retried by clients) rather than a cacheable NXDOMAIN.
    synced: AtomicBool,
    forwarder: Forwarder,
    metrics: DnsMetrics,
    upstream_slots: Semaphore,
}

/// A question that needs the upstream resolvers.
pub(crate) struct UpstreamJob {
    request: Message,
    /// In-zone CNAME records that come first in the answer.
    prefix: Vec<Record>,
    target: Name,
}

pub(crate) enum Step {
    Reply(Vec<u8>),
    Drop,
    Upstream(Box<UpstreamJob>),
}

impl Handler {
    /// A handler answering from `zone` and forwarding to `upstreams`.
    pub fn new(zone: Zone, upstreams: Vec<SocketAddr>, metrics: DnsMetrics) -> Self {
        metrics.set_services(zone.service_count());
        Self {
            zone: ArcSwap::from_pointee(zone),
            synced: AtomicBool::new(true),
            forwarder: Forwarder::new(upstreams, metrics.clone()),
            metrics,
            upstream_slots: Semaphore::new(MAX_UPSTREAM_IN_FLIGHT),
        }
    }

    /// Like [`Handler::new`], but cluster names get SERVFAIL until the first
    /// [`Handler::publish`] (for a zone still being listed from the API).
    pub fn unsynced(zone: Zone, upstreams: Vec<SocketAddr>, metrics: DnsMetrics) -> Self {
        let handler = Self::new(zone, upstreams, metrics);
        handler.synced.store(false, Ordering::Release);
        handler
    }

    /// Replaces the zone; queries already running finish on the old snapshot.
    pub fn publish(&self, zone: Arc<Zone>) {
        self.metrics.set_services(zone.service_count());
        self.zone.store(zone);
        self.synced.store(true, Ordering::Release);
    }

    /// The response to one raw query, or `None` when it deserves none.
    pub async fn handle(&self, bytes: &[u8], transport: Transport) -> Option<Vec<u8>> {
        let start = Instant::now();
        match self.local(bytes, transport, start) {
            Step::Reply(reply) => Some(reply),
            Step::Drop => None,
            Step::Upstream(job) => Some(self.upstream(*job, transport, start).await),
        }
    }

    /// The UDP hot path on its own (for benchmarks): like the UDP workers,
    /// writes the answer to a common in-cluster question into `out`, or
    /// returns `false` for a question that needs [`Handler::handle`].
    pub fn answer_udp(&self, bytes: &[u8], out: &mut Vec<u8>) -> bool {
        self.answer_fast(bytes, out, Instant::now())
    }

    /// The UDP hot path: writes the answer to a common in-cluster question
    /// into `out` straight from the request bytes (see [`crate::fast`]).
    /// `false` means the general path ([`Handler::local`]) must answer.
    pub(crate) fn answer_fast(&self, bytes: &[u8], out: &mut Vec<u8>, start: Instant) -> bool {
        match self.fast_zone() {
            Some(zone) => self.answer_fast_in(&zone, bytes, out, start),
            None => false,
        }
    }

    /// The zone snapshot for a batch of fast answers, or `None` before the
    /// first sync (then every question takes the general path, which answers
    /// SERVFAIL).
    pub(crate) fn fast_zone(&self) -> Option<arc_swap::Guard<Arc<Zone>>> {
        if !self.synced.load(Ordering::Acquire) {
            return None;
        }
        Some(self.zone.load())
    }

    /// [`Self::answer_fast`] with a snapshot loaded once per batch.
    pub(crate) fn answer_fast_in(
        &self,
        zone: &Zone,
        bytes: &[u8],
        out: &mut Vec<u8>,
        start: Instant,
    ) -> bool {
        match crate::fast::answer(zone, bytes, out) {
            Some(answered) => {
                self.metrics
                    .query(answered.qtype, answered.rcode, false, start.elapsed());
                true
            }
            None => false,
        }
    }

    /// Everything that can be decided without waiting.
    pub(crate) fn local(&self, bytes: &[u8], transport: Transport, start: Instant) -> Step {
        let request = match wire::parse(bytes) {
            Parsed::Query(request) => request,
            Parsed::Reply(reply) => return Step::Reply(reply),
            Parsed::Drop => return Step::Drop,
        };
        let Some(query) = request.queries.first() else {
            return Step::Drop;
        };
        let (qname, qtype) = (query.name().clone(), query.query_type());
        if !matches!(query.query_class(), DNSClass::IN | DNSClass::ANY) {
            // CHAOS and friends are not ours.
            return Step::Upstream(Box::new(UpstreamJob {
                request,
                prefix: Vec::new(),
                target: qname,
            }));
        }
        let zone = self.zone.load();
        let outcome = answer(&zone, &qname, qtype);
        if !matches!(outcome, Outcome::Forward) && !self.synced.load(Ordering::Acquire) {
            self.metrics.query(
                qtype,
                ResponseCode::ServFail,
                transport == Transport::Tcp,
                start.elapsed(),
            );
            return Step::Reply(wire::error(&request, ResponseCode::ServFail, transport));
        }
        match outcome {
            Outcome::Answer(response) => {
                let reply = wire::encode(&request, &response, transport);
                self.metrics.query(
                    qtype,
                    response.rcode,
                    transport == Transport::Tcp,
                    start.elapsed(),
                );
                Step::Reply(reply)
            }
            Outcome::Chase { response, target } => Step::Upstream(Box::new(UpstreamJob {
                prefix: response.answers,
                target,
                request,
            })),
            Outcome::Forward => Step::Upstream(Box::new(UpstreamJob {
                request,
                prefix: Vec::new(),
                target: qname,
            })),
        }
    }

    pub(crate) async fn upstream(
        &self,
        job: UpstreamJob,
        transport: Transport,
        start: Instant,
    ) -> Vec<u8> {
        let Some(query) = job.request.queries.first() else {
            return Vec::new();
        };
        let (qtype, class) = (query.query_type(), query.query_class());
        let result = match self.upstream_slots.try_acquire() {
            Ok(_permit) => self.forwarder.resolve(&job.target, qtype, class).await,
            Err(_) => Err(ForwardError::Overloaded),
        };
        let (reply, rcode) = match result {
            Ok(upstream) => {
                let mut answers = job.prefix;
                answers.extend(upstream.answers);
                let response = Response {
                    rcode: upstream.rcode,
                    authoritative: false,
                    answers,
                    authorities: upstream.authorities,
                    additionals: upstream.additionals,
                };
                (
                    wire::encode(&job.request, &response, transport),
                    upstream.rcode,
                )
            }
            Err(error) => {
                tracing::debug!(%error, name = %job.target, "forwarding failed");
                let reply = wire::error(&job.request, ResponseCode::ServFail, transport);
                (reply, ResponseCode::ServFail)
            }
        };
        self.metrics
            .query(qtype, rcode, transport == Transport::Tcp, start.elapsed());
        reply
    }
}

/// A running server: UDP and TCP on the same addresses.
#[derive(Debug)]
pub struct DnsServer {
    handler: Arc<Handler>,
    addrs: Vec<SocketAddr>,
    udp: Vec<Workers>,
    tasks: JoinSet<()>,
}

impl DnsServer {
    /// Binds UDP and TCP on every `listen` address (port 0 picks one port for
    /// both) and starts serving.
    pub async fn start(listen: &[SocketAddr], handler: Arc<Handler>) -> Result<Self, DnsError> {
        let sockets = listen
            .iter()
            .map(|addr| BoundSockets::bind(*addr))
            .collect::<Result<Vec<_>, _>>()?;
        Self::start_bound(sockets, handler)
    }

    /// Serves on sockets bound beforehand — for example by a thread that has
    /// entered a node's network namespace. Must run inside a Tokio runtime:
    /// TCP is served by tasks, UDP by one dedicated thread per UDP socket.
    pub fn start_bound(
        sockets: Vec<BoundSockets>,
        handler: Arc<Handler>,
    ) -> Result<Self, DnsError> {
        if sockets.is_empty() {
            return Err(DnsError::Config("no listen addresses".into()));
        }
        let mut server = Self {
            handler: handler.clone(),
            addrs: Vec::new(),
            udp: Vec::new(),
            tasks: JoinSet::new(),
        };
        for BoundSockets { udp, tcp } in sockets {
            let bound = tcp
                .local_addr()
                .map_err(|e| io("reading the bound address", e))?;
            let tcp = TcpListener::from_std(tcp).map_err(|e| io("registering TCP", e))?;
            let workers = udp.len();
            // Pushed at once so that an error below still stops these threads.
            server.udp.push(Workers::start(udp, handler.clone())?);
            server.tasks.spawn(serve_tcp(tcp, handler.clone()));
            tracing::info!(addr = %bound, workers, "cluster DNS listening (UDP and TCP)");
            server.addrs.push(bound);
        }
        Ok(server)
    }

    /// The bound addresses (UDP and TCP share each).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// The query handler (to publish new zones).
    pub fn handler(&self) -> &Arc<Handler> {
        &self.handler
    }

    /// Stops serving and waits for the listeners to end.
    pub async fn shutdown(mut self) {
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
        let udp = std::mem::take(&mut self.udp);
        let _ = tokio::task::spawn_blocking(move || udp.into_iter().for_each(Workers::stop)).await;
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        // A server dropped without `shutdown` still stops its UDP threads
        // (they notice within `udp::WAKE`); it does not wait for them.
        for workers in std::mem::take(&mut self.udp) {
            workers.signal();
        }
    }
}

/// UDP workers per listen address: one per core (at most 8), or
/// `PORTICO_DNS_UDP_WORKERS` (for A/B benchmarks).
pub fn udp_workers() -> usize {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    workers_for(
        std::env::var("PORTICO_DNS_UDP_WORKERS").ok().as_deref(),
        cores,
    )
}

/// [`udp_workers`] from the override (ignored unless a number ≥ 1) and the
/// core count.
fn workers_for(override_: Option<&str>, cores: usize) -> usize {
    override_
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|&n| n >= 1)
        .unwrap_or(cores)
        .clamp(1, 8)
}

/// UDP sockets and a TCP listener bound to the same address, not yet serving.
#[derive(Debug)]
pub struct BoundSockets {
    /// UDP sockets sharing the address (`SO_REUSEPORT`), one per worker thread.
    pub udp: Vec<std::net::UdpSocket>,
    /// The TCP listener (non-blocking).
    pub tcp: std::net::TcpListener,
}

impl BoundSockets {
    /// Binds [`udp_workers`] UDP sockets and a TCP listener to `addr` in the
    /// calling thread's network namespace; with port 0, retries until UDP and
    /// TCP get the same ephemeral port.
    pub fn bind(addr: SocketAddr) -> Result<Self, DnsError> {
        Self::bind_workers(addr, udp_workers())
    }

    /// [`BoundSockets::bind`] with `workers` UDP sockets.
    pub fn bind_workers(addr: SocketAddr, workers: usize) -> Result<Self, DnsError> {
        let mut last = None;
        for _ in 0..16 {
            let udp = crate::udp::bind_group(addr, workers)?;
            let bound = match udp.first() {
                Some(socket) => socket
                    .local_addr()
                    .map_err(|e| io("reading the bound address", e))?,
                None => return Err(DnsError::Config("no UDP sockets".into())),
            };
            match std::net::TcpListener::bind(bound) {
                Ok(tcp) => {
                    tcp.set_nonblocking(true)
                        .map_err(|e| io("setting TCP non-blocking", e))?;
                    return Ok(Self { udp, tcp });
                }
                Err(e) if addr.port() == 0 => last = Some(e),
                Err(e) => return Err(io(&format!("binding TCP {addr}"), e)),
            }
        }
        let e = last.unwrap_or_else(|| std::io::Error::other("no free port"));
        Err(io(&format!("binding TCP {addr}"), e))
    }
}

async fn serve_tcp(listener: TcpListener, handler: Arc<Handler>) {
    let mut connections = JoinSet::new();
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                connections.spawn(serve_tcp_connection(stream, handler.clone()));
            }
            Err(error) => tracing::debug!(%error, "TCP accept failed"),
        }
        // Reap finished connections without waiting.
        while connections.try_join_next().is_some() {}
    }
}

async fn serve_tcp_connection(mut stream: TcpStream, handler: Arc<Handler>) {
    loop {
        let Ok(Ok(len)) = tokio::time::timeout(TCP_IDLE, stream.read_u16()).await else {
            return;
        };
        let mut buf = vec![0u8; usize::from(len)];
        if !matches!(
            tokio::time::timeout(TCP_IDLE, stream.read_exact(&mut buf)).await,
            Ok(Ok(_))
        ) {
            return;
        }
        let Some(reply) = handler.handle(&buf, Transport::Tcp).await else {
            continue;
        };
        let Ok(len) = u16::try_from(reply.len()) else {
            return;
        };
        let mut framed = Vec::with_capacity(reply.len() + 2);
        framed.extend_from_slice(&len.to_be_bytes());
        framed.extend_from_slice(&reply);
        if stream.write_all(&framed).await.is_err() {
            return;
        }
    }
}

pub(crate) fn io(context: &str, source: std::io::Error) -> DnsError {
    DnsError::Io {
        context: context.to_string(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::workers_for;

    #[test]
    fn udp_workers_follow_the_cores_unless_overridden() {
        assert_eq!(workers_for(None, 2), 2);
        assert_eq!(workers_for(None, 0), 1);
        assert_eq!(workers_for(None, 64), 8);
        assert_eq!(workers_for(Some("1"), 2), 1);
        assert_eq!(workers_for(Some(" 4 "), 2), 4);
        assert_eq!(workers_for(Some("0"), 2), 2);
        assert_eq!(workers_for(Some("many"), 2), 2);
    }
}
