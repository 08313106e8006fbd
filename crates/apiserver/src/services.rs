//! Object writes to the store, with Service allocations claimed and released in the
//! same transaction as the Service itself.

use std::collections::BTreeSet;

use portico_api::resource::ResourceInfo;
use portico_api::status::ApiError;
use portico_store::{Compare, Op, TxnOutcome};
use rand::{Rng, SeedableRng};
use serde_json::Value;

use crate::alloc::{self, Chooser, PORT_PREFIX};
use crate::http::AppState;
use crate::objects;
use crate::ports::port_of_key;

/// Attempts before giving up on random allocations that keep losing races.
const ALLOC_ATTEMPTS: usize = 32;

/// The state the object key must be in for the write to apply.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Expect {
    /// Create: the key must not exist.
    Missing,
    /// Update/delete: the key must be at this mod revision.
    Rev(u64),
}

/// Why a write did not happen.
#[derive(Debug)]
pub(crate) enum WriteError {
    /// A Kubernetes error for the client.
    Api(ApiError),
    /// The object key was not in the expected state.
    Conflict,
}

impl From<ApiError> for WriteError {
    fn from(e: ApiError) -> Self {
        WriteError::Api(e)
    }
}

fn store_err(e: portico_store::StoreError) -> ApiError {
    ApiError::internal(e.to_string())
}

/// A Send RNG (the thread-local one cannot be held across awaits).
struct Rng2(rand::rngs::StdRng);

impl Chooser for Rng2 {
    fn ip_offset(&mut self, max: u64) -> u64 {
        self.0.random_range(1..=max.max(1))
    }
    fn index(&mut self, n: usize) -> usize {
        self.0.random_range(0..n.max(1))
    }
}

fn is_service(info: &ResourceInfo) -> bool {
    info.group.is_empty() && info.kind == "Service"
}

async fn ports_taken(st: &AppState) -> Result<BTreeSet<u16>, ApiError> {
    let (kvs, _) = st
        .store
        .list(PORT_PREFIX, None, None)
        .await
        .map_err(store_err)?;
    Ok(kvs.iter().filter_map(|kv| port_of_key(&kv.key)).collect())
}

fn compare_for(key: &str, expect: Expect) -> Compare {
    match expect {
        Expect::Missing => Compare::KeyMissing(key.to_string()),
        Expect::Rev(r) => Compare::ModRevision(key.to_string(), r),
    }
}

/// Writes `obj` at `key` if the key is as expected. For Services, allocates and
/// fills in ClusterIP/NodePorts (mutating `obj`) and releases what the update
/// dropped. With `dry_run` nothing is written. Returns the new revision.
pub(crate) async fn put(
    st: &AppState,
    info: &ResourceInfo,
    key: &str,
    expect: Expect,
    old: Option<&Value>,
    obj: &mut Value,
    dry_run: bool,
) -> Result<u64, WriteError> {
    if !is_service(info) {
        let bytes = objects::encode(obj)?;
        if dry_run {
            return dry_run_check(st, &[compare_for(key, expect)])
                .await
                .map(|()| st.store.current_revision());
        }
        return match st
            .store
            .txn(
                vec![compare_for(key, expect)],
                vec![Op::Put(key.to_string(), bytes)],
            )
            .await
            .map_err(store_err)?
        {
            TxnOutcome::Committed(rev) => Ok(rev),
            TxnOutcome::Failed { .. } => Err(WriteError::Conflict),
        };
    }
    let (rev, stored) = put_service(st, info, key, expect, old, obj, dry_run).await?;
    *obj = stored;
    Ok(rev)
}

