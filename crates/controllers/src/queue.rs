//! A deduplicating work queue (client-go's workqueue semantics): a key is queued at most once,
//! a key being processed is never handed to two workers, and a key added while processing is
//! re-queued when the worker finishes, so no update is lost and none is processed twice at once.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

/// Shared handle to one controller's queue of object keys.
#[derive(Clone, Default)]
pub struct WorkQueue {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    state: Mutex<State>,
    notify: Notify,
}

#[derive(Default)]
struct State {
    queue: VecDeque<String>,
    queued: HashSet<String>,
    processing: HashSet<String>,
    dirty: HashSet<String>,
    failures: HashMap<String, u32>,
}

// === impl WorkQueue ===

impl WorkQueue {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    /// Queues `key` unless it is already waiting; a key in processing is re-queued on `done`.
    pub fn add(&self, key: impl Into<String>) {
        let key = key.into();
        let Ok(mut st) = self.inner.state.lock() else {
            return;
        };
        if st.processing.contains(&key) {
            st.dirty.insert(key);
            return;
        }
        if st.queued.insert(key.clone()) {
            st.queue.push_back(key);
            drop(st);
            self.inner.notify.notify_one();
        }
    }

    /// Queues `key` after `delay` (a timer task; cheap for the small numbers used here).
    pub fn add_after(&self, key: impl Into<String>, delay: Duration) {
        let key = key.into();
        let q = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            q.add(key);
        });
    }

    /// Re-queues a failed key with exponential backoff (5 ms doubling, capped at 30 s).
    pub fn retry(&self, key: &str) {
        let n = {
            let Ok(mut st) = self.inner.state.lock() else {
                return;
            };
            let n = st.failures.entry(key.to_string()).or_insert(0);
            *n = n.saturating_add(1);
            *n
        };
        let delay = Duration::from_millis(5u64.saturating_mul(1u64 << n.min(13)))
            .min(Duration::from_secs(30));
        self.add_after(key.to_string(), delay);
    }

    /// Clears the failure count of a key that was processed successfully.
    pub fn forget(&self, key: &str) {
        if let Ok(mut st) = self.inner.state.lock() {
            st.failures.remove(key);
        }
    }

    /// Waits for the next key and marks it as processing.
    pub async fn next(&self) -> String {
        loop {
            let notified = self.inner.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(key) = self.try_pop() {
                return key;
            }
            notified.await;
        }
    }

    fn try_pop(&self) -> Option<String> {
        let mut st = self.inner.state.lock().ok()?;
        let key = st.queue.pop_front()?;
        st.queued.remove(&key);
        st.processing.insert(key.clone());
        let more = !st.queue.is_empty();
        drop(st);
        if more {
            // Wake another worker: notify_one only stores one permit.
            self.inner.notify.notify_one();
        }
        Some(key)
    }

    /// Marks `key` as finished; re-queues it if it was added meanwhile.
    pub fn done(&self, key: &str) {
        let Ok(mut st) = self.inner.state.lock() else {
            return;
        };
        st.processing.remove(key);
        if st.dirty.remove(key) && st.queued.insert(key.to_string()) {
            st.queue.push_back(key.to_string());
            drop(st);
            self.inner.notify.notify_one();
        }
    }

    /// Number of keys waiting (for tests and metrics).
    pub fn len(&self) -> usize {
        self.inner.state.lock().map(|s| s.queue.len()).unwrap_or(0)
    }

    /// Whether no key is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What a reconcile asks of the queue afterwards.
pub type ReconcileResult<E> = Result<Option<Duration>, E>;

/// Runs `workers` concurrent workers pulling keys from `queue` into `reconcile` forever.
/// `Ok(Some(d))` re-checks the key after `d`; errors are logged and retried with backoff.
pub async fn run_workers<F, Fut, E>(
    name: &'static str,
    queue: WorkQueue,
    workers: usize,
    reconcile: F,
) where
    F: Fn(String) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = ReconcileResult<E>> + Send + 'static,
    E: std::fmt::Display + Send + 'static,
{
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..workers.max(1) {
        let queue = queue.clone();
        let reconcile = reconcile.clone();
        set.spawn(async move {
            loop {
                let key = queue.next().await;
                match reconcile(key.clone()).await {
                    Ok(requeue) => {
                        queue.forget(&key);
                        if let Some(d) = requeue {
                            queue.add_after(key.clone(), d);
                        }
                    }
                    Err(e) => {
                        tracing::debug!(controller = name, key = %key, error = %e, "reconcile failed, retrying");
                        queue.retry(&key);
                    }
                }
                queue.done(&key);
            }
        });
    }
    while set.join_next().await.is_some() {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn dedups_and_requeues_dirty_keys() {
        let q = WorkQueue::new();
        q.add("a");
        q.add("a");
        q.add("b");
        assert_eq!(q.len(), 2);
        let k = q.next().await;
        assert_eq!(k, "a");
        // Added while processing: held back until done.
        q.add("a");
        assert_eq!(q.len(), 1);
        q.done("a");
        assert_eq!(q.len(), 2);
        assert_eq!(q.next().await, "b");
        assert_eq!(q.next().await, "a");
    }
}
