//! The process table: who exists, under which names and aliases, and who is linked to or
//! monitors whom. One lock over all of it makes links, monitors and exits atomic with
//! respect to each other, as they are on BEAM (`erts/emulator/beam/erl_proc_sig_queue.c`
//! orders them per process pair).
//!
//! The table does no I/O: local deliveries are non-blocking queue pushes, and everything for
//! another node comes back as [`Outgoing`] signals for the caller to send after unlocking.
//! Links are in `links.rs`, monitors in `monitors.rs`, node-level events in `nodes.rs`.
use std::collections::{HashMap, HashSet};

use tokio::sync::oneshot;

use super::mailbox::{DeliveryError, MailboxSender};
use super::signal::{MonitorTarget, Outgoing};
use crate::dist::etf::{Atom, Pid, Reference, Term};

/// Why `register` failed (`erlang:register/2` raises badarg for each).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RegisterError {
    /// Another process has the name.
    #[error("name already registered")]
    NameTaken,
    /// The process already has a name.
    #[error("process already registered")]
    AlreadyNamed,
    /// The process does not exist.
    #[error("no such process")]
    NoProc,
}

/// A live local process as the table knows it.
#[derive(Debug)]
pub(super) struct Entry {
    pub(super) mailbox: MailboxSender,
    pub(super) kill: Option<oneshot::Sender<Term>>,
    pub(super) trap_exit: bool,
    pub(super) name: Option<Atom>,
    pub(super) links: HashSet<Pid>,
    /// Monitors this process holds.
    pub(super) monitors_out: HashSet<Reference>,
    /// Monitors on this process.
    pub(super) monitors_in: HashSet<Reference>,
    pub(super) aliases: HashSet<Reference>,
    /// Nodes this process watches with `monitor_node/2`, with a count per node.
    pub(super) node_monitors: HashMap<Atom, usize>,
}

/// One monitor, whichever side its ends are on.
#[derive(Debug, Clone)]
pub(super) struct Monitor {
    pub(super) watcher: Pid,
    pub(super) target: MonitorTarget,
    /// The watched pid once resolved (local targets only).
    pub(super) resolved: Option<Pid>,
}

/// The node's processes and their relations.
#[derive(Debug)]
pub struct Table {
    pub(super) node: Atom,
    pub(super) procs: HashMap<Pid, Entry>,
    pub(super) names: HashMap<Atom, Pid>,
    pub(super) aliases: HashMap<Reference, Pid>,
    pub(super) monitors: HashMap<Reference, Monitor>,
    /// Processes subscribed with `net_kernel:monitor_nodes(true)`.
    pub(super) node_subscribers: HashSet<Pid>,
}

impl Table {
    /// An empty table for the node named `node`.
    pub fn new(node: Atom) -> Self {
        Table {
            node,
            procs: HashMap::new(),
            names: HashMap::new(),
            aliases: HashMap::new(),
            monitors: HashMap::new(),
            node_subscribers: HashSet::new(),
        }
    }

    /// This node's name.
    pub fn node(&self) -> Atom {
        self.node
    }

    /// Adds a freshly spawned process.
    pub(super) fn insert(&mut self, pid: Pid, mailbox: MailboxSender, kill: oneshot::Sender<Term>) {
        self.procs.insert(
            pid,
            Entry {
                mailbox,
                kill: Some(kill),
                trap_exit: false,
                name: None,
                links: HashSet::new(),
                monitors_out: HashSet::new(),
                monitors_in: HashSet::new(),
                aliases: HashSet::new(),
                node_monitors: HashMap::new(),
            },
        );
    }

    /// True while `pid` is a live local process.
    pub fn is_alive(&self, pid: &Pid) -> bool {
        self.procs.contains_key(pid)
    }

    /// Number of live processes.
    pub fn len(&self) -> usize {
        self.procs.len()
    }

    /// True when no process lives.
    pub fn is_empty(&self) -> bool {
        self.procs.is_empty()
    }

    /// Queues `msg` for a local pid; a send to a dead pid is dropped silently, as on BEAM.
    pub fn deliver(&self, to: &Pid, msg: Term) -> Result<(), DeliveryError> {
        match self.procs.get(to) {
            Some(e) => e.mailbox.deliver(msg).inspect_err(|err| {
                tracing::warn!(pid = ?to, %err, "message dropped");
            }),
            None => Err(DeliveryError::Gone),
        }
    }

    /// Queues `msg` for the process registered as `name`, if any.
    pub fn deliver_named(&self, name: Atom, msg: Term) -> Result<(), DeliveryError> {
        match self.names.get(&name) {
            Some(pid) => self.deliver(pid, msg),
            None => Err(DeliveryError::Gone),
        }
    }

