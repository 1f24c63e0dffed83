//! SUBACK (MQTT 3.1.1 §3.9, MQTT 5.0 §3.9): one reason code per requested filter.

use bytes::{BufMut, Bytes, BytesMut};

use super::error::{CodecError, Result};
use super::header::FixedHeader;
use super::properties::{Properties, PropertyContext};
use super::reason::{ReasonCode, ReasonContext};
use super::wire::{read_u16, read_u8};
use super::ProtocolVersion;

/// A SUBACK packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubAck {
    /// Packet Identifier of the SUBSCRIBE.
    pub packet_id: u16,
    /// Properties (v5).
    pub properties: Properties,
    /// Granted QoS or failure, in filter order.
    pub reasons: Vec<ReasonCode>,
}

impl SubAck {
    /// Reads a SUBACK body.
    pub fn read(_fh: &FixedHeader, mut b: Bytes, version: ProtocolVersion) -> Result<SubAck> {
        let packet_id = read_u16(&mut b)?;
        let properties = if version.is_v5() {
            Properties::read(&mut b, PropertyContext::SubAck)?
        } else {
            Properties::default()
        };
        let mut reasons = Vec::with_capacity(b.len());
        while !b.is_empty() {
            let c = read_u8(&mut b)?;
            reasons.push(if version.is_v5() {
                ReasonCode::read(c, ReasonContext::SubAck)?
            } else {
                ReasonCode::from_v3_suback(c)?
            });
        }
        if reasons.is_empty() {
            return Err(CodecError::Protocol("SUBACK without reason codes"));
        }
        Ok(SubAck {
            packet_id,
            properties,
            reasons,
        })
    }

    /// Remaining Length.
    pub fn body_len(&self, version: ProtocolVersion) -> Result<usize> {
        if self.reasons.is_empty() {
            return Err(CodecError::Protocol("SUBACK without reason codes"));
        }
        if version.is_v5() {
            if let Some(bad) = self
                .reasons
                .iter()
                .find(|r| !r.allowed_in(ReasonContext::SubAck))
            {
                return Err(CodecError::InvalidReasonCode {
                    code: bad.as_u8(),
                    context: "SUBACK",
                });
            }
            Ok(2 + self.properties.wire_len(PropertyContext::SubAck)? + self.reasons.len())
        } else {
            Ok(2 + self.reasons.len())
        }
    }

    /// Writes the body; [`SubAck::body_len`] must have succeeded first.
    pub fn write_body(&self, version: ProtocolVersion, out: &mut BytesMut) -> Result<()> {
        out.put_u16(self.packet_id);
        if version.is_v5() {
            self.properties.write(out, PropertyContext::SubAck)?;
            for r in &self.reasons {
                out.put_u8(r.as_u8());
            }
        } else {
            for r in &self.reasons {
                out.put_u8(r.to_v3_suback());
            }
        }
        Ok(())
    }
}
