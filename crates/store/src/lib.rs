//! portico-store: a revisioned key/value store with etcd-like transactions and watches.
//!
//! # Layout
//! - this file: the [`Store`] trait and its data types (keys, values, compares, ops, events);
//! - [`redb_store`]: [`RedbStore`], the embedded durable backend (group commit on one writer thread);
//! - [`watch`]: the in-memory event history ring and live fan-out shared by backends.
//!
//! Every successful transaction that changes something gets the next store-wide
//! revision; each key remembers the revision that created it and the one that last
//! modified it. The API server uses `mod_revision` as an object's `resourceVersion`.

pub mod redb_store;
pub mod watch;

use std::any::Any;
use std::sync::{Arc, OnceLock};

pub use redb_store::RedbStore;
pub use watch::{Watch, WatchRecv};

/// A stored key with its value and revisions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    /// The key.
    pub key: String,
    /// The value bytes (JSON for the API server).
    pub value: Vec<u8>,
    /// Revision of the transaction that created the key.
    pub create_revision: u64,
    /// Revision of the transaction that last wrote the key.
    pub mod_revision: u64,
}

/// A condition checked before a transaction's operations run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Compare {
    /// The key does not exist.
    KeyMissing(String),
    /// The key exists (any revision).
    KeyExists(String),
    /// The key exists and was last modified at exactly this revision.
    ModRevision(String, u64),
}

impl Compare {
    /// The key the compare looks at.
    pub fn key(&self) -> &str {
        match self {
            Compare::KeyMissing(k) | Compare::KeyExists(k) | Compare::ModRevision(k, _) => k,
        }
    }

    /// Whether the compare holds given the key's current state.
    pub fn holds(&self, current: Option<&KeyValue>) -> bool {
        match self {
            Compare::KeyMissing(_) => current.is_none(),
            Compare::KeyExists(_) => current.is_some(),
            Compare::ModRevision(_, rev) => current.is_some_and(|kv| kv.mod_revision == *rev),
        }
    }
}

/// A write inside a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Create or replace the key.
    Put(String, Vec<u8>),
    /// Remove the key (no-op if missing).
    Delete(String),
}

/// Result of a transaction that reached the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnOutcome {
    /// All compares held and the ops were applied at this revision (the current
    /// revision if the ops changed nothing).
    Committed(u64),
    /// The compare at `index` failed; nothing was written. `current` is the
    /// key's state at the time, so callers can report or retry without a read.
    Failed {
        /// Index into the compares passed.
        index: usize,
        /// The compared key's value at evaluation time.
        current: Option<KeyValue>,
    },
}

/// What happened to one key in one revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    /// The key was created or replaced.
    Put,
    /// The key was removed.
    Delete,
}

/// A slot where a consumer keeps something derived from an event (the API
/// server keeps its encoded watch line), computed by the first watcher that
/// needs it and shared by every other watcher of the same event: events reach
/// watchers as `Arc<Event>`, so N watchers cost one encoding, not N.
///
/// It is a cache: clones start empty and it takes no part in equality.
#[derive(Default)]
pub struct Memo(OnceLock<Box<dyn Any + Send + Sync>>);

impl Memo {
    /// The memoised value, computing it with `init` if the slot is empty.
    /// `None` if the slot already holds a value of another type.
    pub fn get_or_init<T: Any + Send + Sync>(&self, init: impl FnOnce() -> T) -> Option<&T> {
        self.0.get_or_init(|| Box::new(init())).downcast_ref()
    }
}

impl Clone for Memo {
    fn clone(&self) -> Self {
        Memo::default()
    }
}

impl PartialEq for Memo {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for Memo {}

impl std::fmt::Debug for Memo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.get().is_some() {
            "Memo(set)"
        } else {
            "Memo(empty)"
        })
    }
}

/// A change to one key, as seen by watchers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Put or delete.
    pub kind: EventKind,
    /// The key.
    pub key: String,
    /// The new state (for Put); `None` for Delete.
    pub kv: Option<KeyValue>,
    /// The state before the change, if the key existed.
    pub prev: Option<KeyValue>,
    /// Revision of the transaction that made the change.
    pub revision: u64,
    /// Consumers' shared derived data (see [`Memo`]).
    pub memo: Memo,
}

/// Errors from the store.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The requested watch revision is older than the retained history.
    #[error("required revision {requested} has been compacted; oldest available is {oldest}")]
    Compacted {
        /// Revision the watch asked to start after.
        requested: u64,
        /// The oldest revision a watch may start after.
        oldest: u64,
    },
    /// The storage backend failed (I/O, corruption).
    #[error("storage error: {0}")]
    Backend(String),
    /// The store has shut down.
    #[error("store is closed")]
    Closed,
}

/// A revisioned key/value store. Backends: [`RedbStore`]; an etcd client could
/// implement the same trait.
#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    /// Reads one key.
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError>;

    /// Lists keys starting with `prefix`, in key order, strictly after
    /// `start_after` when given, at most `limit` items. Returns the items and the
    /// store revision the read saw.
    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: Option<usize>,
    ) -> Result<(Vec<KeyValue>, u64), StoreError>;

    /// Applies `ops` atomically if every compare holds. Acknowledged commits are durable.
    async fn txn(&self, compares: Vec<Compare>, ops: Vec<Op>) -> Result<TxnOutcome, StoreError>;

    /// Watches keys under `prefix` for changes strictly after `from_revision`.
    fn watch(&self, prefix: &str, from_revision: u64) -> Result<Watch, StoreError>;

    /// The latest committed revision.
    fn current_revision(&self) -> u64;
}

/// A shared store handle.
pub type SharedStore = Arc<dyn Store>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memo_computes_once_and_is_not_part_of_identity() {
        let memo = Memo::default();
        let mut calls = 0;
        assert_eq!(
            memo.get_or_init(|| {
                calls += 1;
                7u32
            }),
            Some(&7)
        );
        assert_eq!(
            memo.get_or_init(|| {
                calls += 1;
                8u32
            }),
            Some(&7)
        );
        assert_eq!(calls, 1);
        // Another type than the one stored: no value, the caller computes.
        assert_eq!(memo.get_or_init(|| "x"), None);
        // Clones start empty and memos never make events unequal.
        assert_eq!(memo.clone().get_or_init(|| 9u32), Some(&9));
        assert_eq!(memo, Memo::default());
    }
}
