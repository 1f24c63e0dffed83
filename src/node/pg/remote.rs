//! Peer scopes' members, kept in the table entry of each group rather than in a map per peer.
//!
//! pg.erl keeps `#state.remote` as `Peer => #{Group => Pids}` beside the ETS table
//! (`lib/kernel/src/pg.erl`, `handle_sync/6`, `sync_groups/5`, `leave_remote/3`). A node
//! joining a cluster learns a million route groups per peer, twice (each side discovers the
//! other); a second million-entry map keyed by the same groups cost a second hash probe, a
//! cache miss, per group and per copy, and a second copy of every key. Here each [`Entry`]
//! carries each peer's [`Known`] members, so a sync touches one map, and the groups a sync no
//! longer lists are found by one pass over the table, only when some are left (the count of
//! each peer's groups says so without looking).
//!
//! The semantics are pg.erl's, case by case: a listed group's pids replace that peer's previous
//! ones (`AllNewPids = Pids ++ AllOldPids -- OldPids`); a group listed twice in one sync joins
//! twice and the peer's record keeps the last pids; a group a sync leaves out loses that peer's
//! recorded pids; `join` and `leave` from the peer update its record and the table together.
use std::collections::hash_map::Entry as MapEntry;

use tokio::sync::mpsc;

use super::groups::{notify, subtract, Entry, Groups, HashMap, Known, Membership, PidList};
use super::key::TermKey;
use crate::dist::etf::{Pid, Term};

/// What one `{Group, Pids}` of a sync was to the peer's record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Listed {
    /// The first time this sync lists the group.
    First,
    /// The sync lists the group again.
    Again,
}

/// The pids of pg's `PidOrPids` (a pid or a proper list of pids); `None` for anything else.
pub(super) fn pids_of(t: &Term) -> Option<PidList> {
    match t {
        Term::Pid(p) => Some(PidList::from_slice(&[*p])),
        _ => t.as_list()?.iter().map(Term::as_pid).collect(),
    }
}

/// The pids of a `PidOrPids` the sync's check ([`super::state`]'s `sync_list`) accepted.
fn pid_list(t: &Term) -> PidList {
    pids_of(t).unwrap_or_default()
}

/// Whether `t` holds exactly the pids `known`, in order, without building a list.
fn same_pids(t: &Term, known: &[Pid]) -> bool {
    match t {
        Term::Pid(p) => known == [*p],
        _ => t.as_list().is_some_and(|l| {
            l.len() == known.len()
                && l.iter()
                    .zip(known)
                    .all(|(a, b)| matches!(a, Term::Pid(p) if p == b))
        }),
    }
}

fn join_event(group: &TermKey, pids: &[Pid]) -> Membership {
    Membership::Join {
        group: group.term().clone(),
        pids: PidList::from_slice(pids),
    }
}

fn leave_event(group: &TermKey, pids: &[Pid]) -> Membership {
    Membership::Leave {
        group: group.term().clone(),
        pids: PidList::from_slice(pids),
    }
}

impl Groups {
    /// Room for a sync of `listed` groups from `peer` (what it lists beyond what it had).
    pub(super) fn reserve_sync(&mut self, peer: Pid, listed: usize) {
        let had = self.peer_groups.get(&peer).copied().unwrap_or(0);
        self.map.reserve(listed.saturating_sub(had));
    }

    /// One `{Group, Pids}` (checked `PidOrPids`) of `peer`'s sync number `stamp`.
    pub(super) fn sync_group(
        &mut self,
        peer: Pid,
        group: TermKey,
        pids: &Term,
        stamp: u64,
    ) -> Listed {
        let Groups {
            map,
            subscribers,
            peer_groups,
        } = self;
        match map.entry(group) {
            MapEntry::Vacant(v) => {
                let new = pid_list(pids);
                notify(subscribers, join_event(v.key(), &new));
                *peer_groups.entry(peer).or_default() += 1;
                v.insert(Entry {
                    all: new.clone(),
                    local: PidList::new(),
                    remote: smallvec::smallvec![Known {
                        peer,
                        pids: new,
                        seen: stamp
                    }],
                });
                Listed::First
            }
            MapEntry::Occupied(mut o) => {
                let (group, e) = (o.key().clone(), o.get_mut());
                let listed = sync_entry(e, peer, &group, pids, stamp, subscribers, peer_groups);
                if e.is_unused() {
                    o.remove();
                }
                listed
            }
        }
    }

