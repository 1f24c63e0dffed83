//! DISCONNECT (MQTT 3.1.1 §3.14: empty; MQTT 5.0 §3.14: optional reason code and properties,
//! sent by either side).

use bytes::{BufMut, Bytes, BytesMut};

use super::error::Result;
use super::header::FixedHeader;
use super::properties::{Properties, PropertyContext};
use super::reason::{ReasonCode, ReasonContext};
use super::wire::read_u8;
use super::{expect_end, CodecError, ProtocolVersion};

/// A DISCONNECT packet.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Disconnect {
    /// Disconnect Reason Code (v5); Normal disconnection before v5.
    pub reason: ReasonCode,
    /// Properties (v5): Session Expiry Interval, Reason String, Server Reference, User Properties.
    pub properties: Properties,
}

impl Disconnect {
    /// A DISCONNECT with a reason and no properties.
    pub fn new(reason: ReasonCode) -> Disconnect {
        Disconnect {
            reason,
            properties: Properties::default(),
        }
    }

    /// Reads a DISCONNECT body.
    pub fn read(_fh: &FixedHeader, mut b: Bytes, version: ProtocolVersion) -> Result<Disconnect> {
        let mut d = Disconnect::default();
        if version.is_v5() {
            if !b.is_empty() {
                d.reason = ReasonCode::read(read_u8(&mut b)?, ReasonContext::Disconnect)?;
            }
            if !b.is_empty() {
                d.properties = Properties::read(&mut b, PropertyContext::Disconnect)?;
            }
        }
        expect_end(&b)?;
        Ok(d)
    }

    /// Remaining Length.
    pub fn body_len(&self, version: ProtocolVersion) -> Result<usize> {
        if !version.is_v5() {
            return Ok(0);
        }
        if !self.reason.allowed_in(ReasonContext::Disconnect) {
            return Err(CodecError::InvalidReasonCode {
                code: self.reason.as_u8(),
                context: "DISCONNECT",
            });
        }
        if !self.properties.is_empty() {
            Ok(1 + self.properties.wire_len(PropertyContext::Disconnect)?)
        } else if self.reason != ReasonCode::Success {
            Ok(1)
        } else {
            Ok(0)
        }
    }

    /// Writes the body in its shortest form; [`Disconnect::body_len`] must have succeeded first.
    pub fn write_body(&self, version: ProtocolVersion, out: &mut BytesMut) -> Result<()> {
        if !version.is_v5() {
            return Ok(());
        }
        let has_props = !self.properties.is_empty();
        if has_props || self.reason != ReasonCode::Success {
            out.put_u8(self.reason.as_u8());
        }
        if has_props {
            self.properties.write(out, PropertyContext::Disconnect)?;
        }
        Ok(())
    }
}
