//! UDP serving on dedicated threads: one `SO_REUSEPORT` socket per worker,
//! batches of datagrams per `recvmmsg`/`sendmmsg` system call, answers from
//! the zone snapshot without a Tokio task in between. Only questions that go
//! upstream leave the thread (as a task on the runtime).

use std::io::{IoSlice, IoSliceMut};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::socket::{
    recvmmsg, sendmmsg, setsockopt, shutdown, sockopt, AddressFamily, ControlMessage, MsgFlags,
    MultiHeaders, Shutdown, SockFlag, SockType, SockaddrStorage,
};

use crate::server::{Handler, Step};
use crate::wire::Transport;
use crate::DnsError;

/// Datagrams per system call.
const BATCH: usize = 32;
/// Receive buffer per datagram; queries are far smaller.
const DATAGRAM: usize = 4096;
/// Default scheduler slice requested for the serving threads (µs): see
/// [`request_short_slice`].
const SLICE_US: u64 = 100;

/// How long a blocked receive waits before looking at the stop flag again
/// (shutdown also wakes it directly).
const WAKE: Duration = Duration::from_millis(250);

/// Binds `count` UDP sockets to `addr` sharing the port (`SO_REUSEPORT`), so
/// the kernel spreads clients over the workers. With port 0 the first socket
/// picks the port and the others join it.
pub(crate) fn bind_group(addr: SocketAddr, count: usize) -> Result<Vec<UdpSocket>, DnsError> {
    let mut sockets: Vec<UdpSocket> = Vec::with_capacity(count);
    let mut at = addr;
    for _ in 0..count.max(1) {
        let socket = bind_one(at).map_err(|e| DnsError::Io {
            context: format!("binding UDP {at}"),
            source: e.into(),
        })?;
        if let Some(bound) = sockets.first().map(UdpSocket::local_addr) {
            at = bound.map_err(|e| crate::server::io("reading the bound address", e))?;
        } else {
            at = socket
                .local_addr()
                .map_err(|e| crate::server::io("reading the bound address", e))?;
        }
        sockets.push(socket);
    }
    Ok(sockets)
}

fn bind_one(addr: SocketAddr) -> Result<UdpSocket, Errno> {
    let family = match addr {
        SocketAddr::V4(_) => AddressFamily::Inet,
        SocketAddr::V6(_) => AddressFamily::Inet6,
    };
    let fd: OwnedFd =
        nix::sys::socket::socket(family, SockType::Datagram, SockFlag::SOCK_CLOEXEC, None)?;
    setsockopt(&fd, sockopt::ReusePort, &true)?;
    // Room for bursts; the kernel caps this at net.core.rmem_max.
    setsockopt(&fd, sockopt::RcvBuf, &(4 << 20))?;
    let wake = nix::sys::time::TimeValLike::microseconds(
        i64::try_from(WAKE.as_micros()).unwrap_or(250_000),
    );
    setsockopt(&fd, sockopt::ReceiveTimeout, &wake)?;
    nix::sys::socket::bind(fd.as_raw_fd(), &SockaddrStorage::from(addr))?;
    Ok(UdpSocket::from(fd))
}

/// Running UDP worker threads.
#[derive(Debug)]
pub(crate) struct Workers {
    stop: Arc<AtomicBool>,
    sockets: Vec<Arc<UdpSocket>>,
    threads: Vec<JoinHandle<()>>,
}

