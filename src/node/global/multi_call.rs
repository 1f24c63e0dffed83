//! `gen_server:multi_call(Nodes, global_name_server, Request)` as OTP 25 sends it (reference/
//! otp25-traces.md §0.1): per node a MONITOR_P by name, then `{'$gen_call', {Caller, {Ref,
//! Node}}, Request}` with one `Ref` for all nodes; the reply `{{Ref, Node}, Reply}` comes to
//! the caller pid. No timeout (global calls with `infinity`): a node answers or goes down.
use std::collections::HashMap;

use super::server::GNS;
use crate::dist::etf::{Atom, Reference, Term};
use crate::node::{Dest, MonitorTarget, Process};

/// Calls `global_name_server` on every node in `nodes`; returns the replies of the nodes that
/// answered (nodes that went down or have no server are left out, as `BadNodes`).
pub async fn multi_call(p: &mut Process, nodes: &[Atom], request: Term) -> Vec<(Atom, Term)> {
    let gns = Atom::new(GNS);
    let tag = p.node().make_ref();
    let mut monitors: HashMap<Reference, Atom> = HashMap::new();
    for &node in nodes {
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
