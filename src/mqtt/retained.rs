//! The retained message store (MQTT 5.0 §3.3.1.3, §4.7): one message per topic name, set by a
//! PUBLISH with RETAIN, cleared by one with an empty payload, and looked up by a subscription's
//! topic filter when it is made.
//!
//! The router's trie indexes *filters* and matches a topic against them; here the question is
//! the other way round (which stored *topics* does a filter match), so this file keeps its own
//! small topic tree: one node per level, a wildcard lookup walks it. `$`-topics are not matched
//! by a filter starting with a wildcard (§4.7.2).
//!
//! Limits, as EMQX 4's `emqx_retainer` applies them: at most `max_messages` topics and
//! `max_bytes` of topic + payload, and no payload over `max_payload`. A new topic that would pass
//! a limit is refused ([`StoreError`]; the broker logs it and counts a drop); replacing or
//! clearing an existing topic is always allowed when the new size fits. Message expiry
//! (§3.3.2.3.3) is kept as a deadline: an expired message is never returned, and
//! [`RetainedStore::purge_expired`] frees them. Time is an input (`now`), so tests need no clock.
//!
//! Stored payloads are copied out of the connection's read buffer, so a retained message never
//! pins a whole socket buffer in memory.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use thiserror::Error;

use super::codec::{Properties, Publish, QoS};
use crate::router::topic::{is_dollar_topic, levels, FilterLevel};

/// Why a retained message was not stored.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum StoreError {
    /// The store holds `max_messages` topics already.
    #[error("retained store is full ({0} messages)")]
    TooManyMessages(usize),
    /// Storing it would pass `max_bytes`.
    #[error("retained store is full ({0} bytes)")]
    TooManyBytes(usize),
    /// The payload is larger than `max_payload`.
    #[error("retained payload of {0} bytes is over the limit")]
    PayloadTooLarge(usize),
    /// The topic has more levels than `max_levels` (which also bounds the tree's depth, and so
    /// the recursion of lookups).
    #[error("retained topic has more than {0} levels")]
    TooManyLevels(usize),
}

/// Bounds of the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(default)]
pub struct RetainedLimits {
    /// Most topics held (EMQX `retainer.max_retained_messages`; 0 there means unlimited, here
    /// `usize::MAX` does).
    pub max_messages: usize,
    /// Most bytes of topic + payload held.
    pub max_bytes: usize,
    /// Largest payload stored (EMQX `retainer.max_payload_size`, 1 MiB).
    pub max_payload: usize,
    /// Most levels in a retained topic (EMQX 5 `mqtt.max_topic_levels`, 128).
    pub max_levels: usize,
}

impl Default for RetainedLimits {
    fn default() -> Self {
        RetainedLimits {
            max_messages: 1_000_000,
            max_bytes: 1 << 30,
            max_payload: 1 << 20,
            max_levels: 128,
        }
    }
}

/// A retained message as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetainedMessage {
    /// Topic name.
    pub topic: Box<str>,
    /// QoS it was published with (delivery uses the lower of this and the subscription's).
    pub qos: QoS,
    /// Payload (own allocation).
    pub payload: Bytes,
    /// Properties to forward (v5): payload format, content type, response topic, correlation
    /// data, user properties. Topic alias and subscription identifiers are removed.
    pub properties: Properties,
    /// When it stops being delivered (Message Expiry Interval).
    pub expires_at: Option<Instant>,
}

impl RetainedMessage {
    /// Message Expiry Interval to send now: what is left, rounded up (§3.3.2.3.3), or `None`.
    pub fn remaining_expiry(&self, now: Instant) -> Option<u32> {
        self.expires_at.map(|t| {
            let left = t.saturating_duration_since(now);
            let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
            u32::try_from(secs).unwrap_or(u32::MAX)
        })
    }

    fn is_expired(&self, now: Instant) -> bool {
        self.expires_at.is_some_and(|t| t <= now)
    }

    fn cost(&self) -> usize {
        self.topic.len() + self.payload.len()
    }

    /// A PUBLISH for a new subscriber: RETAIN set, expiry counted down (§3.3.1.3, §3.3.2.3.3).
    pub fn to_publish(&self, now: Instant) -> Publish {
        let mut properties = self.properties.clone();
        properties.message_expiry_interval = self.remaining_expiry(now);
        Publish {
            dup: false,
            qos: self.qos,
            retain: true,
            topic: crate::mqtt::codec::MqttString::try_from(&*self.topic).unwrap_or_default(),
            packet_id: 0,
            properties,
            payload: self.payload.clone(),
        }
    }
}

