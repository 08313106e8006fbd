//! Watch support: a bounded in-memory history of events plus live fan-out to watchers.
//!
//! Writers publish each committed batch once; every watcher has its own bounded
//! channel so a slow reader never blocks the writer: when its channel is full the
//! watcher is cut off and sees [`WatchRecv::TooSlow`], and the client re-watches
//! from the last revision it saw (which the ring usually still holds).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use crate::{Event, StoreError};

/// Default number of events retained for watches that start in the past.
pub const DEFAULT_HISTORY: usize = 50_000;
/// Default cap on the bytes (keys and values) the history holds, so a burst of
/// large objects cannot grow memory without bound.
///
/// 16 MiB holds about 10,000 events of Service-sized objects (with their
/// memoised watch encoding), several seconds of a bulk load: enough for a
/// watcher that reconnects to resume; one further behind relists (410), as
/// with kube-apiserver's watch cache.
pub const DEFAULT_HISTORY_BYTES: usize = 16 * 1024 * 1024;

/// Batches a watcher may have queued before it is dropped as too slow.
const WATCHER_QUEUE: usize = 4096;

type Batch = Arc<Vec<Arc<Event>>>;

struct Watcher {
    prefix: String,
    tx: mpsc::Sender<Batch>,
    too_slow: Arc<AtomicBool>,
}

/// Fixed cost of one retained event besides its keys and values: the `Event`
/// and `KeyValue` structs, the `Arc` and the ring slot.
const EVENT_OVERHEAD: usize = 256;

/// What one retained event costs in memory, for the byte bound: keys, values
/// and, because a consumer usually memoises an encoding of the object about
/// as large as the object (see [`crate::Memo`]), one more copy of it.
fn event_bytes(e: &Event) -> usize {
    let new = e.kv.as_ref().map_or(0, |kv| kv.key.len() + kv.value.len());
    let prev = e
        .prev
        .as_ref()
        .map_or(0, |kv| kv.key.len() + kv.value.len());
    EVENT_OVERHEAD + e.key.len() + new + prev + new.max(prev)
}

struct Inner {
    ring: VecDeque<Arc<Event>>,
    /// Sum of [`event_bytes`] over the ring.
    bytes: usize,
    /// Every event with a revision greater than this is in the ring (watch from
    /// `compacted` or later is served); older ones were evicted.
    compacted: u64,
    watchers: Vec<Watcher>,
}

/// History ring + watcher registry. Cheap to share behind an `Arc`.
pub struct Hub {
    capacity: usize,
    max_bytes: usize,
    inner: Mutex<Inner>,
}

impl Hub {
    /// A hub whose history starts at `revision` (nothing older can be watched).
    pub fn new(revision: u64, capacity: usize) -> Self {
        Self::with_limits(revision, capacity, DEFAULT_HISTORY_BYTES)
    }

    /// A hub keeping at most `capacity` events and about `max_bytes` of them.
    pub fn with_limits(revision: u64, capacity: usize, max_bytes: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            max_bytes,
            inner: Mutex::new(Inner {
                ring: VecDeque::new(),
                bytes: 0,
                compacted: revision,
                watchers: Vec::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave the ring half-updated in a
        // way that matters more than losing watches, so recover from poison.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a committed batch (events in revision order) and sends it to watchers.
    pub fn publish(&self, events: Vec<Event>) {
        if events.is_empty() {
            return;
        }
        let events: Vec<Arc<Event>> = events.into_iter().map(Arc::new).collect();
        let mut inner = self.lock();
        for ev in &events {
            inner.bytes += event_bytes(ev);
            inner.ring.push_back(ev.clone());
        }
        while inner.ring.len() > self.capacity
            || (inner.bytes > self.max_bytes && inner.ring.len() > 1)
        {
            if let Some(old) = inner.ring.pop_front() {
                inner.bytes = inner.bytes.saturating_sub(event_bytes(&old));
                inner.compacted = inner.compacted.max(old.revision);
            }
        }
        // Keep whole revisions: a watch from `compacted` must see every event of
        // later revisions, so drop any leftover events of the evicted revision.
        let compacted = inner.compacted;
        while inner.ring.front().is_some_and(|e| e.revision <= compacted) {
            if let Some(old) = inner.ring.pop_front() {
                inner.bytes = inner.bytes.saturating_sub(event_bytes(&old));
            }
        }
        inner.watchers.retain(|w| {
            let matching: Vec<Arc<Event>> = events
                .iter()
                .filter(|e| e.key.starts_with(&w.prefix))
                .cloned()
                .collect();
            if matching.is_empty() {
                return !w.tx.is_closed();
            }
            match w.tx.try_send(Arc::new(matching)) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    w.too_slow.store(true, Ordering::SeqCst);
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            }
        });
    }

    /// Starts a watch of `prefix` for events strictly after `from_revision`.
    pub fn watch(&self, prefix: &str, from_revision: u64) -> Result<Watch, StoreError> {
        let mut inner = self.lock();
        if from_revision < inner.compacted {
            return Err(StoreError::Compacted {
                requested: from_revision,
                oldest: inner.compacted,
            });
        }
        let backlog: VecDeque<Arc<Event>> = inner
            .ring
            .iter()
            .filter(|e| e.revision > from_revision && e.key.starts_with(prefix))
            .cloned()
            .collect();
        let (tx, rx) = mpsc::channel(WATCHER_QUEUE);
        let too_slow = Arc::new(AtomicBool::new(false));
        inner.watchers.push(Watcher {
            prefix: prefix.to_string(),
            tx,
            too_slow: too_slow.clone(),
        });
        Ok(Watch {
            pending: backlog,
            rx,
            too_slow,
        })
    }

    /// Number of registered watchers (for metrics and tests).
    pub fn watcher_count(&self) -> usize {
        self.lock().watchers.len()
    }
}

/// What a watch yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchRecv {
    /// The next event.
    Event(Arc<Event>),
    /// Nothing queued right now (only from [`Watch::try_recv`]).
    Empty,
    /// The watcher fell behind and was dropped; re-watch from the last revision seen.
    TooSlow,
    /// The store shut down.
    Closed,
}

/// A live watch. Events arrive in revision order; dropping it unregisters it.
pub struct Watch {
    pending: VecDeque<Arc<Event>>,
    rx: mpsc::Receiver<Batch>,
    too_slow: Arc<AtomicBool>,
}

impl Watch {
    fn take_batch(&mut self, batch: &Batch) {
        // The backlog snapshot and the registration happen under the hub lock,
        // so live batches never repeat backlog events.
        self.pending.extend(batch.iter().cloned());
    }

