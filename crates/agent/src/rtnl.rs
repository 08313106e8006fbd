//! A minimal rtnetlink client for pod sandboxes: link, address and route
//! messages built by hand (`include/uapi/linux/rtnetlink.h`, `if_link.h`),
//! sent one at a time with an ACK. Replaces `ip` process spawns on the pod
//! start path (a spawn costs more CPU than the whole netlink exchange).

use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use nix::sys::socket::{
    bind, recv, send, socket, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol,
    SockType,
};

const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const RTM_NEWADDR: u16 = 20;
const RTM_NEWROUTE: u16 = 24;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;

const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;

const IFLA_IFNAME: u16 = 3;
const IFLA_MASTER: u16 = 10;
const IFLA_LINKINFO: u16 = 18;
const IFLA_NET_NS_FD: u16 = 28;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_INFO_DATA: u16 = 2;
const IFLA_INFO_SLAVE_KIND: u16 = 4;
const IFLA_INFO_SLAVE_DATA: u16 = 5;
const IFLA_BRPORT_MODE: u16 = 4;
const VETH_INFO_PEER: u16 = 1;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;

const AF_INET: u8 = 2;
const IFF_UP: u32 = 1;
const RT_TABLE_MAIN: u8 = 254;
const RTPROT_BOOT: u8 = 3;
const RTN_UNICAST: u8 = 1;

/// One netlink request under construction. Pure: tests compare its bytes.
#[derive(Debug)]
pub struct Msg {
    buf: Vec<u8>,
    nests: Vec<usize>,
}

fn pad4(n: usize) -> usize {
    (n + 3) & !3
}

impl Msg {
    fn new(ty: u16, flags: u16) -> Self {
        let mut buf = Vec::with_capacity(256);
        buf.extend_from_slice(&0u32.to_ne_bytes()); // length, patched in `finish`
        buf.extend_from_slice(&ty.to_ne_bytes());
        buf.extend_from_slice(&(flags | NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes()); // seq, set by the socket
        buf.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel fills it
        Self {
            buf,
            nests: Vec::new(),
        }
    }

    /// `struct ifinfomsg`.
    fn ifinfo(mut self, index: i32, flags: u32, change: u32) -> Self {
        self.ifinfo_raw(index, flags, change);
        self
    }

    fn ifinfo_raw(&mut self, index: i32, flags: u32, change: u32) {
        self.buf.extend_from_slice(&[0, 0, 0, 0]); // family, pad, type
        self.buf.extend_from_slice(&index.to_ne_bytes());
        self.buf.extend_from_slice(&flags.to_ne_bytes());
        self.buf.extend_from_slice(&change.to_ne_bytes());
    }

    fn attr(mut self, ty: u16, data: &[u8]) -> Self {
        self.put(ty, data);
        self
    }

    fn put(&mut self, ty: u16, data: &[u8]) {
        let len = 4 + data.len();
        // Attribute lengths fit u16 for everything built here (names, addresses).
        self.buf
            .extend_from_slice(&u16::try_from(len).unwrap_or(u16::MAX).to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(data);
        self.buf.resize(pad4(self.buf.len()), 0);
    }

    fn str_attr(self, ty: u16, s: &str) -> Self {
        let mut v = s.as_bytes().to_vec();
        v.push(0);
        self.attr(ty, &v)
    }

    fn begin(mut self, ty: u16) -> Self {
        self.nests.push(self.buf.len());
        self.buf.extend_from_slice(&[0, 0]);
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self
    }

    fn end(mut self) -> Self {
        if let Some(start) = self.nests.pop() {
            let len = u16::try_from(self.buf.len() - start).unwrap_or(u16::MAX);
            self.buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
        }
        self
    }

    fn finish(mut self, seq: u32) -> Vec<u8> {
        let len = u32::try_from(self.buf.len()).unwrap_or(u32::MAX);
        self.buf[0..4].copy_from_slice(&len.to_ne_bytes());
        self.buf[8..12].copy_from_slice(&seq.to_ne_bytes());
        self.buf
    }
}

/// `ip link add <host> type veth peer name <peer> netns <fd>`.
pub fn veth_add(host: &str, peer: &str, peer_netns: RawFd) -> Msg {
    let mut m = Msg::new(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL)
        .ifinfo(0, 0, 0)
        .str_attr(IFLA_IFNAME, host)
        .begin(IFLA_LINKINFO)
        .str_attr(IFLA_INFO_KIND, "veth")
        .begin(IFLA_INFO_DATA)
        .begin(VETH_INFO_PEER);
    m.ifinfo_raw(0, 0, 0);
    m.str_attr(IFLA_IFNAME, peer)
        .attr(IFLA_NET_NS_FD, &peer_netns.to_ne_bytes())
        .end()
        .end()
        .end()
}

/// `ip link set <name> [master <index>] up`.
pub fn link_up(name: &str, master: Option<u32>) -> Msg {
    let m = Msg::new(RTM_NEWLINK, 0)
        .ifinfo(0, IFF_UP, IFF_UP)
        .str_attr(IFLA_IFNAME, name);
    match master {
        Some(i) => m.attr(IFLA_MASTER, &i.to_ne_bytes()),
        None => m,
    }
}

/// `ip link set <name> type bridge_slave hairpin on`: a pod reaching itself
/// through a Service is DNATed back out of the port it came in on.
pub fn bridge_port_hairpin(name: &str) -> Msg {
    Msg::new(RTM_NEWLINK, 0)
        .ifinfo(0, 0, 0)
        .str_attr(IFLA_IFNAME, name)
        .begin(IFLA_LINKINFO)
        .str_attr(IFLA_INFO_SLAVE_KIND, "bridge")
        .begin(IFLA_INFO_SLAVE_DATA)
        .attr(IFLA_BRPORT_MODE, &[1])
        .end()
        .end()
}

/// `ip link del <name>`.
pub fn link_del(name: &str) -> Msg {
    Msg::new(RTM_DELLINK, 0)
        .ifinfo(0, 0, 0)
        .str_attr(IFLA_IFNAME, name)
}

/// `ip addr add <ip>/<prefix> dev <index>`.
pub fn addr_add(index: u32, ip: Ipv4Addr, prefix: u8) -> Msg {
    let mut m = Msg::new(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL);
    m.buf.extend_from_slice(&[AF_INET, prefix, 0, 0]);
    m.buf.extend_from_slice(&index.to_ne_bytes());
    m.attr(IFA_LOCAL, &ip.octets())
        .attr(IFA_ADDRESS, &ip.octets())
}

/// `ip route add default via <gateway> dev <index>`.
pub fn default_route(index: u32, gateway: Ipv4Addr) -> Msg {
    let mut m = Msg::new(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL);
    m.buf
        .extend_from_slice(&[AF_INET, 0, 0, 0, RT_TABLE_MAIN, RTPROT_BOOT, 0, RTN_UNICAST]);
    m.buf.extend_from_slice(&0u32.to_ne_bytes());
    m.attr(RTA_GATEWAY, &gateway.octets())
        .attr(RTA_OIF, &index.to_ne_bytes())
}

/// A `NETLINK_ROUTE` socket. It acts in the network namespace of the thread
/// that created it, wherever it is used later.
pub struct Rtnl {
    fd: OwnedFd,
    seq: u32,
}

impl Rtnl {
    pub fn open() -> std::io::Result<Self> {
        let fd = socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkRoute,
        )?;
        bind(fd.as_raw_fd(), &NetlinkAddr::new(0, 0))?;
        Ok(Self { fd, seq: 0 })
    }

    /// Sends one request and waits for its ACK; a kernel error comes back as
    /// the errno it carries.
    pub fn request(&mut self, msg: Msg) -> std::io::Result<()> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let bytes = msg.finish(seq);
        send(self.fd.as_raw_fd(), &bytes, MsgFlags::empty())?;
        let mut buf = vec![0u8; 8192];
        // Bounded: the kernel answers a request with one ACK or error.
        for _ in 0..64 {
            let n = recv(self.fd.as_raw_fd(), &mut buf, MsgFlags::empty())?;
            if let Some(r) = parse_ack(&buf[..n], seq) {
                return r;
            }
        }
        Err(std::io::Error::other("no netlink ACK"))
    }
}

