//! Unit tests of Service allocation planning: exact allocator messages, carry-over on
//! update, releases on type change.

use super::*;

struct Script {
    ips: Vec<u64>,
    idx: Vec<usize>,
}

impl Chooser for Script {
    fn ip_offset(&mut self, _max: u64) -> u64 {
        self.ips.remove(0)
    }
    fn index(&mut self, _n: usize) -> usize {
        self.idx.remove(0)
    }
}

fn ranges() -> Ranges {
    Ranges {
        cidr: "10.96.0.0/12".parse().unwrap(),
        ports: 30000..=32767,
    }
}

fn script() -> Script {
    Script {
        ips: vec![20, 21, 22],
        idx: vec![0, 1, 2],
    }
}

fn svc(spec: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x", "namespace": "default"}, "spec": spec})
}

#[test]
fn clusterip_create_picks_random_ip_and_sets_families() {
    let mut s = svc(json!({"ports": [{"port": 80}]}));
    let p = plan(None, &mut s, &ranges(), &BTreeSet::new(), &mut script()).unwrap();
    assert_eq!(s["spec"]["clusterIP"], "10.96.0.20");
    assert_eq!(s["spec"]["clusterIPs"], json!(["10.96.0.20"]));
    assert_eq!(s["spec"]["ipFamilies"], json!(["IPv4"]));
    assert_eq!(s["spec"]["ipFamilyPolicy"], "SingleStack");
    assert_eq!(
        p.claims,
        vec![Claim {
            key: "/registry-alloc/clusterip/10.96.0.20".into(),
            taken_error: None
        }]
    );
    assert!(p.releases.is_empty());
}

#[test]
fn requested_ip_out_of_range_has_kubernetes_message() {
    let mut s = svc(json!({"clusterIP": "1.1.1.1", "ports": [{"port": 80}]}));
    let errs = plan(None, &mut s, &ranges(), &BTreeSet::new(), &mut script()).unwrap_err();
    assert_eq!(
        errs[0].to_string(),
        "spec.clusterIPs: Invalid value: []string{\"1.1.1.1\"}: failed to allocate IP 1.1.1.1: provided IP is not in the valid range. The range of valid IPs is 10.96.0.0/12"
    );
    let mut s = svc(json!({"clusterIP": "10.96.0.20", "ports": [{"port": 80}]}));
    let p = plan(None, &mut s, &ranges(), &BTreeSet::new(), &mut script()).unwrap();
    assert_eq!(
        p.claims[0].taken_error.as_ref().unwrap().to_string(),
        "spec.clusterIPs: Invalid value: []string{\"10.96.0.20\"}: failed to allocate IP 10.96.0.20: provided IP is already allocated"
    );
}

#[test]
fn nodeport_requested_out_of_range_and_taken_messages() {
    let mut s = svc(json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 40000}]}));
    let errs = plan(None, &mut s, &ranges(), &BTreeSet::new(), &mut script()).unwrap_err();
    assert_eq!(
        errs[0].to_string(),
        "spec.ports[0].nodePort: Invalid value: 40000: provided port is not in the valid range. The range of valid ports is 30000-32767"
    );
    let mut s = svc(json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]}));
    let p = plan(None, &mut s, &ranges(), &BTreeSet::new(), &mut script()).unwrap();
    assert_eq!(p.claims[1].key, "/registry-alloc/nodeport/30080");
    assert_eq!(
        p.claims[1].taken_error.as_ref().unwrap().to_string(),
        "spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated"
    );
}

#[test]
fn random_nodeport_skips_taken_ports() {
    let mut s = svc(json!({"type": "NodePort", "ports": [{"port": 80}, {"port": 443}]}));
    let taken: BTreeSet<u16> = [30000, 30001].into_iter().collect();
    let p = plan(None, &mut s, &ranges(), &taken, &mut script()).unwrap();
    // index 0 of the free list is 30002; then index 1 of the remaining free list is 30004.
    assert_eq!(s["spec"]["ports"][0]["nodePort"], 30002);
    assert_eq!(s["spec"]["ports"][1]["nodePort"], 30004);
    assert_eq!(p.claims.len(), 3);
}

#[test]
fn update_keeps_allocations_and_type_change_releases_them() {
    let old = svc(
        json!({"type": "NodePort", "clusterIP": "10.96.0.5", "clusterIPs": ["10.96.0.5"], "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30080}]}),
    );
    // A PUT that leaves out clusterIP and nodePort keeps both, claiming nothing.
    let mut new = svc(json!({"type": "NodePort", "ports": [{"port": 80, "protocol": "TCP"}]}));
    let p = plan(
        Some(&old),
        &mut new,
        &ranges(),
        &BTreeSet::new(),
        &mut script(),
    )
    .unwrap();
    assert_eq!(p, Plan::default());
    assert_eq!(new["spec"]["ports"][0]["nodePort"], 30080);
    assert_eq!(new["spec"]["clusterIP"], "10.96.0.5");
    // NodePort -> ClusterIP drops the untouched nodePort and releases it.
    let mut new = old.clone();
    new["spec"]["type"] = json!("ClusterIP");
    let p = plan(
        Some(&old),
        &mut new,
        &ranges(),
        &BTreeSet::new(),
        &mut script(),
    )
    .unwrap();
    assert!(new["spec"]["ports"][0].get("nodePort").is_none());
    assert_eq!(
        p.releases,
        vec!["/registry-alloc/nodeport/30080".to_string()]
    );
    // NodePort -> ExternalName releases the IP too.
    let mut new = old.clone();
    new["spec"]["type"] = json!("ExternalName");
    new["spec"]["externalName"] = json!("example.com");
    let p = plan(
        Some(&old),
        &mut new,
        &ranges(),
        &BTreeSet::new(),
        &mut script(),
    )
    .unwrap();
    assert!(new["spec"].get("clusterIP").is_none());
    assert_eq!(p.releases.len(), 2);
    assert_eq!(
        held_keys(&old),
        vec![
            "/registry-alloc/clusterip/10.96.0.5".to_string(),
            "/registry-alloc/nodeport/30080".to_string()
        ]
    );
}

#[test]
fn headless_and_externalname_allocate_nothing() {
    let mut s = svc(json!({"clusterIP": "None", "ports": [{"port": 80}]}));
    let p = plan(None, &mut s, &ranges(), &BTreeSet::new(), &mut script()).unwrap();
    assert!(p.claims.is_empty());
    assert_eq!(s["spec"]["clusterIPs"], json!(["None"]));
    let mut s = svc(json!({"type": "ExternalName", "externalName": "example.com"}));
    let p = plan(None, &mut s, &ranges(), &BTreeSet::new(), &mut script()).unwrap();
    assert!(p.claims.is_empty());
    assert!(s["spec"].get("clusterIP").is_none());
}

#[test]
fn lb_with_local_policy_gets_health_check_port() {
    let mut s = svc(
        json!({"type": "LoadBalancer", "externalTrafficPolicy": "Local", "ports": [{"port": 80}]}),
    );
    let p = plan(None, &mut s, &ranges(), &BTreeSet::new(), &mut script()).unwrap();
    assert_eq!(s["spec"]["ports"][0]["nodePort"], 30000);
    assert_eq!(s["spec"]["healthCheckNodePort"], 30002);
    assert_eq!(p.claims.len(), 3);
}
