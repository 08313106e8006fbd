//! Protobuf field tables of the built-in kinds `kubectl create` sends as protobuf.
//!
//! Field numbers come from Kubernetes' `generated.proto` files (1.33). Only the
//! fields those objects can carry are listed; any other field makes the decoder
//! refuse the body (415) rather than silently drop data.

/// The wire-level shape of one field and how it maps to JSON.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Ty {
    Str,
    I32,
    I64,
    Bool,
    Msg(&'static Msg),
    /// `map<string, string>`.
    MapStr,
    /// `map<string, bytes>`, values base64 in JSON.
    MapBytes,
    /// `map<string, Quantity>`.
    MapQty,
    /// `meta.v1.Time` (seconds, nanos) → RFC 3339.
    Time,
    /// `intstr.IntOrString` → number or string.
    IntOrStr,
}

#[derive(Debug)]
pub(crate) struct Field {
    pub tag: u32,
    pub json: &'static str,
    pub ty: Ty,
    pub repeated: bool,
    /// Go pointer fields are only written when set, so a zero value is meaningful;
    /// non-pointer fields are always written and their zero means "omitted".
    pub keep_zero: bool,
}

#[derive(Debug)]
pub(crate) struct Msg {
    pub name: &'static str,
    pub fields: &'static [Field],
}

const fn f(tag: u32, json: &'static str, ty: Ty) -> Field {
    Field {
        tag,
        json,
        ty,
        repeated: false,
        keep_zero: false,
    }
}
/// A pointer (optional) field in Go.
const fn p(tag: u32, json: &'static str, ty: Ty) -> Field {
    Field {
        tag,
        json,
        ty,
        repeated: false,
        keep_zero: true,
    }
}
const fn r(tag: u32, json: &'static str, ty: Ty) -> Field {
    Field {
        tag,
        json,
        ty,
        repeated: true,
        keep_zero: false,
    }
}

use Ty::*;

/// The JSON name of an embedded (`json:",inline"`) message field.
pub(crate) const INLINE: &str = "";

pub(crate) static OWNER_REFERENCE: Msg = Msg {
    name: "OwnerReference",
    fields: &[
        f(5, "apiVersion", Str),
        f(1, "kind", Str),
        f(3, "name", Str),
        f(4, "uid", Str),
        p(6, "controller", Bool),
        p(7, "blockOwnerDeletion", Bool),
    ],
};

pub(crate) static OBJECT_META: Msg = Msg {
    name: "ObjectMeta",
    fields: &[
        f(1, "name", Str),
        f(2, "generateName", Str),
        f(3, "namespace", Str),
        f(4, "selfLink", Str),
        f(5, "uid", Str),
        f(6, "resourceVersion", Str),
        f(7, "generation", I64),
        f(8, "creationTimestamp", Time),
        p(9, "deletionTimestamp", Time),
        p(10, "deletionGracePeriodSeconds", I64),
        f(11, "labels", MapStr),
        f(12, "annotations", MapStr),
        r(13, "ownerReferences", Msg(&OWNER_REFERENCE)),
        r(14, "finalizers", Str),
    ],
};

static LABEL_SELECTOR_REQUIREMENT: Msg = Msg {
    name: "LabelSelectorRequirement",
    fields: &[f(1, "key", Str), f(2, "operator", Str), r(3, "values", Str)],
};

static LABEL_SELECTOR: Msg = Msg {
    name: "LabelSelector",
    fields: &[
        f(1, "matchLabels", MapStr),
        r(2, "matchExpressions", Msg(&LABEL_SELECTOR_REQUIREMENT)),
    ],
};

// ---- core/v1 ----

static NAMESPACE_SPEC: Msg = Msg {
    name: "NamespaceSpec",
    fields: &[r(1, "finalizers", Str)],
};

static NAMESPACE_STATUS: Msg = Msg {
    name: "NamespaceStatus",
    fields: &[f(1, "phase", Str)],
};

pub(crate) static NAMESPACE: Msg = Msg {
    name: "Namespace",
    fields: &[
        f(1, "metadata", Msg(&OBJECT_META)),
        f(2, "spec", Msg(&NAMESPACE_SPEC)),
        f(3, "status", Msg(&NAMESPACE_STATUS)),
    ],
};

