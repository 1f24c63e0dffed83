//! The distribution header and its atom cache (`erts/doc/src/erl_ext_dist.xml`, "Distribution
//! Header"; `erts/emulator/beam/dist.c`, `erts/emulator/beam/external.c`).
//!
//! With DFLAG_DIST_HDR_ATOM_CACHE agreed (OTP always agrees it) every data frame starts with
//! `131,68` (or `131,69` / `131,70` for fragments) and a table of atom cache references: each
//! either names a slot of the per-connection, per-direction cache of 2048 atoms, or sets that slot
//! and carries the atom's text. ATOM_CACHE_REF (82) in the terms that follow is an index into this
//! per-message table. Without the flag a frame is `112` ('p') followed by `131`-prefixed terms.
//!
//! Receiving: [`AtomCache`] + [`read_header`]. Sending: [`AtomCacheWriter`], which caches an atom
//! only where it pays: any atom of 2 or more bytes (a reference costs 2 bytes in the body plus
//! 1.5 in the header, so a 1-byte atom is cheaper inline), up to 255 per message.
use bytes::{BufMut, BytesMut};

use crate::dist::etf::{tags, Atom, AtomError, AtomRefs, Term};

/// Slots in each direction's atom cache (`ERTS_ATOM_CACHE_SIZE`).
pub const ATOM_CACHE_SIZE: usize = 2048;
/// Most references one header can carry (the count is one byte).
pub const MAX_REFS_PER_MESSAGE: usize = 255;
/// Pass-through frame marker, used without DFLAG_DIST_HDR_ATOM_CACHE.
pub const PASS_THROUGH: u8 = 112;

/// A malformed distribution header.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HeaderError {
    /// The frame ended inside the header.
    #[error("truncated distribution header")]
    Truncated,
    /// The frame starts with neither `131,68|69|70` nor `112`.
    #[error("not a distribution header (starts {0}, {1})")]
    BadStart(u8, u8),
    /// A reference to a cache slot the peer never set.
    #[error("atom cache slot {0} used before it was set")]
    EmptySlot(u16),
    /// An atom text was invalid or the atom table is full.
    #[error("atom: {0}")]
    Atom(#[from] AtomError),
}

/// The receiving side's atom cache for one connection: what the peer's sender told us.
pub struct AtomCache {
    slots: Box<[Option<Atom>]>,
}

impl Default for AtomCache {
    fn default() -> Self {
        AtomCache {
            slots: vec![None; ATOM_CACHE_SIZE].into_boxed_slice(),
        }
    }
}

impl AtomCache {
    /// An empty cache (a new connection).
    pub fn new() -> Self {
        Self::default()
    }

    /// The atom in `slot`, if set.
    pub fn get(&self, slot: u16) -> Option<Atom> {
        self.slots.get(usize::from(slot)).copied().flatten()
    }
}

/// What kind of frame a header introduced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    /// `131,68`: a whole message follows; terms carry no version byte.
    Message,
    /// `131,69`: first fragment; `fragment` is the number of fragments (counts down to 1).
    FragmentStart {
        /// Identifies the message among those in flight.
        sequence: u64,
        /// Fragments in the message, this one included.
        fragment: u64,
    },
    /// `131,70`: a later fragment, `fragment` one less than the previous.
    FragmentCont {
        /// The message it belongs to.
        sequence: u64,
        /// This fragment's number.
        fragment: u64,
    },
    /// `112`: no header, a `131`-prefixed control term and payload follow.
    PassThrough,
}

/// A parsed header: its kind and where the body starts in the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Kind of frame.
    pub kind: FrameKind,
    /// Offset of the first body byte.
    pub body: usize,
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], HeaderError> {
        let end = self.pos.checked_add(n).ok_or(HeaderError::Truncated)?;
        let s = self.buf.get(self.pos..end).ok_or(HeaderError::Truncated)?;
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, HeaderError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, HeaderError> {
        let s = self.take(2)?;
        Ok(u16::from_be_bytes([s[0], s[1]]))
    }
    fn u64(&mut self) -> Result<u64, HeaderError> {
        let s = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        Ok(u64::from_be_bytes(a))
    }
}

