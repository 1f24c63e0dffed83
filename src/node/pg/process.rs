//! The scope process: feeds its mailbox and Rust callers' commands to [`ScopeState`] and carries
//! out the effects (monitors, `noconnect` sends) with the process API.
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use super::groups::Groups;
use super::state::{Effects, ScopeState};
use super::{Command, Registered};
use crate::dist::etf::{Atom, Pid, Reference, Term};
use crate::node::{down_message, Dest, MonitorTarget, Process};

/// Effects on behalf of the scope process; demonitors wait until the handler returns.
struct ProcessEffects<'a> {
    p: &'a Process,
    demonitors: Vec<Reference>,
}

/// `erlang:monitor(process, Pid)` that never opens a connection: for a pid on a node we are
/// not connected to, the DOWN (`noconnection`) is delivered at once, as when a connection
/// attempt fails. pg and global only monitor peers they just heard from; if that connection
/// is already gone, reconnecting just to watch would undo a deliberate disconnect.
pub(crate) fn monitor_noconnect(p: &Process, pid: Pid) -> Reference {
    let node = p.node();
    if pid.node != node.name() && !node.is_connected(pid.node) {
        let r = node.make_ref();
        let down = down_message(&r, &MonitorTarget::Pid(pid), Term::atom("noconnection"));
        node.send_from(None, Dest::Pid(p.pid()), down);
        return r;
    }
    p.monitor(MonitorTarget::Pid(pid))
}

impl Effects for ProcessEffects<'_> {
    fn monitor(&mut self, pid: Pid) -> Reference {
        monitor_noconnect(self.p, pid)
    }

    fn demonitor(&mut self, reference: Reference) {
        self.demonitors.push(reference);
    }

    fn send(&mut self, to: Dest, msg: Term) {
        let node = match to {
            Dest::Pid(p) => p.node,
            Dest::NameAt(_, n) => n,
            Dest::Name(_) | Dest::Alias(_) => self.p.node().name(),
        };
        if node != self.p.node().name() && !self.p.node().is_connected(node) {
            return;
        }
        self.p.send(to, msg);
    }
}

/// Runs `f` against the state with fresh effects, then applies the deferred demonitors.
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

/// True for `{nodeup, N}` about a hidden node: `net_kernel:monitor_nodes(true)` reports
/// visible nodes only, and pg must not discover over hidden connections.
fn is_hidden_nodeup(p: &Process, msg: &Term) -> bool {
    match msg.as_tuple() {
        Some([op, Term::Atom(n)]) if op.is_atom("nodeup") => p.node().nodes().1.contains(n),
        _ => false,
    }
}

pub(super) async fn run(
    mut p: Process,
    scope: Atom,
    groups: Arc<Mutex<Groups>>,
    mut commands: mpsc::UnboundedReceiver<Command>,
    _registered: Option<Registered>,
) -> Term {
    p.monitor_nodes(true);
    let mut st = ScopeState::new(scope, p.pid(), groups);
    let visible = p.node().nodes().0;
    step(&mut p, |fx| {
        for n in visible {
            st.discover_node(n, fx);
        }
    })
    .await;
    let mut commands_open = true;
    loop {
        tokio::select! {
            m = p.recv() => {
                let Some(m) = m else { break };
                if is_hidden_nodeup(&p, &m) {
                    continue;
                }
                if let Err(e) = step(&mut p, |fx| st.handle_owned(m, fx)).await {
                    tracing::warn!(scope = scope.as_str(), error = %e, "pg: message ignored");
                }
            }
            c = commands.recv(), if commands_open => match c {
                None => commands_open = false,
                Some(Command::Join { group, pids, reply }) => {
                    let wire = Term::list(pids.iter().copied().map(Term::Pid).collect::<Vec<_>>());
                    step(&mut p, |fx| st.join_local(group, &pids, wire, fx)).await;
                    let _ = reply.send(());
                }
                Some(Command::JoinGroups { groups, pids, reply }) => {
                    let wire = Term::list(pids.iter().copied().map(Term::Pid).collect::<Vec<_>>());
                    step(&mut p, |fx| {
                        for group in groups {
                            st.join_local(group, &pids, wire.clone(), fx);
                        }
                    })
                    .await;
                    let _ = reply.send(());
                }
                Some(Command::Leave { group, pids, reply }) => {
                    let wire = Term::list(pids.iter().copied().map(Term::Pid).collect::<Vec<_>>());
                    let left = step(&mut p, |fx| st.leave_local(group, &pids, wire, fx)).await;
                    let _ = reply.send(left);
                }
            }
        }
    }
    Term::atom("normal")
}
