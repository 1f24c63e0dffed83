//! MQTT 5 properties (MQTT 5.0 §2.2.2): one struct holding every property, decoded with the
//! packet it belongs to so that a property not allowed there is a malformed packet and a repeated
//! single-valued property is a protocol error, as §2.2.2.2 and each packet's section require.
//!
//! Strings and binary values are slices of the received buffer; the two repeatable properties
//! (User Property, Subscription Identifier) use a `Vec` that only allocates when present.

use bytes::{BufMut, Bytes, BytesMut};

use super::error::{CodecError, Result};
use super::property_writer::Encoder;
use super::wire::{
    read_binary, read_string, read_u16, read_u32, read_u8, read_varint, varint_len, write_varint,
    MqttString,
};
use super::QoS;

/// Property identifiers (§2.2.2.2 table 2-4).
#[allow(missing_docs)]
pub mod id {
    pub const PAYLOAD_FORMAT_INDICATOR: u8 = 0x01;
    pub const MESSAGE_EXPIRY_INTERVAL: u8 = 0x02;
    pub const CONTENT_TYPE: u8 = 0x03;
    pub const RESPONSE_TOPIC: u8 = 0x08;
    pub const CORRELATION_DATA: u8 = 0x09;
    pub const SUBSCRIPTION_IDENTIFIER: u8 = 0x0B;
    pub const SESSION_EXPIRY_INTERVAL: u8 = 0x11;
    pub const ASSIGNED_CLIENT_IDENTIFIER: u8 = 0x12;
    pub const SERVER_KEEP_ALIVE: u8 = 0x13;
    pub const AUTHENTICATION_METHOD: u8 = 0x15;
    pub const AUTHENTICATION_DATA: u8 = 0x16;
    pub const REQUEST_PROBLEM_INFORMATION: u8 = 0x17;
    pub const WILL_DELAY_INTERVAL: u8 = 0x18;
    pub const REQUEST_RESPONSE_INFORMATION: u8 = 0x19;
    pub const RESPONSE_INFORMATION: u8 = 0x1A;
    pub const SERVER_REFERENCE: u8 = 0x1C;
    pub const REASON_STRING: u8 = 0x1F;
    pub const RECEIVE_MAXIMUM: u8 = 0x21;
    pub const TOPIC_ALIAS_MAXIMUM: u8 = 0x22;
    pub const TOPIC_ALIAS: u8 = 0x23;
    pub const MAXIMUM_QOS: u8 = 0x24;
    pub const RETAIN_AVAILABLE: u8 = 0x25;
    pub const USER_PROPERTY: u8 = 0x26;
    pub const MAXIMUM_PACKET_SIZE: u8 = 0x27;
    pub const WILDCARD_SUBSCRIPTION_AVAILABLE: u8 = 0x28;
    pub const SUBSCRIPTION_IDENTIFIER_AVAILABLE: u8 = 0x29;
    pub const SHARED_SUBSCRIPTION_AVAILABLE: u8 = 0x2A;
}

/// Where a property list appears; decides which identifiers are allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PropertyContext {
    /// CONNECT variable header.
    Connect,
    /// Will Properties in the CONNECT payload.
    Will,
    /// CONNACK.
    ConnAck,
    /// PUBLISH.
    Publish,
    /// PUBACK, PUBREC, PUBREL, PUBCOMP.
    PubAck,
    /// SUBSCRIBE.
    Subscribe,
    /// SUBACK.
    SubAck,
    /// UNSUBSCRIBE.
    Unsubscribe,
    /// UNSUBACK.
    UnsubAck,
    /// DISCONNECT.
    Disconnect,
    /// AUTH.
    Auth,
}

