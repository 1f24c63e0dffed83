//! SUBSCRIBE (MQTT 3.1.1 §3.8, MQTT 5.0 §3.8) and its per-filter Subscription Options.
//! Topic filter syntax is checked by the session with `router::topic`, not here.

use bytes::{BufMut, Bytes, BytesMut};

use super::error::{CodecError, Result};
use super::header::FixedHeader;
use super::properties::{Properties, PropertyContext};
use super::wire::{read_string, read_u16, read_u8, write_string};
use super::{MqttString, ProtocolVersion, QoS};

/// Retain Handling option (MQTT 5.0 §3.8.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum RetainHandling {
    /// 0: send retained messages at the time of the subscribe.
    #[default]
    SendAtSubscribe = 0,
    /// 1: send them only if the subscription did not exist.
    SendAtSubscribeIfNew = 1,
    /// 2: do not send retained messages.
    DoNotSend = 2,
}

/// Subscription Options byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct SubscriptionOptions {
    /// Maximum QoS.
    pub qos: QoS,
    /// No Local (v5): do not deliver to the publishing connection.
    pub no_local: bool,
    /// Retain As Published (v5): keep the RETAIN flag on forwarded messages.
    pub retain_as_published: bool,
    /// Retain Handling (v5).
    pub retain_handling: RetainHandling,
}

impl SubscriptionOptions {
    /// Parses the options byte; before v5 only the QoS bits may be set (§3.8.3.1 of 3.1.1).
    pub fn from_byte(b: u8, version: ProtocolVersion) -> Result<SubscriptionOptions> {
        let qos = QoS::from_u8(b & 0x03)?;
        if !version.is_v5() {
            if b & 0xFC != 0 {
                return Err(CodecError::Malformed("SUBSCRIBE reserved option bits"));
            }
            return Ok(SubscriptionOptions {
                qos,
                ..Default::default()
            });
        }
        if b & 0xC0 != 0 {
            return Err(CodecError::Malformed("SUBSCRIBE reserved option bits"));
        }
        let retain_handling = match (b >> 4) & 0x03 {
            0 => RetainHandling::SendAtSubscribe,
            1 => RetainHandling::SendAtSubscribeIfNew,
            2 => RetainHandling::DoNotSend,
            _ => return Err(CodecError::Protocol("Retain Handling 3")),
        };
        Ok(SubscriptionOptions {
            qos,
            no_local: b & 0x04 != 0,
            retain_as_published: b & 0x08 != 0,
            retain_handling,
        })
    }

    /// The options byte for `version` (v5 bits are dropped before v5).
    pub fn to_byte(self, version: ProtocolVersion) -> u8 {
        let mut b = self.qos as u8;
        if version.is_v5() {
            b |= u8::from(self.no_local) << 2;
            b |= u8::from(self.retain_as_published) << 3;
            b |= (self.retain_handling as u8) << 4;
        }
        b
    }
}

/// A SUBSCRIBE packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribe {
    /// Packet Identifier (non-zero).
    pub packet_id: u16,
    /// Properties (v5): Subscription Identifier, User Properties.
    pub properties: Properties,
    /// Topic filters with their options; at least one.
    pub filters: Vec<(MqttString, SubscriptionOptions)>,
}

impl Subscribe {
    /// Reads a SUBSCRIBE body.
    pub fn read(_fh: &FixedHeader, mut b: Bytes, version: ProtocolVersion) -> Result<Subscribe> {
        let packet_id = read_u16(&mut b)?;
        if packet_id == 0 {
            return Err(CodecError::Protocol("SUBSCRIBE with packet identifier 0"));
        }
        let properties = if version.is_v5() {
            Properties::read(&mut b, PropertyContext::Subscribe)?
        } else {
            Properties::default()
        };
        let mut filters = Vec::new();
        while !b.is_empty() {
            let filter = read_string(&mut b)?;
            let opts = SubscriptionOptions::from_byte(read_u8(&mut b)?, version)?;
            filters.push((filter, opts));
        }
        if filters.is_empty() {
            return Err(CodecError::Protocol("SUBSCRIBE without topic filters"));
        }
        Ok(Subscribe {
            packet_id,
            properties,
            filters,
        })
    }

    /// Remaining Length.
    pub fn body_len(&self, version: ProtocolVersion) -> Result<usize> {
        if self.packet_id == 0 || self.filters.is_empty() {
            return Err(CodecError::Protocol(
                "SUBSCRIBE needs a packet id and a filter",
            ));
        }
        let mut n = 2;
        if version.is_v5() {
            n += self.properties.wire_len(PropertyContext::Subscribe)?;
        }
        n += self.filters.iter().map(|(f, _)| 3 + f.len()).sum::<usize>();
        Ok(n)
    }

    /// Writes the body; [`Subscribe::body_len`] must have succeeded first.
    pub fn write_body(&self, version: ProtocolVersion, out: &mut BytesMut) -> Result<()> {
        out.put_u16(self.packet_id);
        if version.is_v5() {
            self.properties.write(out, PropertyContext::Subscribe)?;
        }
        for (f, o) in &self.filters {
            write_string(out, f)?;
            out.put_u8(o.to_byte(version));
        }
        Ok(())
    }
}
