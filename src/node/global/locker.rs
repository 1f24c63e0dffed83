//! global's permanent locker process (`loop_the_locker/1` and friends in
//! `lib/kernel/src/global.erl`). For each connecting node it tries to take the lock
//! `{global, lists:sort([MyLocker, HisLocker])}` on the "boss" (largest known node name), on
//! this node and the peer, and on every known node, then tells the peer's server
//! `{lock_set, self(), true, Known, HisTag}` and waits for the peer's `lock_set`. A peer's
//! `lock_set` that arrives first makes it lock its own partition and answer (the
//! "spontaneous" path). Once both are set it casts `lock_is_set` to our server and holds the
//! lock until the server cancels the session, running the server's `new_nodes` sends first.
//!
//! Peers never message a locker except to answer its calls (reference/otp25-traces.md §1.7),
//! but they monitor it while it holds their lock: it must live as long as the server.
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::locks::{LockTable, GLOBAL_RID};
use super::multi_call::{can_set_lock, del_lock, delete_global_lock, send_noconnect, set_lock};
use super::server::GNS;
use super::terms::{atoms_of, cast, sorted_pids, tagged};
use crate::dist::etf::{Atom, Pid, Term};
use crate::node::{Dest, Process};

/// A node we are connecting to (`#him{}`).
#[derive(Debug, Clone, PartialEq)]
struct Him {
    node: Atom,
    locker: Pid,
    vsn: u32,
    my_tag: Term,
    his_tag: Term,
}

/// The locker's state (`#multi{}`).
struct Multi {
    me: Atom,
    local: Vec<Him>,
    remote: Vec<Him>,
    known: Vec<Atom>,
    just_synced: bool,
    locks: Arc<Mutex<LockTable>>,
}

impl Multi {
    fn boss(&self) -> Atom {
        self.known
            .iter()
            .copied()
            .chain([self.me])
            .max()
            .unwrap_or(self.me)
    }

    fn can_set_lock(&self, lock_id: &Term) -> bool {
        can_set_lock(&self.locks, lock_id)
    }

    fn is_global_lock_set(&self) -> bool {
        self.locks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_global_set()
    }

    fn find(&self, node: Atom) -> Option<Him> {
        self.local
            .iter()
            .chain(self.remote.iter())
            .find(|h| h.node == node)
            .cloned()
    }

    fn remove_node(&mut self, node: Atom, tag: &Term) {
        self.local.retain(|h| !(h.node == node && h.my_tag == *tag));
        self.remote
            .retain(|h| !(h.node == node && h.my_tag == *tag));
    }

    fn update_known(&mut self, msg: &Term) -> bool {
        match msg.as_tuple() {
            Some([op, nodes]) if op.is_atom("add_to_known") => {
                let mut added = atoms_of(nodes).unwrap_or_default();
                added.append(&mut self.known);
                self.known = added;
                true
            }
            Some([op, Term::Atom(n)]) if op.is_atom("remove_from_known") => {
                if let Some(i) = self.known.iter().position(|k| k == n) {
                    self.known.remove(i);
                }
                true
            }
            _ => false,
        }
    }
}

fn host_of(node: Atom) -> String {
    node.as_str()
        .split_once('@')
        .map(|(_, h)| h.to_string())
        .unwrap_or_default()
}

/// Runs the locker for node `me`; `locks` is the server's lock table.
pub(super) async fn run(mut p: Process, locks: Arc<Mutex<LockTable>>) -> Term {
    let me = p.node().name();
    let mut s = Multi {
        me,
        local: Vec::new(),
        remote: Vec::new(),
        known: Vec::new(),
        just_synced: false,
        locks,
    };
    loop {
        if let Some(m) = p.recv_timeout(Duration::ZERO).await {
            message(&mut p, &mut s, m).await;
            continue;
        }
        let timeout = if s.local.is_empty() && s.remote.is_empty() {
            None
        } else if s.just_synced {
            Some(Duration::ZERO)
        } else if s.known.is_empty() {
            Some(Duration::from_millis(200))
        } else {
            let ms = (1000 + 100 * s.known.len() as u64).min(3000);
            Some(Duration::from_millis(ms))
        };
        s.just_synced = false;
        let got = match timeout {
            None => p.recv().await,
            Some(t) => p.recv_timeout(t).await,
        };
        match got {
            Some(m) => message(&mut p, &mut s, m).await,
            None if timeout.is_none() => return Term::atom("normal"),
            None => {
                if !s.is_global_lock_set() {
                    select_node(&mut p, &mut s).await;
                }
            }
        }
    }
}

