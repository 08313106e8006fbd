//! The `apply` and `get` scenarios of the kubectl verb tests: client-side
//! apply, tables cell by cell with kubectl's column layout, output formats.

use serde_json::Value;

use crate::support::{
    cells, cluster_ips, examples_dir, in_service_range, jsonpath, rows, strs, tables, Kubectl,
    SVC_HEADER,
};

pub async fn apply_examples_and_get(k: &Kubectl) {
    let out = k.ok(&["apply", "-f", &examples_dir()]).await;
    assert_eq!(
        out,
        "service/external-db created\n\
         deployment.apps/my-app created\n\
         service/my-app-lb created\n\
         service/my-app-nodeport created\n\
         service/my-app-service created\n\
         ingress.networking.k8s.io/my-ingress created\n\
         deployment.apps/nginx-deployment created\n\
         service/nginx-service-nodeport created\n"
    );
    let ips = cluster_ips(k).await;
    for (name, ip) in &ips {
        if name != "external-db" {
            assert!(in_service_range(ip), "{name}: {ip}");
        }
    }
    let lb_np = jsonpath(k, &["svc", "my-app-lb"], "{.spec.ports[0].nodePort}").await;
    let (h, r) = rows(&k.ok(&["get", "svc"]).await);
    assert_eq!(h, strs(SVC_HEADER));
    let row = |n: &str, t: &str, ip: &str, ext: &str, p: &str| strs(&[n, t, ip, ext, p, "<age>"]);
    let ip = |n: &str| ips[n].clone();
    let want = vec![
        row(
            "external-db",
            "ExternalName",
            "<none>",
            "db.example.com",
            "<none>",
        ),
        row("kubernetes", "ClusterIP", "10.96.0.1", "<none>", "443/TCP"),
        row(
            "my-app-lb",
            "LoadBalancer",
            &ip("my-app-lb"),
            "<pending>",
            &format!("80:{lb_np}/TCP"),
        ),
        row(
            "my-app-nodeport",
            "NodePort",
            &ip("my-app-nodeport"),
            "<none>",
            "80:30081/TCP",
        ),
        row(
            "my-app-service",
            "ClusterIP",
            &ip("my-app-service"),
            "<none>",
            "80/TCP",
        ),
        row(
            "nginx-service-nodeport",
            "NodePort",
            &ip("nginx-service-nodeport"),
            "<none>",
            "80:30080/TCP",
        ),
    ];
    assert_eq!(r, want, "kubectl 1.{} get svc", k.minor);

    // -o wide adds SELECTOR; --show-labels adds LABELS; -l filters.
    let (h, r) = rows(
        &k.ok(&["get", "svc", "-o", "wide", "--show-labels", "-l", "app!=x"])
            .await,
    );
    let mut wide = strs(SVC_HEADER);
    wide.extend(strs(&["SELECTOR", "LABELS"]));
    assert_eq!(h, wide);
    let k8s = r.iter().find(|r| r[0] == "kubernetes").unwrap();
    assert_eq!(
        k8s[6..],
        strs(&["<none>", "component=apiserver,provider=kubernetes"])
    );
    let ng = r.iter().find(|r| r[0] == "nginx-service-nodeport").unwrap();
    assert_eq!(ng[6..], strs(&["app=nginx", "<none>"]));

    let (_, r) = rows(&k.ok(&["get", "deploy", "-l", "app=nginx"]).await);
    assert_eq!(
        r,
        vec![strs(&["nginx-deployment", "0/2", "0", "0", "<age>"])]
    );
    let none = k.run(&["get", "svc", "-l", "app=nginx"]).await;
    assert!(none.ok);
    assert_eq!(
        (none.stdout.as_str(), none.stderr.as_str()),
        ("", "No resources found in default namespace.\n"),
        "Services carry no labels"
    );
}

const NGINX_SVC_CHANGED: &str = "apiVersion: v1
kind: Service
metadata:
  name: nginx-service-nodeport
  labels:
    tier: edge
spec:
  selector:
    app: nginx
  type: NodePort
  ports:
    - protocol: TCP
      port: 80
      targetPort: 8080
      nodePort: 30080
";

