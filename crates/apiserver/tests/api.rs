//! In-process API tests: auth, bootstrap, CRUD, conflicts, lists, watches and
//! Service allocation, over HTTPS against `run()` on an ephemeral port.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{nodeport_svc, TestServer};
use http::Method;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_requests_get_401_but_health_is_open() {
    let s = TestServer::start().await;
    let ca = s.dir.path().join("ca.pem");
    std::fs::write(&ca, &s.prepared.ca_cert_pem).unwrap();
    let curl = |path: &str| {
        let out = std::process::Command::new("curl")
            .args(["-s", "-m", "10", "--cacert"])
            .arg(&ca)
            .arg(format!("{}{path}", s.url))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let body: Value = serde_json::from_str(&curl("/api/v1/namespaces")).unwrap();
    assert_eq!(body["code"], 401);
    assert_eq!(body["reason"], "Unauthorized");
    assert_eq!(body["kind"], "Status");
    assert_eq!(curl("/healthz"), "ok");
    assert_eq!(curl("/readyz"), "ok");
    let v: Value = serde_json::from_str(&curl("/version")).unwrap();
    assert_eq!(v["major"], "1");
    let (code, metrics) = s.req(Method::GET, "/metrics", None).await;
    assert_eq!(code, 200);
    assert!(
        metrics
            .as_str()
            .unwrap()
            .contains("apiserver_request_total"),
        "{metrics}"
    );
    s.stop().await;
}

#[tokio::test]
async fn bootstrap_creates_namespaces_and_system_services() {
    let s = TestServer::start().await;
    let (code, list) = s.req(Method::GET, "/api/v1/namespaces", None).await;
    assert_eq!(code, 200);
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["metadata"]["name"].as_str().unwrap())
        .collect();
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        assert!(names.contains(&ns), "{names:?}");
    }
    assert_eq!(list["items"][0]["status"]["phase"], "Active");
    let (_, k) = s
        .req(
            Method::GET,
            "/api/v1/namespaces/default/services/kubernetes",
            None,
        )
        .await;
    assert_eq!(k["spec"]["clusterIP"], "10.96.0.1");
    assert_eq!(k["spec"]["ports"][0]["name"], "https");
    let (_, dns) = s
        .req(
            Method::GET,
            "/api/v1/namespaces/kube-system/services/kube-dns",
            None,
        )
        .await;
    assert_eq!(dns["spec"]["clusterIP"], "10.96.0.10");
    assert_eq!(dns["spec"]["ports"][0]["protocol"], "UDP");
    assert_eq!(
        dns["metadata"]["labels"]["service.kubernetes.io/service-proxy-name"],
        "portico-node-local-dns"
    );
    // The `kubernetes` endpoints point at this server.
    let port: u64 = s.url.rsplit(':').next().unwrap().parse().unwrap();
    let (code, eps) = s
        .req(
            Method::GET,
            "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/kubernetes",
            None,
        )
        .await;
    assert_eq!(code, 200, "{eps}");
    assert_eq!(eps["endpoints"][0]["addresses"][0], "127.0.0.1");
    assert_eq!(eps["ports"][0]["port"], port);
    let (code, ep) = s
        .req(
            Method::GET,
            "/api/v1/namespaces/default/endpoints/kubernetes",
            None,
        )
        .await;
    assert_eq!(
        (code, ep["subsets"][0]["ports"][0]["port"].as_u64()),
        (200, Some(port))
    );
    // Requesting .10 again hits the allocator.
    let mut taken = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "dup"}, "spec": {"clusterIP": "10.96.0.10", "ports": [{"port": 80}]}});
    let (code, st) = s
        .req(
            Method::POST,
            "/api/v1/namespaces/default/services",
            Some(&taken),
        )
        .await;
    assert_eq!(code, 422, "{st}");
    assert_eq!(
        st["message"],
        "Service \"dup\" is invalid: spec.clusterIPs: Invalid value: []string{\"10.96.0.10\"}: failed to allocate IP 10.96.0.10: provided IP is already allocated"
    );
    // A restart does not recreate or change anything.
    let dir = s.stop().await;
    let s = TestServer::start_in(dir).await;
    let (_, k2) = s
        .req(
            Method::GET,
            "/api/v1/namespaces/default/services/kubernetes",
            None,
        )
        .await;
    assert_eq!(k2["metadata"]["uid"], k["metadata"]["uid"]);
    taken["metadata"]["name"] = json!("other");
    s.stop().await;
}

