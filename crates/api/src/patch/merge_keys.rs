//! The patch-relevant schema of the served kinds, as data: for every list that
//! is not a plain atomic list, its strategic-merge-patch strategy and merge key
//! and its server-side-apply list type and keys; plus the maps and structs that
//! server-side apply treats as atomic.
//!
//! Taken from the `patchStrategy`/`patchMergeKey` and `+listType`/`+listMapKey`/
//! `+mapType`/`+structType` tags of the Kubernetes API types (k8s.io/api v1.33).
//! Lists that are absent here are replaced by strategic merge patch and atomic
//! for server-side apply, which is what Kubernetes does for untagged lists.

use crate::resource::ResourceInfo;

/// How strategic merge patch treats a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmpList {
    /// No patch strategy: the patch's list replaces the original.
    Replace,
    /// `patchStrategy: merge` on a list of primitives: union, `$deleteFromPrimitiveList`.
    MergePrimitives,
    /// `patchStrategy: merge` with `patchMergeKey`.
    MergeByKey(&'static str),
}

/// One key field of a server-side-apply list map, with its schema default
/// (structured-merge-diff fills a missing key from the default, which is why a
/// Service port without `protocol` is keyed `{"port":80,"protocol":"TCP"}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyField {
    /// JSON field name.
    pub name: &'static str,
    /// Default string value used when the item does not set the field.
    pub default: Option<&'static str>,
}

/// How server-side apply (structured-merge-diff) treats a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SsaList {
    /// `+listType=atomic` (also the default): owned and replaced as a whole.
    Atomic,
    /// `+listType=set`: items are owned one by one as `v:<value>`.
    Set,
    /// `+listType=map` with `+listMapKey`s: items owned as `k:{...}`.
    Map(&'static [KeyField]),
}

/// The rule for one list field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListRule {
    /// Path relative to the rule group's mount point, items written `[]`.
    pub path: &'static str,
    /// Strategic merge patch behaviour.
    pub smp: SmpList,
    /// Server-side apply behaviour.
    pub ssa: SsaList,
}

const fn key(name: &'static str) -> KeyField {
    KeyField {
        name,
        default: None,
    }
}

const NAME: &[KeyField] = &[key("name")];
const TYPE: &[KeyField] = &[key("type")];
const IP: &[KeyField] = &[key("ip")];
const PROTO_TCP: KeyField = KeyField {
    name: "protocol",
    default: Some("TCP"),
};

const fn map(path: &'static str, smp_key: &'static str, keys: &'static [KeyField]) -> ListRule {
    ListRule {
        path,
        smp: SmpList::MergeByKey(smp_key),
        ssa: SsaList::Map(keys),
    }
}

const fn ssa_only(path: &'static str, ssa: SsaList) -> ListRule {
    ListRule {
        path,
        smp: SmpList::Replace,
        ssa,
    }
}

/// ObjectMeta (`metadata`, and `spec.template.metadata` in workloads).
static OBJECT_META: &[ListRule] = &[
    ListRule {
        path: "finalizers",
        smp: SmpList::MergePrimitives,
        ssa: SsaList::Set,
    },
    map("ownerReferences", "uid", &[key("uid")]),
];
static OBJECT_META_ATOMIC: &[&str] = &["ownerReferences[]", "managedFields"];

/// Container and EphemeralContainer, mounted at each container list item.
static CONTAINER: &[ListRule] = &[
    map("ports", "containerPort", &[key("containerPort"), PROTO_TCP]),
    map("env", "name", NAME),
    map("volumeMounts", "mountPath", &[key("mountPath")]),
    map("volumeDevices", "devicePath", &[key("devicePath")]),
    ssa_only("resources.claims", SsaList::Map(NAME)),
];

