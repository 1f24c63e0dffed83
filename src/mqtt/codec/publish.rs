//! PUBLISH (MQTT 3.1.1 §3.3, MQTT 5.0 §3.3). The hot path: the payload is a slice of the frame,
//! the topic a validated slice; nothing is copied or allocated unless properties carry lists.

use bytes::{BufMut, Bytes, BytesMut};

use super::error::{CodecError, Result};
use super::header::FixedHeader;
use super::properties::{Properties, PropertyContext};
use super::wire::{read_string, read_u16, write_string};
use super::MqttString;
use super::{ProtocolVersion, QoS};

/// A PUBLISH packet.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Publish {
    /// DUP flag: a re-delivery of a QoS > 0 message.
    pub dup: bool,
    /// QoS.
    pub qos: QoS,
    /// RETAIN flag.
    pub retain: bool,
    /// Topic Name (may be empty in v5 when a Topic Alias is given).
    pub topic: MqttString,
    /// Packet Identifier; 0 for QoS 0 (not on the wire).
    pub packet_id: u16,
    /// PUBLISH properties (v5).
    pub properties: Properties,
    /// Application payload.
    pub payload: Bytes,
}

impl Publish {
    /// The fixed-header flags this publish is sent with.
    pub fn flags(&self) -> u8 {
        (u8::from(self.dup) << 3) | ((self.qos as u8) << 1) | u8::from(self.retain)
    }

    /// Reads a PUBLISH body; DUP/QoS/RETAIN come from the fixed header.
    pub fn read(fh: &FixedHeader, mut b: Bytes, version: ProtocolVersion) -> Result<Publish> {
        let qos = QoS::from_u8((fh.flags >> 1) & 0x03)?;
        let dup = fh.flags & 0x08 != 0;
        if dup && qos == QoS::AtMostOnce {
            // [MQTT-3.3.1-2]; mosquitto treats it as malformed too.
            return Err(CodecError::Malformed("DUP set on a QoS 0 PUBLISH"));
        }
        let topic = read_string(&mut b)?;
        let packet_id = if qos == QoS::AtMostOnce {
            0
        } else {
            let id = read_u16(&mut b)?;
            if id == 0 {
                return Err(CodecError::Protocol("PUBLISH with packet identifier 0"));
            }
            id
        };
        let properties = if version.is_v5() {
            Properties::read(&mut b, PropertyContext::Publish)?
        } else {
            Properties::default()
        };
        Ok(Publish {
            dup,
            qos,
            retain: fh.flags & 0x01 != 0,
            topic,
            packet_id,
            properties,
            payload: b,
        })
    }

    /// Remaining Length.
    pub fn body_len(&self, version: ProtocolVersion) -> Result<usize> {
        let mut n = 2 + self.topic.len() + self.payload.len();
        if self.qos != QoS::AtMostOnce {
            if self.packet_id == 0 {
                return Err(CodecError::Protocol(
                    "QoS > 0 PUBLISH needs a packet identifier",
                ));
            }
            n += 2;
        } else if self.dup {
            return Err(CodecError::Malformed("DUP set on a QoS 0 PUBLISH"));
        }
        if version.is_v5() {
            n += self.properties.wire_len(PropertyContext::Publish)?;
        }
        Ok(n)
    }

    /// Writes the body; [`Publish::body_len`] must have succeeded first (it validates).
    pub fn write_body(&self, version: ProtocolVersion, out: &mut BytesMut) -> Result<()> {
        write_string(out, &self.topic)?;
        if self.qos != QoS::AtMostOnce {
            out.put_u16(self.packet_id);
        }
        if version.is_v5() {
            self.properties.write(out, PropertyContext::Publish)?;
        }
        out.put_slice(&self.payload);
        Ok(())
    }
}