impl Workers {
    /// One thread per socket. Must be called inside a Tokio runtime (upstream
    /// questions run as tasks on it).
    pub(crate) fn start(sockets: Vec<UdpSocket>, handler: Arc<Handler>) -> Result<Self, DnsError> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|e| DnsError::Config(format!("UDP workers need a Tokio runtime: {e}")))?;
        let stop = Arc::new(AtomicBool::new(false));
        let mut workers = Self {
            stop: stop.clone(),
            sockets: Vec::new(),
            threads: Vec::new(),
        };
        for (i, socket) in sockets.into_iter().enumerate() {
            let socket = Arc::new(socket);
            workers.sockets.push(socket.clone());
            let (handler, stop, runtime) = (handler.clone(), stop.clone(), runtime.clone());
            let thread = std::thread::Builder::new()
                .name(format!("dns-udp-{i}"))
                .spawn(move || serve(&socket, &handler, &stop, &runtime))
                .map_err(|e| crate::server::io("starting a UDP worker", e))?;
            workers.threads.push(thread);
        }
        Ok(workers)
    }

    /// Tells the threads to stop, without waiting.
    pub(crate) fn signal(&self) {
        self.stop.store(true, Ordering::Release);
        for socket in &self.sockets {
            // Wakes a thread blocked in recvmmsg (Linux returns ENOTCONN for
            // an unconnected UDP socket but still marks it shut down).
            let _ = shutdown(socket.as_raw_fd(), Shutdown::Read);
        }
    }

    /// Stops the threads and waits for them (blocking, briefly).
    pub(crate) fn stop(self) {
        self.signal();
        for thread in self.threads {
            let _ = thread.join();
        }
    }
}

/// The slice to request: `PORTICO_DNS_SLICE_US` (for A/B benchmarks; 0 keeps
/// the kernel's default) or [`SLICE_US`]. Read once per thread.
///
/// Measured and dropped: polling the socket for 20 µs after each batch
/// before sleeping (fewer wakeups, but on 2 cores shared with the clients the
/// spinning took their CPU: p99 at 100k QPS 4.7 ms vs 0.87 ms).
fn slice_us() -> u64 {
    std::env::var("PORTICO_DNS_SLICE_US")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(SLICE_US)
}

/// Asks the kernel's EEVDF scheduler (Linux ≥ 6.12, `sched_attr.sched_runtime`
/// for a `SCHED_OTHER` thread) for a short time slice. A task with a shorter
/// slice gets an earlier virtual deadline, so when a query wakes this thread
/// it preempts whatever runs on the core (e.g. the load generator, or another
/// pod) instead of waiting for that task's slice to end — that wait was the
/// millisecond tail at 100k QPS on 2 shared cores. The thread blocks again
/// within microseconds, so it never uses the slice up. Older kernels ignore
/// the field or refuse (then nothing changes). 0 leaves the default.
#[allow(unsafe_code)] // sched_setattr(2) has no safe wrapper in nix or std.
fn request_short_slice(slice_us: u64) {
    if slice_us == 0 {
        return;
    }
    #[repr(C)]
    struct SchedAttr {
        size: u32,
        policy: u32,
        flags: u64,
        nice: i32,
        priority: u32,
        runtime: u64,
        deadline: u64,
        period: u64,
    }
    // SAFETY: reading this thread's nice value has no preconditions; -1 is
    // also a valid value, so errno is irrelevant here (0 is the fallback).
    let nice = unsafe { nix::libc::getpriority(nix::libc::PRIO_PROCESS, 0) };
    let attr = SchedAttr {
        size: u32::try_from(size_of::<SchedAttr>()).unwrap_or(48),
        policy: 0, // SCHED_OTHER
        flags: 0,
        nice,
        priority: 0,
        runtime: slice_us.saturating_mul(1000),
        deadline: 0,
        period: 0,
    };
    // SAFETY: sched_setattr(2) on the calling thread (pid 0) with a fully
    // initialised attribute of the size it declares; the kernel only reads it.
    let rc = unsafe {
        nix::libc::syscall(
            nix::libc::SYS_sched_setattr,
            0,
            std::ptr::from_ref(&attr),
            0,
        )
    };
    if rc != 0 {
        tracing::debug!(error = %Errno::last(), "short scheduler slice not available");
    }
}

