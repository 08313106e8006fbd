//! The node agent end to end on a real `portico up`: pods as processes with
//! their own IP, hostname, resolv.conf and Service variables; restarts,
//! replacement and readiness; `kubectl logs`; three nodes on a LAN; and Ctrl-C leaving
//! nothing behind, with a restart on the same data dir bringing it all back.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use support::node::{descendants, ProcId};
use support::pods::{pod_row, pods, slice_endpoints, wait_ready, PodView};
use support::{eventually, example, Cluster, Layout};

/// Applies the seed's nginx Deployment and returns its two pods once Running
/// and Ready, checking each answers with nginx's page from the node.
fn nginx_runs(c: &Cluster) -> Vec<PodView> {
    let start = Instant::now();
    c.apply_file(&example("nginx-deployment.yaml"));
    let pods = wait_ready(c, "app=nginx", 2, Duration::from_secs(10));
    eprintln!("nginx pods Running and Ready after {:?}", start.elapsed());
    let ips: BTreeSet<&str> = pods.iter().map(|p| p.ip.as_str()).collect();
    assert_eq!(ips.len(), 2, "distinct pod IPs: {pods:?}");
    for p in &pods {
        assert!(
            p.ip.starts_with("10.244."),
            "pod IP from the podCIDR: {p:?}"
        );
        let row = pod_row(c, &p.name);
        assert_eq!(
            row[1..3],
            ["1/1", "Running"],
            "kubectl get pod {}: {row:?}",
            p.name
        );
        let url = format!("http://{}/", p.ip);
        let body = eventually(
            &format!("nginx at {url} from the node"),
            Duration::from_secs(5),
            || c.node_curl(1, &url),
        );
        assert!(body.contains("Welcome to nginx!"), "{url} answered: {body}");
    }
    pods
}

/// The agnhost netexec server answers /hostname with its pod's name; a pod
/// sees the cluster's resolv.conf, its own hostname and the variables of a
/// Service created before it.
fn pod_identity_and_environment(c: &Cluster) {
    c.apply_file(&example("nginx-service-nodeport.yaml"));
    let cluster_ip = c.kubectl(&[
        "get",
        "svc",
        "nginx-service-nodeport",
        "-o",
        "jsonpath={.spec.clusterIP}",
    ]);
    c.apply_yaml(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: netexec
  labels: {app: netexec}
spec:
  containers:
  - name: agnhost
    image: registry.k8s.io/e2e-test-images/agnhost:2.53
    args: ["netexec", "--http-port=8080"]
---
apiVersion: v1
kind: Pod
metadata:
  name: envdump
  labels: {app: envdump}
spec:
  containers:
  - name: sh
    image: busybox:1.36
    command: ["sh", "-c", "cat /etc/resolv.conf; echo hostname=$(hostname); env; exec sleep 3600"]
"#,
    );
    let netexec = wait_ready(c, "app=netexec", 1, Duration::from_secs(10)).remove(0);
    let url = format!("http://{}:8080/hostname", netexec.ip);
    let name = eventually(
        &format!("{url} from the node"),
        Duration::from_secs(5),
        || c.node_curl(1, &url),
    );
    assert_eq!(name.trim(), "netexec", "{url}");

    wait_ready(c, "app=envdump", 1, Duration::from_secs(10));
    let out = eventually("kubectl logs envdump", Duration::from_secs(5), || {
        kubectl_logs(c, &["envdump"]).filter(|o| o.contains("NGINX_SERVICE_NODEPORT_SERVICE_HOST"))
    });
    let resolv: Vec<&str> = out
        .lines()
        .take_while(|l| !l.starts_with("hostname="))
        .collect();
    assert_eq!(
        resolv,
        [
            "search default.svc.cluster.local svc.cluster.local cluster.local",
            "nameserver 10.96.0.10",
            "options ndots:5"
        ],
        "the pod's /etc/resolv.conf:\n{out}"
    );
    assert!(
        out.lines().any(|l| l == "hostname=envdump"),
        "hostname in the pod:\n{out}"
    );
    let host = format!("NGINX_SERVICE_NODEPORT_SERVICE_HOST={cluster_ip}");
    assert!(
        out.lines().any(|l| l == host),
        "{host} in the pod's env:\n{out}"
    );
    assert!(
        out.lines()
            .any(|l| l == "NGINX_SERVICE_NODEPORT_SERVICE_PORT=80"),
        "env:\n{out}"
    );
}

