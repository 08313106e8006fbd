//! Memory held by the controllers' caches at N Services (issue 2's RSS goal), measured with
//! a counting allocator, so the figures do not depend on machine load.
//!
//! Builds what the in-process controllers hold after `bench/apiserver`'s 10,000 Service
//! creates (each Service with a selector and no pods, one managed EndpointSlice and one
//! Endpoints per Service, objects shaped exactly as Portico's API server returns them):
//! the caches of those kinds both ways — kube-rs reflector stores (typed objects behind
//! `Arc`, keyed by `ObjectRef`; what the controllers used before) and the compact stores
//! they use now — the endpoint controller's label indexes, and the garbage collector's
//! ownership graph (now, and rebuilt as it was laid out before), and prints the live
//! bytes of each.
//!
//! `cargo run --release -p portico-controllers --example cache_mem -- [SERVICES]`

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Endpoints, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::ApiResource;
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::watcher::Event;
use kube::ResourceExt;
use portico_controllers::cache::CompactStore;
use portico_controllers::gc::store::{Graph, GraphNode};
use portico_controllers::index::LabelIndex;
use serde::de::DeserializeOwned;
use serde::Serialize;

// A global allocator is an unsafe trait with no safe wrapper in std; this one only counts
// and forwards to the system allocator.
#[allow(unsafe_code)]
mod counting {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::sync::atomic::{AtomicIsize, Ordering};

    /// Counts live heap bytes (requested sizes; the allocator's size classes add ~10–25 %).
    struct Counting;

    static LIVE: AtomicIsize = AtomicIsize::new(0);

    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
            unsafe { System.alloc(layout) }
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
            unsafe { System.dealloc(ptr, layout) }
        }
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            LIVE.fetch_add(
                new_size as isize - layout.size() as isize,
                Ordering::Relaxed,
            );
            unsafe { System.realloc(ptr, layout, new_size) }
        }
    }

    #[global_allocator]
    static GLOBAL: Counting = Counting;

    pub fn live() -> isize {
        LIVE.load(Ordering::Relaxed)
    }
}
use counting::live;

fn uid(kind: u32, i: u32) -> String {
    format!("{kind:08x}-2121-4a26-a12d-{i:012x}")
}

// Shapes copied from `kubectl get -o json` against `portico server` (22:37 UTC build).
fn service(i: u32) -> String {
    format!(
        r#"{{"apiVersion":"v1","kind":"Service","metadata":{{"creationTimestamp":"2026-12-04T22:37:24Z","name":"svc-{i}","namespace":"bench","resourceVersion":"{rv}","uid":"{uid}"}},"spec":{{"clusterIP":"10.106.{a}.{b}","clusterIPs":["10.106.{a}.{b}"],"internalTrafficPolicy":"Cluster","ipFamilies":["IPv4"],"ipFamilyPolicy":"SingleStack","ports":[{{"port":80,"protocol":"TCP","targetPort":8080}}],"selector":{{"app":"svc-{i}"}},"sessionAffinity":"None","type":"ClusterIP"}},"status":{{"loadBalancer":{{}}}}}}"#,
        rv = 100_000 + i,
        uid = uid(1, i),
        a = i / 256,
        b = i % 256
    )
}

fn slice(i: u32) -> String {
    format!(
        r#"{{"addressType":"IPv4","apiVersion":"discovery.k8s.io/v1","endpoints":[],"kind":"EndpointSlice","metadata":{{"creationTimestamp":"2026-12-04T22:37:24Z","generateName":"svc-{i}-","labels":{{"endpointslice.kubernetes.io/managed-by":"endpointslice-controller.k8s.io","kubernetes.io/service-name":"svc-{i}"}},"name":"svc-{i}-2kh54","namespace":"bench","ownerReferences":[{{"apiVersion":"v1","blockOwnerDeletion":true,"controller":true,"kind":"Service","name":"svc-{i}","uid":"{owner}"}}],"resourceVersion":"{rv}","uid":"{uid}"}},"ports":[]}}"#,
        rv = 200_000 + i,
        uid = uid(2, i),
        owner = uid(1, i)
    )
}

