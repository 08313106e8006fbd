//! Minimal nf_tables netlink plumbing: building a batch of messages
//! (netlink headers, `nfgenmsg`, nested attributes) and committing it over a
//! `NETLINK_NETFILTER` socket as one transaction, reading back only errors.
//! The message layouts follow `include/uapi/linux/netfilter/nf_tables.h`.

use std::os::fd::{AsRawFd, OwnedFd};

use std::io::IoSlice;

use nix::sys::socket::{
    recv, sendmsg, setsockopt, socket, sockopt, AddressFamily, MsgFlags, NetlinkAddr, SockFlag,
    SockProtocol, SockType,
};

use crate::ProxyError;

/// `NFNL_SUBSYS_NFTABLES`.
const SUBSYS_NFTABLES: u16 = 10;
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
const NLMSG_ERROR: u16 = 2;
/// `NFPROTO_IPV4`.
pub const FAMILY_IPV4: u8 = 2;

const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
/// Create if absent.
pub const NLM_F_CREATE: u16 = 0x400;
/// Append (rules).
pub const NLM_F_APPEND: u16 = 0x800;
const NLA_F_NESTED: u16 = 0x8000;

/// `nf_tables_msg_types`.
#[derive(Debug, Clone, Copy)]
#[repr(u16)]
pub enum MsgType {
    /// NFT_MSG_NEWTABLE.
    NewTable = 0,
    /// NFT_MSG_DELTABLE.
    DelTable = 2,
    /// NFT_MSG_NEWCHAIN.
    NewChain = 3,
    /// NFT_MSG_DELCHAIN.
    DelChain = 5,
    /// NFT_MSG_NEWRULE.
    NewRule = 6,
    /// NFT_MSG_DELRULE.
    DelRule = 8,
    /// NFT_MSG_NEWSET.
    NewSet = 9,
    /// NFT_MSG_DELSET.
    DelSet = 11,
    /// NFT_MSG_NEWSETELEM.
    NewSetElem = 12,
    /// NFT_MSG_DELSETELEM.
    DelSetElem = 14,
}

/// Size at which a batch starts a new buffer. A transaction is one
/// `sendmsg` (the kernel commits or aborts at the end of the datagram), but
/// its bytes may sit in many buffers: growing one `Vec` would briefly need
/// twice the batch size on every reallocation.
const CHUNK: usize = 1 << 20;
/// `UIO_MAXIOV`: most buffers one `sendmsg` takes.
const MAX_IOV: usize = 1024;

/// A batch under construction: netlink messages in buffers of about
/// [`CHUNK`] bytes (a message never spans two), framed by `BATCH_BEGIN` /
/// `BATCH_END` when finished.
#[derive(Debug)]
pub struct Batch {
    /// Full buffers.
    done: Vec<Vec<u8>>,
    /// The buffer being written.
    buf: Vec<u8>,
    seq: u32,
    /// Start offsets of open messages and nests (their lengths are patched on close).
    open: Vec<usize>,
    /// Sequence numbers of messages with what they were, for error reports.
    msgs: usize,
}

impl Default for Batch {
    fn default() -> Self {
        Self::new()
    }
}

impl Batch {
    /// An empty batch (begin marker written).
    pub fn new() -> Batch {
        let mut b = Batch {
            done: Vec::new(),
            buf: Vec::with_capacity(1 << 12),
            seq: 0,
            open: Vec::new(),
            msgs: 0,
        };
        b.control(NFNL_MSG_BATCH_BEGIN);
        b
    }

    fn header(&mut self, ty: u16, flags: u16, family: u8, res_id: u16) {
        self.open.push(self.buf.len());
        self.buf.extend_from_slice(&0u32.to_ne_bytes()); // length, patched later
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(&flags.to_ne_bytes());
        self.buf.extend_from_slice(&self.seq.to_ne_bytes());
        self.buf.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel
        self.seq = self.seq.wrapping_add(1);
        // struct nfgenmsg { u8 family; u8 version; __be16 res_id; }
        self.buf.push(family);
        self.buf.push(0);
        self.buf.extend_from_slice(&res_id.to_be_bytes());
    }

