//! Node-level events in the process table: `monitor_node/2`, `net_kernel:monitor_nodes/1`
//! subscribers, and what a lost connection does to links and monitors (`noconnection`, as
//! `erts/emulator/beam/dist.c` `erts_do_net_exits` fires them).
use super::monitors::down_message;
use super::table::Table;
use crate::dist::etf::{Atom, Pid, Term};

impl Table {
    /// `erlang:monitor_node(Node, true)` by local `pid`.
    pub fn monitor_node(&mut self, pid: &Pid, node: Atom) {
        if let Some(e) = self.procs.get_mut(pid) {
            *e.node_monitors.entry(node).or_insert(0) += 1;
        }
    }

    /// `erlang:monitor_node(Node, false)`: drops all of `pid`'s monitors of `node`.
    pub fn demonitor_node(&mut self, pid: &Pid, node: Atom) {
        if let Some(e) = self.procs.get_mut(pid) {
            e.node_monitors.remove(&node);
        }
    }

    /// `net_kernel:monitor_nodes(Flag)` by local `pid`.
    pub fn subscribe_nodes(&mut self, pid: &Pid, on: bool) {
        if on && self.procs.contains_key(pid) {
            self.node_subscribers.insert(*pid);
        } else {
            self.node_subscribers.remove(pid);
        }
    }

    /// A connection to `node` came up: `{nodeup, Node}` to subscribers.
    pub fn nodeup(&mut self, node: Atom) {
        let msg = Term::tuple(vec![Term::atom("nodeup"), Term::Atom(node)]);
        for s in &self.node_subscribers {
            let _ = self.deliver(s, msg.clone());
        }
    }

    /// The connection to `node` is gone: every monitor and link across it fires with
    /// `noconnection`, node monitors get `{nodedown, Node}`, and remote watchers of local
    /// processes are forgotten.
    pub fn nodedown(&mut self, node: Atom) {
        let noconn = Term::atom("noconnection");
        let refs: Vec<_> = self
            .monitors
            .iter()
            .filter(|(_, m)| m.watcher.node == node || m.target.node() == node)
            .map(|(r, _)| *r)
            .collect();
        for r in refs {
            let Some(m) = self.monitors.remove(&r) else {
                continue;
            };
            if m.watcher.node == node {
                if let Some(e) = m.resolved.as_ref().and_then(|t| self.procs.get_mut(t)) {
                    e.monitors_in.remove(&r);
                }
            } else {
                if let Some(e) = self.procs.get_mut(&m.watcher) {
                    e.monitors_out.remove(&r);
                }
                let _ = self.deliver(&m.watcher, down_message(&r, &m.target, noconn.clone()));
            }
        }
        for (local, remote) in self.links_to_node(node) {
            self.exit_signal(&remote, &local, noconn.clone(), true);
        }
        let down = Term::tuple(vec![Term::atom("nodedown"), Term::Atom(node)]);
        let watchers: Vec<(Pid, usize)> = self
            .procs
            .iter_mut()
            .filter_map(|(p, e)| e.node_monitors.remove(&node).map(|n| (*p, n)))
            .collect();
        for (p, n) in watchers {
            for _ in 0..n {
                let _ = self.deliver(&p, down.clone());
            }
        }
        for s in &self.node_subscribers {
            let _ = self.deliver(s, down.clone());
        }
    }
}
