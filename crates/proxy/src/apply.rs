//! The applier: keeps the last applied plans in memory and turns each sync
//! into one `nft` transaction (full at start or after a failure, otherwise
//! only what changed), plus UDP conntrack cleanup. Kernel access sits behind
//! the [`Nft`] and [`Conntrack`] traits.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::plan::{Base, ServicePlan, Table, UdpFlow};
use crate::render::{render_delete_tables, render_deletes, render_full, Diff};
use crate::ProxyError;

/// Chains and sets flushed in one sync are deleted this much later (kernels
/// before 6.2 refuse to delete a chain in the transaction that drops its
/// last map reference).
pub const DELETE_DELAY: Duration = Duration::from_secs(1);

/// One transaction the proxier wants applied, typed: the `nft` applier
/// prints it ([`Txn::script`]), the netlink one encodes it.
#[derive(Debug)]
pub enum Txn<'a> {
    /// Recreate the whole table.
    Full {
        /// The node-level skeleton.
        base: &'a Base,
        /// Every Service's plan.
        plans: Vec<&'a ServicePlan>,
    },
    /// Change what `diff` says, then delete chains and sets flushed by an earlier sync.
    Incremental {
        /// The changes.
        diff: &'a Diff,
        /// Chains to delete.
        delete_chains: &'a [(Table, String)],
        /// Sets to delete.
        delete_sets: &'a [(Table, String)],
    },
    /// Remove every Portico table (no error when absent).
    DeleteTable,
}

impl Txn<'_> {
    /// The transaction as an `nft -f` script.
    pub fn script(&self) -> String {
        match self {
            Txn::Full { base, plans } => render_full(base, plans.iter().copied()),
            Txn::Incremental {
                diff,
                delete_chains,
                delete_sets,
            } => {
                let mut s = diff.script();
                s.push_str(&render_deletes(delete_chains, delete_sets));
                s
            }
            Txn::DeleteTable => render_delete_tables(),
        }
    }

    /// Whether the transaction changes nothing.
    pub fn is_empty(&self) -> bool {
        match self {
            Txn::Incremental {
                diff,
                delete_chains,
                delete_sets,
            } => diff.is_empty() && delete_chains.is_empty() && delete_sets.is_empty(),
            Txn::Full { .. } | Txn::DeleteTable => false,
        }
    }
}

/// Runs one nftables transaction.
pub trait Nft: Send {
    /// Applies `script` atomically (all or nothing).
    fn apply(&mut self, script: &str) -> Result<(), ProxyError>;

    /// Applies `txn` atomically (all or nothing). By default as a script
    /// through [`Nft::apply`]; the netlink applier encodes it directly and
    /// commits a [`Txn::Full`] as one transaction per table (each table all
    /// or nothing; after a failure the next sync is a full one again).
    fn apply_txn(&mut self, txn: &Txn<'_>) -> Result<(), ProxyError> {
        self.apply(&txn.script())
    }
}

/// Deletes conntrack entries.
pub trait Conntrack: Send {
    /// Deletes UDP entries matching `flow`.
    fn delete_udp(&mut self, flow: &UdpFlow) -> Result<(), ProxyError>;
}

impl<T: Nft + ?Sized> Nft for Box<T> {
    fn apply(&mut self, script: &str) -> Result<(), ProxyError> {
        (**self).apply(script)
    }

    fn apply_txn(&mut self, txn: &Txn<'_>) -> Result<(), ProxyError> {
        (**self).apply_txn(txn)
    }
}

/// [`Nft`] through the `nft` command (`nft -f -`), in the caller's netns.
#[derive(Debug, Default, Clone)]
pub struct NftCli {
    /// Command prefix (e.g. `["ip", "netns", "exec", "n1"]` in tests); empty runs `nft` directly.
    pub prefix: Vec<String>,
}

fn command(prefix: &[String], program: &str) -> Command {
    match prefix.split_first() {
        Some((first, rest)) => {
            let mut c = Command::new(first);
            c.args(rest).arg(program);
            c
        }
        None => Command::new(program),
    }
}

impl Nft for NftCli {
    fn apply(&mut self, script: &str) -> Result<(), ProxyError> {
        let mut child = command(&self.prefix, "nft")
            .args(["-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| ProxyError::Spawn {
                program: "nft",
                source: e,
            })?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(script.as_bytes())
                .map_err(|e| ProxyError::Spawn {
                    program: "nft",
                    source: e,
                })?;
        }
        let out = child.wait_with_output().map_err(|e| ProxyError::Spawn {
            program: "nft",
            source: e,
        })?;
        if out.status.success() {
            Ok(())
        } else {
            let stderr = String::from_utf8_lossy(&out.stderr);
            Err(ProxyError::Nft(
                stderr.lines().take(12).collect::<Vec<_>>().join("\n"),
            ))
        }
    }
}

