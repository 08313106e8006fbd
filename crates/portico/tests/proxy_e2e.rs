//! The Service proxy end to end on a real `portico up`: agnhost netexec pods
//! tell which pod answered (`/hostname`) and which source address it saw
//! (`/clientip`), so each check asserts what a user of the Service would see:
//! NodePorts on every node, ClusterIPs from pods, UDP, REJECT without
//! endpoints, session affinity, traffic policies, source ranges, changes
//! reflected within a second, and an agent restart under an open connection.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use support::lan::{curl_in, udp_in};
use support::traffic::{
    cluster_ip, connect_in, curl, curl_quick, http_get, jsonpath, keys, names, netexec_deployment,
    netexec_pod, node_port, refused_at_once, ruleset, tally, wait_ready, within, ONE_SECOND, SHORT,
};
use support::{eventually, Cluster, Layout};

/// Three nodes: pods `be1` (node 1), `be2` (node 2) behind most Services,
/// client pods `cl1..cl3` (one per node) and a Deployment `web` on node 1.
#[test]
fn services_on_three_nodes() {
    let cluster = Cluster::up(Layout::Nodes(3));
    let nodes: Vec<String> = (1..=3).map(|i| cluster.node_name(i)).collect();
    let client = cluster.client_ns.clone();
    let mut yaml = vec![
        netexec_pod("be1", "app: be", &nodes[0]),
        netexec_pod("be2", "app: be", &nodes[1]),
        netexec_deployment("web", 2, &nodes[0]),
    ];
    for (i, n) in nodes.iter().enumerate() {
        yaml.push(netexec_pod(&format!("cl{}", i + 1), "role: client", n));
    }
    yaml.push(SERVICES.to_string());
    cluster.apply_yaml(&yaml.join("---\n"));
    let be = wait_ready(&cluster, "app=be", 2);
    let web = wait_ready(&cluster, "app=web", 2);
    let clients = wait_ready(&cluster, "role=client", 3);
    let client_ns: Vec<(String, String)> = clients
        .iter()
        .map(|(name, (ip, _))| {
            let ns = eventually(&format!("{name}'s netns"), SHORT, || cluster.pod_net(ip));
            (ns, ip.clone())
        })
        .collect();

    no_endpoints_refuse(&cluster, &client, &client_ns);
    seed_flow_with_agnhost(&cluster, &client, &web);
    cluster_ip_from_pods(&cluster, &client_ns, &be);
    hairpin(&cluster, &be);
    udp_node_port(&cluster, &client, &be);
    session_affinity(&cluster, &client, &web);
    external_traffic_policy(&cluster, &client);
    internal_traffic_policy(&cluster, &client_ns);
    source_ranges(&cluster, &client);
    type_and_port_changes(&cluster, &client, &client_ns[0].0);
    scale_and_delete(&cluster, &client);
}

const SERVICES: &str = r#"apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  type: NodePort
  selector: {app: web}
  ports:
  - {port: 80, targetPort: http, nodePort: 30080}
---
apiVersion: v1
kind: Service
metadata: {name: be}
spec:
  selector: {app: be}
  ports:
  - {name: http, port: 80, targetPort: http}
  - {name: udp, port: 80, targetPort: udp, protocol: UDP}
  - {name: alt, port: 8080, targetPort: 8080}
---
apiVersion: v1
kind: Service
metadata: {name: be-udp}
spec:
  type: NodePort
  selector: {app: be}
  ports:
  - {port: 53, targetPort: udp, protocol: UDP}
---
apiVersion: v1
kind: Service
metadata: {name: empty}
spec:
  type: NodePort
  selector: {app: nothing}
  ports:
  - {port: 80, targetPort: 8080}
---
apiVersion: v1
kind: Service
metadata: {name: be-local}
spec:
  type: LoadBalancer
  externalTrafficPolicy: Local
  selector: {app: be}
  ports:
  - {port: 80, targetPort: http}
---
apiVersion: v1
kind: Service
metadata: {name: be-itp}
spec:
  internalTrafficPolicy: Local
  selector: {app: be}
  ports:
  - {port: 80, targetPort: http}
---
apiVersion: v1
kind: Service
metadata: {name: morph}
spec:
  selector: {app: be}
  ports:
  - {port: 80, targetPort: http}
"#;

