//! CONNECT (MQTT 3.1.1 §3.1, MQTT 5.0 §3.1; MQTT 3.1 uses protocol name "MQIsdp", level 3).
//!
//! The codec checks the wire rules (reserved flag, will flags without a will, QoS 3, password
//! without user name before v5); client-id rules and authentication belong to the session.

use bytes::{BufMut, Bytes, BytesMut};

use super::error::{CodecError, Result};
use super::header::FixedHeader;
use super::properties::{Properties, PropertyContext};
use super::wire::{read_binary, read_string, read_u16, read_u8, write_binary, write_string};
use super::{expect_end, MqttString, ProtocolVersion, QoS};

/// The Will Message a CONNECT registers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastWill {
    /// Will Topic.
    pub topic: MqttString,
    /// Will Payload (binary).
    pub payload: Bytes,
    /// Will QoS.
    pub qos: QoS,
    /// Will Retain.
    pub retain: bool,
    /// Will Properties (v5): delay interval, expiry, content type, response topic ...
    pub properties: Properties,
}

/// A CONNECT packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect {
    /// Protocol level (and name) the client speaks.
    pub protocol: ProtocolVersion,
    /// Clean Session (3.1.1) / Clean Start (5).
    pub clean_start: bool,
    /// Keep Alive in seconds; 0 disables it.
    pub keep_alive: u16,
    /// CONNECT properties (v5).
    pub properties: Properties,
    /// Client Identifier; may be empty.
    pub client_id: MqttString,
    /// Will message, if the Will Flag is set.
    pub will: Option<LastWill>,
    /// User Name.
    pub username: Option<MqttString>,
    /// Password (binary data).
    pub password: Option<Bytes>,
}

impl Connect {
    /// Reads a CONNECT body; the protocol version is taken from the packet itself.
    pub fn read(_fh: &FixedHeader, mut b: Bytes) -> Result<Connect> {
        let name = read_binary(&mut b)?;
        let level = read_u8(&mut b)?;
        let protocol = match (&name[..], level) {
            (b"MQTT", 4) => ProtocolVersion::V3_1_1,
            (b"MQTT", 5) => ProtocolVersion::V5,
            (b"MQIsdp", 3) => ProtocolVersion::V3_1,
            (b"MQTT", l) | (b"MQIsdp", l) => return Err(CodecError::UnsupportedProtocolVersion(l)),
            _ => return Err(CodecError::InvalidProtocolName),
        };
        let flags = read_u8(&mut b)?;
        if flags & 0x01 != 0 {
            return Err(CodecError::Malformed("CONNECT reserved flag set"));
        }
        let clean_start = flags & 0x02 != 0;
        let will_flag = flags & 0x04 != 0;
        let will_qos = QoS::from_u8((flags >> 3) & 0x03)?;
        let will_retain = flags & 0x20 != 0;
        let has_password = flags & 0x40 != 0;
        let has_username = flags & 0x80 != 0;
        if !will_flag && (will_qos != QoS::AtMostOnce || will_retain) {
            return Err(CodecError::Malformed("will QoS/retain without will flag"));
        }
        if has_password && !has_username && !protocol.is_v5() {
            return Err(CodecError::Malformed("password without user name"));
        }
        let keep_alive = read_u16(&mut b)?;
        let properties = if protocol.is_v5() {
            Properties::read(&mut b, PropertyContext::Connect)?
        } else {
            Properties::default()
        };
        let client_id = read_string(&mut b)?;
        let will = if will_flag {
            let properties = if protocol.is_v5() {
                Properties::read(&mut b, PropertyContext::Will)?
            } else {
                Properties::default()
            };
            let topic = read_string(&mut b)?;
            let payload = read_binary(&mut b)?;
            Some(LastWill {
                topic,
                payload,
                qos: will_qos,
                retain: will_retain,
                properties,
            })
        } else {
            None
        };
        let username = if has_username {
            Some(read_string(&mut b)?)
        } else {
            None
        };
        let password = if has_password {
            Some(read_binary(&mut b)?)
        } else {
            None
        };
        expect_end(&b)?;
        Ok(Connect {
            protocol,
            clean_start,
            keep_alive,
            properties,
            client_id,
            will,
            username,
            password,
        })
    }

    fn name(&self) -> &'static [u8] {
        match self.protocol {
            ProtocolVersion::V3_1 => b"MQIsdp",
            _ => b"MQTT",
        }
    }

    /// Remaining Length. Properties are ignored for pre-5 protocol levels.
    pub fn body_len(&self) -> Result<usize> {
        let v5 = self.protocol.is_v5();
        if !v5 && self.password.is_some() && self.username.is_none() {
            return Err(CodecError::Protocol(
                "password without user name before MQTT 5",
            ));
        }
        let mut n = 2 + self.name().len() + 1 + 1 + 2 + 2 + self.client_id.len();
        if v5 {
            n += self.properties.wire_len(PropertyContext::Connect)?;
        }
        if let Some(w) = &self.will {
            if v5 {
                n += w.properties.wire_len(PropertyContext::Will)?;
            }
            n += 2 + w.topic.len() + 2 + w.payload.len();
        }
        if let Some(u) = &self.username {
            n += 2 + u.len();
        }
        if let Some(p) = &self.password {
            n += 2 + p.len();
        }
        Ok(n)
    }

    /// Writes the body.
    pub fn write_body(&self, out: &mut BytesMut) -> Result<()> {
        write_binary(out, self.name())?;
        out.put_u8(self.protocol as u8);
        let mut flags = 0u8;
        if self.clean_start {
            flags |= 0x02;
        }
        if let Some(w) = &self.will {
            flags |= 0x04 | ((w.qos as u8) << 3);
            if w.retain {
                flags |= 0x20;
            }
        }
        if self.password.is_some() {
            flags |= 0x40;
        }
        if self.username.is_some() {
            flags |= 0x80;
        }
        out.put_u8(flags);
        out.put_u16(self.keep_alive);
        let v5 = self.protocol.is_v5();
        if v5 {
            self.properties.write(out, PropertyContext::Connect)?;
        }
        write_string(out, &self.client_id)?;
        if let Some(w) = &self.will {
            if v5 {
                w.properties.write(out, PropertyContext::Will)?;
            }
            write_string(out, &w.topic)?;
            write_binary(out, &w.payload)?;
        }
        if let Some(u) = &self.username {
            write_string(out, u)?;
        }
        if let Some(p) = &self.password {
            write_binary(out, p)?;
        }
        Ok(())
    }
}
