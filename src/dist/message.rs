//! Whole distribution messages: a control message and its optional payload, decoded from
//! received frames (header, atom cache, fragments) and encoded into frames to send.
//!
//! [`Inbound`] and [`Outbound`] hold the per-connection, per-direction state (atom caches,
//! fragments in flight, sequence ids). They are sans-IO: frames in, messages out and back.
use bytes::{BufMut, Bytes, BytesMut};

use crate::dist::control::{ControlError, ControlMessage};
use crate::dist::etf::{
    encode_body, Atom, DecodeError, DecodeLimits, InlineAtoms, Term, TermReader,
};
use crate::dist::fragments::{FragmentError, FragmentLimits, Reassembler};
use crate::dist::header::{
    read_header, AtomCache, AtomCacheWriter, FrameKind, HeaderError, PASS_THROUGH,
};

/// A control message and, for the operations that carry one, its payload (the message sent,
/// the exit reason of the PAYLOAD_ operations, the argument list of SPAWN_REQUEST).
#[derive(Debug, Clone, PartialEq)]
pub struct DistMessage {
    /// The control message.
    pub control: ControlMessage,
    /// The payload term.
    pub payload: Option<Term>,
}

/// A frame that could not be turned into a message; the connection should be closed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DistError {
    /// Bad distribution header or atom cache use.
    #[error("header: {0}")]
    Header(#[from] HeaderError),
    /// Fragments out of order, unknown, or over the limits.
    #[error("fragments: {0}")]
    Fragment(#[from] FragmentError),
    /// A control or payload term did not decode.
    #[error("term: {0}")]
    Term(#[from] DecodeError),
    /// The control term is not a valid control message.
    #[error("control: {0}")]
    Control(#[from] ControlError),
    /// An operation that needs a payload came without one.
    #[error("operation {0} without its payload")]
    MissingPayload(i64),
    /// An operation without payload came with bytes after its control term.
    #[error("operation {0} with an unexpected payload")]
    UnexpectedPayload(i64),
}

impl DistMessage {
    /// A message with a payload.
    pub fn with_payload(control: ControlMessage, payload: Term) -> Self {
        DistMessage {
            control,
            payload: Some(payload),
        }
    }

    /// A message without payload.
    pub fn control(control: ControlMessage) -> Self {
        DistMessage {
            control,
            payload: None,
        }
    }

    /// Decodes control term and payload from `body[start..]`. `versioned`: each term starts with
    /// 131 (pass-through frames) rather than following a distribution header.
    pub fn decode(
        body: &Bytes,
        start: usize,
        atoms: &[Atom],
        versioned: bool,
        limits: &DecodeLimits,
    ) -> Result<DistMessage, DistError> {
        let mut r = TermReader::new(body, start, atoms, limits);
        let read = |r: &mut TermReader<'_>| {
            if versioned {
                r.read_versioned_term()
            } else {
                r.read_term()
            }
        };
        let control = ControlMessage::from_term(read(&mut r)?)?;
        let payload = if r.remaining() > 0 {
            Some(read(&mut r)?)
        } else {
            None
        };
        r.finish()?;
        match (control.has_payload(), &payload) {
            (Some(true), None) => Err(DistError::MissingPayload(control.op())),
            (Some(false), Some(_)) => Err(DistError::UnexpectedPayload(control.op())),
            _ => Ok(DistMessage { control, payload }),
        }
    }
}

/// Limits for one connection's receiving side.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InboundLimits {
    /// Term decoding bounds.
    pub decode: DecodeLimits,
    /// Fragment reassembly bounds.
    pub fragments: FragmentLimits,
}

/// The receiving side of a connection: data frames in, messages out.
pub struct Inbound {
    cache: AtomCache,
    fragments: Reassembler,
    atoms: Vec<Atom>,
    limits: DecodeLimits,
}

impl Default for Inbound {
    fn default() -> Self {
        Self::new(InboundLimits::default())
    }
}

impl Inbound {
    /// Fresh state for a new connection.
    pub fn new(limits: InboundLimits) -> Self {
        Inbound {
            cache: AtomCache::new(),
            fragments: Reassembler::new(limits.fragments),
            atoms: Vec::new(),
            limits: limits.decode,
        }
    }

    /// Takes one data frame (without its 4-byte length). Returns the message it completes, or
    /// `None` for a tick (empty frame) or a fragment of an unfinished message.
    pub fn receive(&mut self, frame: Bytes) -> Result<Option<DistMessage>, DistError> {
        if frame.is_empty() {
            return Ok(None);
        }
        let h = read_header(&frame, &mut self.cache, &mut self.atoms)?;
        let whole = match h.kind {
            FrameKind::PassThrough => {
                return DistMessage::decode(&frame, h.body, &[], true, &self.limits).map(Some);
            }
            FrameKind::Message => {
                return DistMessage::decode(&frame, h.body, &self.atoms, false, &self.limits)
                    .map(Some);
            }
            FrameKind::FragmentStart { sequence, fragment } => {
                self.fragments
                    .start(sequence, fragment, &self.atoms, frame.slice(h.body..))?
            }
            FrameKind::FragmentCont { sequence, fragment } => {
                self.fragments.cont(sequence, fragment, &frame[h.body..])?
            }
        };
        match whole {
            None => Ok(None),
            Some(m) => DistMessage::decode(&m.body, 0, &m.atoms, false, &self.limits).map(Some),
        }
    }

    /// Fragment reassembly state (for metrics and tests).
    pub fn fragments(&self) -> &Reassembler {
        &self.fragments
    }
}

/// What the handshake agreed that shapes outgoing frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboundConfig {
    /// DFLAG_DIST_HDR_ATOM_CACHE: send `131,68` headers (else pass-through `112` frames).
    pub atom_cache: bool,
    /// DFLAG_FRAGMENTS: split messages whose body exceeds `fragment_size`.
    pub fragments: bool,
    /// Body bytes per fragment (OTP uses 64 KiB).
    pub fragment_size: usize,
}

