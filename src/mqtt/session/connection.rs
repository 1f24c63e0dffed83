//! One client connection's protocol state: the sans-IO driver surface ([`Connection`]), the
//! actions it asks of the broker ([`Action`]), and closing. Packet handling lives in
//! `connect.rs` (CONNECT/CONNACK), `inbound.rs` (what the client sends) and `outbound.rs`
//! (what the broker delivers).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use crate::mqtt::codec::{
    CodecError, Connect, Disconnect, LastWill, MqttString, Packet, ProtocolVersion, ReasonCode,
    SubscriptionOptions,
};
use crate::router::Subscription;

use super::config::SessionConfig;
use super::hooks::{AuthHook, ClientInfo};
use super::message::Message;
use super::state::{SessionExpiry, SessionState};

/// What the connection asks the broker to do. Drained with [`Connection::poll_action`].
#[derive(Debug, Clone)]
pub enum Action {
    /// CONNECT accepted: look up the session of `client.client_id`, take over any connection
    /// holding it ([`Connection::takeover`]), then call [`Connection::attach_session`] with it
    /// (or `None`). With `clean_start` the old session is discarded instead of attached.
    OpenSession {
        /// The authenticated client.
        client: ClientInfo,
        /// Clean Start / Clean Session.
        clean_start: bool,
    },
    /// Add a route for this session; with `send_retained`, deliver the retained messages
    /// matching `subscription.filter` through [`Connection::deliver`] with `from_retained`.
    Subscribe {
        /// The filter exactly as the client wrote it (the key deliveries must carry).
        filter: MqttString,
        /// Parsed share group and routing filter.
        subscription: Subscription,
        /// Options with the granted QoS.
        options: SubscriptionOptions,
        /// Whether retained messages are to be sent now (Retain Handling).
        send_retained: bool,
    },
    /// Remove this session's route for `filter`.
    Unsubscribe {
        /// The filter as the client wrote it.
        filter: MqttString,
        /// Parsed share group and routing filter.
        subscription: Subscription,
    },
    /// Route a message to the subscribers of its topic.
    Publish(Arc<Message>),
    /// Store the message as the retained one for its topic (empty payload: delete it). Always
    /// followed by the matching [`Action::Publish`].
    Retain(Arc<Message>),
    /// Publish the Will after `delay` unless a connection resumes this session first
    /// (MQTT 5.0 §3.1.3.2.2); treat it like a PUBLISH, retained if its RETAIN flag is set.
    Will {
        /// The Will message.
        message: Arc<Message>,
        /// Will Delay Interval, already capped by the session expiry.
        delay: Duration,
    },
    /// The connection is over: close the socket once the output is flushed. `session` is the
    /// state to keep for `expiry` (or to discard, unsubscribing its routes, if `Now`).
    Closed {
        /// Why.
        reason: ReasonCode,
        /// The session, if one was attached.
        session: Option<SessionState>,
        /// How long to keep it.
        expiry: SessionExpiry,
    },
}

/// Life cycle of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    /// Waiting for CONNECT until the deadline.
    AwaitConnect,
    /// CONNECT accepted; waiting for the broker's `attach_session`.
    AwaitSession,
    /// CONNACK sent.
    Connected,
    /// Done; everything but output draining is ignored.
    Closed,
}

/// Limits the client announced in CONNECT (MQTT 5.0 §3.1.2.11).
#[derive(Debug, Clone, Copy)]
pub(super) struct ClientLimits {
    pub receive_maximum: u16,
    pub maximum_packet_size: u32,
    pub topic_alias_maximum: u16,
}

/// The sans-IO MQTT connection (see the module documentation for the driver loop).
#[derive(Debug)]
pub struct Connection {
    pub(super) config: Arc<SessionConfig>,
    pub(super) peer: Option<SocketAddr>,
    pub(super) phase: Phase,
    pub(super) version: ProtocolVersion,
    pub(super) client: Option<ClientInfo>,
    pub(super) connect: Option<Box<Connect>>,
    pub(super) session: Option<SessionState>,
    pub(super) will: Option<LastWill>,
    pub(super) clean_start: bool,
    pub(super) session_expiry: SessionExpiry,
    pub(super) requested_expiry: u32,
    pub(super) keep_alive: Option<Duration>,
    pub(super) deadline: Option<Instant>,
    pub(super) limits: ClientLimits,
    pub(super) inbound_aliases: HashMap<u16, MqttString>,
    pub(super) outbound_aliases: HashMap<MqttString, u16>,
    pub(super) out: BytesMut,
    pub(super) actions: VecDeque<Action>,
    pub(super) auth: Arc<dyn AuthHook>,
    pub(super) early: Vec<Packet>,
}

