//! Session tests with a simulated clock: a harness feeds packets and time, decodes what the
//! connection writes with the codec, and plays the broker's part by hand.

mod connect;
mod qos;
mod v5;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use super::*;
use crate::mqtt::codec::{
    Ack, Connect, MqttString, Packet, Properties, ProtocolVersion, Publish, QoS, ReasonCode,
    RetainHandling, Subscribe, SubscriptionOptions,
};

/// Accepts user "u" with password "p" (or no user name); refuses publishing and subscribing
/// under `deny/`.
pub(super) struct TestAuth;

impl AuthHook for TestAuth {
    fn authenticate(&self, c: &ClientInfo, password: Option<&Bytes>) -> Result<(), ReasonCode> {
        match (&c.username, password) {
            (None, _) => Ok(()),
            (Some(u), Some(p)) if u == "u" && &p[..] == b"p" => Ok(()),
            _ => Err(ReasonCode::BadUserNameOrPassword),
        }
    }

    fn authorize(&self, _: &ClientInfo, _: Access, topic: &str) -> bool {
        !topic.starts_with("deny/")
    }
}

pub(super) fn s(x: &str) -> MqttString {
    MqttString::try_from(x).unwrap()
}

pub(super) fn connect_packet(
    v: ProtocolVersion,
    id: &str,
    clean: bool,
    keep_alive: u16,
) -> Box<Connect> {
    Box::new(Connect {
        protocol: v,
        clean_start: clean,
        keep_alive,
        properties: Properties::default(),
        client_id: s(id),
        will: None,
        username: None,
        password: None,
    })
}

pub(super) fn publish(topic: &str, qos: QoS, id: u16, payload: &'static [u8]) -> Publish {
    Publish {
        qos,
        topic: s(topic),
        packet_id: id,
        payload: Bytes::from_static(payload),
        ..Default::default()
    }
}

pub(super) fn subscribe(id: u16, filter: &str, qos: QoS) -> Subscribe {
    Subscribe {
        packet_id: id,
        properties: Properties::default(),
        filters: vec![(
            s(filter),
            SubscriptionOptions {
                qos,
                ..Default::default()
            },
        )],
    }
}

pub(super) fn message(topic: &str, qos: QoS, payload: &'static [u8]) -> Arc<Message> {
    Arc::new(Message {
        topic: s(topic),
        payload: Bytes::from_static(payload),
        qos,
        retain: false,
        publisher: s("someone-else"),
        properties: Properties::default(),
        expires_at: None,
    })
}

pub(super) struct Harness {
    pub conn: Connection,
    pub now: Instant,
    pub config: Arc<SessionConfig>,
}

impl Harness {
    pub fn new(config: SessionConfig) -> Harness {
        let now = Instant::now();
        let config = Arc::new(config);
        Harness {
            conn: Connection::new(Arc::clone(&config), Arc::new(TestAuth), None, now),
            now,
            config,
        }
    }

    /// CONNECT, attach `existing` (as the broker would), and return CONNACK and what follows.
    pub fn connect_with(&mut self, c: Box<Connect>, existing: Option<SessionState>) -> Vec<Packet> {
        self.packet(Packet::Connect(c));
        let actions = self.actions();
        assert!(
            matches!(actions.as_slice(), [Action::OpenSession { .. }]),
            "expected OpenSession, got {actions:?}"
        );
        self.conn.attach_session(existing, self.now);
        self.recv()
    }

    pub fn connect(v: ProtocolVersion) -> Harness {
        let mut h = Harness::new(SessionConfig::default());
        let out = h.connect_with(connect_packet(v, "c1", true, 0), None);
        assert!(matches!(&out[..], [Packet::ConnAck(a)] if a.reason == ReasonCode::Success));
        h
    }

    pub fn packet(&mut self, p: Packet) {
        self.conn.handle_packet(p, self.now);
    }

    pub fn advance(&mut self, d: Duration) {
        self.now += d;
        self.conn.handle_timeout(self.now);
    }

    pub fn actions(&mut self) -> Vec<Action> {
        std::iter::from_fn(|| self.conn.poll_action()).collect()
    }

    /// Decodes everything the connection wrote, as the client would.
    pub fn recv(&mut self) -> Vec<Packet> {
        let mut buf = BytesMut::new();
        while let Some(b) = self.conn.poll_transmit(self.now) {
            buf.extend_from_slice(&b);
        }
        let v = self.conn.protocol_version();
        let mut out = Vec::new();
        while let Some(p) = Packet::decode(&mut buf, v, usize::MAX).unwrap() {
            out.push(p);
        }
        assert!(buf.is_empty(), "partial packet written");
        out
    }

    pub fn deliver(&mut self, m: &Arc<Message>, filter: &str) {
        let d = Delivery {
            message: Arc::clone(m),
            filter: s(filter),
            from_retained: false,
        };
        self.conn.deliver(&d, self.now);
    }

    /// Subscribes and drains SUBACK and actions.
    pub fn subscribe(&mut self, sub: Subscribe) -> (Vec<Packet>, Vec<Action>) {
        self.packet(Packet::Subscribe(sub));
        (self.recv(), self.actions())
    }

    /// The session handed back in the last `Closed` action.
    pub fn closed(&mut self) -> (ReasonCode, Option<SessionState>, SessionExpiry, Vec<Action>) {
        let mut actions = self.actions();
        let Some(Action::Closed {
            reason,
            session,
            expiry,
        }) = actions.pop()
        else {
            panic!("last action is not Closed: {actions:?}")
        };
        (reason, session, expiry, actions)
    }
}

pub(super) fn ack(id: u16) -> Ack {
    Ack::new(id)
}

pub(super) fn publishes(packets: &[Packet]) -> Vec<&Publish> {
    packets
        .iter()
        .filter_map(|p| match p {
            Packet::Publish(p) => Some(p),
            _ => None,
        })
        .collect()
}

pub(super) fn options(qos: QoS, rh: RetainHandling) -> SubscriptionOptions {
    SubscriptionOptions {
        qos,
        retain_handling: rh,
        ..Default::default()
    }
}
