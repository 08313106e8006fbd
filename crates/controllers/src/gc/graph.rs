//! Pure garbage-collector decisions over the ownership graph: what to do with an object
//! whose owners are gone, and with an owner being deleted in foreground or orphan mode.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

/// Finalizer of owners deleted with `propagationPolicy: Foreground`.
pub const FOREGROUND: &str = "foregroundDeletion";
/// Finalizer of owners deleted with `propagationPolicy: Orphan`.
pub const ORPHAN: &str = "orphan";

/// What the collector does with a dependent after checking its owners.
#[derive(Debug, Clone, PartialEq)]
pub enum DependentAction {
    /// All owners exist: nothing.
    Keep,
    /// Every owner is gone: delete the dependent.
    Delete,
    /// Some owners are gone: keep the object, rewrite ownerReferences to the survivors.
    Rewrite(Vec<OwnerReference>),
}

/// Decides for a dependent given which of its owners still exist.
pub fn dependent_action(owners: &[OwnerReference], exists: &[bool]) -> DependentAction {
    if owners.is_empty() || exists.iter().all(|e| *e) {
        return DependentAction::Keep;
    }
    let survivors: Vec<OwnerReference> = owners
        .iter()
        .zip(exists)
        .filter(|(_, e)| **e)
        .map(|(o, _)| o.clone())
        .collect();
    if survivors.is_empty() {
        DependentAction::Delete
    } else {
        DependentAction::Rewrite(survivors)
    }
}

/// What the collector does for an owner that is being deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnerAction {
    /// Not our business (no GC finalizer).
    None,
    /// Orphan mode: strip this owner from the dependents, then drop the finalizer.
    Orphan,
    /// Foreground mode with dependents left: delete them (foreground) and wait.
    DeleteDependents,
    /// Foreground mode, no dependents left: drop the finalizer.
    Finish,
}

/// Decides for an owner with a deletion timestamp.
pub fn owner_action(finalizers: &[String], deleting: bool, dependents_left: usize) -> OwnerAction {
    if !deleting {
        return OwnerAction::None;
    }
    if finalizers.iter().any(|f| f == ORPHAN) {
        return OwnerAction::Orphan;
    }
    if finalizers.iter().any(|f| f == FOREGROUND) {
        return if dependents_left == 0 {
            OwnerAction::Finish
        } else {
            OwnerAction::DeleteDependents
        };
    }
    OwnerAction::None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(uid: &str) -> OwnerReference {
        OwnerReference {
            uid: uid.into(),
            ..Default::default()
        }
    }

    #[test]
    fn dependents_go_when_all_owners_are_gone() {
        let o = [owner("a"), owner("b")];
        assert_eq!(dependent_action(&o, &[true, true]), DependentAction::Keep);
        assert_eq!(
            dependent_action(&o, &[false, false]),
            DependentAction::Delete
        );
        assert_eq!(
            dependent_action(&o, &[false, true]),
            DependentAction::Rewrite(vec![owner("b")])
        );
    }

    #[test]
    fn owners_follow_their_propagation_finalizer() {
        let f = |s: &str| vec![s.to_string()];
        assert_eq!(owner_action(&f(ORPHAN), true, 3), OwnerAction::Orphan);
        assert_eq!(
            owner_action(&f(FOREGROUND), true, 2),
            OwnerAction::DeleteDependents
        );
        assert_eq!(owner_action(&f(FOREGROUND), true, 0), OwnerAction::Finish);
        assert_eq!(owner_action(&f(FOREGROUND), false, 0), OwnerAction::None);
        assert_eq!(owner_action(&[], true, 0), OwnerAction::None);
    }
}
