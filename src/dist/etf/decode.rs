//! Decoding external terms from a received buffer.
//!
//! Iterative (an explicit stack of open containers, bounded by [`DecodeLimits::max_depth`]), so
//! no input can overflow the thread stack. Every count read from the wire is checked against the
//! bytes that remain before anything is allocated (each element takes at least one byte), and
//! the capacity reserved for all open containers together never exceeds the input length, so a
//! peer cannot make us allocate more than a small constant times what it sent. Binaries are
//! zero-copy slices of the input `Bytes`.
use bytes::Bytes;

use super::atom::Atom;
pub use super::error::{DecodeError, DecodeLimits};
use super::tags::*;
use super::term::{BigInt, Fun, Pid, Port, Reference, Tail, Term, MAX_REF_WORDS};

/// Decodes a whole `131`-prefixed external term (what `term_to_binary/1,2` makes), default limits.
pub fn decode(buf: &Bytes) -> Result<Term, DecodeError> {
    decode_with(buf, &[], &DecodeLimits::default())
}

/// Decodes a whole `131`-prefixed term that may hold ATOM_CACHE_REFs into `atoms` (the
/// message's atom table from the distribution header; see `dist::header`).
pub fn decode_with(
    buf: &Bytes,
    atoms: &[Atom],
    limits: &DecodeLimits,
) -> Result<Term, DecodeError> {
    let mut r = TermReader::new(buf, 0, atoms, limits);
    let t = r.read_versioned_term()?;
    r.finish()?;
    Ok(t)
}

/// A cursor over a buffer of terms: the distribution layer reads a control message and a
/// payload one after the other from one buffer.
pub struct TermReader<'a> {
    buf: &'a Bytes,
    pos: usize,
    atoms: &'a [Atom],
    limits: &'a DecodeLimits,
}

thread_local! {
    /// The open-container stack, kept per thread so decoding a small term does not allocate it.
    static STACK: std::cell::Cell<Vec<Open>> = const { std::cell::Cell::new(Vec::new()) };
}

/// Most stack capacity kept between terms (deeper terms free theirs).
const KEEP_STACK: usize = 64;

enum Open {
    Tuple(Vec<Term>, usize),
    List(Vec<Term>, usize),
    Map(Vec<(Term, Term)>, Option<Term>, usize),
    Fun(Box<Fun>, usize),
}

impl<'a> TermReader<'a> {
    /// A reader at `pos` of `buf`.
    pub fn new(buf: &'a Bytes, pos: usize, atoms: &'a [Atom], limits: &'a DecodeLimits) -> Self {
        TermReader {
            buf,
            pos,
            atoms,
            limits,
        }
    }

