//! The broker in a cluster (issue 6): its subscriptions become this node's routes, its
//! publishes are forwarded once per remote destination, and dispatches from other nodes reach
//! its local subscribers only (ROUTE-PROTOCOL rules 3, 5, 7). Without a router attached (unit
//! tests, benchmarks, a broker on its own) none of this runs and the publish path is as before.
//!
//! Message conversion follows EMQX 4's `#message{}` (`emqx_message:make/4` and the MQTT 5
//! properties under `headers.properties`). The publisher's node stores a retained message;
//! receivers deliver the RETAIN flag under their subscriptions' rules and do not store it.
use std::sync::{Arc, Weak};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use super::inbound::BrokerInbound;
use super::{Broker, Shared, SubKey};
use crate::mqtt::codec::{MqttString, Properties, PropertyValues, QoS};
use crate::mqtt::session::Message;
use crate::router::cluster::{
    ClusterMessage, ClusterRouter, Dispatch, Flags, Headers, Inbound, LocalSink, MessageProperties,
    Publisher,
};
use crate::router::{Subscribed, Subscription, SubscriptionTable, TrieFull, Unsubscribed};

/// The MQTT 5 properties of `p` that travel, as the cluster message carries them.
fn properties_out(p: &Properties, expiry: Option<u32>) -> Option<MessageProperties> {
    let out = MessageProperties {
        payload_format_indicator: p.payload_format_indicator.map(u8::from),
        message_expiry_interval: expiry,
        content_type: p.content_type.as_ref().map(|s| s.as_bytes().clone()),
        response_topic: p.response_topic.as_ref().map(|s| s.as_bytes().clone()),
        correlation_data: p.correlation_data.clone(),
        user_properties: p
            .user_properties
            .iter()
            .map(|(k, v)| (k.as_bytes().clone(), v.as_bytes().clone()))
            .collect(),
    };
    (out != MessageProperties::default()).then_some(out)
}

/// A string property from a peer; one that is not valid UTF-8 is dropped, not the message.
fn string_in(b: &Option<Bytes>) -> Option<MqttString> {
    b.as_ref()
        .and_then(|b| MqttString::from_bytes(b.clone()).ok())
}

fn properties_in(p: &MessageProperties, now: Instant) -> (Properties, Option<Instant>) {
    let props: Properties = PropertyValues {
        payload_format_indicator: p.payload_format_indicator.map(|v| v == 1),
        content_type: string_in(&p.content_type),
        response_topic: string_in(&p.response_topic),
        correlation_data: p.correlation_data.clone(),
        user_properties: p
            .user_properties
            .iter()
            .filter_map(|(k, v)| {
                Some((
                    MqttString::from_bytes(k.clone()).ok()?,
                    MqttString::from_bytes(v.clone()).ok()?,
                ))
            })
            .collect(),
        ..PropertyValues::default()
    }
    .into();
    let expires = p
        .message_expiry_interval
        .map(|s| now + std::time::Duration::from_secs(u64::from(s)));
    (props, expires)
}

/// `msg` as the cluster message with id `id`, its expiry counted from `now`.
pub fn to_cluster(msg: &Message, id: Bytes, now: Instant, wall: SystemTime) -> ClusterMessage {
    let topic = msg.topic.as_bytes().clone();
    ClusterMessage {
        id,
        qos: msg.qos as u8,
        from: Publisher::Client(msg.publisher.as_bytes().clone()),
        flags: Flags {
            retain: msg.retain,
            dup: false,
            sys: topic.starts_with(b"$SYS/"),
        },
        headers: Headers {
            properties: properties_out(&msg.properties, msg.remaining_expiry(now)),
            ..Headers::default()
        },
        topic,
        payload: msg.payload.clone(),
        timestamp: wall
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64),
    }
}

/// A received dispatch as a message for local delivery: the dispatch's topic is delivered.
/// `None` when it cannot be one (a topic or QoS the decoder let through but MQTT refuses).
pub fn from_cluster(d: Dispatch, now: Instant) -> Option<Message> {
    let m = d.message;
    let (properties, expires_at) = m
        .headers
        .properties
        .as_ref()
        .map_or((Properties::default(), None), |p| properties_in(p, now));
    let publisher = match m.from {
        Publisher::Client(c) => MqttString::from_bytes(c).unwrap_or_default(),
        Publisher::Atom(_) => MqttString::default(),
    };
    Some(Message {
        topic: MqttString::from_bytes(d.topic).ok()?,
        payload: m.payload,
        qos: QoS::from_u8(m.qos).ok()?,
        retain: m.flags.retain,
        publisher,
        properties,
        expires_at,
    })
}

/// Delivers dispatches into a broker without keeping it alive.
struct BrokerSink(Weak<Shared>);

impl LocalSink for BrokerSink {
    fn inbound(&self) -> Box<dyn Inbound> {
        Box::new(BrokerInbound::new(self.0.clone()))
    }
}