/// Parses the header at the start of `frame` (a data frame without its 4-byte length), applies
/// its new cache entries to `cache` and fills `atoms` with the message's reference table.
pub fn read_header(
    frame: &[u8],
    cache: &mut AtomCache,
    atoms: &mut Vec<Atom>,
) -> Result<Header, HeaderError> {
    atoms.clear();
    let mut c = Cursor { buf: frame, pos: 0 };
    let first = c.u8()?;
    if first == PASS_THROUGH {
        return Ok(Header {
            kind: FrameKind::PassThrough,
            body: 1,
        });
    }
    let second = c.u8()?;
    let kind = match (first, second) {
        (tags::VERSION, tags::DIST_HEADER) => FrameKind::Message,
        (tags::VERSION, tags::DIST_FRAG_HEADER) => FrameKind::FragmentStart {
            sequence: c.u64()?,
            fragment: c.u64()?,
        },
        (tags::VERSION, tags::DIST_FRAG_CONT) => {
            let kind = FrameKind::FragmentCont {
                sequence: c.u64()?,
                fragment: c.u64()?,
            };
            return Ok(Header { kind, body: c.pos });
        }
        (a, b) => return Err(HeaderError::BadStart(a, b)),
    };
    read_refs(&mut c, cache, atoms)?;
    Ok(Header { kind, body: c.pos })
}

fn read_refs(
    c: &mut Cursor<'_>,
    cache: &mut AtomCache,
    atoms: &mut Vec<Atom>,
) -> Result<(), HeaderError> {
    let n = usize::from(c.u8()?);
    if n == 0 {
        return Ok(());
    }
    let flags = c.take(n / 2 + 1)?;
    // Half-byte i describes reference i (low half first); half-byte n holds LongAtoms in bit 0.
    let nibble = |i: usize| (flags[i / 2] >> ((i % 2) * 4)) & 0x0f;
    let long_atoms = nibble(n) & 1 == 1;
    for i in 0..n {
        let f = nibble(i);
        let slot = u16::from(f & 7) << 8 | u16::from(c.u8()?);
        let atom = if f & 8 != 0 {
            let len = if long_atoms {
                usize::from(c.u16()?)
            } else {
                usize::from(c.u8()?)
            };
            let atom = Atom::from_bytes(c.take(len)?)?;
            cache.slots[usize::from(slot)] = Some(atom);
            atom
        } else {
            cache.get(slot).ok_or(HeaderError::EmptySlot(slot))?
        };
        atoms.push(atom);
    }
    Ok(())
}

/// The sending side's atom cache for one connection: mirrors what the peer's [`AtomCache`]
/// holds, as long as frames are sent in the order they were encoded.
pub struct AtomCacheWriter {
    slots: Box<[Option<Atom>]>,
    /// Per slot: the message generation that referenced it and its reference index there.
    marks: Box<[(u32, u8)]>,
    generation: u32,
    refs: Vec<(Atom, u16, bool)>,
}

impl Default for AtomCacheWriter {
    fn default() -> Self {
        AtomCacheWriter {
            slots: vec![None; ATOM_CACHE_SIZE].into_boxed_slice(),
            marks: vec![(0, 0); ATOM_CACHE_SIZE].into_boxed_slice(),
            generation: 0,
            refs: Vec::new(),
        }
    }
}

fn slot_of(a: Atom) -> usize {
    a.index() as usize % ATOM_CACHE_SIZE
}

impl AtomCacheWriter {
    /// An empty cache (a new connection).
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts a message: walks `terms` and picks the atoms that go by reference.
    pub fn prepare(&mut self, terms: &[&Term]) {
        self.generation = self.generation.wrapping_add(1);
        if self.generation == 0 {
            self.marks.iter_mut().for_each(|m| *m = (0, 0));
            self.generation = 1;
        }
        self.refs.clear();
        let mut todo: Vec<&Term> = terms.to_vec();
        while let Some(t) = todo.pop() {
            match t {
                Term::Atom(a) => self.consider(*a),
                Term::Pid(p) => self.consider(p.node),
                Term::Port(p) => self.consider(p.node),
                Term::Ref(r) => self.consider(r.node),
                Term::Export {
                    module, function, ..
                } => {
                    self.consider(*module);
                    self.consider(*function);
                }
                Term::Fun(f) => {
                    self.consider(f.module);
                    self.consider(f.pid.node);
                    todo.extend(f.free_vars.iter());
                }
                Term::Tuple(v) => todo.extend(v.iter()),
                Term::List(v, tail) => {
                    todo.extend(v.iter());
                    todo.push(tail);
                }
                Term::Map(pairs) => {
                    for (k, v) in pairs {
                        todo.push(k);
                        todo.push(v);
                    }
                }
                Term::Int(_)
                | Term::Big(_)
                | Term::Float(_)
                | Term::Binary(_)
                | Term::BitBinary { .. }
                | Term::Nil => {}
            }
        }
    }