    /// Offset of the next unread byte.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    /// Errors unless the whole buffer was read.
    pub fn finish(&self) -> Result<(), DecodeError> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(DecodeError::Trailing(n)),
        }
    }

    /// Reads `131` and a term, which may be COMPRESSED.
    pub fn read_versioned_term(&mut self) -> Result<Term, DecodeError> {
        let v = self.u8()?;
        if v != VERSION {
            return Err(DecodeError::BadVersion(v));
        }
        if self.peek()? == COMPRESSED {
            self.pos += 1;
            return self.read_compressed();
        }
        self.read_term()
    }

    fn read_compressed(&mut self) -> Result<Term, DecodeError> {
        use std::io::Read;
        let size = self.u32()? as usize;
        if size > self.limits.max_uncompressed {
            return Err(DecodeError::TooLarge {
                size: size as u64,
                limit: self.limits.max_uncompressed,
            });
        }
        let input = &self.buf[self.pos..];
        // Grow with the output zlib really produces, never from the declared size alone.
        let mut out = Vec::with_capacity(size.min(input.len().saturating_mul(4)));
        let mut z = flate2::read::ZlibDecoder::new(input);
        (&mut z)
            .take(size as u64 + 1)
            .read_to_end(&mut out)
            .map_err(|_| DecodeError::BadCompression)?;
        if out.len() != size {
            return Err(DecodeError::BadCompression);
        }
        self.pos += z.total_in() as usize;
        let inner = Bytes::from(out);
        let mut r = TermReader::new(&inner, 0, self.atoms, self.limits);
        let t = r.read_term()?;
        r.finish()?;
        Ok(t)
    }

    /// Reads one term without a version byte (as terms follow a distribution header).
    pub fn read_term(&mut self) -> Result<Term, DecodeError> {
        let mut stack = STACK.with(|s| s.take());
        let r = self.read_term_with(&mut stack);
        stack.clear();
        if stack.capacity() <= KEEP_STACK {
            STACK.with(|s| s.set(stack));
        }
        r
    }

    fn read_term_with(&mut self, stack: &mut Vec<Open>) -> Result<Term, DecodeError> {
        // Capacity reservable for open containers, so their sum stays below the input size.
        let mut budget = self.remaining();
        loop {
            let mut value = match self.start(stack, &mut budget)? {
                Some(v) => v,
                None => continue,
            };
            loop {
                let Some(top) = stack.last_mut() else {
                    return Ok(value);
                };
                match feed(top, value) {
                    Some(done) => {
                        stack.pop();
                        value = done;
                    }
                    None => break,
                }
            }
        }
    }

    /// Reads a leaf and returns it, or opens a container on `stack` and returns `None`.
    fn start(
        &mut self,
        stack: &mut Vec<Open>,
        budget: &mut usize,
    ) -> Result<Option<Term>, DecodeError> {
        let tag = self.u8()?;
        let t = match tag {
            SMALL_INTEGER_EXT => Term::Int(i64::from(self.u8()?)),
            INTEGER_EXT => Term::Int(i64::from(self.u32()? as i32)),
            NEW_FLOAT_EXT => Term::Float(f64::from_bits(self.u64()?)),
            FLOAT_EXT => Term::Float(self.old_float()?),
            ATOM_EXT | SMALL_ATOM_EXT | ATOM_UTF8_EXT | SMALL_ATOM_UTF8_EXT | ATOM_CACHE_REF => {
                Term::Atom(self.atom_body(tag)?)
            }
            NEW_PID_EXT | PID_EXT => Term::Pid(self.pid_body(tag)?),
            NEW_PORT_EXT | V4_PORT_EXT | PORT_EXT => {
                let node = self.atom()?;
                let id = if tag == V4_PORT_EXT {
                    self.u64()?
                } else {
                    u64::from(self.u32()?)
                };
                let creation = if tag == PORT_EXT {
                    u32::from(self.u8()?)
                } else {
                    self.u32()?
                };
                Term::Port(Port { node, id, creation })
            }
            NEWER_REFERENCE_EXT | NEW_REFERENCE_EXT => {
                let len = usize::from(self.u16()?);
                if len == 0 || len > MAX_REF_WORDS {
                    return Err(DecodeError::Malformed("reference length"));
                }
                let node = self.atom()?;
                let creation = if tag == NEW_REFERENCE_EXT {
                    u32::from(self.u8()?)
                } else {
                    self.u32()?
                };
                let mut words = [0u32; MAX_REF_WORDS];
                for w in words.iter_mut().take(len) {
                    *w = self.u32()?;
                }
                Term::Ref(ref_of(node, creation, &words[..len])?)
            }
            REFERENCE_EXT => {
                let node = self.atom()?;
                let id = self.u32()?;
                let creation = u32::from(self.u8()?);
                Term::Ref(ref_of(node, creation, &[id])?)
            }
            NIL_EXT => Term::Nil,
            STRING_EXT => {
                let n = usize::from(self.u16()?);
                let bytes = self.take(n)?;
                if n == 0 {
                    Term::Nil
                } else {
                    let elems = bytes.iter().map(|&b| Term::Int(i64::from(b))).collect();
                    Term::List(elems, Tail::NIL)
                }
            }
            BINARY_EXT => {
                let n = self.u32()? as usize;
                Term::Binary(self.slice(n)?)
            }
            BIT_BINARY_EXT => {
                let n = self.u32()? as usize;
                let bits = self.u8()?;
                if n == 0 || bits == 0 || bits > 8 {
                    return Err(DecodeError::Malformed("bit binary"));
                }
                let bytes = self.slice(n)?;
                if bits == 8 {
                    Term::Binary(bytes)
                } else {
                    Term::BitBinary { bytes, bits }
                }
            }
            SMALL_BIG_EXT => {
                let n = usize::from(self.u8()?);
                self.big(n)?
            }
            LARGE_BIG_EXT => {
                let n = self.u32()? as usize;
                self.big(n)?
            }
            EXPORT_EXT => {
                let module = self.atom()?;
                let function = self.atom()?;
                if self.u8()? != SMALL_INTEGER_EXT {
                    return Err(DecodeError::Malformed("export arity"));
                }
                let arity = self.u8()?;
                Term::Export {
                    module,
                    function,
                    arity,
                }
            }
            SMALL_TUPLE_EXT | LARGE_TUPLE_EXT => {
                let n = if tag == SMALL_TUPLE_EXT {
                    usize::from(self.u8()?)
                } else {
                    self.u32()? as usize
                };
                self.need(n)?;
                if n == 0 {
                    Term::Tuple(Vec::new())
                } else {
                    self.open(stack, Open::Tuple(reserve(n, budget), n))?;
                    return Ok(None);
                }
            }
            LIST_EXT => {
                let n = self.u32()? as usize;
                self.need(n.saturating_add(1))?;
                self.open(stack, Open::List(reserve(n, budget), n))?;
                return Ok(None);
            }
            MAP_EXT => {
                let n = self.u32()? as usize;
                self.need(n.saturating_mul(2))?;
                if n == 0 {
                    Term::Map(Vec::new())
                } else {
                    self.open(stack, Open::Map(reserve(n, budget), None, n))?;
                    return Ok(None);
                }
            }
            NEW_FUN_EXT => {
                let (fun, nfree) = self.fun_head()?;
                if nfree == 0 {
                    Term::Fun(fun)
                } else {
                    self.open(stack, Open::Fun(fun, nfree))?;
                    return Ok(None);
                }
            }
            other => return Err(DecodeError::UnknownTag(other)),
        };
        Ok(Some(t))
    }

    fn open(&mut self, stack: &mut Vec<Open>, o: Open) -> Result<(), DecodeError> {
        if stack.len() >= self.limits.max_depth {
            return Err(DecodeError::TooDeep(self.limits.max_depth));
        }
        stack.push(o);
        Ok(())
    }

    /// NEW_FUN_EXT up to its free variables (`Size` counts from itself to the end of the fun).
    fn fun_head(&mut self) -> Result<(Box<Fun>, usize), DecodeError> {
        let start = self.pos - 1;
        let size = self.u32()? as usize;
        self.need(size.saturating_sub(4))?;
        let arity = self.u8()?;
        let uniq: [u8; 16] = self
            .take(16)?
            .try_into()
            .map_err(|_| DecodeError::Truncated)?;
        let index = self.u32()?;
        let nfree = self.u32()? as usize;
        let module = self.atom()?;
        let old_index = self.small_int()?;
        let old_uniq = self.small_int()?;
        let pid = match self.u8()? {
            t @ (NEW_PID_EXT | PID_EXT) => self.pid_body(t)?,
            _ => return Err(DecodeError::Malformed("fun pid")),
        };
        self.need(nfree)?;
        if start + 1 + size < self.pos {
            return Err(DecodeError::Malformed("fun size"));
        }
        let fun = Fun {
            arity,
            uniq,
            index,
            module,
            old_index,
            old_uniq,
            pid,
            free_vars: Vec::new(),
        };
        Ok((Box::new(fun), nfree))
    }

    fn small_int(&mut self) -> Result<i64, DecodeError> {
        match self.u8()? {
            SMALL_INTEGER_EXT => Ok(i64::from(self.u8()?)),
            INTEGER_EXT => Ok(i64::from(self.u32()? as i32)),
            _ => Err(DecodeError::Malformed("fun index")),
        }
    }

    fn pid_body(&mut self, tag: u8) -> Result<Pid, DecodeError> {
        let node = self.atom()?;
        let id = self.u32()?;
        let serial = self.u32()?;
        let creation = if tag == PID_EXT {
            u32::from(self.u8()?)
        } else {
            self.u32()?
        };
        Ok(Pid {
            node,
            id,
            serial,
            creation,
        })
    }

    /// An atom in any encoding (pid nodes, fun modules ...).
    fn atom(&mut self) -> Result<Atom, DecodeError> {
        let tag = self.u8()?;
        self.atom_body(tag)
    }

    fn atom_body(&mut self, tag: u8) -> Result<Atom, DecodeError> {
        match tag {
            SMALL_ATOM_UTF8_EXT => {
                let n = usize::from(self.u8()?);
                Ok(Atom::from_bytes(self.take(n)?)?)
            }
            ATOM_UTF8_EXT => {
                let n = usize::from(self.u16()?);
                Ok(Atom::from_bytes(self.take(n)?)?)
            }
            SMALL_ATOM_EXT => {
                let n = usize::from(self.u8()?);
                Ok(Atom::from_latin1(self.take(n)?)?)
            }
            ATOM_EXT => {
                let n = usize::from(self.u16()?);
                Ok(Atom::from_latin1(self.take(n)?)?)
            }
            ATOM_CACHE_REF => {
                let i = self.u8()?;
                self.atoms
                    .get(usize::from(i))
                    .copied()
                    .ok_or(DecodeError::AtomCacheRef(i))
            }
            _ => Err(DecodeError::Malformed("expected an atom")),
        }
    }

    fn big(&mut self, n: usize) -> Result<Term, DecodeError> {
        let negative = self.u8()? != 0;
        let digits = self.take(n)?;
        let used = digits.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
        let digits = &digits[..used];
        if digits.len() <= 8 {
            let mag = digits
                .iter()
                .rev()
                .fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
            let v = if negative {
                0i128 - i128::from(mag)
            } else {
                i128::from(mag)
            };
            if let Ok(v) = i64::try_from(v) {
                return Ok(Term::Int(v));
            }
        }
        Ok(Term::Big(Box::new(BigInt {
            negative,
            magnitude: digits.to_vec(),
        })))
    }

    /// FLOAT_EXT: 31 bytes of `%.20e` text, NUL padded.
    fn old_float(&mut self) -> Result<f64, DecodeError> {
        let raw = self.take(31)?;
        let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
        std::str::from_utf8(&raw[..end])
            .ok()
            .and_then(|s| s.trim().parse::<f64>().ok())
            .ok_or(DecodeError::Malformed("float text"))
    }

    fn need(&self, n: usize) -> Result<(), DecodeError> {
        if n > self.remaining() {
            Err(DecodeError::Truncated)
        } else {
            Ok(())
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        self.need(n)?;
        let buf: &'a Bytes = self.buf;
        let s = &buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn slice(&mut self, n: usize) -> Result<Bytes, DecodeError> {
        self.need(n)?;
        let s = self.buf.slice(self.pos..self.pos + n);
        self.pos += n;
        Ok(s)
    }

    fn peek(&self) -> Result<u8, DecodeError> {
        self.buf
            .get(self.pos)
            .copied()
            .ok_or(DecodeError::Truncated)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        let b = self.peek()?;
        self.pos += 1;
        Ok(b)
    }

    fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let s = self.take(N)?;
        s.try_into().map_err(|_| DecodeError::Truncated)
    }
}

