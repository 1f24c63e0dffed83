//! The message a node forwards to another: EMQX 4's `#message{}` record as a tuple, so a stock
//! BEAM process in the route groups reads it with plain pattern matching (DESIGN.md section 5,
//! ROUTE-PROTOCOL rule 6; EMQX 4 `include/emqx.hrl` `-record(message, ...)`):
//!
//! `{message, Id, QoS, From, Flags, Headers, Topic, Payload, Timestamp}`
//!
//! Decoding is defensive: a peer's term of the wrong shape is a [`MessageError`], never a panic.
//! Unknown flag, header and property keys are ignored (a newer peer may send more).
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use bytes::Bytes;

use crate::dist::etf::{Atom, Term};
use crate::router::TopicName;

/// Why a term is not a well-formed message or dispatch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    /// Not a tuple of the expected tag and arity.
    #[error("not a {0} tuple")]
    Shape(&'static str),
    /// A field has the wrong type or an out-of-range value.
    #[error("bad {0}")]
    Field(&'static str),
    /// The topic is not a valid MQTT topic name.
    #[error("bad topic")]
    Topic,
}

/// Who published: a client id, or an atom (a node, or `beamq_interop` for Erlang publishes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Publisher {
    /// An MQTT client id.
    Client(Bytes),
    /// An atom.
    Atom(Atom),
}

/// `Flags`: `#{retain => boolean(), dup => boolean(), sys => boolean()}`; missing keys false.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flags {
    /// RETAIN as published.
    pub retain: bool,
    /// DUP as published.
    pub dup: bool,
    /// A `$SYS` message.
    pub sys: bool,
}

/// The MQTT 5 properties that travel with a message, under EMQX's property names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageProperties {
    /// `'Payload-Format-Indicator'`: 0 or 1.
    pub payload_format_indicator: Option<u8>,
    /// `'Message-Expiry-Interval'`: seconds remaining when sent.
    pub message_expiry_interval: Option<u32>,
    /// `'Content-Type'`.
    pub content_type: Option<Bytes>,
    /// `'Response-Topic'`.
    pub response_topic: Option<Bytes>,
    /// `'Correlation-Data'`.
    pub correlation_data: Option<Bytes>,
    /// `'User-Property'`, in order.
    pub user_properties: Vec<(Bytes, Bytes)>,
}

/// `Headers`: every key optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers {
    /// `proto_ver`: 3, 4 or 5.
    pub proto_ver: Option<u8>,
    /// `username`: `undefined` is `None`.
    pub username: Option<Bytes>,
    /// `peerhost`: `{A,B,C,D}` (or an 8-tuple for IPv6).
    pub peerhost: Option<IpAddr>,
    /// `properties`, when present.
    pub properties: Option<MessageProperties>,
}

/// One `#message{}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterMessage {
    /// 16 bytes `<<TimestampMicros:64, NodeHash:48, Seq:16>>` when we make it; opaque when
    /// received.
    pub id: Bytes,
    /// The QoS published with (the receiving node downgrades per subscription).
    pub qos: u8,
    /// The publisher.
    pub from: Publisher,
    /// Flags.
    pub flags: Flags,
    /// Headers.
    pub headers: Headers,
    /// The topic name.
    pub topic: Bytes,
    /// The payload.
    pub payload: Bytes,
    /// Milliseconds since the epoch.
    pub timestamp: i64,
}

/// A message id as EMQX 4's `emqx_guid:gen/0` lays it out: `<<Micros:64, NodeHash:48, Seq:16>>`.
pub fn message_id(micros: u64, node_hash: u64, seq: u16) -> Bytes {
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&micros.to_be_bytes());
    id[8..14].copy_from_slice(&node_hash.to_be_bytes()[2..]);
    id[14..].copy_from_slice(&seq.to_be_bytes());
    Bytes::copy_from_slice(&id)
}

const PFI: &str = "Payload-Format-Indicator";
const MEI: &str = "Message-Expiry-Interval";
const CT: &str = "Content-Type";
const RT: &str = "Response-Topic";
const CD: &str = "Correlation-Data";
const UP: &str = "User-Property";

fn bool_term(b: bool) -> Term {
    Term::atom(if b { "true" } else { "false" })
}

fn ip_term(ip: &IpAddr) -> Term {
    match ip {
        IpAddr::V4(v4) => Term::tuple(
            v4.octets()
                .iter()
                .map(|&o| Term::Int(i64::from(o)))
                .collect::<Vec<_>>(),
        ),
        IpAddr::V6(v6) => Term::tuple(
            v6.segments()
                .iter()
                .map(|&s| Term::Int(i64::from(s)))
                .collect::<Vec<_>>(),
        ),
    }
}