/// PodSpec (`spec` of a Pod, `spec.template.spec` of workloads).
static POD_SPEC: &[ListRule] = &[
    map("containers", "name", NAME),
    map("initContainers", "name", NAME),
    map("ephemeralContainers", "name", NAME),
    map("volumes", "name", NAME),
    map("imagePullSecrets", "name", NAME),
    map("hostAliases", "ip", IP),
    map(
        "topologySpreadConstraints",
        "topologyKey",
        &[key("topologyKey"), key("whenUnsatisfiable")],
    ),
    map("schedulingGates", "name", NAME),
    map("resourceClaims", "name", NAME),
];
static POD_SPEC_ATOMIC: &[&str] = &["nodeSelector", "imagePullSecrets[]"];
static CONTAINER_LISTS: &[&str] = &["containers[]", "initContainers[]", "ephemeralContainers[]"];

static POD_STATUS: &[ListRule] = &[
    map("conditions", "type", TYPE),
    map("podIPs", "ip", IP),
    map("hostIPs", "ip", IP),
    map("resourceClaimStatuses", "name", NAME),
];

static CONDITIONS: &[ListRule] = &[map("conditions", "type", TYPE)];

static SERVICE_SPEC: &[ListRule] = &[map("ports", "port", &[key("port"), PROTO_TCP])];
static SERVICE_SPEC_ATOMIC: &[&str] = &["selector"];

static NODE_SPEC: &[ListRule] = &[ListRule {
    path: "podCIDRs",
    smp: SmpList::MergePrimitives,
    ssa: SsaList::Set,
}];
static NODE_STATUS: &[ListRule] = &[
    map("addresses", "type", TYPE),
    map("conditions", "type", TYPE),
];

static ENDPOINT_SLICE: &[ListRule] = &[ssa_only("endpoints[].addresses", SsaList::Set)];
static ENDPOINT_SLICE_ATOMIC: &[&str] = &["endpoints[].targetRef"];

static WORKLOAD_SPEC_ATOMIC: &[&str] = &["selector"];
static EVENT_ATOMIC: &[&str] = &["involvedObject", "related", "regarding"];

/// The schema of one kind: every list rule and atomic path, mounted at their
/// absolute (item-normalised) paths.
#[derive(Debug, Clone, Default)]
pub struct Schema {
    lists: Vec<(String, ListRule)>,
    atomic: Vec<String>,
}

impl Schema {
    /// The schema for a served kind. Unknown kinds get only ObjectMeta rules.
    pub fn for_resource(res: &ResourceInfo) -> Schema {
        let mut s = Schema::default();
        s.mount_meta("metadata");
        match (res.group, res.kind) {
            ("", "Pod") => {
                s.mount_pod_spec("spec");
                s.mount("status", POD_STATUS, &[]);
            }
            ("apps", "Deployment") | ("apps", "ReplicaSet") => {
                s.mount_meta("spec.template.metadata");
                s.mount_pod_spec("spec.template.spec");
                s.mount("spec", &[], WORKLOAD_SPEC_ATOMIC);
                s.mount("status", CONDITIONS, &[]);
            }
            ("", "Service") => {
                s.mount("spec", SERVICE_SPEC, SERVICE_SPEC_ATOMIC);
                s.mount("status", CONDITIONS, &[]);
            }
            ("", "Node") => {
                s.mount("spec", NODE_SPEC, &[]);
                s.mount("status", NODE_STATUS, &[]);
            }
            ("", "Namespace") => s.mount("status", CONDITIONS, &[]),
            ("discovery.k8s.io", "EndpointSlice") => {
                s.mount("", ENDPOINT_SLICE, ENDPOINT_SLICE_ATOMIC)
            }
            ("", "Event") | ("events.k8s.io", "Event") => s.mount("", &[], EVENT_ATOMIC),
            _ => {}
        }
        s
    }

    fn mount(&mut self, at: &str, lists: &[ListRule], atomic: &[&str]) {
        for rule in lists {
            self.lists.push((join(at, rule.path), *rule));
        }
        for path in atomic {
            self.atomic.push(join(at, path));
        }
    }

    fn mount_meta(&mut self, at: &str) {
        self.mount(at, OBJECT_META, OBJECT_META_ATOMIC);
    }

