//! The pg scope protocol without I/O: what `lib/kernel/src/pg.erl` does for each message, with
//! monitors and sends handed to an [`Effects`] implementation (the scope process, or a test).
//!
//! Wire terms (reference/otp25-traces.md §3):
//! - `{discover, PeerScope}`: REG_SEND on nodeup, then to the pid; answered by a `sync`.
//! - `{'$gen_cast', {sync, PeerScope, [{Group, [Pid]}]}}`: the sender's *local* members.
//! - `{join, PeerScope, Group, Pid | [Pid]}` and `{leave, PeerScope, Pid | [Pid], [Group]}`.
//! - scopes monitor each other and their own local members, never remote members.
//!
//! A BEAM scope crashes (`erlang:error(badarg)`) on any other cast or info message, so this side
//! sends nothing else; it logs and ignores what it does not understand instead of crashing.
use std::collections::HashMap as StdHashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use super::digest::DigestSeeds;
use super::groups::{Groups, PidList};
use super::key::TermKey;
use super::remote::{pids_of, Listed};
use crate::dist::etf::{Atom, Pid, Reference, Term};
use crate::node::Dest;

/// Groups arrive from peers by the million (a joining node's sync): foldhash, as the router's
/// tables, instead of SipHash, which was the largest cost of a sync.
type HashMap<K, V> = StdHashMap<K, V, foldhash::fast::RandomState>;

/// What the protocol asks of the process running it.
pub trait Effects {
    /// `erlang:monitor(process, Pid)`.
    fn monitor(&mut self, pid: Pid) -> Reference;
    /// `erlang:demonitor(Ref)`.
    fn demonitor(&mut self, reference: Reference);
    /// `erlang:send(Dest, Msg, [noconnect])`: pg never opens connections.
    fn send(&mut self, to: Dest, msg: Term);
}

/// One scope's state: local members with their monitor, peer scopes with theirs (their
/// members by group, pg.erl's `#state.remote`, are in the shared table: [`super::remote`]).
///
/// pg.erl keeps each local pid's groups as a list (`[Group | Groups]` on join,
/// `lists:delete/2` on leave, which drops the newest join of that group); here each group maps
/// to the sequence numbers of its joins, so a broker process that is the member of a million
/// route groups joins and leaves each in O(1), not O(groups), and the list pg.erl would hold
/// (newest first) can still be rebuilt when the process goes down.
///
/// A peer's `sync` is applied in place over what we knew of it: each group it lists is stamped
/// with the sync's number, and what is left unstamped afterwards is what it no longer has. A
/// sync identical to the last one (pg.erl answers each `discover` with a full sync, so a node
/// joining a cluster gets every peer's groups twice) is recognised by its digest.
#[derive(Debug)]
pub struct ScopeState {
    scope: Atom,
    me: Pid,
    local: HashMap<Pid, (Reference, HashMap<TermKey, Joins>)>,
    joins: u64,
    remote: HashMap<Pid, Peer>,
    syncs: u64,
    seeds: DigestSeeds,
    groups: Arc<Mutex<Groups>>,
}

/// A peer scope: its monitor, and the digest of its last sync while nothing has changed its
/// groups since (see [`super::digest`]).
#[derive(Debug)]
struct Peer {
    monitor: Reference,
    synced: Option<u128>,
}

impl Peer {
    fn new(monitor: Reference) -> Peer {
        Peer {
            monitor,
            synced: None,
        }
    }
}

/// The sequence numbers of a local pid's joins of one group (nearly always one: inline).
type Joins = smallvec::SmallVec<[u64; 1]>;

/// A message the scope does not understand (logged and ignored).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("unexpected pg message {0:?}")]
pub struct Unexpected(pub Term);

/// Whether `t` is a pid or a proper list of pids (pg's `PidOrPids`).
fn is_pids(t: &Term) -> bool {
    match t {
        Term::Pid(_) => true,
        _ => t
            .as_list()
            .is_some_and(|l| l.iter().all(|p| matches!(p, Term::Pid(_)))),
    }
}

/// The group list of a `sync`, checked whole before any of it is applied: a proper list of
/// `{Group, Pids}`. A malformed sync is ignored, never half applied.
fn sync_list(t: &Term) -> Option<&[Term]> {
    let list = t.as_list()?;
    list.iter()
        .all(|e| matches!(e.as_tuple(), Some([_, pids]) if is_pids(pids)))
        .then_some(list)
}

/// Takes the elements of a checked sync list (a clone when the message is borrowed).
fn into_elements(t: Term) -> Vec<Term> {
    match t {
        Term::List(elems, _) => elems,
        _ => Vec::new(),
    }
}

impl ScopeState {
    /// A scope named `scope` run by the process `me`, publishing into `groups`.
    pub fn new(scope: Atom, me: Pid, groups: Arc<Mutex<Groups>>) -> ScopeState {
        ScopeState {
            scope,
            me,
            local: HashMap::default(),
            joins: 0,
            remote: HashMap::default(),
            syncs: 0,
            seeds: DigestSeeds::default(),
            groups,
        }
    }