/// The result carried by the ACK for `seq` in a received datagram, if any.
fn parse_ack(mut data: &[u8], seq: u32) -> Option<std::io::Result<()>> {
    while data.len() >= 16 {
        let word = |o: usize| [data[o], data[o + 1], data[o + 2], data[o + 3]];
        let len = u32::from_ne_bytes(word(0)) as usize;
        let ty = u16::from_ne_bytes([data[4], data[5]]);
        let mseq = u32::from_ne_bytes(word(8));
        if len < 16 || len > data.len() {
            return None;
        }
        if mseq == seq && (ty == NLMSG_ERROR || ty == NLMSG_DONE) {
            if ty == NLMSG_ERROR && len >= 20 {
                let code = i32::from_ne_bytes(word(16));
                if code != 0 {
                    return Some(Err(std::io::Error::from_raw_os_error(-code)));
                }
            }
            return Some(Ok(()));
        }
        data = &data[pad4(len).min(data.len())..];
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_up_layout() {
        let b = link_up("veth1", Some(7)).finish(5);
        // header 16 + ifinfomsg 16 + name attr 4+6→12 + master 8
        assert_eq!(b.len(), 52);
        assert_eq!(u32::from_ne_bytes([b[0], b[1], b[2], b[3]]), 52);
        assert_eq!(u16::from_ne_bytes([b[4], b[5]]), RTM_NEWLINK);
        assert_eq!(u32::from_ne_bytes([b[8], b[9], b[10], b[11]]), 5);
        assert_eq!(&b[32..34], &10u16.to_ne_bytes()); // IFLA_IFNAME len 4+6
        assert_eq!(&b[36..42], b"veth1\0");
        assert_eq!(&b[48..52], &7u32.to_ne_bytes());
    }

    #[test]
    fn nested_lengths_cover_their_children() {
        let b = bridge_port_hairpin("v").finish(1);
        // linkinfo nest starts after header+ifinfomsg+name(8).
        let start = 16 + 16 + 8;
        let nest_len = u16::from_ne_bytes([b[start], b[start + 1]]) as usize;
        assert_eq!(start + nest_len, b.len());
    }

    #[test]
    fn acks_and_errors() {
        let mut ok = vec![0u8; 36];
        ok[0..4].copy_from_slice(&36u32.to_ne_bytes());
        ok[4..6].copy_from_slice(&NLMSG_ERROR.to_ne_bytes());
        ok[8..12].copy_from_slice(&9u32.to_ne_bytes());
        assert!(matches!(parse_ack(&ok, 9), Some(Ok(()))));
        assert!(parse_ack(&ok, 8).is_none());
        ok[16..20].copy_from_slice(&(-17i32).to_ne_bytes());
        let e = parse_ack(&ok, 9)
            .and_then(Result::err)
            .map(|e| e.raw_os_error());
        assert_eq!(e, Some(Some(17)));
    }
}