#[derive(Debug, Default)]
struct Node {
    children: HashMap<Box<str>, Node>,
    message: Option<RetainedMessage>,
}

impl Node {
    fn is_empty(&self) -> bool {
        self.message.is_none() && self.children.is_empty()
    }
}

/// The store. Single owner (the broker's router task); wrap it in a lock to share it.
#[derive(Debug, Default)]
pub struct RetainedStore {
    root: Node,
    limits: RetainedLimits,
    count: usize,
    bytes: usize,
}

/// What [`RetainedStore::apply`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// Stored (new topic or replaced).
    Stored,
    /// An empty payload removed the topic's message.
    Cleared,
    /// An empty payload for a topic with nothing retained.
    Nothing,
}

impl RetainedStore {
    /// An empty store with these limits.
    pub fn new(limits: RetainedLimits) -> Self {
        RetainedStore {
            limits,
            ..Default::default()
        }
    }

    /// Topics held.
    pub fn len(&self) -> usize {
        self.count
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Bytes of topic + payload held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Applies a PUBLISH that has RETAIN set: an empty payload clears the topic, anything else
    /// replaces it. `publish.topic` must be a valid topic name (the session resolved aliases).
    pub fn apply(&mut self, publish: &Publish, now: Instant) -> Result<Applied, StoreError> {
        let topic = publish.topic.as_str();
        if publish.payload.is_empty() {
            return Ok(if self.remove(topic) {
                Applied::Cleared
            } else {
                Applied::Nothing
            });
        }
        let mut properties = publish.properties.clone();
        properties.topic_alias = None;
        properties.subscription_identifiers.clear();
        let expires_at = properties
            .message_expiry_interval
            .map(|s| now + Duration::from_secs(u64::from(s)));
        properties.message_expiry_interval = None;
        let msg = RetainedMessage {
            topic: topic.into(),
            qos: publish.qos,
            payload: Bytes::copy_from_slice(&publish.payload),
            properties,
            expires_at,
        };
        self.insert(msg).map(|()| Applied::Stored)
    }

    /// Stores `msg` under its topic, replacing what was there, within the limits.
    pub fn insert(&mut self, msg: RetainedMessage) -> Result<(), StoreError> {
        if msg.payload.len() > self.limits.max_payload {
            return Err(StoreError::PayloadTooLarge(msg.payload.len()));
        }
        if levels(&msg.topic).nth(self.limits.max_levels).is_some() {
            return Err(StoreError::TooManyLevels(self.limits.max_levels));
        }
        let old_cost = self
            .get_node(&msg.topic)
            .and_then(|n| n.message.as_ref())
            .map(|m| m.cost());
        let new_cost = msg.cost();
        if old_cost.is_none() && self.count >= self.limits.max_messages {
            return Err(StoreError::TooManyMessages(self.limits.max_messages));
        }
        let bytes_after = self.bytes - old_cost.unwrap_or(0) + new_cost;
        if bytes_after > self.limits.max_bytes {
            return Err(StoreError::TooManyBytes(self.limits.max_bytes));
        }
        let mut node = &mut self.root;
        for level in levels(&msg.topic) {
            node = node.children.entry(level.into()).or_default();
        }
        if node.message.replace(msg).is_none() {
            self.count += 1;
        }
        self.bytes = bytes_after;
        Ok(())
    }

    fn get_node(&self, topic: &str) -> Option<&Node> {
        let mut node = &self.root;
        for level in levels(topic) {
            node = node.children.get(level)?;
        }
        Some(node)
    }

    /// The message retained on exactly `topic`, unless expired.
    pub fn get(&self, topic: &str, now: Instant) -> Option<&RetainedMessage> {
        self.get_node(topic)?
            .message
            .as_ref()
            .filter(|m| !m.is_expired(now))
    }

    /// Removes the message on `topic`; true if there was one. Prunes emptied levels.
    pub fn remove(&mut self, topic: &str) -> bool {
        let path: Vec<&str> = levels(topic).collect();
        match remove_at(&mut self.root, &path) {
            Some(m) => {
                self.count -= 1;
                self.bytes -= m.cost();
                true
            }
            None => false,
        }
    }

    /// Calls `f` for every unexpired message whose topic `filter` matches. `filter` must be a
    /// valid topic filter (for a shared subscription, no retained messages are sent: §4.8.2).
    pub fn for_each_match<'s>(
        &'s self,
        filter: &str,
        now: Instant,
        mut f: impl FnMut(&'s RetainedMessage),
    ) {
        let filter_levels: Vec<FilterLevel<'_>> = levels(filter).map(FilterLevel::of).collect();
        let mut emit = |m: &'s RetainedMessage| {
            if !m.is_expired(now) {
                f(m)
            }
        };
        walk(&self.root, &filter_levels, true, &mut emit);
    }

