//! Table printing tests: exact cells for the seed objects and every kind.

use super::*;
use crate::resource::find;

fn now() -> Timestamp {
    "2026-12-04T12:05:00Z".parse().unwrap()
}

fn res(group: &str, plural: &str) -> &'static ResourceInfo {
    find(group, "v1", plural).unwrap()
}

fn meta(name: &str) -> Value {
    json!({"name": name, "namespace": "default", "uid": "u-1",
           "creationTimestamp": "2026-12-04T12:00:00Z", "labels": {"app": "nginx"}})
}

fn cells(group: &str, plural: &str, obj: Value) -> Vec<Value> {
    row_cells(res(group, plural), &obj, now())
}

fn names(group: &str, plural: &str) -> Vec<String> {
    columns(res(group, plural))
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_uppercase())
        .collect()
}

#[test]
fn seed_nodeport_service_row() {
    let svc = json!({"metadata": meta("nginx-service-nodeport"), "spec": {
        "type": "NodePort", "clusterIP": "10.96.12.34", "clusterIPs": ["10.96.12.34"],
        "selector": {"app": "nginx"},
        "ports": [{"port": 80, "targetPort": 80, "nodePort": 30080, "protocol": "TCP"}]}});
    assert_eq!(
        names("", "services"),
        [
            "NAME",
            "TYPE",
            "CLUSTER-IP",
            "EXTERNAL-IP",
            "PORT(S)",
            "AGE",
            "SELECTOR"
        ]
    );
    assert_eq!(
        cells("", "services", svc),
        [
            "nginx-service-nodeport",
            "NodePort",
            "10.96.12.34",
            "<none>",
            "80:30080/TCP",
            "5m",
            "app=nginx"
        ]
    );
}

#[test]
fn service_types_external_ip_and_ports() {
    let base =
        |spec: Value, status: Value| json!({"metadata": meta("s"), "spec": spec, "status": status});
    let cluster = base(
        json!({"type": "ClusterIP", "clusterIPs": ["10.96.0.5"],
               "ports": [{"port": 80, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}]}),
        json!({}),
    );
    let c = cells("", "services", cluster);
    assert_eq!(c[3], "<none>");
    assert_eq!(c[4], "80/TCP,53/UDP");
    assert_eq!(c[6], "<none>");

    let pending = base(
        json!({"type": "LoadBalancer", "clusterIPs": ["10.96.0.6"],
               "ports": [{"port": 80, "nodePort": 31000, "protocol": "TCP"}]}),
        json!({"loadBalancer": {}}),
    );
    assert_eq!(cells("", "services", pending)[3], "<pending>");

    let lb = base(
        json!({"type": "LoadBalancer", "clusterIPs": ["10.96.0.6"]}),
        json!({"loadBalancer": {"ingress": [{"ip": "172.18.0.201"}, {"ip": "172.18.0.200"}]}}),
    );
    let c = cells("", "services", lb);
    assert_eq!(c[3], "172.18.0.200,172.18.0.201");
    assert_eq!(c[4], "<none>");

    let lb_and_external = base(
        json!({"type": "LoadBalancer", "externalIPs": ["1.2.3.4"]}),
        json!({"loadBalancer": {"ingress": [{"hostname": "lb.example.com"}]}}),
    );
    assert_eq!(
        cells("", "services", lb_and_external)[3],
        "lb.example.com,1.2.3.4"
    );

    let ext = base(
        json!({"type": "ExternalName", "externalName": "db.example.com"}),
        json!({}),
    );
    let c = cells("", "services", ext);
    assert_eq!(c[2], "<none>");
    assert_eq!(c[3], "db.example.com");

    let headless = base(
        json!({"type": "ClusterIP", "clusterIP": "None", "clusterIPs": ["None"],
               "externalIPs": ["5.6.7.8", "5.6.7.9"]}),
        json!({}),
    );
    let c = cells("", "services", headless);
    assert_eq!(c[2], "None");
    assert_eq!(c[3], "5.6.7.8,5.6.7.9");
}

#[test]
fn seed_deployment_row() {
    let d = json!({"metadata": meta("nginx-deployment"), "spec": {"replicas": 2,
        "selector": {"matchLabels": {"app": "nginx"}},
        "template": {"metadata": {"labels": {"app": "nginx"}},
            "spec": {"containers": [{"name": "nginx", "image": "nginx:1.14.2"}]}}},
        "status": {"replicas": 2, "readyReplicas": 2, "updatedReplicas": 2, "availableReplicas": 2}});
    assert_eq!(
        names("apps", "deployments"),
        [
            "NAME",
            "READY",
            "UP-TO-DATE",
            "AVAILABLE",
            "AGE",
            "CONTAINERS",
            "IMAGES",
            "SELECTOR"
        ]
    );
    assert_eq!(
        cells("apps", "deployments", d),
        vec![
            json!("nginx-deployment"),
            json!("2/2"),
            json!(2),
            json!(2),
            json!("5m"),
            json!("nginx"),
            json!("nginx:1.14.2"),
            json!("app=nginx")
        ]
    );
    let fresh = json!({"metadata": meta("d"), "spec": {"replicas": 3,
        "selector": {"matchLabels": {"b": "2", "a": "1"},
                     "matchExpressions": [{"key": "tier", "operator": "In", "values": ["web", "api"]}]}}});
    let c = cells("apps", "deployments", fresh);
    assert_eq!(c[1], "0/3");
    assert_eq!(c[7], "a=1,b=2,tier in (api,web)");
}