fn serve(
    socket: &Arc<UdpSocket>,
    handler: &Arc<Handler>,
    stop: &AtomicBool,
    runtime: &tokio::runtime::Handle,
) {
    request_short_slice(slice_us());
    let fd = socket.as_raw_fd();
    let mut inbox = vec![[0u8; DATAGRAM]; BATCH];
    let mut outbox: Vec<Vec<u8>> = (0..BATCH).map(|_| Vec::with_capacity(512)).collect();
    let mut received: Vec<(usize, Option<SockaddrStorage>)> = Vec::with_capacity(BATCH);
    let mut replies: Vec<usize> = Vec::with_capacity(BATCH);
    let mut recv_headers = MultiHeaders::<SockaddrStorage>::preallocate(BATCH, None);
    let mut send_headers = MultiHeaders::<SockaddrStorage>::preallocate(BATCH, None);
    while !stop.load(Ordering::Acquire) {
        received.clear();
        {
            let mut slices: Vec<[IoSliceMut<'_>; 1]> =
                inbox.iter_mut().map(|b| [IoSliceMut::new(b)]).collect();
            match recvmmsg(
                fd,
                &mut recv_headers,
                slices.iter_mut(),
                MsgFlags::MSG_WAITFORONE,
                None,
            ) {
                Ok(results) => received.extend(results.map(|m| (m.bytes, m.address))),
                // The receive timeout, a signal, or (after shutdown) nothing.
                Err(Errno::EAGAIN | Errno::EINTR) => continue,
                Err(error) => {
                    // ICMP errors from earlier sends surface here; keep serving.
                    tracing::debug!(%error, "UDP receive failed");
                    continue;
                }
            }
        }
        if received.is_empty() {
            // Shut down for reading: recvmmsg returns no datagrams.
            continue;
        }
        replies.clear();
        // One snapshot per batch: a zone update is seen by the next batch.
        let zone = handler.fast_zone();
        for (i, (len, peer)) in received.iter().enumerate() {
            let (Some(bytes), Some(out), Some(peer)) = (
                inbox.get(i).and_then(|b| b.get(..*len)),
                outbox.get_mut(i),
                peer,
            ) else {
                continue;
            };
            let start = Instant::now();
            if let Some(zone) = &zone {
                if handler.answer_fast_in(zone, bytes, out, start) {
                    replies.push(i);
                    continue;
                }
            }
            match handler.local(bytes, Transport::Udp, start) {
                Step::Reply(reply) => {
                    *out = reply;
                    replies.push(i);
                }
                Step::Drop => {}
                Step::Upstream(job) => {
                    let Some(peer) = to_socket_addr(peer) else {
                        continue;
                    };
                    let (socket, handler) = (socket.clone(), handler.clone());
                    // Upstream answers take milliseconds: never hold up this worker.
                    runtime.spawn(async move {
                        let reply = handler.upstream(*job, Transport::Udp, start).await;
                        if let Err(error) = socket.send_to(&reply, peer) {
                            tracing::debug!(%error, %peer, "UDP send failed");
                        }
                    });
                }
            }
        }
        drop(zone);
        send(fd, &mut send_headers, &outbox, &received, &replies);
    }
}

/// Sends the replies at `indices` of `outbox` to their peers in `received`.
fn send(
    fd: i32,
    headers: &mut MultiHeaders<SockaddrStorage>,
    outbox: &[Vec<u8>],
    received: &[(usize, Option<SockaddrStorage>)],
    indices: &[usize],
) {
    let mut done = 0;
    while done < indices.len() {
        let pending = indices.get(done..).unwrap_or_default();
        let slices: Vec<[IoSlice<'_>; 1]> = pending
            .iter()
            .map(|&i| [IoSlice::new(outbox.get(i).map_or(&[][..], Vec::as_slice))])
            .collect();
        let peers: Vec<Option<SockaddrStorage>> = pending
            .iter()
            .map(|&i| received.get(i).and_then(|(_, peer)| *peer))
            .collect();
        let no_control: [ControlMessage<'_>; 0] = [];
        match sendmmsg(
            fd,
            headers,
            slices.iter(),
            &peers,
            no_control,
            MsgFlags::empty(),
        ) {
            Ok(results) => match results.count() {
                // Nothing sent without an error: give up on this batch.
                0 => return,
                n => done += n,
            },
            Err(Errno::EINTR) => {}
            Err(error) => {
                // The first pending datagram failed (e.g. an unreachable
                // peer): skip it and send the rest.
                tracing::debug!(%error, "UDP send failed");
                done += 1;
            }
        }
    }
}

fn to_socket_addr(addr: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = addr.as_sockaddr_in() {
        return Some(SocketAddr::from(*v4));
    }
    addr.as_sockaddr_in6().map(|v6| SocketAddr::from(*v6))
}