    fn control(&mut self, ty: u16) {
        self.header(ty, NLM_F_REQUEST, 0, SUBSYS_NFTABLES);
        self.end();
    }

    /// Starts an nf_tables message; finish it with [`Batch::end`].
    pub fn begin(&mut self, ty: MsgType, flags: u16) {
        self.msgs += 1;
        self.header(
            (SUBSYS_NFTABLES << 8) | ty as u16,
            NLM_F_REQUEST | flags,
            FAMILY_IPV4,
            0,
        );
    }

    /// Closes the innermost open message or nest.
    pub fn end(&mut self) {
        let Some(start) = self.open.pop() else {
            return;
        };
        let len = u32::try_from(self.buf.len() - start).unwrap_or(u32::MAX);
        // Nests carry a 16-bit length, messages a 32-bit one.
        if self.open.is_empty() {
            self.buf[start..start + 4].copy_from_slice(&len.to_ne_bytes());
            if self.buf.len() >= CHUNK {
                let full = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK + (1 << 16)));
                self.done.push(full);
            } else if self.buf.len() + (1 << 16) > self.buf.capacity() && self.done.is_empty() {
                // Small batches (incremental syncs) stay small; a batch that
                // grows past 64 KiB gets its full chunk capacity once.
                self.buf.reserve(CHUNK + (1 << 16) - self.buf.len());
            }
        } else {
            let len16 = u16::try_from(len).unwrap_or(u16::MAX);
            self.buf[start..start + 2].copy_from_slice(&len16.to_ne_bytes());
        }
    }

    /// Appends attribute `ty` with `data`, padded to 4 bytes.
    pub fn attr(&mut self, ty: u16, data: &[u8]) {
        let len = u16::try_from(4 + data.len()).unwrap_or(u16::MAX);
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.buf.len().is_multiple_of(4) {
            self.buf.push(0);
        }
    }

    /// A NUL-terminated string attribute.
    pub fn str(&mut self, ty: u16, s: &str) {
        let len = u16::try_from(4 + s.len() + 1).unwrap_or(u16::MAX);
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
        self.pad();
    }

    /// A big-endian u32 attribute (nf_tables' integers are network order).
    pub fn be32(&mut self, ty: u16, v: u32) {
        self.attr(ty, &v.to_be_bytes());
    }

    /// A big-endian u64 attribute.
    pub fn be64(&mut self, ty: u16, v: u64) {
        self.attr(ty, &v.to_be_bytes());
    }

    /// Opens a nested attribute; close it with [`Batch::end`].
    pub fn nest(&mut self, ty: u16) {
        self.open.push(self.buf.len());
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf
            .extend_from_slice(&(ty | NLA_F_NESTED).to_ne_bytes());
    }

    /// Number of nf_tables messages so far.
    pub fn len(&self) -> usize {
        self.msgs
    }

    /// Whether no nf_tables message was added.
    pub fn is_empty(&self) -> bool {
        self.msgs == 0
    }

    /// Bytes so far.
    pub fn byte_len(&self) -> usize {
        self.done.iter().map(Vec::len).sum::<usize>() + self.buf.len()
    }

    /// Writes the end marker and returns the buffers to send, in order.
    pub fn finish(mut self) -> Vec<Vec<u8>> {
        self.control(NFNL_MSG_BATCH_END);
        let mut out = self.done;
        out.push(self.buf);
        out
    }
}

/// A `NETLINK_NETFILTER` socket, bound to the network namespace it was opened in.
#[derive(Debug)]
pub struct NfSocket {
    fd: OwnedFd,
}

