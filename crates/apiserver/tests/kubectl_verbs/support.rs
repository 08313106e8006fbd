//! Helpers for the kubectl verb tests: running one kubectl version against a
//! test server, and kubectl's tabwriter layout (to assert exact column layout).

use std::path::{Path, PathBuf};
use std::time::Duration;

/// Longest a single kubectl invocation may take before the test fails.
const KUBECTL_TIMEOUT: Duration = Duration::from_secs(60);

/// What one kubectl run printed.
#[derive(Debug)]
pub struct Out {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

/// One kubectl binary (`kubectl.1.NN` beside the `kubectl` on PATH) bound to a
/// kubeconfig and a private discovery cache.
pub struct Kubectl {
    pub minor: u32,
    bin: PathBuf,
    kubeconfig: PathBuf,
    cache_dir: PathBuf,
}

fn which(bin: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(bin))
            .find(|p| p.is_file())
    })
}

impl Kubectl {
    /// kubectl 1.`minor`; panics when it is missing (CI installs all of them).
    pub fn version(minor: u32, kubeconfig: &Path, scratch: &Path) -> Self {
        let main = which("kubectl").expect("kubectl is not on PATH");
        let main = std::fs::canonicalize(main).unwrap();
        let bin = main.parent().unwrap().join(format!("kubectl.1.{minor}"));
        assert!(bin.exists(), "{} is missing", bin.display());
        Self {
            minor,
            bin,
            kubeconfig: kubeconfig.to_path_buf(),
            cache_dir: scratch.join(format!("kube-cache-1.{minor}")),
        }
    }

    fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut c = tokio::process::Command::new(&self.bin);
        c.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(&self.cache_dir)
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        c
    }

    /// Runs kubectl with optional stdin and extra environment.
    pub async fn run_with(&self, args: &[&str], stdin: Option<&str>, env: &[(&str, &str)]) -> Out {
        use tokio::io::AsyncWriteExt;
        let mut cmd = self.command(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        if stdin.is_some() {
            cmd.stdin(std::process::Stdio::piped());
        }
        let mut child = cmd.spawn().unwrap();
        if let Some(text) = stdin {
            let mut input = child.stdin.take().unwrap();
            input.write_all(text.as_bytes()).await.unwrap();
            drop(input);
        }
        let out = tokio::time::timeout(KUBECTL_TIMEOUT, child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("kubectl 1.{} {args:?} timed out", self.minor))
            .unwrap();
        Out {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    pub async fn run(&self, args: &[&str]) -> Out {
        self.run_with(args, None, &[]).await
    }

    /// Runs kubectl, asserts success and a quiet stderr (no warnings), returns stdout.
    pub async fn ok(&self, args: &[&str]) -> String {
        self.ok_out(args, self.run(args).await)
    }

    /// [`Kubectl::ok`] with `-f -` input.
    pub async fn ok_stdin(&self, args: &[&str], stdin: &str) -> String {
        self.ok_out(args, self.run_with(args, Some(stdin), &[]).await)
    }

    fn ok_out(&self, args: &[&str], o: Out) -> String {
        assert!(
            o.ok,
            "kubectl 1.{} {args:?} failed: {}",
            self.minor, o.stderr
        );
        assert_eq!(o.stderr, "", "kubectl 1.{} {args:?} stderr", self.minor);
        o.stdout
    }

    /// Starts a long-running kubectl (`get -w`, `wait`) with stdout piped.
    pub fn spawn(&self, args: &[&str]) -> tokio::process::Child {
        self.command(args).spawn().unwrap()
    }
}

pub fn examples_dir() -> String {
    format!("{}/../../examples", env!("CARGO_MANIFEST_DIR"))
}

/// `name=clusterIP` of every Service in the default namespace.
pub async fn cluster_ips(k: &Kubectl) -> std::collections::BTreeMap<String, String> {
    let out = k
        .ok(&[
            "get",
            "svc",
            "-o",
            r#"jsonpath={range .items[*]}{.metadata.name}={.spec.clusterIP}{"\n"}{end}"#,
        ])
        .await;
    out.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(n, ip)| (n.to_string(), ip.to_string()))
        .collect()
}

pub async fn jsonpath(k: &Kubectl, what: &[&str], path: &str) -> String {
    let mut args = vec!["get"];
    args.extend_from_slice(what);
    let expr = format!("jsonpath={path}");
    args.extend(["-o", expr.as_str()]);
    k.ok(&args).await
}

pub fn in_service_range(ip: &str) -> bool {
    let Ok(std::net::IpAddr::V4(v4)) = ip.parse::<std::net::IpAddr>() else {
        return false;
    };
    let o = v4.octets();
    o[0] == 10 && (96..112).contains(&o[1])
}

/// Cells of a `get` table (one section), AGE normalised.
pub fn rows(out: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let mut t = tables(out);
    assert_eq!(t.len(), 1, "one table expected: {out}");
    let (h, rows) = t.remove(0);
    let rows = rows.iter().map(|r| cells(&h, r)).collect();
    (h, rows)
}

pub const SVC_HEADER: &[&str] = &[
    "NAME",
    "TYPE",
    "CLUSTER-IP",
    "EXTERNAL-IP",
    "PORT(S)",
    "AGE",
];

/// Go's `text/tabwriter` as kubectl configures it: cells are tab-terminated,
/// a column's width is its widest cell plus `padding` (at least `minwidth`)
/// over a block of consecutive lines that have that column, and a line's last
/// cell is not padded. `lines` are the cells of each line.
pub fn tabwrite(lines: &[Vec<String>], minwidth: usize, padding: usize) -> String {
    let mut out = String::new();
    let mut widths = Vec::new();
    format(
        lines,
        &mut widths,
        0,
        lines.len(),
        minwidth,
        padding,
        &mut out,
    );
    out
}

fn format(
    lines: &[Vec<String>],
    widths: &mut Vec<usize>,
    mut line0: usize,
    line1: usize,
    minwidth: usize,
    padding: usize,
    out: &mut String,
) {
    let column = widths.len();
    let has_column = |l: &Vec<String>| column + 1 < l.len();
    let mut this = line0;
    while this < line1 {
        if !has_column(&lines[this]) {
            this += 1;
            continue;
        }
        write_lines(lines, widths, line0, this, out);
        line0 = this;
        let mut width = minwidth;
        while this < line1 && has_column(&lines[this]) {
            width = width.max(lines[this][column].chars().count() + padding);
            this += 1;
        }
        widths.push(width);
        format(lines, widths, line0, this, minwidth, padding, out);
        widths.pop();
        line0 = this;
    }
    write_lines(lines, widths, line0, line1, out);
}

fn write_lines(lines: &[Vec<String>], widths: &[usize], from: usize, to: usize, out: &mut String) {
    for line in &lines[from..to] {
        for (j, cell) in line.iter().enumerate() {
            out.push_str(cell);
            if let Some(w) = widths.get(j) {
                let n = w.saturating_sub(cell.chars().count());
                out.extend(std::iter::repeat_n(' ', n));
            }
        }
        out.push('\n');
    }
}

/// `kubectl get` output (one table): header cells and row cells, cut at the
/// header's column starts (cells may be empty or contain single spaces).
pub fn parse_table(text: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let mut starts = vec![0];
    let b = header.as_bytes();
    for i in 1..b.len() {
        // A column starts after at least two spaces (padding is 3, minwidth 6).
        if b[i] != b' ' && i >= 2 && b[i - 1] == b' ' && b[i - 2] == b' ' {
            starts.push(i);
        }
    }
    let cut = |line: &str| -> Vec<String> {
        starts
            .iter()
            .enumerate()
            .map(|(k, &s)| {
                let e = starts.get(k + 1).copied().unwrap_or(usize::MAX);
                let e = e.min(line.len());
                line.get(s.min(e)..e).unwrap_or("").trim_end().to_string()
            })
            .collect()
    };
    let head = cut(header);
    let rows = lines.map(cut).collect();
    (head, rows)
}

/// Asserts `text` is laid out exactly as kubectl's printer lays out its cells
/// (minwidth 6, padding 3), section by section, and returns the sections.
pub fn tables(text: &str) -> Vec<(Vec<String>, Vec<Vec<String>>)> {
    let mut all_lines = Vec::new();
    let mut sections = Vec::new();
    for (i, section) in text.trim_end_matches('\n').split("\n\n").enumerate() {
        if i > 0 {
            all_lines.push(vec![String::new()]);
        }
        let (h, rows) = parse_table(section);
        all_lines.push(h.clone());
        all_lines.extend(rows.iter().cloned());
        sections.push((h, rows));
    }
    assert_eq!(tabwrite(&all_lines, 6, 3), text, "column layout");
    sections
}

/// Whether `s` is an AGE cell as kubectl prints it (`0s`, `45s`, `2m5s`, `3m`).
pub fn is_age(s: &str) -> bool {
    !s.is_empty()
        && s.ends_with(['s', 'm', 'h', 'd'])
        && s.chars().all(|c| c.is_ascii_digit() || "smhdy".contains(c))
}

/// The cells of `row` in the named columns, AGE replaced by `<age>` after
/// checking its form.
pub fn cells(header: &[String], row: &[String]) -> Vec<String> {
    header
        .iter()
        .zip(row)
        .map(|(h, c)| {
            if h == "AGE" {
                assert!(is_age(c), "AGE cell {c:?}");
                "<age>".to_string()
            } else {
                c.clone()
            }
        })
        .collect()
}

pub fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tabwriter_matches_kubectl_layout() {
        let lines = vec![
            strs(&["NAME", "TYPE", "AGE"]),
            strs(&["kubernetes", "ClusterIP", "5s"]),
        ];
        assert_eq!(
            tabwrite(&lines, 6, 3),
            "NAME         TYPE        AGE\nkubernetes   ClusterIP   5s\n"
        );
        let describe = vec![
            strs(&["Port:", "<unset>", "80/TCP"]),
            strs(&["TargetPort:", "80/TCP"]),
            strs(&["Endpoints:", ""]),
        ];
        assert_eq!(
            tabwrite(&describe, 0, 2),
            "Port:        <unset>  80/TCP\nTargetPort:  80/TCP\nEndpoints:   \n"
        );
    }

    #[test]
    fn tables_parse_empty_cells() {
        let text = "NAMESPACE   NAME   STATUS\n            ns/a   Active\n";
        let t = tables(text);
        assert_eq!(t[0].1[0], strs(&["", "ns/a", "Active"]));
    }
}
