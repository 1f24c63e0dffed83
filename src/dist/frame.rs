//! Framing of a distribution connection: `{packet, 2}` during the handshake, `{packet, 4}`
//! after it (erts/doc/src/erl_dist_protocol.xml, "Protocol between connected nodes"). A frame
//! of length zero after the handshake is a tick.
//!
//! Check-then-parse: a frame is taken out of the buffer only when all of it is there, a declared
//! length above the configured maximum is an error before anything is allocated for it, and
//! [`read_hint`] bounds how much a reader reserves ahead of bytes that have not arrived.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Largest handshake message we accept: an `'N'` message is 19 bytes plus a node name of at
/// most 255 characters (up to 1020 bytes of UTF-8).
pub const MAX_HANDSHAKE_FRAME: usize = 2048;
/// Default largest data frame (see docs/decisions.md): large enough for a 10 MB message from a
/// peer that does not fragment, small enough to bound one connection's buffer.
pub const DEFAULT_MAX_FRAME: usize = 64 * 1024 * 1024;
/// The most a reader reserves ahead of data it has not received yet.
pub const READ_CHUNK: usize = 64 * 1024;

/// A frame declared a length above the limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("frame of {declared} bytes exceeds the limit of {limit}")]
pub struct FrameTooLarge {
    /// The length the peer declared.
    pub declared: usize,
    /// The configured limit.
    pub limit: usize,
}

/// One frame of an established connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DistFrame {
    /// A zero-length frame: the peer is alive.
    Tick,
    /// The bytes after the 4-byte length (`112 ...` or `131,68 ...`).
    Data(Bytes),
}

/// Takes one 2-byte-length handshake frame out of `buf`, if all of it has arrived.
pub fn decode_handshake(buf: &mut BytesMut) -> Result<Option<Bytes>, FrameTooLarge> {
    if buf.len() < 2 {
        return Ok(None);
    }
    let len = usize::from(u16::from_be_bytes([buf[0], buf[1]]));
    if len > MAX_HANDSHAKE_FRAME {
        return Err(FrameTooLarge {
            declared: len,
            limit: MAX_HANDSHAKE_FRAME,
        });
    }
    if buf.len() < 2 + len {
        return Ok(None);
    }
    buf.advance(2);
    Ok(Some(buf.split_to(len).freeze()))
}

/// Appends a 2-byte-length handshake frame holding `msg`.
pub fn encode_handshake(msg: &[u8], out: &mut BytesMut) {
    debug_assert!(msg.len() <= MAX_HANDSHAKE_FRAME);
    out.reserve(2 + msg.len());
    out.put_u16(msg.len() as u16);
    out.put_slice(msg);
}

/// Takes one 4-byte-length frame out of `buf`, if all of it has arrived.
pub fn decode_dist(buf: &mut BytesMut, max: usize) -> Result<Option<DistFrame>, FrameTooLarge> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    if len > max {
        return Err(FrameTooLarge {
            declared: len,
            limit: max,
        });
    }
    if buf.len() < 4 + len {
        return Ok(None);
    }
    buf.advance(4);
    if len == 0 {
        return Ok(Some(DistFrame::Tick));
    }
    Ok(Some(DistFrame::Data(buf.split_to(len).freeze())))
}

/// The 4-byte length header of a data frame of `len` bytes.
pub fn dist_header(len: usize) -> [u8; 4] {
    (len as u32).to_be_bytes()
}

/// A tick: a 4-byte zero length.
pub const TICK: [u8; 4] = [0, 0, 0, 0];

/// How many bytes a reader should make room for next: what the current partial frame still
/// needs, but never more than [`READ_CHUNK`] at once, so a huge declared length only grows the
/// buffer as fast as bytes really arrive.
pub fn read_hint(buf: &BytesMut, header_len: usize) -> usize {
    if buf.len() < header_len {
        return READ_CHUNK;
    }
    let declared = if header_len == 2 {
        usize::from(u16::from_be_bytes([buf[0], buf[1]]))
    } else {
        u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize
    };
    let missing = (header_len + declared).saturating_sub(buf.len());
    missing.clamp(1, READ_CHUNK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshake_frames_split_and_join() {
        let mut out = BytesMut::new();
        encode_handshake(b"sok", &mut out);
        encode_handshake(b"a", &mut out);
        assert_eq!(&out[..], b"\x00\x03sok\x00\x01a");
        let mut partial = BytesMut::from(&out[..4]);
        assert_eq!(decode_handshake(&mut partial), Ok(None));
        assert_eq!(partial.len(), 4, "nothing consumed from a partial frame");
        assert_eq!(
            decode_handshake(&mut out),
            Ok(Some(Bytes::from_static(b"sok")))
        );
        assert_eq!(
            decode_handshake(&mut out),
            Ok(Some(Bytes::from_static(b"a")))
        );
        assert_eq!(decode_handshake(&mut out), Ok(None));
    }

    #[test]
    fn oversized_handshake_frame_is_refused() {
        let mut b = BytesMut::from(&[0xff, 0xff, b'N'][..]);
        assert_eq!(
            decode_handshake(&mut b),
            Err(FrameTooLarge {
                declared: 65535,
                limit: 2048
            })
        );
    }

    #[test]
    fn dist_frames_and_ticks() {
        let mut b = BytesMut::new();
        b.extend_from_slice(&TICK);
        b.extend_from_slice(&dist_header(3));
        b.extend_from_slice(&[131, 68, 0]);
        b.extend_from_slice(&dist_header(2));
        b.extend_from_slice(&[112]);
        assert_eq!(decode_dist(&mut b, 100), Ok(Some(DistFrame::Tick)));
        assert_eq!(
            decode_dist(&mut b, 100),
            Ok(Some(DistFrame::Data(Bytes::from_static(&[131, 68, 0]))))
        );
        assert_eq!(decode_dist(&mut b, 100), Ok(None));
        assert_eq!(b.len(), 5);
    }

    #[test]
    fn huge_declared_length_is_refused_before_allocation() {
        let mut b = BytesMut::from(&[0xff, 0xff, 0xff, 0xff][..]);
        assert!(decode_dist(&mut b, DEFAULT_MAX_FRAME).is_err());
        let mut b = BytesMut::from(&dist_header(DEFAULT_MAX_FRAME)[..]);
        assert_eq!(decode_dist(&mut b, DEFAULT_MAX_FRAME), Ok(None));
        assert_eq!(
            read_hint(&b, 4),
            READ_CHUNK,
            "reserve grows by chunks, not by the claim"
        );
    }

    #[test]
    fn read_hint_asks_for_what_is_missing() {
        let mut b = BytesMut::new();
        b.extend_from_slice(&dist_header(10));
        b.extend_from_slice(&[1, 2, 3]);
        assert_eq!(read_hint(&b, 4), 7);
        assert_eq!(read_hint(&BytesMut::new(), 4), READ_CHUNK);
    }
}
