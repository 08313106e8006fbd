//! Text of the files a pod sees: `/etc/resolv.conf`, `/etc/hosts`, and the
//! confined nginx configuration. Pure functions, no IO.

use std::net::Ipv4Addr;
use std::path::Path;

/// The pod's `/etc/resolv.conf` for dnsPolicy ClusterFirst, exactly as the
/// kubelet writes it.
pub fn resolv_conf(cluster_dns: Ipv4Addr, pod_namespace: &str, cluster_domain: &str) -> String {
    format!(
        "search {pod_namespace}.svc.{cluster_domain} svc.{cluster_domain} {cluster_domain}\n\
         nameserver {cluster_dns}\n\
         options ndots:5\n"
    )
}

/// The pod's `/etc/resolv.conf` for its `dnsPolicy` and `dnsConfig`:
/// ClusterFirst (default) → the cluster DNS; Default → the node's resolv.conf
/// (`host_resolv`); None → only `dnsConfig`. `dnsConfig` nameservers and
/// searches are appended, its options override by name (as the kubelet does).
pub fn pod_resolv_conf(
    spec: Option<&k8s_openapi::api::core::v1::PodSpec>,
    cluster_dns: Ipv4Addr,
    pod_namespace: &str,
    cluster_domain: &str,
    host_resolv: &str,
) -> String {
    let policy = spec
        .and_then(|s| s.dns_policy.as_deref())
        .unwrap_or("ClusterFirst");
    let (mut servers, mut search, mut options): (Vec<String>, Vec<String>, Vec<String>) =
        match policy {
            "None" => (Vec::new(), Vec::new(), Vec::new()),
            "Default" => {
                let mut sv = Vec::new();
                let mut se = Vec::new();
                let mut op = Vec::new();
                for line in host_resolv.lines() {
                    let mut w = line.split_whitespace();
                    match w.next() {
                        Some("nameserver") => sv.extend(w.next().map(String::from)),
                        Some("search") | Some("domain") => se.extend(w.map(String::from)),
                        Some("options") => op.extend(w.map(String::from)),
                        _ => {}
                    }
                }
                (sv, se, op)
            }
            _ => (
                vec![cluster_dns.to_string()],
                vec![
                    format!("{pod_namespace}.svc.{cluster_domain}"),
                    format!("svc.{cluster_domain}"),
                    cluster_domain.to_string(),
                ],
                vec!["ndots:5".to_string()],
            ),
        };
    if let Some(cfg) = spec.and_then(|s| s.dns_config.as_ref()) {
        for n in cfg.nameservers.iter().flatten() {
            if !servers.contains(n) {
                servers.push(n.clone());
            }
        }
        for d in cfg.searches.iter().flatten() {
            if !search.contains(d) {
                search.push(d.clone());
            }
        }
        for o in cfg.options.iter().flatten() {
            let text = match &o.value {
                Some(v) => format!("{}:{v}", o.name.as_deref().unwrap_or_default()),
                None => o.name.clone().unwrap_or_default(),
            };
            let name = o.name.clone().unwrap_or_default();
            options.retain(|x| x.split(':').next() != Some(name.as_str()));
            options.push(text);
        }
    }
    servers.truncate(3);
    let mut out = String::new();
    if !search.is_empty() {
        out.push_str(&format!("search {}\n", search.join(" ")));
    }
    for s in &servers {
        out.push_str(&format!("nameserver {s}\n"));
    }
    if !options.is_empty() {
        out.push_str(&format!("options {}\n", options.join(" ")));
    }
    out
}

/// The pod's `/etc/hosts` as the kubelet writes it ("Kubernetes-managed hosts file").
pub fn hosts_file(pod_ip: Ipv4Addr, hostname: &str, subdomain_fqdn: Option<&str>) -> String {
    let mut s = String::from(
        "# Kubernetes-managed hosts file.\n\
         127.0.0.1\tlocalhost\n\
         ::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\n\
         fe00::0\tip6-mcastprefix\n\
         fe00::1\tip6-allnodes\n\
         fe00::2\tip6-allrouters\n",
    );
    match subdomain_fqdn {
        Some(fqdn) => s.push_str(&format!("{pod_ip}\t{fqdn}\t{hostname}\n")),
        None => s.push_str(&format!("{pod_ip}\t{hostname}\n")),
    }
    s
}

