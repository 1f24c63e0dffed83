//! global's lock table (`global_locks` in `lib/kernel/src/global.erl`): resource id →
//! `{LockRequesterId, [{Pid, MonitorRef}]}`. A lock `{ResourceId, LockRequesterId}` can be
//! taken by any number of pids as long as they use the same requester id; the connect lockers
//! of two nodes share one id (`{global, lists:sort([LockerA, LockerB])}`), which is how both
//! sides hold `global` on the nodes they have in common.
use std::collections::HashMap;

use crate::dist::etf::{Pid, Reference, Term};
use crate::node::pg::TermKey;

/// The resource id of global's own lock (`?GLOBAL_RID`).
pub const GLOBAL_RID: &str = "global";

/// One held lock.
#[derive(Debug, Clone)]
pub struct Lock {
    /// The requester id every holder used.
    pub requester: Term,
    /// Holders and this node's monitor of each.
    pub holders: Vec<(Pid, Reference)>,
}

/// Every lock held on this node.
#[derive(Debug, Default)]
pub struct LockTable {
    locks: HashMap<TermKey, Lock>,
}

/// What `can_set_lock/1` found.
#[derive(Debug, PartialEq)]
pub enum CanLock {
    /// Free, or held with the same requester id by these pids.
    Yes(Vec<Pid>),
    /// Held with another requester id.
    No,
}

impl LockTable {
    /// `can_set_lock({ResourceId, LockRequesterId})`.
    pub fn can_set(&self, resource: &TermKey, requester: &Term) -> CanLock {
        match self.locks.get(resource) {
            Some(l) if l.requester == *requester => {
                CanLock::Yes(l.holders.iter().map(|(p, _)| *p).collect())
            }
            Some(_) => CanLock::No,
            None => CanLock::Yes(Vec::new()),
        }
    }

    /// `insert_lock/4`: `pid` (monitored by `monitor`) joins the holders.
    pub fn insert(&mut self, resource: TermKey, requester: Term, pid: Pid, monitor: Reference) {
        let l = self.locks.entry(resource).or_insert_with(|| Lock {
            requester,
            holders: Vec::new(),
        });
        l.holders.insert(0, (pid, monitor));
    }

    /// `handle_del_lock/3` + `remove_lock/6`: `pid` releases the lock when the requester id
    /// matches. Returns the monitor to drop and whether the lock is now free.
    pub fn release(
        &mut self,
        resource: &TermKey,
        requester: &Term,
        pid: &Pid,
    ) -> Option<(Reference, bool)> {
        let l = self.locks.get_mut(resource)?;
        if l.requester != *requester {
            return None;
        }
        let i = l.holders.iter().position(|(p, _)| p == pid)?;
        let (_, r) = l.holders.remove(i);
        let freed = l.holders.is_empty();
        if freed {
            self.locks.remove(resource);
        }
        Some((r, freed))
    }

    /// A holder's monitor fired: drops it from every lock it held (`delete_lock/2`); returns
    /// the resources freed entirely.
    pub fn holder_down(&mut self, r: &Reference) -> Vec<TermKey> {
        let mut freed = Vec::new();
        for (k, l) in self.locks.iter_mut() {
            l.holders.retain(|(_, m)| m != r);
            if l.holders.is_empty() {
                freed.push(k.clone());
            }
        }
        for k in &freed {
            self.locks.remove(k);
        }
        freed
    }

    /// The lock on `resource`, if held.
    pub fn get(&self, resource: &TermKey) -> Option<&Lock> {
        self.locks.get(resource)
    }

    /// `is_global_lock_set/0`.
    pub fn is_global_set(&self) -> bool {
        self.locks
            .contains_key(&TermKey::new(Term::atom(GLOBAL_RID)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dist::etf::Atom;

    fn pid(id: u32) -> Pid {
        Pid {
            node: Atom::new("a@h"),
            id,
            serial: 0,
            creation: 1,
        }
    }

    fn r(n: u32) -> Reference {
        Reference::new(Atom::new("b@h"), 1, &[n, 0, 0]).unwrap()
    }

    #[test]
    fn same_requester_shares_a_lock_another_is_refused() {
        let mut t = LockTable::default();
        let g = TermKey::new(Term::atom("global"));
        let id = Term::list(vec![Term::Pid(pid(1)), Term::Pid(pid(2))]);
        assert_eq!(t.can_set(&g, &id), CanLock::Yes(vec![]));
        t.insert(g.clone(), id.clone(), pid(1), r(1));
        assert_eq!(t.can_set(&g, &id), CanLock::Yes(vec![pid(1)]));
        assert_eq!(t.can_set(&g, &Term::Pid(pid(9))), CanLock::No);
        t.insert(g.clone(), id.clone(), pid(2), r(2));
        assert!(t.is_global_set());
        assert_eq!(t.release(&g, &Term::Pid(pid(9)), &pid(1)), None);
        assert_eq!(t.release(&g, &id, &pid(1)), Some((r(1), false)));
        assert_eq!(t.holder_down(&r(2)), vec![g.clone()]);
        assert!(!t.is_global_set());
    }
}
