//! `global`: the `global_name_server` a BEAM peer expects (protocol vsn 8, `lib/kernel/src/
//! global.erl`), so that `global:sync()` on a BEAM node completes with beamq connected, names
//! registered with `global` anywhere in the cluster are known here, and global's partition
//! prevention (`lost_connection` / `remove_connection`) works across beamq nodes.
//!
//! ```no_run
//! # use beamq::node::{Node, global::Global};
//! # use beamq::dist::etf::Term;
//! # fn f(node: Node) -> Result<(), beamq::node::global::GlobalError> {
//! let global = Global::start(&node)?;
//! let pid = global.whereis_name(&Term::atom("foo")); // local lookup, no messages
//! # Ok(()) }
//! ```
//!
//! Processes: `global_name_server` ([`server`], [`connect`], [`partition`]) and its locker
//! ([`locker`]), linked as on BEAM. The name table is shared for lock-free-of-messages reads.
mod connect;
mod functions;
mod locker;
pub mod locks;
mod multi_call;
pub mod names;
mod partition;
mod process;
mod registrar;
pub mod server;
pub mod terms;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_connect;
#[cfg(test)]
mod tests_names;
#[cfg(test)]
mod tests_partition;

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};
use std::time::Duration;

use locks::LockTable;
use names::NameTable;
use server::{GlobalState, GNS};

use super::process::CallError;
use super::runtime::{Node, SpawnOpts};
use super::table::RegisterError;
use crate::dist::etf::{Atom, Pid, Term};
use crate::node::pg::TermKey;
use crate::node::Dest;

/// Why global could not start or answer.
#[derive(Debug, thiserror::Error)]
pub enum GlobalError {
    /// `global_name_server` is registered already.
    #[error(transparent)]
    Register(#[from] RegisterError),
    /// The server did not answer.
    #[error("global_name_server call failed: {0}")]
    Call(#[from] CallError),
}

/// A handle on the node's global name server; cheap to clone.
#[derive(Clone)]
pub struct Global {
    node: Node,
    gns: Pid,
    names: Arc<Mutex<NameTable>>,
    locks: Arc<Mutex<LockTable>>,
    /// One registration at a time from this node, as BEAM's single registrar process does.
    registrar: Arc<tokio::sync::Mutex<()>>,
}

impl std::fmt::Debug for Global {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Global({:?})", self.gns)
    }
}

type Registry = HashMap<(usize, Pid), Global>;
static SERVERS: LazyLock<Mutex<Registry>> = LazyLock::new(|| Mutex::new(HashMap::new()));

fn registry() -> MutexGuard<'static, Registry> {
    SERVERS.lock().unwrap_or_else(|p| p.into_inner())
}

fn node_id(node: &Node) -> usize {
    Arc::as_ptr(&node.inner) as usize
}

/// Drops the registry entry when the server ends, however it ends.
pub(crate) struct Registered {
    key: (usize, Pid),
}

impl Drop for Registered {
    fn drop(&mut self) {
        registry().remove(&self.key);
    }
}

impl Global {
    /// Starts the locker and `global_name_server` on `node` (`global:start_link/0`), and
    /// makes `global:whereis_name/1`, `global:registered_names/0` and `global:sync/0` callable
    /// by `rpc`/`erpc` from peers.
    pub fn start(node: &Node) -> Result<Global, RegisterError> {
        let names = Arc::new(Mutex::new(NameTable::default()));
        let locks = Arc::new(Mutex::new(LockTable::default()));
        let l = locks.clone();
        let locker = node.spawn(move |p| locker::run(p, l));
        let server_locks = locks.clone();
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<Registered>();
        let opts = SpawnOpts {
            name: Some(Atom::new(GNS)),
            link: Some(locker),
            ..Default::default()
        };
        let n = names.clone();
        let spawned = node.spawn_opt(opts, move |p| async move {
            let reg = ready_rx.await.ok();
            let st = GlobalState::new(p.node().name(), locker, n, server_locks);
            process::run(p, st, reg).await
        });
        let gns = match spawned {
            Ok(pid) => pid,
            Err(e) => {
                node.exit(&locker, &locker, Term::atom("kill"));
                return Err(e);
            }
        };
        let g = Global {
            node: node.clone(),
            gns,
            names,
            locks,
            registrar: Arc::new(tokio::sync::Mutex::new(())),
        };
        let key = (node_id(node), gns);
        registry().insert(key, g.clone());
        let _ = ready_tx.send(Registered { key });
        functions::register(node.functions());
        Ok(g)
    }

