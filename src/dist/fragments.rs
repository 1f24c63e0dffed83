//! Reassembly of fragmented messages (`erts/doc/src/erl_ext_dist.xml`, DIST_FRAG_HEADER and
//! DIST_FRAG_CONT; `erts/emulator/beam/dist.c`, `erts_dist_fragment`).
//!
//! A big message arrives as one `131,69` frame (sequence id, fragment count, atom cache refs,
//! first chunk) and `count - 1` frames `131,70` with fragment ids counting down to 1. Fragments
//! of different messages may interleave on one connection; fragments of one message arrive in
//! order. Bounded per connection: in-flight sequences and total buffered bytes (a peer could
//! otherwise open sequences forever).
use std::collections::HashMap;

use bytes::{Bytes, BytesMut};

use crate::dist::etf::Atom;

/// Bounds on what a connection may have in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragmentLimits {
    /// Most messages partly received at once.
    pub max_sequences: usize,
    /// Most bytes buffered over all partly received messages.
    pub max_bytes: usize,
}

impl Default for FragmentLimits {
    fn default() -> Self {
        FragmentLimits {
            max_sequences: 256,
            max_bytes: 128 << 20,
        }
    }
}

/// A fragment that does not fit the stream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FragmentError {
    /// A fragment header with a count of 0.
    #[error("fragment header with count 0 (sequence {0})")]
    ZeroCount(u64),
    /// A new message reused a sequence id still in flight.
    #[error("sequence {0} started twice")]
    DuplicateSequence(u64),
    /// A continuation for no message in flight.
    #[error("continuation for unknown sequence {0}")]
    UnknownSequence(u64),
    /// A continuation with the wrong fragment number.
    #[error("sequence {sequence}: expected fragment {expected}, got {got}")]
    OutOfOrder {
        /// The message.
        sequence: u64,
        /// Fragment number due.
        expected: u64,
        /// Fragment number received.
        got: u64,
    },
    /// More messages in flight than allowed.
    #[error("more than {0} fragmented messages in flight")]
    TooManySequences(usize),
    /// More bytes buffered than allowed.
    #[error("more than {0} bytes of fragments buffered")]
    TooManyBytes(usize),
}

/// A whole message put back together.
#[derive(Debug, Clone, PartialEq)]
pub struct Reassembled {
    /// The message's atom reference table (from its first fragment).
    pub atoms: Vec<Atom>,
    /// Control term and payload, without version bytes.
    pub body: Bytes,
}

struct Partial {
    next: u64,
    atoms: Vec<Atom>,
    data: BytesMut,
}

/// Per-connection reassembly state.
#[derive(Default)]
pub struct Reassembler {
    inflight: HashMap<u64, Partial>,
    buffered: usize,
    limits: FragmentLimits,
}

impl Reassembler {
    /// Empty state with `limits`.
    pub fn new(limits: FragmentLimits) -> Self {
        Reassembler {
            inflight: HashMap::new(),
            buffered: 0,
            limits,
        }
    }

    /// Messages partly received.
    pub fn in_flight(&self) -> usize {
        self.inflight.len()
    }

    /// Bytes buffered.
    pub fn buffered(&self) -> usize {
        self.buffered
    }

    /// A first fragment. `body` is the frame's data after the header; a one-fragment message
    /// comes straight back without copying.
    pub fn start(
        &mut self,
        sequence: u64,
        count: u64,
        atoms: &[Atom],
        body: Bytes,
    ) -> Result<Option<Reassembled>, FragmentError> {
        if count == 0 {
            return Err(FragmentError::ZeroCount(sequence));
        }
        if self.inflight.contains_key(&sequence) {
            return Err(FragmentError::DuplicateSequence(sequence));
        }
        if count == 1 {
            return Ok(Some(Reassembled {
                atoms: atoms.to_vec(),
                body,
            }));
        }
        if self.inflight.len() >= self.limits.max_sequences {
            return Err(FragmentError::TooManySequences(self.limits.max_sequences));
        }
        self.account(body.len())?;
        let data = BytesMut::from(&body[..]);
        self.inflight.insert(
            sequence,
            Partial {
                next: count - 1,
                atoms: atoms.to_vec(),
                data,
            },
        );
        Ok(None)
    }

