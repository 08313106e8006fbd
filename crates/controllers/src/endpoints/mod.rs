//! EndpointSlice and Endpoints controller: keeps every selector Service's managed slices and
//! legacy Endpoints in step with its pods.

pub mod legacy;
pub mod ports;
pub mod slices;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{DeleteParams, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, ResourceExt};

use crate::cache::Cache;
use crate::index::LabelIndex;
use crate::queue::{run_workers, WorkQueue};
use crate::util::{ignore_not_found, key_of, split_key};
use crate::{ControllerError, Informers, Shared};

/// Concurrent reconciles. A reconcile mostly waits on one or two API writes, so after a
/// cold start (10,000 Services to write) throughput grows with writes in flight; 8 left the
/// API server's group commit mostly idle.
const WORKERS: usize = 32;

/// How long to trust the cache to catch up with our own writes before acting anyway.
const EXPECTATION_TIMEOUT: Duration = Duration::from_secs(3);

struct Ctl {
    client: Client,
    services: Cache<Service>,
    pods: Store<Pod>,
    slices: Cache<EndpointSlice>,
    endpoints: Cache<Endpoints>,
    pod_index: Arc<LabelIndex>,
    slice_index: Arc<LabelIndex>,
    expectations: Mutex<HashMap<String, (Instant, Vec<Expect>)>>,
}

/// What the cache must show before a Service is reconciled again (our last writes).
#[derive(Debug, Clone)]
enum Expect {
    Present { name: String, rv: String },
    Absent { name: String },
}

/// Registers handlers and returns the controller's worker loop.
pub(crate) fn setup(inf: &mut Informers, shared: &Shared) -> BoxFuture<'static, ()> {
    let queue = WorkQueue::new();
    let pod_index = Arc::new(LabelIndex::new());
    let svc_index = Arc::new(LabelIndex::new());
    let slice_index = Arc::new(LabelIndex::new());

    {
        let (q, idx) = (queue.clone(), svc_index.clone());
        inf.services.on_change(move |_old, new| {
            if let Some(svc) = new {
                let sel = svc
                    .spec
                    .as_ref()
                    .and_then(|s| s.selector.clone())
                    .unwrap_or_default();
                idx.set(&svc.namespace().unwrap_or_default(), &svc.name_any(), &sel);
                q.add(key_of(svc));
            } else if let Some(svc) = _old {
                idx.remove(&svc.namespace().unwrap_or_default(), &svc.name_any());
                q.add(key_of(svc));
            }
        });
    }
    {
        let (q, svcs, pods) = (queue.clone(), svc_index.clone(), pod_index.clone());
        inf.pods.on_change(move |old, new| {
            for pod in [old, new].into_iter().flatten() {
                let ns = pod.namespace().unwrap_or_default();
                for name in svcs.contained_in(&ns, pod.labels()) {
                    q.add(format!("{ns}/{name}"));
                }
            }
            match (old, new) {
                (_, Some(p)) => pods.set(
                    &p.namespace().unwrap_or_default(),
                    &p.name_any(),
                    p.labels(),
                ),
                (Some(p), None) => pods.remove(&p.namespace().unwrap_or_default(), &p.name_any()),
                (None, None) => {}
            }
        });
    }
    {
        let (q, idx) = (queue.clone(), slice_index.clone());
        inf.slices.on_change(move |old, new| {
            let obj = new.or(old);
            if let Some(s) = obj {
                let ns = s.namespace().unwrap_or_default();
                // Only our slices are looked up, and only by Service name: index just
                // that pair, not every label of every slice.
                let managed = new
                    .filter(|n| {
                        n.labels().get(slices::LABEL_MANAGED_BY).map(String::as_str)
                            == Some(slices::MANAGED_BY)
                    })
                    .and_then(|n| n.labels().get(slices::LABEL_SERVICE_NAME));
                match managed {
                    Some(svc) => idx.set(
                        &ns,
                        &s.name_any(),
                        &BTreeMap::from([(slices::LABEL_SERVICE_NAME.to_string(), svc.clone())]),
                    ),
                    None => idx.remove(&ns, &s.name_any()),
                }
                if s.labels().get(slices::LABEL_MANAGED_BY).map(String::as_str)
                    == Some(slices::MANAGED_BY)
                {
                    if let Some(svc) = s.labels().get(slices::LABEL_SERVICE_NAME) {
                        q.add(format!("{ns}/{svc}"));
                    }
                }
            }
        });
    }
    {
        let q = queue.clone();
        inf.endpoints.on_change(move |old, new| {
            if let Some(e) = new.or(old) {
                q.add(key_of(e));
            }
        });
    }

    let ready = vec![
        inf.services.ready(),
        inf.pods.ready(),
        inf.slices.ready(),
        inf.endpoints.ready(),
    ];
    let ctl = Arc::new(Ctl {
        client: shared.client.clone(),
        services: inf.services.cache(),
        pods: inf.pods.store(),
        slices: inf.slices.cache(),
        endpoints: inf.endpoints.cache(),
        pod_index,
        slice_index,
        expectations: Mutex::new(HashMap::new()),
    });
    Box::pin(async move {
        if !crate::informer::all_ready(ready).await {
            return;
        }
        run_workers("endpointslice", queue, WORKERS, move |key| {
            let ctl = ctl.clone();
            async move { ctl.reconcile(&key).await }
        })
        .await;
    })
}