/// `kubectl logs ARGS`' output, or None while it fails.
fn kubectl_logs(c: &Cluster, args: &[&str]) -> Option<String> {
    let mut argv = vec!["logs"];
    argv.extend_from_slice(args);
    let out = c.kubectl_output(None, &argv, None);
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).to_string())
}

/// `kubectl logs` prints a container's output, through the API server's
/// `pods/log` to the agent of the pod's node (`node`: pinned there);
/// `--tail=1` prints only the last line.
fn kubectl_logs_prints_output(c: &Cluster, node: Option<&str>) {
    let node_line = node
        .map(|n| format!("  nodeName: {n}\n"))
        .unwrap_or_default();
    c.apply_yaml(&format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: hello
  labels: {{app: hello}}
spec:
{node_line}  containers:
  - name: sh
    image: busybox
    command: ["sh", "-c", "echo line-one; echo hello-from-pod; sleep 3600"]
"#
    ));
    let pod = wait_ready(c, "app=hello", 1, Duration::from_secs(10)).remove(0);
    if let Some(n) = node {
        assert_eq!(pod.node, n, "{pod:?}");
    }
    let out = eventually("kubectl logs hello", Duration::from_secs(5), || {
        kubectl_logs(c, &["hello"]).filter(|o| o.contains("hello-from-pod"))
    });
    assert_eq!(out, "line-one\nhello-from-pod\n", "kubectl logs hello");
    assert_eq!(
        c.kubectl(&["logs", "hello", "--tail=1"]),
        "hello-from-pod\n",
        "kubectl logs hello --tail=1"
    );
    assert_eq!(
        c.kubectl(&["logs", "hello", "-c", "sh"]),
        "line-one\nhello-from-pod\n",
        "kubectl logs hello -c sh"
    );
    // Follow streams: what is there arrives before the request ends (here
    // cut by kubectl's own timeout, the pod never exits).
    let follow = c.kubectl_output(None, &["logs", "hello", "-f", "--request-timeout=2s"], None);
    assert_eq!(
        String::from_utf8_lossy(&follow.stdout),
        "line-one\nhello-from-pod\n",
        "kubectl logs -f hello: {}",
        String::from_utf8_lossy(&follow.stderr)
    );
    c.kubectl(&["delete", "pod", "hello", "--timeout=30s"]);
}

