//! CONNACK (MQTT 3.1.1 §3.2, MQTT 5.0 §3.2). Before v5 the reason code travels as a 3.1.1
//! return code (see [`ReasonCode::to_v3_connack`]).

use bytes::{BufMut, Bytes, BytesMut};

use super::error::{CodecError, Result};
use super::header::FixedHeader;
use super::properties::{Properties, PropertyContext};
use super::reason::{ReasonCode, ReasonContext};
use super::wire::read_u8;
use super::{expect_end, ProtocolVersion};

/// A CONNACK packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnAck {
    /// Session Present.
    pub session_present: bool,
    /// Connect Reason Code (v5) / return code (3.1.1).
    pub reason: ReasonCode,
    /// CONNACK properties (v5).
    pub properties: Properties,
}

impl ConnAck {
    /// Reads a CONNACK body.
    pub fn read(_fh: &FixedHeader, mut b: Bytes, version: ProtocolVersion) -> Result<ConnAck> {
        let flags = read_u8(&mut b)?;
        if flags & 0xFE != 0 {
            return Err(CodecError::Malformed("CONNACK reserved flags"));
        }
        let code = read_u8(&mut b)?;
        let (reason, properties) = if version.is_v5() {
            let reason = ReasonCode::read(code, ReasonContext::ConnAck)?;
            (reason, Properties::read(&mut b, PropertyContext::ConnAck)?)
        } else {
            (ReasonCode::from_v3_connack(code)?, Properties::default())
        };
        expect_end(&b)?;
        Ok(ConnAck {
            session_present: flags & 1 != 0,
            reason,
            properties,
        })
    }

    /// Remaining Length.
    pub fn body_len(&self, version: ProtocolVersion) -> Result<usize> {
        if version.is_v5() {
            if !self.reason.allowed_in(ReasonContext::ConnAck) {
                return Err(CodecError::InvalidReasonCode {
                    code: self.reason.as_u8(),
                    context: "CONNACK",
                });
            }
            Ok(2 + self.properties.wire_len(PropertyContext::ConnAck)?)
        } else {
            Ok(2)
        }
    }

    /// Writes the body; [`ConnAck::body_len`] must have succeeded first (it validates).
    pub fn write_body(&self, version: ProtocolVersion, out: &mut BytesMut) -> Result<()> {
        out.put_u8(u8::from(self.session_present));
        if version.is_v5() {
            out.put_u8(self.reason.as_u8());
            self.properties.write(out, PropertyContext::ConnAck)
        } else {
            out.put_u8(self.reason.to_v3_connack());
            Ok(())
        }
    }
}
