//! Which host program runs a container image. There is no image pull: the
//! runtime knows a few images and runs their equivalent from the host (or the
//! built-in agnhost). Pure: the caller passes a "does this program exist" check.

/// How a container is launched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Launch {
    /// The built-in agnhost (`<exe> agnhost <args>`).
    Agnhost { args: Vec<String> },
    /// The host's nginx confined to the pod, serving the default page on :80.
    Nginx,
    /// A host program with arguments (`program` is as written; PATH applies).
    Host { argv: Vec<String> },
    /// The runtime cannot run this image.
    Unsupported { reason: String, message: String },
}

/// Generic base images whose commands are run with the host's programs.
const SHELL_IMAGES: &[&str] = &[
    "busybox", "alpine", "debian", "ubuntu", "bash", "curl", "fedora", "centos", "netshoot",
];

/// The repository part of an image reference (no tag, no digest, no
/// `docker.io/library/` prefix).
pub fn repository(image: &str) -> &str {
    let no_digest = image.split('@').next().unwrap_or(image);
    let last_slash = no_digest.rfind('/').map(|i| i + 1).unwrap_or(0);
    let repo = match no_digest[last_slash..].find(':') {
        Some(i) => &no_digest[..last_slash + i],
        None => no_digest,
    };
    repo.strip_prefix("docker.io/library/")
        .or_else(|| repo.strip_prefix("docker.io/"))
        .or_else(|| repo.strip_prefix("library/"))
        .unwrap_or(repo)
}

fn base_name(repo: &str) -> &str {
    repo.rsplit('/').next().unwrap_or(repo)
}

/// Decides how to run `image` with the pod's `command` and `args`.
pub fn resolve(
    image: &str,
    command: &[String],
    args: &[String],
    program_exists: impl Fn(&str) -> bool,
) -> Launch {
    let repo = repository(image);
    let base = base_name(repo);
    let host = |argv: Vec<String>| -> Launch {
        match argv.first() {
            Some(p) if program_exists(p) => Launch::Host { argv },
            Some(p) => Launch::Unsupported {
                reason: "ImageNotSupported".into(),
                message: format!("image {image:?}: program {p:?} is not installed on the node (the portico runtime runs image commands with the node's programs)"),
            },
            None => unsupported(image),
        }
    };
    let joined = || command.iter().chain(args).cloned().collect::<Vec<_>>();
    if base == "agnhost" || base == "pause" {
        // The agnhost image's entrypoint is /agnhost; pause's is /pause.
        let argv: Vec<String> = match command.first().map(String::as_str) {
            None => args.to_vec(),
            Some(c) if c.ends_with("agnhost") => command[1..].iter().chain(args).cloned().collect(),
            Some(c) if c.ends_with("pause") => vec!["pause".into()],
            Some(_) => return host(joined()),
        };
        let argv = if base == "pause" {
            vec!["pause".to_string()]
        } else if argv.is_empty() {
            // agnhost with no subcommand only prints its usage; serving is
            // what every manifest that omits args wants.
            vec!["netexec".into(), "--http-port=8080".into()]
        } else {
            argv
        };
        return Launch::Agnhost { args: argv };
    }
    if base == "nginx" {
        return match command.first() {
            Some(c) if !c.ends_with("nginx") => host(joined()),
            _ => Launch::Nginx,
        };
    }
    if SHELL_IMAGES.contains(&base) {
        let argv = joined();
        return if argv.is_empty() {
            host(vec!["sh".into()])
        } else {
            host(argv)
        };
    }
    unsupported(image)
}

fn unsupported(image: &str) -> Launch {
    Launch::Unsupported {
        reason: "ImageNotSupported".into(),
        message: format!(
            "image {image:?} cannot be run by the portico process runtime (it runs agnhost, pause, nginx, and busybox/alpine-like images with a command installed on the node)"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn repositories() {
        assert_eq!(repository("nginx:1.14.2"), "nginx");
        assert_eq!(repository("docker.io/library/nginx@sha256:abc"), "nginx");
        assert_eq!(repository("localhost:5000/app:1"), "localhost:5000/app");
        assert_eq!(
            repository("registry.k8s.io/e2e-test-images/agnhost:2.53"),
            "registry.k8s.io/e2e-test-images/agnhost"
        );
    }

    #[test]
    fn known_images() {
        let yes = |_: &str| true;
        let agn = "registry.k8s.io/e2e-test-images/agnhost:2.53";
        assert_eq!(
            resolve(agn, &[], &s(&["netexec", "--http-port=8080"]), yes),
            Launch::Agnhost {
                args: s(&["netexec", "--http-port=8080"])
            }
        );
        assert_eq!(
            resolve(agn, &s(&["/agnhost", "serve-hostname"]), &[], yes),
            Launch::Agnhost {
                args: s(&["serve-hostname"])
            }
        );
        assert_eq!(
            resolve("registry.k8s.io/pause:3.10", &[], &[], yes),
            Launch::Agnhost {
                args: s(&["pause"])
            }
        );
        assert_eq!(resolve("nginx:1.14.2", &[], &[], yes), Launch::Nginx);
        assert_eq!(
            resolve("busybox", &s(&["sh", "-c"]), &s(&["env"]), yes),
            Launch::Host {
                argv: s(&["sh", "-c", "env"])
            }
        );
    }

    #[test]
    fn unknown_images_wait_with_a_reason() {
        let no = |_: &str| false;
        match resolve("myapp:1.0", &[], &[], |_| true) {
            Launch::Unsupported { reason, message } => {
                assert_eq!(reason, "ImageNotSupported");
                assert!(message.contains("myapp:1.0"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            resolve("alpine", &s(&["nslookup", "x"]), &[], no),
            Launch::Unsupported { .. }
        ));
    }
}
