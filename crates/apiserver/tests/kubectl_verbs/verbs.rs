//! The object-changing verbs of the kubectl verb tests: label, annotate,
//! describe, edit, scale, server-side apply, get -w, delete and wait.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::get::ENDPOINTS_WARNING;
use crate::support::{jsonpath, parse_table, rows, strs, tabwrite, Kubectl, SVC_HEADER};

const FOO_SVC: &str = "apiVersion: v1
kind: Service
metadata:
  name: foo
spec:
  type: NodePort
  selector:
    app: foo
  ports:
  - name: http
    port: 80
    targetPort: 8080
";

/// `label`, `annotate`, `describe svc` and `edit` with an EDITOR script.
pub async fn label_annotate_describe_edit(k: &Kubectl, scratch: &Path) {
    assert_eq!(
        k.ok_stdin(&["apply", "-f", "-"], FOO_SVC).await,
        "service/foo created\n"
    );
    assert_eq!(
        k.ok(&["label", "svc", "foo", "tier=web"]).await,
        "service/foo labeled\n"
    );
    // kubectl 1.27 itself prints "annotate"; later versions "annotated".
    let annotated = if k.minor == 27 {
        "annotate"
    } else {
        "annotated"
    };
    assert_eq!(
        k.ok(&["annotate", "svc", "foo", "note=hi"]).await,
        format!("service/foo {annotated}\n")
    );
    let (h, r) = rows(&k.ok(&["get", "svc", "foo", "--show-labels"]).await);
    assert_eq!(h.last().unwrap(), "LABELS");
    assert_eq!(r[0].last().unwrap(), "tier=web");
    assert_eq!(
        k.ok(&["label", "svc", "foo", "tier-"]).await,
        "service/foo unlabeled\n"
    );
    assert_eq!(
        k.ok(&["label", "svc", "foo", "tier=web"]).await,
        "service/foo labeled\n"
    );

    let ip = jsonpath(k, &["svc", "foo"], "{.spec.clusterIP}").await;
    let np = jsonpath(k, &["svc", "foo"], "{.spec.ports[0].nodePort}").await;
    let o = k.run(&["describe", "svc", "foo"]).await;
    assert!(o.ok, "{}", o.stderr);
    // kubectl 1.27 reads the v1 Endpoints (later ones the EndpointSlices).
    let warning = if k.minor == 27 { ENDPOINTS_WARNING } else { "" };
    assert_eq!(o.stderr, warning);
    let out = o.stdout;
    let mut want: Vec<Vec<String>> = vec![
        strs(&["Name:", "foo"]),
        strs(&["Namespace:", "default"]),
        strs(&["Labels:", "tier=web"]),
        strs(&["Annotations:", "note: hi"]),
        strs(&["Selector:", "app=foo"]),
        strs(&["Type:", "NodePort"]),
        strs(&["IP Family Policy:", "SingleStack"]),
        strs(&["IP Families:", "IPv4"]),
        strs(&["IP:", &ip]),
        strs(&["IPs:", &ip]),
        strs(&["Port:", "http", "80/TCP"]),
        strs(&["TargetPort:", "8080/TCP"]),
        strs(&["NodePort:", "http", &format!("{np}/TCP")]),
        strs(&["Endpoints:", "<none>"]),
        strs(&["Session Affinity:", "None"]),
        strs(&["External Traffic Policy:", "Cluster"]),
    ];
    if k.minor > 27 {
        want.push(strs(&["Internal Traffic Policy:", "Cluster"]));
    }
    want.push(strs(&["Events:", "<none>"]));
    assert_eq!(
        out,
        tabwrite(&want, 0, 2),
        "kubectl 1.{} describe svc",
        k.minor
    );

    let editor = scratch.join(format!("editor-1.{}.sh", k.minor));
    std::fs::write(
        &editor,
        "#!/bin/sh\nsed -i 's/targetPort: 8080/targetPort: 9376/' \"$1\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&editor, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let o = k
        .run_with(
            &["edit", "svc", "foo"],
            None,
            &[("EDITOR", editor.to_str().unwrap()), ("KUBE_EDITOR", "")],
        )
        .await;
    assert!(o.ok, "{}", o.stderr);
    assert_eq!(o.stdout, "service/foo edited\n");
    assert_eq!(
        jsonpath(k, &["svc", "foo"], "{.spec.ports[0].targetPort}").await,
        "9376"
    );
    // An edit that changes nothing says so and writes nothing.
    let noop = k
        .run_with(
            &["edit", "svc", "foo"],
            None,
            &[("EDITOR", "true"), ("KUBE_EDITOR", "")],
        )
        .await;
    assert!(noop.ok, "{}", noop.stderr);
    assert_eq!(noop.stderr, "Edit cancelled, no changes made.\n");
}

pub async fn scale(k: &Kubectl) {
    let out = k
        .ok(&["scale", "deploy", "nginx-deployment", "--replicas=3"])
        .await;
    assert_eq!(out, "deployment.apps/nginx-deployment scaled\n");
    let (_, r) = rows(&k.ok(&["get", "deploy", "nginx-deployment"]).await);
    assert_eq!(
        r,
        vec![strs(&["nginx-deployment", "0/3", "0", "0", "<age>"])]
    );
    let o = k
        .run(&[
            "scale",
            "deploy",
            "nginx-deployment",
            "--replicas=1",
            "--current-replicas=2",
        ])
        .await;
    assert!(!o.ok);
    assert_eq!(o.stderr, "error: Expected replicas to be 2, was 3\n");
}

const SSA_SVC: &str = "apiVersion: v1
kind: Service
metadata:
  name: ssa
spec:
  selector:
    app: ssa
  ports:
  - port: 80
    targetPort: 8080
";

const CONFLICT_HELP: &str =
    "Please review the fields above--they currently have other managers. Here
are the ways you can resolve this warning:
* If you intend to manage all of these fields, please re-run the apply
  command with the `--force-conflicts` flag.
* If you do not intend to manage all of the fields, please edit your
  manifest to remove references to the fields that should keep their
  current managers.
* You may co-own fields by updating your manifest to match the existing
  value; in this case, you'll become the manager if the other manager(s)
  stop managing the field (remove it from their configuration).
See https://kubernetes.io/docs/reference/using-api/server-side-apply/#conflicts
";

pub async fn server_side_apply(k: &Kubectl) {
    let ssa = ["apply", "--server-side", "-f", "-"];
    assert_eq!(
        k.ok_stdin(&ssa, SSA_SVC).await,
        "service/ssa serverside-applied\n"
    );
    assert_eq!(
        k.ok_stdin(&ssa, SSA_SVC).await,
        "service/ssa serverside-applied\n"
    );
    let with_mf = k
        .ok(&["get", "svc", "ssa", "-o", "json", "--show-managed-fields"])
        .await;
    let v: Value = serde_json::from_str(&with_mf).unwrap();
    let mf = v["metadata"]["managedFields"].as_array().unwrap();
    assert_eq!(mf.len(), 1, "{mf:?}");
    assert_eq!(
        (mf[0]["manager"].as_str(), mf[0]["operation"].as_str()),
        (Some("kubectl"), Some("Apply"))
    );

    let theirs = SSA_SVC.replace("targetPort: 8080", "targetPort: 9090");
    let args = ["apply", "--server-side", "--field-manager=other", "-f", "-"];
    let o = k.run_with(&args, Some(&theirs), &[]).await;
    assert!(!o.ok);
    assert_eq!(
        o.stderr,
        format!("error: Apply failed with 1 conflict: conflict with \"kubectl\": .spec.ports[port=80,protocol=\"TCP\"].targetPort\n{CONFLICT_HELP}")
    );
    let forced = [
        "apply",
        "--server-side",
        "--field-manager=other",
        "--force-conflicts",
        "-f",
        "-",
    ];
    assert_eq!(
        k.ok_stdin(&forced, &theirs).await,
        "service/ssa serverside-applied\n"
    );
    assert_eq!(
        jsonpath(k, &["svc", "ssa"], "{.spec.ports[0].targetPort}").await,
        "9090"
    );
    // The field moved to "other": kubectl's own apply of the old value conflicts now.
    let o = k.run_with(&ssa, Some(SSA_SVC), &[]).await;
    assert!(!o.ok);
    assert!(o.stderr.starts_with("error: Apply failed with 1 conflict: conflict with \"other\": .spec.ports[port=80,protocol=\"TCP\"].targetPort\n"), "{}", o.stderr);
}

async fn next_line(lines: &mut Lines, deadline: tokio::time::Instant) -> String {
    tokio::time::timeout_at(deadline, lines.next_line())
        .await
        .expect("kubectl get -w printed nothing in time")
        .unwrap()
        .expect("kubectl get -w ended")
}

type Lines = tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>;

fn watch(k: &Kubectl, args: &[&str]) -> (tokio::process::Child, Lines) {
    use tokio::io::AsyncBufReadExt;
    let mut child = k.spawn(args);
    let lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    (child, lines)
}

/// `get -w` prints the current rows, then a row per later change; with
/// `--output-watch-events` and a label selector, objects leaving and entering
/// the selection are DELETED and ADDED (as kube-apiserver's filtered watch).
pub async fn get_watch(k: &Kubectl) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let (mut one, mut one_lines) = watch(k, &["get", "svc", "foo", "-w", "--show-labels"]);
    let args = [
        "get",
        "svc",
        "-w",
        "--output-watch-events",
        "-l",
        "tier=web",
    ];
    let (mut sel, mut sel_lines) = watch(k, &args);
    // Once a watcher printed its listed rows it watches from the list's version:
    // later changes cannot be missed.
    let header = next_line(&mut one_lines, deadline).await;
    let first = next_line(&mut one_lines, deadline).await;
    let mut wide = strs(SVC_HEADER);
    wide.push("LABELS".into());
    let (h, r) = parse_table(&format!("{header}\n{first}\n"));
    assert_eq!(h, wide);
    assert_eq!(r[0].last().unwrap(), "tier=web");
    let sel_header = next_line(&mut sel_lines, deadline).await;
    let mut events_header = strs(&["EVENT"]);
    events_header.extend(strs(SVC_HEADER));
    let event = |line: String| {
        let (h, r) = parse_table(&format!("{sel_header}\n{line}\n"));
        assert_eq!(h, events_header);
        (r[0][0].clone(), r[0][1].clone())
    };
    let added = ("ADDED".to_string(), "foo".to_string());
    assert_eq!(event(next_line(&mut sel_lines, deadline).await), added);

    assert_eq!(
        k.ok(&["label", "svc", "foo", "stage=two"]).await,
        "service/foo labeled\n"
    );
    let later = next_line(&mut one_lines, deadline).await;
    let (_, r) = parse_table(&format!("{header}\n{later}\n"));
    assert_eq!(r[0][0], "foo");
    assert_eq!(r[0].last().unwrap(), "stage=two,tier=web", "{later}");
    let modified = ("MODIFIED".to_string(), "foo".to_string());
    assert_eq!(event(next_line(&mut sel_lines, deadline).await), modified);

    let relabel = ["label", "svc", "foo", "tier=other", "--overwrite"];
    assert_eq!(k.ok(&relabel).await, "service/foo labeled\n");
    let deleted = ("DELETED".to_string(), "foo".to_string());
    assert_eq!(event(next_line(&mut sel_lines, deadline).await), deleted);
    let back = ["label", "svc", "foo", "tier=web", "--overwrite"];
    assert_eq!(k.ok(&back).await, "service/foo labeled\n");
    assert_eq!(event(next_line(&mut sel_lines, deadline).await), added);
    one.kill().await.unwrap();
    sel.kill().await.unwrap();
}