impl MessageProperties {
    fn to_term(&self) -> Term {
        let mut m = Vec::new();
        if let Some(v) = self.payload_format_indicator {
            m.push((Term::atom(PFI), Term::Int(i64::from(v))));
        }
        if let Some(v) = self.message_expiry_interval {
            m.push((Term::atom(MEI), Term::Int(i64::from(v))));
        }
        let bins = [
            (CT, &self.content_type),
            (RT, &self.response_topic),
            (CD, &self.correlation_data),
        ];
        for (k, v) in bins {
            if let Some(v) = v {
                m.push((Term::atom(k), Term::Binary(v.clone())));
            }
        }
        if !self.user_properties.is_empty() {
            let list = self
                .user_properties
                .iter()
                .map(|(k, v)| Term::tuple(vec![Term::Binary(k.clone()), Term::Binary(v.clone())]))
                .collect::<Vec<_>>();
            m.push((Term::atom(UP), Term::list(list)));
        }
        Term::map(m)
    }

    fn from_term(t: &Term) -> Result<Self, MessageError> {
        let pairs = t.as_map().ok_or(MessageError::Field("properties"))?;
        let mut p = MessageProperties::default();
        for (k, v) in pairs {
            let Some(k) = k.as_atom() else { continue };
            match k.as_str() {
                PFI => {
                    let x = v.as_int().filter(|x| (0..=1).contains(x));
                    p.payload_format_indicator = Some(x.ok_or(MessageError::Field(PFI))? as u8);
                }
                MEI => {
                    p.message_expiry_interval = Some(v.as_u32().ok_or(MessageError::Field(MEI))?)
                }
                CT => p.content_type = Some(binary(v, CT)?),
                RT => p.response_topic = Some(binary(v, RT)?),
                CD => p.correlation_data = Some(binary(v, CD)?),
                UP => {
                    let list = match v {
                        Term::Nil => &[][..],
                        _ => v.as_list().ok_or(MessageError::Field(UP))?,
                    };
                    for e in list {
                        let [a, b] = e.as_tuple_n::<2>().ok_or(MessageError::Field(UP))?;
                        p.user_properties.push((binary(a, UP)?, binary(b, UP)?));
                    }
                }
                _ => {}
            }
        }
        Ok(p)
    }
}

fn binary(t: &Term, what: &'static str) -> Result<Bytes, MessageError> {
    t.as_binary().cloned().ok_or(MessageError::Field(what))
}

fn boolean(t: &Term, what: &'static str) -> Result<bool, MessageError> {
    match t.as_atom().map(Atom::as_str) {
        Some("true") => Ok(true),
        Some("false") => Ok(false),
        _ => Err(MessageError::Field(what)),
    }
}

fn ip(t: &Term) -> Result<IpAddr, MessageError> {
    let parts = t.as_tuple().ok_or(MessageError::Field("peerhost"))?;
    let nums = |max: i64| -> Result<Vec<i64>, MessageError> {
        parts
            .iter()
            .map(|p| {
                p.as_int()
                    .filter(|x| (0..=max).contains(x))
                    .ok_or(MessageError::Field("peerhost"))
            })
            .collect()
    };
    match parts.len() {
        4 => {
            let n = nums(255)?;
            Ok(IpAddr::V4(Ipv4Addr::new(
                n[0] as u8, n[1] as u8, n[2] as u8, n[3] as u8,
            )))
        }
        8 => {
            let n = nums(65535)?;
            let mut s = [0u16; 8];
            for (d, x) in s.iter_mut().zip(n) {
                *d = x as u16;
            }
            Ok(IpAddr::V6(Ipv6Addr::from(s)))
        }
        _ => Err(MessageError::Field("peerhost")),
    }
}

impl Flags {
    fn to_term(self) -> Term {
        Term::map(vec![
            (Term::atom("retain"), bool_term(self.retain)),
            (Term::atom("dup"), bool_term(self.dup)),
            (Term::atom("sys"), bool_term(self.sys)),
        ])
    }

    fn from_term(t: &Term) -> Result<Self, MessageError> {
        let pairs = t.as_map().ok_or(MessageError::Field("flags"))?;
        let mut f = Flags::default();
        for (k, v) in pairs {
            match k.as_atom().map(Atom::as_str) {
                Some("retain") => f.retain = boolean(v, "flags")?,
                Some("dup") => f.dup = boolean(v, "flags")?,
                Some("sys") => f.sys = boolean(v, "flags")?,
                _ => {}
            }
        }
        Ok(f)
    }
}

impl Headers {
    fn to_term(&self) -> Term {
        let mut m = Vec::new();
        if let Some(v) = self.proto_ver {
            m.push((Term::atom("proto_ver"), Term::Int(i64::from(v))));
        }
        if let Some(u) = &self.username {
            m.push((Term::atom("username"), Term::Binary(u.clone())));
        }
        if let Some(ip) = &self.peerhost {
            m.push((Term::atom("peerhost"), ip_term(ip)));
        }
        if let Some(p) = &self.properties {
            m.push((Term::atom("properties"), p.to_term()));
        }
        Term::map(m)
    }

