//! Pod defaulting: `SetDefaults_Pod`, `SetDefaults_PodSpec`,
//! `SetDefaults_Container`, probes, ports and volumes, plus the fields the
//! Pod registry and default admission plugins set on create.

use serde_json::{json, Value};

use super::{set_default, set_str_default};

/// Defaults for a Pod object.
pub(super) fn apply_pod(pod: &mut Value) {
    // SetDefaults_Pod: requests default to limits (Pods only, not templates).
    for list in ["containers", "initContainers"] {
        if let Some(cs) = pod
            .pointer_mut(&format!("/spec/{list}"))
            .and_then(Value::as_array_mut)
        {
            for c in cs {
                let limits = c
                    .pointer("/resources/limits")
                    .and_then(Value::as_object)
                    .cloned();
                if let Some(limits) = limits {
                    set_default(c, &["resources", "requests"], json!({}));
                    if let Some(req) = c
                        .pointer_mut("/resources/requests")
                        .and_then(Value::as_object_mut)
                    {
                        for (k, v) in limits {
                            req.entry(k).or_insert(v);
                        }
                    }
                }
            }
        }
    }
    set_default(pod, &["spec", "enableServiceLinks"], json!(true));
    if let Some(spec) = pod.get_mut("spec") {
        apply_pod_spec(spec);
    }
    // DefaultTolerationSeconds admission and the Priority admission plugin.
    let tolerations = pod
        .pointer("/spec/tolerations")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut added = tolerations.clone();
    for key in [
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unreachable",
    ] {
        let present = tolerations.iter().any(|t| {
            let k = t.get("key").and_then(Value::as_str).unwrap_or("");
            let effect = t.get("effect").and_then(Value::as_str).unwrap_or("");
            (k == key || k.is_empty()) && (effect == "NoExecute" || effect.is_empty())
        });
        if !present {
            added.push(json!({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}));
        }
    }
    if added.len() != tolerations.len() {
        if let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) {
            spec.insert("tolerations".into(), Value::Array(added));
        }
    }
    set_default(pod, &["spec", "priority"], json!(0));
    // The registry's PrepareForCreate: a new Pod is Pending with its QoS class.
    if pod.pointer("/status/phase").is_none_or(Value::is_null) {
        let qos = qos_class(pod);
        set_default(pod, &["status", "phase"], json!("Pending"));
        set_default(pod, &["status", "qosClass"], json!(qos));
    }
}

