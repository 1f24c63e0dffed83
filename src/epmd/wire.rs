//! Request codes, limits and the check-then-parse packet framing of the epmd protocol.
//!
//! Every request is `Length:16 | Body`, one per TCP connection (`erts/doc/src/erl_dist_protocol.xml`).
//! The framing below reproduces `do_read` in `erts/epmd/src/epmd_srv.c` exactly, including its
//! read sizes, because those decide which pipelined bytes C epmd sees and which it leaves unread.

/// `ALIVE2_REQ` ('x'): register a node; the connection then stays open for its lifetime.
pub const ALIVE2_REQ: u8 = 120;
/// `ALIVE2_RESP` ('y'): registration answer with a 16-bit creation, for highvsn < 6.
pub const ALIVE2_RESP: u8 = 121;
/// `ALIVE2_X_RESP` ('v'): registration answer with a 32-bit creation, for highvsn >= 6 (OTP 23+).
pub const ALIVE2_X_RESP: u8 = 118;
/// `PORT_PLEASE2_REQ` ('z'): look up a node's distribution port.
pub const PORT_PLEASE2_REQ: u8 = 122;
/// `PORT2_RESP` ('w'): the answer to `PORT_PLEASE2_REQ`.
pub const PORT2_RESP: u8 = 119;
/// `NAMES_REQ` ('n'): list registered names.
pub const NAMES_REQ: u8 = 110;
/// `DUMP_REQ` ('d'): list registered and remembered names with their file descriptors.
pub const DUMP_REQ: u8 = 100;
/// `KILL_REQ` ('k'): stop the daemon.
pub const KILL_REQ: u8 = 107;
/// `STOP_REQ` ('s'): forcibly unregister a name.
pub const STOP_REQ: u8 = 115;

/// The well-known epmd port (`EPMD_PORT_NO` in `erts/epmd/src/epmd.h`).
pub const DEFAULT_PORT: u16 = 4369;
/// `MAXSYMLEN` in `epmd_int.h`: 255 characters of UTF-8, so at most 1020 bytes, for names and extra.
pub const MAX_SYM_LEN: usize = 255 * 4;
/// `INBUF_SIZE` in `epmd_int.h`: a packet whose length field plus 2 reaches this closes the connection.
pub const INBUF_SIZE: usize = 3 * MAX_SYM_LEN;
/// Most characters a node name may have (`verify_utf8` result bound in `node_reg2`).
pub const MAX_NAME_CHARS: usize = 255;

/// Why a packet can never become a request; C epmd closes the connection without a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The length field is below 1 or makes the packet `INBUF_SIZE` bytes or more.
    #[error("invalid packet size ({0})")]
    InvalidSize(usize),
    /// More bytes arrived in the first read than the length field announced.
    #[error("got {got} bytes in packet, expected {want}")]
    Overlong {
        /// Body bytes received.
        got: usize,
        /// Body bytes announced.
        want: usize,
    },
}

/// Progress of a packet after a read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Read again into [`PacketReader::read_buf`].
    NeedMore,
    /// [`PacketReader::body`] holds the whole request.
    Complete,
}

/// Accumulates one request packet with C epmd's buffer discipline.
///
/// While the length is unknown C reads up to `INBUF_SIZE - 1` bytes at once; once known, only the
/// rest of the packet. So bytes pipelined behind a request in the first segment close the
/// connection (`got > want`), while bytes arriving later stay unread.
pub struct PacketReader {
    buf: Box<[u8; INBUF_SIZE]>,
    got: usize,
    want: usize,
}

impl Default for PacketReader {
    fn default() -> Self {
        Self::new()
    }
}

impl PacketReader {
    /// An empty reader; the only allocation is the fixed `INBUF_SIZE` buffer.
    pub fn new() -> Self {
        Self {
            buf: Box::new([0u8; INBUF_SIZE]),
            got: 0,
            want: 0,
        }
    }

    /// The slice the next `read` must fill: never more than C epmd would ask for.
    pub fn read_buf(&mut self) -> &mut [u8] {
        let limit = if self.want == 0 {
            INBUF_SIZE - 1
        } else {
            self.want
        };
        &mut self.buf[self.got..limit]
    }

