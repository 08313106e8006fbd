//! The proxy's event loop: watch events update the cache, changed Services
//! are re-planned after a short debounce, and the proxier programs the
//! difference; health check servers and metrics follow each sync.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::watcher;

use crate::apply::{Conntrack, Nft, Proxier};
use crate::metrics::ProxyMetrics;
use crate::plan::{Base, HealthCheck, ServicePlan};
use crate::{apply, cache, health, ProxyError, MIN_SYNC_PERIOD};

/// The event loop: watch events in, debounced syncs out.
pub(crate) struct SyncLoop<N, C> {
    proxier: Option<Proxier<N, C>>,
    base: Base,
    cache: cache::Cache,
    desired: BTreeMap<String, Arc<ServicePlan>>,
    dirty: BTreeSet<String>,
    metrics: ProxyMetrics,
    healthz: health::Healthz,
    health_servers: health::HealthServers,
}

impl<N: Nft + 'static, C: Conntrack + 'static> SyncLoop<N, C> {
    pub(crate) fn new(
        proxier: Proxier<N, C>,
        base: Base,
        node_name: String,
        metrics: ProxyMetrics,
        healthz: health::Healthz,
    ) -> Self {
        SyncLoop {
            proxier: Some(proxier),
            base,
            cache: cache::Cache::new(&node_name),
            desired: BTreeMap::new(),
            dirty: BTreeSet::new(),
            metrics,
            healthz,
            health_servers: health::HealthServers::default(),
        }
    }

    pub(crate) async fn run(
        &mut self,
        services: impl futures::Stream<Item = Result<watcher::Event<Service>, watcher::Error>>,
        slices: impl futures::Stream<Item = Result<watcher::Event<EndpointSlice>, watcher::Error>>,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), ProxyError> {
        let mut services = std::pin::pin!(services);
        let mut slices = std::pin::pin!(slices);
        let mut shutdown = std::pin::pin!(shutdown);
        // When the pending changes get programmed; None while nothing is pending.
        let mut deadline: Option<tokio::time::Instant> = None;
        // Retry after failures, and come back for deferred deletions.
        let mut retry: Option<tokio::time::Instant> = None;
        let result = loop {
            let wake = match (deadline, retry) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            tokio::select! {
                () = &mut shutdown => break Ok(()),
                ev = services.next() => match ev {
                    Some(Ok(ev)) => { let d = self.cache.service_event(ev); self.mark(d, &mut deadline); }
                    Some(Err(e)) => tracing::warn!(error = %e, "watching Services"),
                    None => break Err(ProxyError::WatchEnded("Services")),
                },
                ev = slices.next() => match ev {
                    Some(Ok(ev)) => { let d = self.cache.slice_event(ev); self.mark(d, &mut deadline); }
                    Some(Err(e)) => tracing::warn!(error = %e, "watching EndpointSlices"),
                    None => break Err(ProxyError::WatchEnded("EndpointSlices")),
                },
                () = sleep_until(wake), if wake.is_some() && self.cache.ready() => {
                    deadline = None;
                    retry = self.sync().await;
                }
            }
        };
        self.health_servers.stop();
        result
    }

    fn mark(&mut self, keys: BTreeSet<String>, deadline: &mut Option<tokio::time::Instant>) {
        if keys.is_empty() {
            return;
        }
        self.dirty.extend(keys);
        if deadline.is_none() {
            *deadline = Some(tokio::time::Instant::now() + MIN_SYNC_PERIOD);
        }
    }

