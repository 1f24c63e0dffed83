//! The `global_name_server` process: feeds its mailbox to [`GlobalState`] and carries out the
//! effects with the process API. Like `global.erl`'s `init/1`, it follows visible nodes only
//! (`net_kernel:monitor_nodes/1` without `node_type => all`): hidden connections take no part
//! in global.
use std::collections::HashSet;

use super::server::{Effects, GlobalState, GNS};
use super::terms::{cast, tagged};
use super::Registered;
use crate::dist::etf::{Atom, Pid, Reference, Term};
use crate::node::{Dest, Process};

struct ProcessEffects<'a> {
    p: &'a Process,
    demonitors: Vec<Reference>,
}

impl Effects for ProcessEffects<'_> {
    fn monitor(&mut self, pid: Pid) -> Reference {
        crate::node::pg::process::monitor_noconnect(self.p, pid)
    }

    fn demonitor(&mut self, reference: Reference) {
        self.demonitors.push(reference);
    }

    fn send(&mut self, to: Dest, msg: Term) {
        self.p.send(to, msg);
    }

    fn send_noconnect(&mut self, to: Dest, msg: Term) {
        let node = match to {
            Dest::Pid(p) => p.node,
            Dest::NameAt(_, n) => n,
            Dest::Name(_) | Dest::Alias(_) => self.p.node().name(),
        };
        if node == self.p.node().name() || self.p.node().is_connected(node) {
            self.p.send(to, msg);
        }
    }

    /// A caller on a node that is gone got its DOWN already; the reply is not worth a new
    /// connection.
    fn reply(&mut self, from: &Term, reply: Term) {
        let node = from.element(0).and_then(Term::as_pid).map(|p| p.node);
        if node.is_some_and(|n| n != self.p.node().name() && !self.p.node().is_connected(n)) {
            return;
        }
        self.p.node().reply(Some(self.p.pid()), from, reply);
    }

    fn exit(&mut self, pid: Pid, reason: Term) {
        if pid.node == self.p.node().name() || self.p.node().is_connected(pid.node) {
            self.p.exit(&pid, reason);
        }
    }

    fn disconnect(&mut self, node: Atom) {
        self.p.node().disconnect(node);
    }

    fn sync_others(&mut self, nodes: Vec<Atom>) {
        let me = self.p.node().name();
        for n in nodes {
            self.p.node().spawn(move |p| async move {
                let gns = Atom::new(GNS);
                if p.node().connect(n).await {
                    let msg = tagged("in_sync", vec![Term::Atom(me), Term::atom("true")]);
                    p.send(Dest::NameAt(gns, n), cast(msg));
                } else {
                    tracing::warn!(node = n.as_str(), "'global' failed to connect");
                    p.send(
                        Dest::Name(gns),
                        tagged("extra_nodedown", vec![Term::Atom(n)]),
                    );
                }
                Term::atom("normal")
            });
        }
    }
}

/// Runs `f` with fresh effects, then applies the deferred demonitors (with flush).
async fn step<R>(p: &mut Process, f: impl FnOnce(&mut dyn Effects) -> R) -> R {
    let (r, demonitors) = {
        let mut fx = ProcessEffects {
            p,
            demonitors: Vec::new(),
        };
        let r = f(&mut fx);
        (r, fx.demonitors)
    };
    for d in demonitors {
        p.demonitor(d).await;
    }
    r
}

/// `{nodeup, N}` / `{nodedown, N}` from `monitor_nodes`.
fn node_event(m: &Term) -> Option<(bool, Atom)> {
    match m.as_tuple()? {
        [op, Term::Atom(n)] if op.is_atom("nodeup") => Some((true, *n)),
        [op, Term::Atom(n)] if op.is_atom("nodedown") => Some((false, *n)),
        _ => None,
    }
}

pub(super) async fn run(
    mut p: Process,
    mut st: GlobalState,
    _registered: Option<Registered>,
) -> Term {
    p.monitor_nodes(true);
    let mut visible: HashSet<Atom> = HashSet::new();
    for n in p.node().nodes().0 {
        visible.insert(n);
        step(&mut p, |fx| st.nodeup(n, fx)).await;
    }
    while let Some(m) = p.recv().await {
        match node_event(&m) {
            Some((true, n)) => {
                if p.node().nodes().1.contains(&n) || !visible.insert(n) {
                    continue;
                }
                step(&mut p, |fx| st.nodeup(n, fx)).await;
            }
            Some((false, n)) => {
                if visible.remove(&n) {
                    step(&mut p, |fx| st.nodedown(n, fx)).await;
                }
            }
            None => {
                if let Err(e) = step(&mut p, |fx| st.handle(&m, fx)).await {
                    tracing::warn!(error = %e, "global_name_server: message ignored");
                }
            }
        }
    }
    Term::atom("normal")
}
