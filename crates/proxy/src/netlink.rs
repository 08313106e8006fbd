//! The netlink applier: [`NftNetlink`] programs a [`Txn`] as one nf_tables
//! batch over a `NETLINK_NETFILTER` socket (a full sync as one per table,
//! [`crate::nlfull`]), with no `nft` process and
//! without listing the kernel tables. It builds the same tables as the `nft`
//! text (`render`), object for object ([`crate::nlskel`] for the skeletons,
//! [`crate::nlmsg`] for the messages).

use std::collections::BTreeMap;

use crate::apply::{Nft, Txn};
use crate::nl::{Batch, MsgType, NfSocket};
use crate::nlexpr as x;
use crate::nlfull;
use crate::nlmsg::{
    affinity_set, chain, delete_chain, delete_set, flush, hairpin_elements, map_elements, rule,
    table,
};
use crate::plan::{all_tables, Map, Table};
use crate::render::Diff;
use crate::ProxyError;

/// [`Nft`] over netlink, in the network namespace the socket was opened in.
#[derive(Debug)]
pub struct NftNetlink {
    sock: NfSocket,
    set_id: u32,
}

impl NftNetlink {
    /// Opens the socket in the calling thread's network namespace.
    pub fn open() -> Result<NftNetlink, ProxyError> {
        Ok(NftNetlink {
            sock: NfSocket::open()?,
            set_id: 0,
        })
    }

    /// Opens the socket in the named network namespace (`/run/netns/NAME`,
    /// as `ip netns add` creates): a helper thread enters it, opens the
    /// socket, and exits; the socket stays bound to that namespace.
    pub fn open_in_netns(name: &str) -> Result<NftNetlink, ProxyError> {
        let path = format!("/run/netns/{name}");
        let joined = std::thread::spawn(move || -> Result<NftNetlink, ProxyError> {
            let f = std::fs::File::open(&path)
                .map_err(|e| ProxyError::Netlink(format!("opening {path}: {e}")))?;
            nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(|e| ProxyError::Netlink(format!("entering {path}: {e}")))?;
            NftNetlink::open()
        })
        .join();
        joined.unwrap_or_else(|_| Err(ProxyError::Netlink("netns helper thread failed".into())))
    }

    fn next_set_id(&mut self) -> u32 {
        self.set_id = self.set_id.wrapping_add(1);
        self.set_id
    }

    /// Encodes `txn` into its batches, one per transaction (exposed for
    /// tests and benchmarks): a full sync is one per table
    /// ([`crate::nlfull`]), anything else one.
    pub fn encode(&mut self, txn: &Txn<'_>) -> Result<Vec<Batch>, ProxyError> {
        let mut b = Batch::new();
        match txn {
            Txn::DeleteTable => delete_all_tables(&mut b),
            Txn::Full { base, plans } => {
                let mut out = Vec::new();
                let mut failed = None;
                nlfull::encode(base, plans, |r| match r {
                    Ok(b) => {
                        out.push(b);
                        true
                    }
                    Err(e) => {
                        failed = Some(e);
                        false
                    }
                });
                return failed.map_or(Ok(out), Err);
            }
            Txn::Incremental {
                diff,
                delete_chains,
                delete_sets,
            } => self.incremental(&mut b, diff, delete_chains, delete_sets)?,
        }
        Ok(vec![b])
    }

    fn incremental(
        &mut self,
        b: &mut Batch,
        diff: &Diff,
        delete_chains: &[(Table, String)],
        delete_sets: &[(Table, String)],
    ) -> Result<(), ProxyError> {
        for (t, name, timeout) in &diff.new_sets {
            let id = self.next_set_id();
            affinity_set(b, *t, name, *timeout, id);
        }
        for (t, name) in &diff.new_chains {
            chain(b, *t, name, None);
        }
        for (t, name, rules) in &diff.rewrite {
            flush(b, *t, name);
            for r in rules {
                rule(b, *t, name, |b| x::encode_rule(b, r));
            }
        }
        let mut deletes: BTreeMap<(Table, Map), Vec<(&str, &str)>> = BTreeMap::new();
        for (t, m, k) in &diff.delete_elements {
            deletes.entry((*t, *m)).or_default().push((k, ""));
        }
        for ((t, m), keys) in &deletes {
            map_elements(b, MsgType::DelSetElem, *t, *m, keys)?;
        }
        hairpin_elements(b, MsgType::DelSetElem, &diff.hairpin_delete);
        let mut adds: BTreeMap<(Table, Map), Vec<(&str, &str)>> = BTreeMap::new();
        for (t, m, k, v) in &diff.add_elements {
            adds.entry((*t, *m)).or_default().push((k, v));
        }
        for ((t, m), elems) in &adds {
            map_elements(b, MsgType::NewSetElem, *t, *m, elems)?;
        }
        hairpin_elements(b, MsgType::NewSetElem, &diff.hairpin_add);
        for (t, name) in &diff.removed_chains {
            flush(b, *t, name);
        }
        for (t, name) in delete_chains {
            delete_chain(b, *t, name);
        }
        for (t, name) in delete_sets {
            delete_set(b, *t, name);
        }
        Ok(())
    }
}

/// `add; delete` of every table Portico may own: works whether or not they exist.
fn delete_all_tables(b: &mut Batch) {
    for t in all_tables() {
        table(b, MsgType::NewTable, t);
        table(b, MsgType::DelTable, t);
    }
}

impl Nft for NftNetlink {
    fn apply(&mut self, _script: &str) -> Result<(), ProxyError> {
        Err(ProxyError::Netlink(
            "the netlink applier takes typed transactions, not nft text".into(),
        ))
    }

    fn apply_txn(&mut self, txn: &Txn<'_>) -> Result<(), ProxyError> {
        if let Txn::Full { base, plans } = txn {
            return nlfull::commit(&mut self.sock, base, plans);
        }
        for batch in self.encode(txn)? {
            self.sock.commit(batch)?;
        }
        Ok(())
    }
}
