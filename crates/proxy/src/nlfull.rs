//! A full sync over netlink as one transaction per table: the shared table
//! (with the removal of shard tables no longer in use) first, its hairpin
//! pairs in slices, then each shard table.
//!
//! Why not one transaction: nfnetlink commits a batch only at the end of
//! the datagram that carries it, so one transaction means the whole batch in
//! memory at once (141 MiB at 30,000 Services × 10 endpoints, which was most
//! of the proxy's peak RSS), copied by the kernel into one skb. Every
//! Service lives in one shard table (its firewall chains and no-endpoint
//! elements in the shared one), and no rule can refer across tables, so a
//! table replaced by its own transaction is always consistent; a full sync
//! is no longer atomic across tables, which it needs not be (a restarted
//! proxy's old tables keep serving until each is replaced). Batches of a
//! few MiB also let the kernel parse them while they are still in cache,
//! and a table is found by a walk of the table list (`nft_table_lookup`)
//! that no longer passes 65 deleted tables first.
//!
//! Encoding runs on a helper thread one table ahead of the kernel, so the
//! kernel's work and ours overlap.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::mpsc;

use crate::nl::{Batch, MsgType, NfSocket};
use crate::nlexpr as x;
use crate::nlmsg::{affinity_set, chain, hairpin_elements, map_elements, rule, table};
use crate::nlskel;
use crate::plan::{Base, Map, ServicePlan, Table, MAX_SHARDS};
use crate::ProxyError;

/// Hairpin pairs per transaction: the set is a resizable hash whose
/// growth runs in a kernel worker between transactions; inside one, inserts
/// past its size take the slow path (all 300,000 pairs of 30,000 Services
/// in one transaction cost about 0.4 s more kernel CPU than slices).
const HAIRPIN_PER_TXN: usize = 16_384;

/// The plans of each shard table in use, in `plans` order.
fn by_shard<'a>(
    base: &Base,
    plans: &[&'a ServicePlan],
) -> Result<Vec<Vec<&'a ServicePlan>>, ProxyError> {
    let shards = base.shards.clamp(1, MAX_SHARDS);
    let mut groups: Vec<Vec<&ServicePlan>> = vec![Vec::new(); usize::from(shards)];
    for p in plans {
        let group = groups.get_mut(usize::from(p.shard)).ok_or_else(|| {
            ProxyError::Netlink(format!("a plan names shard table {} of {shards}", p.shard))
        })?;
        group.push(p);
    }
    Ok(groups)
}

/// Hands out set ids, unique within a batch.
struct Ids(u32);

impl Ids {
    fn next(&mut self) -> u32 {
        self.0 = self.0.wrapping_add(1);
        self.0
    }
}

/// Chains, rules and map elements of `plans` that live in table `t`:
/// every set and chain first (rules jump to chains of any Service), then
/// the rules, then the elements.
fn objects(
    b: &mut Batch,
    t: Table,
    plans: &[&ServicePlan],
    ids: &mut Ids,
) -> Result<(), ProxyError> {
    for p in plans {
        if t == Table::Shard(p.shard) {
            for (name, timeout) in &p.sets {
                affinity_set(b, t, name, *timeout, ids.next());
            }
        }
        for name in p.chains.keys().filter(|c| p.chain_table(c) == t) {
            chain(b, t, name, None);
        }
    }
    for p in plans {
        for (name, rules) in p.chains.iter().filter(|(c, _)| p.chain_table(c) == t) {
            for r in rules {
                rule(b, t, name, |b| x::encode_rule(b, r));
            }
        }
    }
    let mut elements: BTreeMap<Map, Vec<(&str, &str)>> = BTreeMap::new();
    for p in plans {
        for ((m, k), v) in p
            .elements
            .iter()
            .filter(|((m, _), _)| m.table(p.shard) == t)
        {
            elements.entry(*m).or_default().push((k, v));
        }
    }
    for (m, elems) in &elements {
        map_elements(b, MsgType::NewSetElem, t, *m, elems)?;
    }
    Ok(())
}

/// `add; delete; add` of table `t`: replaces it whether or not it exists.
fn recreate(b: &mut Batch, t: Table) {
    table(b, MsgType::NewTable, t);
    table(b, MsgType::DelTable, t);
    table(b, MsgType::NewTable, t);
}

/// The shared table's transaction; it also removes unused shard tables.
fn shared(base: &Base, plans: &[&ServicePlan]) -> Result<Batch, ProxyError> {
    let mut b = Batch::new();
    for k in base.shards.clamp(1, MAX_SHARDS)..MAX_SHARDS {
        table(&mut b, MsgType::NewTable, Table::Shard(k));
        table(&mut b, MsgType::DelTable, Table::Shard(k));
    }
    recreate(&mut b, Table::Shared);
    let mut ids = Ids(0);
    nlskel::shared(&mut b, base, &mut || ids.next());
    objects(&mut b, Table::Shared, plans, &mut ids)?;
    Ok(b)
}

/// Shard table `k`'s transaction, with the Services in `plans`.
fn shard(base: &Base, k: u16, plans: &[&ServicePlan]) -> Result<Batch, ProxyError> {
    let mut b = Batch::new();
    let t = Table::Shard(k);
    recreate(&mut b, t);
    let mut ids = Ids(0);
    nlskel::shard(&mut b, base, k, &mut || ids.next());
    objects(&mut b, t, plans, &mut ids)?;
    Ok(b)
}

/// Every endpoint that needs the hairpin masquerade, once.
fn hairpin(plans: &[&ServicePlan]) -> Vec<Ipv4Addr> {
    let mut ips: Vec<Ipv4Addr> = plans
        .iter()
        .flat_map(|p| p.hairpin.iter().copied())
        .collect();
    ips.sort_unstable();
    ips.dedup();
    ips
}

