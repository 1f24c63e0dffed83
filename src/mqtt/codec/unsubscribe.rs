//! UNSUBSCRIBE (MQTT 3.1.1 §3.10, MQTT 5.0 §3.10).

use bytes::{BufMut, Bytes, BytesMut};

use super::error::{CodecError, Result};
use super::header::FixedHeader;
use super::properties::{Properties, PropertyContext};
use super::wire::{read_string, read_u16, write_string};
use super::{MqttString, ProtocolVersion};

/// An UNSUBSCRIBE packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsubscribe {
    /// Packet Identifier (non-zero).
    pub packet_id: u16,
    /// Properties (v5): User Properties only.
    pub properties: Properties,
    /// Topic filters to remove; at least one.
    pub filters: Vec<MqttString>,
}

impl Unsubscribe {
    /// Reads an UNSUBSCRIBE body.
    pub fn read(_fh: &FixedHeader, mut b: Bytes, version: ProtocolVersion) -> Result<Unsubscribe> {
        let packet_id = read_u16(&mut b)?;
        if packet_id == 0 {
            return Err(CodecError::Protocol("UNSUBSCRIBE with packet identifier 0"));
        }
        let properties = if version.is_v5() {
            Properties::read(&mut b, PropertyContext::Unsubscribe)?
        } else {
            Properties::default()
        };
        let mut filters = Vec::new();
        while !b.is_empty() {
            filters.push(read_string(&mut b)?);
        }
        if filters.is_empty() {
            return Err(CodecError::Protocol("UNSUBSCRIBE without topic filters"));
        }
        Ok(Unsubscribe {
            packet_id,
            properties,
            filters,
        })
    }

    /// Remaining Length.
    pub fn body_len(&self, version: ProtocolVersion) -> Result<usize> {
        if self.packet_id == 0 || self.filters.is_empty() {
            return Err(CodecError::Protocol(
                "UNSUBSCRIBE needs a packet id and a filter",
            ));
        }
        let mut n = 2 + self.filters.iter().map(|f| 2 + f.len()).sum::<usize>();
        if version.is_v5() {
            n += self.properties.wire_len(PropertyContext::Unsubscribe)?;
        }
        Ok(n)
    }

    /// Writes the body; [`Unsubscribe::body_len`] must have succeeded first.
    pub fn write_body(&self, version: ProtocolVersion, out: &mut BytesMut) -> Result<()> {
        out.put_u16(self.packet_id);
        if version.is_v5() {
            self.properties.write(out, PropertyContext::Unsubscribe)?;
        }
        for f in &self.filters {
            write_string(out, f)?;
        }
        Ok(())
    }
}
