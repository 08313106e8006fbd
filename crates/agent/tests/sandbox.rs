//! The pod sandbox as the kernel sees it: made over rtnetlink (not by the `ip`
//! fallback), with the address, routes, bridge port and hairpin mode the `ip`
//! batches would have set, and gone without a trace after the pod stops.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;
use std::time::Duration;

use common::{curl, eventually, in_node, runtime, NodeNs};
use k8s_openapi::api::core::v1::Pod;

fn ip_json(args: &[&str]) -> serde_json::Value {
    let out = Command::new("ip").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn mounts() -> String {
    std::fs::read_to_string("/proc/self/mountinfo").unwrap()
}

#[test]
fn netlink_sandbox_is_complete_and_leaves_nothing() {
    let node = NodeNs::new("sb");
    let data = tempfile::tempdir().unwrap();
    let rt = runtime(&node, data.path());
    in_node(&node, move || async move {
        rt.setup_node("10.244.11.0/24".parse().unwrap())
            .await
            .unwrap();
        let before = portico_agent::sandbox_stats();
        let p: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "sb", "namespace": "default", "uid": "uid-sandbox-1"},
            "spec": {"terminationGracePeriodSeconds": 1, "containers": [{"name": "agnhost",
                "image": "registry.k8s.io/e2e-test-images/agnhost:2.53", "args": ["netexec", "--http-port=8080"]}]}
        }))
        .unwrap();
        let rx = rt.start_pod(&p, &[]).await.unwrap();
        let after = portico_agent::sandbox_stats();
        // Made over netlink: the fallback counter must not have moved (other
        // tests of this binary run in parallel, so only deltas count).
        assert_eq!(after.ip_fallback, before.ip_fallback, "fell back to ip");
        assert!(after.netlink > before.netlink, "{before:?} → {after:?}");
        let pod_ip = rx.borrow().pod_ip.unwrap();
        let netns = rt.netns_of("uid-sandbox-1").unwrap();
        let path = format!("/run/netns/{netns}");
        assert!(mounts().contains(&path), "netns not bind-mounted");

        // Inside the pod: lo and eth0 up, the address, the default route.
        let links = ip_json(&["-n", &netns, "-j", "link", "show"]);
        let flags = |name: &str| -> Vec<String> {
            links
                .as_array()
                .unwrap()
                .iter()
                .find(|l| l["ifname"] == name)
                .unwrap_or_else(|| panic!("no {name} in {links}"))["flags"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f.as_str().unwrap().to_string())
                .collect()
        };
        assert!(flags("lo").contains(&"UP".to_string()));
        assert!(flags("eth0").contains(&"UP".to_string()));
        let addrs = ip_json(&["-n", &netns, "-j", "-4", "addr", "show", "dev", "eth0"]);
        let info = &addrs[0]["addr_info"][0];
        assert_eq!(info["local"], pod_ip.to_string());
        assert_eq!(info["prefixlen"], 24);
        let routes = ip_json(&["-n", &netns, "-j", "-4", "route", "show", "default"]);
        assert_eq!(routes[0]["gateway"], "10.244.11.1", "{routes}");
        assert_eq!(routes[0]["dev"], "eth0", "{routes}");

        // On the node: the host end is an up port of the bridge, hairpin on.
        let veth = ip_json(&["-d", "-j", "link", "show", "master", "portico0"]);
        let port = veth.as_array().unwrap();
        assert_eq!(port.len(), 1, "{veth}");
        assert!(port[0]["flags"].to_string().contains("\"UP\""), "{veth}");
        assert_eq!(port[0]["linkinfo"]["info_slave_data"]["hairpin"], true);
        let host_end = port[0]["ifname"].as_str().unwrap().to_string();

        // The pod answers on its IP through the bridge (node → pod and back).
        let host = eventually(Duration::from_secs(5), "agnhost on the pod IP", || {
            curl(format!("http://{pod_ip}:8080/hostname"))
        })
        .await;
        assert_eq!(host, "sb");

        rt.stop_pod("uid-sandbox-1", Duration::from_secs(1)).await;
        assert!(!std::path::Path::new(&path).exists(), "{path} left");
        assert!(!mounts().contains(&path), "netns mount left");
        let left = ip_json(&["-j", "link", "show"]);
        assert!(!left.to_string().contains(&host_end), "{left}");
        rt.shutdown(Duration::from_secs(1)).await;
    });
}