    fn pop(&mut self) -> Option<WatchRecv> {
        self.pending.pop_front().map(WatchRecv::Event)
    }

    fn closed(&self) -> WatchRecv {
        if self.too_slow.load(Ordering::SeqCst) {
            WatchRecv::TooSlow
        } else {
            WatchRecv::Closed
        }
    }

    /// Waits for the next event.
    pub async fn recv(&mut self) -> WatchRecv {
        loop {
            if let Some(r) = self.pop() {
                return r;
            }
            match self.rx.recv().await {
                Some(batch) => self.take_batch(&batch),
                None => return self.closed(),
            }
        }
    }

    /// Returns the next event if one is already queued, without waiting.
    pub fn try_recv(&mut self) -> WatchRecv {
        loop {
            if let Some(r) = self.pop() {
                return r;
            }
            match self.rx.try_recv() {
                Ok(batch) => self.take_batch(&batch),
                Err(mpsc::error::TryRecvError::Empty) => return WatchRecv::Empty,
                Err(mpsc::error::TryRecvError::Disconnected) => return self.closed(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EventKind, KeyValue};

    fn ev(key: &str, rev: u64) -> Event {
        Event {
            kind: EventKind::Put,
            key: key.to_string(),
            kv: Some(KeyValue {
                key: key.to_string(),
                value: b"{}".to_vec(),
                create_revision: rev,
                mod_revision: rev,
            }),
            prev: None,
            revision: rev,
            memo: Default::default(),
        }
    }

    fn rev_of(r: WatchRecv) -> u64 {
        match r {
            WatchRecv::Event(e) => e.revision,
            other => panic!("expected event, got {other:?}"),
        }
    }

    #[test]
    fn eviction_moves_compacted_and_rejects_old_watches() {
        let hub = Hub::new(0, 3);
        for r in 1..=5 {
            hub.publish(vec![ev("/a/x", r)]);
        }
        match hub.watch("/a/", 1) {
            Err(StoreError::Compacted { requested, oldest }) => {
                assert_eq!((requested, oldest), (1, 2));
            }
            _ => panic!("expected compacted"),
        }
        let mut w = hub.watch("/a/", 2).unwrap();
        assert_eq!(rev_of(w.try_recv()), 3);
        assert_eq!(rev_of(w.try_recv()), 4);
        assert_eq!(rev_of(w.try_recv()), 5);
        assert_eq!(w.try_recv(), WatchRecv::Empty);
    }

    #[test]
    fn byte_limit_evicts_too() {
        let one = event_bytes(&ev("/a", 1));
        let hub = Hub::with_limits(0, 1000, 3 * one);
        for r in 1..=5 {
            hub.publish(vec![ev("/a", r)]);
        }
        assert!(matches!(
            hub.watch("/", 1),
            Err(StoreError::Compacted { oldest: 2, .. })
        ));
        assert!(hub.watch("/", 2).is_ok());
    }

    #[test]
    fn prefix_filters_and_live_events_follow_backlog() {
        let hub = Hub::new(0, 100);
        hub.publish(vec![ev("/a/1", 1), ev("/b/1", 1)]);
        let mut w = hub.watch("/a/", 0).unwrap();
        hub.publish(vec![ev("/b/2", 2)]);
        hub.publish(vec![ev("/a/3", 3)]);
        assert_eq!(rev_of(w.try_recv()), 1);
        assert_eq!(rev_of(w.try_recv()), 3);
        assert_eq!(w.try_recv(), WatchRecv::Empty);
    }

    #[test]
    fn slow_watcher_is_dropped_not_blocking() {
        let hub = Hub::new(0, 10);
        let mut w = hub.watch("/", 0).unwrap();
        for r in 1..=(WATCHER_QUEUE as u64 + 5) {
            hub.publish(vec![ev("/k", r)]);
        }
        assert_eq!(hub.watcher_count(), 0);
        let mut last = WatchRecv::Empty;
        for _ in 0..(WATCHER_QUEUE + 10) {
            last = w.try_recv();
            if !matches!(last, WatchRecv::Event(_)) {
                break;
            }
        }
        assert_eq!(last, WatchRecv::TooSlow);
    }
}