fn endpoints(i: u32) -> String {
    format!(
        r#"{{"apiVersion":"v1","kind":"Endpoints","metadata":{{"creationTimestamp":"2026-12-04T22:37:24Z","name":"svc-{i}","namespace":"bench","resourceVersion":"{rv}","uid":"{uid}"}},"subsets":[]}}"#,
        rv = 300_000 + i,
        uid = uid(3, i)
    )
}

/// Live bytes of a reflector store holding `n` objects built by `json`.
fn store_bytes<K>(n: u32, json: fn(u32) -> String) -> (isize, reflector::Store<K>)
where
    K: kube::Resource<DynamicType = ()> + DeserializeOwned + Clone + std::fmt::Debug,
{
    let before = live();
    let (store, mut writer) = reflector::store::<K>();
    for i in 0..n {
        let Ok(obj) = serde_json::from_str::<K>(&json(i)) else {
            eprintln!("bad fixture for {}", K::kind(&()));
            std::process::exit(1);
        };
        writer.apply_watcher_event(&Event::Apply(obj));
    }
    (live() - before, store)
}

/// Live bytes of a compact store holding `n` objects built by `json`.
fn compact_bytes<K>(n: u32, json: fn(u32) -> String) -> isize
where
    K: kube::Resource<DynamicType = ()> + DeserializeOwned + Serialize,
{
    let before = live();
    let store = CompactStore::for_kind::<K>();
    for i in 0..n {
        let Ok(obj) = serde_json::from_str::<K>(&json(i)) else {
            eprintln!("bad fixture for {}", K::kind(&()));
            std::process::exit(1);
        };
        store.insert(&obj);
        drop(obj);
    }
    let b = live() - before;
    if store.len() != n as usize {
        eprintln!("compact store holds {} of {n}", store.len());
        std::process::exit(1);
    }
    std::mem::forget(store);
    b
}

/// The collector's graph as it was laid out before (a full node per object keyed by a
/// `String` UID, plus an owner index of `String` sets and the owners again per object).
#[allow(dead_code)]
struct OldNode {
    resource: Arc<ApiResource>,
    namespace: Option<String>,
    name: String,
    owners: Vec<OwnerReference>,
    finalizers: Vec<String>,
    deleting: bool,
}

/// Old layout: nodes by UID, owner UID → dependents, dependent → owner UIDs.
type OldGraph = (
    HashMap<String, OldNode>,
    HashMap<String, HashSet<String>>,
    HashMap<String, Vec<String>>,
);

/// Live bytes of the collector's graph after seeing every object, old and new layout.
fn gc_bytes<K: kube::Resource<DynamicType = ()>>(
    objs: &[Arc<K>],
    old: &mut OldGraph,
    new: &Graph,
) -> (isize, isize) {
    let resource = Arc::new(ApiResource::erase::<K>(&()));
    let before = live();
    for o in objs {
        let uid = o.uid().unwrap_or_default();
        let owners: Vec<String> = o.owner_references().iter().map(|r| r.uid.clone()).collect();
        if !owners.is_empty() {
            for u in &owners {
                old.1.entry(u.clone()).or_default().insert(uid.clone());
            }
            old.2.insert(uid.clone(), owners);
        }
        old.0.insert(
            uid,
            OldNode {
                resource: resource.clone(),
                namespace: o.namespace(),
                name: o.name_any(),
                owners: o.owner_references().to_vec(),
                finalizers: o.finalizers().to_vec(),
                deleting: false,
            },
        );
    }
    let old_b = live() - before;
    let before = live();
    for o in objs {
        new.observe(
            &o.uid().unwrap_or_default(),
            GraphNode {
                resource: resource.clone(),
                namespace: o.namespace(),
                name: o.name_any(),
                owners: o.owner_references().to_vec(),
                finalizers: o.finalizers().to_vec(),
                deleting: false,
            },
        );
    }
    (old_b, live() - before)
}