#[tokio::test]
async fn crud_metadata_conflict_and_not_found() {
    let s = TestServer::start().await;
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c1", "labels": {"a": "b"}}, "data": {"k": "v"}});
    let (code, created) = s
        .req(
            Method::POST,
            "/api/v1/namespaces/default/configmaps",
            Some(&cm),
        )
        .await;
    assert_eq!(code, 201, "{created}");
    assert!(created["metadata"]["uid"].as_str().unwrap().len() > 10);
    assert!(created["metadata"]["creationTimestamp"]
        .as_str()
        .unwrap()
        .ends_with('Z'));
    let rv: u64 = created["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let (code, st) = s
        .req(
            Method::POST,
            "/api/v1/namespaces/default/configmaps",
            Some(&cm),
        )
        .await;
    assert_eq!((code, st["reason"].as_str()), (409, Some("AlreadyExists")));
    assert_eq!(st["message"], "configmaps \"c1\" already exists");

    let mut upd = created.clone();
    upd["data"]["k"] = json!("v2");
    let (code, updated) = s
        .req(
            Method::PUT,
            "/api/v1/namespaces/default/configmaps/c1",
            Some(&upd),
        )
        .await;
    assert_eq!(code, 200, "{updated}");
    let rv2: u64 = updated["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(rv2 > rv);
    assert_eq!(updated["metadata"]["uid"], created["metadata"]["uid"]);
    // Stale resourceVersion: 409 with Kubernetes' exact text.
    let (code, st) = s
        .req(
            Method::PUT,
            "/api/v1/namespaces/default/configmaps/c1",
            Some(&upd),
        )
        .await;
    assert_eq!(code, 409);
    assert_eq!(st["reason"], "Conflict");
    assert_eq!(
        st["message"],
        "Operation cannot be fulfilled on configmaps \"c1\": the object has been modified; please apply your changes to the latest version and try again"
    );
    // Merge patch.
    let (code, patched) = s
        .patch(
            "/api/v1/namespaces/default/configmaps/c1",
            &json!({"data": {"x": "y"}}),
            "application/merge-patch+json",
        )
        .await;
    assert_eq!(code, 200, "{patched}");
    assert_eq!(patched["data"], json!({"k": "v2", "x": "y"}));
    // JSON patch.
    let (code, patched) = s
        .patch(
            "/api/v1/namespaces/default/configmaps/c1",
            &json!([{"op": "remove", "path": "/data/x"}]),
            "application/json-patch+json",
        )
        .await;
    assert_eq!(code, 200, "{patched}");
    assert_eq!(patched["data"], json!({"k": "v2"}));
    // Missing namespace and missing object.
    let (code, st) = s
        .req(
            Method::POST,
            "/api/v1/namespaces/nope/configmaps",
            Some(&cm),
        )
        .await;
    assert_eq!(
        (code, st["message"].as_str()),
        (404, Some("namespaces \"nope\" not found"))
    );
    let (code, st) = s
        .req(Method::GET, "/api/v1/namespaces/default/services/x", None)
        .await;
    assert_eq!(
        (code, st["message"].as_str()),
        (404, Some("services \"x\" not found"))
    );
    let (code, st) = s
        .req(
            Method::GET,
            "/apis/apps/v1/namespaces/default/deployments/web",
            None,
        )
        .await;
    assert_eq!(
        (code, st["message"].as_str()),
        (404, Some("deployments.apps \"web\" not found"))
    );
    // generateName.
    let gen = json!({"metadata": {"generateName": "g-"}, "data": {}});
    let (code, g) = s
        .req(
            Method::POST,
            "/api/v1/namespaces/default/configmaps",
            Some(&gen),
        )
        .await;
    assert_eq!(code, 201);
    let name = g["metadata"]["name"].as_str().unwrap();
    assert!(name.starts_with("g-") && name.len() == 7, "{name}");
    // Delete returns the object, then it is gone.
    let (code, _) = s
        .req(
            Method::DELETE,
            "/api/v1/namespaces/default/configmaps/c1",
            None,
        )
        .await;
    assert_eq!(code, 200);
    let (code, _) = s
        .req(
            Method::GET,
            "/api/v1/namespaces/default/configmaps/c1",
            None,
        )
        .await;
    assert_eq!(code, 404);
    s.stop().await;
}

#[tokio::test]
async fn generation_status_and_scale_subresources() {
    let s = TestServer::start().await;
    let d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "labels": {"app": "nginx"}},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "nginx"}},
                 "template": {"metadata": {"labels": {"app": "nginx"}}, "spec": {"containers": [{"name": "nginx", "image": "nginx"}]}}}});
    let base = "/apis/apps/v1/namespaces/default/deployments";
    let (code, created) = s.req(Method::POST, base, Some(&d)).await;
    assert_eq!(code, 201, "{created}");
    assert_eq!(created["metadata"]["generation"], 1);
    let (_, p) = s
        .patch(
            &format!("{base}/web"),
            &json!({"metadata": {"labels": {"x": "y"}}}),
            "application/merge-patch+json",
        )
        .await;
    assert_eq!(
        p["metadata"]["generation"], 1,
        "metadata-only change keeps generation"
    );
    let (_, p) = s
        .patch(
            &format!("{base}/web"),
            &json!({"status": {"replicas": 5}}),
            "application/merge-patch+json",
        )
        .await;
    assert!(
        p["status"]["replicas"].is_null(),
        "status ignored on the main resource"
    );
    let (code, st) = s
        .patch(
            &format!("{base}/web/status"),
            &json!({"status": {"replicas": 2}, "spec": {"replicas": 9}}),
            "application/merge-patch+json",
        )
        .await;
    assert_eq!(code, 200, "{st}");
    assert_eq!(
        (
            st["status"]["replicas"].clone(),
            st["spec"]["replicas"].clone()
        ),
        (json!(2), json!(2))
    );
    let mf = st["metadata"]["managedFields"].as_array().unwrap();
    assert!(
        mf.iter()
            .any(|e| e["subresource"] == "status" && e["operation"] == "Update"),
        "{mf:?}"
    );
    assert!(
        mf.iter()
            .any(|e| e.get("subresource").is_none() && e["operation"] == "Update"),
        "{mf:?}"
    );
    let (code, scale) = s.req(Method::GET, &format!("{base}/web/scale"), None).await;
    assert_eq!(code, 200);
    assert_eq!(scale["kind"], "Scale");
    assert_eq!(scale["status"]["selector"], "app=nginx");
    let (code, scale) = s
        .patch(
            &format!("{base}/web/scale"),
            &json!({"spec": {"replicas": 4}}),
            "application/merge-patch+json",
        )
        .await;
    assert_eq!((code, scale["spec"]["replicas"].clone()), (200, json!(4)));
    let (_, d2) = s.req(Method::GET, &format!("{base}/web"), None).await;
    assert_eq!(d2["spec"]["replicas"], 4);
    assert_eq!(d2["metadata"]["generation"], 2);
    s.stop().await;
}