    fn consider(&mut self, a: Atom) {
        if a.as_str().len() < 2 || self.refs.len() >= MAX_REFS_PER_MESSAGE {
            return;
        }
        let slot = slot_of(a);
        if self.marks[slot].0 == self.generation {
            // Already referenced in this message, by `a` or by an atom sharing the slot (which
            // then keeps it; `a` goes inline).
            return;
        }
        let new = self.slots[slot] != Some(a);
        self.slots[slot] = Some(a);
        self.marks[slot] = (self.generation, self.refs.len() as u8);
        self.refs.push((a, slot as u16, new));
    }

    /// Writes the header for the prepared message: `131,68` (or the fragment header when
    /// `fragment` is `Some((sequence, count))`) and the reference table.
    pub fn write_header(&self, out: &mut BytesMut, fragment: Option<(u64, u64)>) {
        out.put_u8(tags::VERSION);
        match fragment {
            None => out.put_u8(tags::DIST_HEADER),
            Some((sequence, count)) => {
                out.put_u8(tags::DIST_FRAG_HEADER);
                out.put_u64(sequence);
                out.put_u64(count);
            }
        }
        let n = self.refs.len();
        out.put_u8(n as u8);
        if n == 0 {
            return;
        }
        let long_atoms = self
            .refs
            .iter()
            .any(|(a, _, new)| *new && a.as_str().len() > 255);
        let mut flags = [0u8; MAX_REFS_PER_MESSAGE / 2 + 1];
        for (i, (_, slot, new)) in self.refs.iter().enumerate() {
            let f = (u8::from(*new) << 3) | (*slot >> 8) as u8;
            flags[i / 2] |= f << ((i % 2) * 4);
        }
        flags[n / 2] |= u8::from(long_atoms) << ((n % 2) * 4);
        out.extend_from_slice(&flags[..n / 2 + 1]);
        for (a, slot, new) in &self.refs {
            out.put_u8(*slot as u8);
            if *new {
                let text = a.as_str().as_bytes();
                if long_atoms {
                    out.put_u16(text.len() as u16);
                } else {
                    out.put_u8(text.len() as u8);
                }
                out.extend_from_slice(text);
            }
        }
    }

    /// How many atoms the prepared message references.
    pub fn ref_count(&self) -> usize {
        self.refs.len()
    }
}