/// `GetPodQOS` over containers' cpu/memory requests and limits.
fn qos_class(pod: &Value) -> &'static str {
    let mut any = false;
    let mut guaranteed = true;
    for list in ["containers", "initContainers"] {
        for c in pod
            .pointer(&format!("/spec/{list}"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let req = c.pointer("/resources/requests").and_then(Value::as_object);
            let lim = c.pointer("/resources/limits").and_then(Value::as_object);
            for r in ["cpu", "memory"] {
                let rq = req.and_then(|m| m.get(r));
                let lm = lim.and_then(|m| m.get(r));
                if rq.is_some() || lm.is_some() {
                    any = true;
                }
                match (rq, lm) {
                    (Some(a), Some(b)) if a == b => {}
                    _ => guaranteed = false,
                }
            }
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

/// Defaults for a PodTemplateSpec (Deployments, ReplicaSets).
pub fn apply_pod_template(template: &mut Value) {
    if let Some(spec) = template.get_mut("spec") {
        apply_pod_spec(spec);
    }
}

/// `SetDefaults_PodSpec` and the defaults of everything nested in it.
pub fn apply_pod_spec(spec: &mut Value) {
    if !spec.is_object() {
        return;
    }
    set_str_default(spec, &["dnsPolicy"], "ClusterFirst");
    set_str_default(spec, &["restartPolicy"], "Always");
    set_default(spec, &["securityContext"], json!({}));
    set_default(spec, &["terminationGracePeriodSeconds"], json!(30));
    set_str_default(spec, &["schedulerName"], "default-scheduler");
    let host_network = spec.get("hostNetwork").and_then(Value::as_bool) == Some(true);
    for list in ["containers", "initContainers"] {
        if let Some(cs) = spec.get_mut(list).and_then(Value::as_array_mut) {
            for c in cs {
                apply_container(c, host_network);
            }
        }
    }
    if let Some(vols) = spec.get_mut("volumes").and_then(Value::as_array_mut) {
        for v in vols {
            apply_volume(v);
        }
    }
}

/// Whether an image reference carries the `latest` tag (or none, which means latest).
fn image_is_latest(image: &str) -> bool {
    if image.contains('@') {
        // A digest without a tag pins the image.
        let before = image.split('@').next().unwrap_or("");
        let last = before.rsplit('/').next().unwrap_or("");
        return last.split_once(':').is_some_and(|(_, t)| t == "latest");
    }
    let last = image.rsplit('/').next().unwrap_or("");
    match last.split_once(':') {
        Some((_, tag)) => tag == "latest",
        None => true,
    }
}

fn apply_container(c: &mut Value, host_network: bool) {
    if !c.is_object() {
        return;
    }
    let image = c
        .get("image")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let policy = if image_is_latest(&image) {
        "Always"
    } else {
        "IfNotPresent"
    };
    set_str_default(c, &["imagePullPolicy"], policy);
    set_str_default(c, &["terminationMessagePath"], "/dev/termination-log");
    set_str_default(c, &["terminationMessagePolicy"], "File");
    if let Some(ports) = c.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports {
            set_str_default(p, &["protocol"], "TCP");
            if host_network {
                let cp = p.get("containerPort").cloned();
                if let Some(cp) = cp {
                    set_default(p, &["hostPort"], cp);
                }
            }
        }
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = c.get_mut(probe).filter(|p| p.is_object()) {
            set_default(p, &["timeoutSeconds"], json!(1));
            set_default(p, &["periodSeconds"], json!(10));
            set_default(p, &["successThreshold"], json!(1));
            set_default(p, &["failureThreshold"], json!(3));
            if let Some(h) = p.get_mut("httpGet").filter(|h| h.is_object()) {
                set_str_default(h, &["path"], "/");
                set_str_default(h, &["scheme"], "HTTP");
            }
        }
    }
    for hook in ["postStart", "preStop"] {
        if let Some(h) = c
            .pointer_mut(&format!("/lifecycle/{hook}/httpGet"))
            .filter(|h| h.is_object())
        {
            set_str_default(h, &["path"], "/");
            set_str_default(h, &["scheme"], "HTTP");
        }
    }
    if let Some(env) = c.get_mut("env").and_then(Value::as_array_mut) {
        for e in env {
            if let Some(f) = e
                .pointer_mut("/valueFrom/fieldRef")
                .filter(|f| f.is_object())
            {
                set_str_default(f, &["apiVersion"], "v1");
            }
        }
    }
}

const VOLUME_SOURCES: &[&str] = &[
    "hostPath",
    "emptyDir",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "gitRepo",
    "secret",
    "nfs",
    "iscsi",
    "glusterfs",
    "persistentVolumeClaim",
    "rbd",
    "flexVolume",
    "cinder",
    "cephfs",
    "flocker",
    "downwardAPI",
    "fc",
    "azureFile",
    "configMap",
    "vsphereVolume",
    "quobyte",
    "azureDisk",
    "photonPersistentDisk",
    "projected",
    "portworxVolume",
    "scaleIO",
    "storageos",
    "csi",
    "ephemeral",
    "image",
];

fn apply_volume(v: &mut Value) {
    let has_source = VOLUME_SOURCES
        .iter()
        .any(|k| v.get(*k).is_some_and(|x| !x.is_null()));
    if !has_source {
        set_default(v, &["emptyDir"], json!({}));
    }
    for src in ["secret", "configMap", "downwardAPI", "projected"] {
        if let Some(s) = v.get_mut(src).filter(|s| s.is_object()) {
            set_default(s, &["defaultMode"], json!(420));
        }
    }
    if let Some(h) = v.get_mut("hostPath").filter(|h| h.is_object()) {
        set_default(h, &["type"], json!(""));
    }
}