fn io(op: &'static str) -> impl Fn(nix::Error) -> ProxyError {
    move |e| ProxyError::Netlink(format!("{op}: {e}"))
}

impl NfSocket {
    /// Opens a socket in the calling thread's network namespace.
    pub fn open() -> Result<NfSocket, ProxyError> {
        let fd = socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkNetFilter,
        )
        .map_err(io("socket"))?;
        // Error reports for a large failed batch must not overflow.
        let _ = setsockopt(&fd, sockopt::RcvBufForce, &(4 << 20));
        Ok(NfSocket { fd })
    }

    /// Sends `batch` and waits for the kernel's verdict on it: the whole
    /// batch is committed, or nothing is and the first error comes back.
    pub fn commit(&mut self, batch: Batch) -> Result<(), ProxyError> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut chunks = batch.finish();
        if chunks.len() > MAX_IOV {
            // Only past ~1 GiB: join neighbours so one sendmsg takes them all.
            let per = chunks.len().div_ceil(MAX_IOV);
            chunks = chunks.chunks(per).map(<[Vec<u8>]>::concat).collect();
        }
        let Some(last) = chunks.last_mut() else {
            return Ok(());
        };
        // The kernel processes the batch inside sendmsg(), so its errors
        // (and, on kernels since 6.10, the ACK asked for on the end marker)
        // are queued when it returns: reading until the ACK or an empty
        // queue sees the whole outcome.
        let end = last.len() - 20;
        let flags = NLM_F_REQUEST | NLM_F_ACK;
        last[end + 6..end + 8].copy_from_slice(&flags.to_ne_bytes());
        let end_seq =
            u32::from_ne_bytes([last[end + 8], last[end + 9], last[end + 10], last[end + 11]]);
        // The whole batch must go in one datagram; the buffer grows to fit.
        let total: usize = chunks.iter().map(Vec::len).sum();
        let want = total.saturating_add(1 << 16);
        setsockopt(&self.fd, sockopt::SndBufForce, &want).map_err(io("SO_SNDBUFFORCE"))?;
        let iov: Vec<IoSlice<'_>> = chunks.iter().map(|c| IoSlice::new(c)).collect();
        let sent = sendmsg::<NetlinkAddr>(self.fd.as_raw_fd(), &iov, &[], MsgFlags::empty(), None)
            .map_err(io("sendmsg"))?;
        drop(iov);
        drop(chunks);
        if sent != total {
            return Err(ProxyError::Netlink(format!(
                "short send: {sent} of {total} bytes"
            )));
        }
        self.read_acks(end_seq)
    }

    fn read_acks(&mut self, end_seq: u32) -> Result<(), ProxyError> {
        let mut buf = vec![0u8; 1 << 16];
        let mut first_err: Option<(i32, u32)> = None;
        loop {
            let n = match recv(self.fd.as_raw_fd(), &mut buf, MsgFlags::MSG_DONTWAIT) {
                Ok(n) => n,
                Err(nix::errno::Errno::EAGAIN) => return outcome(first_err),
                Err(e) => return Err(io("recv")(e)),
            };
            let mut off = 0;
            while off + 16 <= n {
                let len = u32::from_ne_bytes([buf[off], buf[off + 1], buf[off + 2], buf[off + 3]])
                    as usize;
                let ty = u16::from_ne_bytes([buf[off + 4], buf[off + 5]]);
                let seq =
                    u32::from_ne_bytes([buf[off + 8], buf[off + 9], buf[off + 10], buf[off + 11]]);
                if len < 16 || off + len > n {
                    break;
                }
                if ty == NLMSG_ERROR && len >= 20 {
                    let code = i32::from_ne_bytes([
                        buf[off + 16],
                        buf[off + 17],
                        buf[off + 18],
                        buf[off + 19],
                    ]);
                    // The echoed header of the failing message holds its seq.
                    let failed_seq = if len >= 36 {
                        u32::from_ne_bytes([
                            buf[off + 28],
                            buf[off + 29],
                            buf[off + 30],
                            buf[off + 31],
                        ])
                    } else {
                        seq
                    };
                    if code != 0 && first_err.is_none() {
                        first_err = Some((code, failed_seq));
                    }
                    if seq == end_seq {
                        return outcome(first_err);
                    }
                }
                off += (len + 3) & !3;
            }
        }
    }
}

