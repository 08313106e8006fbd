//! Switching the calling thread into a network namespace, and binding sockets there.
//!
//! Namespaces are per thread on Linux, and threads inherit the namespace of the
//! thread that creates them. So `enter` before building a tokio runtime puts the
//! whole runtime in the namespace, and a short-lived thread can bind a listener
//! inside another namespace and hand the socket back (a socket stays in the
//! namespace it was created in).

use std::fs::File;
use std::net::{SocketAddr, TcpListener};

use nix::sched::CloneFlags;

use crate::ClusterError;

/// Moves the calling thread into the network namespace at `path`
/// (e.g. `/run/netns/portico-node1`).
pub fn enter(path: &str) -> Result<(), ClusterError> {
    let err = |source: std::io::Error| ClusterError::Setns {
        path: path.to_string(),
        source,
    };
    let file = File::open(path).map_err(err)?;
    nix::sched::setns(&file, CloneFlags::CLONE_NEWNET).map_err(|e| err(std::io::Error::from(e)))
}

/// Binds a TCP listener inside the namespace at `path` without moving the
/// calling thread.
pub fn bind_tcp_in(path: &str, addr: SocketAddr) -> Result<TcpListener, ClusterError> {
    let path_owned = path.to_string();
    let handle = std::thread::spawn(move || -> Result<TcpListener, ClusterError> {
        enter(&path_owned)?;
        TcpListener::bind(addr).map_err(|source| ClusterError::Setns {
            path: path_owned.clone(),
            source,
        })
    });
    match handle.join() {
        Ok(r) => r,
        Err(_) => Err(ClusterError::Setns {
            path: path.to_string(),
            source: std::io::Error::other("binding thread panicked"),
        }),
    }
}