    fn mount_pod_spec(&mut self, at: &str) {
        self.mount(at, POD_SPEC, POD_SPEC_ATOMIC);
        for list in CONTAINER_LISTS {
            self.mount(&join(at, list), CONTAINER, &[]);
        }
    }

    /// The rule for the list at `path` (fields joined by `.`, list items as `[]`),
    /// if it has one.
    pub fn list(&self, path: &str) -> Option<&ListRule> {
        self.lists.iter().find(|(p, _)| p == path).map(|(_, r)| r)
    }

    /// Strategic merge patch strategy of the list at `path`.
    pub fn smp_list(&self, path: &str) -> SmpList {
        self.list(path).map_or(SmpList::Replace, |r| r.smp)
    }

    /// Server-side apply list type of the list at `path`.
    pub fn ssa_list(&self, path: &str) -> SsaList {
        self.list(path).map_or(SsaList::Atomic, |r| r.ssa)
    }

    /// Whether server-side apply treats the map or struct at `path` as atomic.
    pub fn is_atomic(&self, path: &str) -> bool {
        self.atomic.iter().any(|p| p == path)
    }
}

/// Joins a mount point and a relative path.
pub fn join(at: &str, rel: &str) -> String {
    match (at.is_empty(), rel.is_empty()) {
        (true, _) => rel.to_string(),
        (_, true) => at.to_string(),
        _ => {
            if rel.starts_with('[') {
                format!("{at}{rel}")
            } else {
                format!("{at}.{rel}")
            }
        }
    }
}

/// The schema path of a field below `parent`.
pub fn child(parent: &str, field: &str) -> String {
    join(parent, field)
}

/// The schema path of the items of the list at `parent`.
pub fn item(parent: &str) -> String {
    format!("{parent}[]")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::find_kind;

    #[test]
    fn deployment_template_containers_merge_by_name() {
        let s = Schema::for_resource(find_kind("apps", "Deployment").unwrap());
        assert_eq!(
            s.smp_list("spec.template.spec.containers"),
            SmpList::MergeByKey("name")
        );
        assert_eq!(
            s.smp_list("spec.template.spec.containers[].ports"),
            SmpList::MergeByKey("containerPort")
        );
        assert_eq!(
            s.smp_list("spec.template.spec.initContainers[].env"),
            SmpList::MergeByKey("name")
        );
        assert_eq!(
            s.smp_list("spec.template.spec.tolerations"),
            SmpList::Replace
        );
        assert_eq!(
            s.smp_list("spec.template.metadata.finalizers"),
            SmpList::MergePrimitives
        );
        assert!(s.is_atomic("spec.selector"));
    }

    #[test]
    fn service_ports_keys_match_kubernetes() {
        let s = Schema::for_resource(find_kind("", "Service").unwrap());
        assert_eq!(s.smp_list("spec.ports"), SmpList::MergeByKey("port"));
        match s.ssa_list("spec.ports") {
            SsaList::Map(keys) => {
                assert_eq!(keys.len(), 2);
                assert_eq!(keys[1].default, Some("TCP"));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(s.ssa_list("spec.clusterIPs"), SsaList::Atomic);
        assert!(s.is_atomic("spec.selector"));
        assert_eq!(
            s.smp_list("metadata.ownerReferences"),
            SmpList::MergeByKey("uid")
        );
    }

    #[test]
    fn pod_and_node_lists() {
        let pod = Schema::for_resource(find_kind("", "Pod").unwrap());
        assert_eq!(
            pod.smp_list("spec.containers[].volumeMounts"),
            SmpList::MergeByKey("mountPath")
        );
        assert_eq!(pod.smp_list("spec.hostAliases"), SmpList::MergeByKey("ip"));
        assert_eq!(
            pod.smp_list("status.conditions"),
            SmpList::MergeByKey("type")
        );
        let node = Schema::for_resource(find_kind("", "Node").unwrap());
        assert_eq!(
            node.smp_list("status.addresses"),
            SmpList::MergeByKey("type")
        );
        assert_eq!(node.ssa_list("spec.podCIDRs"), SsaList::Set);
    }
}