    fn from_term(t: &Term) -> Result<Self, MessageError> {
        let pairs = t.as_map().ok_or(MessageError::Field("headers"))?;
        let mut h = Headers::default();
        for (k, v) in pairs {
            match k.as_atom().map(Atom::as_str) {
                Some("proto_ver") => {
                    let x = v.as_int().filter(|x| (3..=5).contains(x));
                    h.proto_ver = Some(x.ok_or(MessageError::Field("proto_ver"))? as u8);
                }
                Some("username") if v.is_atom("undefined") => h.username = None,
                Some("username") => h.username = Some(binary(v, "username")?),
                Some("peerhost") => h.peerhost = Some(ip(v)?),
                Some("properties") => h.properties = Some(MessageProperties::from_term(v)?),
                _ => {}
            }
        }
        Ok(h)
    }
}

impl ClusterMessage {
    /// The `#message{}` tuple.
    pub fn to_term(&self) -> Term {
        let from = match &self.from {
            Publisher::Client(c) => Term::Binary(c.clone()),
            Publisher::Atom(a) => Term::Atom(*a),
        };
        Term::tuple(vec![
            Term::atom("message"),
            Term::Binary(self.id.clone()),
            Term::Int(i64::from(self.qos)),
            from,
            self.flags.to_term(),
            self.headers.to_term(),
            Term::Binary(self.topic.clone()),
            Term::Binary(self.payload.clone()),
            Term::Int(self.timestamp),
        ])
    }

    /// Reads a `#message{}` tuple.
    pub fn from_term(t: &Term) -> Result<Self, MessageError> {
        let [tag, id, qos, from, flags, headers, topic, payload, ts] =
            t.as_tuple_n::<9>().ok_or(MessageError::Shape("message"))?;
        if !tag.is_atom("message") {
            return Err(MessageError::Shape("message"));
        }
        let qos = qos
            .as_int()
            .filter(|q| (0..=2).contains(q))
            .ok_or(MessageError::Field("qos"))? as u8;
        let from = match from {
            Term::Binary(b) => Publisher::Client(b.clone()),
            Term::Atom(a) => Publisher::Atom(*a),
            _ => return Err(MessageError::Field("from")),
        };
        let topic = binary(topic, "topic")?;
        TopicName::from_bytes(&topic).map_err(|_| MessageError::Topic)?;
        Ok(ClusterMessage {
            id: binary(id, "id")?,
            qos,
            from,
            flags: Flags::from_term(flags)?,
            headers: Headers::from_term(headers)?,
            topic,
            payload: binary(payload, "payload")?,
            timestamp: ts.as_int().ok_or(MessageError::Field("timestamp"))?,
        })
    }
}

/// `{dispatch, Topic, {delivery, Sender, Message}}`: what one node sends another's broker
/// (EMQX 4 `emqx_broker:dispatch/2` as a message). `Topic` is the publish topic, matched by the
/// receiver against its local subscriptions, and it is the topic delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dispatch {
    /// The publish topic.
    pub topic: Bytes,
    /// The sending process (EMQX: the publisher's channel; beamq: the sending broker), when
    /// it is a pid.
    pub sender: Option<crate::dist::etf::Pid>,
    /// The message.
    pub message: ClusterMessage,
}

impl Dispatch {
    /// The dispatch term for `message` to the publish topic `topic`, from `sender`.
    pub fn term(topic: &Bytes, sender: crate::dist::etf::Pid, message: &ClusterMessage) -> Term {
        Term::tuple(vec![
            Term::atom("dispatch"),
            Term::Binary(topic.clone()),
            Term::tuple(vec![
                Term::atom("delivery"),
                Term::Pid(sender),
                message.to_term(),
            ]),
        ])
    }

    /// Reads a dispatch term.
    pub fn from_term(t: &Term) -> Result<Self, MessageError> {
        let [tag, topic, delivery] = t.as_tuple_n::<3>().ok_or(MessageError::Shape("dispatch"))?;
        if !tag.is_atom("dispatch") {
            return Err(MessageError::Shape("dispatch"));
        }
        let [dtag, sender, message] = delivery
            .as_tuple_n::<3>()
            .ok_or(MessageError::Shape("delivery"))?;
        if !dtag.is_atom("delivery") {
            return Err(MessageError::Shape("delivery"));
        }
        let topic = binary(topic, "topic")?;
        TopicName::from_bytes(&topic).map_err(|_| MessageError::Topic)?;
        Ok(Dispatch {
            topic,
            sender: sender.as_pid(),
            message: ClusterMessage::from_term(message)?,
        })
    }
}

#[cfg(test)]
#[path = "message_tests.rs"]
mod tests;