/// Produces the full sync's batches in order, handing each to `emit`
/// (which returns false to stop early).
pub(crate) fn encode(
    base: &Base,
    plans: &[&ServicePlan],
    mut emit: impl FnMut(Result<Batch, ProxyError>) -> bool,
) {
    let groups = match by_shard(base, plans) {
        Ok(g) => g,
        Err(e) => {
            emit(Err(e));
            return;
        }
    };
    if !emit(shared(base, plans)) {
        return;
    }
    // Right after the shared table that emptied the set, so the hairpin
    // pairs are back before the shard tables' longer work.
    for ips in hairpin(plans).chunks(HAIRPIN_PER_TXN) {
        let mut b = Batch::new();
        hairpin_elements(&mut b, MsgType::NewSetElem, ips);
        if !emit(Ok(b)) {
            return;
        }
    }
    for (k, group) in (0u16..).zip(&groups) {
        if !emit(shard(base, k, group)) {
            return;
        }
    }
}

/// Programs a full sync: batches encoded on a helper thread, committed
/// here one by one; the first failure stops both.
pub(crate) fn commit(
    sock: &mut NfSocket,
    base: &Base,
    plans: &[&ServicePlan],
) -> Result<(), ProxyError> {
    std::thread::scope(|s| {
        // One batch waiting while one is committed and one is encoded.
        let (tx, rx) = mpsc::sync_channel::<Result<Batch, ProxyError>>(1);
        s.spawn(move || encode(base, plans, |b| tx.send(b).is_ok()));
        for batch in rx {
            sock.commit(batch?)?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Endpoint, Proto, SvcPort};
    use crate::plan::plan_service;

    fn base(shards: u16) -> Base {
        Base {
            cluster_cidr: "10.244.0.0/16".parse().unwrap(),
            nodeport_addresses: vec![],
            shards,
            masquerade_fully_random: false,
        }
    }

    fn plan(i: u8, b: &Base) -> ServicePlan {
        let port = SvcPort {
            namespace: "default".into(),
            name: format!("web-{i}"),
            port_name: String::new(),
            proto: Proto::Tcp,
            cluster_ip: Ipv4Addr::new(10, 96, 0, i),
            port: 80,
            node_port: None,
            external_ips: vec![],
            lb_ips: vec![],
            source_ranges: vec![],
            external_local: false,
            internal_local: false,
            affinity_timeout: None,
            health_check_node_port: None,
            endpoints: vec![Endpoint {
                ip: Ipv4Addr::new(10, 244, 1, i),
                port: 8080,
                local: true,
                ready: true,
                serving: true,
                terminating: false,
            }],
        };
        plan_service(&[port], b)
    }

    /// Table names (NUL-terminated attribute 1) of every NEWTABLE message.
    fn new_tables(bytes: &[u8]) -> Vec<String> {
        let mut out = Vec::new();
        let mut off = 0;
        while off + 20 <= bytes.len() {
            let len =
                u32::from_ne_bytes([bytes[off], bytes[off + 1], bytes[off + 2], bytes[off + 3]])
                    as usize;
            let ty = u16::from_ne_bytes([bytes[off + 4], bytes[off + 5]]);
            if ty == 10 << 8 {
                let name = &bytes[off + 24..off + len];
                let end = name.iter().position(|&c| c == 0).unwrap();
                out.push(String::from_utf8(name[..end].to_vec()).unwrap());
            }
            off += len;
        }
        out
    }

    #[test]
    fn one_transaction_per_table_then_hairpin() {
        let b = base(4);
        let plans: Vec<ServicePlan> = (1..=20).map(|i| plan(i, &b)).collect();
        let refs: Vec<&ServicePlan> = plans.iter().collect();
        let mut batches = Vec::new();
        encode(&b, &refs, |r| {
            batches.push(r.unwrap().finish().concat());
            true
        });
        // Shared, one hairpin slice, 4 shards.
        assert_eq!(batches.len(), 6);
        // The first drops the unused shards 04..63, then replaces the shared table.
        let first = new_tables(&batches[0]);
        assert_eq!(first.len(), 60 + 2);
        assert_eq!(first[0], "portico-04");
        assert_eq!(first[59], "portico-63");
        assert_eq!(&first[60..], ["portico", "portico"]);
        assert!(new_tables(&batches[1]).is_empty());
        assert!(batches[1].windows(8).any(|w| w == b"hairpin\0"));
        for (k, batch) in batches[2..].iter().enumerate() {
            let name = format!("portico-{k:02}");
            assert_eq!(new_tables(batch), [name.clone(), name]);
        }
        // Every Service's chain is in the batch of its own shard.
        for p in &plans {
            let chain = p.chains.keys().next().unwrap();
            let holder: Vec<usize> = batches
                .iter()
                .enumerate()
                .filter(|(_, b)| b.windows(chain.len()).any(|w| w == chain.as_bytes()))
                .map(|(i, _)| i)
                .collect();
            assert_eq!(holder, [2 + usize::from(p.shard)], "{chain}");
        }
    }

    #[test]
    fn a_plan_outside_the_shard_count_is_an_error() {
        let wide = base(8);
        let p = (1..=50)
            .map(|i| plan(i, &wide))
            .find(|p| p.shard >= 2)
            .unwrap();
        let mut results = Vec::new();
        encode(&base(2), &[&p], |r| {
            results.push(r.is_ok());
            true
        });
        assert_eq!(results, [false]);
    }

    #[test]
    fn stopping_early_encodes_nothing_more() {
        let b = base(4);
        let mut n = 0;
        encode(&b, &[], |_| {
            n += 1;
            n < 2
        });
        assert_eq!(n, 2);
    }
}
