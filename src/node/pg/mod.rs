//! pg scopes: process groups replicated with OTP's own `pg` protocol (`lib/kernel/src/pg.erl`),
//! so a stock BEAM node that ran `pg:start(Scope)` shares groups with a beamq node with nothing
//! installed. The cluster's route table rides on the scope `beamq_route` (DESIGN.md §5).
//!
//! ```no_run
//! # use beamq::node::{Node, pg::Scope};
//! # use beamq::dist::etf::{Atom, Term};
//! # async fn f(node: Node, broker: beamq::dist::etf::Pid) -> Result<(), beamq::node::pg::PgError> {
//! let scope = Scope::start(&node, Atom::new("beamq_route"))?;
//! let mut sub = scope.subscribe();             // snapshot + every later change
//! scope.join(Term::binary(b"t/#"), &[broker]).await?;
//! let members = scope.get_members(&Term::binary(b"t/#"));
//! # Ok(()) }
//! ```
//!
//! The scope is a registered process speaking pg's messages ([`state`]); the table it maintains
//! is readable from anywhere without a round trip, as pg's ETS table is.
mod digest;
mod functions;
mod groups;
mod key;
pub(crate) mod process;
mod remote;
pub mod state;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};

use tokio::sync::{mpsc, oneshot};

pub use groups::{Groups, Membership, PidList};
pub use key::TermKey;

use super::runtime::{Node, SpawnOpts};
use super::table::RegisterError;
use crate::dist::etf::{Atom, Pid, Term};

/// The scope the cluster's routes live in (DESIGN.md §5).
pub const ROUTE_SCOPE: &str = "beamq_route";

/// Why a pg operation failed.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    /// `pg:join/3` and `pg:leave/3` accept local pids only (`{nolocal, Pid}` on BEAM).
    #[error("{0:?} is not a local process")]
    NotLocal(Pid),
    /// The scope process is gone.
    #[error("the pg scope is not running")]
    NoScope,
    /// The scope name is taken.
    #[error(transparent)]
    Register(#[from] RegisterError),
}

/// A request from Rust code to the scope process (the `handle_call` clauses of pg.erl that
/// local processes use), answered once applied and broadcast.
pub(crate) enum Command {
    Join {
        group: Term,
        pids: Vec<Pid>,
        reply: oneshot::Sender<()>,
    },
    Leave {
        group: Term,
        pids: Vec<Pid>,
        reply: oneshot::Sender<bool>,
    },
    /// Several `Join`s of the same pids in one request (one reply, one wake-up).
    JoinGroups {
        groups: Vec<Term>,
        pids: Vec<Pid>,
        reply: oneshot::Sender<()>,
    },
}

/// A handle on a running scope; cheap to clone.
#[derive(Clone)]
pub struct Scope {
    name: Atom,
    pid: Pid,
    node: Node,
    groups: Arc<Mutex<Groups>>,
    commands: mpsc::UnboundedSender<Command>,
}

impl std::fmt::Debug for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Scope({}, {:?})", self.name.as_str(), self.pid)
    }
}

/// A subscription to a scope's changes: the members when it was taken, then every change.
#[derive(Debug)]
pub struct Subscription {
    /// Every group and its members at subscription time.
    pub snapshot: Vec<(Term, Vec<Pid>)>,
    /// Changes after the snapshot, in the order the scope applied them.
    pub events: mpsc::UnboundedReceiver<Membership>,
}

/// Running scopes by (node instance, scope pid), for [`Scope::lookup`].
type Registry = HashMap<(usize, Pid), Scope>;
static SCOPES: LazyLock<Mutex<Registry>> = LazyLock::new(|| Mutex::new(HashMap::new()));

fn registry() -> MutexGuard<'static, Registry> {
    SCOPES.lock().unwrap_or_else(|p| p.into_inner())
}

fn node_id(node: &Node) -> usize {
    Arc::as_ptr(&node.inner) as usize
}

/// Removes a scope from the registry when its process ends, however it ends.
pub(crate) struct Registered {
    key: (usize, Pid),
}

impl Drop for Registered {
    fn drop(&mut self) {
        registry().remove(&self.key);
    }
}