fn mib(b: isize) -> String {
    format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0))
}

fn main() {
    let n: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000);
    let (svc_b, svcs) = store_bytes::<Service>(n, service);
    let (slice_b, slices) = store_bytes::<EndpointSlice>(n, slice);
    let (ep_b, eps) = store_bytes::<Endpoints>(n, endpoints);
    let svc_c = compact_bytes::<Service>(n, service);
    let slice_c = compact_bytes::<EndpointSlice>(n, slice);
    let ep_c = compact_bytes::<Endpoints>(n, endpoints);

    let mut old_gc = Default::default();
    let new_gc = Graph::default();
    let (g1, n1) = gc_bytes(&svcs.state(), &mut old_gc, &new_gc);
    let (g2, n2) = gc_bytes(&slices.state(), &mut old_gc, &new_gc);
    let (g3, n3) = gc_bytes(&eps.state(), &mut old_gc, &new_gc);
    let (gc_old, gc_new) = (g1 + g2 + g3, n1 + n2 + n3);
    if new_gc.len() != 3 * n as usize || new_gc.dependents(&uid(1, 0)).len() != 1 {
        eprintln!("graph holds {} objects", new_gc.len());
        std::process::exit(1);
    }

    // The endpoint controller's indexes: Services by selector, our slices by Service name.
    let before = live();
    let svc_index = LabelIndex::new();
    for s in svcs.state() {
        let sel = s
            .spec
            .as_ref()
            .and_then(|s| s.selector.clone())
            .unwrap_or_default();
        svc_index.set(&s.namespace().unwrap_or_default(), &s.name_any(), &sel);
    }
    let svc_idx_b = live() - before;
    let before = live();
    let slice_index = LabelIndex::new();
    for s in slices.state() {
        if let Some(svc) = s.labels().get("kubernetes.io/service-name") {
            let m = BTreeMap::from([("kubernetes.io/service-name".to_string(), svc.clone())]);
            slice_index.set(&s.namespace().unwrap_or_default(), &s.name_any(), &m);
        }
    }
    let slice_idx_b = live() - before;
    // Sanity: the index answers what the controller asks.
    let probe = BTreeMap::from([(
        "kubernetes.io/service-name".to_string(),
        "svc-0".to_string(),
    )]);
    let found = slice_index.containing("bench", &probe);
    let key_b = size_of::<ObjectRef<Service>>();

    println!(
        "| cache ({n} Services) | before: live bytes | per object | now: live bytes | per object |"
    );
    println!("|---|---|---|---|---|");
    let per = |b: isize| b / n.max(1) as isize;
    let rows = [
        ("Service store", svc_b, svc_c),
        ("EndpointSlice store", slice_b, slice_c),
        ("Endpoints store", ep_b, ep_c),
        ("GC graph (3 objects per Service)", gc_old, gc_new),
        ("Service selector index", svc_idx_b, svc_idx_b),
        ("managed-slice index", slice_idx_b, slice_idx_b),
    ];
    for (name, b, c) in rows {
        println!(
            "| {name} | {} | {} B | {} | {} B |",
            mib(b),
            per(b),
            mib(c),
            per(c)
        );
    }
    let (tb, tc): (isize, isize) = (
        rows.iter().map(|r| r.1).sum(),
        rows.iter().map(|r| r.2).sum(),
    );
    println!(
        "| total | {} | {} B | {} | {} B |",
        mib(tb),
        per(tb),
        mib(tc),
        per(tc)
    );
    println!(
        "(inline sizes: Service {} B, EndpointSlice {} B, Endpoints {} B, ObjectRef {key_b} B; index probe found {:?})",
        size_of::<Service>(),
        size_of::<EndpointSlice>(),
        size_of::<Endpoints>(),
        found
    );
}