/// `the_locker_message/2`.
async fn message(p: &mut Process, s: &mut Multi, m: Term) {
    if s.update_known(&m) {
        return;
    }
    let Some(t) = m.as_tuple() else {
        tracing::warn!(?m, "global locker: unexpected message");
        return;
    };
    match t {
        [op, Term::Pid(locker), vsn, his_tag, my_tag] if op.is_atom("his_the_locker") => {
            let vsn = vsn
                .as_tuple()
                .and_then(|v| v.first())
                .and_then(Term::as_u32)
                .unwrap_or(0);
            let him = Him {
                node: locker.node,
                locker: *locker,
                vsn,
                my_tag: my_tag.clone(),
                his_tag: his_tag.clone(),
            };
            if host_of(him.node) == host_of(s.me) {
                s.local.insert(0, him);
            } else {
                s.remote.insert(0, him);
            }
        }
        [op, Term::Atom(node), tag, fun] if op.is_atom("cancel") => {
            if !tag.is_atom("undefined") {
                if !fun.is_atom("no_fun") {
                    tracing::warn!(
                        node = node.as_str(),
                        "global locker: cancel with a fun outside a lock"
                    );
                }
                s.remove_node(*node, tag);
            }
        }
        [op, Term::Pid(pid), set, _known, rest @ ..]
            if op.is_atom("lock_set") && rest.len() <= 1 =>
        {
            if !set.is_atom("true") {
                return;
            }
            spontaneous(p, s, *pid, rest.first()).await;
        }
        _ => tracing::warn!(?m, "global locker: unexpected message"),
    }
}

/// A peer's `lock_set` before we locked anything for it: lock our partition and answer.
async fn spontaneous(p: &mut Process, s: &mut Multi, pid: Pid, tag: Option<&Term>) {
    let node = pid.node;
    let him = s.find(node).filter(|h| tag.is_none_or(|t| *t == h.my_tag));
    let Some(him) = him else {
        let msg = tagged(
            "lock_set",
            vec![Term::Pid(p.pid()), Term::atom("false"), known_term(s)],
        );
        send_noconnect(p, Dest::Pid(pid), msg);
        return;
    };
    let lock_id = lock_id(p.pid(), pid);
    let is_set = lock_nodes_safely(p, s, &lock_id, &[]).await;
    send_lock_set(p, s, is_set, &him);
    if is_set {
        let msg = tagged(
            "lock_is_set",
            vec![Term::Atom(node), him.my_tag.clone(), lock_id.clone()],
        );
        p.send(Dest::Name(Atom::new(GNS)), cast(msg));
        let mut known2 = vec![s.me];
        known2.extend(s.known.iter().copied());
        wait_cancel_lock(p, node, &lock_id, &him.my_tag, &known2).await;
        s.just_synced = true;
        s.remove_node(node, &him.my_tag);
    } else {
        s.just_synced = false;
    }
}

fn known_term(s: &Multi) -> Term {
    Term::list(s.known.iter().copied().map(Term::Atom).collect::<Vec<_>>())
}

/// `locker_lock_id/2`: `{global, lists:sort([self(), HisLocker])}`.
fn lock_id(me: Pid, his: Pid) -> Term {
    Term::tuple(vec![Term::atom(GLOBAL_RID), sorted_pids(me, his)])
}

/// `send_lock_set/5` (vsn 8: through the peer's server, with its tag).
fn send_lock_set(p: &Process, s: &Multi, is_set: bool, him: &Him) {
    let msg = tagged(
        "lock_set",
        vec![
            Term::Pid(p.pid()),
            Term::atom(if is_set { "true" } else { "false" }),
            known_term(s),
            him.his_tag.clone(),
        ],
    );
    send_noconnect(p, Dest::NameAt(Atom::new(GNS), him.node), cast(msg));
}

/// `select_node/1`: pick a connecting node and lock both partitions for it.
async fn select_node(p: &mut Process, s: &mut Multi) {
    let use_remote = s.local.is_empty();
    let known = s.known.clone();
    let list = if use_remote {
        &mut s.remote
    } else {
        &mut s.local
    };
    list.retain(|h| !known.contains(&h.node));
    if list.is_empty() {
        return;
    }
    let him = list[rand::random::<usize>() % list.len()].clone();
    let lock_id = lock_id(p.pid(), him.locker);
    if !lock_nodes_safely(p, s, &lock_id, &[him.node]).await {
        return;
    }
    let mut known1 = vec![s.me, him.node];
    known1.extend(s.known.iter().copied());
    send_lock_set(p, s, true, &him);
    lock_is_set(p, s, &him, &known1, &lock_id).await;
}

