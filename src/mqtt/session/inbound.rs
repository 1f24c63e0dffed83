//! What a connected client sends: PUBLISH (QoS 0/1/2, topic aliases, limits, ACL), PUBREL,
//! SUBSCRIBE, UNSUBSCRIBE and DISCONNECT (MQTT 5.0 §3.3, §3.6, §3.8, §3.10, §3.14, §4.3).

use std::sync::Arc;
use std::time::Instant;

use crate::mqtt::codec::{
    Ack, Disconnect, MqttString, Packet, Properties, Publish, QoS, ReasonCode, RetainHandling,
    SubAck, Subscribe, UnsubAck, Unsubscribe,
};
use crate::router::{Subscription, TopicName};

use super::connection::{Action, Connection};
use super::hooks::Access;
use super::message::Message;
use super::state::{SessionExpiry, SubscriptionEntry};

impl Connection {
    /// Resolves the topic of an inbound PUBLISH through the client's Topic Aliases
    /// (MQTT 5.0 §3.3.2.3.4); `Err` is the DISCONNECT reason.
    fn resolve_topic(&mut self, p: &Publish) -> Result<MqttString, ReasonCode> {
        let Some(alias) = p.properties.topic_alias else {
            if p.topic.is_empty() {
                return Err(ReasonCode::ProtocolError);
            }
            return Ok(p.topic.clone());
        };
        if alias == 0 || alias > self.config.topic_alias_maximum {
            return Err(ReasonCode::TopicAliasInvalid);
        }
        if p.topic.is_empty() {
            return self
                .inbound_aliases
                .get(&alias)
                .cloned()
                .ok_or(ReasonCode::ProtocolError);
        }
        self.inbound_aliases.insert(alias, p.topic.clone());
        Ok(p.topic.clone())
    }

    pub(super) fn handle_publish(&mut self, p: Publish, now: Instant) {
        if !p.properties.subscription_identifiers.is_empty() {
            // [MQTT-3.3.4-6]: a client must not send a Subscription Identifier.
            return self.close(ReasonCode::ProtocolError, true, true, now);
        }
        if p.qos > self.config.maximum_qos {
            return self.close(ReasonCode::QosNotSupported, true, true, now);
        }
        if p.retain && !self.config.retain_available {
            return self.close(ReasonCode::RetainNotSupported, true, true, now);
        }
        let topic = match self.resolve_topic(&p) {
            Ok(t) => t,
            Err(rc) => return self.close(rc, true, true, now),
        };
        if TopicName::validate(topic.as_str()).is_err() {
            return self.close(ReasonCode::TopicNameInvalid, true, true, now);
        }
        let (qos, id) = (p.qos, p.packet_id);
        if qos == QoS::ExactlyOnce {
            let Some(session) = self.session.as_mut() else {
                return;
            };
            if session.incoming_qos2.contains(&id) {
                // A re-sent PUBLISH we already accepted: acknowledge again, route once.
                return self.ack_publish(qos, id, ReasonCode::Success);
            }
            if session.incoming_qos2.len() >= usize::from(self.config.receive_maximum) {
                return self.close(ReasonCode::ReceiveMaximumExceeded, true, true, now);
            }
        }
        if p.properties.payload_format_indicator == Some(true)
            && std::str::from_utf8(&p.payload).is_err()
        {
            tracing::debug!(client = ?self.client_id(), "payload is not the UTF-8 it claims to be");
            return self.ack_publish(qos, id, ReasonCode::PayloadFormatInvalid);
        }
        let allowed = self
            .client
            .as_ref()
            .is_some_and(|c| self.auth.authorize(c, Access::Publish, topic.as_str()));
        if !allowed {
            tracing::info!(client = ?self.client_id(), %topic, "publish not authorized");
            return self.ack_publish(qos, id, ReasonCode::NotAuthorized);
        }
        let Some(publisher) = self.client.as_ref().map(|c| c.client_id.clone()) else {
            return;
        };
        let retain = p.retain;
        let message = Arc::new(Message::from_publish(p, topic, publisher, now));
        if retain {
            self.actions.push_back(Action::Retain(Arc::clone(&message)));
        }
        self.actions.push_back(Action::Publish(message));
        if qos == QoS::ExactlyOnce {
            if let Some(s) = self.session.as_mut() {
                s.incoming_qos2.insert(id);
            }
        }
        self.ack_publish(qos, id, ReasonCode::Success);
    }