    /// Account for `n` bytes just read into [`Self::read_buf`] (`n > 0`).
    pub fn advance(&mut self, n: usize) -> Result<Framing, FrameError> {
        self.got += n;
        if self.want == 0 && self.got >= 2 {
            let want = usize::from(u16::from_be_bytes([self.buf[0], self.buf[1]])) + 2;
            if want < 3 || want >= INBUF_SIZE {
                return Err(FrameError::InvalidSize(want - 2));
            }
            if self.got > want {
                return Err(FrameError::Overlong {
                    got: self.got - 2,
                    want: want - 2,
                });
            }
            self.want = want;
        }
        if self.want != 0 && self.got == self.want {
            Ok(Framing::Complete)
        } else {
            Ok(Framing::NeedMore)
        }
    }

    /// Bytes received so far (for the "partial packet" log line).
    pub fn received(&self) -> usize {
        self.got
    }

    /// The request body (without the length field) once [`Framing::Complete`] was returned.
    pub fn body(&self) -> &[u8] {
        if self.want == 0 {
            &[]
        } else {
            &self.buf[2..self.want]
        }
    }
}

/// Read a big-endian u16 at `at`, if the bytes are there.
pub(crate) fn get_u16(buf: &[u8], at: usize) -> Option<u16> {
    let bytes = buf.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes([bytes[0], bytes[1]]))
}

/// Prefix `body` with its 16-bit length, as every request is sent.
pub fn frame(body: &[u8]) -> Vec<u8> {
    let len = u16::try_from(body.len()).unwrap_or(u16::MAX);
    let mut out = Vec::with_capacity(body.len() + 2);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&body[..usize::from(len)]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(reader: &mut PacketReader, bytes: &[u8]) -> Result<Framing, FrameError> {
        let dst = reader.read_buf();
        assert!(
            bytes.len() <= dst.len(),
            "test feeds more than C would read"
        );
        dst[..bytes.len()].copy_from_slice(bytes);
        reader.advance(bytes.len())
    }

    #[test]
    fn whole_packet_in_one_read() {
        let mut r = PacketReader::new();
        assert_eq!(feed(&mut r, &[0, 1, NAMES_REQ]), Ok(Framing::Complete));
        assert_eq!(r.body(), &[NAMES_REQ]);
    }

    #[test]
    fn byte_by_byte_asks_only_for_the_rest_once_length_is_known() {
        let mut r = PacketReader::new();
        assert_eq!(r.read_buf().len(), INBUF_SIZE - 1);
        assert_eq!(feed(&mut r, &[0]), Ok(Framing::NeedMore));
        assert_eq!(feed(&mut r, &[3]), Ok(Framing::NeedMore));
        assert_eq!(r.read_buf().len(), 3);
        assert_eq!(
            feed(&mut r, &[PORT_PLEASE2_REQ, b'a']),
            Ok(Framing::NeedMore)
        );
        assert_eq!(r.read_buf().len(), 1);
        assert_eq!(feed(&mut r, b"b"), Ok(Framing::Complete));
        assert_eq!(r.body(), b"zab");
    }

    #[test]
    fn zero_length_is_invalid() {
        let mut r = PacketReader::new();
        assert_eq!(feed(&mut r, &[0, 0]), Err(FrameError::InvalidSize(0)));
    }

    #[test]
    fn length_reaching_inbuf_size_is_invalid() {
        let mut r = PacketReader::new();
        let len = (INBUF_SIZE - 2) as u16;
        assert_eq!(
            feed(&mut r, &len.to_be_bytes()),
            Err(FrameError::InvalidSize(INBUF_SIZE - 2))
        );
        let mut r = PacketReader::new();
        let len = (INBUF_SIZE - 3) as u16;
        assert_eq!(feed(&mut r, &len.to_be_bytes()), Ok(Framing::NeedMore));
        assert_eq!(r.read_buf().len(), INBUF_SIZE - 3);
    }

    #[test]
    fn pipelined_bytes_in_first_read_close() {
        let mut r = PacketReader::new();
        assert_eq!(
            feed(&mut r, &[0, 1, NAMES_REQ, 0, 1, NAMES_REQ]),
            Err(FrameError::Overlong { got: 4, want: 1 })
        );
    }

    #[test]
    fn frame_prefixes_length() {
        assert_eq!(frame(&[NAMES_REQ]), vec![0, 1, NAMES_REQ]);
    }
}