fn ref_of(node: Atom, creation: u32, words: &[u32]) -> Result<Reference, DecodeError> {
    Reference::new(node, creation, words).ok_or(DecodeError::Malformed("reference length"))
}

/// A vector for `n` elements with capacity taken from the shared budget.
fn reserve<T>(n: usize, budget: &mut usize) -> Vec<T> {
    let cap = n.min(*budget);
    *budget -= cap;
    Vec::with_capacity(cap)
}

/// Gives `value` to the innermost open container; returns the container's term when full.
fn feed(top: &mut Open, value: Term) -> Option<Term> {
    match top {
        Open::Tuple(items, n) => {
            items.push(value);
            (items.len() == *n).then(|| Term::Tuple(std::mem::take(items)))
        }
        Open::List(items, n) => {
            if items.len() < *n {
                items.push(value);
                return None;
            }
            let mut items = std::mem::take(items);
            // `[a | [b]]` sent as nested LIST_EXTs is the list `[a, b]`: keep one shape per value.
            let tail = match value {
                Term::List(more, tail) => {
                    items.extend(more);
                    tail.into_term()
                }
                other => other,
            };
            Some(if items.is_empty() {
                tail
            } else {
                Term::List(items, Tail::new(tail))
            })
        }
        Open::Map(pairs, key, n) => {
            match key.take() {
                None => *key = Some(value),
                Some(k) => pairs.push((k, value)),
            }
            (pairs.len() == *n).then(|| Term::Map(std::mem::take(pairs)))
        }
        Open::Fun(fun, n) => {
            fun.free_vars.push(value);
            if fun.free_vars.len() < *n {
                return None;
            }
            // The frame is popped by the caller: swap in an empty one to move the fun out.
            match std::mem::replace(top, Open::Tuple(Vec::new(), 1)) {
                Open::Fun(fun, _) => Some(Term::Fun(fun)),
                _ => None,
            }
        }
    }
}