/// [`put`] for a Service: returns the revision and the object as written.
async fn put_service(
    st: &AppState,
    info: &ResourceInfo,
    key: &str,
    expect: Expect,
    old: Option<&Value>,
    original: &Value,
    dry_run: bool,
) -> Result<(u64, Value), WriteError> {
    let owner = serde_json::json!({
        "namespace": original["metadata"]["namespace"],
        "name": original["metadata"]["name"],
    });
    let owner_bytes = serde_json::to_vec(&owner).unwrap_or_default();
    let mut chooser = Rng2(rand::rngs::StdRng::from_rng(&mut rand::rng()));
    // Only NodePort/LoadBalancer Services may pick a port, so only they need the taken set.
    let picks_ports = matches!(
        original["spec"]["type"].as_str(),
        Some("NodePort" | "LoadBalancer")
    );
    let taken = &st.taken_ports;
    let mut reloaded = false;
    for _ in 0..ALLOC_ATTEMPTS {
        let mut candidate = original.clone();
        if picks_ports && taken.is_unknown() {
            taken.fill(ports_taken(st).await?);
            reloaded = true;
        }
        let planned = if picks_ports {
            taken.with(|set| alloc::plan(old, &mut candidate, &st.ranges, set, &mut chooser))
        } else {
            alloc::plan(
                old,
                &mut candidate,
                &st.ranges,
                &BTreeSet::new(),
                &mut chooser,
            )
        };
        let plan = match planned {
            Ok(plan) => plan,
            // The remembered set may hold ports released meanwhile: say "full"
            // (or anything else) only after planning against the store's own.
            Err(_) if picks_ports && !reloaded => {
                taken.forget();
                continue;
            }
            Err(errs) => {
                return Err(ApiError::invalid(
                    "",
                    info.kind,
                    original["metadata"]["name"].as_str().unwrap_or(""),
                    &errs,
                )
                .into())
            }
        };
        let mut compares = vec![compare_for(key, expect)];
        let mut ops = vec![Op::Put(key.to_string(), objects::encode(&candidate)?)];
        for c in &plan.claims {
            compares.push(Compare::KeyMissing(c.key.clone()));
            ops.push(Op::Put(c.key.clone(), owner_bytes.clone()));
        }
        for r in &plan.releases {
            ops.push(Op::Delete(r.clone()));
        }
        let outcome = if dry_run {
            // Same checks as the real write, against the current state, without writing.
            match first_failing(st, &compares).await? {
                None => TxnOutcome::Committed(st.store.current_revision()),
                Some(index) => TxnOutcome::Failed {
                    index,
                    current: None,
                },
            }
        } else {
            st.store.txn(compares, ops).await.map_err(store_err)?
        };
        match outcome {
            TxnOutcome::Committed(rev) => {
                if !dry_run {
                    taken.committed(
                        plan.claims.iter().map(|c| c.key.as_str()),
                        plan.releases.iter().map(String::as_str),
                    );
                }
                return Ok((rev, candidate));
            }
            TxnOutcome::Failed { index: 0, .. } => return Err(WriteError::Conflict),
            TxnOutcome::Failed { index, .. } => {
                let claim = plan.claims.get(index - 1);
                if let Some(err) = claim.and_then(|c| c.taken_error.clone()) {
                    let name = original["metadata"]["name"].as_str().unwrap_or("");
                    return Err(ApiError::invalid("", info.kind, name, &[err]).into());
                }
                // A randomly chosen value was taken concurrently (or the remembered
                // ports were stale): reload them and choose again.
                if claim.is_some_and(|c| port_of_key(&c.key).is_some()) {
                    taken.forget();
                }
            }
        }
    }
    Err(
        ApiError::internal("failed to allocate a Service IP or port after repeated conflicts")
            .into(),
    )
}

/// Index of the first compare that does not hold now (dry runs only: racy by nature).
async fn first_failing(st: &AppState, compares: &[Compare]) -> Result<Option<usize>, ApiError> {
    for (i, c) in compares.iter().enumerate() {
        let current = st.store.get(c.key()).await.map_err(store_err)?;
        if !c.holds(current.as_ref()) {
            return Ok(Some(i));
        }
    }
    Ok(None)
}

async fn dry_run_check(st: &AppState, compares: &[Compare]) -> Result<(), WriteError> {
    match first_failing(st, compares).await? {
        None => Ok(()),
        Some(_) => Err(WriteError::Conflict),
    }
}

/// Deletes the object at `key` (at `rev`), releasing a Service's allocations.
pub(crate) async fn remove(
    st: &AppState,
    info: &ResourceInfo,
    key: &str,
    rev: u64,
    obj: &Value,
) -> Result<u64, WriteError> {
    let held = if is_service(info) {
        alloc::held_keys(obj)
    } else {
        Vec::new()
    };
    let mut ops = vec![Op::Delete(key.to_string())];
    ops.extend(held.iter().cloned().map(Op::Delete));
    match st
        .store
        .txn(vec![Compare::ModRevision(key.to_string(), rev)], ops)
        .await
        .map_err(store_err)?
    {
        TxnOutcome::Committed(r) => {
            st.taken_ports
                .committed([], held.iter().map(String::as_str));
            Ok(r)
        }
        TxnOutcome::Failed { .. } => Err(WriteError::Conflict),
    }
}
