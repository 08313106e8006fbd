//! LoadBalancer controller: gives `type: LoadBalancer` Services an address from the pools,
//! frees it on delete or type change, and explains failures with Events.

pub mod plan;

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Patch, PatchParams};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Client, Resource};

use crate::cache::Cache;
use crate::queue::{run_workers, WorkQueue};
use crate::recorder::Recorder;
use crate::util::{self, key_of, split_key};
use crate::{ControllerError, Informers, Shared};

struct Ctl {
    client: Client,
    recorder: Recorder,
    pools: Vec<ipnet::IpNet>,
    services: Cache<Service>,
    /// LoadBalancer Services as the cache shows them, kept by the Service handler.
    seen: Arc<Mutex<Seen>>,
    /// Addresses written but not yet seen in the cache: service key -> IP.
    inflight: Mutex<HashMap<String, IpAddr>>,
}

/// The LoadBalancer Services in the cache, so that finding the addresses in use or the
/// Services waiting for one does not walk (and decode) every cached Service.
#[derive(Default)]
struct Seen {
    /// Services of ours that hold an address: key -> address.
    held: HashMap<String, IpAddr>,
    /// Services of ours still without one.
    waiting: HashSet<String>,
}

impl Seen {
    fn update(&mut self, key: &str, svc: Option<&Service>) {
        self.held.remove(key);
        self.waiting.remove(key);
        if let Some(s) = svc.filter(|s| plan::wants_lb(s)) {
            match plan::current_ip(s) {
                Some(ip) => {
                    self.held.insert(key.to_string(), ip);
                }
                None => {
                    self.waiting.insert(key.to_string());
                }
            }
        }
    }
}

/// Registers handlers and returns the controller loop.
pub(crate) fn setup(inf: &mut Informers, shared: &Shared) -> BoxFuture<'static, ()> {
    let queue = WorkQueue::new();
    let seen = Arc::new(Mutex::new(Seen::default()));
    {
        let q = queue.clone();
        let seen = seen.clone();
        inf.services.on_change(move |old, new| {
            let Ok(mut seen) = seen.lock() else {
                return;
            };
            if let Some(s) = new.or(old) {
                seen.update(&key_of(s), new);
            }
            let had = old.is_some_and(|s| plan::wants_lb(s) && plan::current_ip(s).is_some());
            let has = new.is_some_and(plan::wants_lb);
            if old.is_some_and(plan::wants_lb) || has || old.and_then(plan::current_ip).is_some() {
                if let Some(s) = new.or(old) {
                    q.add(key_of(s));
                }
            }
            // An address may have been freed: retry Services still waiting for one.
            if had && !has {
                for k in &seen.waiting {
                    q.add(k.clone());
                }
            }
        });
    }
    let ready = vec![inf.services.ready()];
    let ctl = Arc::new(Ctl {
        client: shared.client.clone(),
        recorder: shared.recorder.for_component("service-controller"),
        pools: shared.config.lb_pools.clone(),
        services: inf.services.cache(),
        seen,
        inflight: Mutex::new(HashMap::new()),
    });
    Box::pin(async move {
        if !crate::informer::all_ready(ready).await {
            return;
        }
        // One worker: allocations must not race each other.
        run_workers("loadbalancer", queue, 1, move |key| {
            let ctl = ctl.clone();
            async move { ctl.reconcile(&key).await }
        })
        .await;
    })
}

impl Ctl {
    /// Addresses held by Services other than `except`.
    fn used(&self, except: &str) -> HashSet<IpAddr> {
        let mut used: HashSet<IpAddr> = match self.seen.lock() {
            Ok(seen) => seen
                .held
                .iter()
                .filter(|(k, _)| k.as_str() != except)
                .map(|(_, ip)| *ip)
                .collect(),
            Err(_) => HashSet::new(),
        };
        if let Ok(mut inflight) = self.inflight.lock() {
            // Drop entries the cache now shows, or whose Service went away.
            inflight.retain(|k, ip| {
                let (ns, name) = split_key(k);
                let cur = self
                    .services
                    .get(&ObjectRef::new(name).within(ns.unwrap_or_default()));
                cur.is_some_and(|s| plan::wants_lb(&s) && plan::current_ip(&s) != Some(*ip))
            });
            used.extend(
                inflight
                    .iter()
                    .filter(|(k, _)| k.as_str() != except)
                    .map(|(_, ip)| *ip),
            );
        }
        used
    }