    fn table(&self) -> MutexGuard<'_, Groups> {
        self.groups.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn broadcast(&self, fx: &mut dyn Effects, msg: &Term) {
        for peer in self.remote.keys() {
            fx.send(Dest::Pid(*peer), msg.clone());
        }
    }

    /// The discover to send to `{Scope, Node}` when `node` comes up (and at start).
    pub fn discover_node(&self, node: Atom, fx: &mut dyn Effects) {
        let msg = Term::tuple(vec![Term::atom("discover"), Term::Pid(self.me)]);
        fx.send(Dest::NameAt(self.scope, node), msg);
    }

    /// `handle_call({join_local, Group, PidOrPids}, ...)`; `pids` are local (the caller checks).
    /// `wire` is what peers get as the fourth element of `join`: a bare pid or a list.
    pub fn join_local(&mut self, group: Term, pids: &[Pid], wire: Term, fx: &mut dyn Effects) {
        let key = TermKey::new(group.clone());
        for p in pids {
            self.joins += 1;
            match self.local.get_mut(p) {
                Some((_, gs)) => gs.entry(key.clone()).or_default().push(self.joins),
                None => {
                    let r = fx.monitor(*p);
                    let mut gs = HashMap::default();
                    gs.insert(key.clone(), Joins::from_slice(&[self.joins]));
                    self.local.insert(*p, (r, gs));
                }
            }
        }
        self.table().join_local(&key, pids);
        if !self.remote.is_empty() {
            let msg = Term::tuple(vec![Term::atom("join"), Term::Pid(self.me), group, wire]);
            self.broadcast(fx, &msg);
        }
    }

    /// `handle_call({leave_local, Group, PidOrPids}, ...)`: false is `not_joined`.
    pub fn leave_local(
        &mut self,
        group: Term,
        pids: &[Pid],
        wire: Term,
        fx: &mut dyn Effects,
    ) -> bool {
        let key = TermKey::new(group.clone());
        let mut changed = false;
        for p in pids {
            let Some((r, gs)) = self.local.get_mut(p) else {
                continue;
            };
            let Some(seqs) = gs.get_mut(&key) else {
                continue;
            };
            changed = true;
            seqs.pop();
            if seqs.is_empty() {
                gs.remove(&key);
            }
            if gs.is_empty() {
                let r = *r;
                self.local.remove(p);
                fx.demonitor(r);
            }
        }
        if !changed {
            return false;
        }
        self.table().leave_local(&key, pids);
        let msg = Term::tuple(vec![
            Term::atom("leave"),
            Term::Pid(self.me),
            wire,
            Term::list(vec![group]),
        ]);
        self.broadcast(fx, &msg);
        true
    }

    /// One message from the mailbox, taken by value: a `sync`'s groups become keys without
    /// copying (the scope process's path).
    pub fn handle_owned(&mut self, msg: Term, fx: &mut dyn Effects) -> Result<(), Unexpected> {
        let Some(peer) = Self::sync_peer(&msg) else {
            return self.handle(&msg, fx);
        };
        let groups = match msg {
            Term::Tuple(mut t) if t.len() == 2 => match t.pop() {
                Some(Term::Tuple(mut body)) if body.len() == 3 => body.pop(),
                _ => None,
            },
            _ => None,
        };
        self.sync(peer, into_elements(groups.unwrap_or(Term::Nil)), fx);
        Ok(())
    }

    /// The peer of a well-formed `{'$gen_cast', {sync, Peer, Groups}}`.
    fn sync_peer(msg: &Term) -> Option<Pid> {
        let [tag, body] = msg.as_tuple_n::<2>()?;
        let [op, Term::Pid(peer), groups] = body.as_tuple_n::<3>()? else {
            return None;
        };
        (tag.is_atom("$gen_cast") && op.is_atom("sync") && sync_list(groups).is_some())
            .then_some(*peer)
    }

    /// One message from the mailbox.
    pub fn handle(&mut self, msg: &Term, fx: &mut dyn Effects) -> Result<(), Unexpected> {
        let bad = || Unexpected(msg.clone());
        let t = msg.as_tuple().ok_or_else(bad)?;
        match t {
            [tag, body] if tag.is_atom("$gen_cast") => {
                let [op, peer, groups] = body.as_tuple_n::<3>().ok_or_else(bad)?;
                let (true, Term::Pid(peer)) = (op.is_atom("sync"), peer) else {
                    return Err(bad());
                };
                let list = sync_list(groups).ok_or_else(bad)?;
                self.sync(*peer, list.to_vec(), fx);
            }
            [op, Term::Pid(peer)] if op.is_atom("discover") => self.discover(*peer, fx),
            [op, Term::Pid(peer), group, pids] if op.is_atom("join") => {
                let pids = pids_of(pids).ok_or_else(bad)?;
                self.join_remote(*peer, TermKey::new(group.clone()), pids);
            }
            [op, Term::Pid(peer), pids, groups] if op.is_atom("leave") => {
                let pids = pids_of(pids).ok_or_else(bad)?;
                let groups: Vec<TermKey> = match groups {
                    Term::Nil => Vec::new(),
                    g => g
                        .as_list()
                        .ok_or_else(bad)?
                        .iter()
                        .cloned()
                        .map(TermKey::new)
                        .collect(),
                };
                self.leave_remote(*peer, &pids, &groups);
            }
            [op, Term::Ref(r), kind, Term::Pid(pid), _]
                if op.is_atom("DOWN") && kind.is_atom("process") =>
            {
                self.down(*r, *pid, fx)
            }
            [op, Term::Atom(_)] if op.is_atom("nodedown") => {}
            [op, Term::Atom(node)] if op.is_atom("nodeup") => {
                if *node != self.me.node {
                    self.discover_node(*node, fx);
                }
            }
            _ => return Err(bad()),
        }
        Ok(())
    }