#[test]
fn replicaset_row() {
    let rs = json!({"metadata": meta("nginx-deployment-5d59d67564"), "spec": {"replicas": 2,
        "selector": {"matchLabels": {"app": "nginx", "pod-template-hash": "5d59d67564"}},
        "template": {"spec": {"containers": [
            {"name": "nginx", "image": "nginx"}, {"name": "side", "image": "busybox"}]}}},
        "status": {"replicas": 2, "readyReplicas": 1}});
    assert_eq!(
        names("apps", "replicasets"),
        [
            "NAME",
            "DESIRED",
            "CURRENT",
            "READY",
            "AGE",
            "CONTAINERS",
            "IMAGES",
            "SELECTOR"
        ]
    );
    assert_eq!(
        cells("apps", "replicasets", rs),
        vec![
            json!("nginx-deployment-5d59d67564"),
            json!(2),
            json!(2),
            json!(1),
            json!("5m"),
            json!("nginx,side"),
            json!("nginx,busybox"),
            json!("app=nginx,pod-template-hash=5d59d67564")
        ]
    );
}

#[test]
fn endpoints_rows() {
    let ep = |subsets: Value| json!({"metadata": meta("nginx"), "subsets": subsets});
    assert_eq!(names("", "endpoints"), ["NAME", "ENDPOINTS", "AGE"]);
    assert_eq!(
        cells(
            "",
            "endpoints",
            ep(json!([{
            "addresses": [{"ip": "10.244.1.5"}, {"ip": "10.244.1.6"}],
            "ports": [{"port": 80, "protocol": "TCP"}]}]))
        ),
        ["nginx", "10.244.1.5:80,10.244.1.6:80", "5m"]
    );
    assert_eq!(cells("", "endpoints", ep(json!(null)))[1], "<none>");
    assert_eq!(
        cells(
            "",
            "endpoints",
            ep(json!([{
            "addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}, {"ip": "10.0.0.3"},
                          {"ip": "10.0.0.4"}, {"ip": "10.0.0.5"}],
            "ports": [{"port": 8080}]}]))
        )[1],
        "10.0.0.1:8080,10.0.0.2:8080,10.0.0.3:8080 + 2 more..."
    );
    assert_eq!(
        cells(
            "",
            "endpoints",
            ep(json!([{"addresses": [{"ip": "10.0.0.1"}]}]))
        )[1],
        "10.0.0.1"
    );
}

#[test]
fn endpointslice_rows() {
    let es = json!({"metadata": meta("nginx-abcde"), "addressType": "IPv4",
        "ports": [{"name": "http", "port": 80, "protocol": "TCP"}],
        "endpoints": [{"addresses": ["10.244.1.5"]}, {"addresses": ["10.244.2.7"]}]});
    assert_eq!(
        names("discovery.k8s.io", "endpointslices"),
        ["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"]
    );
    assert_eq!(
        cells("discovery.k8s.io", "endpointslices", es),
        ["nginx-abcde", "IPv4", "80", "10.244.1.5,10.244.2.7", "5m"]
    );
    let empty =
        json!({"metadata": meta("e"), "addressType": "IPv4", "ports": null, "endpoints": []});
    let c = cells("discovery.k8s.io", "endpointslices", empty);
    assert_eq!(c[2], "<unset>");
    assert_eq!(c[3], "<unset>");
    let many = json!({"metadata": meta("m"), "addressType": "IPv4",
        "ports": [{"port": 1}, {"port": 2}, {"port": 3}, {"port": 4}, {"name": "x"}],
        "endpoints": [{"addresses": ["a", "b", "c", "d"]}]});
    let c = cells("discovery.k8s.io", "endpointslices", many);
    assert_eq!(c[2], "1,2,3 + 2 more...");
    assert_eq!(c[3], "a,b,c + 1 more...");
}

