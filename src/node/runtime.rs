//! The node runtime: pid and reference allocation, spawning processes as tokio tasks, their
//! exit, and routing of signals to local processes or to peers.
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use futures_util::FutureExt;
use tokio::sync::oneshot;

use super::functions::Functions;
use super::mailbox::{mailbox, DEFAULT_MAILBOX_CAP};
use super::peers::Peers;
use super::process::Process;
use super::signal::{MonitorTarget, Outgoing, RemoteSignal};
use super::table::{RegisterError, Table};
use crate::dist::etf::{Atom, Pid, Reference, Term};

/// Process numbers stay below 2^15 and serials below 2^13, the ranges every BEAM accepts in a
/// NEW_PID_EXT (`erts/emulator/beam/erl_term.h`, `ERTS_MAX_PID_NUMBER`/`SERIAL`).
const PID_NUMBER_BITS: u32 = 15;
const PID_SERIAL_MASK: u64 = (1 << 13) - 1;

/// A handle on the local node; cheap to clone.
#[derive(Clone)]
pub struct Node {
    pub(super) inner: Arc<Inner>,
}

pub(super) struct Inner {
    pub(super) name: Atom,
    pub(super) creation: u32,
    pub(super) table: Mutex<Table>,
    pub(super) peers: Peers,
    pub(super) functions: Functions,
    next_pid: AtomicU64,
    next_ref: AtomicU64,
    ref_salt: u32,
    mailbox_cap: usize,
}

/// Options for [`Node::spawn_opt`].
#[derive(Debug, Default, Clone)]
pub struct SpawnOpts {
    /// Register the new process under this name (spawn fails if taken).
    pub name: Option<Atom>,
    /// Link the new process to this pid. A remote pid is linked on this side only: the peer
    /// asked for the link in its `SPAWN_REQUEST` and holds its own half.
    pub link: Option<Pid>,
    /// Let this (local or remote) pid monitor the new process with this reference.
    pub monitor: Option<(Pid, Reference)>,
    /// Start trapping exits before the body runs.
    pub trap_exit: bool,
}

impl Node {
    /// A node named `name` with incarnation `creation` and no processes yet.
    pub fn new(name: Atom, creation: u32) -> Node {
        Node {
            inner: Arc::new(Inner {
                name,
                creation,
                table: Mutex::new(Table::new(name)),
                peers: Peers::default(),
                functions: Functions::default(),
                next_pid: AtomicU64::new(1),
                next_ref: AtomicU64::new(1),
                ref_salt: rand::random(),
                mailbox_cap: DEFAULT_MAILBOX_CAP,
            }),
        }
    }

    /// `node()`.
    pub fn name(&self) -> Atom {
        self.inner.name
    }

    /// This incarnation's creation, carried by every local pid and reference.
    pub fn creation(&self) -> u32 {
        self.inner.creation
    }

    /// Locks the process table; never held across an await.
    pub(super) fn table(&self) -> MutexGuard<'_, Table> {
        self.inner
            .table
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// True when `pid` belongs to this node incarnation.
    pub fn is_local(&self, pid: &Pid) -> bool {
        pid.node == self.inner.name && pid.creation == self.inner.creation
    }

    /// `make_ref()`.
    pub fn make_ref(&self) -> Reference {
        let n = self.inner.next_ref.fetch_add(1, Ordering::Relaxed);
        let words = [n as u32, (n >> 32) as u32, self.inner.ref_salt];
        match Reference::new(self.inner.name, self.inner.creation, &words) {
            Some(r) => r,
            None => unreachable!("three reference words are always valid"),
        }
    }

    fn new_pid(&self) -> Pid {
        let n = self.inner.next_pid.fetch_add(1, Ordering::Relaxed);
        Pid {
            node: self.inner.name,
            id: (n & ((1 << PID_NUMBER_BITS) - 1)) as u32,
            serial: ((n >> PID_NUMBER_BITS) & PID_SERIAL_MASK) as u32,
            creation: self.inner.creation,
        }
    }

    /// Spawns a process running `body`; the future's output is its exit reason
    /// (`Term::atom("normal")` for a normal exit).
    pub fn spawn<F, Fut>(&self, body: F) -> Pid
    where
        F: FnOnce(Process) -> Fut + Send + 'static,
        Fut: Future<Output = Term> + Send + 'static,
    {
        match self.spawn_opt(SpawnOpts::default(), body) {
            Ok(pid) => pid,
            Err(_) => unreachable!("spawn without a name cannot fail"),
        }
    }

    /// Spawns with options, atomically registering, linking and monitoring before the body
    /// runs (`spawn_opt/2`, `spawn_request/5`).
    pub fn spawn_opt<F, Fut>(&self, opts: SpawnOpts, body: F) -> Result<Pid, RegisterError>
    where
        F: FnOnce(Process) -> Fut + Send + 'static,
        Fut: Future<Output = Term> + Send + 'static,
    {
        let (go, pid) = self.prepare_spawn(opts, body)?;
        let _ = go.send(());
        Ok(pid)
    }