impl PropertyContext {
    pub(super) fn name(self) -> &'static str {
        match self {
            PropertyContext::Connect => "CONNECT",
            PropertyContext::Will => "Will Properties",
            PropertyContext::ConnAck => "CONNACK",
            PropertyContext::Publish => "PUBLISH",
            PropertyContext::PubAck => "PUBACK/PUBREC/PUBREL/PUBCOMP",
            PropertyContext::Subscribe => "SUBSCRIBE",
            PropertyContext::SubAck => "SUBACK",
            PropertyContext::Unsubscribe => "UNSUBSCRIBE",
            PropertyContext::UnsubAck => "UNSUBACK",
            PropertyContext::Disconnect => "DISCONNECT",
            PropertyContext::Auth => "AUTH",
        }
    }

    /// Whether property `pid` may appear here (the "Used in" column of table 2-4).
    pub fn allows(self, pid: u8) -> bool {
        use PropertyContext::*;
        match pid {
            id::PAYLOAD_FORMAT_INDICATOR
            | id::MESSAGE_EXPIRY_INTERVAL
            | id::CONTENT_TYPE
            | id::RESPONSE_TOPIC
            | id::CORRELATION_DATA => matches!(self, Publish | Will),
            id::SUBSCRIPTION_IDENTIFIER => matches!(self, Publish | Subscribe),
            id::SESSION_EXPIRY_INTERVAL => matches!(self, Connect | ConnAck | Disconnect),
            id::ASSIGNED_CLIENT_IDENTIFIER
            | id::SERVER_KEEP_ALIVE
            | id::RESPONSE_INFORMATION
            | id::MAXIMUM_QOS
            | id::RETAIN_AVAILABLE
            | id::WILDCARD_SUBSCRIPTION_AVAILABLE
            | id::SUBSCRIPTION_IDENTIFIER_AVAILABLE
            | id::SHARED_SUBSCRIPTION_AVAILABLE => self == ConnAck,
            id::AUTHENTICATION_METHOD | id::AUTHENTICATION_DATA => {
                matches!(self, Connect | ConnAck | Auth)
            }
            id::REQUEST_PROBLEM_INFORMATION | id::REQUEST_RESPONSE_INFORMATION => self == Connect,
            id::WILL_DELAY_INTERVAL => self == Will,
            id::SERVER_REFERENCE => matches!(self, ConnAck | Disconnect),
            id::REASON_STRING => {
                !matches!(self, Connect | Will | Publish | Subscribe | Unsubscribe)
            }
            id::RECEIVE_MAXIMUM | id::TOPIC_ALIAS_MAXIMUM | id::MAXIMUM_PACKET_SIZE => {
                matches!(self, Connect | ConnAck)
            }
            id::TOPIC_ALIAS => self == Publish,
            id::USER_PROPERTY => true,
            _ => false,
        }
    }
}

/// A packet's MQTT 5 properties: a pointer-sized handle that allocates only when a property
/// is set. Most packets (every 3.1.1 packet, most v5 PUBLISHes) carry none, and holding the
/// ~430 bytes of [`PropertyValues`] inline made every `Publish` ~500 bytes to initialise and
/// move through the decode and delivery layers (BENCHMARKS.md, "MQTT codec"). Reads go
/// through `Deref` (an absent list reads as all-`None`); the first write through `DerefMut`
/// allocates.
#[derive(Clone, Default)]
pub struct Properties(Option<Box<PropertyValues>>);

/// The absent property list every empty [`Properties`] reads as.
static NO_PROPERTIES: PropertyValues = PropertyValues::EMPTY;

impl std::ops::Deref for Properties {
    type Target = PropertyValues;
    fn deref(&self) -> &PropertyValues {
        self.0.as_deref().unwrap_or(&NO_PROPERTIES)
    }
}

impl std::ops::DerefMut for Properties {
    fn deref_mut(&mut self) -> &mut PropertyValues {
        self.0.get_or_insert_with(Box::default)
    }
}

impl PartialEq for Properties {
    fn eq(&self, other: &Properties) -> bool {
        **self == **other
    }
}