pub(crate) static CONFIG_MAP: Msg = Msg {
    name: "ConfigMap",
    fields: &[
        f(1, "metadata", Msg(&OBJECT_META)),
        p(4, "immutable", Bool),
        f(2, "data", MapStr),
        f(3, "binaryData", MapBytes),
    ],
};

pub(crate) static SECRET: Msg = Msg {
    name: "Secret",
    fields: &[
        f(1, "metadata", Msg(&OBJECT_META)),
        p(5, "immutable", Bool),
        f(2, "data", MapBytes),
        f(4, "stringData", MapStr),
        f(3, "type", Str),
    ],
};

static SERVICE_PORT: Msg = Msg {
    name: "ServicePort",
    fields: &[
        f(1, "name", Str),
        f(2, "protocol", Str),
        p(6, "appProtocol", Str),
        f(3, "port", I32),
        f(4, "targetPort", IntOrStr),
        f(5, "nodePort", I32),
    ],
};

static SERVICE_SPEC: Msg = Msg {
    name: "ServiceSpec",
    fields: &[
        r(1, "ports", Msg(&SERVICE_PORT)),
        f(2, "selector", MapStr),
        f(3, "clusterIP", Str),
        r(18, "clusterIPs", Str),
        f(4, "type", Str),
        r(5, "externalIPs", Str),
        f(7, "sessionAffinity", Str),
        f(8, "loadBalancerIP", Str),
        r(9, "loadBalancerSourceRanges", Str),
        f(10, "externalName", Str),
        f(11, "externalTrafficPolicy", Str),
        f(12, "healthCheckNodePort", I32),
        f(13, "publishNotReadyAddresses", Bool),
        r(19, "ipFamilies", Str),
        p(17, "ipFamilyPolicy", Str),
        p(20, "allocateLoadBalancerNodePorts", Bool),
        p(21, "loadBalancerClass", Str),
        p(22, "internalTrafficPolicy", Str),
        p(23, "trafficDistribution", Str),
    ],
};

static LOAD_BALANCER_STATUS: Msg = Msg {
    name: "LoadBalancerStatus",
    fields: &[],
};

static SERVICE_STATUS: Msg = Msg {
    name: "ServiceStatus",
    fields: &[f(1, "loadBalancer", Msg(&LOAD_BALANCER_STATUS))],
};

pub(crate) static SERVICE: Msg = Msg {
    name: "Service",
    fields: &[
        f(1, "metadata", Msg(&OBJECT_META)),
        f(2, "spec", Msg(&SERVICE_SPEC)),
        f(3, "status", Msg(&SERVICE_STATUS)),
    ],
};

static CONTAINER_PORT: Msg = Msg {
    name: "ContainerPort",
    fields: &[
        f(1, "name", Str),
        f(2, "hostPort", I32),
        f(3, "containerPort", I32),
        f(4, "protocol", Str),
        f(5, "hostIP", Str),
    ],
};

static ENV_VAR: Msg = Msg {
    name: "EnvVar",
    fields: &[f(1, "name", Str), f(2, "value", Str)],
};

static RESOURCE_REQUIREMENTS: Msg = Msg {
    name: "ResourceRequirements",
    fields: &[f(1, "limits", MapQty), f(2, "requests", MapQty)],
};

static CONTAINER: Msg = Msg {
    name: "Container",
    fields: &[
        f(1, "name", Str),
        f(2, "image", Str),
        r(3, "command", Str),
        r(4, "args", Str),
        f(5, "workingDir", Str),
        r(6, "ports", Msg(&CONTAINER_PORT)),
        r(7, "env", Msg(&ENV_VAR)),
        f(8, "resources", Msg(&RESOURCE_REQUIREMENTS)),
        p(24, "restartPolicy", Str),
        f(13, "terminationMessagePath", Str),
        f(20, "terminationMessagePolicy", Str),
        f(14, "imagePullPolicy", Str),
        f(16, "stdin", Bool),
        f(17, "stdinOnce", Bool),
        f(18, "tty", Bool),
    ],
};