impl Default for OutboundConfig {
    fn default() -> Self {
        OutboundConfig {
            atom_cache: true,
            fragments: true,
            fragment_size: 64 * 1024,
        }
    }
}

/// The sending side of a connection: messages in, length-prefixed frames out.
///
/// Frames must be written in the order they were encoded: the atom cache of the peer is updated
/// by the headers in that order.
pub struct Outbound {
    cache: AtomCacheWriter,
    config: OutboundConfig,
    next_sequence: u64,
}

impl Default for Outbound {
    fn default() -> Self {
        Self::new(OutboundConfig::default())
    }
}

impl Outbound {
    /// Fresh state for a new connection.
    pub fn new(config: OutboundConfig) -> Self {
        Outbound {
            cache: AtomCacheWriter::new(),
            config,
            next_sequence: 1,
        }
    }

    /// Appends the frames of `msg` to `out`, each as `Length:32` + frame.
    pub fn encode(&mut self, msg: &DistMessage, out: &mut BytesMut) {
        let control = msg.control.to_term();
        let start = out.len();
        out.put_u32(0);
        if !self.config.atom_cache {
            out.put_u8(PASS_THROUGH);
            crate::dist::etf::encode(&control, out);
            if let Some(p) = &msg.payload {
                crate::dist::etf::encode(p, out);
            }
            patch_len(out, start);
            return;
        }
        match &msg.payload {
            Some(p) => self.cache.prepare(&[&control, p]),
            None => self.cache.prepare(&[&control]),
        }
        self.cache.write_header(out, None);
        let body_start = out.len();
        encode_body(&control, out, &mut self.cache);
        if let Some(p) = &msg.payload {
            encode_body(p, out, &mut self.cache);
        }
        let size = self.config.fragment_size.max(1);
        let body_len = out.len() - body_start;
        if !self.config.fragments || body_len <= size {
            patch_len(out, start);
            return;
        }
        // Too big for one frame: re-cut the encoded body into fragments, in room reserved
        // once (`split_off` leaves `out` only the capacity before the body, and growing it
        // fragment by fragment re-copied everything written so far at each doubling).
        let body = out.split_off(body_start).freeze();
        out.truncate(start);
        let count = body_len.div_ceil(size) as u64;
        let header = body_start - start;
        out.reserve(body_len + header + 64 + count as usize * FRAG_CONT_OVERHEAD);
        let sequence = self.next_sequence;
        self.next_sequence = self.next_sequence.wrapping_add(1);
        for (i, chunk) in body.chunks(size).enumerate() {
            let at = out.len();
            out.put_u32(0);
            let fragment = count - i as u64;
            if i == 0 {
                self.cache.write_header(out, Some((sequence, count)));
            } else {
                out.put_u8(crate::dist::etf::tags::VERSION);
                out.put_u8(crate::dist::etf::tags::DIST_FRAG_CONT);
                out.put_u64(sequence);
                out.put_u64(fragment);
            }
            out.extend_from_slice(chunk);
            patch_len(out, at);
        }
    }

    /// Encodes without the atom cache or fragments into one pass-through frame body (no
    /// length): for tests and peers that agreed neither.
    pub fn encode_pass_through(msg: &DistMessage, out: &mut BytesMut) {
        out.put_u8(PASS_THROUGH);
        out.put_u8(crate::dist::etf::tags::VERSION);
        encode_body(&msg.control.to_term(), out, &mut InlineAtoms);
        if let Some(p) = &msg.payload {
            out.put_u8(crate::dist::etf::tags::VERSION);
            encode_body(p, out, &mut InlineAtoms);
        }
    }
}

/// Length prefix and header of a continuation fragment: `Len:32, 131, 70, Seq:64, Frag:64`.
const FRAG_CONT_OVERHEAD: usize = 4 + 2 + 8 + 8;

fn patch_len(out: &mut BytesMut, at: usize) {
    let len = (out.len() - at - 4) as u32;
    out[at..at + 4].copy_from_slice(&len.to_be_bytes());
}
