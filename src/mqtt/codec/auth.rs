//! AUTH (MQTT 5.0 §3.15): enhanced authentication exchange. beamq does not offer an
//! authentication method; the session answers with 0x8C Bad authentication method, but the
//! packet is still decoded fully so that answer is given for the right reason.

use bytes::{BufMut, Bytes, BytesMut};

use super::error::Result;
use super::header::FixedHeader;
use super::properties::{Properties, PropertyContext};
use super::reason::{ReasonCode, ReasonContext};
use super::wire::read_u8;
use super::{expect_end, CodecError};

/// An AUTH packet.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Auth {
    /// Success, Continue authentication or Re-authenticate.
    pub reason: ReasonCode,
    /// Authentication Method / Data, Reason String, User Properties.
    pub properties: Properties,
}

impl Auth {
    /// Reads an AUTH body.
    pub fn read(_fh: &FixedHeader, mut b: Bytes) -> Result<Auth> {
        let mut a = Auth::default();
        if !b.is_empty() {
            a.reason = ReasonCode::read(read_u8(&mut b)?, ReasonContext::Auth)?;
        }
        if !b.is_empty() {
            a.properties = Properties::read(&mut b, PropertyContext::Auth)?;
        }
        expect_end(&b)?;
        Ok(a)
    }

    /// Remaining Length.
    pub fn body_len(&self) -> Result<usize> {
        if !self.reason.allowed_in(ReasonContext::Auth) {
            return Err(CodecError::InvalidReasonCode {
                code: self.reason.as_u8(),
                context: "AUTH",
            });
        }
        if !self.properties.is_empty() {
            Ok(1 + self.properties.wire_len(PropertyContext::Auth)?)
        } else if self.reason != ReasonCode::Success {
            Ok(1)
        } else {
            Ok(0)
        }
    }

    /// Writes the body in its shortest form; [`Auth::body_len`] must have succeeded first.
    pub fn write_body(&self, out: &mut BytesMut) -> Result<()> {
        let has_props = !self.properties.is_empty();
        if has_props || self.reason != ReasonCode::Success {
            out.put_u8(self.reason.as_u8());
        }
        if has_props {
            self.properties.write(out, PropertyContext::Auth)?;
        }
        Ok(())
    }
}