fn outcome(first_err: Option<(i32, u32)>) -> Result<(), ProxyError> {
    match first_err {
        None => Ok(()),
        Some((code, at)) => Err(ProxyError::Netlink(format!(
            "transaction rejected at message {at}: {}",
            nix::Error::from_raw(-code)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_batches_split_between_messages_only() {
        let mut b = Batch::new();
        let payload = vec![7u8; 1000];
        for _ in 0..3000 {
            b.begin(MsgType::NewRule, 0);
            b.attr(1, &payload);
            b.end();
        }
        let total = b.byte_len();
        let chunks = b.finish();
        assert!(chunks.len() >= 2, "{} chunks", chunks.len());
        assert_eq!(chunks.iter().map(Vec::len).sum::<usize>(), total + 20);
        // Every buffer holds whole messages: walking lengths lands on its end.
        for c in &chunks {
            let mut off = 0;
            while off < c.len() {
                off += u32_at(c, off) as usize;
            }
            assert_eq!(off, c.len());
        }
    }

    fn u32_at(b: &[u8], at: usize) -> u32 {
        u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
    }

    #[test]
    fn batch_frames_messages_and_patches_lengths() {
        let mut b = Batch::new();
        b.begin(MsgType::NewTable, NLM_F_CREATE);
        b.str(1, "portico");
        b.nest(4);
        b.be32(1, 7);
        b.end();
        b.end();
        assert_eq!(b.len(), 1);
        let bytes = b.finish().concat();
        // begin marker: 20 bytes, subsystem in res_id (big endian).
        assert_eq!(u32_at(&bytes, 0), 20);
        assert_eq!(
            u16::from_ne_bytes([bytes[4], bytes[5]]),
            NFNL_MSG_BATCH_BEGIN
        );
        assert_eq!(&bytes[18..20], &SUBSYS_NFTABLES.to_be_bytes());
        // The table message: header 16 + nfgenmsg 4 + name 12 + nest 4 + u32 attr 8.
        let msg = &bytes[20..];
        assert_eq!(u32_at(msg, 0), 44);
        assert_eq!(u16::from_ne_bytes([msg[4], msg[5]]), 10 << 8); // NEWTABLE = 0
        assert_eq!(msg[16], FAMILY_IPV4);
        assert_eq!(&msg[24..32], b"portico\0");
        // The nest holds one 8-byte attribute and carries the nested flag.
        assert_eq!(u16::from_ne_bytes([msg[32], msg[33]]), 12);
        assert_eq!(u16::from_ne_bytes([msg[34], msg[35]]), 4 | NLA_F_NESTED);
        assert_eq!(&msg[40..44], &7u32.to_be_bytes());
        // end marker follows.
        assert_eq!(bytes.len(), 20 + 44 + 20);
        assert_eq!(
            u16::from_ne_bytes([bytes[64 + 4], bytes[64 + 5]]),
            NFNL_MSG_BATCH_END
        );
    }

    #[test]
    fn strings_are_nul_terminated_and_padded() {
        let mut b = Batch::new();
        b.begin(MsgType::NewChain, 0);
        b.str(3, "abcd");
        b.end();
        let bytes = b.finish().concat();
        // 4 header + 5 bytes ("abcd\0"), padded to 12.
        assert_eq!(u16::from_ne_bytes([bytes[40], bytes[41]]), 9);
        assert_eq!(&bytes[44..52], b"abcd\0\0\0\0");
        assert_eq!(u32_at(&bytes, 20), 32);
    }
}