impl Eq for Properties {}

impl std::fmt::Debug for Properties {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        (**self).fmt(f)
    }
}

impl From<PropertyValues> for Properties {
    fn from(v: PropertyValues) -> Properties {
        if v == PropertyValues::EMPTY {
            Properties(None)
        } else {
            Properties(Some(Box::new(v)))
        }
    }
}

/// Every MQTT 5 property; `None`/empty means absent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct PropertyValues {
    pub payload_format_indicator: Option<bool>,
    pub message_expiry_interval: Option<u32>,
    pub content_type: Option<MqttString>,
    pub response_topic: Option<MqttString>,
    pub correlation_data: Option<Bytes>,
    /// Several in a server-to-client PUBLISH (one per matching subscription), one in SUBSCRIBE.
    pub subscription_identifiers: Vec<u32>,
    pub session_expiry_interval: Option<u32>,
    pub assigned_client_identifier: Option<MqttString>,
    pub server_keep_alive: Option<u16>,
    pub authentication_method: Option<MqttString>,
    pub authentication_data: Option<Bytes>,
    pub request_problem_information: Option<bool>,
    pub will_delay_interval: Option<u32>,
    pub request_response_information: Option<bool>,
    pub response_information: Option<MqttString>,
    pub server_reference: Option<MqttString>,
    pub reason_string: Option<MqttString>,
    pub receive_maximum: Option<u16>,
    pub topic_alias_maximum: Option<u16>,
    pub topic_alias: Option<u16>,
    /// Only QoS 0 or 1 may be sent (§3.2.2.3.4).
    pub maximum_qos: Option<QoS>,
    pub retain_available: Option<bool>,
    pub user_properties: Vec<(MqttString, MqttString)>,
    pub maximum_packet_size: Option<u32>,
    pub wildcard_subscription_available: Option<bool>,
    pub subscription_identifier_available: Option<bool>,
    pub shared_subscription_available: Option<bool>,
}

fn set_once<T>(slot: &mut Option<T>, pid: u8, v: T) -> Result<()> {
    if slot.is_some() {
        return Err(CodecError::DuplicateProperty(pid));
    }
    *slot = Some(v);
    Ok(())
}

fn flag(pid: u8, b: u8) -> Result<bool> {
    match b {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(CodecError::InvalidPropertyValue(pid)),
    }
}

fn nonzero_u16(pid: u8, v: u16) -> Result<u16> {
    if v == 0 {
        return Err(CodecError::InvalidPropertyValue(pid));
    }
    Ok(v)
}

impl PropertyValues {
    /// No property set.
    pub const EMPTY: PropertyValues = PropertyValues {
        payload_format_indicator: None,
        message_expiry_interval: None,
        content_type: None,
        response_topic: None,
        correlation_data: None,
        subscription_identifiers: Vec::new(),
        session_expiry_interval: None,
        assigned_client_identifier: None,
        server_keep_alive: None,
        authentication_method: None,
        authentication_data: None,
        request_problem_information: None,
        will_delay_interval: None,
        request_response_information: None,
        response_information: None,
        server_reference: None,
        reason_string: None,
        receive_maximum: None,
        topic_alias_maximum: None,
        topic_alias: None,
        maximum_qos: None,
        retain_available: None,
        user_properties: Vec::new(),
        maximum_packet_size: None,
        wildcard_subscription_available: None,
        subscription_identifier_available: None,
        shared_subscription_available: None,
    };
}

impl Properties {
    /// True when no property is set (what a 3.1.1 peer can be sent without loss).
    pub fn is_empty(&self) -> bool {
        self.0
            .as_deref()
            .is_none_or(|v| *v == PropertyValues::EMPTY)
    }

