//! Stable short names for the kernel objects of a pod (netns, veth, container ids).
//!
//! Interface names are limited to 15 bytes and netns names must be unique on
//! the whole machine (several nodes share `/run/netns`), so names are built
//! from the node name plus a stable hash of the pod's identity.

/// 64-bit FNV-1a: stable across Rust versions, unlike `DefaultHasher`, which
/// matters because names are persisted in the data dir.
pub fn fnv1a(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in data {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Hash of a pod's identity (uid), as 8 lowercase hex characters.
pub fn short_id(uid: &str) -> String {
    format!("{:08x}", fnv1a(uid.as_bytes()) & 0xffff_ffff)
}

/// The pod's network namespace name: readable (`<node>-<ns>-<name>`) and unique
/// (uid hash suffix). Characters outside `[A-Za-z0-9._-]` become `-`.
pub fn netns_name(node: &str, pod_ns: &str, pod_name: &str, uid: &str) -> String {
    let mut base: String = format!("{node}-{pod_ns}-{pod_name}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    // Leave room for the suffix within a comfortable file name length.
    base.truncate(200);
    format!("{base}-{}", short_id(uid))
}

/// Host side veth name in the node netns: `veth` + 8 hex = 12 bytes (< 15).
pub fn veth_name(uid: &str) -> String {
    format!("veth{}", short_id(uid))
}

/// A container id as the status shows it (`portico://<64 hex>`-like, shorter).
pub fn container_id(uid: &str, container: &str, restart: i32) -> String {
    let a = fnv1a(format!("{uid}/{container}").as_bytes());
    let b = fnv1a(format!("{uid}/{container}/{restart}").as_bytes());
    format!("portico://{a:016x}{b:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_kernel_limits_and_are_stable() {
        let v = veth_name("0b7c4f1e-1111-2222-3333-444455556666");
        assert!(v.len() <= 15, "{v}");
        assert_eq!(v, veth_name("0b7c4f1e-1111-2222-3333-444455556666"));
        assert_ne!(v, veth_name("another-uid"));
        let n = netns_name("node1", "default", "web/x", "u1");
        assert!(n.starts_with("node1-default-web-x-"), "{n}");
        assert_eq!(n.len(), "node1-default-web-x-".len() + 8);
    }

    #[test]
    fn container_ids_change_per_restart() {
        let a = container_id("u", "c", 0);
        assert!(a.starts_with("portico://"));
        assert_ne!(a, container_id("u", "c", 1));
    }
}