#[tokio::test]
async fn list_pagination_and_selectors() {
    let s = TestServer::start().await;
    for i in 0..7 {
        let app = if i % 2 == 0 { "even" } else { "odd" };
        let cm =
            json!({"metadata": {"name": format!("cm-{i}"), "labels": {"app": app}}, "data": {}});
        assert_eq!(
            s.req(
                Method::POST,
                "/api/v1/namespaces/default/configmaps",
                Some(&cm)
            )
            .await
            .0,
            201
        );
    }
    let mut names = Vec::new();
    let mut cont = String::new();
    for _ in 0..10 {
        let path = format!("/api/v1/namespaces/default/configmaps?limit=3&continue={cont}");
        let (code, page) = s.req(Method::GET, &path, None).await;
        assert_eq!(code, 200, "{page}");
        assert_eq!(page["kind"], "ConfigMapList");
        names.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["metadata"]["name"].as_str().unwrap().to_string()),
        );
        match page["metadata"]["continue"].as_str() {
            Some(c) => cont = c.to_string(),
            None => break,
        }
    }
    assert_eq!(names, (0..7).map(|i| format!("cm-{i}")).collect::<Vec<_>>());
    let (_, odd) = s
        .req(
            Method::GET,
            "/api/v1/namespaces/default/configmaps?labelSelector=app%3Dodd",
            None,
        )
        .await;
    assert_eq!(odd["items"].as_array().unwrap().len(), 3);
    let (_, one) = s
        .req(
            Method::GET,
            "/api/v1/configmaps?fieldSelector=metadata.name%3Dcm-4",
            None,
        )
        .await;
    assert_eq!(one["items"].as_array().unwrap().len(), 1);
    let (code, del) = s
        .req(
            Method::DELETE,
            "/api/v1/namespaces/default/configmaps?labelSelector=app%3Deven",
            None,
        )
        .await;
    assert_eq!(code, 200);
    assert_eq!(del["items"].as_array().unwrap().len(), 4);
    let (_, rest) = s
        .req(Method::GET, "/api/v1/namespaces/default/configmaps", None)
        .await;
    assert_eq!(rest["items"].as_array().unwrap().len(), 3);
    s.stop().await;
}

