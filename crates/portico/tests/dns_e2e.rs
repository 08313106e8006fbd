//! End-to-end tests of cluster DNS (issue 6) on real `portico up`: the libc
//! resolver (`getent`) and curl inside pods on every node, and real `dig`
//! against the node-local DNS at 10.96.0.10 for each record type.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use serde_json::json;
use support::pods::{pods, wait_ready};
use support::traffic::{cluster_ip, netexec_deployment};
use support::{eventually, example, Cluster, Layout};

const CLUSTER_DNS: &str = "10.96.0.10";
const PYTHON: &str = "/usr/bin/python3";

/// A process this test started, killed (by pid) on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `cmd` with a piped stdout and waits (bounded) for its first line,
/// which the scripts below print once they are listening; later lines arrive
/// on the returned channel.
fn start_until_line(mut cmd: Command, what: &str) -> (Proc, Receiver<String>) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let proc = Proc(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(10))
        .unwrap_or_else(|_| panic!("{what} did not start"));
    (proc, rx)
}

/// A tiny upstream DNS server (UDP): `example.test.` A 192.0.2.55, NXDOMAIN for
/// anything else; prints every name it is asked. Lives at most 10 minutes.
const UPSTREAM: &str = r#"
import socket, struct, sys, signal
signal.alarm(600)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[2])))
print("ready", flush=True)
while True:
    d, a = s.recvfrom(4096)
    if len(d) < 17:
        continue
    i, labels = 12, []
    while i < len(d) and d[i] != 0:
        n = d[i]
        labels.append(d[i + 1:i + 1 + n].decode(errors="replace").lower())
        i += 1 + n
    qtype = struct.unpack(">H", d[i + 1:i + 3])[0]
    name = ".".join(labels) + "."
    print(name, flush=True)
    q = d[12:i + 5]
    rd = d[2] & 1
    if name == "example.test." and qtype == 1:
        ans = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 60, 4) + bytes([192, 0, 2, 55])
        hdr = d[:2] + bytes([0x84 | rd, 0x80]) + struct.pack(">HHHH", 1, 1, 0, 0)
        s.sendto(hdr + q + ans, a)
    else:
        rcode = 0 if name == "example.test." else 3
        hdr = d[:2] + bytes([0x84 | rd, 0x80 | rcode]) + struct.pack(">HHHH", 1, 0, 0, 0)
        s.sendto(hdr + q, a)
"#;

/// A TCP listener that accepts and closes connections (the target of a
/// tcpSocket readiness probe); lives at most 2 minutes.
const LISTENER: &str = r#"
import socket, sys, signal
signal.alarm(120)
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1])))
s.listen(64)
print("listening", flush=True)
while True:
    c, _ = s.accept()
    c.close()
"#;

/// `dig @10.96.0.10` from a pod's network namespace, with the header and
/// answer section only.
fn dig(c: &Cluster, pod_ip: &str, args: &[&str]) -> Dig {
    let server = format!("@{CLUSTER_DNS}");
    let mut cmd = vec![
        "dig",
        server.as_str(),
        "+tries=1",
        "+time=2",
        "+noall",
        "+comments",
        "+answer",
    ];
    cmd.extend_from_slice(args);
    let out = c.exec_in_pod_net(pod_ip, &cmd);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let status = text
        .split("status: ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .unwrap_or("<no answer>")
        .to_string();
    let answers = text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with(';'))
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect();
    Dig {
        status,
        answers,
        text,
    }
}

/// What dig printed: the rcode and the answer records split in fields
/// (name, ttl, class, type, data...).
#[derive(Debug)]
struct Dig {
    status: String,
    answers: Vec<Vec<String>>,
    text: String,
}

impl Dig {
    /// The data of the answers of type `rtype`, fields joined by a space.
    fn data(&self, rtype: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .answers
            .iter()
            .filter(|a| a.len() > 4 && a[3] == rtype)
            .map(|a| a[4..].join(" "))
            .collect();
        v.sort();
        v
    }
}

/// A pod running the node's `sh` (image busybox) with `script`, pinned to `node`.
fn sh_pod(name: &str, labels: serde_json::Value, node: &str, script: &str) -> serde_json::Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "nodeName": node,
            "containers": [{
                "name": "sh",
                "image": "busybox:1.36",
                "command": ["sh", "-c", script],
            }],
        },
    })
}

fn apply_json(c: &Cluster, v: &serde_json::Value) {
    c.apply_yaml(&serde_json::to_string(v).unwrap());
}

