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
