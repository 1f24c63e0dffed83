//! The global name table (`global_names` and `global_pid_names` in `lib/kernel/src/global.erl`):
//! `{Name, Pid, Method, MonitorRef}`, written by `global_name_server` only and read by anyone
//! (`global:whereis_name/1` is a local lookup and sends nothing, reference/otp25-traces.md §2).
//! `Method` is the resolve fun given at registration; we cannot run Erlang funs, so it is kept
//! as received and handed back in `exchange` exactly as it came.
use std::collections::HashMap;

use crate::dist::etf::{Pid, Reference, Term};
use crate::node::pg::TermKey;

/// One registered name.
#[derive(Debug, Clone, PartialEq)]
pub struct NameEntry {
    /// The process.
    pub pid: Pid,
    /// The conflict-resolution method (an opaque fun, usually `global:random_exit_name/3`).
    pub method: Term,
    /// This node's monitor of `pid`.
    pub monitor: Reference,
}

/// All globally registered names this node knows.
#[derive(Debug, Default)]
pub struct NameTable {
    names: HashMap<TermKey, NameEntry>,
    by_ref: HashMap<Reference, TermKey>,
}

impl NameTable {
    /// The entry for `name`.
    pub fn get(&self, name: &TermKey) -> Option<&NameEntry> {
        self.names.get(name)
    }

    /// Stores `name` (replacing any entry; the caller has dropped the old monitor).
    pub fn insert(&mut self, name: TermKey, entry: NameEntry) {
        self.by_ref.insert(entry.monitor, name.clone());
        if let Some(old) = self.names.insert(name, entry) {
            self.by_ref.remove(&old.monitor);
        }
    }

    /// Removes `name`, returning what it held.
    pub fn remove(&mut self, name: &TermKey) -> Option<NameEntry> {
        let e = self.names.remove(name)?;
        self.by_ref.remove(&e.monitor);
        Some(e)
    }

    /// The name whose monitor is `r` (a registered process went down).
    pub fn name_of_monitor(&self, r: &Reference) -> Option<TermKey> {
        self.by_ref.get(r).cloned()
    }

    /// True when `pid` holds some name (`check_dupname/2`).
    pub fn has_pid(&self, pid: &Pid) -> bool {
        self.names.values().any(|e| e.pid == *pid)
    }

    /// `get_names/0`: `[{Name, Pid, Method}]` for `exchange`.
    pub fn name_list(&self) -> Vec<Term> {
        self.names
            .iter()
            .map(|(k, e)| Term::tuple(vec![k.term().clone(), Term::Pid(e.pid), e.method.clone()]))
            .collect()
    }

    /// `global:registered_names/0`.
    pub fn names(&self) -> Vec<Term> {
        self.names.keys().map(|k| k.term().clone()).collect()
    }

    /// Number of names.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// True when no name is registered.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}