#[tokio::test]
async fn service_allocator_errors_are_verbatim() {
    let s = TestServer::start().await;
    let base = "/api/v1/namespaces/default/services";
    let (code, st) = s
        .req(Method::POST, base, Some(&nodeport_svc("x", Some(40000))))
        .await;
    assert_eq!(code, 422);
    assert_eq!(
        st["message"],
        "Service \"x\" is invalid: spec.ports[0].nodePort: Invalid value: 40000: provided port is not in the valid range. The range of valid ports is 30000-32767"
    );
    assert_eq!(
        st["details"]["causes"][0]["field"],
        "spec.ports[0].nodePort"
    );
    assert_eq!(st["details"]["causes"][0]["reason"], "FieldValueInvalid");
    let (code, svc) = s
        .req(
            Method::POST,
            base,
            Some(&nodeport_svc("nginx-service-nodeport", Some(30080))),
        )
        .await;
    assert_eq!(code, 201, "{svc}");
    assert_eq!(svc["spec"]["ports"][0]["nodePort"], 30080);
    assert!(svc["spec"]["clusterIP"]
        .as_str()
        .unwrap()
        .starts_with("10."));
    let (code, st) = s
        .req(Method::POST, base, Some(&nodeport_svc("y", Some(30080))))
        .await;
    assert_eq!(code, 422);
    assert_eq!(st["message"], "Service \"y\" is invalid: spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated");
    let bad_ip = json!({"metadata": {"name": "z"}, "spec": {"clusterIP": "1.1.1.1", "ports": [{"port": 80}]}});
    let (code, st) = s.req(Method::POST, base, Some(&bad_ip)).await;
    assert_eq!(code, 422);
    assert_eq!(
        st["message"],
        "Service \"z\" is invalid: spec.clusterIPs: Invalid value: []string{\"1.1.1.1\"}: failed to allocate IP 1.1.1.1: provided IP is not in the valid range. The range of valid IPs is 10.96.0.0/12"
    );
    // A freed port can be taken again at once.
    assert_eq!(
        s.req(
            Method::DELETE,
            &format!("{base}/nginx-service-nodeport"),
            None
        )
        .await
        .0,
        200
    );
    let (code, again) = s
        .req(Method::POST, base, Some(&nodeport_svc("y", Some(30080))))
        .await;
    assert_eq!(code, 201, "{again}");
    // NodePort -> ClusterIP releases the port.
    let (code, changed) = s
        .patch(
            &format!("{base}/y"),
            &json!({"spec": {"type": "ClusterIP"}}),
            "application/merge-patch+json",
        )
        .await;
    assert_eq!(code, 200, "{changed}");
    assert!(
        changed["spec"]["ports"][0].get("nodePort").is_none(),
        "{changed}"
    );
    let (code, _) = s
        .req(Method::POST, base, Some(&nodeport_svc("w", Some(30080))))
        .await;
    assert_eq!(code, 201);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_nodeport_creates_get_distinct_ports() {
    let s = std::sync::Arc::new(TestServer::start().await);
    let mut tasks = Vec::new();
    for i in 0..200 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let (code, svc) = s
                .req(
                    Method::POST,
                    "/api/v1/namespaces/default/services",
                    Some(&nodeport_svc(&format!("np-{i}"), None)),
                )
                .await;
            assert_eq!(code, 201, "{svc}");
            (
                svc["spec"]["ports"][0]["nodePort"].as_u64().unwrap(),
                svc["spec"]["clusterIP"].as_str().unwrap().to_string(),
            )
        }));
    }
    let mut ports = HashSet::new();
    let mut ips = HashSet::new();
    for t in tasks {
        let (p, ip) = t.await.unwrap();
        assert!((30000..=32767).contains(&p));
        assert!(ports.insert(p), "port {p} allocated twice");
        assert!(ips.insert(ip.clone()), "ip {ip} allocated twice");
    }
    assert_eq!(ports.len(), 200);
}