/// nginx's standard welcome page (what the `nginx` image serves at `/`).
pub const NGINX_WELCOME: &str = "<!DOCTYPE html>
<html>
<head>
<title>Welcome to nginx!</title>
<style>
html { color-scheme: light dark; }
body { width: 35em; margin: 0 auto;
font-family: Tahoma, Verdana, Arial, sans-serif; }
</style>
</head>
<body>
<h1>Welcome to nginx!</h1>
<p>If you see this page, the nginx web server is successfully installed and
working. Further configuration is required.</p>

<p>For online documentation and support please refer to
<a href=\"http://nginx.org/\">nginx.org</a>.<br/>
Commercial support is available at
<a href=\"http://nginx.com/\">nginx.com</a>.</p>

<p><em>Thank you for using nginx.</em></p>
</body>
</html>
";

/// A config that confines the host's nginx to one container: every path it
/// writes (pid, temp dirs) is under `dir`, logs go to stdout/stderr (the
/// container log, like the official image), it stays in the foreground, and it
/// serves `html_root` on port 80 like the image's default server.
pub fn nginx_conf(dir: &Path, html_root: &Path) -> String {
    let d = dir.display();
    let h = html_root.display();
    format!(
        "daemon off;
master_process on;
worker_processes 1;
user root;
pid {d}/nginx.pid;
error_log stderr notice;
events {{
    worker_connections 1024;
}}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log /dev/stdout;
    sendfile on;
    keepalive_timeout 65;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    server {{
        listen 80 default_server;
        server_name localhost;
        location / {{
            root {h};
            index index.html index.htm;
        }}
        error_page 500 502 503 504 /50x.html;
    }}
}}
"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_is_the_cluster_one() {
        let r = resolv_conf(Ipv4Addr::new(10, 96, 0, 10), "default", "cluster.local");
        assert_eq!(
            r,
            "search default.svc.cluster.local svc.cluster.local cluster.local\nnameserver 10.96.0.10\noptions ndots:5\n"
        );
    }

    #[test]
    fn dns_policies_and_config() {
        let dns = Ipv4Addr::new(10, 96, 0, 10);
        let host = "nameserver 1.1.1.1\nsearch corp.example\noptions edns0\n";
        let spec = |v: serde_json::Value| -> k8s_openapi::api::core::v1::PodSpec {
            serde_json::from_value(v).unwrap()
        };
        assert_eq!(
            pod_resolv_conf(None, dns, "default", "cluster.local", host),
            resolv_conf(dns, "default", "cluster.local")
        );
        let d = spec(serde_json::json!({"containers": [], "dnsPolicy": "Default"}));
        assert_eq!(
            pod_resolv_conf(Some(&d), dns, "default", "cluster.local", host),
            "search corp.example\nnameserver 1.1.1.1\noptions edns0\n"
        );
        let n = spec(
            serde_json::json!({"containers": [], "dnsPolicy": "None", "dnsConfig": {
            "nameservers": ["8.8.8.8"], "searches": ["a.b"], "options": [{"name": "ndots", "value": "2"}]}}),
        );
        assert_eq!(
            pod_resolv_conf(Some(&n), dns, "default", "cluster.local", host),
            "search a.b\nnameserver 8.8.8.8\noptions ndots:2\n"
        );
        let c = spec(
            serde_json::json!({"containers": [], "dnsConfig": {"options": [{"name": "ndots", "value": "1"}, {"name": "edns0"}]}}),
        );
        assert_eq!(
            pod_resolv_conf(Some(&c), dns, "ns1", "cluster.local", host),
            "search ns1.svc.cluster.local svc.cluster.local cluster.local\nnameserver 10.96.0.10\noptions ndots:1 edns0\n"
        );
    }

    #[test]
    fn hosts_file_names_the_pod() {
        let h = hosts_file(Ipv4Addr::new(10, 244, 0, 5), "web-1", None);
        assert!(h.contains("127.0.0.1\tlocalhost\n"));
        assert!(h.ends_with("10.244.0.5\tweb-1\n"));
        let h = hosts_file(
            Ipv4Addr::new(10, 244, 0, 5),
            "web-1",
            Some("web-1.sub.default.svc.cluster.local"),
        );
        assert!(h.ends_with("10.244.0.5\tweb-1.sub.default.svc.cluster.local\tweb-1\n"));
    }

    #[test]
    fn nginx_conf_keeps_every_path_in_the_pod_dir() {
        let c = nginx_conf(Path::new("/d/c"), Path::new("/d/html"));
        assert!(c.contains("daemon off;"));
        assert!(c.contains("pid /d/c/nginx.pid;"));
        assert!(c.contains("client_body_temp_path /d/c/client_body;"));
        assert!(c.contains("listen 80 default_server;"));
        assert!(!c.contains("/var/lib/nginx"));
    }
}
