//! One peer connection seen from the node: frames in become table operations, signals out
//! become frames. The reader decodes with [`Inbound`] (atom cache, fragments) and applies each
//! control message; the writer drains the peer's [`PeerQueue`] through [`Outbound`].
//!
//! A malformed frame or control message closes this one connection with a log line; an
//! operation we do not know is logged and ignored, as `erts/emulator/beam/dist.c`
//! `erts_net_message` does.
use bytes::{Buf, Bytes, BytesMut};
use tokio::sync::mpsc;

use super::erpc::{serve_spawn_request, SpawnRequest};
use super::peers::PeerQueue;
use super::runtime::Node;
use super::signal::{PidOrName, RemoteSignal};
use crate::dist::connection::{Connection, FrameSender};
use crate::dist::control::{ControlMessage, ProcRef, SpawnResult};
use crate::dist::etf::{Atom, Pid, Term};
use crate::dist::flags;
use crate::dist::message::{DistMessage, Inbound, Outbound, OutboundConfig};

/// Why a connection could not be attached to the node.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The peer's name is not a valid atom.
    #[error("peer name {0:?} is not a valid atom")]
    BadPeerName(String),
}

/// Attaches an established connection: registers the peer (nodeup) and starts the reader,
/// writer and down-watcher tasks. Returns once the peer is registered.
pub fn attach(node: &Node, conn: Connection) -> Result<Atom, SessionError> {
    let Connection {
        peer,
        incoming,
        sender,
        mut down,
    } = conn;
    let Ok(name) = Atom::try_new(&peer.name) else {
        sender.disconnect();
        return Err(SessionError::BadPeerName(peer.name));
    };
    let hidden = !peer.flags.is_published();
    let out_cfg = OutboundConfig {
        atom_cache: peer.flags.contains(flags::DIST_HDR_ATOM_CACHE),
        fragments: peer.flags.contains(flags::FRAGMENTS),
        ..OutboundConfig::default()
    };
    let unlink_id = peer.flags.contains(flags::UNLINK_ID);
    let (id, queue) = node.peer_up(name, hidden);
    tokio::spawn(write_loop(
        queue,
        sender.clone(),
        Outbound::new(out_cfg),
        unlink_id,
    ));
    tokio::spawn(read_loop(node.clone(), name, incoming, sender));
    let node = node.clone();
    tokio::spawn(async move {
        let reason = down.wait().await;
        tracing::info!(peer = name.as_str(), %reason, "connection down");
        node.peer_down(name, id);
    });
    Ok(name)
}

async fn read_loop(
    node: Node,
    peer: Atom,
    mut incoming: mpsc::Receiver<Bytes>,
    sender: FrameSender,
) {
    let mut inbound = Inbound::default();
    while let Some(frame) = incoming.recv().await {
        match inbound.receive(frame) {
            Ok(Some(msg)) => apply(&node, peer, msg),
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(peer = peer.as_str(), error = %e, "malformed message; closing connection");
                sender.disconnect();
                return;
            }
        }
    }
}

async fn write_loop(mut queue: PeerQueue, sender: FrameSender, mut out: Outbound, unlink_id: bool) {
    let mut buf = BytesMut::with_capacity(64 * 1024);
    while let Some(signal) = queue.recv().await {
        // One message at a time: `Outbound::encode` cuts a large message into fragments by
        // splitting the buffer, which would copy every earlier message still in it.
        out.encode(&to_wire(signal, unlink_id), &mut buf);
        let mut frames = buf.split().freeze();
        while frames.len() >= 4 {
            let len = frames.get_u32() as usize;
            if len > frames.len() {
                break;
            }
            let frame = frames.split_to(len);
            if sender.send(frame).await.is_err() {
                return;
            }
        }
        if buf.capacity() < 4096 {
            buf = BytesMut::with_capacity(64 * 1024);
        }
    }
    // The runtime dropped this connection (replaced or down): make sure the socket closes.
    sender.disconnect();
}

/// A pid that could be ours: same node name. Stale creations are dropped by the table.
fn for_us(node: &Node, pid: &Pid) -> bool {
    pid.node == node.name()
}

impl Node {
    /// Applies one message received from `peer` as its connection's reader does (for other
    /// transports and for tests that play a peer).
    pub fn receive_dist(&self, peer: Atom, msg: DistMessage) {
        apply(self, peer, msg);
    }
}