/// Client-side apply of a changed file patches the live object.
pub async fn client_side_apply_patches(k: &Kubectl) {
    let out = k.ok_stdin(&["apply", "-f", "-"], NGINX_SVC_CHANGED).await;
    assert_eq!(out, "service/nginx-service-nodeport configured\n");
    let got = jsonpath(
        k,
        &["svc", "nginx-service-nodeport"],
        "{.spec.ports[0].targetPort} {.spec.ports[0].nodePort} {.metadata.labels.tier}",
    )
    .await;
    assert_eq!(got, "8080 30080 edge");
    let out = k.ok_stdin(&["apply", "-f", "-"], NGINX_SVC_CHANGED).await;
    assert_eq!(out, "service/nginx-service-nodeport unchanged\n");
    // Re-applying the directory changes only what differs from its files.
    let out = k.ok(&["apply", "-f", &examples_dir()]).await;
    assert_eq!(
        out,
        "service/external-db unchanged\n\
         deployment.apps/my-app unchanged\n\
         service/my-app-lb unchanged\n\
         service/my-app-nodeport unchanged\n\
         service/my-app-service unchanged\n\
         ingress.networking.k8s.io/my-ingress unchanged\n\
         deployment.apps/nginx-deployment unchanged\n\
         service/nginx-service-nodeport configured\n"
    );
    let got = jsonpath(
        k,
        &["svc", "nginx-service-nodeport"],
        "{.spec.ports[0].targetPort}|{.metadata.labels}",
    )
    .await;
    assert_eq!(got, "80|", "the label only the changed file had is gone");
    let out = k.ok_stdin(&["apply", "-f", "-"], NGINX_SVC_CHANGED).await;
    assert_eq!(out, "service/nginx-service-nodeport configured\n");
}

pub const ENDPOINTS_WARNING: &str =
    "Warning: v1 Endpoints is deprecated in v1.33+; use discovery.k8s.io/v1 EndpointSlice\n";

const NODE_AND_RS: &str = "apiVersion: v1
kind: Node
metadata:
  name: n1
status:
  addresses:
  - type: InternalIP
    address: 192.0.2.10
  conditions:
  - type: Ready
    status: \"True\"
    reason: KubeletReady
    message: ready
  nodeInfo:
    kubeletVersion: v1.33.0
    osImage: Debian GNU/Linux 12 (bookworm)
    kernelVersion: 6.1.0
    containerRuntimeVersion: portico://0.1
    architecture: amd64
    operatingSystem: linux
    bootID: b
    kubeProxyVersion: v1.33.0
    machineID: m
    systemUUID: s
---
apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: web-rs
spec:
  replicas: 0
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: web
        image: nginx
";