    /// Reads a Property Length and the properties it covers, validated for `ctx`. An empty
    /// list (the common case) allocates nothing.
    pub fn read(buf: &mut Bytes, ctx: PropertyContext) -> Result<Properties> {
        let len = read_varint(buf)? as usize;
        if buf.len() < len {
            return Err(CodecError::Truncated);
        }
        if len == 0 {
            return Ok(Properties(None));
        }
        let mut props = buf.split_to(len);
        let mut p = Box::<PropertyValues>::default();
        while !props.is_empty() {
            let raw = read_varint(&mut props)?;
            let pid = u8::try_from(raw).map_err(|_| CodecError::Malformed("property id"))?;
            if !ctx.allows(pid) {
                if is_known(pid) {
                    return Err(CodecError::PropertyNotAllowed {
                        id: pid,
                        context: ctx.name(),
                    });
                }
                return Err(CodecError::UnknownProperty(pid));
            }
            p.read_one(pid, &mut props, ctx)?;
        }
        Ok(Properties(Some(p)))
    }

    /// Length of the property list without its length prefix; fails if a set property is not
    /// allowed in `ctx`.
    pub fn body_len(&self, ctx: PropertyContext) -> Result<usize> {
        match self.0.as_deref() {
            None => Ok(0),
            Some(v) => v.body_len(ctx),
        }
    }

    /// Length including the Property Length prefix.
    pub fn wire_len(&self, ctx: PropertyContext) -> Result<usize> {
        let n = self.body_len(ctx)?;
        Ok(varint_len(n) + n)
    }

    /// Writes the Property Length and the properties.
    pub fn write(&self, out: &mut BytesMut, ctx: PropertyContext) -> Result<()> {
        match self.0.as_deref() {
            None => {
                out.put_u8(0);
                Ok(())
            }
            Some(v) => v.write(out, ctx),
        }
    }
}