/// Killing a container's process restarts it in the same pod: RESTARTS 1,
/// same pod IP, a new process.
fn killed_container_restarts(c: &Cluster) {
    let pod = wait_ready(c, "app=envdump", 1, Duration::from_secs(5)).remove(0);
    let before = c.pod_pids(&pod.ip);
    assert_eq!(
        before.len(),
        1,
        "one process in pod {}: {before:?}",
        pod.name
    );
    let killed = ProcId::of(before[0]).unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(killed.pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let after = eventually(
        "the pod restarted its container",
        Duration::from_secs(15),
        || {
            let p = pods(c, "app=envdump");
            (p.len() == 1 && p[0].restarts == 1 && p[0].ready).then(|| p[0].clone())
        },
    );
    assert_eq!(after.ip, pod.ip, "a container restart keeps the pod's IP");
    let row = pod_row(c, &pod.name);
    assert_eq!(
        row[1..4],
        ["1/1", "Running", "1"],
        "kubectl get pod: {row:?}"
    );
    let now = eventually("a new container process", Duration::from_secs(5), || {
        let p = c.pod_pids(&pod.ip);
        (!p.is_empty() && !p.contains(&before[0])).then_some(p)
    });
    assert!(
        !killed.alive(),
        "killed process {} is gone; now {now:?}",
        killed.pid
    );
}

/// Deleting a pod of the Deployment brings a replacement with a new IP.
fn deleted_pod_is_replaced(c: &Cluster, nginx: &[PodView]) {
    let victim = &nginx[0];
    c.kubectl(&["delete", "pod", &victim.name, "--timeout=40s"]);
    let now = eventually("a replacement nginx pod", Duration::from_secs(20), || {
        let p = pods(c, "app=nginx");
        let ok = p.len() == 2
            && p.iter()
                .all(|p| p.phase == "Running" && p.ready && !p.ip.is_empty())
            && p.iter().all(|p| p.name != victim.name);
        ok.then_some(p)
    });
    let new = now.iter().find(|p| p.name != nginx[1].name).unwrap();
    assert_ne!(
        new.ip, victim.ip,
        "the replacement {} got a new IP",
        new.name
    );
    let url = format!("http://{}/", new.ip);
    let body = eventually(&format!("nginx at {url}"), Duration::from_secs(5), || {
        c.node_curl(1, &url)
    });
    assert!(body.contains("Welcome to nginx!"), "{url} answered: {body}");
}

/// A readiness probe that starts failing turns the pod not Ready and takes it
/// out of its Service's ready endpoints.
fn failing_readiness_probe(c: &Cluster) {
    let flag = c.dir.path().join("ready-flag");
    std::fs::write(&flag, "ok\n").unwrap();
    c.apply_yaml(&format!(
        r#"apiVersion: v1
kind: Service
metadata:
  name: probed
spec:
  selector: {{app: probed}}
  ports: [{{port: 8080}}]
---
apiVersion: v1
kind: Pod
metadata:
  name: probed
  labels: {{app: probed}}
spec:
  containers:
  - name: agnhost
    image: registry.k8s.io/e2e-test-images/agnhost:2.53
    args: ["netexec", "--http-port=8080"]
    readinessProbe:
      exec:
        command: ["cat", "{}"]
      periodSeconds: 1
      failureThreshold: 1
"#,
        flag.display()
    ));
    let pod = wait_ready(c, "app=probed", 1, Duration::from_secs(10)).remove(0);
    eventually(
        "the pod is a ready endpoint of Service probed",
        Duration::from_secs(10),
        || {
            slice_endpoints(c, "probed")
                .contains(&(pod.ip.clone(), true))
                .then_some(())
        },
    );
    std::fs::remove_file(&flag).unwrap();
    eventually("the pod turns not Ready", Duration::from_secs(10), || {
        let row = pod_row(c, "probed");
        (row[1..3] == ["0/1", "Running"]).then_some(())
    });
    eventually(
        "the pod leaves the ready endpoints",
        Duration::from_secs(10),
        || {
            let eps = slice_endpoints(c, "probed");
            (!eps.contains(&(pod.ip.clone(), true))).then_some(())
        },
    );
    // The Endpoints object moves it to notReadyAddresses, which the
    // ENDPOINTS column does not list.
    let (ready, not_ready) = eventually(
        "Endpoints lists the pod as not ready",
        Duration::from_secs(10),
        || {
            let ready = c.kubectl(&[
                "get",
                "endpoints",
                "probed",
                "-o",
                "jsonpath={.subsets[*].addresses[*].ip}",
            ]);
            let not_ready = c.kubectl(&[
                "get",
                "endpoints",
                "probed",
                "-o",
                "jsonpath={.subsets[*].notReadyAddresses[*].ip}",
            ]);
            not_ready.contains(&pod.ip).then_some((ready, not_ready))
        },
    );
    assert!(
        !ready.contains(&pod.ip),
        "ready {ready:?}, not ready {not_ready:?}"
    );
    let ep = c.kubectl(&["get", "endpoints", "probed", "--no-headers"]);
    assert!(!ep.contains(&pod.ip), "kubectl get endpoints probed: {ep}");
}

/// An image the runtime cannot run leaves the container Waiting with a reason
/// (the STATUS column) and a message, and the pod Pending; nothing crashes.
fn unsupported_image_waits(c: &Cluster) {
    c.apply_yaml(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: unrunnable
  labels: {app: unrunnable}
spec:
  containers:
  - name: app
    image: quay.io/example/some-database:7
"#,
    );
    let waiting = eventually(
        "the container is Waiting with a reason",
        Duration::from_secs(10),
        || {
            let out = c.kubectl(&[
            "get",
            "pod",
            "unrunnable",
            "-o",
            "jsonpath={.status.phase}|{.status.containerStatuses[0].state.waiting.reason}|{.status.containerStatuses[0].state.waiting.message}",
        ]);
            let parts: Vec<String> = out.split('|').map(str::to_string).collect();
            (parts.len() == 3 && !parts[1].is_empty()).then_some(parts)
        },
    );
    assert_eq!(waiting[0], "Pending", "{waiting:?}");
    assert!(
        waiting[2].contains("quay.io/example/some-database:7"),
        "message names the image: {waiting:?}"
    );
    let row = pod_row(c, "unrunnable");
    assert_eq!(
        row[1..3],
        ["0/1".to_string(), waiting[1].clone()],
        "kubectl get pod: {row:?}"
    );
    c.kubectl(&["delete", "pod", "unrunnable", "--timeout=30s"]);
}

#[test]
fn single_node_runs_pods_like_kubernetes() {
    let c = Cluster::up(Layout::Single);
    let nginx = nginx_runs(&c);
    pod_identity_and_environment(&c);
    kubectl_logs_prints_output(&c, None);
    killed_container_restarts(&c);
    deleted_pod_is_replaced(&c, &nginx);
    failing_readiness_probe(&c);
    unsupported_image_waits(&c);
    assert!(
        !c.log().contains("falling back to ip"),
        "a pod sandbox fell back to `ip`:\n{}",
        c.log()
    );
}

const SPREAD: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: spread
spec:
  replicas: 6
  selector:
    matchLabels: {app: spread}
  template:
    metadata:
      labels: {app: spread}
    spec:
      containers:
      - name: agnhost
        image: registry.k8s.io/e2e-test-images/agnhost:2.53
        args: ["netexec", "--http-port=8080"]
---
apiVersion: v1
kind: Service
metadata:
  name: spread
spec:
  type: NodePort
  selector: {app: spread}
  ports: [{port: 8080}]
"#;

#[test]
fn three_nodes_route_pods_clean_up_and_come_back() {
    let mut c = Cluster::up(Layout::Nodes(3));

    let nodes = c.kubectl(&["get", "nodes", "-o", "wide", "--no-headers"]);
    let rows: Vec<Vec<&str>> = nodes
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), 3, "{nodes}");
    let internal: BTreeSet<&str> = rows.iter().map(|r| r[5]).collect();
    let want: BTreeSet<&str> = c.node_ips.iter().map(String::as_str).collect();
    assert_eq!(internal, want, "INTERNAL-IP column:\n{nodes}");
    assert!(rows.iter().all(|r| r[1] == "Ready"), "{nodes}");

    c.apply_yaml(SPREAD);
    let spread = wait_ready(&c, "app=spread", 6, Duration::from_secs(30));
    // Agents in node namespaces make pod sandboxes over rtnetlink, not `ip`.
    assert!(
        !c.log().contains("falling back to ip"),
        "a pod sandbox fell back to `ip`:\n{}",
        c.log()
    );
    // The scheduler spreads the replicas of one owner: 2 per node.
    let mut per_node: BTreeMap<&str, usize> = BTreeMap::new();
    for p in &spread {
        *per_node.entry(p.node.as_str()).or_default() += 1;
    }
    let names: Vec<String> = (1..=3).map(|i| c.node_name(i)).collect();
    let want: BTreeMap<&str, usize> = names.iter().map(|n| (n.as_str(), 2)).collect();
    assert_eq!(per_node, want, "6 replicas over 3 nodes");

    // Pod to pod across nodes, by pod IP.
    let on = |i: usize| {
        spread
            .iter()
            .find(|p| p.node == c.node_name(i))
            .unwrap_or_else(|| panic!("no spread pod on node {i}: {per_node:?}"))
    };
    let (from, to) = (on(1), on(3));
    let url = format!("http://{}:8080/hostname", to.ip);
    let answer = eventually(
        &format!("{url} from pod {}", from.name),
        Duration::from_secs(10),
        || {
            let out = c.exec_in_pod_net(&from.ip, &["curl", "-s", "--max-time", "3", &url]);
            out.status
                .success()
                .then(|| String::from_utf8_lossy(&out.stdout).to_string())
        },
    );
    assert_eq!(answer.trim(), to.name);

    // `kubectl logs` of a pod on node2: the API server reaches that node's
    // agent on the LAN.
    kubectl_logs_prints_output(&c, Some(&c.node_name(2)));

    // The outside client reaches every node, but no pod directly.
    let node_port = c.kubectl(&[
        "get",
        "svc",
        "spread",
        "-o",
        "jsonpath={.spec.ports[0].nodePort}",
    ]);
    let names: BTreeSet<&str> = spread.iter().map(|p| p.name.as_str()).collect();
    for ip in &c.node_ips {
        let url = format!("http://{ip}:{node_port}/hostname");
        let got = eventually(
            &format!("{url} from the client"),
            Duration::from_secs(10),
            || c.client_curl(&url),
        );
        assert!(
            names.contains(got.trim()),
            "{url} answered {got:?}, not one of {names:?}"
        );
    }
    for p in &spread {
        let url = format!("http://{}:8080/hostname", p.ip);
        assert_eq!(
            c.client_curl(&url),
            None,
            "the client must not reach pod IP {}",
            p.ip
        );
    }

    // Ctrl-C (SIGINT): the agents stop their pods and every namespace goes away.
    let pod_pids: Vec<i32> = spread.iter().flat_map(|p| c.pod_pids(&p.ip)).collect();
    assert_eq!(pod_pids.len(), 6, "one process per pod: {pod_pids:?}");
    let procs = started_processes(&c);
    assert!(!c.leftover_namespaces().is_empty());
    let status = c.stop_with(nix::sys::signal::Signal::SIGINT).unwrap();
    assert!(status.success(), "portico up exited with {status}");
    assert_eq!(
        c.leftover_namespaces(),
        Vec::<String>::new(),
        "namespaces left behind"
    );
    let left: Vec<ProcId> = procs.into_iter().filter(ProcId::alive).collect();
    assert!(
        left.is_empty(),
        "processes left behind (agents, containers): {left:?}"
    );

    // The same data dir brings the nodes, the Deployment and its pods back.
    c.restart();
    let back = eventually(
        "6 spread pods running again",
        Duration::from_secs(30),
        || {
            let p = pods(&c, "app=spread");
            let ok = p.len() == 6
                && p.iter().all(|p| {
                    p.phase == "Running"
                        && p.ready
                        && c.exec_in_node(
                            1,
                            &[
                                "curl",
                                "-s",
                                "--max-time",
                                "2",
                                &format!("http://{}:8080/hostname", p.ip),
                            ],
                        )
                        .stdout
                            == p.name.as_bytes()
                });
            ok.then_some(p)
        },
    );
    let back_names: BTreeSet<&str> = back.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(back_names, names, "the same pods are back");
}