static POD_SPEC: Msg = Msg {
    name: "PodSpec",
    fields: &[
        r(20, "initContainers", Msg(&CONTAINER)),
        r(2, "containers", Msg(&CONTAINER)),
        f(3, "restartPolicy", Str),
        p(4, "terminationGracePeriodSeconds", I64),
        p(5, "activeDeadlineSeconds", I64),
        f(6, "dnsPolicy", Str),
        f(7, "nodeSelector", MapStr),
        f(8, "serviceAccountName", Str),
        f(9, "serviceAccount", Str),
        p(21, "automountServiceAccountToken", Bool),
        f(10, "nodeName", Str),
        f(11, "hostNetwork", Bool),
        f(12, "hostPID", Bool),
        f(13, "hostIPC", Bool),
        p(27, "shareProcessNamespace", Bool),
        f(16, "hostname", Str),
        f(17, "subdomain", Str),
        f(19, "schedulerName", Str),
        f(24, "priorityClassName", Str),
        p(25, "priority", I32),
        p(29, "runtimeClassName", Str),
        p(30, "enableServiceLinks", Bool),
        p(31, "preemptionPolicy", Str),
        p(35, "setHostnameAsFQDN", Bool),
        p(37, "hostUsers", Bool),
    ],
};

static POD_TEMPLATE_SPEC: Msg = Msg {
    name: "PodTemplateSpec",
    fields: &[
        f(1, "metadata", Msg(&OBJECT_META)),
        f(2, "spec", Msg(&POD_SPEC)),
    ],
};

static POD_STATUS: Msg = Msg {
    name: "PodStatus",
    fields: &[
        f(1, "phase", Str),
        f(3, "message", Str),
        f(4, "reason", Str),
        f(11, "nominatedNodeName", Str),
        f(5, "hostIP", Str),
        f(6, "podIP", Str),
        f(9, "qosClass", Str),
    ],
};

pub(crate) static POD: Msg = Msg {
    name: "Pod",
    fields: &[
        f(1, "metadata", Msg(&OBJECT_META)),
        f(2, "spec", Msg(&POD_SPEC)),
        f(3, "status", Msg(&POD_STATUS)),
    ],
};

// ---- apps/v1 ----

static ROLLING_UPDATE_DEPLOYMENT: Msg = Msg {
    name: "RollingUpdateDeployment",
    fields: &[p(1, "maxUnavailable", IntOrStr), p(2, "maxSurge", IntOrStr)],
};

static DEPLOYMENT_STRATEGY: Msg = Msg {
    name: "DeploymentStrategy",
    fields: &[
        f(1, "type", Str),
        p(2, "rollingUpdate", Msg(&ROLLING_UPDATE_DEPLOYMENT)),
    ],
};

static DEPLOYMENT_SPEC: Msg = Msg {
    name: "DeploymentSpec",
    fields: &[
        p(1, "replicas", I32),
        p(2, "selector", Msg(&LABEL_SELECTOR)),
        f(3, "template", Msg(&POD_TEMPLATE_SPEC)),
        f(4, "strategy", Msg(&DEPLOYMENT_STRATEGY)),
        f(5, "minReadySeconds", I32),
        p(6, "revisionHistoryLimit", I32),
        f(7, "paused", Bool),
        p(9, "progressDeadlineSeconds", I32),
    ],
};

static DEPLOYMENT_STATUS: Msg = Msg {
    name: "DeploymentStatus",
    fields: &[
        f(1, "observedGeneration", I64),
        f(2, "replicas", I32),
        f(3, "updatedReplicas", I32),
        f(7, "readyReplicas", I32),
        f(4, "availableReplicas", I32),
        f(5, "unavailableReplicas", I32),
        p(9, "terminatingReplicas", I32),
        p(8, "collisionCount", I32),
    ],
};

pub(crate) static DEPLOYMENT: Msg = Msg {
    name: "Deployment",
    fields: &[
        f(1, "metadata", Msg(&OBJECT_META)),
        f(2, "spec", Msg(&DEPLOYMENT_SPEC)),
        f(3, "status", Msg(&DEPLOYMENT_STATUS)),
    ],
};

static REPLICA_SET_SPEC: Msg = Msg {
    name: "ReplicaSetSpec",
    fields: &[
        p(1, "replicas", I32),
        f(4, "minReadySeconds", I32),
        p(2, "selector", Msg(&LABEL_SELECTOR)),
        f(3, "template", Msg(&POD_TEMPLATE_SPEC)),
    ],
};

