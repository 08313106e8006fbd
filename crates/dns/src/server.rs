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
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::answer::{answer, Outcome, Response};
use crate::forward::{ForwardError, Forwarder};
use crate::metrics::DnsMetrics;
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
struct UpstreamJob {
    request: Message,
    /// In-zone CNAME records that come first in the answer.
    prefix: Vec<Record>,
    target: Name,
}

enum Step {
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

    /// Everything that can be decided without waiting: this is the hot path.
    fn local(&self, bytes: &[u8], transport: Transport, start: Instant) -> Step {
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

    async fn upstream(&self, job: UpstreamJob, transport: Transport, start: Instant) -> Vec<u8> {
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
    /// entered a node's network namespace. Must run inside a Tokio runtime.
    pub fn start_bound(
        sockets: Vec<BoundSockets>,
        handler: Arc<Handler>,
    ) -> Result<Self, DnsError> {
        if sockets.is_empty() {
            return Err(DnsError::Config("no listen addresses".into()));
        }
        let workers = std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .clamp(2, 16);
        let mut tasks = JoinSet::new();
        let mut addrs = Vec::new();
        for BoundSockets { udp, tcp } in sockets {
            let bound = udp
                .local_addr()
                .map_err(|e| io("reading the bound address", e))?;
            let udp = Arc::new(UdpSocket::from_std(udp).map_err(|e| io("registering UDP", e))?);
            let tcp = TcpListener::from_std(tcp).map_err(|e| io("registering TCP", e))?;
            for _ in 0..workers {
                tasks.spawn(serve_udp(udp.clone(), handler.clone()));
            }
            tasks.spawn(serve_tcp(tcp, handler.clone()));
            tracing::info!(addr = %bound, "cluster DNS listening (UDP and TCP)");
            addrs.push(bound);
        }
        Ok(Self {
            handler,
            addrs,
            tasks,
        })
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
    }
}

/// A UDP socket and a TCP listener bound to the same address, not yet serving.
#[derive(Debug)]
pub struct BoundSockets {
    /// The UDP socket (non-blocking).
    pub udp: std::net::UdpSocket,
    /// The TCP listener (non-blocking).
    pub tcp: std::net::TcpListener,
}

impl BoundSockets {
    /// Binds UDP and TCP to `addr` in the calling thread's network namespace;
    /// with port 0, retries until both get the same ephemeral port.
    pub fn bind(addr: SocketAddr) -> Result<Self, DnsError> {
        let mut last = None;
        for _ in 0..16 {
            let udp = std::net::UdpSocket::bind(addr)
                .map_err(|e| io(&format!("binding UDP {addr}"), e))?;
            let bound = udp
                .local_addr()
                .map_err(|e| io("reading the bound address", e))?;
            match std::net::TcpListener::bind(bound) {
                Ok(tcp) => {
                    udp.set_nonblocking(true)
                        .map_err(|e| io("setting UDP non-blocking", e))?;
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

async fn serve_udp(socket: Arc<UdpSocket>, handler: Arc<Handler>) {
    let mut buf = vec![0u8; 65535];
    loop {
        let (n, peer) = match socket.recv_from(&mut buf).await {
            Ok(received) => received,
            Err(error) => {
                // ICMP errors from earlier sends surface here on Linux; keep serving.
                tracing::debug!(%error, "UDP receive failed");
                continue;
            }
        };
        let Some(bytes) = buf.get(..n) else { continue };
        let start = Instant::now();
        match handler.local(bytes, Transport::Udp, start) {
            Step::Reply(reply) => {
                if let Err(error) = socket.send_to(&reply, peer).await {
                    tracing::debug!(%error, %peer, "UDP send failed");
                }
            }
            Step::Drop => {}
            Step::Upstream(job) => {
                // Upstream answers take milliseconds: never hold up this worker.
                let (socket, handler) = (socket.clone(), handler.clone());
                tokio::spawn(async move {
                    let reply = handler.upstream(*job, Transport::Udp, start).await;
                    if let Err(error) = socket.send_to(&reply, peer).await {
                        tracing::debug!(%error, %peer, "UDP send failed");
                    }
                });
            }
        }
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

fn io(context: &str, source: std::io::Error) -> DnsError {
    DnsError::Io {
        context: context.to_string(),
        source,
    }
}
