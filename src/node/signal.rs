//! Signals a local process table sends to processes on other nodes.
//!
//! The table never touches a socket: every operation that concerns a remote process returns
//! [`RemoteSignal`]s addressed to a node, and the runtime hands them to that node's connection
//! in order (BEAM guarantees signal order per pair of processes, and one connection per node
//! with one writer keeps it). `dist_out.rs` maps them onto the wire's control messages.
use crate::dist::etf::{Atom, Pid, Reference, Term};

/// What a monitor watches, as the monitor request named it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MonitorTarget {
    /// `erlang:monitor(process, Pid)`.
    Pid(Pid),
    /// `erlang:monitor(process, {Name, Node})`.
    Name(Atom, Atom),
}

impl MonitorTarget {
    /// The node the watched process lives on.
    pub fn node(&self) -> Atom {
        match self {
            MonitorTarget::Pid(p) => p.node,
            MonitorTarget::Name(_, n) => *n,
        }
    }
}

/// The watched side's identity in a `MONITOR_P`/`DEMONITOR_P`/`MONITOR_P_EXIT` control message:
/// a pid, or the registered name when the monitor was made by name (OTP sends the atom, see
/// reference/otp25-traces.md §0.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PidOrName {
    /// A process identifier.
    Pid(Pid),
    /// A registered name on the node the message concerns.
    Name(Atom),
}

/// One signal for a process on another node.
#[derive(Debug, Clone, PartialEq)]
pub enum RemoteSignal {
    /// A message to a pid (`SEND_SENDER` when `from` is known).
    Send {
        /// The sending process, if any.
        from: Option<Pid>,
        /// The receiver.
        to: Pid,
        /// The message.
        msg: Term,
    },
    /// A message to a registered name (`REG_SEND`).
    RegSend {
        /// The sending process.
        from: Pid,
        /// The registered name on the peer.
        name: Atom,
        /// The message.
        msg: Term,
    },
    /// A message to an alias (`ALIAS_SEND`).
    AliasSend {
        /// The sending process.
        from: Pid,
        /// The alias reference.
        alias: Reference,
        /// The message.
        msg: Term,
    },
    /// `LINK`.
    Link {
        /// The linking process.
        from: Pid,
        /// The linked process.
        to: Pid,
    },
    /// `UNLINK_ID`.
    Unlink {
        /// Unlink operation id.
        id: u64,
        /// The unlinking process.
        from: Pid,
        /// The other end.
        to: Pid,
    },
    /// `UNLINK_ID_ACK`.
    UnlinkAck {
        /// The id of the `UNLINK_ID` acknowledged.
        id: u64,
        /// The acknowledging process.
        from: Pid,
        /// The process that unlinked.
        to: Pid,
    },
    /// `EXIT`: a linked process exited.
    LinkExit {
        /// The exiting process.
        from: Pid,
        /// The linked process on the peer.
        to: Pid,
        /// Exit reason.
        reason: Term,
    },
    /// `EXIT2`: `erlang:exit(To, Reason)`.
    Exit2 {
        /// The signalling process.
        from: Pid,
        /// The target.
        to: Pid,
        /// Exit reason.
        reason: Term,
    },
    /// `MONITOR_P`.
    Monitor {
        /// The watching process.
        from: Pid,
        /// The watched pid or name on the peer.
        to: PidOrName,
        /// Monitor reference.
        reference: Reference,
    },
    /// `DEMONITOR_P`.
    Demonitor {
        /// The watching process.
        from: Pid,
        /// The watched pid or name on the peer.
        to: PidOrName,
        /// Monitor reference.
        reference: Reference,
    },
    /// `MONITOR_P_EXIT`: a watched local process exited, or never existed.
    MonitorExit {
        /// The watched process (pid or the name it was monitored by).
        from: PidOrName,
        /// The watcher on the peer.
        to: Pid,
        /// Monitor reference.
        reference: Reference,
        /// Exit reason.
        reason: Term,
    },
    /// `SPAWN_REPLY`.
    SpawnReply {
        /// The request id from `SPAWN_REQUEST`.
        req_id: Reference,
        /// The requesting process.
        to: Pid,
        /// Bit 1: link made; bit 2: monitor made.
        flags: u64,
        /// The new pid, or an error atom.
        result: Result<Pid, Atom>,
    },
}

/// A [`RemoteSignal`] with the node it must go to.
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    /// The destination node.
    pub node: Atom,
    /// The signal.
    pub signal: RemoteSignal,
}