async fn read_events(
    body: &mut (impl futures::Stream<Item = Result<bytes::Bytes, kube::Error>> + Unpin),
    buf: &mut Vec<u8>,
    n: usize,
) -> Vec<Value> {
    use futures::StreamExt;
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while out.len() < n {
        while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=pos).collect();
            out.push(serde_json::from_slice(&line).unwrap());
            if out.len() == n {
                return out;
            }
        }
        let chunk = tokio::time::timeout_at(deadline, body.next())
            .await
            .expect("watch event timed out");
        match chunk {
            Some(Ok(c)) => buf.extend_from_slice(&c),
            _ => break,
        }
    }
    out
}

async fn open_watch(
    s: &TestServer,
    path: &str,
) -> (
    u16,
    std::pin::Pin<Box<dyn futures::Stream<Item = Result<bytes::Bytes, kube::Error>> + Send>>,
) {
    let req = http::Request::builder()
        .uri(path)
        .body(kube::client::Body::empty())
        .unwrap();
    let resp = s.client.send(req).await.unwrap();
    let code = resp.status().as_u16();
    let stream = http_body_util::BodyDataStream::new(resp.into_body());
    (code, Box::pin(stream))
}

#[tokio::test]
async fn watch_from_revision_with_selectors_bookmarks_and_410() {
    let s = TestServer::start().await;
    let base = "/api/v1/namespaces/default/configmaps";
    let (_, a) = s
        .req(
            Method::POST,
            base,
            Some(&json!({"metadata": {"name": "a", "labels": {"app": "web"}}})),
        )
        .await;
    let rv = a["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let (code, mut body) = open_watch(&s, &format!("{base}?watch=true&resourceVersion={rv}&labelSelector=app%3Dweb&allowWatchBookmarks=true")).await;
    assert_eq!(code, 200);
    let mut buf = Vec::new();
    s.req(
        Method::POST,
        base,
        Some(&json!({"metadata": {"name": "b", "labels": {"app": "web"}}})),
    )
    .await;
    s.req(
        Method::POST,
        base,
        Some(&json!({"metadata": {"name": "other", "labels": {"app": "db"}}})),
    )
    .await;
    s.patch(
        &format!("{base}/a"),
        &json!({"metadata": {"labels": {"app": "db"}}}),
        "application/merge-patch+json",
    )
    .await;
    s.req(Method::DELETE, &format!("{base}/b"), None).await;
    let evs = read_events(&mut body, &mut buf, 3).await;
    let summary: Vec<(String, String)> = evs
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap().to_string(),
                e["object"]["metadata"]["name"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("ADDED".into(), "b".into()),
            ("DELETED".into(), "a".into()),
            ("DELETED".into(), "b".into())
        ]
    );
    // A bookmark arrives within the bookmark interval and only carries the RV.
    let bm = read_events(&mut body, &mut buf, 1).await;
    assert_eq!(bm[0]["type"], "BOOKMARK");
    assert_eq!(bm[0]["object"]["kind"], "ConfigMap");
    assert!(
        bm[0]["object"]["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= rv.parse::<u64>().unwrap()
    );
    drop(body);
    // resourceVersion=0: current state as ADDED first.
    let (_, mut body) = open_watch(&s, &format!("{base}?watch=1&resourceVersion=0")).await;
    let mut buf = Vec::new();
    let evs = read_events(&mut body, &mut buf, 2).await;
    assert!(evs.iter().all(|e| e["type"] == "ADDED"));
    drop(body);
    // After a restart, history starts fresh: an old RV is 410 Expired.
    let dir = s.stop().await;
    let s = TestServer::start_in(dir).await;
    let (code, mut body) = open_watch(&s, &format!("{base}?watch=true&resourceVersion={rv}")).await;
    assert_eq!(code, 200);
    let mut buf = Vec::new();
    let evs = read_events(&mut body, &mut buf, 1).await;
    assert_eq!(evs[0]["type"], "ERROR");
    assert_eq!(evs[0]["object"]["code"], 410);
    assert_eq!(evs[0]["object"]["reason"], "Expired");
    assert!(evs[0]["object"]["message"]
        .as_str()
        .unwrap()
        .starts_with(&format!("too old resource version: {rv} (")));
    s.stop().await;
}

#[tokio::test]
async fn finalizers_and_namespace_termination() {
    let s = TestServer::start().await;
    let base = "/api/v1/namespaces/default/configmaps";
    s.req(
        Method::POST,
        base,
        Some(&json!({"metadata": {"name": "f", "finalizers": ["example.com/hold"]}})),
    )
    .await;
    let (code, marked) = s.req(Method::DELETE, &format!("{base}/f"), None).await;
    assert_eq!(code, 200);
    assert!(marked["metadata"]["deletionTimestamp"].is_string());
    let (code, _) = s.req(Method::GET, &format!("{base}/f"), None).await;
    assert_eq!(code, 200, "still there while a finalizer remains");
    let (code, _) = s
        .patch(
            &format!("{base}/f"),
            &json!({"metadata": {"finalizers": null}}),
            "application/merge-patch+json",
        )
        .await;
    assert_eq!(code, 200);
    let (code, _) = s.req(Method::GET, &format!("{base}/f"), None).await;
    assert_eq!(code, 404, "removing the last finalizer deletes it");

    let (code, _) = s
        .req(
            Method::POST,
            "/api/v1/namespaces",
            Some(&json!({"metadata": {"name": "t"}})),
        )
        .await;
    assert_eq!(code, 201);
    let (code, ns) = s.req(Method::DELETE, "/api/v1/namespaces/t", None).await;
    assert_eq!(code, 200);
    assert_eq!(ns["status"]["phase"], "Terminating");
    let (code, st) = s
        .req(
            Method::POST,
            "/api/v1/namespaces/t/configmaps",
            Some(&json!({"metadata": {"name": "x"}})),
        )
        .await;
    assert_eq!(code, 403);
    assert_eq!(st["message"], "configmaps \"x\" is forbidden: unable to create new content in namespace t because it is being terminated");
    let mut fin = ns.clone();
    fin["spec"]["finalizers"] = json!([]);
    let (code, _) = s
        .req(Method::PUT, "/api/v1/namespaces/t/finalize", Some(&fin))
        .await;
    assert_eq!(code, 200);
    let (code, _) = s.req(Method::GET, "/api/v1/namespaces/t", None).await;
    assert_eq!(code, 404);
    let (code, st) = s
        .req(Method::DELETE, "/api/v1/namespaces/default", None)
        .await;
    assert_eq!(
        (code, st["message"].as_str()),
        (
            403,
            Some("namespaces \"default\" is forbidden: this namespace may not be deleted")
        )
    );
    s.stop().await;
}

#[tokio::test]
async fn dry_run_checks_but_does_not_write() {
    let s = TestServer::start().await;
    let base = "/api/v1/namespaces/default/services";
    let (code, svc) = s
        .req(
            Method::POST,
            &format!("{base}?dryRun=All"),
            Some(&nodeport_svc("dry", Some(30090))),
        )
        .await;
    assert_eq!(code, 201, "{svc}");
    assert_eq!(svc["spec"]["ports"][0]["nodePort"], 30090);
    assert_eq!(
        s.req(Method::GET, &format!("{base}/dry"), None).await.0,
        404
    );
    // Nothing was allocated: the real create gets the same port.
    assert_eq!(
        s.req(Method::POST, base, Some(&nodeport_svc("real", Some(30090))))
            .await
            .0,
        201
    );
    let (code, st) = s
        .req(
            Method::POST,
            &format!("{base}?dryRun=All"),
            Some(&nodeport_svc("real", None)),
        )
        .await;
    assert_eq!((code, st["reason"].as_str()), (409, Some("AlreadyExists")));
    let (code, st) = s
        .req(
            Method::POST,
            &format!("{base}?dryRun=All"),
            Some(&nodeport_svc("other", Some(30090))),
        )
        .await;
    assert_eq!(code, 422, "{st}");
    let (code, _) = s
        .req(Method::DELETE, &format!("{base}/real?dryRun=All"), None)
        .await;
    assert_eq!(code, 200);
    assert_eq!(
        s.req(Method::GET, &format!("{base}/real"), None).await.0,
        200
    );
    s.stop().await;
}

#[tokio::test]
async fn pod_binding_and_graceful_delete() {
    let s = TestServer::start().await;
    let base = "/api/v1/namespaces/default/pods";
    let pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}});
    let (code, created) = s.req(Method::POST, base, Some(&pod)).await;
    assert_eq!(code, 201, "{created}");
    let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"}, "target": {"kind": "Node", "name": "n1"}});
    let (code, st) = s
        .req(Method::POST, &format!("{base}/p/binding"), Some(&binding))
        .await;
    assert_eq!(code, 201, "{st}");
    let (code, st) = s
        .req(Method::POST, &format!("{base}/p/binding"), Some(&binding))
        .await;
    assert_eq!(code, 409);
    assert_eq!(
        st["message"],
        "Operation cannot be fulfilled on pods \"p\": pod p is already assigned to node \"n1\""
    );
    let (_, p) = s.req(Method::GET, &format!("{base}/p"), None).await;
    assert_eq!(p["spec"]["nodeName"], "n1");
    // Scheduled pods terminate gracefully; the node agent finishes with grace 0.
    let (code, marked) = s.req(Method::DELETE, &format!("{base}/p"), None).await;
    assert_eq!(code, 200);
    assert_eq!(marked["metadata"]["deletionGracePeriodSeconds"], 30);
    assert_eq!(s.req(Method::GET, &format!("{base}/p"), None).await.0, 200);
    let (code, _) = s
        .req(
            Method::DELETE,
            &format!("{base}/p"),
            Some(&json!({"gracePeriodSeconds": 0})),
        )
        .await;
    assert_eq!(code, 200);
    assert_eq!(s.req(Method::GET, &format!("{base}/p"), None).await.0, 404);
    s.stop().await;
}