    /// A continuation fragment.
    pub fn cont(
        &mut self,
        sequence: u64,
        fragment: u64,
        body: &[u8],
    ) -> Result<Option<Reassembled>, FragmentError> {
        let Some(p) = self.inflight.get(&sequence) else {
            return Err(FragmentError::UnknownSequence(sequence));
        };
        if p.next != fragment {
            return Err(FragmentError::OutOfOrder {
                sequence,
                expected: p.next,
                got: fragment,
            });
        }
        self.account(body.len())?;
        let Some(p) = self.inflight.get_mut(&sequence) else {
            return Err(FragmentError::UnknownSequence(sequence));
        };
        p.data.extend_from_slice(body);
        p.next -= 1;
        if p.next > 0 {
            return Ok(None);
        }
        let Some(p) = self.inflight.remove(&sequence) else {
            return Err(FragmentError::UnknownSequence(sequence));
        };
        self.buffered -= p.data.len();
        Ok(Some(Reassembled {
            atoms: p.atoms,
            body: p.data.freeze(),
        }))
    }

    fn account(&mut self, n: usize) -> Result<(), FragmentError> {
        let total = self.buffered.saturating_add(n);
        if total > self.limits.max_bytes {
            return Err(FragmentError::TooManyBytes(self.limits.max_bytes));
        }
        self.buffered = total;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &'static [u8]) -> Bytes {
        Bytes::from_static(s)
    }

    #[test]
    fn reassembles_interleaved_sequences() {
        let mut r = Reassembler::default();
        let a = [Atom::new("frag_atom")];
        assert_eq!(r.start(1, 3, &a, b(b"ab")), Ok(None));
        assert_eq!(r.start(2, 2, &[], b(b"xy")), Ok(None));
        assert_eq!(r.cont(1, 2, b"cd"), Ok(None));
        assert_eq!(r.in_flight(), 2);
        assert_eq!(r.buffered(), 6);
        let two = r.cont(2, 1, b"z").unwrap().unwrap();
        assert_eq!(&two.body[..], b"xyz");
        let one = r.cont(1, 1, b"e").unwrap().unwrap();
        assert_eq!(&one.body[..], b"abcde");
        assert_eq!(one.atoms, a);
        assert_eq!((r.in_flight(), r.buffered()), (0, 0));
    }

    #[test]
    fn single_fragment_is_immediate() {
        let mut r = Reassembler::default();
        let m = r.start(9, 1, &[], b(b"whole")).unwrap().unwrap();
        assert_eq!(&m.body[..], b"whole");
        assert_eq!(r.in_flight(), 0);
    }

    #[test]
    fn protocol_violations_are_errors() {
        let mut r = Reassembler::default();
        assert_eq!(r.start(1, 0, &[], b(b"")), Err(FragmentError::ZeroCount(1)));
        assert_eq!(r.cont(5, 1, b""), Err(FragmentError::UnknownSequence(5)));
        r.start(1, 3, &[], b(b"a")).unwrap();
        assert_eq!(
            r.start(1, 3, &[], b(b"a")),
            Err(FragmentError::DuplicateSequence(1))
        );
        assert_eq!(
            r.cont(1, 1, b"x"),
            Err(FragmentError::OutOfOrder {
                sequence: 1,
                expected: 2,
                got: 1
            })
        );
    }

    #[test]
    fn limits_hold() {
        let mut r = Reassembler::new(FragmentLimits {
            max_sequences: 2,
            max_bytes: 10,
        });
        r.start(1, 5, &[], b(b"12345")).unwrap();
        r.start(2, 5, &[], b(b"123")).unwrap();
        assert_eq!(
            r.start(3, 5, &[], b(b"1")),
            Err(FragmentError::TooManySequences(2))
        );
        assert_eq!(r.cont(1, 4, b"123"), Err(FragmentError::TooManyBytes(10)));
        assert_eq!(r.cont(1, 4, b"12"), Ok(None));
        assert_eq!(r.buffered(), 10);
    }
}