impl Broker {
    /// Joins the broker to the cluster: its routes go to `router`, its publishes are forwarded,
    /// and `router`'s received dispatches are delivered here. Set once.
    pub fn attach_cluster(&self, router: ClusterRouter) {
        router.set_sink(Arc::new(BrokerSink(Arc::downgrade(&self.inner))));
        let _ = self.inner.cluster.set(router);
    }

    /// The cluster router, when attached.
    pub fn cluster(&self) -> Option<&ClusterRouter> {
        self.inner.cluster.get()
    }

    /// Forwards `msg` to the other nodes with a matching route, never waiting (the broker's
    /// own publishes: Wills, `$SYS`).
    pub(super) fn forward(&self, msg: &Message) {
        if let Some(r) = self.inner.cluster.get() {
            r.forward(msg.topic.as_str(), || {
                to_cluster(msg, r.message_id(), Instant::now(), SystemTime::now())
            });
        }
    }

    /// Forwards a client's `msg`, waiting while a destination's connection is busy
    /// ([`ClusterRouter::forward_wait`]): the publisher slows to what the cluster carries.
    pub(super) async fn forward_publish(&self, msg: &Message) {
        if let Some(r) = self.inner.cluster.get() {
            r.forward_wait(msg.topic.as_str(), || {
                to_cluster(msg, r.message_id(), Instant::now(), SystemTime::now())
            })
            .await;
        }
    }

    /// Subscribes in `subs` (held by the caller); a filter new to the node becomes a route.
    pub(super) fn subscribe_in(
        &self,
        subs: &mut SubscriptionTable<SubKey>,
        sub: &Subscription,
        key: SubKey,
        opts: crate::router::SubOptions,
    ) -> Result<Subscribed, TrieFull> {
        let r = subs.subscribe(sub, key, opts)?;
        if r.new_filter {
            if let Some(c) = self.inner.cluster.get() {
                c.add_local(sub.filter.as_str());
            }
        }
        Ok(r)
    }

    /// Unsubscribes in `subs` (held by the caller); a filter gone from the node stops being a
    /// route.
    pub(super) fn unsubscribe_in(
        &self,
        subs: &mut SubscriptionTable<SubKey>,
        sub: &Subscription,
        key: &SubKey,
    ) -> Unsubscribed {
        let r = subs.unsubscribe(sub, key);
        if r.filter_gone {
            if let Some(c) = self.inner.cluster.get() {
                c.del_local(sub.filter.as_str());
            }
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &'static str) -> MqttString {
        MqttString::from_static(x).unwrap()
    }

    #[test]
    fn message_survives_the_cluster_form() {
        let now = Instant::now();
        let msg = Message {
            topic: s("t/a"),
            payload: Bytes::from_static(b"p"),
            qos: QoS::ExactlyOnce,
            retain: true,
            publisher: s("pub-1"),
            properties: PropertyValues {
                payload_format_indicator: Some(true),
                content_type: Some(s("text/plain")),
                response_topic: Some(s("r")),
                correlation_data: Some(Bytes::from_static(b"c")),
                user_properties: vec![(s("k"), s("v"))],
                ..PropertyValues::default()
            }
            .into(),
            expires_at: Some(now + std::time::Duration::from_millis(9500)),
        };
        let c = to_cluster(&msg, Bytes::from_static(b"id"), now, SystemTime::now());
        assert_eq!(c.qos, 2);
        assert!(c.flags.retain && !c.flags.sys);
        let p = c.headers.properties.clone().unwrap();
        assert_eq!(p.message_expiry_interval, Some(10), "rounded up");
        let d = Dispatch {
            topic: c.topic.clone(),
            sender: None,
            message: ClusterMessage::from_term(&c.to_term()).unwrap(),
        };
        let back = from_cluster(d, now).unwrap();
        assert_eq!(back.topic, msg.topic);
        assert_eq!(back.payload, msg.payload);
        assert_eq!(back.qos, msg.qos);
        assert!(back.retain);
        assert_eq!(back.publisher, msg.publisher);
        assert_eq!(back.properties, msg.properties);
        assert_eq!(
            back.expires_at,
            Some(now + std::time::Duration::from_secs(10))
        );
    }

    #[test]
    fn plain_message_has_no_properties_header() {
        let now = Instant::now();
        let msg = Message {
            topic: s("$SYS/x"),
            payload: Bytes::new(),
            qos: QoS::AtMostOnce,
            retain: false,
            publisher: MqttString::default(),
            properties: Properties::default(),
            expires_at: None,
        };
        let c = to_cluster(&msg, Bytes::new(), now, UNIX_EPOCH);
        assert_eq!(c.headers, Headers::default());
        assert!(c.flags.sys);
        assert_eq!(c.timestamp, 0);
    }
}
