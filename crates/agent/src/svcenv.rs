//! The Services the agent keeps for pods' Service link variables, fed by
//! watch events (pure: no IO). Every Service of the cluster is held, so only
//! what [`crate::envvars::service_env`] reads is kept (name, ClusterIP,
//! port names, numbers and protocols: about 100 bytes instead of the
//! kilobytes of a typed object with managed fields); a starting pod gets
//! typed copies of just the Services its variables can come from.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Pod, Service, ServicePort, ServiceSpec};
use kube::api::ObjectMeta;
use kube::runtime::watcher::Event;

/// Namespace → name → Service.
type ByNamespace = BTreeMap<Box<str>, BTreeMap<Box<str>, EnvSvc>>;

/// Services by namespace and name.
#[derive(Debug, Default)]
pub(crate) struct EnvServices {
    by_ns: ByNamespace,
    /// The list being received during a (re)list.
    init: Option<ByNamespace>,
    listed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct EnvSvc {
    /// `None` also for a Service without a spec (it gives no variables either way).
    cluster_ip: Option<Box<str>>,
    ports: Box<[EnvPort]>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct EnvPort {
    name: Option<Box<str>>,
    port: i32,
    /// `None` for TCP, the default (saves an allocation per port).
    protocol: Option<Box<str>>,
}

fn key(svc: &Service) -> (Box<str>, Box<str>) {
    (
        svc.metadata
            .namespace
            .as_deref()
            .unwrap_or("default")
            .into(),
        svc.metadata.name.as_deref().unwrap_or("").into(),
    )
}

fn compact(svc: &Service) -> EnvSvc {
    let spec = svc.spec.as_ref();
    EnvSvc {
        cluster_ip: spec.and_then(|s| s.cluster_ip.as_deref()).map(Into::into),
        ports: spec
            .and_then(|s| s.ports.as_deref())
            .unwrap_or_default()
            .iter()
            .map(|p| EnvPort {
                name: p.name.as_deref().map(Into::into),
                port: p.port,
                protocol: p
                    .protocol
                    .as_deref()
                    .filter(|p| *p != "TCP")
                    .map(Into::into),
            })
            .collect(),
    }
}

fn insert(map: &mut ByNamespace, svc: &Service) {
    let (ns, name) = key(svc);
    map.entry(ns).or_default().insert(name, compact(svc));
}

impl EnvServices {
    /// Applies one watch event.
    pub(crate) fn apply(&mut self, ev: Event<Service>) {
        match ev {
            Event::Apply(s) => insert(&mut self.by_ns, &s),
            Event::Delete(s) => {
                let (ns, name) = key(&s);
                if let Some(m) = self.by_ns.get_mut(&ns) {
                    m.remove(&name);
                    if m.is_empty() {
                        self.by_ns.remove(&ns);
                    }
                }
            }
            Event::Init => self.init = Some(ByNamespace::new()),
            Event::InitApply(s) => insert(self.init.get_or_insert_with(ByNamespace::new), &s),
            Event::InitDone => {
                self.by_ns = self.init.take().unwrap_or_default();
                self.listed = true;
            }
        }
    }

    /// Whether the first list has completed.
    pub(crate) fn listed(&self) -> bool {
        self.listed
    }

    /// Typed copies of the Services whose variables `pod` can get: those of its
    /// namespace and `default/kubernetes`. Which of them it does get
    /// (`enableServiceLinks`, the `kubernetes` rule) stays `service_env`'s decision,
    /// so the rule lives in one place.
    pub(crate) fn for_pod(&self, pod: &Pod) -> Vec<Service> {
        let pod_ns = pod.metadata.namespace.as_deref().unwrap_or("default");
        let master = self
            .by_ns
            .get("default")
            .and_then(|m| m.get_key_value("kubernetes"))
            .filter(|_| pod_ns != "default")
            .map(|(n, s)| ("default", n, s));
        let own = self
            .by_ns
            .get(pod_ns)
            .into_iter()
            .flatten()
            .map(|(n, s)| (pod_ns, n, s));
        master
            .into_iter()
            .chain(own)
            .map(|(ns, name, s)| typed(ns, name, s))
            .collect()
    }
}

fn typed(ns: &str, name: &str, s: &EnvSvc) -> Service {
    Service {
        metadata: ObjectMeta {
            namespace: Some(ns.to_string()),
            name: Some(name.to_string()),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            cluster_ip: s.cluster_ip.as_deref().map(String::from),
            ports: Some(
                s.ports
                    .iter()
                    .map(|p| ServicePort {
                        name: p.name.as_deref().map(String::from),
                        port: p.port,
                        protocol: Some(p.protocol.as_deref().unwrap_or("TCP").to_string()),
                        ..ServicePort::default()
                    })
                    .collect(),
            ),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::envvars::service_env;

    fn svc(ns: &str, name: &str, ip: &str, ports: serde_json::Value) -> Service {
        serde_json::from_value(json!({
            "metadata": {"namespace": ns, "name": name, "labels": {"app": "x"},
                         "managedFields": [{"manager": "kubectl", "operation": "Update"}]},
            "spec": {"clusterIP": ip, "selector": {"app": "x"}, "ports": ports}
        }))
        .unwrap()
    }

    fn pod(ns: &str, links: Option<bool>) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"namespace": ns, "name": "p"},
            "spec": {"containers": [], "enableServiceLinks": links}
        }))
        .unwrap()
    }

    #[test]
    fn a_pod_gets_the_same_variables_as_from_every_typed_service() {
        let all = vec![
            svc(
                "default",
                "kubernetes",
                "10.96.0.1",
                json!([{"name": "https", "port": 443}]),
            ),
            svc(
                "a",
                "dns",
                "10.96.0.10",
                json!([{"name": "dns", "port": 53, "protocol": "UDP"}, {"name": "dns-tcp", "port": 53, "protocol": "TCP"}]),
            ),
            svc("a", "headless", "None", json!([{"port": 80}])),
            svc("b", "web", "10.96.0.20", json!([{"port": 80}])),
        ];
        let mut c = EnvServices::default();
        c.apply(Event::Init);
        for s in &all {
            c.apply(Event::InitApply(s.clone()));
        }
        assert!(!c.listed());
        c.apply(Event::InitDone);
        assert!(c.listed());
        for (ns, links) in [
            ("a", None),
            ("b", Some(true)),
            ("a", Some(false)),
            ("c", None),
        ] {
            let p = pod(ns, links);
            let on = links.unwrap_or(true);
            let kept = c.for_pod(&p);
            assert!(kept.len() <= 3);
            assert_eq!(
                service_env(ns, on, &kept),
                service_env(ns, on, &all),
                "{ns} {links:?}"
            );
        }
    }

    #[test]
    fn deletes_and_relists_forget_services() {
        let mut c = EnvServices::default();
        let web = svc("b", "web", "10.96.0.20", json!([{"port": 80}]));
        c.apply(Event::Apply(web.clone()));
        c.apply(Event::Apply(svc("b", "api", "10.96.0.21", json!([]))));
        assert_eq!(c.for_pod(&pod("b", None)).len(), 2);
        c.apply(Event::Delete(web));
        assert_eq!(c.for_pod(&pod("b", None)).len(), 1);
        c.apply(Event::Init);
        c.apply(Event::InitDone);
        assert!(c.for_pod(&pod("b", None)).is_empty());
    }
}
