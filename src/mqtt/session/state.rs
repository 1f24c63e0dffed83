//! The part of a session that outlives a network connection (MQTT 5.0 §4.1): subscriptions,
//! outbound QoS 1/2 messages not yet completed, inbound QoS 2 packet ids not yet released, and
//! the bounded queue of messages waiting for the inflight window or for the client to return.
//! The broker holds it between connections (and feeds it with [`SessionState::deliver_offline`]);
//! a [`super::Connection`] owns it while the client is connected.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::mqtt::codec::{MqttString, QoS, SubscriptionOptions};
use crate::router::Subscription;

use super::config::SessionConfig;
use super::message::{Delivery, Message};

/// One subscription of the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionEntry {
    /// Share group and routing filter, parsed from the client's filter.
    pub subscription: Subscription,
    /// Options, with the QoS actually granted.
    pub options: SubscriptionOptions,
    /// Subscription Identifier (v5), sent back with every matching message.
    pub identifier: Option<u32>,
}

/// Where an outbound QoS > 0 message is in its handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InflightState {
    /// PUBLISH sent; waiting for PUBACK (QoS 1) or PUBREC (QoS 2).
    AwaitAck,
    /// PUBREL sent; waiting for PUBCOMP.
    AwaitComp,
}

/// An outbound message inside the inflight window.
#[derive(Debug, Clone)]
pub struct Inflight {
    /// Packet identifier it was sent with.
    pub packet_id: u16,
    /// The message.
    pub message: Arc<Message>,
    /// QoS it is delivered at (min of published and granted).
    pub qos: QoS,
    /// RETAIN flag it is delivered with.
    pub retain: bool,
    /// Subscription Identifier of the matching subscription.
    pub identifier: Option<u32>,
    /// Handshake position.
    pub state: InflightState,
}

/// A message waiting to be sent.
#[derive(Debug, Clone)]
pub struct Queued {
    /// The message.
    pub message: Arc<Message>,
    /// QoS it will be delivered at.
    pub qos: QoS,
    /// RETAIN flag it will be delivered with.
    pub retain: bool,
    /// Subscription Identifier of the matching subscription.
    pub identifier: Option<u32>,
}

/// How long a closed session is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionExpiry {
    /// Discard it now (clean session, or Session Expiry Interval 0).
    Now,
    /// Keep it this long after the connection closed.
    After(Duration),
    /// Keep it until a clean start (3.1.1 Clean Session 0, or interval 0xFFFFFFFF).
    Never,
}

impl SessionExpiry {
    /// From a v5 Session Expiry Interval in seconds.
    pub fn from_interval(secs: u32) -> SessionExpiry {
        match secs {
            0 => SessionExpiry::Now,
            u32::MAX => SessionExpiry::Never,
            s => SessionExpiry::After(Duration::from_secs(u64::from(s))),
        }
    }
}

/// Session state that survives reconnects.
#[derive(Debug, Clone)]
pub struct SessionState {
    client_id: MqttString,
    /// Looked up for every delivery (`resolve`): foldhash, not SipHash.
    pub(super) subscriptions: HashMap<MqttString, SubscriptionEntry, foldhash::fast::RandomState>,
    pub(super) inflight: VecDeque<Inflight>,
    pub(super) queue: VecDeque<Queued>,
    pub(super) incoming_qos2: HashSet<u16>,
    next_packet_id: u16,
    dropped: u64,
}

impl SessionState {
    /// A fresh session.
    pub fn new(client_id: MqttString) -> SessionState {
        SessionState {
            client_id,
            subscriptions: HashMap::default(),
            inflight: VecDeque::new(),
            queue: VecDeque::new(),
            incoming_qos2: HashSet::new(),
            next_packet_id: 0,
            dropped: 0,
        }
    }

    /// The client identifier.
    pub fn client_id(&self) -> &MqttString {
        &self.client_id
    }

    /// Subscriptions by the filter the client wrote (the broker removes these routes when the
    /// session ends).
    pub fn subscriptions(&self) -> impl Iterator<Item = (&MqttString, &SubscriptionEntry)> {
        self.subscriptions.iter()
    }

    /// Outbound messages awaiting acknowledgement, oldest first.
    pub fn inflight(&self) -> impl Iterator<Item = &Inflight> {
        self.inflight.iter()
    }

    /// Messages queued, oldest first.
    pub fn queued(&self) -> impl Iterator<Item = &Queued> {
        self.queue.iter()
    }

    /// Number of messages queued (what `mqtt.max_mqueue_len` bounds).
    pub fn queue_len(&self) -> usize {
        self.queue.len()
    }

    /// Messages dropped because the queue was full or the client could not take them.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    pub(super) fn count_drop(&mut self) {
        self.dropped += 1;
    }

    /// Applies the subscription's options to a delivery: `None` when the subscription is gone
    /// or No Local forbids sending the client its own message (MQTT 5.0 §3.8.3.1).
    pub(super) fn resolve(&self, d: &Delivery) -> Option<Queued> {
        let (qos, retain, identifier) = self.resolve_options(d)?;
        Some(Queued {
            qos,
            retain,
            identifier,
            message: d.message.clone(),
        })
    }

    /// [`SessionState::resolve`] without taking a reference to the message: the QoS, RETAIN
    /// flag and Subscription Identifier to deliver with (a QoS 0 delivery sent at once needs
    /// no more).
    pub(super) fn resolve_options(&self, d: &Delivery) -> Option<(QoS, bool, Option<u32>)> {
        let entry = self.subscriptions.get(&d.filter)?;
        if entry.options.no_local && d.message.publisher == self.client_id {
            return None;
        }
        let retain = if d.from_retained {
            true
        } else {
            entry.options.retain_as_published && d.message.retain
        };
        Some((
            d.message.qos.min(entry.options.qos),
            retain,
            entry.identifier,
        ))
    }

    /// Appends to the bounded queue; when full the oldest message is dropped (EMQX's mqueue).
    pub(super) fn enqueue(&mut self, q: Queued, config: &SessionConfig) {
        if config.max_queue_len == 0 {
            self.dropped += 1;
            return;
        }
        if self.queue.len() >= config.max_queue_len {
            self.queue.pop_front();
            self.dropped += 1;
        }
        self.queue.push_back(q);
    }

    /// The broker hands a message to a session whose client is offline.
    pub fn deliver_offline(&mut self, d: &Delivery, config: &SessionConfig, now: Instant) {
        let Some(q) = self.resolve(d) else { return };
        if q.message.is_expired(now) || (q.qos == QoS::AtMostOnce && !config.queue_qos0) {
            return;
        }
        self.enqueue(q, config);
    }

    /// Next free packet identifier (1..=65535, skipping ones still in flight).
    pub(super) fn next_packet_id(&mut self) -> Option<u16> {
        for _ in 0..=u16::MAX {
            self.next_packet_id = self.next_packet_id.wrapping_add(1);
            if self.next_packet_id == 0 {
                continue;
            }
            let id = self.next_packet_id;
            if !self.inflight.iter().any(|f| f.packet_id == id) {
                return Some(id);
            }
        }
        None
    }

    /// Position of an inflight message by packet id (acks usually arrive in order, so the scan
    /// stops at the front).
    pub(super) fn find_inflight(&self, packet_id: u16) -> Option<usize> {
        self.inflight.iter().position(|f| f.packet_id == packet_id)
    }
}
