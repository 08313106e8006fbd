//! What the benchmark reads from /proc: a process's RSS, the load average,
//! the `portico agent` child of `portico up --nodes 1`, and the processes
//! left in a network namespace (for cleanup).

/// Resident set size of `pid` in KiB (`VmRSS`), if the process exists.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_vm_rss(&text)
}

/// `VmRSS:` of a `/proc/<pid>/status` text, in KiB.
pub fn parse_vm_rss(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// The three load averages from `/proc/loadavg`, as printed there.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Direct children of `pid` (all threads).
pub fn children(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .filter_map(Result::ok)
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|s| {
            s.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

/// The argv of `pid`.
pub fn cmdline(pid: u32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .unwrap_or_default()
        .split(|b| *b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect()
}

/// The `portico agent` child of a `portico up --nodes N` process.
pub fn agent_child(up_pid: u32) -> Option<u32> {
    children(up_pid)
        .into_iter()
        .find(|c| cmdline(*c).iter().any(|a| a == "agent"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_vm_rss_and_own_process() {
        let text = "Name:\tx\nVmPeak:\t  9 kB\nVmRSS:\t   12345 kB\n";
        assert_eq!(parse_vm_rss(text), Some(12345));
        assert_eq!(parse_vm_rss("Name: x\n"), None);
        assert!(rss_kib(std::process::id()).is_some_and(|k| k > 0));
        assert_eq!(loadavg().split(' ').count(), 3);
        assert!(!cmdline(std::process::id()).is_empty());
    }
}
