//! What the broker delivers to a connected client: QoS downgrade, No Local and Retain As
//! Published (resolved by the session state), message expiry, the inflight window (the client's
//! Receive Maximum), the bounded queue, outbound Topic Aliases, the client's Maximum Packet Size,
//! and the PUBACK/PUBREC/PUBCOMP that complete a delivery (MQTT 5.0 §4.3, §4.9).

use std::sync::Arc;
use std::time::Instant;

use crate::mqtt::codec::{Ack, MqttString, Packet, Publish, QoS, ReasonCode};

use super::connection::{Connection, Phase};
use super::message::{Delivery, Message};
use super::state::{Inflight, InflightState, Queued};

impl Connection {
    /// A message for this client from the broker (a routed publish, or a retained message after
    /// [`super::Action::Subscribe`]). Sent now if the window and output buffer allow, queued
    /// (QoS 1/2) or dropped (QoS 0) otherwise.
    pub fn deliver(&mut self, d: &Delivery, now: Instant) {
        if self.phase != Phase::Connected {
            return;
        }
        let window = self.window();
        let Some(session) = self.session.as_mut() else {
            return;
        };
        let Some(q) = session.resolve(d) else { return };
        if q.message.is_expired(now) {
            return;
        }
        let congested = self.out.len() >= self.config.max_output_buffer;
        if q.qos == QoS::AtMostOnce {
            if congested {
                session.count_drop();
                return;
            }
            self.send_publish(&q.message, q.qos, q.retain, q.identifier, 0, false, now);
            return;
        }
        if congested || !session.queue.is_empty() || session.inflight.len() >= window {
            session.enqueue(q, &self.config);
            return;
        }
        self.start_inflight(q, now);
    }

    /// Outbound window: the client's Receive Maximum, capped by our `max_inflight`.
    pub(super) fn window(&self) -> usize {
        usize::from(
            self.limits
                .receive_maximum
                .min(self.config.max_inflight)
                .max(1),
        )
    }

    /// Moves queued messages into the window while there is room.
    pub(super) fn fill_window(&mut self, now: Instant) {
        let window = self.window();
        loop {
            if self.out.len() >= self.config.max_output_buffer {
                return;
            }
            let Some(session) = self.session.as_mut() else {
                return;
            };
            if session.inflight.len() >= window {
                return;
            }
            let Some(q) = session.queue.pop_front() else {
                return;
            };
            if q.message.is_expired(now) {
                continue;
            }
            if q.qos == QoS::AtMostOnce {
                self.send_publish(&q.message, q.qos, q.retain, q.identifier, 0, false, now);
            } else {
                self.start_inflight(q, now);
            }
        }
    }

    fn start_inflight(&mut self, q: Queued, now: Instant) {
        let Some(session) = self.session.as_mut() else {
            return;
        };
        let Some(packet_id) = session.next_packet_id() else {
            session.enqueue(q, &self.config);
            return;
        };
        let sent = self.send_publish(
            &q.message,
            q.qos,
            q.retain,
            q.identifier,
            packet_id,
            false,
            now,
        );
        let Some(session) = self.session.as_mut() else {
            return;
        };
        if !sent {
            // Too big for the client: discarded as if delivered (MQTT 5.0 §3.1.2.11.4).
            session.count_drop();
            return;
        }
        session.inflight.push_back(Inflight {
            packet_id,
            message: q.message,
            qos: q.qos,
            retain: q.retain,
            identifier: q.identifier,
            state: InflightState::AwaitAck,
        });
    }

    /// Encodes one PUBLISH; false if it cannot be sent within the client's Maximum Packet Size.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn send_publish(
        &mut self,
        m: &Arc<Message>,
        qos: QoS,
        retain: bool,
        identifier: Option<u32>,
        packet_id: u16,
        dup: bool,
        now: Instant,
    ) -> bool {
        let v5 = self.version.is_v5();
        let mut publish = Publish {
            dup,
            qos,
            retain,
            topic: m.topic.clone(),
            packet_id,
            properties: Default::default(),
            payload: m.payload.clone(),
        };
        if v5 {
            publish.properties = m.properties.clone();
            publish.properties.message_expiry_interval = m.remaining_expiry(now);
            if let Some(id) = identifier {
                publish.properties.subscription_identifiers.push(id);
            }
        }
        let packet = Packet::Publish(publish);
        // Checked with the full topic: the largest form, whatever the alias does.
        let limit = self.limits.maximum_packet_size as usize;
        let fits = limit >= crate::mqtt::codec::wire::VARINT_MAX as usize
            || packet
                .encoded_len(self.version)
                .is_ok_and(|n| n + 3 <= limit);
        if !fits {
            tracing::debug!(client = ?self.client_id(), topic = %m.topic, "message over the client's maximum packet size dropped");
            return false;
        }
        let Packet::Publish(mut publish) = packet else {
            return false;
        };
        if v5 {
            self.apply_outbound_alias(&mut publish);
        }
        self.send(Packet::Publish(publish))
    }

    /// Outbound Topic Aliases (MQTT 5.0 §3.3.2.3.4): the first `topic_alias_maximum` distinct
    /// topics get an alias; later PUBLISHes to them carry the alias and an empty topic.
    fn apply_outbound_alias(&mut self, p: &mut Publish) {
        let max = self.limits.topic_alias_maximum;
        if max == 0 {
            return;
        }
        if let Some(&alias) = self.outbound_aliases.get(&p.topic) {
            p.properties.topic_alias = Some(alias);
            p.topic = MqttString::default();
            return;
        }
        let used = self.outbound_aliases.len();
        if used < usize::from(max) {
            let alias = (used + 1) as u16;
            self.outbound_aliases.insert(p.topic.clone(), alias);
            p.properties.topic_alias = Some(alias);
        }
    }

    /// PUBACK completes a QoS 1 delivery.
    pub(super) fn handle_puback(&mut self, a: Ack, now: Instant) {
        self.complete(a.packet_id, QoS::AtLeastOnce, InflightState::AwaitAck);
        self.fill_window(now);
    }

    /// PUBREC: answer PUBREL, or drop the message if the client refused it (v5 code ≥ 0x80).
    pub(super) fn handle_pubrec(&mut self, a: Ack, now: Instant) {
        let v5 = self.version.is_v5();
        let Some(session) = self.session.as_mut() else {
            return;
        };
        let pos = session
            .find_inflight(a.packet_id)
            .filter(|&i| session.inflight[i].qos == QoS::ExactlyOnce);
        let mut rel = Ack::new(a.packet_id);
        match pos {
            Some(i) if a.reason.is_error() => {
                session.inflight.remove(i);
                self.fill_window(now);
                return;
            }
            Some(i) => session.inflight[i].state = InflightState::AwaitComp,
            None if v5 => rel.reason = ReasonCode::PacketIdentifierNotFound,
            None => {}
        }
        self.send(Packet::PubRel(rel));
    }

    /// PUBCOMP completes a QoS 2 delivery.
    pub(super) fn handle_pubcomp(&mut self, a: Ack, now: Instant) {
        self.complete(a.packet_id, QoS::ExactlyOnce, InflightState::AwaitComp);
        self.fill_window(now);
    }

    fn complete(&mut self, packet_id: u16, qos: QoS, state: InflightState) {
        let Some(session) = self.session.as_mut() else {
            return;
        };
        match session.find_inflight(packet_id) {
            Some(i) if session.inflight[i].qos == qos && session.inflight[i].state == state => {
                session.inflight.remove(i);
            }
            _ => {
                tracing::debug!(client = ?self.client_id(), packet_id, "ack for no inflight message")
            }
        }
    }
}
