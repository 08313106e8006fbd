//! Real kubectl against the in-process server: apply, get (server-side Table),
//! allocator errors and conflicts printed verbatim, delete.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::TestServer;

const NODEPORT_SVC: &str = r#"
apiVersion: v1
kind: Service
metadata:
  name: nginx-service-nodeport
spec:
  type: NodePort
  selector:
    app: nginx
  ports:
  - port: 80
    targetPort: 80
    nodePort: 30080
"#;

async fn kubectl_stdin(s: &TestServer, args: &[&str], stdin: &str) -> (bool, String, String) {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(s.kubeconfig())
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).await.unwrap();
    drop(input);
    let out = child.wait_with_output().await.unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn cols(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_apply_get_and_allocator_errors() {
    let s = TestServer::start().await;
    let (ok, out, err) = kubectl_stdin(&s, &["apply", "-f", "-"], NODEPORT_SVC).await;
    assert!(ok, "apply failed: {err}");
    assert_eq!(out.trim(), "service/nginx-service-nodeport created");

    let (ok, out, err) = s.kubectl(&["get", "svc"]).await;
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        cols(lines[0]),
        [
            "NAME",
            "TYPE",
            "CLUSTER-IP",
            "EXTERNAL-IP",
            "PORT(S)",
            "AGE"
        ]
    );
    let row = lines
        .iter()
        .find(|l| l.starts_with("nginx-service-nodeport"))
        .unwrap();
    let c = cols(row);
    assert_eq!(
        (c[0], c[1], c[3], c[4]),
        (
            "nginx-service-nodeport",
            "NodePort",
            "<none>",
            "80:30080/TCP"
        )
    );
    assert!(
        c[2].starts_with("10.9") || c[2].starts_with("10.10") || c[2].starts_with("10.11"),
        "{row}"
    );
    let k = lines.iter().find(|l| l.starts_with("kubernetes")).unwrap();
    assert_eq!(
        cols(k)[..5],
        ["kubernetes", "ClusterIP", "10.96.0.1", "<none>", "443/TCP"]
    );

    // Re-applying the same file changes nothing.
    let (ok, out, err) = kubectl_stdin(&s, &["apply", "-f", "-"], NODEPORT_SVC).await;
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "service/nginx-service-nodeport unchanged");

    // The allocator's messages, verbatim from kubectl.
    let taken = NODEPORT_SVC.replace("name: nginx-service-nodeport", "name: second");
    let (ok, _, err) = kubectl_stdin(&s, &["create", "-f", "-"], &taken).await;
    assert!(!ok);
    assert_eq!(err.trim(), "The Service \"second\" is invalid: spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated");
    let out_of_range = taken.replace("30080", "40000");
    let (ok, _, err) = kubectl_stdin(&s, &["create", "-f", "-"], &out_of_range).await;
    assert!(!ok);
    assert_eq!(
        err.trim(),
        "The Service \"second\" is invalid: spec.ports[0].nodePort: Invalid value: 40000: provided port is not in the valid range. The range of valid ports is 30000-32767"
    );
    let bad_ip = "apiVersion: v1\nkind: Service\nmetadata:\n  name: third\nspec:\n  clusterIP: 1.1.1.1\n  ports:\n  - port: 80\n";
    let (ok, _, err) = kubectl_stdin(&s, &["create", "-f", "-"], bad_ip).await;
    assert!(!ok);
    assert_eq!(
        err.trim(),
        "The Service \"third\" is invalid: spec.clusterIPs: Invalid value: []string{\"1.1.1.1\"}: failed to allocate IP 1.1.1.1: provided IP is not in the valid range. The range of valid IPs is 10.96.0.0/12"
    );

    let (ok, _, err) = s.kubectl(&["get", "svc", "nope"]).await;
    assert!(!ok);
    assert_eq!(
        err.trim(),
        "Error from server (NotFound): services \"nope\" not found"
    );

    let (ok, out, err) = s
        .kubectl(&["delete", "svc", "nginx-service-nodeport"])
        .await;
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "service \"nginx-service-nodeport\" deleted");
    // The freed port is available again at once.
    let (ok, out, err) = kubectl_stdin(&s, &["create", "-f", "-"], &taken).await;
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "service/second created");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_replace_with_stale_version_is_409() {
    let s = TestServer::start().await;
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  a: \"1\"\n";
    let (ok, _, err) = kubectl_stdin(&s, &["create", "-f", "-"], cm).await;
    assert!(ok, "{err}");
    let (_, yaml, _) = s.kubectl(&["get", "configmap", "c", "-o", "yaml"]).await;
    let (ok, _, err) = s.kubectl(&["label", "configmap", "c", "x=y"]).await;
    assert!(ok, "{err}");
    let (ok, _, err) = kubectl_stdin(&s, &["replace", "-f", "-"], &yaml).await;
    assert!(!ok);
    assert_eq!(
        err.trim(),
        "Error from server (Conflict): error when replacing \"STDIN\": Operation cannot be fulfilled on configmaps \"c\": the object has been modified; please apply your changes to the latest version and try again"
    );
    let (ok, out, _) = s
        .kubectl(&["get", "--raw", "/api/v1/namespaces/default/configmaps/c"])
        .await;
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["metadata"]["labels"]["x"], "y");
    s.stop().await;
}

