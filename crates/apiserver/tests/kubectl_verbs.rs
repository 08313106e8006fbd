//! Issue 2 acceptance: the everyday kubectl verbs (apply, get in its output
//! forms, describe, edit, label, annotate, scale, server-side apply, get -w,
//! delete, wait --for=delete) print what they print against Kubernetes, for
//! kubectl 1.27, 1.32 and 1.33 — one server per version, versions in parallel.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
#[path = "kubectl_verbs/get.rs"]
mod get;
#[path = "kubectl_verbs/support.rs"]
mod support;
#[path = "kubectl_verbs/verbs.rs"]
mod verbs;

use common::TestServer;
use support::Kubectl;

async fn all_verbs(minor: u32) {
    let s = TestServer::start().await;
    let k = Kubectl::version(minor, s.kubeconfig(), s.dir.path());
    let started = std::time::Instant::now();
    get::apply_examples_and_get(&k).await;
    get::client_side_apply_patches(&k).await;
    let port = s.url.rsplit(':').next().unwrap().parse().unwrap();
    get::get_many_kinds(&k, port).await;
    get::output_formats(&k).await;
    verbs::label_annotate_describe_edit(&k, s.dir.path()).await;
    verbs::scale(&k).await;
    verbs::server_side_apply(&k).await;
    verbs::get_watch(&k).await;
    verbs::delete_and_wait(&k).await;
    eprintln!("kubectl 1.{minor}: verbs took {:?}", started.elapsed());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_1_27_verbs() {
    all_verbs(27).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_1_32_verbs() {
    all_verbs(32).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_1_33_verbs() {
    all_verbs(33).await;
}
