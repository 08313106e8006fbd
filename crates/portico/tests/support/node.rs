//! Harness additions for node and pod checks: commands in a node's or a pod's
//! network namespace, a pod's processes and log files, `portico up` started
//! again on the same data dir, and what a stopped cluster left in the kernel.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use super::{eventually, portico_exe, Cluster};

impl Cluster {
    /// Number of nodes.
    pub fn node_count(&self) -> usize {
        self.node_ips.len()
    }

    /// The network namespace of node `i` (1-based), as `ip netns` names it.
    pub fn node_ns(&self, i: usize) -> String {
        assert!(i >= 1 && i <= self.node_count(), "no node {i}");
        if self.own_namespaces.is_empty() {
            format!("{}-node{i}", self.name)
        } else {
            format!("{}-n", self.name)
        }
    }

    /// The Node object's name of node `i` (1-based): its namespace name.
    pub fn node_name(&self, i: usize) -> String {
        self.node_ns(i)
    }

    /// Runs `cmd` inside node `i`'s network namespace.
    pub fn exec_in_node(&self, i: usize, cmd: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.node_ns(i)])
            .args(cmd)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// `curl` from node `i`; the body, or None on failure (3 s limit).
    pub fn node_curl(&self, i: usize, url: &str) -> Option<String> {
        let out = self.exec_in_node(i, &["curl", "-s", "--max-time", "3", url]);
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).to_string())
    }

    /// `kubectl apply -f -` with `yaml` on stdin.
    pub fn apply_yaml(&self, yaml: &str) -> String {
        let out = self.kubectl_output(None, &["apply", "-f", "-"], Some(yaml));
        assert!(
            out.status.success(),
            "kubectl apply failed: {}\n{yaml}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    /// Pid of the running `portico up` (the `ip netns exec` wrapper execs it).
    pub fn up_pid(&self) -> Option<u32> {
        self.child.as_ref().map(std::process::Child::id)
    }

    /// Directory of the agent state of node `i` (pod dirs, container logs).
    pub fn node_data_dir(&self, i: usize) -> PathBuf {
        if self.own_namespaces.is_empty() {
            self.dir.path().join("nodes").join(self.node_ns(i))
        } else {
            self.dir.path().join("node")
        }
    }

    /// The current log file of a container, read straight from the agent's
    /// data dir on whichever node ran it (what `kubectl logs` would serve).
    pub fn container_log_file(&self, pod: &str, container: &str) -> Option<String> {
        let prefix = format!("default_{pod}_");
        (1..=self.node_count()).find_map(|i| {
            let logs = self.node_data_dir(i).join("logs");
            let dir = std::fs::read_dir(logs)
                .ok()?
                .flatten()
                .find(|e| e.file_name().to_string_lossy().starts_with(&prefix))?
                .path()
                .join(container);
            let newest = std::fs::read_dir(dir)
                .ok()?
                .flatten()
                .filter_map(|e| {
                    let n = e
                        .file_name()
                        .to_string_lossy()
                        .strip_suffix(".log")?
                        .parse::<u32>()
                        .ok()?;
                    Some((n, e.path()))
                })
                .max()?;
            std::fs::read_to_string(newest.1).ok()
        })
    }

    /// Starts `portico up` again, same layout and data dir, after [`Cluster::stop`];
    /// waits until the API answers and every node reports Ready.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "restart needs a stopped cluster");
        let log = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(self.dir.path().join("up.log"))
            .unwrap();
        let exe = portico_exe();
        let mut cmd = if self.own_namespaces.is_empty() {
            let mut c = Command::new(&exe);
            c.args([
                "up",
                "--nodes",
                &self.node_count().to_string(),
                "--name",
                &self.name,
            ]);
            c
        } else {
            let node = self.node_ns(1);
            let mut c = Command::new("ip");
            c.args(["netns", "exec", &node])
                .arg(&exe)
                .args(["up", "--node-name", &node]);
            c
        };
        cmd.args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        self.child = Some(cmd.spawn().unwrap());
        let want = self.node_count();
        eventually(
            "API and nodes Ready after restart",
            Duration::from_secs(60),
            || {
                self.assert_running();
                let out = self.kubectl_output(
                None,
                &[
                    "get",
                    "nodes",
                    "-o",
                    r#"jsonpath={range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}"#,
                ],
                None,
            );
                let text = String::from_utf8_lossy(&out.stdout).to_string();
                (out.status.success() && text.lines().filter(|l| *l == "True").count() == want)
                    .then_some(())
            },
        );
    }

    /// Stops `portico up` with `sig` (SIGINT is Ctrl-C) and waits up to 60 s,
    /// then kills it; returns its exit status.
    pub fn stop_with(&mut self, sig: nix::sys::signal::Signal) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::kill(pid, sig);
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(st)) = child.try_wait() {
                return Some(st);
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                return child.wait().ok();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Network namespaces whose name starts with the cluster's name, other than
    /// the ones this harness created itself: the node namespaces of
    /// `--nodes`, and every pod's namespace (named after its node).
    pub fn leftover_namespaces(&self) -> Vec<String> {
        let prefix = format!("{}-", self.name);
        let mut v: Vec<String> = std::fs::read_dir("/run/netns")
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().to_string())
                    .collect()
            })
            .unwrap_or_default();
        v.retain(|n| n.starts_with(&prefix) && !self.own_namespaces.contains(n));
        v.sort();
        v
    }

    /// Pids of this cluster's processes (descendants of `portico up`) whose
    /// network namespace holds `ip` as a local address: the containers of the
    /// pod with that IP. Other clusters on the machine use the same pod
    /// addresses in their own namespaces, hence the ancestry filter.
    pub fn pod_pids(&self, ip: &str) -> Vec<i32> {
        let Some(root) = self.up_pid() else {
            return Vec::new();
        };
        let own = std::fs::read_link("/proc/self/ns/net").ok();
        let mut has_ip: HashMap<PathBuf, bool> = HashMap::new();
        let mut pids = Vec::new();
        for pid in descendants(root as i32) {
            let Ok(ns) = std::fs::read_link(format!("/proc/{pid}/ns/net")) else {
                continue;
            };
            if Some(&ns) == own.as_ref() {
                continue;
            }
            let found = *has_ip.entry(ns).or_insert_with(|| {
                std::fs::read_to_string(format!("/proc/{pid}/net/fib_trie"))
                    .map(|t| fib_has_local(&t, ip))
                    .unwrap_or(false)
            });
            if found {
                pids.push(pid);
            }
        }
        pids
    }

    /// Runs `cmd` in the network namespace of this cluster's pod with IP `pod_ip`.
    pub fn exec_in_pod_net(&self, pod_ip: &str, cmd: &[&str]) -> Output {
        let pid = *self
            .pod_pids(pod_ip)
            .first()
            .unwrap_or_else(|| panic!("no process holds pod IP {pod_ip}"));
        Command::new("nsenter")
            .arg(format!("--net=/proc/{pid}/ns/net"))
            .arg("--")
            .args(cmd)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }
}