/// [`Conntrack`] through the `conntrack` command.
#[derive(Debug, Default, Clone)]
pub struct ConntrackCli {
    /// Command prefix, as for [`NftCli`].
    pub prefix: Vec<String>,
}

impl Conntrack for ConntrackCli {
    fn delete_udp(&mut self, flow: &UdpFlow) -> Result<(), ProxyError> {
        let mut cmd = command(&self.prefix, "conntrack");
        cmd.args(["-D", "-p", "udp"]);
        if let Some(dst) = flow.dst {
            cmd.args(["--orig-dst", &dst.to_string()]);
        }
        cmd.args(["--orig-port-dst", &flow.dport.to_string()]);
        if let Some(ep) = flow.endpoint {
            cmd.args(["--reply-src", &ep.to_string()]);
        }
        // Exit status 1 means "nothing matched", which is fine.
        cmd.stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map_err(|e| ProxyError::Spawn {
                program: "conntrack",
                source: e,
            })?;
        Ok(())
    }
}

/// What one sync did, for logs and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncStats {
    /// Whether the whole table was rewritten.
    pub full: bool,
    /// Services whose objects changed.
    pub changed_services: usize,
    /// Rules in the table after the sync.
    pub rules: usize,
}

/// The applied state of the table and the way to change it.
pub struct Proxier<N, C> {
    nft: N,
    conntrack: C,
    base: Base,
    applied: BTreeMap<String, Arc<ServicePlan>>,
    hairpin_refs: BTreeMap<Ipv4Addr, usize>,
    needs_full: bool,
    pending_chains: Vec<((Table, String), Instant)>,
    pending_sets: Vec<((Table, String), Instant)>,
    rules: usize,
}

impl<N: Nft, C: Conntrack> Proxier<N, C> {
    /// A proxier whose first sync rewrites the whole table.
    pub fn new(nft: N, conntrack: C, base: Base) -> Self {
        Proxier {
            nft,
            conntrack,
            base,
            applied: BTreeMap::new(),
            hairpin_refs: BTreeMap::new(),
            needs_full: true,
            pending_chains: Vec::new(),
            pending_sets: Vec::new(),
            rules: 0,
        }
    }

    /// The plans currently in the kernel, by `namespace/name`.
    pub fn applied(&self) -> &BTreeMap<String, Arc<ServicePlan>> {
        &self.applied
    }

    /// Whether deferred deletions are waiting.
    pub fn has_pending_deletes(&self) -> bool {
        !self.pending_chains.is_empty() || !self.pending_sets.is_empty()
    }

