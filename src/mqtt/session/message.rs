//! The application message as the broker routes it, independent of any one connection: topic
//! resolved from aliases, expiry as an absolute time, only the properties that travel with a
//! message (MQTT 5.0 §3.3.2.3: payload format, content type, response topic, correlation data,
//! user properties). Shared between subscribers as `Arc<Message>`; payload and strings stay
//! slices of the publisher's receive buffer.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::mqtt::codec::{LastWill, MqttString, Properties, Publish, QoS};

/// A routed application message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Topic name (never an alias).
    pub topic: MqttString,
    /// Payload.
    pub payload: Bytes,
    /// QoS it was published with.
    pub qos: QoS,
    /// RETAIN flag as published.
    pub retain: bool,
    /// Client identifier of the publisher (for No Local).
    pub publisher: MqttString,
    /// Forwarded properties; never Topic Alias, Subscription Identifier or Message Expiry.
    pub properties: Properties,
    /// When the message expires (from Message Expiry Interval), if ever.
    pub expires_at: Option<Instant>,
}

/// Keeps only what travels with a message and turns expiry into a deadline.
fn forwardable(mut p: Properties, now: Instant) -> (Properties, Option<Instant>) {
    let expires_at = p
        .message_expiry_interval
        .take()
        .map(|s| now + Duration::from_secs(u64::from(s)));
    p.topic_alias = None;
    p.subscription_identifiers.clear();
    p.will_delay_interval = None;
    (p, expires_at)
}

impl Message {
    /// From a client's PUBLISH whose topic has been resolved (`topic`).
    pub fn from_publish(
        p: Publish,
        topic: MqttString,
        publisher: MqttString,
        now: Instant,
    ) -> Message {
        let (properties, expires_at) = forwardable(p.properties, now);
        Message {
            topic,
            payload: p.payload,
            qos: p.qos,
            retain: p.retain,
            publisher,
            properties,
            expires_at,
        }
    }

    /// From a CONNECT's Will.
    pub fn from_will(w: LastWill, publisher: MqttString, now: Instant) -> Message {
        let (properties, expires_at) = forwardable(w.properties, now);
        Message {
            topic: w.topic,
            payload: w.payload,
            qos: w.qos,
            retain: w.retain,
            publisher,
            properties,
            expires_at,
        }
    }

    /// True once the Message Expiry Interval has passed.
    pub fn is_expired(&self, now: Instant) -> bool {
        self.expires_at.is_some_and(|t| t <= now)
    }

    /// Seconds left, rounded up, for the Message Expiry Interval of a delivery (§3.3.2.3.3:
    /// "the value received by the Client is the received value minus the time spent waiting").
    pub fn remaining_expiry(&self, now: Instant) -> Option<u32> {
        self.expires_at.map(|t| {
            let left = t.saturating_duration_since(now);
            let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
            u32::try_from(secs).unwrap_or(u32::MAX)
        })
    }
}

/// How a session received a message from the broker.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The message.
    pub message: Arc<Message>,
    /// The subscription it matched, exactly as the client wrote it (`$share/g/a/#` included).
    pub filter: MqttString,
    /// True when sent from the retained store because of a SUBSCRIBE: the RETAIN flag is then
    /// kept (MQTT 3.1.1 §3.3.1.3, MQTT 5.0 §3.3.1.3).
    pub from_retained: bool,
}