/// Packets a client may pipeline behind CONNECT before CONNACK; they are replayed once the
/// session is attached. More than this closes the connection (no unbounded buffering).
const MAX_EARLY_PACKETS: usize = 64;

impl std::fmt::Debug for dyn AuthHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuthHook")
    }
}

impl Connection {
    /// A new connection accepted at `now`; it must send CONNECT within the connect timeout.
    /// `auth` authenticates CONNECT and authorizes every PUBLISH and SUBSCRIBE.
    pub fn new(
        config: Arc<SessionConfig>,
        auth: Arc<dyn AuthHook>,
        peer: Option<SocketAddr>,
        now: Instant,
    ) -> Connection {
        let deadline = Some(now + config.connect_timeout);
        Connection {
            config,
            peer,
            phase: Phase::AwaitConnect,
            version: ProtocolVersion::V3_1_1,
            client: None,
            connect: None,
            session: None,
            will: None,
            clean_start: true,
            session_expiry: SessionExpiry::Now,
            requested_expiry: 0,
            keep_alive: None,
            deadline,
            limits: ClientLimits {
                receive_maximum: u16::MAX,
                maximum_packet_size: u32::MAX,
                topic_alias_maximum: 0,
            },
            inbound_aliases: HashMap::new(),
            outbound_aliases: HashMap::new(),
            out: BytesMut::new(),
            actions: VecDeque::new(),
            auth,
            early: Vec::new(),
        }
    }

    /// Protocol level (3.1.1 until CONNECT is read): what the driver decodes with.
    pub fn protocol_version(&self) -> ProtocolVersion {
        self.version
    }

    /// Largest frame the driver may accept (pass to `codec::check`).
    pub fn max_incoming_packet_size(&self) -> usize {
        self.config.max_packet_size as usize
    }

    /// The client, once CONNECT is accepted.
    pub fn client(&self) -> Option<&ClientInfo> {
        self.client.as_ref()
    }

    /// The attached session (while connected).
    pub fn session(&self) -> Option<&SessionState> {
        self.session.as_ref()
    }

    /// True after CONNACK success, until closed.
    pub fn is_connected(&self) -> bool {
        self.phase == Phase::Connected
    }

    /// True once closed: flush the output, then drop the socket.
    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// True while waiting for `attach_session` (packets received meanwhile are held, up to a
    /// bound, and handled after CONNACK).
    pub fn is_awaiting_session(&self) -> bool {
        self.phase == Phase::AwaitSession
    }