/// From a pod on every node the pod's own resolver (libc `getent`, the pod's
/// /etc/resolv.conf and search list) finds `my-app-service` by its short,
/// namespaced and full names, and curl reaches the pods by name, also through
/// `API_URL=http://my-app-service:80` in the pod's environment.
#[test]
fn pods_on_every_node_reach_services_by_name() {
    let c = Cluster::up(Layout::Nodes(3));
    c.apply_file(&example("my-app-deployment.yaml"));
    c.apply_file(&example("my-app-service.yaml"));
    let backends: Vec<String> = wait_ready(&c, "app=my-app", 3, Duration::from_secs(60))
        .into_iter()
        .map(|p| p.name)
        .collect();
    let vip = cluster_ip(&c, "my-app-service");

    // The pod waits (bounded) until the Service answers by name, then reports.
    let script = r#"for i in $(seq 1 100); do curl -sf --max-time 1 "$API_URL/hostname" >/dev/null && break; sleep 0.1; done
for n in my-app-service my-app-service.default my-app-service.default.svc.cluster.local; do echo "getent $n $(getent hosts $n)"; done
echo "api $(curl -s --max-time 3 "$API_URL/hostname")"
echo "root $(curl -s --max-time 3 -o /dev/null -w '%{http_code}' http://my-app-service/)"
echo end
exec sleep 3600"#;
    for i in 1..=3 {
        let mut pod = sh_pod(
            &format!("dnsclient-{i}"),
            json!({"app": "dnsclient"}),
            &c.node_name(i),
            script,
        );
        pod["spec"]["containers"][0]["env"] =
            json!([{"name": "API_URL", "value": "http://my-app-service:80"}]);
        apply_json(&c, &pod);
    }
    wait_ready(&c, "app=dnsclient", 3, Duration::from_secs(60));
    for i in 1..=3 {
        let pod = format!("dnsclient-{i}");
        let out = eventually(&format!("{pod} output"), Duration::from_secs(30), || {
            c.container_log_file(&pod, "sh")
                .filter(|o| o.lines().any(|l| l == "end"))
        });
        for name in [
            "my-app-service",
            "my-app-service.default",
            "my-app-service.default.svc.cluster.local",
        ] {
            let prefix = format!("getent {name} ");
            let line = out.lines().find(|l| l.starts_with(&prefix)).unwrap_or("");
            let addr = line[prefix.len().min(line.len())..]
                .split_whitespace()
                .next();
            assert_eq!(
                addr,
                Some(vip.as_str()),
                "getent hosts {name} in {pod} on node {i}:\n{out}"
            );
        }
        let api = out
            .lines()
            .find_map(|l| l.strip_prefix("api "))
            .unwrap_or("");
        assert!(
            backends.iter().any(|b| b == api.trim()),
            "curl $API_URL/hostname in {pod} answered {api:?}, not one of {backends:?}:\n{out}"
        );
        assert!(
            out.lines().any(|l| l == "root 200"),
            "curl http://my-app-service/ in {pod}:\n{out}"
        );
    }
}