    /// Brings the kernel to `desired` for the Services named in `changed`
    /// (every Service when a full sync is due: then `desired` must hold all).
    /// `desired` maps `namespace/name` to the new plan; a changed key absent
    /// from it is a deleted Service.
    pub fn sync(
        &mut self,
        desired: &BTreeMap<String, Arc<ServicePlan>>,
        changed: &BTreeSet<String>,
        now: Instant,
    ) -> Result<SyncStats, ProxyError> {
        if self.needs_full {
            return self.full_sync(desired);
        }
        let empty = Arc::new(ServicePlan::default());
        let mut diff = Diff::default();
        let mut flushes: Vec<UdpFlow> = Vec::new();
        let mut hairpin_delta: BTreeMap<Ipv4Addr, isize> = BTreeMap::new();
        let mut changed_services = 0;
        for key in changed {
            let old: &ServicePlan = self.applied.get(key).unwrap_or(&empty);
            let new: &ServicePlan = desired.get(key).unwrap_or(&empty);
            if old == new {
                continue;
            }
            changed_services += 1;
            diff.service(old, new);
            for ip in &old.hairpin {
                *hairpin_delta.entry(*ip).or_default() -= 1;
            }
            for ip in &new.hairpin {
                *hairpin_delta.entry(*ip).or_default() += 1;
            }
            flushes.extend(old.udp_flows.difference(&new.udp_flows).cloned());
            flushes.extend(new.udp_live.difference(&old.udp_live).cloned());
        }
        let (mut added, mut removed) = (Vec::new(), Vec::new());
        // New counts of the touched addresses only: cloning every count
        // would make a one-Service sync linear in the table size.
        let mut refs: Vec<(Ipv4Addr, usize)> = Vec::with_capacity(hairpin_delta.len());
        for (ip, d) in hairpin_delta {
            let before = self.hairpin_refs.get(&ip).copied().unwrap_or(0);
            let after = usize::try_from(
                isize::try_from(before)
                    .unwrap_or(isize::MAX)
                    .saturating_add(d),
            )
            .unwrap_or(0);
            match (before, after) {
                (0, a) if a > 0 => added.push(ip),
                (b, 0) if b > 0 => removed.push(ip),
                _ => {}
            }
            refs.push((ip, after));
        }
        diff.hairpin(&added, &removed);

        // Chains (re)created now must not be deleted by an older deferral.
        let created: BTreeSet<(Table, &String)> = changed
            .iter()
            .filter_map(|k| desired.get(k))
            .flat_map(|p| p.chains.keys().map(|c| (p.chain_table(c), c)))
            .collect();
        let created_sets: BTreeSet<(Table, &String)> = changed
            .iter()
            .filter_map(|k| desired.get(k))
            .flat_map(|p| p.sets.keys().map(|s| (Table::Shard(p.shard), s)))
            .collect();
        self.pending_chains
            .retain(|((t, c), _)| !created.contains(&(*t, c)));
        self.pending_sets
            .retain(|((t, s), _)| !created_sets.contains(&(*t, s)));
        let due =
            |(_, t): &((Table, String), Instant)| now.saturating_duration_since(*t) >= DELETE_DELAY;
        let del_chains: Vec<(Table, String)> = self
            .pending_chains
            .iter()
            .filter(|p| due(p))
            .map(|(c, _)| c.clone())
            .collect();
        let del_sets: Vec<(Table, String)> = self
            .pending_sets
            .iter()
            .filter(|p| due(p))
            .map(|(s, _)| s.clone())
            .collect();

        let txn = Txn::Incremental {
            diff: &diff,
            delete_chains: &del_chains,
            delete_sets: &del_sets,
        };
        if !txn.is_empty() {
            if let Err(e) = self.nft.apply_txn(&txn) {
                self.needs_full = true;
                return Err(e);
            }
        }
        self.pending_chains.retain(|p| !due(p));
        self.pending_sets.retain(|p| !due(p));
        self.pending_chains
            .extend(diff.removed_chains.into_iter().map(|c| (c, now)));
        self.pending_sets
            .extend(diff.removed_sets.into_iter().map(|s| (s, now)));
        for (ip, after) in refs {
            if after == 0 {
                self.hairpin_refs.remove(&ip);
            } else {
                self.hairpin_refs.insert(ip, after);
            }
        }
        for key in changed {
            let old_rules = self.applied.get(key).map_or(0, |p| p.rule_count());
            let new_plan = desired.get(key);
            self.rules =
                self.rules.saturating_sub(old_rules) + new_plan.map_or(0, |p| p.rule_count());
            match new_plan {
                Some(p) => {
                    self.applied.insert(key.clone(), p.clone());
                }
                None => {
                    self.applied.remove(key);
                }
            }
        }
        self.flush_conntrack(&flushes);
        Ok(SyncStats {
            full: false,
            changed_services,
            rules: self.rules,
        })
    }

    fn full_sync(
        &mut self,
        desired: &BTreeMap<String, Arc<ServicePlan>>,
    ) -> Result<SyncStats, ProxyError> {
        let txn = Txn::Full {
            base: &self.base,
            plans: desired.values().map(|p| &**p).collect(),
        };
        self.nft.apply_txn(&txn)?;
        let mut flushes: Vec<UdpFlow> = Vec::new();
        for (key, new) in desired {
            let old = self.applied.get(key);
            flushes.extend(
                new.udp_live
                    .iter()
                    .filter(|f| old.is_none_or(|o| !o.udp_live.contains(f)))
                    .cloned(),
            );
        }
        self.needs_full = false;
        self.pending_chains.clear();
        self.pending_sets.clear();
        self.applied = desired.clone();
        self.hairpin_refs.clear();
        for ip in self.applied.values().flat_map(|p| &p.hairpin) {
            *self.hairpin_refs.entry(*ip).or_default() += 1;
        }
        self.rules = self.applied.values().map(|p| p.rule_count()).sum();
        self.flush_conntrack(&flushes);
        Ok(SyncStats {
            full: true,
            changed_services: desired.len(),
            rules: self.rules,
        })
    }

    fn flush_conntrack(&mut self, flows: &[UdpFlow]) {
        for f in flows {
            if let Err(e) = self.conntrack.delete_udp(f) {
                tracing::warn!(error = %e, ?f, "deleting UDP conntrack entries");
            }
        }
    }
}

/// Removes every Portico table from the current network namespace (no error when absent).
pub fn delete_table(nft: &mut dyn Nft) -> Result<(), ProxyError> {
    nft.apply_txn(&Txn::DeleteTable)
}