impl AtomRefs for AtomCacheWriter {
    #[inline]
    fn atom_ref(&mut self, a: Atom) -> Option<u8> {
        let slot = slot_of(a);
        let (generation, index) = self.marks[slot];
        (generation == self.generation && self.slots[slot] == Some(a)).then_some(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(
        w: &mut AtomCacheWriter,
        rx: &mut AtomCache,
        terms: &[&Term],
    ) -> (BytesMut, Vec<Atom>) {
        w.prepare(terms);
        let mut out = BytesMut::new();
        w.write_header(&mut out, None);
        let mut atoms = Vec::new();
        let h = read_header(&out, rx, &mut atoms).unwrap();
        assert_eq!(
            h,
            Header {
                kind: FrameKind::Message,
                body: out.len()
            }
        );
        (out, atoms)
    }

    #[test]
    fn first_use_sends_text_then_references() {
        let mut w = AtomCacheWriter::new();
        let mut rx = AtomCache::new();
        let t = Term::tuple([
            Term::atom("hdr_alpha"),
            Term::atom("x"),
            Term::atom("hdr_beta"),
            Term::atom("hdr_alpha"),
        ]);
        let (first, atoms) = roundtrip(&mut w, &mut rx, &[&t]);
        assert!(atoms.contains(&Atom::new("hdr_alpha")) && atoms.contains(&Atom::new("hdr_beta")));
        assert_eq!(
            atoms.len(),
            2,
            "one-byte atoms stay inline, duplicates share a reference"
        );
        assert_eq!(w.atom_ref(Atom::new("x")), None);
        let i = w.atom_ref(Atom::new("hdr_alpha")).unwrap();
        assert_eq!(atoms[usize::from(i)], Atom::new("hdr_alpha"));
        let (second, atoms2) = roundtrip(&mut w, &mut rx, &[&t]);
        assert_eq!(atoms2.len(), 2);
        assert!(
            second.len() < first.len() - 16,
            "cached atoms go without their text"
        );
    }

    #[test]
    fn otp_header_bytes_parse() {
        // The first frame OTP 25 sent in our capture: four new entries.
        let hdr: &[u8] = &[
            131, 68, 4, 143, 220, 0, 64, 11, b'a', b'@', b'1', b'2', b'7', b'.', b'0', b'.', b'0',
            b'.', b'1', 5, 0, 118, 3, b'r', b'e', b'x', 7, 16, b'f', b'e', b'a', b't', b'u', b'r',
            b'e', b's', b'_', b'r', b'e', b'q', b'u', b'e', b's', b't',
        ];
        let mut rx = AtomCache::new();
        let mut atoms = Vec::new();
        let h = read_header(hdr, &mut rx, &mut atoms).unwrap();
        assert_eq!(h.body, hdr.len());
        let names: Vec<&str> = atoms.iter().map(|a| a.as_str()).collect();
        assert_eq!(names, ["a@127.0.0.1", "", "rex", "features_request"]);
        assert_eq!(rx.get(7 * 256 + 64), Some(Atom::new("a@127.0.0.1")));
        assert_eq!(rx.get(4 * 256 + 118), Some(Atom::new("rex")));
        // A later frame referencing slot 7/64 without text.
        let again: &[u8] = &[131, 68, 1, 7, 64];
        read_header(again, &mut rx, &mut atoms).unwrap();
        assert_eq!(atoms, [Atom::new("a@127.0.0.1")]);
    }

    #[test]
    fn long_atoms_and_fragment_headers() {
        let long = "ü".repeat(200); // 400 bytes: needs LongAtoms
        let t = Term::tuple([Term::atom(&long), Term::atom("hdr_short")]);
        let mut w = AtomCacheWriter::new();
        w.prepare(&[&t]);
        let mut out = BytesMut::new();
        w.write_header(&mut out, Some((77, 3)));
        let mut rx = AtomCache::new();
        let mut atoms = Vec::new();
        let h = read_header(&out, &mut rx, &mut atoms).unwrap();
        assert_eq!(
            h.kind,
            FrameKind::FragmentStart {
                sequence: 77,
                fragment: 3
            }
        );
        assert!(atoms.contains(&Atom::new(&long)) && atoms.contains(&Atom::new("hdr_short")));
    }

    #[test]
    fn at_most_255_references() {
        let many: Vec<Term> = (0..300)
            .map(|i| Term::atom(&format!("hdr_many_{i}")))
            .collect();
        let t = Term::list(many);
        let mut w = AtomCacheWriter::new();
        let mut rx = AtomCache::new();
        let (_, atoms) = roundtrip(&mut w, &mut rx, &[&t]);
        assert!(
            atoms.len() <= MAX_REFS_PER_MESSAGE && atoms.len() > 200,
            "{}",
            atoms.len()
        );
    }

    #[test]
    fn bad_headers_are_errors() {
        let mut rx = AtomCache::new();
        let mut atoms = Vec::new();
        assert_eq!(
            read_header(&[131, 68, 1, 0, 5], &mut rx, &mut atoms),
            Err(HeaderError::EmptySlot(5))
        );
        assert_eq!(
            read_header(&[131, 99], &mut rx, &mut atoms),
            Err(HeaderError::BadStart(131, 99))
        );
        assert_eq!(
            read_header(&[131], &mut rx, &mut atoms),
            Err(HeaderError::Truncated)
        );
        assert_eq!(
            read_header(&[131, 68, 3, 8], &mut rx, &mut atoms),
            Err(HeaderError::Truncated)
        );
        assert_eq!(
            read_header(&[131, 68, 1, 8, 0, 4, b'a'], &mut rx, &mut atoms),
            Err(HeaderError::Truncated)
        );
        assert_eq!(
            read_header(&[131, 69, 0, 0], &mut rx, &mut atoms),
            Err(HeaderError::Truncated)
        );
        assert!(matches!(
            read_header(&[131, 68, 1, 8, 0, 2, 0xff, 0xfe], &mut rx, &mut atoms),
            Err(HeaderError::Atom(_))
        ));
        assert_eq!(
            read_header(&[112, 131, 106], &mut rx, &mut atoms),
            Ok(Header {
                kind: FrameKind::PassThrough,
                body: 1
            })
        );
    }
}
