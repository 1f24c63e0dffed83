//! Writing MQTT 5 properties (MQTT 5.0 §2.2.2): one encoder that counts and, given an output,
//! writes, so the Property Length and the bytes written cannot disagree.

use bytes::{BufMut, BytesMut};

use super::error::{CodecError, Result};
use super::properties::PropertyContext;
use super::wire::{varint_len, write_varint, VARINT_MAX};

/// Counts (and, with an output, writes) properties in one pass over the fields, so the length
/// and the bytes cannot disagree.
pub(super) struct Encoder<'a> {
    pub(super) out: Option<&'a mut BytesMut>,
    pub(super) len: usize,
    pub(super) ctx: PropertyContext,
}

impl Encoder<'_> {
    fn start(&mut self, pid: u8, value_len: usize) -> Result<Option<&mut BytesMut>> {
        if !self.ctx.allows(pid) {
            return Err(CodecError::PropertyNotAllowed {
                id: pid,
                context: self.ctx.name(),
            });
        }
        self.len += 1 + value_len;
        let out = self.out.as_deref_mut();
        if let Some(o) = out {
            o.put_u8(pid);
            return Ok(Some(o));
        }
        Ok(None)
    }

    pub(super) fn byte(&mut self, pid: u8, v: u8) -> Result<()> {
        if let Some(o) = self.start(pid, 1)? {
            o.put_u8(v);
        }
        Ok(())
    }

    pub(super) fn u16(&mut self, pid: u8, v: u16) -> Result<()> {
        if let Some(o) = self.start(pid, 2)? {
            o.put_u16(v);
        }
        Ok(())
    }

    pub(super) fn u32(&mut self, pid: u8, v: u32) -> Result<()> {
        if let Some(o) = self.start(pid, 4)? {
            o.put_u32(v);
        }
        Ok(())
    }

    pub(super) fn varint(&mut self, pid: u8, v: u32) -> Result<()> {
        if v == 0 || v > VARINT_MAX {
            return Err(CodecError::InvalidPropertyValue(pid));
        }
        if let Some(o) = self.start(pid, varint_len(v as usize))? {
            write_varint(o, v as usize)?;
        }
        Ok(())
    }

    pub(super) fn bin(&mut self, pid: u8, v: &[u8]) -> Result<()> {
        let n = u16::try_from(v.len()).map_err(|_| CodecError::TooLongToEncode("property"))?;
        if let Some(o) = self.start(pid, 2 + v.len())? {
            o.put_u16(n);
            o.put_slice(v);
        }
        Ok(())
    }

    pub(super) fn pair(&mut self, pid: u8, k: &[u8], v: &[u8]) -> Result<()> {
        let kn = u16::try_from(k.len()).map_err(|_| CodecError::TooLongToEncode("property"))?;
        let vn = u16::try_from(v.len()).map_err(|_| CodecError::TooLongToEncode("property"))?;
        if let Some(o) = self.start(pid, 4 + k.len() + v.len())? {
            o.put_u16(kn);
            o.put_slice(k);
            o.put_u16(vn);
            o.put_slice(v);
        }
        Ok(())
    }
}