    fn discover(&mut self, peer: Pid, fx: &mut dyn Effects) {
        let sync = Term::tuple(vec![
            Term::atom("sync"),
            Term::Pid(self.me),
            self.table().local_sync_list(),
        ]);
        fx.send(
            Dest::Pid(peer),
            Term::tuple(vec![Term::atom("$gen_cast"), sync]),
        );
        if !self.remote.contains_key(&peer) {
            let r = fx.monitor(peer);
            fx.send(
                Dest::Pid(peer),
                Term::tuple(vec![Term::atom("discover"), Term::Pid(self.me)]),
            );
            self.remote.insert(peer, Peer::new(r));
        }
    }

    /// `handle_sync/6` and `sync_groups/5`: the peer's list (elements checked by
    /// [`sync_list`]) replaces what we knew of it. As in pg.erl, a group listed twice joins
    /// twice and keeps its last pids.
    fn sync(&mut self, peer: Pid, groups: Vec<Term>, fx: &mut dyn Effects) {
        let monitor = match self.remote.get(&peer) {
            Some(Peer {
                synced: Some(last), ..
            }) if self.seeds.of_list(&groups) == Some(*last) => return,
            Some(p) => p.monitor,
            None => fx.monitor(peer),
        };
        self.syncs += 1;
        let stamp = self.syncs;
        let mut digest = Some(self.seeds.start());
        let mut listed = 0;
        {
            let mut table = self.groups.lock().unwrap_or_else(|p| p.into_inner());
            table.reserve_sync(peer, groups.len());
            for e in groups {
                let Term::Tuple(e) = e else { continue };
                let mut e = e.into_iter();
                let (Some(g), Some(pids)) = (e.next(), e.next()) else {
                    continue;
                };
                let key = TermKey::new(g);
                if let Some(d) = digest.as_mut() {
                    d.key(&key, &pids);
                }
                match table.sync_group(peer, key, &pids, stamp) {
                    Listed::First => listed += 1,
                    Listed::Again => digest = None,
                }
            }
            table.sync_end(peer, stamp, listed);
        }
        let mut p = Peer::new(monitor);
        p.synced = digest.map(|d| d.finish());
        self.remote.insert(peer, p);
    }

    fn join_remote(&mut self, peer: Pid, group: TermKey, pids: PidList) {
        let Some(p) = self.remote.get_mut(&peer) else {
            return;
        };
        p.synced = None;
        self.table().join_remote(peer, &group, &pids);
    }

    fn leave_remote(&mut self, peer: Pid, pids: &[Pid], groups: &[TermKey]) {
        let Some(p) = self.remote.get_mut(&peer) else {
            return;
        };
        p.synced = None;
        self.table().leave_remote(peer, pids, groups);
    }

    fn down(&mut self, r: Reference, pid: Pid, fx: &mut dyn Effects) {
        if pid.node == self.me.node {
            match self.local.get(&pid) {
                Some((mr, _)) if *mr == r => {}
                _ => return,
            }
            let Some((_, joined)) = self.local.remove(&pid) else {
                return;
            };
            // pg.erl's list: a group once per join, newest first.
            let mut by_age: Vec<(u64, &TermKey)> = joined
                .iter()
                .flat_map(|(g, seqs)| seqs.iter().map(move |s| (*s, g)))
                .collect();
            by_age.sort_unstable_by(|a, b| b.0.cmp(&a.0));
            let groups: Vec<&TermKey> = by_age.into_iter().map(|(_, g)| g).collect();
            {
                let mut table = self.table();
                for g in &groups {
                    table.leave_local(g, &[pid]);
                }
            }
            let msg = Term::tuple(vec![
                Term::atom("leave"),
                Term::Pid(self.me),
                Term::Pid(pid),
                Term::list(groups.iter().map(|g| g.term().clone()).collect::<Vec<_>>()),
            ]);
            self.broadcast(fx, &msg);
        } else {
            match self.remote.get(&pid) {
                Some(p) if p.monitor == r => {}
                _ => return,
            }
            self.remote.remove(&pid);
            self.table().peer_down(pid);
        }
    }

    /// Peer scopes currently known.
    pub fn peers(&self) -> Vec<Pid> {
        self.remote.keys().copied().collect()
    }
}
