//! Integration tests of `RedbStore`: compare-and-swap, revisions across restarts,
//! watches, compaction, concurrent claims and durability under `kill -9`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use portico_store::redb_store::Options;
use portico_store::{Compare, EventKind, Op, RedbStore, Store, StoreError, TxnOutcome, WatchRecv};

fn put(k: &str, v: &str) -> Op {
    Op::Put(k.to_string(), v.as_bytes().to_vec())
}

async fn commit(s: &dyn Store, compares: Vec<Compare>, ops: Vec<Op>) -> u64 {
    match s.txn(compares, ops).await.unwrap() {
        TxnOutcome::Committed(r) => r,
        other => panic!("expected commit, got {other:?}"),
    }
}

#[tokio::test]
async fn compare_and_swap_semantics() {
    let dir = tempfile::tempdir().unwrap();
    let s = RedbStore::open(dir.path()).unwrap();
    let r1 = commit(
        &s,
        vec![Compare::KeyMissing("/a".into())],
        vec![put("/a", "1")],
    )
    .await;
    assert_eq!(r1, 1);
    // Creating again fails on the first compare and reports the current value.
    match s
        .txn(vec![Compare::KeyMissing("/a".into())], vec![put("/a", "2")])
        .await
        .unwrap()
    {
        TxnOutcome::Failed { index, current } => {
            assert_eq!(index, 0);
            assert_eq!(current.unwrap().value, b"1");
        }
        other => panic!("{other:?}"),
    }
    // Stale mod revision fails; the right one succeeds and keeps create_revision.
    let r_other = commit(&s, vec![], vec![put("/b", "x")]).await;
    assert_eq!(r_other, 2);
    let failed = s
        .txn(
            vec![Compare::ModRevision("/a".into(), 2)],
            vec![put("/a", "3")],
        )
        .await
        .unwrap();
    assert!(matches!(failed, TxnOutcome::Failed { index: 0, .. }));
    let r3 = commit(
        &s,
        vec![Compare::ModRevision("/a".into(), 1)],
        vec![put("/a", "3")],
    )
    .await;
    assert_eq!(r3, 3);
    let a = s.get("/a").await.unwrap().unwrap();
    assert_eq!(
        (a.create_revision, a.mod_revision, a.value.as_slice()),
        (1, 3, b"3".as_slice())
    );
    // All-or-nothing: the second compare fails, so the put of /c does not happen.
    let failed = s
        .txn(
            vec![
                Compare::KeyMissing("/c".into()),
                Compare::KeyMissing("/a".into()),
            ],
            vec![put("/c", "1")],
        )
        .await
        .unwrap();
    assert!(matches!(failed, TxnOutcome::Failed { index: 1, .. }));
    assert!(s.get("/c").await.unwrap().is_none());
    // Delete with a compare; deleting a missing key changes nothing.
    let r4 = commit(
        &s,
        vec![Compare::ModRevision("/a".into(), 3)],
        vec![Op::Delete("/a".into())],
    )
    .await;
    assert_eq!(r4, 4);
    let r5 = commit(&s, vec![], vec![Op::Delete("/a".into())]).await;
    assert_eq!(r5, 4, "a no-op txn does not bump the revision");
    assert_eq!(s.current_revision(), 4);
}

#[tokio::test]
async fn list_prefix_pagination_and_revision() {
    let dir = tempfile::tempdir().unwrap();
    let s = RedbStore::open(dir.path()).unwrap();
    for k in ["/p/a", "/p/b", "/p/c", "/q/a", "/o/z"] {
        commit(&s, vec![], vec![put(k, "{}")]).await;
    }
    let (items, rev) = s.list("/p/", None, Some(2)).await.unwrap();
    assert_eq!(rev, 5);
    let keys: Vec<_> = items.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(keys, ["/p/a", "/p/b"]);
    let (items, _) = s.list("/p/", Some("/p/b"), Some(10)).await.unwrap();
    let keys: Vec<_> = items.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(keys, ["/p/c"]);
}

#[tokio::test]
async fn revision_is_monotonic_across_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = RedbStore::open(dir.path()).unwrap();
        for i in 0..5 {
            commit(&s, vec![], vec![put(&format!("/k/{i}"), "v")]).await;
        }
        assert_eq!(s.current_revision(), 5);
    }
    let s = RedbStore::open(dir.path()).unwrap();
    assert_eq!(s.current_revision(), 5);
    let r = commit(&s, vec![], vec![put("/k/x", "v")]).await;
    assert_eq!(r, 6);
    assert_eq!(s.get("/k/0").await.unwrap().unwrap().mod_revision, 1);
    // After a restart the history is empty: older watches are compacted.
    assert!(matches!(
        s.watch("/k/", 2),
        Err(StoreError::Compacted {
            requested: 2,
            oldest: 5
        })
    ));
}