    /// Queues `msg` for the owner of `alias`, if the alias is active.
    pub fn deliver_alias(&self, alias: &Reference, msg: Term) -> Result<(), DeliveryError> {
        match self.aliases.get(alias) {
            Some(pid) => self.deliver(pid, msg),
            None => Err(DeliveryError::Gone),
        }
    }

    /// `erlang:whereis/1`.
    pub fn whereis(&self, name: Atom) -> Option<Pid> {
        self.names.get(&name).cloned()
    }

    /// `erlang:registered/0`.
    pub fn registered(&self) -> Vec<Atom> {
        self.names.keys().copied().collect()
    }

    /// `erlang:register/2`.
    pub fn register(&mut self, name: Atom, pid: &Pid) -> Result<(), RegisterError> {
        if self.names.contains_key(&name) {
            return Err(RegisterError::NameTaken);
        }
        let entry = self.procs.get_mut(pid).ok_or(RegisterError::NoProc)?;
        if entry.name.is_some() {
            return Err(RegisterError::AlreadyNamed);
        }
        entry.name = Some(name);
        self.names.insert(name, *pid);
        Ok(())
    }

    /// `erlang:unregister/1`; false when the name was not registered.
    pub fn unregister(&mut self, name: Atom) -> bool {
        match self.names.remove(&name) {
            Some(pid) => {
                if let Some(e) = self.procs.get_mut(&pid) {
                    e.name = None;
                }
                true
            }
            None => false,
        }
    }

    /// Makes `alias` deliver to `pid` (`erlang:alias/0`).
    pub fn add_alias(&mut self, pid: &Pid, alias: Reference) -> bool {
        match self.procs.get_mut(pid) {
            Some(e) => {
                e.aliases.insert(alias);
                self.aliases.insert(alias, *pid);
                true
            }
            None => false,
        }
    }

    /// `erlang:unalias/1`.
    pub fn remove_alias(&mut self, pid: &Pid, alias: &Reference) -> bool {
        let removed = self
            .procs
            .get_mut(pid)
            .is_some_and(|e| e.aliases.remove(alias));
        if removed {
            self.aliases.remove(alias);
        }
        removed
    }

    /// `process_flag(trap_exit, On)`; returns the old value.
    pub fn set_trap_exit(&mut self, pid: &Pid, on: bool) -> bool {
        match self.procs.get_mut(pid) {
            Some(e) => std::mem::replace(&mut e.trap_exit, on),
            None => false,
        }
    }

    /// Ends `pid` with `reason` at once: its task is dropped at the next await point and
    /// [`Table::exited`] runs. No effect on a process already ending.
    pub(super) fn kill(&mut self, pid: &Pid, reason: Term) {
        if let Some(kill) = self.procs.get_mut(pid).and_then(|e| e.kill.take()) {
            let _ = kill.send(reason);
        }
    }

    /// An exit signal from `from` reached local `to` (`erts` `handle_exit_signal`): a linked
    /// exit only counts while the link exists; `kill` via `exit/2` is untrappable; a trapping
    /// process gets `{'EXIT', From, Reason}`; `normal` is ignored by a non-trapping one.
    pub fn exit_signal(&mut self, from: &Pid, to: &Pid, reason: Term, linked: bool) {
        let Some(entry) = self.procs.get_mut(to) else {
            return;
        };
        if linked && !entry.links.remove(from) {
            return;
        }
        if !linked && reason.is_atom("kill") {
            self.kill(to, Term::atom("killed"));
        } else if entry.trap_exit {
            let msg = Term::tuple(vec![Term::atom("EXIT"), Term::Pid(*from), reason]);
            let _ = self.deliver(to, msg);
        } else if !reason.is_atom("normal") {
            self.kill(to, reason);
        }
    }

    /// Removes a process that ended with `reason` and fires everything that watched it:
    /// link exits, DOWN messages, name and alias removal; returns the signals for other nodes.
    pub fn exited(&mut self, pid: &Pid, reason: &Term) -> Vec<Outgoing> {
        let mut out = Vec::new();
        let Some(entry) = self.procs.remove(pid) else {
            return out;
        };
        if let Some(name) = entry.name {
            self.names.remove(&name);
        }
        for alias in &entry.aliases {
            self.aliases.remove(alias);
        }
        self.node_subscribers.remove(pid);
        self.monitors_of_exited(pid, &entry, reason, &mut out);
        self.links_of_exited(pid, &entry, reason, &mut out);
        out
    }
}

#[cfg(test)]
#[path = "table_tests.rs"]
mod tests;
