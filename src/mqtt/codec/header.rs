//! The fixed header (MQTT 5.0 §2.1) and the frame check that runs before any parsing.
//!
//! [`check`] looks only at the first 2–5 bytes of the buffer: it validates the packet type and
//! its fixed flags, decodes the Remaining Length, rejects a frame larger than the negotiated
//! maximum *before* its body is buffered, and says whether the whole frame is in. Nothing is
//! allocated from the wire length (mini-redis' check-then-parse).

use bytes::BytesMut;

use super::error::{CodecError, Result};

/// MQTT control packet types (§2.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
#[allow(missing_docs)]
pub enum PacketType {
    Connect = 1,
    ConnAck = 2,
    Publish = 3,
    PubAck = 4,
    PubRec = 5,
    PubRel = 6,
    PubComp = 7,
    Subscribe = 8,
    SubAck = 9,
    Unsubscribe = 10,
    UnsubAck = 11,
    PingReq = 12,
    PingResp = 13,
    Disconnect = 14,
    /// MQTT 5 only.
    Auth = 15,
}

impl PacketType {
    /// From the high nibble of the first byte; type 0 is reserved (malformed).
    pub fn from_nibble(n: u8) -> Result<PacketType> {
        use PacketType::*;
        Ok(match n {
            1 => Connect,
            2 => ConnAck,
            3 => Publish,
            4 => PubAck,
            5 => PubRec,
            6 => PubRel,
            7 => PubComp,
            8 => Subscribe,
            9 => SubAck,
            10 => Unsubscribe,
            11 => UnsubAck,
            12 => PingReq,
            13 => PingResp,
            14 => Disconnect,
            15 => Auth,
            _ => return Err(CodecError::InvalidPacketType(n)),
        })
    }

    /// The fixed flags the spec requires (§2.1.3 table 2-2); `None` for PUBLISH, whose flags
    /// carry DUP/QoS/RETAIN.
    pub fn required_flags(self) -> Option<u8> {
        match self {
            PacketType::Publish => None,
            PacketType::PubRel | PacketType::Subscribe | PacketType::Unsubscribe => Some(0b0010),
            _ => Some(0),
        }
    }
}

/// A validated fixed header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FixedHeader {
    /// The packet type.
    pub packet_type: PacketType,
    /// The low nibble of the first byte (checked against the type's fixed flags).
    pub flags: u8,
    /// Bytes the fixed header itself takes (2 to 5).
    pub header_len: usize,
    /// The Remaining Length: bytes after the fixed header.
    pub remaining_len: usize,
}

impl FixedHeader {
    /// The whole frame: fixed header plus body.
    pub fn frame_len(&self) -> usize {
        self.header_len + self.remaining_len
    }

    /// Validates a first byte and remaining length (used by [`check`] and the writers' tests).
    pub fn new(byte1: u8, header_len: usize, remaining_len: usize) -> Result<FixedHeader> {
        let packet_type = PacketType::from_nibble(byte1 >> 4)?;
        let flags = byte1 & 0x0F;
        match packet_type.required_flags() {
            Some(req) if req != flags => {
                return Err(CodecError::ReservedFlags {
                    packet_type: byte1 >> 4,
                    flags,
                })
            }
            None if (flags >> 1) & 0b11 == 3 => return Err(CodecError::InvalidQos),
            _ => {}
        }
        Ok(FixedHeader {
            packet_type,
            flags,
            header_len,
            remaining_len,
        })
    }
}

