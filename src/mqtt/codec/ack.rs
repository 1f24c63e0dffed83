//! The publish acknowledgement family: PUBACK, PUBREC, PUBREL, PUBCOMP (MQTT 3.1.1 §3.4–3.7,
//! MQTT 5.0 §3.4–3.7). Same layout for all four: packet id, then in v5 an optional reason code
//! and optional properties (a Remaining Length of 2 means Success with no properties).

use bytes::{BufMut, Bytes, BytesMut};

use super::error::{CodecError, Result};
use super::header::{FixedHeader, PacketType};
use super::properties::{Properties, PropertyContext};
use super::reason::{ReasonCode, ReasonContext};
use super::wire::{read_u16, read_u8};
use super::{expect_end, ProtocolVersion};

/// A PUBACK, PUBREC, PUBREL or PUBCOMP (the [`super::Packet`] variant says which).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    /// Packet Identifier of the publish being acknowledged.
    pub packet_id: u16,
    /// Reason code (v5; always Success before v5).
    pub reason: ReasonCode,
    /// Properties (v5): Reason String, User Properties.
    pub properties: Properties,
}

impl Ack {
    /// A plain success acknowledgement.
    pub fn new(packet_id: u16) -> Ack {
        Ack {
            packet_id,
            reason: ReasonCode::Success,
            properties: Properties::default(),
        }
    }

    fn context(t: PacketType) -> ReasonContext {
        match t {
            PacketType::PubRel | PacketType::PubComp => ReasonContext::PubRelPubComp,
            _ => ReasonContext::PubAckPubRec,
        }
    }

    /// Reads the body of any of the four.
    pub fn read(fh: &FixedHeader, mut b: Bytes, version: ProtocolVersion) -> Result<Ack> {
        let packet_id = read_u16(&mut b)?;
        if packet_id == 0 {
            return Err(CodecError::Protocol(
                "acknowledgement of packet identifier 0",
            ));
        }
        let mut ack = Ack::new(packet_id);
        if version.is_v5() {
            if !b.is_empty() {
                ack.reason = ReasonCode::read(read_u8(&mut b)?, Ack::context(fh.packet_type))?;
            }
            if !b.is_empty() {
                ack.properties = Properties::read(&mut b, PropertyContext::PubAck)?;
            }
        }
        expect_end(&b)?;
        Ok(ack)
    }

    /// Remaining Length when sent as packet type `t`.
    pub fn body_len(&self, version: ProtocolVersion, t: PacketType) -> Result<usize> {
        if self.packet_id == 0 {
            return Err(CodecError::Protocol(
                "acknowledgement of packet identifier 0",
            ));
        }
        if !version.is_v5() {
            return Ok(2);
        }
        if !self.reason.allowed_in(Ack::context(t)) {
            return Err(CodecError::InvalidReasonCode {
                code: self.reason.as_u8(),
                context: Ack::context(t).name(),
            });
        }
        if !self.properties.is_empty() {
            Ok(3 + self.properties.wire_len(PropertyContext::PubAck)?)
        } else if self.reason != ReasonCode::Success {
            Ok(3)
        } else {
            Ok(2)
        }
    }

    /// Writes the body in its shortest form; [`Ack::body_len`] must have succeeded first.
    pub fn write_body(&self, version: ProtocolVersion, out: &mut BytesMut) -> Result<()> {
        out.put_u16(self.packet_id);
        if !version.is_v5() {
            return Ok(());
        }
        let has_props = !self.properties.is_empty();
        if has_props || self.reason != ReasonCode::Success {
            out.put_u8(self.reason.as_u8());
        }
        if has_props {
            self.properties.write(out, PropertyContext::PubAck)?;
        }
        Ok(())
    }
}