/// Every process `portico up` started, directly or not (agents, containers).
fn started_processes(c: &Cluster) -> Vec<ProcId> {
    let procs: Vec<ProcId> = descendants(c.up_pid().unwrap() as i32)
        .into_iter()
        .filter_map(ProcId::of)
        .collect();
    assert!(!procs.is_empty(), "portico up runs processes");
    procs
}

/// Lines of `ip <args>` run inside node 1, for comparing kernel state.
fn node_state(c: &Cluster, args: &[&str]) -> String {
    let mut cmd = vec!["ip"];
    cmd.extend_from_slice(args);
    let out = c.exec_in_node(1, &cmd);
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[test]
fn ctrl_c_cleans_up_and_the_same_data_dir_brings_the_cluster_back() {
    let mut c = Cluster::up(Layout::Single);
    c.apply_file(&example("nginx-service-nodeport.yaml"));
    let before = nginx_runs(&c);
    let svc_before = c.kubectl(&["get", "svc", "nginx-service-nodeport", "--no-headers"]);
    let pod_pids: Vec<i32> = before.iter().flat_map(|p| c.pod_pids(&p.ip)).collect();
    assert!(
        pod_pids.len() >= 2,
        "nginx processes of both pods: {pod_pids:?}"
    );
    let procs = started_processes(&c);
    assert_eq!(c.leftover_namespaces().len(), 2, "one namespace per pod");
    assert!(
        node_state(&c, &["-o", "link"]).contains("portico0"),
        "the pod bridge exists"
    );

    let status = c.stop().unwrap();
    assert!(status.success(), "portico up exited with {status}");
    assert_eq!(
        c.leftover_namespaces(),
        Vec::<String>::new(),
        "pod namespaces left behind"
    );
    let left: Vec<ProcId> = procs.into_iter().filter(ProcId::alive).collect();
    assert!(left.is_empty(), "processes left behind: {left:?}");
    // The node namespace is the test's: only what it had before remains.
    let links: Vec<String> = node_state(&c, &["-br", "link"])
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(|n| n.split('@').next().unwrap_or(n).to_string())
        .collect();
    assert_eq!(links, ["lo", "eth0"], "interfaces left in the node");
    let addrs = node_state(&c, &["-4", "-o", "addr"]);
    assert!(
        !addrs.contains("10.96.0.10"),
        "the node-local DNS address is left behind:\n{addrs}"
    );
    let routes = node_state(&c, &["-4", "route"]);
    assert_eq!(
        routes.lines().count(),
        2,
        "only the node's own routes remain:\n{routes}"
    );
    let nft = c.exec_in_node(1, &["nft", "list", "ruleset"]);
    assert!(nft.status.success());
    assert_eq!(
        String::from_utf8_lossy(&nft.stdout).trim(),
        "",
        "nftables rules left in the node"
    );

    c.restart();
    let svc_after = c.kubectl(&["get", "svc", "nginx-service-nodeport", "--no-headers"]);
    let cols = |s: &str| {
        s.split_whitespace()
            .take(5)
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        cols(&svc_after),
        cols(&svc_before),
        "the Service is back unchanged"
    );
    let names_before: BTreeSet<&str> = before.iter().map(|p| p.name.as_str()).collect();
    // The pods come back (same objects, recreated by the agent): each listed IP
    // answers with nginx's page again.
    let after = eventually("nginx pods running again", Duration::from_secs(30), || {
        let p = pods(&c, "app=nginx");
        let ok = p.len() == 2
            && p.iter().all(|p| {
                p.phase == "Running"
                    && p.ready
                    && c.node_curl(1, &format!("http://{}/", p.ip))
                        .is_some_and(|b| b.contains("Welcome to nginx!"))
            });
        ok.then_some(p)
    });
    let names_after: BTreeSet<&str> = after.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names_after, names_before, "the same pods are back");
    let body = eventually(
        "NodePort from the client after restart",
        Duration::from_secs(10),
        || c.client_curl("http://192.168.78.2:30080/"),
    );
    assert!(body.contains("Welcome to nginx!"), "{body}");
}