    /// Next action for the broker.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// Bytes to write to the socket, if any. Take it when the previous write has completed:
    /// what is not taken counts against `max_output_buffer` (slow reader backpressure). Taking
    /// output also refills the inflight window from the queue.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Bytes> {
        if self.out.is_empty() && self.phase == Phase::Connected {
            self.fill_window(now);
        }
        if self.out.is_empty() {
            return None;
        }
        Some(self.out.split().freeze())
    }

    /// Frees what the last burst left allocated and empty: the action queue's capacity (a
    /// few hundred bytes once it held an action) and the output buffer, which after
    /// [`Connection::poll_transmit`] still holds the unwritten rest of its allocation. The
    /// driver calls this before waiting on a connection that has gone quiet, so an idle
    /// connection keeps neither.
    pub fn shrink_idle(&mut self) {
        if self.actions.is_empty() && self.actions.capacity() > 0 {
            self.actions = VecDeque::new();
        }
        if self.out.is_empty() && self.out.capacity() > 0 {
            self.out = BytesMut::new();
        }
    }

    /// Bytes encoded and not yet taken.
    pub fn pending_output(&self) -> usize {
        self.out.len()
    }

    /// When [`Connection::handle_timeout`] must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.phase == Phase::Closed {
            return None;
        }
        self.deadline
    }

    /// Time has passed: enforces the connect timeout and keep alive (1.5 × the interval,
    /// MQTT 5.0 §3.1.2.10).
    pub fn handle_timeout(&mut self, now: Instant) {
        let Some(deadline) = self.deadline else {
            return;
        };
        if now < deadline {
            return;
        }
        match self.phase {
            Phase::AwaitConnect => {
                tracing::info!(peer = ?self.peer, "no CONNECT before the connect timeout");
                self.close(ReasonCode::MaximumConnectTime, false, false, now);
            }
            Phase::Connected => {
                tracing::info!(client = ?self.client_id(), "keep alive timeout");
                self.close(ReasonCode::KeepAliveTimeout, true, true, now);
            }
            Phase::AwaitSession | Phase::Closed => {}
        }
    }

    /// A packet from the client.
    pub fn handle_packet(&mut self, packet: Packet, now: Instant) {
        match self.phase {
            Phase::Closed => return,
            Phase::AwaitConnect => {
                match packet {
                    Packet::Connect(c) => self.handle_connect(c, now),
                    other => {
                        tracing::info!(peer = ?self.peer, packet = ?other.packet_type(), "first packet is not CONNECT");
                        self.close(ReasonCode::ProtocolError, false, false, now);
                    }
                }
                return;
            }
            Phase::AwaitSession => {
                if self.early.len() >= MAX_EARLY_PACKETS {
                    tracing::warn!(peer = ?self.peer, "too many packets before CONNACK");
                    self.close(ReasonCode::ProtocolError, false, true, now);
                } else {
                    self.early.push(packet);
                }
                return;
            }
            Phase::Connected => {}
        }
        self.touch(now);
        match packet {
            Packet::Publish(p) => self.handle_publish(p, now),
            Packet::PubAck(a) => self.handle_puback(a, now),
            Packet::PubRec(a) => self.handle_pubrec(a, now),
            Packet::PubRel(a) => self.handle_pubrel(a),
            Packet::PubComp(a) => self.handle_pubcomp(a, now),
            Packet::Subscribe(s) => self.handle_subscribe(s, now),
            Packet::Unsubscribe(u) => self.handle_unsubscribe(u),
            Packet::PingReq => {
                self.send(Packet::PingResp);
            }
            Packet::Disconnect(d) => self.handle_disconnect(d, now),
            Packet::Auth(_) => {
                // No authentication method was agreed in CONNECT (we accept none), so any
                // AUTH is a protocol error (MQTT 5.0 §4.12).
                self.close(ReasonCode::ProtocolError, true, true, now);
            }
            Packet::Connect(_) => {
                tracing::info!(client = ?self.client_id(), "second CONNECT");
                self.close(ReasonCode::ProtocolError, true, true, now);
            }
            Packet::ConnAck(_) | Packet::SubAck(_) | Packet::UnsubAck(_) | Packet::PingResp => {
                tracing::info!(client = ?self.client_id(), "server-only packet from a client");
                self.close(ReasonCode::ProtocolError, true, true, now);
            }
        }
    }

    /// The driver could not decode the client's bytes: answer with the mapped reason code and
    /// close (MQTT 5.0 §4.13). Before CONNECT only an unsupported protocol level is answered
    /// (with a 3.1.1-format CONNACK, return code 1, which every version understands).
    pub fn handle_decode_error(&mut self, err: &CodecError, now: Instant) {
        tracing::info!(peer = ?self.peer, client = ?self.client_id(), error = %err, "bad packet");
        match self.phase {
            Phase::AwaitConnect => {
                if let CodecError::UnsupportedProtocolVersion(_) = err {
                    self.out.extend_from_slice(&[0x20, 0x02, 0x00, 0x01]);
                }
                self.close(err.reason_code(), false, false, now);
            }
            _ => self.close(err.reason_code(), true, true, now),
        }
    }

    /// The peer closed the socket or it failed: an abnormal end, so the Will fires.
    pub fn handle_eof(&mut self, now: Instant) {
        if self.phase != Phase::Closed {
            self.close(ReasonCode::UnspecifiedError, false, true, now);
        }
    }

    /// Another connection took this client id (MQTT 5.0 §3.1.4): DISCONNECT 0x8E, Will as for
    /// any abnormal close, and the session handed back in [`Action::Closed`].
    pub fn takeover(&mut self, now: Instant) {
        self.close(ReasonCode::SessionTakenOver, true, true, now);
    }

    /// Broker-initiated close (shutdown, administrative kick).
    pub fn shutdown(&mut self, reason: ReasonCode, now: Instant) {
        self.close(reason, true, true, now);
    }

    pub(super) fn client_id(&self) -> Option<&str> {
        self.client.as_ref().map(|c| c.client_id.as_str())
    }

    /// Any packet from the client restarts the keep-alive timer.
    pub(super) fn touch(&mut self, now: Instant) {
        if let Some(ka) = self.keep_alive {
            self.deadline = Some(now + ka + ka / 2);
        }
    }

    /// Encodes a packet for the client, shrinking or dropping it if it exceeds the client's
    /// Maximum Packet Size (MQTT 5.0 §3.1.2.11.4: Reason String and User Properties go first).
    pub(super) fn send(&mut self, mut packet: Packet) -> bool {
        let limit = self.limits.maximum_packet_size as usize;
        // No limit announced: every encodable packet fits, skip the extra length pass.
        let checked = if limit >= crate::mqtt::codec::wire::VARINT_MAX as usize {
            Ok(0)
        } else {
            packet.encoded_len(self.version)
        };
        match checked {
            Ok(n) if n > limit => {
                strip_optional(&mut packet);
                if packet.encoded_len(self.version).map_or(true, |n| n > limit) {
                    tracing::debug!(client = ?self.client_id(), "packet over the client's maximum size dropped");
                    return false;
                }
            }
            Ok(_) => {}
            Err(e) => {
                tracing::error!(client = ?self.client_id(), error = %e, "cannot encode packet");
                return false;
            }
        }
        match packet.write(self.version, &mut self.out) {
            Ok(_) => true,
            Err(e) => {
                tracing::error!(client = ?self.client_id(), error = %e, "cannot encode packet");
                false
            }
        }
    }

    /// Ends the connection: optional DISCONNECT (v5, after CONNACK), the Will unless the client
    /// disconnected normally, and [`Action::Closed`] with the session.
    pub(super) fn close(
        &mut self,
        reason: ReasonCode,
        send_disconnect: bool,
        fire_will: bool,
        now: Instant,
    ) {
        if self.phase == Phase::Closed {
            return;
        }
        let was_connected = self.phase == Phase::Connected;
        if send_disconnect && was_connected && self.version.is_v5() {
            let d = Disconnect::new(reason);
            if d.reason
                .allowed_in(crate::mqtt::codec::ReasonContext::Disconnect)
            {
                self.send(Packet::Disconnect(d));
            }
        }
        let will = self.will.take();
        if fire_will && was_connected {
            if let (Some(w), Some(c)) = (will, &self.client) {
                let delay_secs = w.properties.will_delay_interval.unwrap_or(0);
                let mut delay = Duration::from_secs(u64::from(delay_secs));
                match self.session_expiry {
                    SessionExpiry::Now => delay = Duration::ZERO,
                    SessionExpiry::After(d) => delay = delay.min(d),
                    SessionExpiry::Never => {}
                }
                // Its Message Expiry Interval starts when it is published, after the delay.
                let message = Message::from_will(w, c.client_id.clone(), now + delay);
                self.actions.push_back(Action::Will {
                    message: Arc::new(message),
                    delay,
                });
            }
        }
        self.phase = Phase::Closed;
        self.deadline = None;
        self.actions.push_back(Action::Closed {
            reason,
            session: self.session.take(),
            expiry: self.session_expiry,
        });
    }
}

fn strip_optional(packet: &mut Packet) {
    let props = match packet {
        Packet::ConnAck(p) => &mut p.properties,
        Packet::PubAck(p) | Packet::PubRec(p) | Packet::PubRel(p) | Packet::PubComp(p) => {
            &mut p.properties
        }
        Packet::SubAck(p) => &mut p.properties,
        Packet::UnsubAck(p) => &mut p.properties,
        Packet::Disconnect(p) => &mut p.properties,
        Packet::Auth(p) => &mut p.properties,
        _ => return,
    };
    props.reason_string = None;
    props.user_properties.clear();
}
