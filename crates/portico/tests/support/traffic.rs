//! Traffic helpers for the Service proxy end-to-end tests: agnhost netexec
//! pods and Deployments, pod and Service lookups through kubectl, tallies of
//! which pod answered, deadlines for changes, and raw keep-alive HTTP.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use super::lan::{curl_in, Curl};
use super::{eventually, Cluster};

pub const AGNHOST: &str = "registry.k8s.io/e2e-test-images/agnhost:2.53";
/// What a change may take to show in traffic.
pub const ONE_SECOND: Duration = Duration::from_secs(1);
pub const SHORT: Duration = Duration::from_millis(1500);

/// An agnhost netexec pod pinned to `node` with named ports `http` (8080/TCP)
/// and `udp` (8081/UDP). Pods are pinned so placement (and so traffic policy
/// expectations) is deterministic.
pub fn netexec_pod(name: &str, labels: &str, node: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, labels: {{{labels}}}}}\nspec:\n  nodeName: {node}\n{}",
        netexec_containers("  ")
    )
}

pub fn netexec_containers(indent: &str) -> String {
    let body = format!(
        "containers:\n- name: agnhost\n  image: {AGNHOST}\n  args: [\"netexec\", \"--http-port=8080\", \"--udp-port=8081\"]\n  ports:\n  - {{name: http, containerPort: 8080}}\n  - {{name: udp, containerPort: 8081, protocol: UDP}}\n  readinessProbe:\n    httpGet: {{path: /healthz, port: 8080}}\n    periodSeconds: 1\n"
    );
    body.lines().map(|l| format!("{indent}{l}\n")).collect()
}

/// A Deployment of netexec pods pinned to `node`.
pub fn netexec_deployment(name: &str, replicas: u32, node: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}}}\nspec:\n  replicas: {replicas}\n  selector: {{matchLabels: {{app: {name}}}}}\n  template:\n    metadata: {{labels: {{app: {name}}}}}\n    spec:\n      nodeName: {node}\n{}",
        netexec_containers("      ")
    )
}

/// Running and Ready pods matching `selector`: name -> (pod IP, node).
pub fn ready_pods(cluster: &Cluster, selector: &str) -> BTreeMap<String, (String, String)> {
    let out = cluster.kubectl(&["get", "pods", "-l", selector, "-o", "wide", "--no-headers"]);
    out.lines()
        .map(|l| l.split_whitespace().map(str::to_string).collect::<Vec<_>>())
        .filter(|c| c.len() > 6 && c[1] == "1/1" && c[2] == "Running")
        .map(|c| (c[0].clone(), (c[5].clone(), c[6].clone())))
        .collect()
}

pub fn wait_ready(
    cluster: &Cluster,
    selector: &str,
    n: usize,
) -> BTreeMap<String, (String, String)> {
    eventually(
        &format!("{n} ready pods {selector}"),
        Duration::from_secs(60),
        || {
            let pods = ready_pods(cluster, selector);
            (pods.len() == n).then_some(pods)
        },
    )
}

pub fn jsonpath(cluster: &Cluster, kind_name: &[&str], path: &str) -> String {
    let mut args = vec!["get"];
    args.extend_from_slice(kind_name);
    let expr = format!("jsonpath={path}");
    args.extend_from_slice(&["-o", &expr]);
    cluster.kubectl(&args)
}

pub fn cluster_ip(cluster: &Cluster, svc: &str) -> String {
    jsonpath(cluster, &["svc", svc], "{.spec.clusterIP}")
}

pub fn node_port(cluster: &Cluster, svc: &str, index: usize) -> u16 {
    jsonpath(
        cluster,
        &["svc", svc],
        &format!("{{.spec.ports[{index}].nodePort}}"),
    )
    .parse()
    .unwrap()
}

/// Counts who answered `n` calls of `f` (failures count as "<failed>").
pub fn tally(n: usize, mut f: impl FnMut() -> Option<String>) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for _ in 0..n {
        *m.entry(f().unwrap_or_else(|| "<failed>".to_string()))
            .or_insert(0) += 1;
    }
    m
}

pub fn keys(m: &BTreeMap<String, usize>) -> Vec<String> {
    m.keys().cloned().collect()
}

pub fn names(pods: &BTreeMap<String, (String, String)>) -> Vec<String> {
    pods.keys().cloned().collect()
}

pub fn curl(ns: &str, url: &str) -> Option<String> {
    curl_in(ns, url, Duration::from_secs(2)).ok()
}

/// curl with a short limit, for polling a change that must show within a
/// second: a packet sent before the rule exists may go nowhere.
pub fn curl_quick(ns: &str, url: &str) -> Option<String> {
    curl_in(ns, url, Duration::from_millis(250)).ok()
}

/// Polls `f` until it holds; panics if that took longer than `limit`
/// (measured from `since`). Returns how long it took.
pub fn within(
    what: &str,
    since: Instant,
    limit: Duration,
    mut f: impl FnMut() -> bool,
) -> Duration {
    loop {
        if f() {
            let took = since.elapsed();
            eprintln!("{what}: {took:?}");
            return took;
        }
        assert!(
            since.elapsed() <= limit,
            "{what}: not reflected within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn refused_fast(c: &Curl) -> bool {
    c.code == 7 && c.elapsed < ONE_SECOND
}

/// Connects to `url` from `ns` until one attempt is refused in under a second;
/// every attempt must be refused (never a timeout). The REJECT answers with
/// ICMP port-unreachable, which the kernel rate-limits per peer (a burst of 6,
/// then one a second: `net.ipv4.icmp_ratelimit`), so an attempt right after
/// others may wait one SYN retransmission; the one after it is answered.
pub fn refused_at_once(ns: &str, url: &str) -> Curl {
    let mut seen = Vec::new();
    for _ in 0..3 {
        let c = curl_in(ns, url, Duration::from_secs(3));
        assert_eq!(c.code, 7, "{url} from {ns} must be refused: {c:?}");
        if refused_fast(&c) {
            return c;
        }
        seen.push(c);
    }
    panic!("{url} from {ns} never refused at once: {seen:?}");
}

/// Sends `GET path` on an open keep-alive connection and returns the body.
pub fn http_get(conn: &mut BufReader<TcpStream>, path: &str) -> std::io::Result<String> {
    conn.get_mut()
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: e2e\r\n\r\n").as_bytes())?;
    let mut len = 0usize;
    loop {
        let mut line = String::new();
        if conn.read_line(&mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0; len];
    conn.read_exact(&mut body)?;
    Ok(String::from_utf8_lossy(&body).to_string())
}

/// A TCP connection made from inside namespace `ns` (a socket stays in the
/// namespace it was created in, so a short-lived thread makes it).
pub fn connect_in(ns: &str, addr: String) -> BufReader<TcpStream> {
    let path = format!("/run/netns/{ns}");
    let stream = std::thread::spawn(move || {
        portico_cluster::netns::enter(&path).unwrap();
        TcpStream::connect(addr).unwrap()
    })
    .join()
    .unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    BufReader::new(stream)
}

pub fn ruleset(ns: &str) -> String {
    let out = super::lan::ns_exec(ns, &["nft", "list", "ruleset"]);
    assert!(
        out.status.success(),
        "nft list in {ns}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}