fn kubectl_version_binary(minor: u32) -> Option<std::path::PathBuf> {
    let main = std::fs::canonicalize(which("kubectl")?).ok()?;
    let p = main.parent()?.join(format!("kubectl.1.{minor}"));
    p.exists().then_some(p)
}

fn which(bin: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(bin))
            .find(|p| p.is_file())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_127_and_133_print_the_same() {
    let s = TestServer::start().await;
    for minor in [27, 33] {
        let Some(bin) = kubectl_version_binary(minor) else {
            panic!("kubectl.1.{minor} is missing beside kubectl");
        };
        let run = |args: Vec<String>, stdin: String| {
            let bin = bin.clone();
            let kc = s.kubeconfig().to_path_buf();
            async move {
                use tokio::io::AsyncWriteExt;
                let mut child = tokio::process::Command::new(bin)
                    .arg("--kubeconfig")
                    .arg(kc)
                    .args(args)
                    .stdin(std::process::Stdio::piped())
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap();
                let mut input = child.stdin.take().unwrap();
                input.write_all(stdin.as_bytes()).await.unwrap();
                drop(input);
                let out = child.wait_with_output().await.unwrap();
                (
                    out.status.success(),
                    String::from_utf8_lossy(&out.stdout).into_owned(),
                    String::from_utf8_lossy(&out.stderr).into_owned(),
                )
            }
        };
        let name = format!("svc-{minor}");
        let port = if minor == 27 { "30127" } else { "30133" };
        let manifest = NODEPORT_SVC
            .replace("nginx-service-nodeport", &name)
            .replace("30080", port);
        let (ok, out, err) = run(
            vec!["apply".into(), "-f".into(), "-".into()],
            manifest.clone(),
        )
        .await;
        assert!(ok, "kubectl 1.{minor}: {err}");
        assert_eq!(out.trim(), format!("service/{name} created"));
        let (ok, out, err) = run(
            vec!["get".into(), "svc".into(), name.clone()],
            String::new(),
        )
        .await;
        assert!(ok, "{err}");
        let row = out.lines().nth(1).unwrap();
        let c = cols(row);
        assert_eq!(
            (c[0], c[1], c[3], c[4].to_string()),
            (
                name.as_str(),
                "NodePort",
                "<none>",
                format!("80:{port}/TCP")
            )
        );
        let dup = manifest.replace(&format!("name: {name}"), "name: dup");
        let (ok, _, err) = run(vec!["create".into(), "-f".into(), "-".into()], dup).await;
        assert!(!ok);
        assert_eq!(err.trim(), format!("The Service \"dup\" is invalid: spec.ports[0].nodePort: Invalid value: {port}: provided port is already allocated"));
    }
    s.stop().await;
}

