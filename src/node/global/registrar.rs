//! Registering and unregistering names from this node, as global's registrar does
//! (`trans_all_known/1`, `set_lock_known/2` in `lib/kernel/src/global.erl`; reference/
//! otp25-traces.md §2): lock `{global, Me}` on the boss (largest node name), then on every known
//! node, checking that no node became known meanwhile; multi-call `{register, Name, Pid,
//! Method}` (or `{unregister, Name}`) to all of them, this node included; release the lock,
//! the boss last. Every node then monitors the pid and drops the name when it dies.
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::locks::{LockTable, GLOBAL_RID};
use super::multi_call::{del_lock, delete_global_lock, multi_call, set_lock};
use super::names::NameTable;
use super::server::GNS;
use super::terms::atoms_of;
use crate::dist::etf::{Atom, Pid, Term};
use crate::node::pg::TermKey;
use crate::node::{Dest, Process};

/// What the registrar does once it holds the lock.
pub(super) enum Op {
    /// `{register, Name, Pid, Method}`, unless the name is taken or the pid has a name
    /// (`check_dupname/2`).
    Register {
        name: Term,
        pid: Pid,
        method: Term,
        names: Arc<Mutex<NameTable>>,
    },
    /// `{unregister, Name}`.
    Unregister(Term),
}

/// `get_known` from our own server.
async fn known(p: &mut Process) -> Vec<Atom> {
    let r = p
        .call(Dest::Name(Atom::new(GNS)), Term::atom("get_known"), None)
        .await;
    r.ok().and_then(|t| atoms_of(&t)).unwrap_or_default()
}

/// `random_sleep/1`: up to 1/8 s doubling per attempt, at most 8 s.
async fn random_sleep(times: u32) {
    let max_ms: u64 = if times > 5 {
        8000
    } else {
        (1000u64 << times) / 8
    };
    let ms = 1 + rand::random::<u64>() % max_ms.max(1);
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

/// `set_lock_known/2`: returns the nodes locked (this one first).
async fn set_lock_known(p: &mut Process, locks: &Mutex<LockTable>, lock_id: &Term) -> Vec<Atom> {
    let me = p.node().name();
    let mut times = 0;
    loop {
        let known_before = known(p).await;
        let mut nodes = vec![me];
        nodes.extend(known_before.iter().copied());
        let boss = nodes.iter().copied().max().unwrap_or(me);
        if set_lock(p, locks, lock_id, &[boss]).await {
            let locked = set_lock(p, locks, lock_id, &nodes).await;
            if locked && known(p).await.iter().all(|n| known_before.contains(n)) {
                return nodes;
            }
            del_lock(p, lock_id, &[boss]).await;
        }
        random_sleep(times).await;
        times += 1;
    }
}

/// Runs `op` under global's lock on every known node; the reply is `yes`/`no` for a
/// registration, `ok` for an unregistration.
pub(super) async fn run(p: &mut Process, locks: &Mutex<LockTable>, op: Op) -> Term {
    let lock_id = Term::tuple(vec![Term::atom(GLOBAL_RID), Term::Pid(p.pid())]);
    let nodes = set_lock_known(p, locks, &lock_id).await;
    let reply = match op {
        Op::Register {
            name,
            pid,
            method,
            names,
        } => {
            let free = {
                let t = names.lock().unwrap_or_else(|p| p.into_inner());
                t.get(&TermKey::new(name.clone())).is_none() && !t.has_pid(&pid)
            };
            if free {
                let req = Term::tuple(vec![Term::atom("register"), name, Term::Pid(pid), method]);
                multi_call(p, &nodes, req).await;
                Term::atom("yes")
            } else {
                Term::atom("no")
            }
        }
        Op::Unregister(name) => {
            let req = Term::tuple(vec![Term::atom("unregister"), name]);
            multi_call(p, &nodes, req).await;
            Term::atom("ok")
        }
    };
    delete_global_lock(p, &lock_id, &nodes).await;
    reply
}