/// `lock_is_set/5`: wait for the peer's answer to our `lock_set`.
async fn lock_is_set(p: &mut Process, s: &mut Multi, him: &Him, known1: &[Atom], lock_id: &Term) {
    let node = him.node;
    loop {
        let is_answer = |m: &Term| match m.as_tuple() {
            Some([op, Term::Pid(from), _, _, ..]) if op.is_atom("lock_set") => from.node == node,
            Some([op, Term::Atom(n), tag, _]) if op.is_atom("cancel") => {
                *n == node && *tag == him.my_tag
            }
            _ => false,
        };
        let Some(m) = p.recv_match(is_answer, None).await else {
            return;
        };
        let Some(t) = m.as_tuple() else { return };
        if t[0].is_atom("cancel") {
            run_fun(p, &t[3]);
            delete_global_lock(p, lock_id, known1).await;
            s.remove_node(node, &him.my_tag);
            return;
        }
        let current = t.get(4).is_none_or(|tag| *tag == him.my_tag);
        if !current {
            continue;
        }
        if t[2].is_atom("true") {
            let msg = tagged(
                "lock_is_set",
                vec![Term::Atom(node), him.my_tag.clone(), lock_id.clone()],
            );
            p.send(Dest::Name(Atom::new(GNS)), cast(msg));
            wait_cancel_lock(p, node, lock_id, &him.my_tag, known1).await;
            s.just_synced = true;
            s.local.retain(|h| h != him);
            s.remote.retain(|h| h != him);
        } else {
            delete_global_lock(p, lock_id, known1).await;
        }
        return;
    }
}

/// `wait_cancel_lock/6`: hold the lock until the server ends the session.
async fn wait_cancel_lock(p: &mut Process, node: Atom, lock_id: &Term, tag: &Term, known: &[Atom]) {
    let is_cancel = |m: &Term| match m.as_tuple() {
        Some([op, Term::Atom(n), t, _]) => op.is_atom("cancel") && *n == node && t == tag,
        _ => false,
    };
    let Some(m) = p.recv_match(is_cancel, None).await else {
        return;
    };
    if let Some(fun) = m.element(3) {
        run_fun(p, fun);
    }
    delete_global_lock(p, lock_id, known).await;
}

/// The server's `NewNodesF`: `{new_nodes_to, Msg, Nodes}` sends `Msg` to each node's server
/// before the lock goes, so `new_nodes` arrives while the lock is still held.
fn run_fun(p: &Process, fun: &Term) {
    let Some([op, msg, nodes]) = fun.as_tuple_n::<3>() else {
        return;
    };
    if !op.is_atom("new_nodes_to") {
        return;
    }
    for n in atoms_of(nodes).unwrap_or_default() {
        send_noconnect(p, Dest::NameAt(Atom::new(GNS), n), msg.clone());
    }
}

/// `lock_nodes_safely/3`: the boss first, then this node and `extra`, then every known node.
async fn lock_nodes_safely(p: &mut Process, s: &mut Multi, lock_id: &Term, extra: &[Atom]) -> bool {
    let first = vec![s.boss()];
    if !(first == [s.me] || s.can_set_lock(lock_id)) {
        return false;
    }
    if !set_lock(p, &s.locks, lock_id, &first).await {
        return false;
    }
    while let Some(m) = p
        .recv_match(
            |m| {
                m.element(0)
                    .is_some_and(|o| o.is_atom("add_to_known") || o.is_atom("remove_from_known"))
            },
            Some(Duration::ZERO),
        )
        .await
    {
        s.update_known(&m);
    }
    let second: Vec<Atom> = [s.me]
        .iter()
        .chain(extra)
        .copied()
        .filter(|n| !first.contains(n))
        .collect();
    if !set_lock(p, &s.locks, lock_id, &second).await {
        del_lock(p, lock_id, &first).await;
        return false;
    }
    let rest: Vec<Atom> = s
        .known
        .iter()
        .copied()
        .filter(|n| !first.contains(n))
        .collect();
    if !set_lock(p, &s.locks, lock_id, &rest).await {
        let so_far: Vec<Atom> = first.iter().chain(second.iter()).copied().collect();
        del_lock(p, lock_id, &so_far).await;
        return false;
    }
    true
}