    /// The matches of `filter`, collected (for tests and small lookups).
    pub fn matches(&self, filter: &str, now: Instant) -> Vec<&RetainedMessage> {
        let mut v = Vec::new();
        self.for_each_match(filter, now, |m| v.push(m));
        v
    }

    /// Drops every expired message; returns how many.
    pub fn purge_expired(&mut self, now: Instant) -> usize {
        let (n, bytes) = purge(&mut self.root, now);
        self.count -= n;
        self.bytes -= bytes;
        n
    }
}

fn remove_at(node: &mut Node, path: &[&str]) -> Option<RetainedMessage> {
    let Some((first, rest)) = path.split_first() else {
        return node.message.take();
    };
    let child = node.children.get_mut(*first)?;
    let m = remove_at(child, rest);
    if child.is_empty() {
        node.children.remove(*first);
    }
    m
}

fn purge(node: &mut Node, now: Instant) -> (usize, usize) {
    let (mut n, mut bytes) = (0, 0);
    if node.message.as_ref().is_some_and(|m| m.is_expired(now)) {
        if let Some(m) = node.message.take() {
            n += 1;
            bytes += m.cost();
        }
    }
    node.children.retain(|_, child| {
        let (cn, cb) = purge(child, now);
        n += cn;
        bytes += cb;
        !child.is_empty()
    });
    (n, bytes)
}