/// The seeds' flow with agnhost: 60 requests to each node's NodePort reach both pods.
fn seed_flow_with_agnhost(
    cluster: &Cluster,
    client: &str,
    web: &BTreeMap<String, (String, String)>,
) {
    for ip in &cluster.node_ips {
        let url = format!("http://{ip}:30080/hostname");
        eventually(&format!("{url} answers"), Duration::from_secs(10), || {
            curl(client, &url)
        });
        let seen = tally(60, || curl(client, &url));
        assert_eq!(keys(&seen), names(web), "60 requests to {url}: {seen:?}");
    }
}

/// ClusterIP by IP from a pod on every node, over TCP on two ports (one a
/// named targetPort) and UDP on the same port number; the source pod IP is kept.
fn cluster_ip_from_pods(
    cluster: &Cluster,
    pods: &[(String, String)],
    be: &BTreeMap<String, (String, String)>,
) {
    let cip = cluster_ip(cluster, "be");
    for (ns, pod_ip) in pods {
        let url = format!("http://{cip}/hostname");
        eventually(&format!("{url} from {ns}"), Duration::from_secs(10), || {
            curl(ns, &url)
        });
        let seen = tally(30, || curl(ns, &url));
        assert_eq!(keys(&seen), names(be), "{url} from {ns}: {seen:?}");
        let alt = curl(ns, &format!("http://{cip}:8080/hostname"));
        assert!(
            alt.as_ref().is_some_and(|h| be.contains_key(h)),
            "second port from {ns}: {alt:?}"
        );
        let udp = tally(30, || {
            udp_in(ns, &cip, 80, "hostname", Duration::from_secs(2))
        });
        assert_eq!(keys(&udp), names(be), "UDP {cip}:80 from {ns}: {udp:?}");
        let seen_ip = curl(ns, &format!("http://{cip}/clientip")).unwrap_or_default();
        assert!(
            seen_ip.starts_with(&format!("{pod_ip}:")),
            "pod {pod_ip} seen as {seen_ip:?}"
        );
    }
}

/// Hairpin: a pod reaching its own Service always gets an answer, and some
/// of the answers come from itself (the random choice picks it).
fn hairpin(cluster: &Cluster, be: &BTreeMap<String, (String, String)>) {
    let cip = cluster_ip(cluster, "be");
    let (be1_ip, _) = &be["be1"];
    let ns = eventually("be1's netns", SHORT, || cluster.pod_net(be1_ip));
    let url = format!("http://{cip}/hostname");
    let mut answers = Vec::new();
    for _ in 0..20 {
        answers.push(curl(&ns, &url));
    }
    assert!(
        answers.iter().all(Option::is_some),
        "be1 -> {url}: {answers:?}"
    );
    assert!(
        answers.iter().any(|a| a.as_deref() == Some("be1")),
        "be1 never reached itself through {url}: {answers:?}"
    );
}

/// A UDP NodePort answers on every node.
fn udp_node_port(cluster: &Cluster, client: &str, be: &BTreeMap<String, (String, String)>) {
    let np = node_port(cluster, "be-udp", 0);
    for ip in &cluster.node_ips {
        let reply = eventually(&format!("UDP {ip}:{np}"), Duration::from_secs(10), || {
            udp_in(client, ip, np, "hostname", Duration::from_secs(1))
        });
        assert!(
            be.contains_key(&reply),
            "UDP NodePort {ip}:{np} answered {reply:?}"
        );
    }
}

/// A Service without endpoints refuses at once, by ClusterIP from a pod on
/// every node and by NodePort on every node.
///
/// Runs before any other traffic: a node that forwards the client's traffic
/// back out of its LAN interface (NodePort to a pod on another node) sends the
/// client ICMP redirects, which share the kernel's per-peer ICMP rate limit
/// with the REJECT's port-unreachable; after that a refusal may take one SYN
/// retransmission (1 s). See the report of issue 5's tests.
fn no_endpoints_refuse(cluster: &Cluster, client: &str, pods: &[(String, String)]) {
    let url = format!("http://{}/", cluster_ip(cluster, "empty"));
    for (ns, _) in pods {
        eventually(
            "ClusterIP without endpoints programmed",
            Duration::from_secs(10),
            || (curl_in(ns, &url, Duration::from_secs(3)).code == 7).then_some(()),
        );
        refused_at_once(ns, &url);
    }
    let np = node_port(cluster, "empty", 0);
    for ip in &cluster.node_ips {
        refused_at_once(client, &format!("http://{ip}:{np}/"));
    }
}