/// Numeric resourceVersions (ours and etcd's) compare by age; others only by equality.
fn rv_at_least(have: Option<&str>, want: &str) -> bool {
    match (
        have.and_then(|h| h.parse::<u64>().ok()),
        want.parse::<u64>().ok(),
    ) {
        (Some(h), Some(w)) => h >= w,
        _ => have == Some(want),
    }
}

impl Ctl {
    fn managed_slices(&self, ns: &str, svc: &str) -> Vec<EndpointSlice> {
        // The index holds only slices managed by us (see the slice handler).
        let sel = BTreeMap::from([(slices::LABEL_SERVICE_NAME.to_string(), svc.to_string())]);
        self.slice_index
            .containing(ns, &sel)
            .into_iter()
            .filter_map(|n| self.slices.get(&ObjectRef::new(&n).within(ns)))
            .map(Arc::unwrap_or_clone)
            .collect()
    }

    /// Whether the cache reflects our previous writes for `key`.
    fn caught_up(&self, key: &str, ns: &str) -> bool {
        let Ok(mut exp) = self.expectations.lock() else {
            return true;
        };
        let Some((at, list)) = exp.get(key) else {
            return true;
        };
        let done = at.elapsed() > EXPECTATION_TIMEOUT
            || list.iter().all(|e| match e {
                Expect::Present { name, rv } => {
                    let cur = self.slices.get(&ObjectRef::new(name).within(ns));
                    rv_at_least(
                        cur.as_ref()
                            .and_then(|s| s.metadata.resource_version.as_deref()),
                        rv,
                    )
                }
                Expect::Absent { name } => {
                    self.slices.get(&ObjectRef::new(name).within(ns)).is_none()
                }
            });
        if done {
            exp.remove(key);
        }
        done
    }

    async fn reconcile(&self, key: &str) -> Result<Option<Duration>, ControllerError> {
        let (Some(ns), name) = split_key(key) else {
            return Ok(None);
        };
        if !self.caught_up(key, ns) {
            // The slice watch will requeue us; the timer is a safety net.
            return Ok(Some(Duration::from_millis(500)));
        }
        let slice_api: Api<EndpointSlice> = Api::namespaced(self.client.clone(), ns);
        let ep_api: Api<Endpoints> = Api::namespaced(self.client.clone(), ns);
        let svc = self.services.get(&ObjectRef::new(name).within(ns));
        let Some(svc) = svc else {
            // Service gone: remove what we manage (the GC would, via ownerReferences, too).
            for s in self.managed_slices(ns, name) {
                ignore_not_found(
                    slice_api
                        .delete(&s.name_any(), &DeleteParams::default())
                        .await,
                )?;
            }
            if self
                .endpoints
                .get(&ObjectRef::new(name).within(ns))
                .is_some()
            {
                ignore_not_found(ep_api.delete(name, &DeleteParams::default()).await)?;
            }
            return Ok(None);
        };
        let Some(spec) = svc.spec.as_ref() else {
            return Ok(None);
        };
        let selector = spec.selector.clone().unwrap_or_default();
        if selector.is_empty() || spec.type_.as_deref() == Some("ExternalName") {
            // User-managed endpoints: leave them alone.
            return Ok(None);
        }
        let pods: Vec<Arc<Pod>> = self
            .pod_index
            .containing(ns, &selector)
            .into_iter()
            .filter_map(|n| self.pods.get(&ObjectRef::new(&n).within(ns)))
            .collect();
        let slice_eps: Vec<_> = pods
            .iter()
            .filter_map(|p| ports::pod_endpoint(&svc, p, true))
            .collect();
        let existing = self.managed_slices(ns, name);
        let plan = slices::plan_slices(&svc, &slice_eps, &existing);
        let mut expects = Vec::new();
        let pp = PostParams::default();
        for name in &plan.delete {
            ignore_not_found(slice_api.delete(name, &DeleteParams::default()).await)?;
            expects.push(Expect::Absent { name: name.clone() });
        }
        let mut result = Ok(());
        for s in &plan.update {
            match slice_api.replace(&s.name_any(), &pp, s).await {
                Ok(w) => expects.push(Expect::Present {
                    name: w.name_any(),
                    rv: w.resource_version().unwrap_or_default(),
                }),
                Err(e) => result = Err(e),
            }
        }
        for s in &plan.create {
            match slice_api.create(&pp, s).await {
                Ok(w) => expects.push(Expect::Present {
                    name: w.name_any(),
                    rv: w.resource_version().unwrap_or_default(),
                }),
                Err(e) => result = Err(e),
            }
        }
        if !expects.is_empty() {
            if let Ok(mut exp) = self.expectations.lock() {
                exp.insert(key.to_string(), (Instant::now(), expects));
            }
        }
        result?;

        let publish = spec.publish_not_ready_addresses == Some(true);
        let legacy_eps: Vec<_> = pods
            .iter()
            .filter_map(|p| ports::pod_endpoint(&svc, p, publish))
            .collect();
        let desired = legacy::desired_endpoints(&svc, &legacy_eps);
        match self.endpoints.get(&ObjectRef::new(name).within(ns)) {
            Some(cur) if legacy::endpoints_equal(&cur, &desired) => {}
            Some(cur) => {
                let mut next = (*cur).clone();
                next.subsets = desired.subsets;
                next.metadata.labels = desired.metadata.labels;
                ep_api.replace(name, &pp, &next).await?;
            }
            None => match ep_api.create(&pp, &desired).await {
                Ok(_) => {}
                // Created meanwhile (the cache lags): the watch event requeues us.
                Err(kube::Error::Api(s)) if s.code == 409 => {}
                Err(e) => return Err(e.into()),
            },
        }
        Ok(None)
    }
}