/// `get` across kinds and namespaces, `-o wide`, and `get all`.
pub async fn get_many_kinds(k: &Kubectl, api_port: u16) {
    let out = k.ok_stdin(&["apply", "-f", "-"], NODE_AND_RS).await;
    assert_eq!(out, "node/n1 created\nreplicaset.apps/web-rs created\n");
    let out = k
        .ok(&["run", "web", "--image=nginx", "--labels=app=web"])
        .await;
    assert_eq!(out, "pod/web created\n");

    let what = "deploy,svc,ing,ep,endpointslices,ns,nodes,pods";
    for wide in [false, true] {
        let mut args = vec!["get", what, "-A"];
        if wide {
            args.extend(["-o", "wide"]);
        }
        let o = k.run(&args).await;
        assert!(o.ok, "{}", o.stderr);
        // kube-apiserver 1.33 warns on every use of v1 Endpoints.
        assert_eq!(o.stderr, ENDPOINTS_WARNING);
        let out = o.stdout;
        let t = tables(&out);
        let headers: Vec<Vec<String>> = t.iter().map(|(h, _)| h.clone()).collect();
        let h = |base: &[&str], extra: &[&str]| {
            let mut v = strs(&["NAMESPACE"]);
            v.extend(strs(base));
            if wide {
                v.extend(strs(extra));
            }
            v
        };
        let want = vec![
            h(
                &["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
                &["CONTAINERS", "IMAGES", "SELECTOR"],
            ),
            h(SVC_HEADER, &["SELECTOR"]),
            h(&["NAME", "CLASS", "HOSTS", "ADDRESS", "PORTS", "AGE"], &[]),
            h(&["NAME", "ENDPOINTS", "AGE"], &[]),
            h(&["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"], &[]),
            h(&["NAME", "STATUS", "AGE"], &[]),
            h(
                &["NAME", "STATUS", "ROLES", "AGE", "VERSION"],
                &[
                    "INTERNAL-IP",
                    "EXTERNAL-IP",
                    "OS-IMAGE",
                    "KERNEL-VERSION",
                    "CONTAINER-RUNTIME",
                ],
            ),
            h(
                &["NAME", "READY", "STATUS", "RESTARTS", "AGE"],
                &["IP", "NODE", "NOMINATED NODE", "READINESS GATES"],
            ),
        ];
        assert_eq!(
            headers, want,
            "kubectl 1.{} get {what} -A (wide: {wide})",
            k.minor
        );
        let find = |sec: usize, name: &str| -> Vec<String> {
            let (hh, rr) = &t[sec];
            let r = rr
                .iter()
                .find(|r| r[1] == name)
                .unwrap_or_else(|| panic!("{name} missing: {out}"));
            cells(hh, r)
        };
        let dep = find(0, "deployment.apps/nginx-deployment");
        assert_eq!(
            dep[..6],
            strs(&[
                "default",
                "deployment.apps/nginx-deployment",
                "0/2",
                "0",
                "0",
                "<age>"
            ])
        );
        if wide {
            assert_eq!(dep[6..], strs(&["nginx", "nginx:latest", "app=nginx"]));
        }
        let dns = find(1, "service/kube-dns");
        assert_eq!(
            dns[..6],
            strs(&[
                "kube-system",
                "service/kube-dns",
                "ClusterIP",
                "10.96.0.10",
                "<none>",
                "53/UDP,53/TCP"
            ])
        );
        let ing = find(2, "ingress.networking.k8s.io/my-ingress");
        assert_eq!(
            ing,
            strs(&[
                "default",
                "ingress.networking.k8s.io/my-ingress",
                "nginx",
                "myapp.example.com",
                "",
                "80",
                "<age>"
            ])
        );
        // The `kubernetes` Endpoints and EndpointSlice point at this server.
        let ep = find(3, "endpoints/kubernetes");
        assert_eq!(
            ep,
            strs(&[
                "default",
                "endpoints/kubernetes",
                &format!("127.0.0.1:{api_port}"),
                "<age>"
            ])
        );
        let eps = find(4, "endpointslice.discovery.k8s.io/kubernetes");
        let port = api_port.to_string();
        assert_eq!(
            eps,
            strs(&[
                "default",
                "endpointslice.discovery.k8s.io/kubernetes",
                "IPv4",
                &port,
                "127.0.0.1",
                "<age>"
            ])
        );
        let ns = find(5, "namespace/kube-system");
        assert_eq!(ns, strs(&["", "namespace/kube-system", "Active", "<age>"]));
        let node = find(6, "node/n1");
        let mut want_node = strs(&["", "node/n1", "Ready", "<none>", "<age>", "v1.33.0"]);
        if wide {
            want_node.extend(strs(&[
                "192.0.2.10",
                "<none>",
                "Debian GNU/Linux 12 (bookworm)",
                "6.1.0",
                "portico://0.1",
            ]));
        }
        assert_eq!(node, want_node);
        let pod = find(7, "pod/web");
        let mut want_pod = strs(&["default", "pod/web", "0/1", "Pending", "0", "<age>"]);
        if wide {
            want_pod.extend(strs(&["<none>", "<none>", "<none>", "<none>"]));
        }
        assert_eq!(pod, want_pod);
    }

    // `get all`: the kinds in category "all", one section each.
    let out = k.ok(&["get", "all"]).await;
    let t = tables(&out);
    let heads: Vec<&str> = t
        .iter()
        .map(|(_, r)| r[0][0].split('/').next().unwrap())
        .collect();
    assert_eq!(
        heads,
        ["pod", "service", "deployment.apps", "replicaset.apps"],
        "{out}"
    );
    assert_eq!(
        t[0].0,
        strs(&["NAME", "READY", "STATUS", "RESTARTS", "AGE"])
    );
    assert_eq!(t[1].0, strs(SVC_HEADER));
    assert_eq!(
        t[2].0,
        strs(&["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"])
    );
    assert_eq!(
        t[3].0,
        strs(&["NAME", "DESIRED", "CURRENT", "READY", "AGE"])
    );
    assert_eq!(
        cells(&t[3].0, &t[3].1[0]),
        strs(&["replicaset.apps/web-rs", "0", "0", "0", "<age>"])
    );
    assert_eq!(
        cells(&t[0].0, &t[0].1[0]),
        strs(&["pod/web", "0/1", "Pending", "0", "<age>"])
    );
}

/// `-o yaml`, `-o json` (both round-trip) and `-o jsonpath`.
pub async fn output_formats(k: &Kubectl) {
    let name = ["svc", "nginx-service-nodeport"];
    let json = k.ok(&["get", name[0], name[1], "-o", "json"]).await;
    let v: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        (v["apiVersion"].as_str(), v["kind"].as_str()),
        (Some("v1"), Some("Service"))
    );
    let rv = v["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(rv.parse::<u64>().is_ok(), "{rv}");
    assert!(
        v["metadata"].get("managedFields").is_none(),
        "kubectl hides managedFields"
    );
    assert!(
        v["metadata"].get("generation").is_none(),
        "Services have no generation"
    );
    assert_eq!(v["spec"]["ports"][0]["nodePort"], 30080);
    assert_eq!(v["spec"]["ipFamilyPolicy"], "SingleStack");

    let yaml = k.ok(&["get", name[0], name[1], "-o", "yaml"]).await;
    assert!(
        yaml.starts_with("apiVersion: v1\nkind: Service\nmetadata:\n"),
        "{yaml}"
    );
    assert!(
        yaml.contains(&format!("\n  resourceVersion: \"{rv}\"\n")),
        "{yaml}"
    );
    assert!(
        yaml.contains("\n  name: nginx-service-nodeport\n  namespace: default\n"),
        "{yaml}"
    );
    assert!(yaml.contains("\n  - nodePort: 30080\n"), "{yaml}");
    assert!(
        !yaml.contains("managedFields") && !yaml.contains("generation:"),
        "{yaml}"
    );
    // Round trip: what kubectl printed is what it can send back.
    let out = k.ok_stdin(&["replace", "-f", "-"], &yaml).await;
    assert_eq!(out, "service/nginx-service-nodeport replaced\n");
    // The JSON read before that replace is stale now.
    let stale = k.run_with(&["replace", "-f", "-"], Some(&json), &[]).await;
    assert!(!stale.ok);
    assert_eq!(
        stale.stderr,
        "Error from server (Conflict): error when replacing \"STDIN\": Operation cannot be fulfilled on services \"nginx-service-nodeport\": the object has been modified; please apply your changes to the latest version and try again\n"
    );

    let fresh = k.ok(&["get", name[0], name[1], "-o", "json"]).await;
    let out = k.ok_stdin(&["replace", "-f", "-"], &fresh).await;
    assert_eq!(out, "service/nginx-service-nodeport replaced\n");

    let with_mf = k
        .ok(&[
            "get",
            name[0],
            name[1],
            "-o",
            "json",
            "--show-managed-fields",
        ])
        .await;
    let v: Value = serde_json::from_str(&with_mf).unwrap();
    let managers: Vec<(&str, &str)> = v["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["manager"].as_str().unwrap(),
                e["operation"].as_str().unwrap(),
            )
        })
        .collect();
    assert!(
        managers.contains(&("kubectl-client-side-apply", "Update")),
        "{managers:?}"
    );
    assert!(
        managers.contains(&("kubectl-replace", "Update")),
        "{managers:?}"
    );

    let list: Value = serde_json::from_str(&k.ok(&["get", "svc", "-o", "json"]).await).unwrap();
    assert_eq!(
        (list["apiVersion"].as_str(), list["kind"].as_str()),
        (Some("v1"), Some("List"))
    );
    assert_eq!(list["items"].as_array().unwrap().len(), 6);
    let list_yaml = k.ok(&["get", "deploy", "-o", "yaml"]).await;
    assert!(
        list_yaml
            .starts_with("apiVersion: v1\nitems:\n- apiVersion: apps/v1\n  kind: Deployment\n"),
        "{list_yaml}"
    );
    assert!(
        list_yaml.ends_with("kind: List\nmetadata:\n  resourceVersion: \"\"\n"),
        "{list_yaml}"
    );

    assert_eq!(
        jsonpath(k, &name, "{.spec.ports[0].nodePort}").await,
        "30080"
    );
    assert_eq!(
        jsonpath(k, &["svc", "-l", "tier=edge"], "{.items[*].metadata.name}").await,
        "nginx-service-nodeport"
    );
    assert_eq!(
        jsonpath(k, &["deploy"], "{.items[*].spec.replicas}").await,
        "3 2"
    );
}