/// `first` is true at the root level, where a wildcard must not match a `$` level.
fn walk<'s>(
    node: &'s Node,
    filter: &[FilterLevel<'_>],
    first: bool,
    emit: &mut impl FnMut(&'s RetainedMessage),
) {
    let Some((level, rest)) = filter.split_first() else {
        if let Some(m) = &node.message {
            emit(m);
        }
        return;
    };
    match level {
        FilterLevel::Literal(l) => {
            if let Some(child) = node.children.get(*l) {
                walk(child, rest, false, emit);
            }
        }
        FilterLevel::Plus => {
            for (name, child) in &node.children {
                if !(first && is_dollar_topic(name)) {
                    walk(child, rest, false, emit);
                }
            }
        }
        FilterLevel::Hash => {
            // `a/#` also matches `a` itself (§4.7.1.2); at the root there is no parent topic.
            if !first {
                if let Some(m) = &node.message {
                    emit(m);
                }
            }
            for (name, child) in &node.children {
                if !(first && is_dollar_topic(name)) {
                    all_below(child, emit);
                }
            }
        }
    }
}

fn all_below<'s>(node: &'s Node, emit: &mut impl FnMut(&'s RetainedMessage)) {
    if let Some(m) = &node.message {
        emit(m);
    }
    for child in node.children.values() {
        all_below(child, emit);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::router::TopicFilter;

    fn publish(topic: &str, payload: &str) -> Publish {
        Publish {
            retain: true,
            topic: topic.try_into().unwrap_or_default(),
            payload: Bytes::copy_from_slice(payload.as_bytes()),
            ..Default::default()
        }
    }

    fn topics(v: Vec<&RetainedMessage>) -> Vec<String> {
        let mut t: Vec<String> = v.iter().map(|m| m.topic.to_string()).collect();
        t.sort();
        t
    }

    fn store(ts: &[&str]) -> RetainedStore {
        let mut s = RetainedStore::new(RetainedLimits::default());
        let now = Instant::now();
        for t in ts {
            assert_eq!(s.apply(&publish(t, "x"), now), Ok(Applied::Stored));
        }
        s
    }

    #[test]
    fn wildcard_lookup() {
        let all = ["a", "a/b", "a/b/c", "a/c", "/x", "$SYS/up", "b//c"];
        let s = store(&all);
        let now = Instant::now();
        assert_eq!(topics(s.matches("a/#", now)), ["a", "a/b", "a/b/c", "a/c"]);
        assert_eq!(topics(s.matches("a/+", now)), ["a/b", "a/c"]);
        assert_eq!(topics(s.matches("+/b/+", now)), ["a/b/c"]);
        assert_eq!(topics(s.matches("+/+", now)), ["/x", "a/b", "a/c"]);
        assert_eq!(topics(s.matches("b/+/c", now)), ["b//c"]);
        assert_eq!(topics(s.matches("#", now)).len(), all.len() - 1);
        assert_eq!(topics(s.matches("$SYS/#", now)), ["$SYS/up"]);
        assert_eq!(topics(s.matches("+/up", now)), Vec::<String>::new());
        assert_eq!(topics(s.matches("a/b", now)), ["a/b"]);
    }

    #[test]
    fn agrees_with_filter_matching() {
        let all = [
            "a", "a/b", "a/b/c", "/", "//", "/a", "$s/a", "x/y/z", "a//b",
        ];
        let s = store(&all);
        let now = Instant::now();
        for f in [
            "#", "+", "+/+", "/+", "+/#", "a/+/c", "$s/+", "+//#", "a/#", "x/+/z",
        ] {
            let Ok(filter) = TopicFilter::new(f) else {
                panic!("bad filter {f}")
            };
            let mut want: Vec<String> = all
                .iter()
                .filter(|t| filter.matches(t))
                .map(|t| t.to_string())
                .collect();
            want.sort();
            assert_eq!(topics(s.matches(f, now)), want, "filter {f}");
        }
    }

    #[test]
    fn empty_payload_clears_and_prunes() {
        let mut s = store(&["a/b/c", "a/b"]);
        let now = Instant::now();
        assert_eq!(s.apply(&publish("a/b/c", ""), now), Ok(Applied::Cleared));
        assert_eq!(s.apply(&publish("a/b/c", ""), now), Ok(Applied::Nothing));
        assert_eq!(s.len(), 1);
        assert_eq!(s.bytes(), "a/b".len() + 1);
        assert_eq!(s.apply(&publish("a/b", ""), now), Ok(Applied::Cleared));
        assert!(s.is_empty());
        assert!(s.root.children.is_empty(), "empty levels must be pruned");
        assert_eq!(s.bytes(), 0);
    }

    #[test]
    fn limits_refuse_new_topics_but_allow_replacing() {
        let mut s = RetainedStore::new(RetainedLimits {
            max_messages: 2,
            max_bytes: 20,
            max_payload: 8,
            max_levels: 3,
        });
        let now = Instant::now();
        assert!(s.apply(&publish("t/1", "aaaa"), now).is_ok());
        assert!(s.apply(&publish("t/2", "bbbb"), now).is_ok());
        assert_eq!(
            s.apply(&publish("t/3", "c"), now),
            Err(StoreError::TooManyMessages(2))
        );
        assert_eq!(s.apply(&publish("t/1", "zz"), now), Ok(Applied::Stored));
        assert_eq!(
            s.apply(&publish("t/1", "123456789"), now),
            Err(StoreError::PayloadTooLarge(9))
        );
        // 3+8 + 3+4 = 18 fits, 3+8 + 3+8 = 22 does not.
        assert!(s.apply(&publish("t/1", "12345678"), now).is_ok());
        assert_eq!(
            s.apply(&publish("t/2", "12345678"), now),
            Err(StoreError::TooManyBytes(20))
        );
        assert_eq!(
            s.get("t/2", now).map(|m| &m.payload[..]),
            Some(&b"bbbb"[..])
        );
        assert_eq!(s.bytes(), 18);
        assert_eq!(
            s.apply(&publish("a/b/c/d", "1"), now),
            Err(StoreError::TooManyLevels(3))
        );
    }

    #[test]
    fn deep_topic_is_refused_not_recursed() {
        let mut s = RetainedStore::new(RetainedLimits::default());
        let deep = "a/".repeat(30_000) + "a";
        let now = Instant::now();
        assert_eq!(
            s.apply(&publish(&deep, "x"), now),
            Err(StoreError::TooManyLevels(128))
        );
        assert!(!s.remove(&deep));
        assert!(s.matches(&deep, now).is_empty());
    }

    #[test]
    fn expiry_hides_counts_down_and_purges() {
        let mut s = RetainedStore::new(RetainedLimits::default());
        let t0 = Instant::now();
        let mut p = publish("e/1", "v");
        p.properties.message_expiry_interval = Some(10);
        p.properties.topic_alias = Some(3);
        assert!(s.apply(&p, t0).is_ok());
        assert!(s.apply(&publish("e/2", "w"), t0).is_ok());
        let later = t0 + Duration::from_millis(4_500);
        let Some(m) = s.get("e/1", later) else {
            panic!("expired too early")
        };
        let out = m.to_publish(later);
        assert_eq!(out.properties.message_expiry_interval, Some(6));
        assert_eq!(out.properties.topic_alias, None);
        assert!(out.retain);
        let end = t0 + Duration::from_secs(10);
        assert!(s.get("e/1", end).is_none());
        assert_eq!(topics(s.matches("e/#", end)), ["e/2"]);
        assert_eq!(s.purge_expired(end), 1);
        assert_eq!(s.len(), 1);
        assert_eq!(s.bytes(), 4);
    }
}
