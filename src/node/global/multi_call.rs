//! `gen_server:multi_call(Nodes, global_name_server, Request)` as OTP 25 sends it (reference/
//! otp25-traces.md §0.1): per node a MONITOR_P by name, then `{'$gen_call', {Caller, {Ref,
//! Node}}, Request}` with one `Ref` for all nodes; the reply `{{Ref, Node}, Reply}` comes to
//! the caller pid. No timeout (global calls with `infinity`): a node answers or goes down.
//! On top of it, global's lock operations (`set_lock/4`, `del_lock/2`, `delete_global_lock/2`)
//! shared by the locker and the registrar.
use std::collections::HashMap;
use std::sync::Mutex;

use super::locks::{CanLock, LockTable};
use super::server::GNS;
use crate::dist::etf::{Atom, Reference, Term};
use crate::node::pg::TermKey;
use crate::node::{Dest, MonitorTarget, Process};

/// `erlang:send(Dest, Msg, [noconnect])`. global never opens a connection by sending: after a
/// disconnect, a late lock or cast must not bring the node back (only `sync_others/1`
/// connects, on purpose; docs/decisions.md).
pub(super) fn send_noconnect(p: &Process, to: Dest, msg: Term) {
    let node = match to {
        Dest::Pid(pid) => pid.node,
        Dest::NameAt(_, n) => n,
        Dest::Name(_) | Dest::Alias(_) => p.node().name(),
    };
    if node == p.node().name() || p.node().is_connected(node) {
        p.send(to, msg);
    }
}

/// Calls `global_name_server` on every node in `nodes`; returns the replies of the nodes that
/// answered (nodes that went down, are not connected or have no server are left out, as
/// `BadNodes`).
pub async fn multi_call(p: &mut Process, nodes: &[Atom], request: Term) -> Vec<(Atom, Term)> {
    let gns = Atom::new(GNS);
    let tag = p.node().make_ref();
    let mut monitors: HashMap<Reference, Atom> = HashMap::new();
    let me = p.node().name();
    for &node in nodes {
        if node != me && !p.node().is_connected(node) {
            continue;
        }
        let m = p.monitor(MonitorTarget::Name(gns, node));
        monitors.insert(m, node);
        let from = Term::tuple(vec![
            Term::Pid(p.pid()),
            Term::tuple(vec![Term::Ref(tag), Term::Atom(node)]),
        ]);
        p.send(
            Dest::NameAt(gns, node),
            Term::tuple(vec![Term::atom("$gen_call"), from, request.clone()]),
        );
    }
    let mut replies = Vec::new();
    while !monitors.is_empty() {
        let pending: Vec<(Reference, Atom)> = monitors.iter().map(|(r, n)| (*r, *n)).collect();
        let is_ours = |m: &Term| match m.as_tuple() {
            Some([t, _]) => match t.as_tuple() {
                Some([Term::Ref(r), Term::Atom(n)]) => {
                    *r == tag && pending.iter().any(|(_, x)| x == n)
                }
                _ => false,
            },
            Some([d, Term::Ref(r), _, _, _]) => d.is_atom("DOWN") && monitors.contains_key(r),
            _ => false,
        };
        let Some(m) = p.recv_match(is_ours, None).await else {
            break;
        };
        match m.as_tuple() {
            Some([t, reply]) => {
                let Some([_, Term::Atom(n)]) = t.as_tuple_n::<2>() else {
                    continue;
                };
                let n = *n;
                if let Some(r) = monitors.iter().find(|(_, x)| **x == n).map(|(r, _)| *r) {
                    monitors.remove(&r);
                    p.demonitor(r).await;
                    replies.push((n, reply.clone()));
                }
            }
            Some([_, Term::Ref(r), _, _, _]) => {
                monitors.remove(r);
            }
            _ => {}
        }
    }
    replies
}

/// `can_set_lock/1` on this node's table: false when another requester holds the resource.
pub(super) fn can_set_lock(locks: &Mutex<LockTable>, lock_id: &Term) -> bool {
    let Some([res, req]) = lock_id.as_tuple_n::<2>() else {
        return false;
    };
    let t = locks.lock().unwrap_or_else(|p| p.into_inner());
    t.can_set(&TermKey::new(res.clone()), req) != CanLock::No
}

/// `set_lock(Id, Nodes, 0)` → `set_lock_on_nodes/2` + `check_replies/3`.
pub(super) async fn set_lock(
    p: &mut Process,
    locks: &Mutex<LockTable>,
    lock_id: &Term,
    nodes: &[Atom],
) -> bool {
    if nodes.is_empty() {
        return true;
    }
    if nodes.len() > 1 && nodes.contains(&p.node().name()) && !can_set_lock(locks, lock_id) {
        return false;
    }
    let req = Term::tuple(vec![Term::atom("set_lock"), lock_id.clone()]);
    let replies = multi_call(p, nodes, req).await;
    if replies.iter().all(|(_, r)| r.is_atom("true")) {
        return true;
    }
    if replies.len() > 1 {
        let ok: Vec<Atom> = replies
            .iter()
            .filter(|(_, r)| r.is_atom("true"))
            .map(|(n, _)| *n)
            .collect();
        del_lock(p, lock_id, &ok).await;
    }
    false
}

/// `del_lock(Id, Nodes)`.
pub(super) async fn del_lock(p: &mut Process, lock_id: &Term, nodes: &[Atom]) {
    if nodes.is_empty() {
        return;
    }
    let req = Term::tuple(vec![Term::atom("del_lock"), lock_id.clone()]);
    multi_call(p, nodes, req).await;
}

/// `delete_global_lock/2`: every node but the boss, then the boss.
pub(super) async fn delete_global_lock(p: &mut Process, lock_id: &Term, nodes: &[Atom]) {
    let Some(boss) = nodes.iter().copied().max() else {
        return;
    };
    let mut others: Vec<Atom> = nodes.to_vec();
    if let Some(i) = others.iter().position(|n| *n == boss) {
        others.remove(i);
    }
    del_lock(p, lock_id, &others).await;
    del_lock(p, lock_id, &[boss]).await;
}