/// Every live descendant of `root` (not `root` itself).
pub fn descendants(root: i32) -> Vec<i32> {
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // The fields after the command name, which may contain spaces and parentheses.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        if let Some(ppid) = rest
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse::<i32>().ok())
        {
            children.entry(ppid).or_default().push(pid);
        }
    }
    let mut out = Vec::new();
    let mut todo = vec![root];
    while let Some(p) = todo.pop() {
        for c in children.get(&p).into_iter().flatten() {
            out.push(*c);
            todo.push(*c);
        }
    }
    out
}

/// Whether a `/proc/net/fib_trie` dump lists `ip` as a local (own) address.
fn fib_has_local(trie: &str, ip: &str) -> bool {
    let leaf = format!("|-- {ip}");
    let mut lines = trie.lines().peekable();
    while let Some(l) = lines.next() {
        if l.trim_end().ends_with(&leaf) {
            while let Some(next) = lines.peek() {
                if next.contains("|--") || next.contains("+--") {
                    break;
                }
                if next.contains("host LOCAL") {
                    return true;
                }
                lines.next();
            }
        }
    }
    false
}

/// A process identity that survives pid reuse: its pid and start time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcId {
    /// The pid.
    pub pid: i32,
    /// Start time in clock ticks since boot (`/proc/PID/stat` field 22).
    start: u64,
}

impl ProcId {
    /// The process with this pid now, if any.
    pub fn of(pid: i32) -> Option<ProcId> {
        let (start, _) = stat_fields(pid)?;
        Some(ProcId { pid, start })
    }

    /// Whether this very process still runs (a zombie does not count).
    pub fn alive(&self) -> bool {
        stat_fields(self.pid).is_some_and(|(start, state)| start == self.start && state != 'Z')
    }
}

/// (start time, state) of a process.
fn stat_fields(pid: i32) -> Option<(u64, char)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    Some((fields.get(19)?.parse().ok()?, state))
}
