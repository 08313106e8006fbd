//! The node-local address: a dummy interface holding the kube-dns ClusterIP
//! inside the node's network namespace, so pods reach this server at that IP
//! directly — no DNAT, no conntrack entry, no 5-second conntrack races.
//! Where the kernel has no dummy interfaces (some containers), the address
//! goes on the namespace's loopback instead, which routes the same way.

use std::net::Ipv4Addr;
use std::process::Command;

use crate::DnsError;

/// The dummy interface's name.
pub const INTERFACE: &str = "portico-dns";

/// Puts `addr/32` on the dummy interface `portico-dns` (created if missing),
/// or on `lo` when the kernel cannot create dummy interfaces, and brings the
/// interface up — idempotently, in the calling thread's network namespace.
/// Call it only inside a node's namespace, never in the machine's own.
pub fn prepare_node_local_address(addr: Ipv4Addr) -> Result<(), DnsError> {
    let exists = Command::new("ip")
        .args(["link", "show", "dev", INTERFACE])
        .output()
        .map_err(|e| DnsError::NodeLocal(format!("running ip: {e}")))?
        .status
        .success();
    let device = if exists || ip(&["link", "add", INTERFACE, "type", "dummy"]).is_ok() {
        INTERFACE
    } else {
        tracing::info!("no dummy interfaces here; putting the DNS address on lo");
        "lo"
    };
    ip(&["addr", "replace", &format!("{addr}/32"), "dev", device])?;
    ip(&["link", "set", "dev", device, "up"])?;
    tracing::debug!(%addr, device, "node-local DNS address ready");
    Ok(())
}

/// Undoes [`prepare_node_local_address`]: deletes the dummy interface, or the
/// address from `lo`. Missing pieces are not an error (idempotent).
pub fn remove_node_local_address(addr: Ipv4Addr) -> Result<(), DnsError> {
    if ip(&["link", "del", INTERFACE]).is_ok() {
        return Ok(());
    }
    let cidr = format!("{addr}/32");
    let present = Command::new("ip")
        .args(["-o", "-4", "addr", "show", "dev", "lo", "to", &cidr])
        .output()
        .map_err(|e| DnsError::NodeLocal(format!("running ip: {e}")))?;
    if String::from_utf8_lossy(&present.stdout).trim().is_empty() {
        return Ok(());
    }
    ip(&["addr", "del", &cidr, "dev", "lo"])
}

fn ip(args: &[&str]) -> Result<(), DnsError> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| DnsError::NodeLocal(format!("running ip: {e}")))?;
    if out.status.success() {
        return Ok(());
    }
    Err(DnsError::NodeLocal(format!(
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs in a private network namespace owned by a throwaway thread: the
    /// namespace disappears with the thread, also when an assertion fails.
    #[test]
    fn puts_the_address_on_an_interface_idempotently_in_a_private_netns() {
        let handle = std::thread::spawn(|| {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            let addr = Ipv4Addr::new(10, 96, 0, 10);
            prepare_node_local_address(addr).unwrap();
            prepare_node_local_address(addr).unwrap();
            let out = Command::new("ip")
                .args(["-o", "-4", "addr", "show", "to", "10.96.0.10/32"])
                .output()
                .unwrap();
            let text = String::from_utf8(out.stdout).unwrap();
            assert_eq!(text.lines().count(), 1, "{text}");
            assert!(text.contains("inet 10.96.0.10/32"), "{text}");
            // The address is usable for a listener at once.
            let socket = std::net::UdpSocket::bind((addr, 0)).unwrap();
            assert_eq!(socket.local_addr().unwrap().ip(), addr);
            drop(socket);
            remove_node_local_address(addr).unwrap();
            remove_node_local_address(addr).unwrap();
            let out = Command::new("ip")
                .args(["-o", "-4", "addr", "show", "to", "10.96.0.10/32"])
                .output()
                .unwrap();
            assert_eq!(String::from_utf8(out.stdout).unwrap(), "");
        });
        handle.join().unwrap();
    }
}
