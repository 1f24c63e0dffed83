//! The local node: processes, names, links, monitors, and the built-in processes a BEAM peer
//! expects to find (`net_kernel`, `rex`, erpc's spawn service).
//!
//! # Process API (for built-ins and later layers such as `global_name_server` and pg scopes)
//!
//! A process is a tokio task with a pid of this node's creation and a [`Mailbox`] of [`Term`]s:
//!
//! ```no_run
//! # use beamq::node::{Node, Dest, MonitorTarget};
//! # use beamq::dist::etf::{Atom, Term};
//! # async fn f(node: Node) {
//! let pid = node.spawn(|mut p| async move {
//!     p.register(Atom::new("echo")).ok();
//!     p.trap_exit(true);
//!     while let Some(msg) = p.recv().await {
//!         if let Some([Term::Pid(from), body]) = msg.as_tuple_n::<2>() {
//!             p.send(*from, body.clone());
//!         }
//!     }
//!     Term::atom("normal") // the exit reason
//! });
//! # }
//! ```
//!
//! - **Receive**: [`Process::recv`], [`Process::recv_timeout`], and selective
//!   [`Process::recv_match`] (non-matching messages stay queued, in order).
//! - **Send**: [`Process::send`] to a [`Dest`]: a pid, a local name, `{Name, Node}` or an alias.
//!   Sends never block and never fail (a dead target drops the message, as on BEAM); a send to
//!   an unconnected node connects first (auto-connect). [`Node::send_from`] sends from Rust
//!   code that is not a process.
//! - **Names**: [`Process::register`], [`Node::whereis`], [`Node::registered`].
//! - **Links and exits**: [`Process::link`], [`Process::unlink`], [`Process::exit`],
//!   [`Process::trap_exit`]. A non-trapping process receiving a non-`normal` exit signal is
//!   stopped at its next await point; a trapping one gets `{'EXIT', From, Reason}`.
//! - **Monitors**: [`Process::monitor`] by pid or `{Name, Node}` (`{'DOWN', Ref, process, Obj,
//!   Reason}`; an unknown name gets `noproc` at once), [`Process::demonitor`],
//!   [`Process::monitor_node`] (`{nodedown, Node}`), [`Process::monitor_nodes`]
//!   (`{nodeup, N}`/`{nodedown, N}`). A lost connection fires everything across it with
//!   `noconnection`.
//! - **gen_server calls**: [`Process::call`] and [`Node::reply`] speak `gen.erl`'s
//!   `{'$gen_call', {Pid, Tag}, Req}` / `{Tag, Reply}`.
//! - **Calling other nodes**: [`Process::rpc_call`] / [`Node::rpc_call`] (`rpc:call/5` through
//!   the peer's `rex`); [`Node::connect`], [`Node::disconnect`], [`Node::nodes`].
//! - **Functions for rpc/erpc**: [`Node::functions`] → [`Functions::register_sync`] /
//!   [`Functions::register`] add `Module:Function/Arity` callable by `rpc:call`/`erpc:call`/
//!   `spawn/4`. A function runs in its own worker process; [`CallContext::process`] gives it
//!   that process's mailbox when it needs to receive.
//! - **Starting a networked node**: [`boot::start`] with a [`boot::NodeConfig`] (what
//!   `beamq start` does): dist listener in ekka or epmd mode, `net_kernel`, `rex`, `user`.
//!
//! Mailboxes are accounted (see [`mailbox`]): a message beyond the cap is dropped and logged.
pub mod bench;
pub mod bifs;
pub mod boot;
pub mod config;
pub mod erpc;
pub mod functions;
pub mod global;
pub mod group_leader;
mod links;
pub mod mailbox;
mod monitors;
pub mod net_kernel;
mod nodes;
pub mod peers;
pub mod pg;
pub mod process;
pub mod rex;
pub mod runtime;
mod session;
pub mod signal;
pub mod table;

pub use functions::{CallContext, Exception, Functions};
pub use mailbox::Mailbox;
pub use monitors::down_message;
pub use peers::{Connector, PeerQueue};
pub use process::{CallError, Dest, Process};
pub use runtime::{Node, SpawnOpts};
pub use signal::{MonitorTarget, Outgoing, PidOrName, RemoteSignal};

#[cfg(doc)]
use crate::dist::etf::Term;