/// Applies one received message to the node.
fn apply(node: &Node, peer: Atom, msg: DistMessage) {
    let DistMessage { control, payload } = msg;
    let payload = payload.unwrap_or(Term::Nil);
    match control {
        ControlMessage::Send { to } | ControlMessage::SendTt { to, .. } => {
            deliver(node, &to, payload)
        }
        ControlMessage::SendSender { to, .. } | ControlMessage::SendSenderTt { to, .. } => {
            deliver(node, &to, payload)
        }
        ControlMessage::RegSend { to_name, .. } | ControlMessage::RegSendTt { to_name, .. } => {
            let _ = node.table().deliver_named(to_name, payload);
        }
        ControlMessage::AliasSend { alias, .. } | ControlMessage::AliasSendTt { alias, .. } => {
            let _ = node.table().deliver_alias(&alias, payload);
        }
        ControlMessage::Link { from, to } => {
            let out = node.table().remote_link(&from, &to);
            node.route_all(out);
        }
        ControlMessage::Unlink { from, to } => {
            node.table().remote_unlink(0, &from, &to);
        }
        ControlMessage::UnlinkId { id, from, to } => {
            let out = node.table().remote_unlink(id, &from, &to);
            node.route_all(out);
        }
        ControlMessage::UnlinkIdAck { .. } | ControlMessage::NodeLink => {}
        ControlMessage::Exit { from, to, reason }
        | ControlMessage::ExitTt {
            from, to, reason, ..
        } => exit(node, from, to, reason, true),
        ControlMessage::PayloadExit { from, to }
        | ControlMessage::PayloadExitTt { from, to, .. } => exit(node, from, to, payload, true),
        ControlMessage::Exit2 { from, to, reason }
        | ControlMessage::Exit2Tt {
            from, to, reason, ..
        } => exit(node, from, to, reason, false),
        ControlMessage::PayloadExit2 { from, to }
        | ControlMessage::PayloadExit2Tt { from, to, .. } => exit(node, from, to, payload, false),
        ControlMessage::MonitorP {
            from,
            to,
            reference,
        } => {
            let target = match to {
                ProcRef::Pid(p) => PidOrName::Pid(p),
                ProcRef::Name(n) => PidOrName::Name(n),
            };
            let out = node.table().remote_monitor(&from, target, reference);
            node.route_all(out);
        }
        ControlMessage::DemonitorP {
            from, reference, ..
        } => {
            node.table().remote_demonitor(&from, &reference);
        }
        ControlMessage::MonitorPExit {
            to,
            reference,
            reason,
            ..
        } => {
            node.table().remote_monitor_exit(&to, &reference, reason);
        }
        ControlMessage::PayloadMonitorPExit { to, reference, .. } => {
            node.table().remote_monitor_exit(&to, &reference, payload);
        }
        ControlMessage::SpawnRequest {
            req_id,
            from,
            group_leader,
            mfa,
            opts,
        }
        | ControlMessage::SpawnRequestTt {
            req_id,
            from,
            group_leader,
            mfa,
            opts,
            ..
        } => {
            serve_spawn_request(
                node,
                SpawnRequest {
                    req_id,
                    from,
                    group_leader,
                    module: mfa.0,
                    function: mfa.1,
                    arity: u64::from(mfa.2),
                    opts,
                    args: payload,
                },
            );
        }
        ControlMessage::SpawnReply { .. } | ControlMessage::SpawnReplyTt { .. } => {
            tracing::debug!(
                peer = peer.as_str(),
                "SPAWN_REPLY for a request we did not make; ignored"
            );
        }
        ControlMessage::GroupLeader { .. } => {}
        ControlMessage::Unknown { op, .. } => {
            tracing::warn!(peer = peer.as_str(), op, "unknown control message ignored");
        }
    }
}

fn deliver(node: &Node, to: &Pid, msg: Term) {
    if for_us(node, to) && node.is_local(to) {
        let _ = node.table().deliver(to, msg);
    }
}

fn exit(node: &Node, from: Pid, to: Pid, reason: Term, linked: bool) {
    if for_us(node, &to) {
        node.table().exit_signal(&from, &to, reason, linked);
    }
}

fn proc_ref(p: PidOrName) -> ProcRef {
    match p {
        PidOrName::Pid(p) => ProcRef::Pid(p),
        PidOrName::Name(n) => ProcRef::Name(n),
    }
}

/// The wire form of a signal (OTP 25 sends every exit reason as a payload and every send to a
/// pid as SEND_SENDER: reference/otp25-traces.md §0.1).
fn to_wire(s: RemoteSignal, unlink_id: bool) -> DistMessage {
    use ControlMessage as C;
    match s {
        RemoteSignal::Send {
            from: Some(from),
            to,
            msg,
        } => DistMessage::with_payload(C::SendSender { from, to }, msg),
        RemoteSignal::Send {
            from: None,
            to,
            msg,
        } => DistMessage::with_payload(C::Send { to }, msg),
        RemoteSignal::RegSend { from, name, msg } => DistMessage::with_payload(
            C::RegSend {
                from,
                to_name: name,
            },
            msg,
        ),
        RemoteSignal::AliasSend { from, alias, msg } => {
            DistMessage::with_payload(C::AliasSend { from, alias }, msg)
        }
        RemoteSignal::Link { from, to } => DistMessage::control(C::Link { from, to }),
        RemoteSignal::Unlink { id, from, to } if unlink_id => {
            DistMessage::control(C::UnlinkId { id, from, to })
        }
        RemoteSignal::Unlink { from, to, .. } => DistMessage::control(C::Unlink { from, to }),
        RemoteSignal::UnlinkAck { id, from, to } => {
            DistMessage::control(C::UnlinkIdAck { id, from, to })
        }
        RemoteSignal::LinkExit { from, to, reason } => {
            DistMessage::with_payload(C::PayloadExit { from, to }, reason)
        }
        RemoteSignal::Exit2 { from, to, reason } => {
            DistMessage::with_payload(C::PayloadExit2 { from, to }, reason)
        }
        RemoteSignal::Monitor {
            from,
            to,
            reference,
        } => DistMessage::control(C::MonitorP {
            from,
            to: proc_ref(to),
            reference,
        }),
        RemoteSignal::Demonitor {
            from,
            to,
            reference,
        } => DistMessage::control(C::DemonitorP {
            from,
            to: proc_ref(to),
            reference,
        }),
        RemoteSignal::MonitorExit {
            from,
            to,
            reference,
            reason,
        } => DistMessage::with_payload(
            C::PayloadMonitorPExit {
                from: proc_ref(from),
                to,
                reference,
            },
            reason,
        ),
        RemoteSignal::SpawnReply {
            req_id,
            to,
            flags,
            result,
        } => DistMessage::control(C::SpawnReply {
            req_id,
            to,
            flags: flags as u32,
            result: match result {
                Ok(p) => SpawnResult::Pid(p),
                Err(a) => SpawnResult::Error(a),
            },
        }),
    }
}
