//! Pod network sandboxes made with system calls and rtnetlink instead of `ip`
//! processes: the named netns (`unshare` in a throw-away thread, bind-mounted
//! on `/run/netns/<name>` the way `ip netns add` does), the veth pair with its
//! peer created straight inside the pod netns, bridge port, `lo`, address and
//! default route. The `ip` path in `netops` stays as a fallback.

use std::fs::File;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;

use crate::netops::{netns_path, Sandbox};
use crate::rtnl::{self, Rtnl};

/// How many pod sandboxes this process set up over rtnetlink, and how many
/// fell back to `ip` processes (which should be none: a fallback costs two
/// spawns per pod and means the netlink path is broken on this kernel).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SandboxStats {
    pub netlink: u64,
    pub ip_fallback: u64,
}

static NETLINK_SETUPS: AtomicU64 = AtomicU64::new(0);
static IP_FALLBACKS: AtomicU64 = AtomicU64::new(0);

/// The counts since the process started.
pub fn stats() -> SandboxStats {
    SandboxStats {
        netlink: NETLINK_SETUPS.load(Ordering::Relaxed),
        ip_fallback: IP_FALLBACKS.load(Ordering::Relaxed),
    }
}

pub(crate) fn count_fallback() {
    IP_FALLBACKS.fetch_add(1, Ordering::Relaxed);
}

/// Runs `f` on a fresh OS thread (it inherits the caller's network
/// namespace) and awaits it without blocking the async runtime. A fresh
/// thread, not the blocking pool: the setup moves its thread into the pod's
/// netns, which must never leak into a pooled thread.
async fn on_own_thread<T: Send + 'static>(
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("portico-sandbox".into())
        .spawn(move || {
            let _ = tx.send(f());
        })?;
    rx.await
        .unwrap_or_else(|_| Err(io::Error::other("sandbox thread died")))
}

/// `/run/netns` as `ip netns add` leaves it: a shared mount point, so the
/// namespace mounts show up in mount namespaces made later (pods' own).
fn prepare_netns_dir() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let dir = Path::new("/run/netns");
        let _ = std::fs::create_dir_all(dir);
        let shared = || {
            nix::mount::mount(
                None::<&str>,
                dir,
                None::<&str>,
                MsFlags::MS_SHARED | MsFlags::MS_REC,
                None::<&str>,
            )
        };
        if shared() == Err(nix::errno::Errno::EINVAL) {
            // Not a mount point yet: make it one, then shared.
            let _ = nix::mount::mount(
                Some(dir),
                dir,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            );
            let _ = shared();
        }
    });
}

/// Creates the sandbox: netns, `lo` up, veth (host end on `bridge`, hairpin
/// on, up; `eth0` inside with `ip`/`prefix`, up, default route via `gateway`).
/// On error the caller tears down whatever was made.
pub async fn setup(sb: &Sandbox, bridge: &str, gateway: Ipv4Addr, prefix: u8) -> io::Result<()> {
    let (sb, bridge) = (sb.clone(), bridge.to_string());
    on_own_thread(move || setup_blocking(&sb, &bridge, gateway, prefix)).await?;
    NETLINK_SETUPS.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

fn setup_blocking(sb: &Sandbox, bridge: &str, gateway: Ipv4Addr, prefix: u8) -> io::Result<()> {
    prepare_netns_dir();
    let bridge_index = nix::net::if_::if_nametoindex(bridge)?;
    // Opened before `unshare`: this socket stays in the node's namespace.
    let mut node = Rtnl::open()?;
    let path = netns_path(&sb.netns);
    std::fs::OpenOptions::new()
        .read(true)
        .create_new(true)
        .write(true)
        .mode(0o444)
        .open(&path)?;
    nix::sched::unshare(CloneFlags::CLONE_NEWNET)?;
    nix::mount::mount(
        Some("/proc/thread-self/ns/net"),
        &path,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )?;
    let netns = File::open("/proc/thread-self/ns/net")?;
    // Opened after `unshare`: this one acts inside the pod.
    let mut pod = Rtnl::open()?;
    pod.request(rtnl::link_up("lo", None))?;
    node.request(rtnl::veth_add(&sb.veth, "eth0", netns.as_raw_fd()))?;
    node.request(rtnl::link_up(&sb.veth, Some(bridge_index)))?;
    node.request(rtnl::bridge_port_hairpin(&sb.veth))?;
    let eth0 = nix::net::if_::if_nametoindex("eth0")?;
    pod.request(rtnl::link_up("eth0", None))?;
    pod.request(rtnl::addr_add(eth0, sb.ip, prefix))?;
    pod.request(rtnl::default_route(eth0, gateway))?;
    Ok(())
}

/// Deletes the veth (both ends go) and unmounts and removes the netns file.
/// Idempotent: what is already gone is fine.
pub async fn teardown(sb: &Sandbox) -> io::Result<()> {
    let sb = sb.clone();
    on_own_thread(move || {
        let mut node = Rtnl::open()?;
        match node.request(rtnl::link_del(&sb.veth)) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc_enodev()) => {}
            Err(e) => return Err(e),
        }
        let path = netns_path(&sb.netns);
        if path.exists() {
            let _ = nix::mount::umount2(&path, MntFlags::MNT_DETACH);
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(())
    })
    .await
}

fn libc_enodev() -> i32 {
    nix::errno::Errno::ENODEV as i32
}