#[test]
fn node_rows() {
    let node = json!({"metadata": {"name": "node-a", "creationTimestamp": "2026-12-02T09:05:00Z",
            "labels": {"node-role.kubernetes.io/control-plane": "", "kubernetes.io/role": "worker"}},
        "spec": {"unschedulable": true},
        "status": {"conditions": [{"type": "MemoryPressure", "status": "False"},
                                  {"type": "Ready", "status": "True"}],
            "addresses": [{"type": "InternalIP", "address": "10.0.0.10"},
                          {"type": "Hostname", "address": "node-a"}],
            "nodeInfo": {"kubeletVersion": "v1.33.0-portico", "osImage": "Portico",
                         "kernelVersion": "6.8.0", "containerRuntimeVersion": ""}}});
    assert_eq!(
        names("", "nodes"),
        [
            "NAME",
            "STATUS",
            "ROLES",
            "AGE",
            "VERSION",
            "INTERNAL-IP",
            "EXTERNAL-IP",
            "OS-IMAGE",
            "KERNEL-VERSION",
            "CONTAINER-RUNTIME"
        ]
    );
    assert_eq!(
        cells("", "nodes", node),
        [
            "node-a",
            "Ready,SchedulingDisabled",
            "control-plane,worker",
            "2d3h",
            "v1.33.0-portico",
            "10.0.0.10",
            "<none>",
            "Portico",
            "6.8.0",
            "<unknown>"
        ]
    );
    let bare = json!({"metadata": {"name": "n"}, "status": {"conditions": [
        {"type": "Ready", "status": "Unknown"}]}});
    let c = cells("", "nodes", bare);
    assert_eq!(c[1], "NotReady");
    assert_eq!(c[2], "<none>");
    assert_eq!(c[3], "<unknown>");
    assert_eq!(
        cells("", "nodes", json!({"metadata": {"name": "x"}}))[1],
        "Unknown"
    );
}

#[test]
fn namespace_secret_configmap_lease_rows() {
    let ns = json!({"metadata": meta("default"), "status": {"phase": "Active"}});
    assert_eq!(cells("", "namespaces", ns), ["default", "Active", "5m"]);
    let secret = json!({"metadata": meta("tls"), "type": "kubernetes.io/tls",
        "data": {"tls.crt": "eA==", "tls.key": "eQ=="}});
    assert_eq!(names("", "secrets"), ["NAME", "TYPE", "DATA", "AGE"]);
    assert_eq!(
        cells("", "secrets", secret),
        vec![
            json!("tls"),
            json!("kubernetes.io/tls"),
            json!(2),
            json!("5m")
        ]
    );
    let cm = json!({"metadata": meta("cfg"), "data": {"a": "1"}, "binaryData": {"b": "eA=="}});
    assert_eq!(
        cells("", "configmaps", cm),
        vec![json!("cfg"), json!(2), json!("5m")]
    );
    let lease = json!({"metadata": meta("node-a"), "spec": {"holderIdentity": "node-a"}});
    assert_eq!(
        names("coordination.k8s.io", "leases"),
        ["NAME", "HOLDER", "AGE"]
    );
    assert_eq!(
        cells("coordination.k8s.io", "leases", lease),
        ["node-a", "node-a", "5m"]
    );
}

#[test]
fn ingress_and_ingressclass_rows() {
    let ing = json!({"metadata": meta("my-ingress"), "spec": {"ingressClassName": "nginx",
        "rules": [{"host": "myapp.example.com"}]},
        "status": {"loadBalancer": {"ingress": [{"ip": "172.18.0.200"}]}}});
    assert_eq!(
        names("networking.k8s.io", "ingresses"),
        ["NAME", "CLASS", "HOSTS", "ADDRESS", "PORTS", "AGE"]
    );
    assert_eq!(
        cells("networking.k8s.io", "ingresses", ing),
        [
            "my-ingress",
            "nginx",
            "myapp.example.com",
            "172.18.0.200",
            "80",
            "5m"
        ]
    );
    let tls = json!({"metadata": meta("t"), "spec": {"tls": [{"hosts": ["a"]}],
        "rules": [{"host": "a"}, {}, {"host": "b"}, {"host": "c"}, {"host": "d"}]}});
    let c = cells("networking.k8s.io", "ingresses", tls);
    assert_eq!(c[1], "<none>");
    assert_eq!(c[2], "a,b,c + 2 more...");
    assert_eq!(c[3], "");
    assert_eq!(c[4], "80, 443");
    let bare = json!({"metadata": meta("b"), "spec": {"defaultBackend": {}}});
    assert_eq!(cells("networking.k8s.io", "ingresses", bare)[2], "*");

    let ic = json!({"metadata": meta("nginx"), "spec": {"controller": "portico.dev/ingress",
        "parameters": {"apiGroup": "k8s.example.com", "kind": "IngressParameters", "name": "p"}}});
    assert_eq!(
        cells("networking.k8s.io", "ingressclasses", ic),
        [
            "nginx",
            "portico.dev/ingress",
            "IngressParameters.k8s.example.com/p",
            "5m"
        ]
    );
    let plain = json!({"metadata": meta("x"), "spec": {"controller": "c"}});
    assert_eq!(
        cells("networking.k8s.io", "ingressclasses", plain)[2],
        "<none>"
    );
}