/// ClientIP affinity pins one client to one pod; None spreads again.
fn session_affinity(cluster: &Cluster, client: &str, web: &BTreeMap<String, (String, String)>) {
    let url = format!("http://{}:30080/hostname", cluster.node_ips[0]);
    cluster.kubectl(&[
        "patch",
        "svc",
        "web",
        "-p",
        r#"{"spec":{"sessionAffinity":"ClientIP"}}"#,
    ]);
    eventually("30 requests hit one pod", Duration::from_secs(5), || {
        let seen = tally(30, || curl(client, &url));
        (seen.len() == 1 && web.contains_key(seen.keys().next().unwrap())).then_some(())
    });
    cluster.kubectl(&[
        "patch",
        "svc",
        "web",
        "-p",
        r#"{"spec":{"sessionAffinity":"None"}}"#,
    ]);
    eventually("requests spread again", Duration::from_secs(5), || {
        let seen = tally(30, || curl(client, &url));
        (keys(&seen) == names(web)).then_some(())
    });
}

/// Local: the client address is kept, only nodes with a local endpoint serve,
/// the health check node port says so. Cluster: every node serves, masqueraded.
fn external_traffic_policy(cluster: &Cluster, client: &str) {
    let np = node_port(cluster, "be-local", 0);
    let hc: u16 = jsonpath(cluster, &["svc", "be-local"], "{.spec.healthCheckNodePort}")
        .parse()
        .unwrap();
    let client_ip = "192.168.77.100:";
    for (i, want) in [(0, "be1"), (1, "be2")] {
        let ip = &cluster.node_ips[i];
        let who = eventually(
            &format!("Local NodePort on {ip}"),
            Duration::from_secs(10),
            || curl(client, &format!("http://{ip}:{np}/hostname")),
        );
        assert_eq!(
            who, want,
            "a Local NodePort answers from the node's own pod"
        );
        let seen = curl(client, &format!("http://{ip}:{np}/clientip")).unwrap_or_default();
        assert!(
            seen.starts_with(client_ip),
            "Local keeps the client address, saw {seen:?}"
        );
        let h = curl_in(
            client,
            &format!("http://{ip}:{hc}/"),
            Duration::from_secs(2),
        );
        assert_eq!(h.status, 200, "health check on {ip}: {h:?}");
        assert!(
            h.body.contains(r#""localEndpoints":1"#),
            "health check body {h:?}"
        );
    }
    let third = &cluster.node_ips[2];
    let h = curl_in(
        client,
        &format!("http://{third}:{hc}/"),
        Duration::from_secs(2),
    );
    assert_eq!(
        h.status, 503,
        "health check on a node without endpoints: {h:?}"
    );
    assert!(
        h.body.contains(r#""localEndpoints":0"#),
        "health check body {h:?}"
    );
    let c = curl_in(
        client,
        &format!("http://{third}:{np}/hostname"),
        Duration::from_secs(1),
    );
    assert_ne!(
        c.code, 0,
        "a node without local endpoints must not serve a Local NodePort: {c:?}"
    );

    let lb = eventually("LB IP of be-local", Duration::from_secs(10), || {
        let ip = jsonpath(
            cluster,
            &["svc", "be-local"],
            "{.status.loadBalancer.ingress[0].ip}",
        );
        (!ip.is_empty()).then_some(ip)
    });
    let seen = eventually("LB IP answers", Duration::from_secs(10), || {
        curl(client, &format!("http://{lb}/clientip"))
    });
    assert!(
        seen.starts_with(client_ip),
        "Local LB keeps the client address, saw {seen:?}"
    );

    for ip in &cluster.node_ips {
        let seen = curl(client, &format!("http://{ip}:30080/clientip")).unwrap_or_default();
        assert!(
            !seen.is_empty() && !seen.starts_with(client_ip),
            "Cluster policy masquerades: {ip} -> {seen:?}"
        );
    }
}

/// internalTrafficPolicy Local: pods reach only their own node's endpoint, and
/// nothing from a node without one.
fn internal_traffic_policy(cluster: &Cluster, pods: &[(String, String)]) {
    let cip = cluster_ip(cluster, "be-itp");
    let url = format!("http://{cip}/hostname");
    for (i, want) in [(0, "be1"), (1, "be2")] {
        let ns = &pods[i].0;
        eventually(&format!("{url} from {ns}"), Duration::from_secs(10), || {
            curl(ns, &url)
        });
        let seen = tally(10, || curl(ns, &url));
        assert_eq!(
            keys(&seen),
            vec![want.to_string()],
            "ITP Local from {ns}: {seen:?}"
        );
    }
    let c = curl_in(&pods[2].0, &url, Duration::from_secs(1));
    assert_ne!(c.code, 0, "ITP Local with no endpoint on the node: {c:?}");
}

/// loadBalancerSourceRanges lets the listed client in and keeps another out.
fn source_ranges(cluster: &Cluster, client: &str) {
    let other = cluster.add_lan_client(101);
    cluster.apply_yaml(
        "apiVersion: v1\nkind: Service\nmetadata: {name: fw}\nspec:\n  type: LoadBalancer\n  loadBalancerSourceRanges: [192.168.77.100/32]\n  selector: {app: be}\n  ports:\n  - {port: 80, targetPort: http}\n",
    );
    let lb = eventually("LB IP of fw", Duration::from_secs(10), || {
        let ip = jsonpath(
            cluster,
            &["svc", "fw"],
            "{.status.loadBalancer.ingress[0].ip}",
        );
        (!ip.is_empty()).then_some(ip)
    });
    let url = format!("http://{lb}/hostname");
    eventually("the listed client gets in", Duration::from_secs(10), || {
        curl(client, &url)
    });
    let c = curl_in(&other.ns, &url, Duration::from_secs(1));
    assert_ne!(
        c.code, 0,
        "a client outside loadBalancerSourceRanges got in: {c:?}"
    );
    cluster.kubectl(&[
        "patch",
        "svc",
        "fw",
        "-p",
        r#"{"spec":{"loadBalancerSourceRanges":["192.168.77.101/32"]}}"#,
    ]);
    let t0 = Instant::now();
    within("the other client gets in", t0, ONE_SECOND, || {
        curl_quick(&other.ns, &url).is_some()
    });
    let c = curl_in(client, &url, Duration::from_secs(1));
    assert_ne!(
        c.code, 0,
        "the first client is now outside the ranges: {c:?}"
    );
}

/// ClusterIP -> NodePort -> LoadBalancer -> ClusterIP and a port change, each
/// visible in traffic within a second.
fn type_and_port_changes(cluster: &Cluster, client: &str, pod_ns: &str) {
    let cip = cluster_ip(cluster, "morph");
    eventually("morph by ClusterIP", Duration::from_secs(10), || {
        curl(pod_ns, &format!("http://{cip}/hostname"))
    });
    let node = cluster.node_ips[1].clone();

    cluster.kubectl(&[
        "patch",
        "svc",
        "morph",
        "-p",
        r#"{"spec":{"type":"NodePort"}}"#,
    ]);
    let t0 = Instant::now();
    let np = node_port(cluster, "morph", 0);
    let np_url = format!("http://{node}:{np}/hostname");
    within("ClusterIP -> NodePort", t0, ONE_SECOND, || {
        curl_quick(client, &np_url).is_some()
    });

    cluster.kubectl(&[
        "patch",
        "svc",
        "morph",
        "-p",
        r#"{"spec":{"type":"LoadBalancer"}}"#,
    ]);
    let lb = eventually("LB IP of morph", Duration::from_secs(10), || {
        let ip = jsonpath(
            cluster,
            &["svc", "morph"],
            "{.status.loadBalancer.ingress[0].ip}",
        );
        (!ip.is_empty()).then_some(ip)
    });
    let t1 = Instant::now();
    let lb_url = format!("http://{lb}/hostname");
    within(
        "NodePort -> LoadBalancer (from the IP's assignment)",
        t1,
        ONE_SECOND,
        || curl_quick(client, &lb_url).is_some(),
    );

    cluster.kubectl(&[
        "patch",
        "svc",
        "morph",
        "-p",
        r#"{"spec":{"type":"ClusterIP"}}"#,
    ]);
    let t2 = Instant::now();
    let gone = |url: &str| curl_in(client, url, Duration::from_millis(250)).code != 0;
    within(
        "LoadBalancer -> ClusterIP: NodePort closed",
        t2,
        ONE_SECOND,
        || gone(&np_url),
    );
    within(
        "LoadBalancer -> ClusterIP: LB IP closed",
        t2,
        ONE_SECOND,
        || gone(&lb_url),
    );
    assert!(
        curl(pod_ns, &format!("http://{cip}/hostname")).is_some(),
        "ClusterIP still serves"
    );

    cluster.kubectl(&[
        "patch",
        "svc",
        "morph",
        "--type=json",
        "-p",
        r#"[{"op":"replace","path":"/spec/ports/0/port","value":81}]"#,
    ]);
    let t3 = Instant::now();
    within("port 80 -> 81", t3, ONE_SECOND, || {
        curl_quick(pod_ns, &format!("http://{cip}:81/hostname")).is_some()
    });
    within("old port closed", t3, ONE_SECOND, || {
        curl_in(
            pod_ns,
            &format!("http://{cip}/hostname"),
            Duration::from_millis(300),
        )
        .code
            != 0
    });
}

/// Scaling the Deployment and deleting a pod show in traffic within a second
/// of the endpoint change.
fn scale_and_delete(cluster: &Cluster, client: &str) {
    let url = format!("http://{}:30080/hostname", cluster.node_ips[2]);
    let before = wait_ready(cluster, "app=web", 2);
    cluster.kubectl(&["scale", "deployment", "web", "--replicas=3"]);
    let after = wait_ready(cluster, "app=web", 3);
    let new_pod = after
        .keys()
        .find(|k| !before.contains_key(*k))
        .unwrap()
        .clone();
    // From the moment the EndpointSlice lists the new pod ready.
    let new_ip = after[&new_pod].0.clone();
    eventually("slice lists the new pod", Duration::from_secs(10), || {
        let out = cluster.kubectl(&[
            "get",
            "endpointslices",
            "-l",
            "kubernetes.io/service-name=web",
            "-o",
            r#"jsonpath={range .items[*].endpoints[?(@.conditions.ready==true)]}{.addresses[0]}{"\n"}{end}"#,
        ]);
        out.lines().any(|l| l == new_ip).then_some(())
    });
    let t0 = Instant::now();
    within("scaled-up pod receives traffic", t0, ONE_SECOND, || {
        curl_quick(client, &url).as_deref() == Some(&new_pod)
    });

    let victim = before.keys().next().unwrap().clone();
    cluster.kubectl(&["delete", "pod", &victim, "--wait=false"]);
    let t1 = Instant::now();
    // A clean batch (all answered, none by the deleted pod) must start within a second.
    loop {
        let start = t1.elapsed();
        let seen = tally(20, || curl(client, &url));
        if !seen.contains_key(&victim) && !seen.contains_key("<failed>") {
            eprintln!("deleted pod out of traffic: {start:?}");
            break;
        }
        assert!(
            start <= ONE_SECOND,
            "deleted pod {victim} still in traffic after {start:?}: {seen:?}"
        );
    }
}

/// `--nodeport-addresses` limits the node addresses serving NodePorts; killing
/// a node's agent leaves an open connection through its NodePort working, and
/// the restarted agent converges to the very same ruleset.
#[test]
fn nodeport_addresses_and_agent_restart() {
    let cluster = Cluster::up(Layout::Nodes(1));
    let node1 = cluster.node_name(1);
    cluster.apply_yaml(&format!(
        "{}---\napiVersion: v1\nkind: Service\nmetadata: {{name: keep}}\nspec:\n  type: NodePort\n  selector: {{app: keep}}\n  ports:\n  - {{port: 80, targetPort: http}}\n",
        netexec_pod("keep1", "app: keep", &node1)
    ));
    wait_ready(&cluster, "app=keep", 1);
    // The node under test runs no pods, so its restart changes no endpoint.
    // It serves NodePorts on its InternalIP only (`--nodeport-addresses`).
    let mut extra = cluster.add_node_with_args(2, &["--nodeport-addresses", "192.168.77.12/32"]);
    // A second address on each node: node 1 (no flag) serves NodePorts on it,
    // the extra node does not.
    for (ns, addr) in [
        (cluster.node_ns(1), "192.168.77.51/24"),
        (extra.ns.clone(), "192.168.77.52/24"),
    ] {
        let out = support::lan::ns_exec(&ns, &["ip", "addr", "add", addr, "dev", "eth0"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    eventually("the extra node is Ready", Duration::from_secs(60), || {
        let s = jsonpath(
            &cluster,
            &["node", &extra.ns],
            r#"{.status.conditions[?(@.type=="Ready")].status}"#,
        );
        (s == "True").then_some(())
    });
    let np = node_port(&cluster, "keep", 0);
    let client = cluster.client_ns.clone();
    let url = format!("http://{}:{np}/hostname", extra.ip);
    eventually(
        "NodePort on the extra node",
        Duration::from_secs(20),
        || curl(&client, &url),
    );

    let all = format!("http://192.168.77.51:{np}/hostname");
    eventually(
        "NodePort on node 1's second address",
        Duration::from_secs(10),
        || curl(&client, &all),
    );
    let c = curl_in(
        &client,
        &format!("http://192.168.77.52:{np}/hostname"),
        Duration::from_secs(1),
    );
    assert_ne!(
        c.code, 0,
        "--nodeport-addresses excludes the second address: {c:?}"
    );

    let mut conn = connect_in(&client, format!("{}:{np}", extra.ip));
    assert_eq!(http_get(&mut conn, "/hostname").unwrap(), "keep1");
    let log = extra.log_path();
    let syncs = || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .matches("proxy sync")
            .count()
    };
    // Let the first agent settle so the ruleset compared is its final one.
    let before = eventually("a stable ruleset", Duration::from_secs(10), || {
        let a = ruleset(&extra.ns);
        std::thread::sleep(Duration::from_millis(300));
        (ruleset(&extra.ns) == a).then_some(a)
    });

    extra.kill_agent();
    assert_eq!(
        http_get(&mut conn, "/hostname").unwrap(),
        "keep1",
        "connection with the agent dead"
    );
    let synced_before = syncs();
    extra.start();
    eventually(
        "the restarted agent synced",
        Duration::from_secs(30),
        || (syncs() > synced_before).then_some(()),
    );
    assert_eq!(
        http_get(&mut conn, "/hostname").unwrap(),
        "keep1",
        "connection after the restart"
    );
    let after = ruleset(&extra.ns);
    assert_eq!(before, after, "the restarted agent changed the ruleset");
    eprintln!(
        "ruleset of {} lines unchanged across the agent restart",
        after.lines().count()
    );
    assert_eq!(
        curl(&client, &url).as_deref(),
        Some("keep1"),
        "new connections after the restart"
    );
}

/// Single node: NodePort balanced over both pods, ClusterIP from a pod, REJECT
/// without endpoints.
#[test]
fn services_on_a_single_node() {
    let cluster = Cluster::up(Layout::Single);
    let node = cluster.node_name(1);
    cluster.apply_yaml(&format!(
        "{}---\n{}---\n{}---\napiVersion: v1\nkind: Service\nmetadata: {{name: be}}\nspec:\n  type: NodePort\n  selector: {{app: be}}\n  ports:\n  - {{port: 80, targetPort: http}}\n---\napiVersion: v1\nkind: Service\nmetadata: {{name: empty}}\nspec:\n  selector: {{app: nothing}}\n  ports:\n  - {{port: 80}}\n",
        netexec_pod("be1", "app: be", &node),
        netexec_pod("be2", "app: be", &node),
        netexec_pod("cl1", "role: client", &node),
    ));
    let be = wait_ready(&cluster, "app=be", 2);
    let cl = wait_ready(&cluster, "role=client", 1);
    let pod_ns = eventually("client pod netns", SHORT, || cluster.pod_net(&cl["cl1"].0));
    let np = node_port(&cluster, "be", 0);
    let url = format!("http://{}:{np}/hostname", cluster.node_ips[0]);
    eventually("NodePort answers", Duration::from_secs(10), || {
        curl(&cluster.client_ns, &url)
    });
    let seen = tally(60, || curl(&cluster.client_ns, &url));
    assert_eq!(keys(&seen), names(&be), "60 requests to {url}: {seen:?}");

    let cip = cluster_ip(&cluster, "be");
    let seen = tally(30, || curl(&pod_ns, &format!("http://{cip}/hostname")));
    assert_eq!(keys(&seen), names(&be), "ClusterIP from a pod: {seen:?}");

    let url = format!("http://{}/", cluster_ip(&cluster, "empty"));
    eventually(
        "ClusterIP without endpoints programmed",
        Duration::from_secs(10),
        || (curl_in(&pod_ns, &url, Duration::from_secs(3)).code == 7).then_some(()),
    );
    refused_at_once(&pod_ns, &url);
}