/// Decides from the fixed header alone whether a whole packet is buffered.
///
/// Returns `Ok(None)` when more bytes are needed, `Ok(Some((header, frame_len)))` when
/// `buf[..frame_len]` is one complete packet, and an error for a malformed header or a frame
/// longer than `max_packet_size` (fixed header included, as MQTT 5.0 §3.1.2.11.4 counts it).
pub fn check(buf: &BytesMut, max_packet_size: usize) -> Result<Option<(FixedHeader, usize)>> {
    let Some(&byte1) = buf.first() else {
        return Ok(None);
    };
    let mut remaining: usize = 0;
    let mut header_len = 1;
    loop {
        if header_len > 4 {
            return Err(CodecError::MalformedVarint);
        }
        let Some(&b) = buf.get(header_len) else {
            // Validate what we can even before the length is complete.
            FixedHeader::new(byte1, 0, 0)?;
            return Ok(None);
        };
        remaining |= usize::from(b & 0x7F) << (7 * (header_len - 1));
        header_len += 1;
        if b & 0x80 == 0 {
            break;
        }
    }
    let header = FixedHeader::new(byte1, header_len, remaining)?;
    let frame_len = header.frame_len();
    if frame_len > max_packet_size {
        return Err(CodecError::PacketTooLarge {
            size: frame_len,
            max: max_packet_size,
        });
    }
    if buf.len() < frame_len {
        return Ok(None);
    }
    Ok(Some((header, frame_len)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn buf(b: &[u8]) -> BytesMut {
        BytesMut::from(b)
    }

    #[test]
    fn incomplete_header_and_body_ask_for_more() {
        assert_eq!(check(&buf(&[]), 100), Ok(None));
        assert_eq!(check(&buf(&[0x30]), 100), Ok(None));
        assert_eq!(check(&buf(&[0x30, 0x80]), 1000), Ok(None));
        assert_eq!(check(&buf(&[0x30, 0x03, 0, 1]), 100), Ok(None));
    }

    #[test]
    fn complete_frame_reports_its_length() {
        let (h, len) = check(&buf(&[0xC0, 0x00, 0xFF]), 100).unwrap().unwrap();
        assert_eq!(h.packet_type, PacketType::PingReq);
        assert_eq!(len, 2);
        let mut big = buf(&[0x32, 0x80, 0x01]);
        assert_eq!(check(&big, 1000), Ok(None));
        big.extend_from_slice(&[0u8; 128]);
        let (h, len) = check(&big, 1000).unwrap().unwrap();
        assert_eq!(
            (h.packet_type, h.header_len, h.remaining_len, len),
            (PacketType::Publish, 3, 128, 131)
        );
    }

    #[test]
    fn oversized_frame_is_rejected_before_its_body_arrives() {
        // Remaining length 2_097_152 announced with only the header buffered.
        let err = check(&buf(&[0x30, 0x80, 0x80, 0x80, 0x01]), 1 << 20).unwrap_err();
        assert_eq!(
            err,
            CodecError::PacketTooLarge {
                size: 2_097_157,
                max: 1 << 20
            }
        );
        assert_eq!(err.reason_code().as_u8(), 0x95);
    }

    #[test]
    fn five_byte_remaining_length_is_malformed() {
        let err = check(&buf(&[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]), usize::MAX).unwrap_err();
        assert_eq!(err, CodecError::MalformedVarint);
        assert_eq!(err.reason_code().as_u8(), 0x81);
    }

    #[test]
    fn reserved_type_flags_and_qos3_are_rejected_from_the_first_byte() {
        assert_eq!(
            check(&buf(&[0x00]), 10),
            Err(CodecError::InvalidPacketType(0))
        );
        assert_eq!(
            check(&buf(&[0x00, 0x00]), 10),
            Err(CodecError::InvalidPacketType(0))
        );
        assert!(matches!(
            check(&buf(&[0x60, 0x02, 0, 1]), 10),
            Err(CodecError::ReservedFlags { .. })
        ));
        assert!(matches!(
            check(&buf(&[0x81]), 10),
            Err(CodecError::ReservedFlags { .. })
        ));
        assert!(matches!(
            check(&buf(&[0xC1, 0x00]), 10),
            Err(CodecError::ReservedFlags { .. })
        ));
        assert_eq!(check(&buf(&[0x36, 0x00]), 10), Err(CodecError::InvalidQos));
        assert!(check(&buf(&[0x62, 0x02, 0, 1]), 10).unwrap().is_some());
    }
}