impl PropertyValues {
    fn read_one(&mut self, pid: u8, b: &mut Bytes, ctx: PropertyContext) -> Result<()> {
        match pid {
            id::PAYLOAD_FORMAT_INDICATOR => {
                let v = flag(pid, read_u8(b)?)?;
                set_once(&mut self.payload_format_indicator, pid, v)
            }
            id::MESSAGE_EXPIRY_INTERVAL => {
                set_once(&mut self.message_expiry_interval, pid, read_u32(b)?)
            }
            id::CONTENT_TYPE => set_once(&mut self.content_type, pid, read_string(b)?),
            id::RESPONSE_TOPIC => set_once(&mut self.response_topic, pid, read_string(b)?),
            id::CORRELATION_DATA => set_once(&mut self.correlation_data, pid, read_binary(b)?),
            id::SUBSCRIPTION_IDENTIFIER => {
                let v = read_varint(b)?;
                if v == 0 {
                    return Err(CodecError::InvalidPropertyValue(pid));
                }
                if ctx == PropertyContext::Subscribe && !self.subscription_identifiers.is_empty() {
                    return Err(CodecError::DuplicateProperty(pid));
                }
                self.subscription_identifiers.push(v);
                Ok(())
            }
            id::SESSION_EXPIRY_INTERVAL => {
                set_once(&mut self.session_expiry_interval, pid, read_u32(b)?)
            }
            id::ASSIGNED_CLIENT_IDENTIFIER => {
                set_once(&mut self.assigned_client_identifier, pid, read_string(b)?)
            }
            id::SERVER_KEEP_ALIVE => set_once(&mut self.server_keep_alive, pid, read_u16(b)?),
            id::AUTHENTICATION_METHOD => {
                set_once(&mut self.authentication_method, pid, read_string(b)?)
            }
            id::AUTHENTICATION_DATA => {
                set_once(&mut self.authentication_data, pid, read_binary(b)?)
            }
            id::REQUEST_PROBLEM_INFORMATION => {
                let v = flag(pid, read_u8(b)?)?;
                set_once(&mut self.request_problem_information, pid, v)
            }
            id::WILL_DELAY_INTERVAL => set_once(&mut self.will_delay_interval, pid, read_u32(b)?),
            id::REQUEST_RESPONSE_INFORMATION => {
                let v = flag(pid, read_u8(b)?)?;
                set_once(&mut self.request_response_information, pid, v)
            }
            id::RESPONSE_INFORMATION => {
                set_once(&mut self.response_information, pid, read_string(b)?)
            }
            id::SERVER_REFERENCE => set_once(&mut self.server_reference, pid, read_string(b)?),
            id::REASON_STRING => set_once(&mut self.reason_string, pid, read_string(b)?),
            id::RECEIVE_MAXIMUM => {
                let v = nonzero_u16(pid, read_u16(b)?)?;
                set_once(&mut self.receive_maximum, pid, v)
            }
            id::TOPIC_ALIAS_MAXIMUM => set_once(&mut self.topic_alias_maximum, pid, read_u16(b)?),
            // Alias 0 is left to the session, which answers 0x94 Topic Alias invalid (§3.3.2.3.4).
            id::TOPIC_ALIAS => set_once(&mut self.topic_alias, pid, read_u16(b)?),
            id::MAXIMUM_QOS => {
                let q = match read_u8(b)? {
                    0 => QoS::AtMostOnce,
                    1 => QoS::AtLeastOnce,
                    _ => return Err(CodecError::InvalidPropertyValue(pid)),
                };
                set_once(&mut self.maximum_qos, pid, q)
            }
            id::RETAIN_AVAILABLE => {
                let v = flag(pid, read_u8(b)?)?;
                set_once(&mut self.retain_available, pid, v)
            }
            id::USER_PROPERTY => {
                let k = read_string(b)?;
                let v = read_string(b)?;
                self.user_properties.push((k, v));
                Ok(())
            }
            id::MAXIMUM_PACKET_SIZE => {
                let v = read_u32(b)?;
                if v == 0 {
                    return Err(CodecError::InvalidPropertyValue(pid));
                }
                set_once(&mut self.maximum_packet_size, pid, v)
            }
            id::WILDCARD_SUBSCRIPTION_AVAILABLE => {
                let v = flag(pid, read_u8(b)?)?;
                set_once(&mut self.wildcard_subscription_available, pid, v)
            }
            id::SUBSCRIPTION_IDENTIFIER_AVAILABLE => {
                let v = flag(pid, read_u8(b)?)?;
                set_once(&mut self.subscription_identifier_available, pid, v)
            }
            id::SHARED_SUBSCRIPTION_AVAILABLE => {
                let v = flag(pid, read_u8(b)?)?;
                set_once(&mut self.shared_subscription_available, pid, v)
            }
            _ => Err(CodecError::UnknownProperty(pid)),
        }
    }

    /// Length of the property list without its length prefix; fails if a set property is not
    /// allowed in `ctx`.
    pub fn body_len(&self, ctx: PropertyContext) -> Result<usize> {
        let mut enc = Encoder {
            out: None,
            len: 0,
            ctx,
        };
        self.encode(&mut enc)?;
        Ok(enc.len)
    }

    /// Length including the Property Length prefix.
    pub fn wire_len(&self, ctx: PropertyContext) -> Result<usize> {
        let n = self.body_len(ctx)?;
        Ok(varint_len(n) + n)
    }

    /// Writes the Property Length and the properties.
    pub fn write(&self, out: &mut BytesMut, ctx: PropertyContext) -> Result<()> {
        let n = self.body_len(ctx)?;
        write_varint(out, n)?;
        let mut enc = Encoder {
            out: Some(out),
            len: 0,
            ctx,
        };
        self.encode(&mut enc)
    }

