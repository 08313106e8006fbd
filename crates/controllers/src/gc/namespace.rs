//! Namespace controller: when a namespace has a deletion timestamp, delete every namespaced
//! object in it (kinds found through discovery), then remove the `kubernetes` finalizer via
//! `PUT /api/v1/namespaces/{name}/finalize` so the API server can delete the namespace.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{DeleteParams, DynamicObject, ListParams, PostParams};
use kube::discovery::{verbs, Discovery, Scope};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, ResourceExt};

use crate::queue::{run_workers, WorkQueue};
use crate::util;
use crate::{ControllerError, Informers, Shared};

/// The finalizer the namespace controller owns.
pub const NAMESPACE_FINALIZER: &str = "kubernetes";

struct Ctl {
    client: Client,
    namespaces: Store<Namespace>,
}

pub(crate) fn setup(inf: &mut Informers, shared: &Shared) -> BoxFuture<'static, ()> {
    let queue = WorkQueue::new();
    {
        let q = queue.clone();
        inf.namespaces.on_change(move |_old, new| {
            if let Some(ns) = new.filter(|n| n.metadata.deletion_timestamp.is_some()) {
                q.add(ns.name_any());
            }
        });
    }
    let ready = vec![inf.namespaces.ready()];
    let ctl = Arc::new(Ctl {
        client: shared.client.clone(),
        namespaces: inf.namespaces.store(),
    });
    Box::pin(async move {
        if !crate::informer::all_ready(ready).await {
            return;
        }
        run_workers("namespace", queue, 2, move |name| {
            let ctl = ctl.clone();
            async move { ctl.reconcile(&name).await }
        })
        .await;
    })
}

impl Ctl {
    async fn reconcile(&self, name: &str) -> Result<Option<Duration>, ControllerError> {
        let Some(ns) = self.namespaces.get(&ObjectRef::new(name)) else {
            return Ok(None);
        };
        if ns.metadata.deletion_timestamp.is_none() {
            return Ok(None);
        }
        let has_finalizer = ns
            .spec
            .as_ref()
            .and_then(|s| s.finalizers.as_ref())
            .is_some_and(|f| f.iter().any(|f| f == NAMESPACE_FINALIZER));
        if !has_finalizer {
            return Ok(None);
        }
        let discovery = Discovery::new(self.client.clone()).run().await?;
        let mut remaining = 0usize;
        for group in discovery.groups() {
            for (ar, caps) in group.recommended_resources() {
                if caps.scope != Scope::Namespaced
                    || !caps.supports_operation(verbs::LIST)
                    || !caps.supports_operation(verbs::DELETE)
                {
                    continue;
                }
                let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), name, &ar);
                let list = match api.list(&ListParams::default()).await {
                    Ok(l) => l,
                    Err(e) if matches!(util::api_code(&e), Some(404) | Some(405)) => continue,
                    Err(e) => return Err(e.into()),
                };
                for obj in list.items {
                    remaining += 1;
                    if obj.metadata.deletion_timestamp.is_none() {
                        util::ignore_not_found(
                            api.delete(&obj.name_any(), &DeleteParams::background())
                                .await,
                        )?;
                    }
                }
            }
        }
        if remaining > 0 {
            // Objects with finalizers (or foreground deletion) take a moment.
            return Ok(Some(Duration::from_millis(500)));
        }
        let mut next = (*ns).clone();
        if let Some(spec) = next.spec.as_mut() {
            spec.finalizers = Some(
                spec.finalizers
                    .iter()
                    .flatten()
                    .filter(|f| *f != NAMESPACE_FINALIZER)
                    .cloned()
                    .collect(),
            );
        }
        let api: Api<Namespace> = Api::all(self.client.clone());
        match api
            .replace_subresource("finalize", name, &PostParams::default(), &next)
            .await
        {
            Ok(_) => Ok(None),
            Err(e) if util::api_code(&e) == Some(404) => Ok(None),
            Err(e) if util::api_code(&e) == Some(409) => Ok(Some(Duration::from_millis(100))),
            Err(e) => Err(e.into()),
        }
    }
}