    /// Re-plans the dirty Services and programs the difference. Returns when
    /// to come back (after a failure, or for deferred deletions).
    async fn sync(&mut self) -> Option<tokio::time::Instant> {
        let started = Instant::now();
        let dirty = std::mem::take(&mut self.dirty);
        for key in &dirty {
            match self.cache.plan(key, &self.base) {
                Some(p) => self.desired.insert(key.clone(), Arc::new(p)),
                None => self.desired.remove(key),
            };
        }
        let mut proxier = self.proxier.take()?;
        let desired = std::mem::take(&mut self.desired);
        // nft runs as a child process: keep it off the async workers.
        let joined = tokio::task::spawn_blocking(move || {
            let r = proxier.sync(&desired, &dirty, Instant::now());
            (proxier, desired, dirty, r)
        })
        .await;
        let Ok((proxier, desired, dirty, result)) = joined else {
            tracing::error!("proxy sync task failed");
            return None;
        };
        let pending = proxier.has_pending_deletes();
        self.proxier = Some(proxier);
        self.desired = desired;
        let elapsed = started.elapsed();
        self.metrics.sync_duration.observe(elapsed.as_secs_f64());
        let ok = result.is_ok();
        self.healthz.record(ok);
        match result {
            Ok(stats) => {
                tracing::debug!(?stats, ?elapsed, "proxy sync");
                self.metrics
                    .rules
                    .set(i64::try_from(stats.rules).unwrap_or(i64::MAX));
                let now = SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .unwrap_or_default();
                self.metrics.last_sync.set(now.as_secs_f64());
                if stats.full {
                    self.metrics.full_syncs.inc();
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "proxy sync failed; retrying with a full sync");
                self.metrics.sync_errors.inc();
                // The next sync is a full one and must see every Service.
                self.dirty.extend(dirty);
            }
        }
        let wanted: BTreeMap<u16, HealthCheck> = self
            .desired
            .values()
            .flat_map(|p| p.health.iter().map(|(k, v)| (*k, v.clone())))
            .collect();
        self.health_servers.update(&wanted).await;
        if !ok {
            return Some(tokio::time::Instant::now() + Duration::from_secs(1));
        }
        pending.then(|| tokio::time::Instant::now() + apply::DELETE_DELAY)
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use kube::runtime::watcher::Event;
    use serde_json::json;

    use super::*;
    use crate::plan::UdpFlow;

    #[derive(Clone, Default)]
    struct Recorder(Arc<Mutex<Vec<String>>>);

    impl Nft for Recorder {
        fn apply(&mut self, script: &str) -> Result<(), ProxyError> {
            self.0.lock().unwrap().push(script.to_string());
            Ok(())
        }
    }

    struct NoConntrack;

    impl Conntrack for NoConntrack {
        fn delete_udp(&mut self, _: &UdpFlow) -> Result<(), ProxyError> {
            Ok(())
        }
    }

    fn svc() -> Service {
        serde_json::from_value(json!({
            "metadata": {"namespace": "default", "name": "web"},
            "spec": {"clusterIP": "10.96.0.20", "ports": [{"port": 80, "targetPort": 8080}]}
        }))
        .unwrap()
    }

    fn slice(ips: &[&str]) -> EndpointSlice {
        let eps: Vec<_> = ips
            .iter()
            .map(|ip| json!({"addresses": [ip], "nodeName": "n1"}))
            .collect();
        serde_json::from_value(json!({
            "metadata": {"namespace": "default", "name": "web-1", "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4", "endpoints": eps, "ports": [{"port": 8080, "protocol": "TCP"}]
        }))
        .unwrap()
    }

    async fn wait_for(rec: &Recorder, n: usize) -> Vec<String> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let got = rec.0.lock().unwrap().clone();
            if got.len() >= n {
                return got;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "only {} syncs: {got:?}",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test]
    async fn full_sync_after_initial_lists_then_incremental_syncs() {
        let rec = Recorder::default();
        let base = Base {
            cluster_cidr: "10.244.0.0/16".parse().unwrap(),
            nodeport_addresses: vec![],
            shards: crate::plan::DEFAULT_SHARDS,
            masquerade_fully_random: false,
        };
        let shard = crate::plan::Table::Shard(crate::plan::shard_of("default/web", base.shards));
        let proxier = Proxier::new(rec.clone(), NoConntrack, base.clone());
        let metrics = ProxyMetrics::new();
        let mut lp = SyncLoop::new(
            proxier,
            base,
            "n1".into(),
            metrics.clone(),
            health::Healthz::default(),
        );
        let (svc_tx, svc_rx) = futures::channel::mpsc::unbounded();
        let (slice_tx, slice_rx) = futures::channel::mpsc::unbounded();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            lp.run(svc_rx, slice_rx, async {
                let _ = stop_rx.await;
            })
            .await
        });

        for ev in [Event::Init, Event::InitApply(svc()), Event::InitDone] {
            svc_tx.unbounded_send(Ok(ev)).unwrap();
        }
        // No sync before the EndpointSlice list is complete.
        tokio::time::sleep(MIN_SYNC_PERIOD * 3).await;
        assert!(rec.0.lock().unwrap().is_empty());
        for ev in [
            Event::Init,
            Event::InitApply(slice(&["10.244.1.10"])),
            Event::InitDone,
        ] {
            slice_tx.unbounded_send(Ok(ev)).unwrap();
        }
        let scripts = wait_for(&rec, 1).await;
        assert!(scripts[0].starts_with("add table ip portico\ndelete table ip portico\n"));
        assert!(scripts[0].contains("add table ip portico-63\ndelete table ip portico-63\n"));
        assert!(scripts[0].contains("dnat to 10.244.1.10:8080"));

        // A burst of changes becomes one incremental transaction.
        slice_tx
            .unbounded_send(Ok(Event::Apply(slice(&["10.244.1.10", "10.244.1.11"]))))
            .unwrap();
        slice_tx
            .unbounded_send(Ok(Event::Apply(slice(&["10.244.1.10", "10.244.1.12"]))))
            .unwrap();
        let scripts = wait_for(&rec, 2).await;
        assert!(!scripts[1].contains("delete table"), "{}", scripts[1]);
        assert!(
            scripts[1].contains("dnat to 10.244.1.12:8080") && !scripts[1].contains("10.244.1.11"),
            "{}",
            scripts[1]
        );

        svc_tx.unbounded_send(Ok(Event::Delete(svc()))).unwrap();
        let scripts = wait_for(&rec, 3).await;
        assert!(
            scripts[2].contains(&format!(
                "delete element ip {shard} service-ips {{ 10.96.0.20 . tcp . 80 }}"
            )),
            "{}",
            scripts[2]
        );
        // The flushed chain is deleted in a later transaction.
        let scripts = wait_for(&rec, 4).await;
        assert!(
            scripts[3].starts_with(&format!("delete chain ip {shard} service-")),
            "{}",
            scripts[3]
        );
        assert_eq!(metrics.full_syncs.get(), 1);

        stop_tx.send(()).unwrap();
        task.await.unwrap().unwrap();
    }
}