/// Every record type of the Kubernetes DNS specification that a user sees
/// with `dig` on a single node, an external name through the upstream the test
/// runs, and a query flood from one pod not delaying another pod's answers.
#[test]
fn dig_sees_the_kubernetes_dns_records() {
    let c = Cluster::up_with_args(Layout::Single, &["--dns-upstream", "192.168.78.100:53"]);
    let node = c.node_name(1);
    // The upstream lives in the client namespace, the node's default gateway.
    let mut up = Command::new("ip");
    up.args(["netns", "exec", &c.client_ns, PYTHON, "-c", UPSTREAM])
        .args(["192.168.78.100", "53"]);
    let (_upstream, asked) = start_until_line(up, "upstream DNS server");

    c.apply_yaml(&netexec_deployment("web", 2, &node));
    c.apply_yaml(
        "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  selector: {app: web}\n  ports:\n  - {name: http, port: 80, targetPort: http}\n",
    );
    c.apply_file(&example("external-db.yaml"));
    c.apply_yaml(
        "apiVersion: v1\nkind: Service\nmetadata: {name: hl}\nspec:\n  clusterIP: None\n  selector: {app: hl}\n  ports:\n  - {name: http, port: 9999}\n",
    );
    let mut hl = sh_pod("hl-a", json!({"app": "hl"}), &node, "exec sleep 3600");
    hl["spec"]["hostname"] = json!("hl-a");
    hl["spec"]["subdomain"] = json!("hl");
    hl["spec"]["containers"][0]["readinessProbe"] = json!({
        "tcpSocket": {"port": 9999},
        "periodSeconds": 1,
        "failureThreshold": 1,
        "successThreshold": 1,
    });
    apply_json(&c, &hl);
    for name in ["dnsclient", "flooder"] {
        apply_json(
            &c,
            &sh_pod(name, json!({"app": name}), &node, "exec sleep 3600"),
        );
    }
    wait_ready(&c, "app=web", 2, Duration::from_secs(60));
    let client = wait_ready(&c, "app=dnsclient", 1, Duration::from_secs(60)).remove(0);
    let vip = cluster_ip(&c, "web");
    let ip = client.ip.as_str();

    // A for a ClusterIP Service, case-insensitively.
    let a = eventually("A web", Duration::from_secs(10), || {
        let d = dig(&c, ip, &["web.default.svc.cluster.local", "A"]);
        (d.status == "NOERROR" && !d.answers.is_empty()).then_some(d)
    });
    assert_eq!(a.data("A"), [vip.as_str()], "{}", a.text);
    assert!(a.answers[0][1] == "5", "TTL 5 s:\n{}", a.text);
    let upper = dig(&c, ip, &["WEB.Default.SVC.cluster.LOCAL", "A"]);
    assert_eq!(upper.data("A"), [vip.as_str()], "{}", upper.text);

    // SRV for the named port: port 80, target the Service's name.
    let srv = dig(&c, ip, &["_http._tcp.web.default.svc.cluster.local", "SRV"]);
    let srv_data = srv.data("SRV");
    assert_eq!(srv_data.len(), 1, "{}", srv.text);
    let fields: Vec<&str> = srv_data[0].split(' ').collect();
    assert_eq!(
        fields[2..],
        ["80", "web.default.svc.cluster.local."],
        "{}",
        srv.text
    );

    // PTR for the ClusterIP.
    let ptr = dig(&c, ip, &["-x", &vip]);
    assert_eq!(
        ptr.data("PTR"),
        ["web.default.svc.cluster.local."],
        "{}",
        ptr.text
    );

    // ExternalName: a CNAME to the outside name.
    let ext = dig(&c, ip, &["external-db.default.svc.cluster.local", "A"]);
    assert_eq!(ext.data("CNAME"), ["db.example.com."], "{}", ext.text);

    // dns-version TXT.
    let ver = dig(&c, ip, &["dns-version.cluster.local", "TXT"]);
    assert_eq!(ver.data("TXT"), ["\"1.1.0\""], "{}", ver.text);

    // NXDOMAIN for a missing Service; NODATA (NOERROR, no answer) for a
    // type the existing name lacks.
    let missing = dig(&c, ip, &["missing.default.svc.cluster.local", "A"]);
    assert_eq!(missing.status, "NXDOMAIN", "{}", missing.text);
    let nodata = dig(&c, ip, &["web.default.svc.cluster.local", "TXT"]);
    assert_eq!(
        (nodata.status.as_str(), nodata.answers.len()),
        ("NOERROR", 0),
        "{}",
        nodata.text
    );

    // An outside name, answered through the upstream.
    let outside = dig(&c, ip, &["example.test", "A"]);
    assert_eq!(outside.data("A"), ["192.0.2.55"], "{}", outside.text);
    let outside_missing = dig(&c, ip, &["nothing.example.test", "A"]);
    assert_eq!(
        outside_missing.status, "NXDOMAIN",
        "{}",
        outside_missing.text
    );

    // Over TCP as well.
    let tcp = dig(&c, ip, &["+tcp", "web.default.svc.cluster.local", "A"]);
    assert_eq!(tcp.data("A"), [vip.as_str()], "{}", tcp.text);

    // What the pods' search list makes of a full name (ndots:5) is answered
    // NXDOMAIN from memory; only outside names reach the upstream.
    for expanded in [
        "web.default.svc.cluster.local.default.svc.cluster.local",
        "web.default.svc.cluster.local.svc.cluster.local",
        "web.default.svc.cluster.local.cluster.local",
    ] {
        let d = dig(&c, ip, &[expanded, "A"]);
        assert_eq!(d.status, "NXDOMAIN", "{}", d.text);
    }
    let outside_again = dig(&c, ip, &["nothing2.example.test", "A"]);
    assert_eq!(outside_again.status, "NXDOMAIN", "{}", outside_again.text);
    let mut forwarded: Vec<String> = Vec::new();
    while !forwarded.iter().any(|n| n == "nothing2.example.test.") {
        let line = asked
            .recv_timeout(Duration::from_secs(5))
            .expect("the upstream saw nothing2.example.test.");
        forwarded.push(line);
    }
    assert!(
        forwarded.iter().all(|n| !n.ends_with("cluster.local.")),
        "cluster names reached the upstream: {forwarded:?}"
    );

    headless_follows_readiness(&c, ip);
    flood_does_not_delay_others(&c, ip);
}