/// `delete` and `wait --for=delete`, which returns once a finalizer is released.
pub async fn delete_and_wait(k: &Kubectl) {
    assert_eq!(
        k.ok(&["delete", "deploy", "my-app"]).await,
        "deployment.apps \"my-app\" deleted\n"
    );
    let o = k.run(&["get", "deploy", "my-app"]).await;
    assert_eq!(
        o.stderr,
        "Error from server (NotFound): deployments.apps \"my-app\" not found\n"
    );

    let out = k
        .ok(&[
            "patch",
            "svc",
            "foo",
            "--type=merge",
            "-p",
            r#"{"metadata":{"finalizers":["example.com/hold"]}}"#,
        ])
        .await;
    assert_eq!(out, "service/foo patched\n");
    assert_eq!(
        k.ok(&["delete", "svc", "foo", "--wait=false"]).await,
        "service \"foo\" deleted\n"
    );
    let mut waiter = k.spawn(&["wait", "--for=delete", "svc/foo", "--timeout=60s"]);
    // Held by its finalizer: still there, marked for deletion, and wait keeps waiting.
    let ts = jsonpath(k, &["svc", "foo"], "{.metadata.deletionTimestamp}").await;
    assert!(ts.ends_with('Z'), "{ts}");
    let early = tokio::time::timeout(Duration::from_secs(1), waiter.wait()).await;
    assert!(
        early.is_err(),
        "wait returned while the finalizer holds: {early:?}"
    );
    let out = k
        .ok(&[
            "patch",
            "svc",
            "foo",
            "--type=json",
            "-p",
            r#"[{"op":"remove","path":"/metadata/finalizers"}]"#,
        ])
        .await;
    assert_eq!(out, "service/foo patched\n");
    let out = tokio::time::timeout(Duration::from_secs(30), waiter.wait_with_output())
        .await
        .expect("kubectl wait did not return")
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "service/foo condition met\n"
    );
    let o = k.run(&["get", "svc", "foo"]).await;
    assert_eq!(
        o.stderr,
        "Error from server (NotFound): services \"foo\" not found\n"
    );
}
