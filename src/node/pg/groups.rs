//! A scope's membership table, the equivalent of the ETS table `pg.erl` keeps under the scope's
//! name (`{Group, AllPids, LocalPids}`): written only by the scope process, read by anyone
//! (`get_members/2` reads ETS without asking the scope). Subscribers get every change, in the
//! order the scope applied them, as `pg:monitor_scope/1` monitors get `{Ref, join | leave,
//! Group, Pids}` (`lib/kernel/src/pg.erl` `notify_group/5`).
use std::collections::HashMap as StdHashMap;

use smallvec::SmallVec;
use tokio::sync::mpsc;

use super::key::TermKey;
use crate::dist::etf::{Pid, Term};

/// foldhash, as in the scope state (a sync inserts a peer's groups by the million).
pub(super) type HashMap<K, V> = StdHashMap<K, V, foldhash::fast::RandomState>;

/// One change of a group's members (pids with multiplicity: pg lets a process join a group
/// several times, and each join needs its own leave).
#[derive(Debug, Clone, PartialEq)]
pub enum Membership {
    /// `pids` joined `group`.
    Join {
        /// The group.
        group: Term,
        /// The pids that joined (local or remote).
        pids: PidList,
    },
    /// `pids` left `group` (or went down, or their node's scope did).
    Leave {
        /// The group.
        group: Term,
        /// The pids that left.
        pids: PidList,
    },
}

/// A group's pids: nearly always one (a route group has one member per node), kept inline
/// so a million groups are not a million small allocations per list, nor a million events
/// ([`Membership`]) one allocation each.
pub type PidList = SmallVec<[Pid; 1]>;

/// One group: every member (newest first), this node's members, and each peer scope's
/// members as that peer last reported them (see [`super::remote`]).
#[derive(Debug, Default)]
pub(super) struct Entry {
    pub(super) all: PidList,
    pub(super) local: PidList,
    pub(super) remote: SmallVec<[Known; 1]>,
}

impl Entry {
    /// No member and nothing known of any peer: the group is gone.
    pub(super) fn is_unused(&self) -> bool {
        self.all.is_empty() && self.local.is_empty() && self.remote.is_empty()
    }
}

/// A peer scope's members of one group (pg.erl's `#state.remote`, `Peer => #{Group => Pids}`),
/// and the last sync of that peer that listed the group.
#[derive(Debug)]
pub(super) struct Known {
    pub(super) peer: Pid,
    pub(super) pids: PidList,
    pub(super) seen: u64,
}

/// The table of one scope.
#[derive(Debug, Default)]
pub struct Groups {
    pub(super) map: HashMap<TermKey, Entry>,
    pub(super) subscribers: Vec<mpsc::UnboundedSender<Membership>>,
    /// How many groups each peer scope has a [`Known`] in.
    pub(super) peer_groups: HashMap<Pid, usize>,
}

/// `A -- B` as Erlang computes it: each element of `b` removes its first occurrence in `a`.
pub(super) fn subtract(a: &[Pid], b: &[Pid]) -> PidList {
    let mut out = PidList::from_slice(a);
    for p in b {
        if let Some(i) = out.iter().position(|x| x == p) {
            out.remove(i);
        }
    }
    out
}

/// Sends `event` to every subscriber: copies for all but the last, which gets it (one
/// subscriber, the route sync, is the usual case: no copy per change).
pub(super) fn notify(subscribers: &mut Vec<mpsc::UnboundedSender<Membership>>, event: Membership) {
    let n = subscribers.len();
    let mut event = Some(event);
    let mut i = 0;
    subscribers.retain(|s| {
        i += 1;
        let e = if i == n { event.take() } else { event.clone() };
        e.is_some_and(|e| s.send(e).is_ok())
    });
}

impl Groups {
    /// Every member of `group`, newest first (`pg:get_members/2`).
    pub fn members(&self, group: &TermKey) -> Vec<Pid> {
        self.map
            .get(group)
            .map(|e| e.all.to_vec())
            .unwrap_or_default()
    }

    /// This node's members of `group` (`pg:get_local_members/2`).
    pub fn local_members(&self, group: &TermKey) -> Vec<Pid> {
        self.map
            .get(group)
            .map(|e| e.local.to_vec())
            .unwrap_or_default()
    }

    /// How many groups have at least one member (`ets:info(Scope, size)` on BEAM).
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// No group has a member.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Groups with at least one member (`pg:which_groups/1`).
    pub fn groups(&self) -> Vec<Term> {
        self.map.keys().map(|k| k.term().clone()).collect()
    }

    /// Groups with at least one local member (`pg:which_local_groups/1`).
    pub fn local_groups(&self) -> Vec<Term> {
        self.map
            .iter()
            .filter(|(_, e)| !e.local.is_empty())
            .map(|(k, _)| k.term().clone())
            .collect()
    }

    /// Every group with its members.
    pub fn snapshot(&self) -> Vec<(Term, Vec<Pid>)> {
        self.map
            .iter()
            .map(|(k, e)| (k.term().clone(), e.all.to_vec()))
            .collect()
    }

    /// `all_local_pids/1` as a `sync` carries it: `[{Group, [Pid]}]` of this node's members,
    /// each pid once per join. Read from the table, where each group's local pids already
    /// are, rather than regrouping every local pid's joins through a map as pg.erl does.
    pub fn local_sync_list(&self) -> Term {
        let list: Vec<Term> = self
            .map
            .iter()
            .filter(|(_, e)| !e.local.is_empty())
            .map(|(k, e)| {
                let pids = Term::list(e.local.iter().copied().map(Term::Pid).collect::<Vec<_>>());
                Term::Tuple(vec![k.term().clone(), pids])
            })
            .collect();
        Term::list(list)
    }

    /// Adds a subscriber; what it gets starts after this snapshot.
    pub fn subscribe(&mut self) -> (Vec<(Term, Vec<Pid>)>, mpsc::UnboundedReceiver<Membership>) {
        let (tx, rx) = mpsc::unbounded_channel();
        self.subscribers.push(tx);
        (self.snapshot(), rx)
    }

    /// [`notify`] this table's subscribers.
    pub(super) fn notify(&mut self, event: Membership) {
        notify(&mut self.subscribers, event);
    }

    /// `join_local_update_ets/5`.
    pub fn join_local(&mut self, group: &TermKey, pids: &[Pid]) {
        let e = self.map.entry(group.clone()).or_default();
        e.all.insert_many(0, pids.iter().copied());
        e.local.insert_many(0, pids.iter().copied());
        self.notify(Membership::Join {
            group: group.term().clone(),
            pids: PidList::from_slice(pids),
        });
    }

    /// `leave_local_update_ets/5`.
    pub fn leave_local(&mut self, group: &TermKey, pids: &[Pid]) {
        let Some(e) = self.map.get_mut(group) else {
            return;
        };
        e.all = subtract(&e.all, pids);
        e.local = subtract(&e.local, pids);
        if e.is_unused() {
            self.map.remove(group);
        }
        self.notify(Membership::Leave {
            group: group.term().clone(),
            pids: PidList::from_slice(pids),
        });
    }
}