async fn next_line(
    lines: &mut tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
    deadline: tokio::time::Instant,
) -> String {
    tokio::time::timeout_at(deadline, lines.next_line())
        .await
        .expect("kubectl get -w output timed out")
        .unwrap()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_get_watch_prints_later_changes() {
    let s = TestServer::start().await;
    let mut child = tokio::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(s.kubeconfig())
        .args(["get", "svc", "-w"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    use tokio::io::AsyncBufReadExt;
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    assert_eq!(
        cols(&next_line(&mut lines, deadline).await),
        [
            "NAME",
            "TYPE",
            "CLUSTER-IP",
            "EXTERNAL-IP",
            "PORT(S)",
            "AGE"
        ]
    );
    assert!(next_line(&mut lines, deadline)
        .await
        .starts_with("kubernetes "));
    let (ok, _, err) = kubectl_stdin(&s, &["apply", "-f", "-"], NODEPORT_SVC).await;
    assert!(ok, "{err}");
    let row = next_line(&mut lines, deadline).await;
    let c = cols(&row);
    assert_eq!(
        (c[0], c[1], c[4]),
        ("nginx-service-nodeport", "NodePort", "80:30080/TCP"),
        "{row}"
    );
    child.kill().await.unwrap();
    s.stop().await;
}

/// kubectl's generator commands send built-in kinds as protobuf; the server
/// decodes them and answers JSON, which kubectl prints as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_create_generators_send_protobuf() {
    use http::Method;
    let s = TestServer::start().await;

    let (ok, out, err) = s.kubectl(&["create", "namespace", "x", "-v=8"]).await;
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "namespace/x created");
    // Guards that this test really exercises the protobuf path.
    assert!(
        err.contains("Content-Type: application/vnd.kubernetes.protobuf"),
        "kubectl did not send protobuf: {err}"
    );
    let (ok, _, err) = s.kubectl(&["create", "namespace", "x"]).await;
    assert!(!ok);
    assert_eq!(
        err.trim(),
        r#"Error from server (AlreadyExists): namespaces "x" already exists"#
    );
    let (code, ns) = s.req(Method::GET, "/api/v1/namespaces/x", None).await;
    assert_eq!(code, 200);
    assert_eq!(ns["status"]["phase"], "Active");

    let cases: [(&[&str], &str); 10] = [
        (
            &["create", "configmap", "cm", "--from-literal=a=b"],
            "configmap/cm created",
        ),
        (
            &["create", "secret", "generic", "sec", "--from-literal=k=v"],
            "secret/sec created",
        ),
        (
            &["create", "deployment", "web", "--image=nginx"],
            "deployment.apps/web created",
        ),
        (
            &["create", "service", "clusterip", "web", "--tcp=80:8080"],
            "service/web created",
        ),
        (&["run", "p", "--image=nginx"], "pod/p created"),
        (
            &["create", "service", "nodeport", "np", "--tcp=80:8080"],
            "service/np created",
        ),
        (
            &[
                "create",
                "service",
                "externalname",
                "en",
                "--external-name=example.com",
            ],
            "service/en created",
        ),
        (
            &[
                "create",
                "deployment",
                "zero",
                "--image=nginx",
                "--replicas=0",
                "--port=8080",
            ],
            "deployment.apps/zero created",
        ),
        (
            &[
                "expose",
                "deployment",
                "zero",
                "--port=80",
                "--target-port=8080",
                "--name=exp",
            ],
            "service/exp exposed",
        ),
        (
            &[
                "create",
                "ingress",
                "ing",
                "--class=default",
                "--rule=foo.com/bar*=web:80,tls=cert",
            ],
            "ingress.networking.k8s.io/ing created",
        ),
    ];
    for (args, want) in cases {
        let mut args = args.to_vec();
        args.extend(["-n", "x"]);
        let (ok, out, err) = s.kubectl(&args).await;
        assert!(ok, "{args:?}: {err}");
        assert_eq!(out.trim(), want, "{args:?}");
    }

    let (_, cm) = s
        .req(Method::GET, "/api/v1/namespaces/x/configmaps/cm", None)
        .await;
    assert_eq!(cm["data"], serde_json::json!({"a": "b"}));
    let (_, sec) = s
        .req(Method::GET, "/api/v1/namespaces/x/secrets/sec", None)
        .await;
    assert_eq!(sec["data"], serde_json::json!({"k": "dg=="}));
    assert_eq!(sec["type"], "Opaque");
    let (_, d) = s
        .req(
            Method::GET,
            "/apis/apps/v1/namespaces/x/deployments/web",
            None,
        )
        .await;
    assert_eq!(d["spec"]["replicas"], 1);
    assert_eq!(
        d["spec"]["selector"],
        serde_json::json!({"matchLabels": {"app": "web"}})
    );
    let c = &d["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        (c["name"].as_str(), c["image"].as_str()),
        (Some("nginx"), Some("nginx"))
    );
    assert_eq!(d["spec"]["strategy"]["type"], "RollingUpdate");
    let (_, svc) = s
        .req(Method::GET, "/api/v1/namespaces/x/services/web", None)
        .await;
    assert_eq!(
        svc["spec"]["ports"],
        serde_json::json!([{"name": "80-8080", "protocol": "TCP", "port": 80, "targetPort": 8080}])
    );
    assert_eq!(svc["spec"]["selector"], serde_json::json!({"app": "web"}));
    assert_eq!(svc["spec"]["type"], "ClusterIP");
    assert!(svc["spec"]["clusterIP"]
        .as_str()
        .is_some_and(|ip| !ip.is_empty()));
    let (_, pod) = s
        .req(Method::GET, "/api/v1/namespaces/x/pods/p", None)
        .await;
    assert_eq!(pod["spec"]["containers"][0]["image"], "nginx");
    assert_eq!(pod["metadata"]["labels"], serde_json::json!({"run": "p"}));

    let (_, np) = s
        .req(Method::GET, "/api/v1/namespaces/x/services/np", None)
        .await;
    assert_eq!(np["spec"]["type"], "NodePort");
    assert!(np["spec"]["ports"][0]["nodePort"]
        .as_u64()
        .is_some_and(|p| p >= 30000));
    let (_, en) = s
        .req(Method::GET, "/api/v1/namespaces/x/services/en", None)
        .await;
    assert_eq!(en["spec"]["externalName"], "example.com");
    let (_, zero) = s
        .req(
            Method::GET,
            "/apis/apps/v1/namespaces/x/deployments/zero",
            None,
        )
        .await;
    assert_eq!(zero["spec"]["replicas"], 0);
    assert_eq!(
        zero["spec"]["template"]["spec"]["containers"][0]["ports"],
        serde_json::json!([{"containerPort": 8080, "protocol": "TCP"}])
    );
    let (_, exp) = s
        .req(Method::GET, "/api/v1/namespaces/x/services/exp", None)
        .await;
    assert_eq!(exp["spec"]["ports"][0]["targetPort"], 8080);
    assert_eq!(exp["spec"]["selector"], serde_json::json!({"app": "zero"}));
    let (_, ing) = s
        .req(
            Method::GET,
            "/apis/networking.k8s.io/v1/namespaces/x/ingresses/ing",
            None,
        )
        .await;
    assert_eq!(
        ing["spec"],
        serde_json::json!({
            "ingressClassName": "default",
            "tls": [{"hosts": ["foo.com"], "secretName": "cert"}],
            "rules": [{"host": "foo.com", "http": {"paths": [{
                "path": "/bar", "pathType": "Prefix",
                "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]
        })
    );

    // The same object kubectl reads back prints like any other.
    let (ok, out, err) = s
        .kubectl(&["get", "cm", "cm", "-n", "x", "-o", "jsonpath={.data.a}"])
        .await;
    assert!(ok, "{err}");
    assert_eq!(out, "b");
}