    /// The global server started on `node`, if any.
    pub fn lookup(node: &Node) -> Option<Global> {
        let pid = node.whereis(Atom::new(GNS))?;
        registry().get(&(node_id(node), pid)).cloned()
    }

    /// The server's pid.
    pub fn pid(&self) -> Pid {
        self.gns
    }

    fn table(&self) -> MutexGuard<'_, NameTable> {
        self.names.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `global:whereis_name(Name)`: a local lookup, as on BEAM (a local pid must be alive).
    pub fn whereis_name(&self, name: &Term) -> Option<Pid> {
        let pid = self.table().get(&TermKey::new(name.clone()))?.pid;
        if self.node.is_local(&pid) && !self.node.is_alive(&pid) {
            return None;
        }
        Some(pid)
    }

    /// `global:registered_names()`.
    pub fn registered_names(&self) -> Vec<Term> {
        self.table().names()
    }

    /// `global:register_name(Name, Pid)`: registers `name` on every known node under global's
    /// lock, as BEAM's registrar does; false (`no`) when the name is taken or `pid` has a
    /// name. The resolve method sent is `fun global:random_exit_name/3`.
    pub async fn register_name(&self, name: Term, pid: Pid) -> Result<bool, GlobalError> {
        let method = Term::Export {
            module: Atom::new("global"),
            function: Atom::new("random_exit_name"),
            arity: 3,
        };
        let op = registrar::Op::Register {
            name,
            pid,
            method,
            names: self.names.clone(),
        };
        Ok(self.registrar_run(op).await?.is_atom("yes"))
    }

    /// `global:unregister_name(Name)` on every known node.
    pub async fn unregister_name(&self, name: Term) -> Result<(), GlobalError> {
        if self.table().get(&TermKey::new(name.clone())).is_none() {
            return Ok(());
        }
        self.registrar_run(registrar::Op::Unregister(name))
            .await
            .map(|_| ())
    }

    async fn registrar_run(&self, op: registrar::Op) -> Result<Term, GlobalError> {
        let _one_at_a_time = self.registrar.lock().await;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let locks = self.locks.clone();
        self.node.spawn(move |mut p| async move {
            let _ = tx.send(registrar::run(&mut p, &locks, op).await);
            Term::atom("normal")
        });
        rx.await
            .map_err(|_| CallError::Down(Term::atom("noproc")).into())
    }

    /// `global:sync()`: waits until global has synced with every visible node (or `timeout`).
    pub async fn sync(&self, timeout: Option<Duration>) -> Result<(), GlobalError> {
        let nodes = self.node.nodes().0;
        let req = Term::tuple(vec![
            Term::atom("sync"),
            Term::list(nodes.into_iter().map(Term::Atom).collect::<Vec<_>>()),
        ]);
        self.call(req, timeout).await.map(|_| ())
    }

    /// Nodes global is synced with (`global:info()`'s `synced`).
    pub async fn synced(&self) -> Result<Vec<Atom>, GlobalError> {
        let r = self
            .call(Term::atom("get_synced"), Some(Duration::from_secs(5)))
            .await?;
        Ok(terms::atoms_of(&r).unwrap_or_default())
    }

    /// A gen_server call to the server from a short-lived process.
    async fn call(&self, req: Term, timeout: Option<Duration>) -> Result<Term, GlobalError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let gns = self.gns;
        self.node.spawn(move |mut p| async move {
            let _ = tx.send(p.call(Dest::Pid(gns), req, timeout).await);
            Term::atom("normal")
        });
        match rx.await {
            Ok(r) => Ok(r?),
            Err(_) => Err(CallError::Down(Term::atom("noproc")).into()),
        }
    }
}