impl Scope {
    /// `pg:start(Name)`: registers the scope process `name` on `node`, monitors nodes and
    /// discovers the scope on every visible node. Also makes pg's API (`pg:join/3`,
    /// `pg:get_members/2`, ...) callable by `rpc`/`erpc` from peers.
    pub fn start(node: &Node, name: Atom) -> Result<Scope, RegisterError> {
        let groups = Arc::new(Mutex::new(Groups::default()));
        let (tx, rx) = mpsc::unbounded_channel();
        let (ready_tx, ready_rx) = oneshot::channel::<Registered>();
        let opts = SpawnOpts {
            name: Some(name),
            ..Default::default()
        };
        let g = groups.clone();
        let pid = node.spawn_opt(opts, move |p| async move {
            let guard = ready_rx.await.ok();
            process::run(p, name, g, rx, guard).await
        })?;
        let scope = Scope {
            name,
            pid,
            node: node.clone(),
            groups,
            commands: tx,
        };
        let key = (node_id(node), pid);
        registry().insert(key, scope.clone());
        let _ = ready_tx.send(Registered { key });
        functions::register(node.functions());
        Ok(scope)
    }

    /// The scope registered as `name` on `node`, if it is a pg scope started here.
    pub fn lookup(node: &Node, name: Atom) -> Option<Scope> {
        let pid = node.whereis(name)?;
        registry().get(&(node_id(node), pid)).cloned()
    }

    /// The scope's name.
    pub fn name(&self) -> Atom {
        self.name
    }

    /// The scope process.
    pub fn pid(&self) -> Pid {
        self.pid
    }

    fn table(&self) -> MutexGuard<'_, Groups> {
        self.groups.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn check_local(&self, pids: &[Pid]) -> Result<(), PgError> {
        match pids.iter().find(|p| !self.node.is_local(p)) {
            Some(p) => Err(PgError::NotLocal(*p)),
            None => Ok(()),
        }
    }

    /// `pg:join(Scope, Group, Pids)`: local `pids` join `group` (each may join several times).
    /// Returns once peers have been told.
    pub async fn join(&self, group: Term, pids: &[Pid]) -> Result<(), PgError> {
        self.check_local(pids)?;
        let (reply, rx) = oneshot::channel();
        self.commands
            .send(Command::Join {
                group,
                pids: pids.to_vec(),
                reply,
            })
            .map_err(|_| PgError::NoScope)?;
        rx.await.map_err(|_| PgError::NoScope)
    }

    /// `pg:join(Scope, Group, Pids)` for each of `groups` in order, as one request to the scope
    /// (peers still get one `join` per group, as from pg.erl): a node whose broker takes a
    /// million subscriptions at once joins a million groups without a round trip for each.
    pub async fn join_groups(&self, groups: Vec<Term>, pids: &[Pid]) -> Result<(), PgError> {
        self.check_local(pids)?;
        let (reply, rx) = oneshot::channel();
        self.commands
            .send(Command::JoinGroups {
                groups,
                pids: pids.to_vec(),
                reply,
            })
            .map_err(|_| PgError::NoScope)?;
        rx.await.map_err(|_| PgError::NoScope)
    }

    /// `pg:leave(Scope, Group, Pids)`: false when none of `pids` was a member (`not_joined`).
    pub async fn leave(&self, group: Term, pids: &[Pid]) -> Result<bool, PgError> {
        self.check_local(pids)?;
        let (reply, rx) = oneshot::channel();
        self.commands
            .send(Command::Leave {
                group,
                pids: pids.to_vec(),
                reply,
            })
            .map_err(|_| PgError::NoScope)?;
        rx.await.map_err(|_| PgError::NoScope)
    }

    /// `pg:get_members(Scope, Group)`: every member, on any node.
    pub fn get_members(&self, group: &Term) -> Vec<Pid> {
        self.table().members(&TermKey::new(group.clone()))
    }

    /// `pg:get_local_members(Scope, Group)`.
    pub fn get_local_members(&self, group: &Term) -> Vec<Pid> {
        self.table().local_members(&TermKey::new(group.clone()))
    }

    /// `pg:which_groups(Scope)`.
    pub fn which_groups(&self) -> Vec<Term> {
        self.table().groups()
    }

    /// How many groups have members, without copying them (`ets:info(Scope, size)`).
    pub fn group_count(&self) -> usize {
        self.table().len()
    }

    /// `pg:which_local_groups(Scope)`.
    pub fn which_local_groups(&self) -> Vec<Term> {
        self.table().local_groups()
    }

    /// Every change from now on, after a consistent snapshot (`pg:monitor_scope/1`).
    pub fn subscribe(&self) -> Subscription {
        let (snapshot, events) = self.table().subscribe();
        Subscription { snapshot, events }
    }
}