static REPLICA_SET_STATUS: Msg = Msg {
    name: "ReplicaSetStatus",
    fields: &[
        f(1, "replicas", I32),
        f(2, "fullyLabeledReplicas", I32),
        f(4, "readyReplicas", I32),
        f(5, "availableReplicas", I32),
        p(7, "terminatingReplicas", I32),
        f(3, "observedGeneration", I64),
    ],
};

pub(crate) static REPLICA_SET: Msg = Msg {
    name: "ReplicaSet",
    fields: &[
        f(1, "metadata", Msg(&OBJECT_META)),
        f(2, "spec", Msg(&REPLICA_SET_SPEC)),
        f(3, "status", Msg(&REPLICA_SET_STATUS)),
    ],
};

// ---- networking.k8s.io/v1 ----

static SERVICE_BACKEND_PORT: Msg = Msg {
    name: "ServiceBackendPort",
    fields: &[f(1, "name", Str), f(2, "number", I32)],
};

static INGRESS_SERVICE_BACKEND: Msg = Msg {
    name: "IngressServiceBackend",
    fields: &[f(1, "name", Str), f(2, "port", Msg(&SERVICE_BACKEND_PORT))],
};

static INGRESS_BACKEND: Msg = Msg {
    name: "IngressBackend",
    fields: &[p(4, "service", Msg(&INGRESS_SERVICE_BACKEND))],
};

static INGRESS_TLS: Msg = Msg {
    name: "IngressTLS",
    fields: &[r(1, "hosts", Str), f(2, "secretName", Str)],
};

static HTTP_INGRESS_PATH: Msg = Msg {
    name: "HTTPIngressPath",
    fields: &[
        f(1, "path", Str),
        p(3, "pathType", Str),
        f(2, "backend", Msg(&INGRESS_BACKEND)),
    ],
};

static HTTP_INGRESS_RULE_VALUE: Msg = Msg {
    name: "HTTPIngressRuleValue",
    fields: &[r(1, "paths", Msg(&HTTP_INGRESS_PATH))],
};

static INGRESS_RULE_VALUE: Msg = Msg {
    name: "IngressRuleValue",
    fields: &[p(1, "http", Msg(&HTTP_INGRESS_RULE_VALUE))],
};

static INGRESS_RULE: Msg = Msg {
    name: "IngressRule",
    fields: &[
        f(1, "host", Str),
        // Embedded in Go (`json:",inline"`): its members sit in the rule itself.
        f(2, INLINE, Msg(&INGRESS_RULE_VALUE)),
    ],
};

static INGRESS_SPEC: Msg = Msg {
    name: "IngressSpec",
    fields: &[
        p(4, "ingressClassName", Str),
        p(1, "defaultBackend", Msg(&INGRESS_BACKEND)),
        r(2, "tls", Msg(&INGRESS_TLS)),
        r(3, "rules", Msg(&INGRESS_RULE)),
    ],
};

static INGRESS_LOAD_BALANCER_STATUS: Msg = Msg {
    name: "IngressLoadBalancerStatus",
    fields: &[],
};

static INGRESS_STATUS: Msg = Msg {
    name: "IngressStatus",
    fields: &[f(1, "loadBalancer", Msg(&INGRESS_LOAD_BALANCER_STATUS))],
};

pub(crate) static INGRESS: Msg = Msg {
    name: "Ingress",
    fields: &[
        f(1, "metadata", Msg(&OBJECT_META)),
        f(2, "spec", Msg(&INGRESS_SPEC)),
        f(3, "status", Msg(&INGRESS_STATUS)),
    ],
};

/// The message of a served kind accepted as protobuf, by `apiVersion` and `kind`.
pub(crate) fn top_level(api_version: &str, kind: &str) -> Option<&'static Msg> {
    Some(match (api_version, kind) {
        ("v1", "Namespace") => &NAMESPACE,
        ("v1", "ConfigMap") => &CONFIG_MAP,
        ("v1", "Secret") => &SECRET,
        ("v1", "Service") => &SERVICE,
        ("v1", "Pod") => &POD,
        ("apps/v1", "Deployment") => &DEPLOYMENT,
        ("apps/v1", "ReplicaSet") => &REPLICA_SET,
        ("networking.k8s.io/v1", "Ingress") => &INGRESS,
        _ => return None,
    })
}