/// Whether `hl`'s headless records list `pod_ip` (A) right now.
fn headless_lists(c: &Cluster, from: &str, pod_ip: &str) -> bool {
    let d = dig(c, from, &["hl.default.svc.cluster.local", "A"]);
    d.data("A") == [pod_ip.to_string()]
}

/// Records of the headless Service `hl` follow its pod's readiness: none
/// (NXDOMAIN) while unready, its A and SRV records once ready, none again once
/// unready, each within a second of the pod's Ready condition changing.
fn headless_follows_readiness(c: &Cluster, from: &str) {
    let pod_ip = eventually("hl-a has an IP", Duration::from_secs(30), || {
        pods(c, "app=hl")
            .into_iter()
            .find(|p| p.phase == "Running" && !p.ip.is_empty())
            .map(|p| p.ip)
    });
    let none = dig(c, from, &["hl.default.svc.cluster.local", "A"]);
    assert_eq!(none.status, "NXDOMAIN", "no ready endpoint:\n{}", none.text);

    for round in 0..2 {
        // Ready: the probe's port opens in the pod's network namespace.
        let pid = c.pod_pids(&pod_ip)[0];
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net=/proc/{pid}/ns/net"))
            .args(["--", PYTHON, "-c", LISTENER, "9999"]);
        let (listener, _) = start_until_line(cmd, "readiness listener");
        let took = ready_change_to_dns(c, from, &pod_ip, true);
        eprintln!("round {round}: headless A after Ready: {took:?}");
        // One SRV per endpoint, aimed at the pod's hostname record; that
        // record and the endpoint's PTR name the pod.
        let srv = dig(c, from, &["_http._tcp.hl.default.svc.cluster.local", "SRV"]);
        let srv_data = srv.data("SRV");
        assert_eq!(srv_data.len(), 1, "{}", srv.text);
        assert!(
            srv_data[0].ends_with(" 9999 hl-a.hl.default.svc.cluster.local."),
            "{}",
            srv.text
        );
        let host = dig(c, from, &["hl-a.hl.default.svc.cluster.local", "A"]);
        assert_eq!(host.data("A"), [pod_ip.as_str()], "{}", host.text);
        let ptr = dig(c, from, &["-x", &pod_ip]);
        assert_eq!(
            ptr.data("PTR"),
            ["hl-a.hl.default.svc.cluster.local."],
            "{}",
            ptr.text
        );

        // Unready: the port closes.
        drop(listener);
        let took = ready_change_to_dns(c, from, &pod_ip, false);
        eprintln!("round {round}: headless A gone after unready: {took:?}");
        let gone = dig(c, from, &["hl.default.svc.cluster.local", "A"]);
        assert_eq!(gone.status, "NXDOMAIN", "{}", gone.text);
    }
}

