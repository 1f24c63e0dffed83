//! Reading whole MQTT packets from any byte stream with the codec's check-then-parse framing:
//! bytes are read into a caller-owned buffer, [`Packet::decode`] splits a frame off once it is
//! complete, and a frame over `max_packet_size` is refused from its fixed header, before its body
//! is buffered. Used by `beamq bench` and by tests; the broker's loop can use it too.

use bytes::BytesMut;
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt as _};

use crate::mqtt::codec::{CodecError, Packet, ProtocolVersion};

/// Why no packet could be read.
#[derive(Debug, Error)]
pub enum ReadError {
    /// The socket failed.
    #[error("read: {0}")]
    Io(#[from] std::io::Error),
    /// The bytes are not a valid packet.
    #[error("decode: {0}")]
    Codec(#[from] CodecError),
    /// The peer closed in the middle of a packet.
    #[error("connection closed mid-packet")]
    Truncated,
}

/// Reads until one packet is decoded. `Ok(None)` on a clean end of stream between packets.
/// Leftover bytes stay in `buf` for the next call.
pub async fn read_packet<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut BytesMut,
    version: ProtocolVersion,
    max_packet_size: usize,
) -> Result<Option<Packet>, ReadError> {
    loop {
        if let Some(p) = Packet::decode(buf, version, max_packet_size)? {
            return Ok(Some(p));
        }
        if buf.capacity() - buf.len() < 4096 {
            buf.reserve(8192);
        }
        if r.read_buf(buf).await? == 0 {
            return if buf.is_empty() {
                Ok(None)
            } else {
                Err(ReadError::Truncated)
            };
        }
    }
}
