//! The container init: the first thing a container process runs, in a fresh
//! single-threaded process the runtime spawns (`<agent exe> agnhost
//! portico-pod-init <netns> <pod dir> <hostname> <workdir> <argv...>`). It
//! enters the pod's network namespace, makes private UTS and mount
//! namespaces, sets the hostname, bind-mounts the pod's `resolv.conf`,
//! `hosts` and `hostname` over `/etc`, changes to the working dir and execs
//! the program, so the pid the runtime holds is the container's own.
//!
//! Why not `nsenter ... unshare ... sh -c`: that chain forks and execs six to
//! eight programs per container (`mount` alone re-reads the whole mount
//! table, which holds every pod's netns), about 10 ms of CPU per start; 100
//! pods started at once spent a second of a 2-core node on it. The same
//! steps as system calls cost well under a millisecond. All of them are safe
//! `nix` wrappers; the process has no other threads, which `unshare` of the
//! mount namespace requires.

use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::ExitCode;

use nix::mount::MsFlags;
use nix::sched::CloneFlags;

/// The subcommand of `agnhost_main` that runs the init (the agent spawns its
/// own agnhost binary, so every binary that serves agnhost serves this too).
pub const SUBCOMMAND: &str = "portico-pod-init";

/// What the init does, parsed from its arguments. Pure data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitPlan {
    pub netns: PathBuf,
    pub pod_dir: PathBuf,
    pub hostname: String,
    pub workdir: Option<String>,
    pub argv: Vec<String>,
}

impl InitPlan {
    /// Parses `<netns> <pod dir> <hostname> <workdir> <argv...>` (an empty
    /// workdir means `/`). `None` if something is missing.
    pub fn parse(args: &[String]) -> Option<Self> {
        let [netns, dir, host, workdir, argv @ ..] = args else {
            return None;
        };
        if argv.is_empty() {
            return None;
        }
        Some(Self {
            netns: PathBuf::from(netns),
            pod_dir: PathBuf::from(dir),
            hostname: host.clone(),
            workdir: (!workdir.is_empty()).then(|| workdir.clone()),
            argv: argv.to_vec(),
        })
    }

    /// The arguments [`InitPlan::parse`] reads back.
    pub fn to_args(&self) -> Vec<String> {
        let mut v = vec![
            self.netns.to_string_lossy().into_owned(),
            self.pod_dir.to_string_lossy().into_owned(),
            self.hostname.clone(),
            self.workdir.clone().unwrap_or_default(),
        ];
        v.extend(self.argv.iter().cloned());
        v
    }
}

/// Runs the init with the arguments after the subcommand; returns only on
/// failure (126, like a shell that cannot run a command; 127 when the
/// program is not found).
pub fn init_main(args: &[String]) -> ExitCode {
    let Some(plan) = InitPlan::parse(args) else {
        eprintln!("{SUBCOMMAND}: usage: <netns> <pod dir> <hostname> <workdir> <program> [args]");
        return ExitCode::from(126);
    };
    if let Err(e) = enter(&plan) {
        eprintln!("{SUBCOMMAND}: {e}");
        return ExitCode::from(126);
    }
    // `exec` searches PATH from the environment the runtime gave us (the
    // container's), as `exec "$@"` in a shell did.
    // `<this binary> agnhost ...` (the agnhost image): run it here instead
    // of a second exec of the same (large) binary — one exec per container.
    if let Some(args) = same_binary_agnhost(&plan.argv) {
        return crate::agnhost::agnhost_main(args);
    }
    let err = std::process::Command::new(&plan.argv[0])
        .args(&plan.argv[1..])
        .exec();
    eprintln!("{SUBCOMMAND}: exec {}: {err}", plan.argv[0]);
    ExitCode::from(if err.kind() == std::io::ErrorKind::NotFound {
        127
    } else {
        126
    })
}

/// The namespace and file system steps, in the order the kernel needs them.
/// The agnhost arguments when `argv` is `<this executable> agnhost <args>`
/// (compared by device and inode, so any path to the same file counts).
fn same_binary_agnhost(argv: &[String]) -> Option<Vec<String>> {
    use std::os::unix::fs::MetadataExt as _;
    let [exe, sub, args @ ..] = argv else {
        return None;
    };
    if sub != "agnhost" || args.first().map(String::as_str) == Some(SUBCOMMAND) {
        return None;
    }
    let me = std::fs::metadata(std::env::current_exe().ok()?).ok()?;
    let it = std::fs::metadata(exe).ok()?;
    (me.dev() == it.dev() && me.ino() == it.ino()).then(|| args.to_vec())
}

fn enter(plan: &InitPlan) -> Result<(), String> {
    let ns = std::fs::File::open(&plan.netns)
        .map_err(|e| format!("opening {}: {e}", plan.netns.display()))?;
    nix::sched::setns(ns, CloneFlags::CLONE_NEWNET)
        .map_err(|e| format!("entering {}: {e}", plan.netns.display()))?;
    nix::sched::unshare(CloneFlags::CLONE_NEWUTS | CloneFlags::CLONE_NEWNS)
        .map_err(|e| format!("unsharing the UTS and mount namespaces: {e}"))?;
    // Private propagation first: the bind mounts below must not leak to the
    // host's mount namespace.
    nix::mount::mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| format!("making / private: {e}"))?;
    nix::unistd::sethostname(&plan.hostname)
        .map_err(|e| format!("setting the hostname {:?}: {e}", plan.hostname))?;
    for (file, required) in [("resolv.conf", true), ("hosts", true), ("hostname", false)] {
        let src = plan.pod_dir.join(file);
        let dst = PathBuf::from("/etc").join(file);
        let r = nix::mount::mount(
            Some(&src),
            &dst,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        );
        if let Err(e) = r {
            if required {
                return Err(format!(
                    "bind-mounting {} on {}: {e}",
                    src.display(),
                    dst.display()
                ));
            }
        }
    }
    let dir = plan.workdir.as_deref().unwrap_or("/");
    std::env::set_current_dir(dir).map_err(|e| format!("changing to {dir}: {e}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn only_this_binary_runs_agnhost_in_process() {
        let me = std::env::current_exe()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        assert_eq!(
            same_binary_agnhost(&s(&[&me, "agnhost", "netexec", "--http-port=8080"])),
            Some(s(&["netexec", "--http-port=8080"]))
        );
        assert_eq!(
            same_binary_agnhost(&s(&["/bin/sh", "agnhost", "pause"])),
            None
        );
        assert_eq!(same_binary_agnhost(&s(&[&me, "nginx"])), None);
        assert_eq!(same_binary_agnhost(&s(&[&me, "agnhost", SUBCOMMAND])), None);
        assert_eq!(same_binary_agnhost(&s(&[&me])), None);
    }

    #[test]
    fn arguments_round_trip() {
        let plan = InitPlan {
            netns: "/run/netns/n1-default-web-1".into(),
            pod_dir: "/var/lib/portico/pods/u1".into(),
            hostname: "web".into(),
            workdir: None,
            argv: s(&["nginx", "-g", "daemon off;"]),
        };
        assert_eq!(InitPlan::parse(&plan.to_args()), Some(plan.clone()));
        let with_dir = InitPlan {
            workdir: Some("/srv".into()),
            ..plan
        };
        assert_eq!(InitPlan::parse(&with_dir.to_args()), Some(with_dir));
    }

    #[test]
    fn missing_program_is_refused() {
        assert_eq!(InitPlan::parse(&s(&["/run/netns/x", "/d", "h", ""])), None);
        assert_eq!(InitPlan::parse(&s(&["/run/netns/x"])), None);
    }
}