    /// Like [`Node::spawn_opt`], but the body waits until the returned sender fires (or is
    /// dropped): lets the spawner send a `SPAWN_REPLY` before the process can send anything.
    pub(super) fn prepare_spawn<F, Fut>(
        &self,
        opts: SpawnOpts,
        body: F,
    ) -> Result<(oneshot::Sender<()>, Pid), RegisterError>
    where
        F: FnOnce(Process) -> Fut + Send + 'static,
        Fut: Future<Output = Term> + Send + 'static,
    {
        let pid = self.new_pid();
        let (mtx, mbox) = mailbox(self.inner.mailbox_cap);
        let (ktx, krx) = oneshot::channel();
        let (gtx, grx) = oneshot::channel::<()>();
        let mut out = Vec::new();
        {
            let mut t = self.table();
            t.insert(pid, mtx, ktx);
            if let Some(name) = opts.name {
                if let Err(e) = t.register(name, &pid) {
                    t.exited(&pid, &Term::atom("normal"));
                    return Err(e);
                }
            }
            if opts.trap_exit {
                t.set_trap_exit(&pid, true);
            }
            if let Some(other) = opts.link {
                if self.is_local(&other) {
                    let _ = t.link(&pid, &other);
                } else {
                    t.remote_link(&other, &pid);
                }
            }
            if let Some((watcher, r)) = opts.monitor {
                if self.is_local(&watcher) {
                    out.extend(t.monitor(&watcher, MonitorTarget::Pid(pid), r));
                } else {
                    out.extend(t.remote_monitor(&watcher, super::signal::PidOrName::Pid(pid), r));
                }
            }
        }
        self.route_all(out);
        let node = self.clone();
        tokio::spawn(async move {
            let _ = grx.await;
            let process = Process::new(pid, node.clone(), mbox);
            let run = AssertUnwindSafe(body(process)).catch_unwind();
            let reason = tokio::select! {
                r = run => r.unwrap_or_else(|_| {
                    tracing::error!(pid = ?pid, "process panicked");
                    Term::atom("panic")
                }),
                k = krx => k.unwrap_or_else(|_| Term::atom("killed")),
            };
            node.exited(&pid, reason);
        });
        Ok((gtx, pid))
    }

    /// Cleans up after a process ended with `reason`.
    fn exited(&self, pid: &Pid, reason: Term) {
        let out = self.table().exited(pid, &reason);
        self.route_all(out);
    }

    /// Sends each signal to its node's connection, in order; signals for a node with no
    /// connection are dropped unless they open one ([`Peers::route`]).
    pub(super) fn route_all(&self, out: Vec<Outgoing>) {
        for o in out {
            self.route(o);
        }
    }

    /// Sends one signal to a peer (auto-connecting for sends, links and monitors).
    pub(super) fn route(&self, o: Outgoing) {
        self.inner.peers.route(self, o);
    }

    /// Sends `msg` from local `from` to the remote `to` only if `to`'s node is connected now
    /// (`erlang:send(To, Msg, [noconnect])`); false when it is not, or when the connection's
    /// queue is full: the message was dropped, and the caller may count it.
    pub fn send_if_connected(&self, from: Pid, to: Pid, msg: Term) -> bool {
        self.inner.peers.route_if_up(Outgoing {
            node: to.node,
            signal: RemoteSignal::Send {
                from: Some(from),
                to,
                msg,
            },
        })
    }

    /// `erlang:whereis/1`.
    pub fn whereis(&self, name: Atom) -> Option<Pid> {
        self.table().whereis(name)
    }

    /// `erlang:registered/0`.
    pub fn registered(&self) -> Vec<Atom> {
        self.table().registered()
    }

    /// `erlang:register/2` for any local pid.
    pub fn register(&self, name: Atom, pid: &Pid) -> Result<(), RegisterError> {
        self.table().register(name, pid)
    }

    /// `erlang:is_process_alive/1` for a local pid.
    pub fn is_alive(&self, pid: &Pid) -> bool {
        self.table().is_alive(pid)
    }

    /// Number of live local processes.
    pub fn process_count(&self) -> usize {
        self.table().len()
    }

    /// `erlang:exit(Pid, Reason)` sent by `from` (a local pid or a pseudo-sender).
    pub fn exit(&self, from: &Pid, to: &Pid, reason: Term) {
        if self.is_local(to) {
            self.table().exit_signal(from, to, reason, false);
        } else {
            self.route(Outgoing {
                node: to.node,
                signal: super::signal::RemoteSignal::Exit2 {
                    from: *from,
                    to: *to,
                    reason,
                },
            });
        }
    }

    /// `link(To)` on behalf of local process `from`.
    pub fn link(&self, from: &Pid, to: &Pid) {
        let out = self.table().link(from, to).unwrap_or_default();
        self.route_all(out);
    }

    /// The registry of functions callable by `rpc`/`erpc` from peers.
    pub fn functions(&self) -> &Functions {
        &self.inner.functions
    }

    /// Peers currently connected: `(nodes(visible), nodes(hidden))`.
    pub fn nodes(&self) -> (Vec<Atom>, Vec<Atom>) {
        self.inner.peers.connected()
    }
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Node({})", self.inner.name.as_str())
    }
}