/// Waits (bounded) for the pod's Ready condition to become `ready` as kubectl
/// sees it and for DNS to agree; asserts DNS followed within one second of the
/// first moment kubectl showed the change, and returns that lag.
fn ready_change_to_dns(c: &Cluster, from: &str, pod_ip: &str, ready: bool) -> Duration {
    let start = Instant::now();
    let mut pod_seen: Option<Instant> = None;
    let mut dns_seen: Option<Instant> = None;
    std::thread::scope(|s| {
        let watcher = s.spawn(|| {
            while start.elapsed() < Duration::from_secs(20) {
                if pods(c, "app=hl").iter().any(|p| p.ready == ready) {
                    return Some(Instant::now());
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            None
        });
        while start.elapsed() < Duration::from_secs(20) {
            if headless_lists(c, from, pod_ip) == ready {
                dns_seen = Some(Instant::now());
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        pod_seen = watcher.join().unwrap();
    });
    let pod_seen = pod_seen.unwrap_or_else(|| panic!("pod Ready={ready} never showed"));
    let dns_seen = dns_seen.unwrap_or_else(|| panic!("DNS never showed Ready={ready}"));
    let lag = dns_seen.saturating_duration_since(pod_seen);
    eprintln!(
        "Ready={ready}: kubectl showed it after {:?}, DNS after {:?}",
        pod_seen - start,
        dns_seen - start
    );
    assert!(
        lag <= Duration::from_secs(1),
        "headless records followed Ready={ready} only after {lag:?}"
    );
    lag
}

/// Floods the DNS from one pod with UDP queries: bursts of 32 a millisecond,
/// at most 60,000 queries in at most 4 s.
const FLOOD: &str = r#"
import socket, time, struct, random
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.connect(("10.96.0.10", 53))
s.setblocking(False)
def q(i, name):
    h = struct.pack(">HHHHHH", i & 0xffff, 0x0100, 1, 0, 0, 0)
    return h + b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\x00" + struct.pack(">HH", 1, 1)
names = ["web.default.svc.cluster.local", "missing.default.svc.cluster.local", "hl.default.svc.cluster.local"]
print("flooding", flush=True)
start, sent, got = time.time(), 0, 0
while sent < 60000 and time.time() - start < 4:
    for _ in range(32):
        try:
            s.send(q(sent, names[sent % 3])); sent += 1
        except BlockingIOError:
            break
    time.sleep(0.001)
    while True:
        try:
            s.recv(4096); got += 1
        except BlockingIOError:
            break
print("sent", sent, "answered", got, "in", round(time.time() - start, 2), flush=True)
"#;

/// Measures 400 sequential query round trips from another pod; prints
/// `p50 p99 max lost` in milliseconds.
const MEASURE: &str = r#"
import socket, time, struct
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.connect(("10.96.0.10", 53))
s.settimeout(1)
name = b"".join(bytes([len(p)]) + p.encode() for p in "web.default.svc.cluster.local".split(".")) + b"\x00"
lat, lost = [], 0
for i in range(400):
    m = struct.pack(">HHHHHH", i, 0x0100, 1, 0, 0, 0) + name + struct.pack(">HH", 1, 1)
    t = time.perf_counter()
    s.send(m)
    try:
        while struct.unpack(">H", s.recv(4096)[:2])[0] != i:
            pass
        lat.append((time.perf_counter() - t) * 1000)
    except socket.timeout:
        lost += 1
    time.sleep(0.002)
lat.sort()
p = lambda f: lat[min(len(lat) - 1, int(len(lat) * f))] if lat else 1e9
print("%.3f %.3f %.3f %d" % (p(0.5), p(0.99), lat[-1] if lat else 1e9, lost), flush=True)
"#;

fn measure(c: &Cluster, ip: &str) -> (f64, f64, f64, u32) {
    let out = c.exec_in_pod_net(ip, &[PYTHON, "-c", MEASURE]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let v: Vec<&str> = text.split_whitespace().collect();
    assert_eq!(
        v.len(),
        4,
        "measurement: {text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        v[0].parse().unwrap(),
        v[1].parse().unwrap(),
        v[2].parse().unwrap(),
        v[3].parse().unwrap(),
    )
}

/// A bounded query flood from one pod does not push another pod's p99 past
/// 10 ms.
fn flood_does_not_delay_others(c: &Cluster, client_ip: &str) {
    let flooder = wait_ready(c, "app=flooder", 1, Duration::from_secs(30)).remove(0);
    let quiet = measure(c, client_ip);
    eprintln!(
        "quiet: p50 {} ms, p99 {} ms, max {} ms, lost {}",
        quiet.0, quiet.1, quiet.2, quiet.3
    );

    let pid = c.pod_pids(&flooder.ip)[0];
    let mut cmd = Command::new("nsenter");
    cmd.arg(format!("--net=/proc/{pid}/ns/net"))
        .args(["--", PYTHON, "-c", FLOOD]);
    let (mut flood, lines) = start_until_line(cmd, "flood");
    let loaded = measure(c, client_ip);
    let still_flooding = flood.0.try_wait().unwrap().is_none();
    let summary = lines
        .recv_timeout(Duration::from_secs(10))
        .unwrap_or_default();
    eprintln!(
        "under flood ({}): p50 {} ms, p99 {} ms, max {} ms, lost {}",
        summary.trim(),
        loaded.0,
        loaded.1,
        loaded.2,
        loaded.3
    );
    assert!(
        still_flooding,
        "the flood ended before the measurement: {summary}"
    );
    assert_eq!(loaded.3, 0, "queries lost under a flood from another pod");
    assert!(
        loaded.1 < 10.0,
        "p99 {} ms under a flood from another pod (quiet: {} ms)",
        loaded.1,
        quiet.1
    );
}