#[tokio::test]
async fn watch_from_revision_in_order_with_prev() {
    let dir = tempfile::tempdir().unwrap();
    let s = RedbStore::open(dir.path()).unwrap();
    commit(&s, vec![], vec![put("/w/a", "1")]).await; // 1
    commit(&s, vec![], vec![put("/other", "1")]).await; // 2
    commit(&s, vec![], vec![put("/w/a", "2")]).await; // 3
    let mut w = s.watch("/w/", 1).unwrap();
    commit(
        &s,
        vec![],
        vec![Op::Delete("/w/a".into()), put("/w/b", "1")],
    )
    .await; // 4
    let mut got = Vec::new();
    for _ in 0..3 {
        match tokio::time::timeout(Duration::from_secs(5), w.recv())
            .await
            .unwrap()
        {
            WatchRecv::Event(e) => got.push(e),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(got[0].revision, 3);
    assert_eq!(got[0].kind, EventKind::Put);
    assert_eq!(got[0].prev.as_ref().unwrap().value, b"1");
    assert_eq!(
        (got[1].revision, got[1].kind.clone(), got[1].key.as_str()),
        (4, EventKind::Delete, "/w/a")
    );
    assert_eq!(got[1].prev.as_ref().unwrap().value, b"2");
    assert_eq!((got[2].revision, got[2].key.as_str()), (4, "/w/b"));
    assert_eq!(w.try_recv(), WatchRecv::Empty);
}

#[tokio::test]
async fn watch_older_than_ring_is_compacted() {
    let dir = tempfile::tempdir().unwrap();
    let s = RedbStore::open_with(
        dir.path(),
        Options {
            history: 10,
            ..Options::default()
        },
    )
    .unwrap();
    for i in 0..30 {
        commit(&s, vec![], vec![put(&format!("/c/{i}"), "v")]).await;
    }
    match s.watch("/c/", 5) {
        Err(StoreError::Compacted { requested, oldest }) => {
            assert_eq!(requested, 5);
            assert_eq!(oldest, 20);
        }
        other => panic!("expected compacted, got {:?}", other.err()),
    }
    let mut w = s.watch("/c/", 20).unwrap();
    match w.try_recv() {
        WatchRecv::Event(e) => assert_eq!(e.revision, 21),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_claims_have_exactly_one_winner_each() {
    let dir = tempfile::tempdir().unwrap();
    let s: Arc<dyn Store> = Arc::new(RedbStore::open(dir.path()).unwrap());
    // 200 tasks claim 50 keys, 4 contenders per key.
    let mut tasks = Vec::new();
    for i in 0..200u32 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let key = format!("/claim/{}", i % 50);
            let out = s
                .txn(
                    vec![Compare::KeyMissing(key.clone())],
                    vec![Op::Put(key, i.to_string().into_bytes())],
                )
                .await
                .unwrap();
            (i, matches!(out, TxnOutcome::Committed(_)))
        }));
    }
    let mut winners = std::collections::HashMap::new();
    for t in tasks {
        let (i, won) = t.await.unwrap();
        if won {
            assert!(
                winners.insert(i % 50, i).is_none(),
                "two winners for key {}",
                i % 50
            );
        }
    }
    assert_eq!(winners.len(), 50);
    for (k, i) in winners {
        let v = s.get(&format!("/claim/{k}")).await.unwrap().unwrap();
        assert_eq!(v.value, i.to_string().into_bytes());
    }
    assert_eq!(s.current_revision(), 50);
}

const CHILD_ENV: &str = "PORTICO_STORE_KILL_CHILD_DIR";

/// Child half of the kill -9 test: writes keys forever, printing each acknowledged one.
#[test]
fn kill9_child_writer() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return; // Only does something when re-executed by `acknowledged_writes_survive_kill9`.
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        let s: Arc<dyn Store> = Arc::new(RedbStore::open(&dir).unwrap());
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<u32>();
        // Concurrent writers so group commit is exercised; bounded in count.
        for w in 0..8u32 {
            let s = s.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                for i in 0..100_000u32 {
                    let n = w * 1_000_000 + i;
                    let key = format!("/durable/{n}");
                    if let Ok(TxnOutcome::Committed(_)) = s
                        .txn(
                            vec![Compare::KeyMissing(key.clone())],
                            vec![Op::Put(key, b"v".to_vec())],
                        )
                        .await
                    {
                        let _ = tx.send(n);
                    }
                }
            });
        }
        drop(tx);
        use std::io::Write;
        let mut out = std::io::stdout();
        while let Some(n) = rx.recv().await {
            writeln!(out, "ACK {n}").unwrap();
            out.flush().unwrap();
        }
    });
}

#[tokio::test]
async fn acknowledged_writes_survive_kill9() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args([
            "--exact",
            "kill9_child_writer",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut acked = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if let Some(n) = line.strip_prefix("ACK ") {
            acked.push(n.to_string());
        }
        if acked.len() >= 300 || Instant::now() > deadline {
            break;
        }
    }
    // Child::kill sends SIGKILL on Unix: no destructors, no flush.
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        acked.len() >= 300,
        "child acknowledged only {} writes",
        acked.len()
    );
    let s = RedbStore::open(dir.path()).unwrap();
    for n in &acked {
        assert!(
            s.get(&format!("/durable/{n}")).await.unwrap().is_some(),
            "acknowledged key {n} lost"
        );
    }
    let (all, rev) = s.list("/durable/", None, None).await.unwrap();
    assert_eq!(rev as usize, all.len(), "one revision per committed key");
}