#[test]
fn event_rows_core_and_events_v1() {
    assert_eq!(
        names("", "events"),
        [
            "LAST SEEN",
            "TYPE",
            "REASON",
            "OBJECT",
            "SUBOBJECT",
            "SOURCE",
            "MESSAGE",
            "FIRST SEEN",
            "COUNT",
            "NAME"
        ]
    );
    let ev = json!({"metadata": meta("nginx.1"), "involvedObject": {"kind": "Service",
        "name": "nginx", "fieldPath": ""}, "reason": "Type", "type": "Normal",
        "message": "ClusterIP -> NodePort \n", "source": {"component": "service-controller"},
        "firstTimestamp": "2026-12-04T12:00:00Z", "lastTimestamp": "2026-12-04T12:04:30Z",
        "count": 2});
    assert_eq!(
        cells("", "events", ev),
        vec![
            json!("30s"),
            json!("Normal"),
            json!("Type"),
            json!("service/nginx"),
            json!(""),
            json!("service-controller"),
            json!("ClusterIP -> NodePort"),
            json!("5m"),
            json!(2),
            json!("nginx.1")
        ]
    );
    let v1 = json!({"metadata": meta("p.2"), "eventTime": "2026-12-04T12:04:00.000000Z",
        "reportingController": "portico-agent", "reportingInstance": "node-a",
        "regarding": {"kind": "Pod", "name": "web-1"}, "reason": "Started",
        "type": "Normal", "note": "Started container app", "action": "Start"});
    let res = find("events.k8s.io", "v1", "events").unwrap();
    assert_eq!(
        row_cells(res, &v1, now()),
        vec![
            json!("60s"),
            json!("Normal"),
            json!("Started"),
            json!("pod/web-1"),
            json!(""),
            json!("portico-agent, node-a"),
            json!("Started container app"),
            json!("60s"),
            json!(1),
            json!("p.2")
        ]
    );
}

#[test]
fn table_carries_partial_metadata_and_list_meta() {
    let svc = json!({"kind": "Service", "apiVersion": "v1", "metadata": meta("web"),
        "spec": {"type": "ClusterIP", "clusterIPs": ["10.96.0.9"], "ports": [{"port": 80, "protocol": "TCP"}]}});
    let r = res("", "services");
    let t = to_table(
        r,
        std::slice::from_ref(&svc),
        now(),
        IncludeObject::Metadata,
        json!({"resourceVersion": "42"}),
    );
    assert_eq!(t["kind"], "Table");
    assert_eq!(t["apiVersion"], "meta.k8s.io/v1");
    assert_eq!(t["metadata"], json!({"resourceVersion": "42"}));
    assert_eq!(t["columnDefinitions"][0]["format"], "name");
    assert_eq!(t["columnDefinitions"][6]["priority"], 1);
    let row = &t["rows"][0];
    assert_eq!(row["cells"][1], "ClusterIP");
    assert_eq!(
        row["object"],
        json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
               "metadata": meta("web")})
    );
    let full = to_table(
        r,
        std::slice::from_ref(&svc),
        now(),
        IncludeObject::Object,
        Value::Null,
    );
    assert_eq!(full["rows"][0]["object"], svc);
    assert_eq!(full["metadata"], json!({}));
    let none = to_table(r, &[svc], now(), IncludeObject::None, json!({}));
    assert!(none["rows"][0].get("object").is_none());
    assert_eq!(IncludeObject::from_query(None), IncludeObject::Metadata);
    assert_eq!(
        IncludeObject::from_query(Some("Object")),
        IncludeObject::Object
    );
    assert_eq!(IncludeObject::from_query(Some("None")), IncludeObject::None);
}

#[test]
fn every_kind_has_as_many_cells_as_columns() {
    for r in crate::resource::RESOURCES {
        let obj = json!({"metadata": meta("x")});
        assert_eq!(
            row_cells(r, &obj, now()).len(),
            columns(r).len(),
            "{}",
            r.kind
        );
    }
}

#[test]
fn succeeded_pod_row_has_completed_condition() {
    let pod = json!({"metadata": meta("job"), "spec": {"containers": [{"name": "c"}]},
        "status": {"phase": "Succeeded"}});
    let t = to_table(
        res("", "pods"),
        &[pod],
        now(),
        IncludeObject::None,
        json!({}),
    );
    assert_eq!(t["rows"][0]["conditions"][0]["type"], "Completed");
    assert_eq!(
        names("", "pods"),
        [
            "NAME",
            "READY",
            "STATUS",
            "RESTARTS",
            "AGE",
            "IP",
            "NODE",
            "NOMINATED NODE",
            "READINESS GATES"
        ]
    );
}