    fn encode(&self, e: &mut Encoder<'_>) -> Result<()> {
        if let Some(v) = self.payload_format_indicator {
            e.byte(id::PAYLOAD_FORMAT_INDICATOR, u8::from(v))?;
        }
        if let Some(v) = self.message_expiry_interval {
            e.u32(id::MESSAGE_EXPIRY_INTERVAL, v)?;
        }
        if let Some(v) = &self.content_type {
            e.bin(id::CONTENT_TYPE, v.as_bytes())?;
        }
        if let Some(v) = &self.response_topic {
            e.bin(id::RESPONSE_TOPIC, v.as_bytes())?;
        }
        if let Some(v) = &self.correlation_data {
            e.bin(id::CORRELATION_DATA, v)?;
        }
        for &v in &self.subscription_identifiers {
            e.varint(id::SUBSCRIPTION_IDENTIFIER, v)?;
        }
        if let Some(v) = self.session_expiry_interval {
            e.u32(id::SESSION_EXPIRY_INTERVAL, v)?;
        }
        if let Some(v) = &self.assigned_client_identifier {
            e.bin(id::ASSIGNED_CLIENT_IDENTIFIER, v.as_bytes())?;
        }
        if let Some(v) = self.server_keep_alive {
            e.u16(id::SERVER_KEEP_ALIVE, v)?;
        }
        if let Some(v) = &self.authentication_method {
            e.bin(id::AUTHENTICATION_METHOD, v.as_bytes())?;
        }
        if let Some(v) = &self.authentication_data {
            e.bin(id::AUTHENTICATION_DATA, v)?;
        }
        if let Some(v) = self.request_problem_information {
            e.byte(id::REQUEST_PROBLEM_INFORMATION, u8::from(v))?;
        }
        if let Some(v) = self.will_delay_interval {
            e.u32(id::WILL_DELAY_INTERVAL, v)?;
        }
        if let Some(v) = self.request_response_information {
            e.byte(id::REQUEST_RESPONSE_INFORMATION, u8::from(v))?;
        }
        if let Some(v) = &self.response_information {
            e.bin(id::RESPONSE_INFORMATION, v.as_bytes())?;
        }
        if let Some(v) = &self.server_reference {
            e.bin(id::SERVER_REFERENCE, v.as_bytes())?;
        }
        if let Some(v) = &self.reason_string {
            e.bin(id::REASON_STRING, v.as_bytes())?;
        }
        if let Some(v) = self.receive_maximum {
            e.u16(id::RECEIVE_MAXIMUM, v)?;
        }
        if let Some(v) = self.topic_alias_maximum {
            e.u16(id::TOPIC_ALIAS_MAXIMUM, v)?;
        }
        if let Some(v) = self.topic_alias {
            e.u16(id::TOPIC_ALIAS, v)?;
        }
        if let Some(v) = self.maximum_qos {
            e.byte(id::MAXIMUM_QOS, v as u8)?;
        }
        if let Some(v) = self.retain_available {
            e.byte(id::RETAIN_AVAILABLE, u8::from(v))?;
        }
        for (k, v) in &self.user_properties {
            e.pair(id::USER_PROPERTY, k.as_bytes(), v.as_bytes())?;
        }
        if let Some(v) = self.maximum_packet_size {
            e.u32(id::MAXIMUM_PACKET_SIZE, v)?;
        }
        if let Some(v) = self.wildcard_subscription_available {
            e.byte(id::WILDCARD_SUBSCRIPTION_AVAILABLE, u8::from(v))?;
        }
        if let Some(v) = self.subscription_identifier_available {
            e.byte(id::SUBSCRIPTION_IDENTIFIER_AVAILABLE, u8::from(v))?;
        }
        if let Some(v) = self.shared_subscription_available {
            e.byte(id::SHARED_SUBSCRIPTION_AVAILABLE, u8::from(v))?;
        }
        Ok(())
    }
}

fn is_known(pid: u8) -> bool {
    matches!(pid, 0x01..=0x03 | 0x08 | 0x09 | 0x0B | 0x11..=0x13 | 0x15..=0x1A | 0x1C | 0x1F | 0x21..=0x2A)
}