    async fn reconcile(&self, key: &str) -> Result<Option<Duration>, ControllerError> {
        let (Some(ns), name) = split_key(key) else {
            return Ok(None);
        };
        let Some(svc) = self.services.get(&ObjectRef::new(name).within(ns)) else {
            return Ok(None);
        };
        let api: Api<Service> = Api::namespaced(self.client.clone(), ns);
        let cur = plan::current_ip(&svc);
        if !plan::wants_lb(&svc) {
            // Type changed away: release the address (foreign classes are not ours).
            if cur.is_some() && !plan::foreign_class(&svc) {
                let patch = serde_json::json!({"status": {"loadBalancer": {"ingress": null}}});
                util::ignore_not_found(
                    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
                        .await,
                )?;
            }
            return Ok(None);
        }
        let used = self.used(key);
        let requested = svc
            .spec
            .as_ref()
            .and_then(|s| s.load_balancer_ip.clone())
            .filter(|r| !r.is_empty());
        if let Some(ip) = cur {
            let keeps = plan::in_pools(&self.pools, ip)
                && !used.contains(&ip)
                && requested
                    .as_deref()
                    .is_none_or(|r| r.parse::<IpAddr>().ok() == Some(ip));
            if keeps {
                return Ok(None);
            }
        }
        let svc_ref = svc.object_ref(&());
        match plan::pick_ip(&self.pools, &used, requested.as_deref()) {
            Ok(ip) => {
                self.recorder
                    .normal(&svc_ref, "EnsuringLoadBalancer", "Ensuring load balancer");
                if let Ok(mut inflight) = self.inflight.lock() {
                    inflight.insert(key.to_string(), ip);
                }
                let patch = serde_json::json!({"status": {"loadBalancer": {"ingress": [{"ip": ip.to_string()}]}}});
                util::ignore_not_found(
                    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
                        .await,
                )?;
                self.recorder
                    .normal(&svc_ref, "IPAllocated", format!("Assigned IP [\"{ip}\"]"));
                self.recorder
                    .normal(&svc_ref, "EnsuredLoadBalancer", "Ensured load balancer");
            }
            Err(why) => {
                self.recorder.warning(
                    &svc_ref,
                    "AllocationFailed",
                    format!("Failed to allocate IP for \"{ns}/{name}\": {why}"),
                );
                if cur.is_some() {
                    let patch = serde_json::json!({"status": {"loadBalancer": {"ingress": null}}});
                    util::ignore_not_found(
                        api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
                            .await,
                    )?;
                }
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(type_: &str, class: Option<&str>, ip: Option<&str>) -> Service {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"type": type_, "loadBalancerClass": class},
            "status": {"loadBalancer": {"ingress": ip.map(|i| vec![serde_json::json!({"ip": i})])}},
        }))
        .unwrap()
    }

    #[test]
    fn seen_tracks_held_and_waiting_services_of_ours() {
        let mut seen = Seen::default();
        seen.update("default/web", Some(&svc("LoadBalancer", None, None)));
        assert!(seen.waiting.contains("default/web") && seen.held.is_empty());
        seen.update(
            "default/web",
            Some(&svc("LoadBalancer", None, Some("10.0.0.1"))),
        );
        assert_eq!(
            seen.held.get("default/web"),
            Some(&"10.0.0.1".parse().unwrap())
        );
        assert!(seen.waiting.is_empty());
        // Another implementation's class, a type change and a delete are not ours.
        seen.update(
            "default/web",
            Some(&svc("LoadBalancer", Some("x.io/lb"), Some("10.0.0.1"))),
        );
        assert!(seen.held.is_empty() && seen.waiting.is_empty());
        seen.update(
            "default/web",
            Some(&svc("LoadBalancer", None, Some("10.0.0.1"))),
        );
        seen.update(
            "default/web",
            Some(&svc("ClusterIP", None, Some("10.0.0.1"))),
        );
        assert!(seen.held.is_empty());
        seen.update("default/web", Some(&svc("LoadBalancer", None, None)));
        seen.update("default/web", None);
        assert!(seen.held.is_empty() && seen.waiting.is_empty());
    }
}