    /// After `peer`'s sync number `stamp` listed `listed` distinct groups: what the peer had in
    /// groups the sync left out is gone.
    pub(super) fn sync_end(&mut self, peer: Pid, stamp: u64, listed: usize) {
        if self.peer_groups.get(&peer).is_some_and(|&n| n > listed) {
            self.forget_peer_where(peer, |k| k.seen != stamp);
        }
    }

    /// `join` from `peer` (a scope we synced with).
    pub(super) fn join_remote(&mut self, peer: Pid, group: &TermKey, pids: &[Pid]) {
        let e = self.map.entry(group.clone()).or_default();
        match e.remote.iter_mut().find(|k| k.peer == peer) {
            Some(k) => k.pids.insert_many(0, pids.iter().copied()),
            None => {
                e.remote.push(Known {
                    peer,
                    pids: PidList::from_slice(pids),
                    seen: 0,
                });
                *self.peer_groups.entry(peer).or_default() += 1;
            }
        }
        e.all.insert_many(0, pids.iter().copied());
        self.notify(join_event(group, pids));
    }

    /// `leave` from `peer` (a scope we synced with): `pids` leave each of `groups`.
    pub(super) fn leave_remote(&mut self, peer: Pid, pids: &[Pid], groups: &[TermKey]) {
        for g in groups {
            let Some(e) = self.map.get_mut(g) else {
                continue;
            };
            let mut forgotten = false;
            if let Some(i) = e.remote.iter().position(|k| k.peer == peer) {
                let rest = subtract(&e.remote[i].pids, pids);
                if rest.is_empty() {
                    e.remote.swap_remove(i);
                    forgotten = true;
                } else {
                    e.remote[i].pids = rest;
                }
            }
            e.all = subtract(&e.all, pids);
            if e.is_unused() {
                self.map.remove(g);
            }
            if forgotten {
                self.uncount(peer);
            }
            self.notify(leave_event(g, pids));
        }
    }

    /// The peer scope is gone (`'DOWN'`): its members leave every group.
    pub(super) fn peer_down(&mut self, peer: Pid) {
        if self.peer_groups.contains_key(&peer) {
            self.forget_peer_where(peer, |_| true);
        }
    }

    fn uncount(&mut self, peer: Pid) {
        if let Some(n) = self.peer_groups.get_mut(&peer) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.peer_groups.remove(&peer);
            }
        }
    }

    /// Drops `peer`'s record of every group where `which` holds, and its pids from the group.
    fn forget_peer_where(&mut self, peer: Pid, which: impl Fn(&Known) -> bool) {
        let Groups {
            map,
            subscribers,
            peer_groups,
        } = self;
        let mut dropped = 0;
        map.retain(|g, e| {
            let Some(i) = e.remote.iter().position(|k| k.peer == peer && which(k)) else {
                return true;
            };
            let k = e.remote.swap_remove(i);
            dropped += 1;
            e.all = subtract(&e.all, &k.pids);
            notify(subscribers, leave_event(g, &k.pids));
            !e.is_unused()
        });
        if let Some(n) = peer_groups.get_mut(&peer) {
            *n = n.saturating_sub(dropped);
            if *n == 0 {
                peer_groups.remove(&peer);
            }
        }
    }
}

/// [`Groups::sync_group`] for a group the table has.
fn sync_entry(
    e: &mut Entry,
    peer: Pid,
    group: &TermKey,
    pids: &Term,
    stamp: u64,
    subscribers: &mut Vec<mpsc::UnboundedSender<Membership>>,
    peer_groups: &mut HashMap<Pid, usize>,
) -> Listed {
    let Some(k) = e.remote.iter_mut().find(|k| k.peer == peer) else {
        let new = pid_list(pids);
        e.all.insert_many(0, new.iter().copied());
        notify(subscribers, join_event(group, &new));
        e.remote.push(Known {
            peer,
            pids: new,
            seen: stamp,
        });
        *peer_groups.entry(peer).or_default() += 1;
        return Listed::First;
    };
    if k.seen == stamp {
        // Listed again by this sync: it joins again and the record keeps the last pids.
        let new = pid_list(pids);
        e.all.insert_many(0, new.iter().copied());
        notify(subscribers, join_event(group, &new));
        k.pids = new;
        return Listed::Again;
    }
    k.seen = stamp;
    if same_pids(pids, &k.pids) {
        return Listed::First;
    }
    let new = pid_list(pids);
    let mut all = new.clone();
    all.extend(subtract(&e.all, &k.pids));
    e.all = all;
    notify(subscribers, leave_event(group, &k.pids));
    notify(subscribers, join_event(group, &new));
    k.pids = new;
    Listed::First
}
