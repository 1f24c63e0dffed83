//! What the broker delivers to a connected client: QoS downgrade, No Local and Retain As
//! Published (resolved by the session state), message expiry, the inflight window (the client's
//! Receive Maximum), the bounded queue, outbound Topic Aliases, the client's Maximum Packet Size,
//! and the PUBACK/PUBREC/PUBCOMP that complete a delivery (MQTT 5.0 §4.3, §4.9).

use std::sync::Arc;
use std::time::Instant;

use bytes::{BufMut, BytesMut};

use crate::mqtt::codec::wire::{varint_len, write_varint, VARINT_MAX};
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
        let Some((qos, retain, identifier)) = session.resolve_options(d) else {
            return;
        };
        if d.message.is_expired(now) {
            return;
        }
        let congested = self.out.len() >= self.config.max_output_buffer;
        if qos == QoS::AtMostOnce {
            if congested {
                session.count_drop();
                return;
            }
            self.send_publish(&d.message, qos, retain, identifier, 0, false, now);
            return;
        }
        let q = Queued {
            message: d.message.clone(),
            qos,
            retain,
            identifier,
        };
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
        let plain = self.limits.maximum_packet_size >= crate::mqtt::codec::wire::VARINT_MAX
            && (!v5
                || (identifier.is_none()
                    && m.expires_at.is_none()
                    && m.properties.is_empty()
                    && self.limits.topic_alias_maximum == 0));
        if plain {
            let topic = m.topic.as_bytes();
            if write_plain_publish(
                &mut self.out,
                v5,
                topic,
                &m.payload,
                qos,
                retain,
                dup,
                packet_id,
            ) {
                return true;
            }
        }
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

/// Encodes a PUBLISH without properties (MQTT 3.1.1, or 5.0 with an empty property list)
/// straight from the routed message's topic and payload: what `Packet::write` would write, but
/// without building a `Publish` (two reference counts taken and dropped on the publisher's
/// buffer per delivery, contended between the cores in a fan-out) or a length pass over its
/// properties. False, with nothing written, when the general encoder must decide (a topic over
/// 65,535 bytes, a packet over the Remaining Length limit, QoS 1/2 without a packet id, DUP on
/// QoS 0: its errors are the ones to report).
#[allow(clippy::too_many_arguments)]
fn write_plain_publish(
    out: &mut BytesMut,
    v5: bool,
    topic: &[u8],
    payload: &[u8],
    qos: QoS,
    retain: bool,
    dup: bool,
    packet_id: u16,
) -> bool {
    let with_id = qos != QoS::AtMostOnce;
    let Ok(topic_len) = u16::try_from(topic.len()) else {
        return false;
    };
    if (with_id && packet_id == 0) || (!with_id && dup) {
        return false;
    }
    let body = 2 + topic.len() + 2 * usize::from(with_id) + usize::from(v5) + payload.len();
    if body > VARINT_MAX as usize {
        return false;
    }
    out.reserve(1 + varint_len(body) + body);
    out.put_u8(0x30 | (u8::from(dup) << 3) | ((qos as u8) << 1) | u8::from(retain));
    if write_varint(out, body).is_err() {
        return false;
    }
    out.put_u16(topic_len);
    out.put_slice(topic);
    if with_id {
        out.put_u16(packet_id);
    }
    if v5 {
        out.put_u8(0);
    }
    out.put_slice(payload);
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mqtt::codec::{ProtocolVersion, Publish};
    use bytes::Bytes;

    #[test]
    fn plain_publish_is_what_the_codec_writes() {
        let topic = MqttString::try_from("a/b/c").unwrap_or_default();
        let big = vec![7u8; 300];
        for version in [ProtocolVersion::V3_1_1, ProtocolVersion::V5] {
            for (qos, packet_id, dup) in [
                (QoS::AtMostOnce, 0, false),
                (QoS::AtLeastOnce, 9, false),
                (QoS::ExactlyOnce, 65535, true),
            ] {
                for payload in [&b""[..], b"hello", &big[..]] {
                    for retain in [false, true] {
                        let p = Publish {
                            dup,
                            qos,
                            retain,
                            topic: topic.clone(),
                            packet_id,
                            properties: Default::default(),
                            payload: Bytes::copy_from_slice(payload),
                        };
                        let mut want = BytesMut::new();
                        Packet::Publish(p).write(version, &mut want).unwrap();
                        let mut got = BytesMut::new();
                        assert!(write_plain_publish(
                            &mut got,
                            version.is_v5(),
                            topic.as_bytes(),
                            payload,
                            qos,
                            retain,
                            dup,
                            packet_id
                        ));
                        assert_eq!(got, want, "{version:?} {qos:?} {retain} {}", payload.len());
                    }
                }
            }
        }
        let mut out = BytesMut::new();
        assert!(!write_plain_publish(
            &mut out,
            false,
            b"t",
            b"",
            QoS::AtLeastOnce,
            false,
            false,
            0
        ));
        assert!(!write_plain_publish(
            &mut out,
            false,
            b"t",
            b"",
            QoS::AtMostOnce,
            false,
            true,
            0
        ));
        assert!(out.is_empty());
    }
}