    /// PUBACK for QoS 1, PUBREC for QoS 2, nothing for QoS 0. Before v5 there is no failure
    /// code: a refused message is acknowledged as if accepted (as EMQX and mosquitto do).
    fn ack_publish(&mut self, qos: QoS, packet_id: u16, reason: ReasonCode) {
        let mut ack = Ack::new(packet_id);
        if self.version.is_v5() {
            ack.reason = reason;
        }
        match qos {
            QoS::AtMostOnce => {}
            QoS::AtLeastOnce => {
                self.send(Packet::PubAck(ack));
            }
            QoS::ExactlyOnce => {
                self.send(Packet::PubRec(ack));
            }
        }
    }

    /// PUBREL releases an inbound QoS 2 packet id; PUBCOMP either way (0x92 if unknown).
    pub(super) fn handle_pubrel(&mut self, a: Ack) {
        let known = self
            .session
            .as_mut()
            .is_some_and(|s| s.incoming_qos2.remove(&a.packet_id));
        let mut comp = Ack::new(a.packet_id);
        if !known && self.version.is_v5() {
            comp.reason = ReasonCode::PacketIdentifierNotFound;
        }
        self.send(Packet::PubComp(comp));
    }

    pub(super) fn handle_subscribe(&mut self, s: Subscribe, now: Instant) {
        let identifier = s.properties.subscription_identifiers.first().copied();
        let mut reasons = Vec::with_capacity(s.filters.len());
        for (filter, mut options) in s.filters {
            let Ok(subscription) = Subscription::parse(filter.as_str()) else {
                reasons.push(ReasonCode::TopicFilterInvalid);
                continue;
            };
            let shared = subscription.group.is_some();
            if shared && options.no_local && self.version.is_v5() {
                // MQTT 5.0 §3.8.3.1: No Local on a shared subscription is a protocol error.
                return self.close(ReasonCode::ProtocolError, true, true, now);
            }
            let allowed = self
                .client
                .as_ref()
                .is_some_and(|c| self.auth.authorize(c, Access::Subscribe, filter.as_str()));
            if !allowed {
                reasons.push(ReasonCode::NotAuthorized);
                continue;
            }
            options.qos = options.qos.min(self.config.maximum_qos);
            let Some(session) = self.session.as_mut() else {
                return;
            };
            let entry = SubscriptionEntry {
                subscription: subscription.clone(),
                options,
                identifier,
            };
            let is_new = session
                .subscriptions
                .insert(filter.clone(), entry)
                .is_none();
            let send_retained = !shared
                && match options.retain_handling {
                    RetainHandling::SendAtSubscribe => true,
                    RetainHandling::SendAtSubscribeIfNew => is_new,
                    RetainHandling::DoNotSend => false,
                };
            reasons.push(match options.qos {
                QoS::AtMostOnce => ReasonCode::GRANTED_QOS0,
                QoS::AtLeastOnce => ReasonCode::GrantedQos1,
                QoS::ExactlyOnce => ReasonCode::GrantedQos2,
            });
            self.actions.push_back(Action::Subscribe {
                filter,
                subscription,
                options,
                send_retained,
            });
        }
        self.send(Packet::SubAck(SubAck {
            packet_id: s.packet_id,
            properties: Properties::default(),
            reasons,
        }));
    }

    pub(super) fn handle_unsubscribe(&mut self, u: Unsubscribe) {
        let mut reasons = Vec::with_capacity(u.filters.len());
        for filter in u.filters {
            let removed = self
                .session
                .as_mut()
                .and_then(|s| s.subscriptions.remove(&filter));
            match removed {
                Some(entry) => {
                    reasons.push(ReasonCode::Success);
                    self.actions.push_back(Action::Unsubscribe {
                        filter,
                        subscription: entry.subscription,
                    });
                }
                None => reasons.push(ReasonCode::NoSubscriptionExisted),
            }
        }
        if !self.version.is_v5() {
            reasons.clear();
        }
        self.send(Packet::UnsubAck(UnsubAck {
            packet_id: u.packet_id,
            properties: Properties::default(),
            reasons,
        }));
    }

    /// DISCONNECT from the client: the Will is dropped unless the reason is 0x04; v5 may change
    /// the Session Expiry Interval, but not from 0 to non-zero (MQTT 5.0 §3.14.2.2.2).
    pub(super) fn handle_disconnect(&mut self, d: Disconnect, now: Instant) {
        if let Some(secs) = d.properties.session_expiry_interval {
            if self.requested_expiry == 0 && secs != 0 {
                return self.close(ReasonCode::ProtocolError, true, true, now);
            }
            self.session_expiry =
                SessionExpiry::from_interval(secs.min(self.config.max_session_expiry));
        }
        let with_will = d.reason == ReasonCode::DisconnectWithWillMessage;
        self.close(d.reason, false, with_will, now);
    }
}
