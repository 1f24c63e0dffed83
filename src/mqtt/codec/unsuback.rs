//! UNSUBACK (MQTT 3.1.1 §3.11: packet id only; MQTT 5.0 §3.11: plus properties and one reason
//! code per filter).

use bytes::{BufMut, Bytes, BytesMut};

use super::error::{CodecError, Result};
use super::header::FixedHeader;
use super::properties::{Properties, PropertyContext};
use super::reason::{ReasonCode, ReasonContext};
use super::wire::{read_u16, read_u8};
use super::{expect_end, ProtocolVersion};

/// An UNSUBACK packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsubAck {
    /// Packet Identifier of the UNSUBSCRIBE.
    pub packet_id: u16,
    /// Properties (v5).
    pub properties: Properties,
    /// One per filter (v5); empty before v5, where UNSUBACK carries none.
    pub reasons: Vec<ReasonCode>,
}

impl UnsubAck {
    /// Reads an UNSUBACK body.
    pub fn read(_fh: &FixedHeader, mut b: Bytes, version: ProtocolVersion) -> Result<UnsubAck> {
        let packet_id = read_u16(&mut b)?;
        if !version.is_v5() {
            expect_end(&b)?;
            return Ok(UnsubAck {
                packet_id,
                properties: Properties::default(),
                reasons: Vec::new(),
            });
        }
        let properties = Properties::read(&mut b, PropertyContext::UnsubAck)?;
        let mut reasons = Vec::with_capacity(b.len());
        while !b.is_empty() {
            reasons.push(ReasonCode::read(read_u8(&mut b)?, ReasonContext::UnsubAck)?);
        }
        if reasons.is_empty() {
            return Err(CodecError::Protocol("UNSUBACK without reason codes"));
        }
        Ok(UnsubAck {
            packet_id,
            properties,
            reasons,
        })
    }

    /// Remaining Length.
    pub fn body_len(&self, version: ProtocolVersion) -> Result<usize> {
        if !version.is_v5() {
            return Ok(2);
        }
        if self.reasons.is_empty() {
            return Err(CodecError::Protocol("UNSUBACK without reason codes"));
        }
        if let Some(bad) = self
            .reasons
            .iter()
            .find(|r| !r.allowed_in(ReasonContext::UnsubAck))
        {
            return Err(CodecError::InvalidReasonCode {
                code: bad.as_u8(),
                context: "UNSUBACK",
            });
        }
        Ok(2 + self.properties.wire_len(PropertyContext::UnsubAck)? + self.reasons.len())
    }

    /// Writes the body; [`UnsubAck::body_len`] must have succeeded first.
    pub fn write_body(&self, version: ProtocolVersion, out: &mut BytesMut) -> Result<()> {
        out.put_u16(self.packet_id);
        if version.is_v5() {
            self.properties.write(out, PropertyContext::UnsubAck)?;
            for r in &self.reasons {
                out.put_u8(r.as_u8());
            }
        }
        Ok(())
    }
}
