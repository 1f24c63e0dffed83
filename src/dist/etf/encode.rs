//! Encoding terms as OTP 25-27 encode them for a peer with the mandatory distribution flags
//! (UTF-8 atoms, NEW_PID_EXT, NEWER_REFERENCE_EXT, NEW_FLOAT_EXT, MAP_EXT ...), which is also
//! `term_to_binary(T, [{minor_version, 2}])`: for terms OTP encodes canonically (all but maps
//! over 32 keys, whose order follows BEAM's hash) the bytes are identical.
//!
//! Iterative (an explicit stack of terms still to write), so deep terms cannot overflow the
//! thread stack.
use bytes::{BufMut, Bytes, BytesMut};

use super::atom::Atom;
use super::tags::*;
use super::term::{BigInt, Pid, Term};

/// Where the encoder may replace an atom by an ATOM_CACHE_REF: the distribution header's
/// per-message atom table, filled by `dist::header` on the sending side.
pub trait AtomRefs {
    /// The message-local reference index for `atom`, or `None` to write it inline.
    fn atom_ref(&mut self, atom: Atom) -> Option<u8>;
}

/// Writes every atom inline.
pub struct InlineAtoms;

impl AtomRefs for InlineAtoms {
    #[inline]
    fn atom_ref(&mut self, _: Atom) -> Option<u8> {
        None
    }
}

/// `term_to_binary`: `131` followed by the term.
pub fn encode(term: &Term, out: &mut BytesMut) {
    out.put_u8(VERSION);
    encode_body(term, out, &mut InlineAtoms);
}

/// `term_to_binary` into a fresh buffer.
pub fn term_to_binary(term: &Term) -> Bytes {
    let mut out = BytesMut::with_capacity(64);
    encode(term, &mut out);
    out.freeze()
}

enum Todo<'t> {
    Term(&'t Term),
    /// Back-patch a NEW_FUN_EXT size field at this offset once its free variables are written.
    FunSize(usize),
}

/// Writes a term without the version byte (terms after a distribution header), asking `atoms`
/// which atoms go by reference.
pub fn encode_body<A: AtomRefs>(term: &Term, out: &mut BytesMut, atoms: &mut A) {
    let mut todo: Vec<Todo<'_>> = Vec::new();
    let mut next = Some(term);
    loop {
        let t = match next.take() {
            Some(t) => t,
            None => match todo.pop() {
                None => return,
                Some(Todo::Term(t)) => t,
                Some(Todo::FunSize(at)) => {
                    let size = (out.len() - at) as u32;
                    out[at..at + 4].copy_from_slice(&size.to_be_bytes());
                    continue;
                }
            },
        };
        match t {
            Term::Atom(a) => atom(*a, out, atoms),
            Term::Int(i) => int(*i, out),
            Term::Big(b) => big(b, out),
            Term::Float(f) => {
                out.put_u8(NEW_FLOAT_EXT);
                out.put_f64(*f);
            }
            Term::Binary(b) => {
                out.put_u8(BINARY_EXT);
                out.put_u32(b.len() as u32);
                out.extend_from_slice(b);
            }
            Term::BitBinary { bytes, bits } => {
                out.put_u8(BIT_BINARY_EXT);
                out.put_u32(bytes.len() as u32);
                out.put_u8(*bits);
                out.extend_from_slice(bytes);
            }
            Term::Pid(p) => pid(p, out, atoms),
            Term::Port(p) => {
                if let Ok(id) = u32::try_from(p.id) {
                    out.put_u8(NEW_PORT_EXT);
                    atom(p.node, out, atoms);
                    out.put_u32(id);
                } else {
                    out.put_u8(V4_PORT_EXT);
                    atom(p.node, out, atoms);
                    out.put_u64(p.id);
                }
                out.put_u32(p.creation);
            }
            Term::Ref(r) => {
                out.put_u8(NEWER_REFERENCE_EXT);
                out.put_u16(r.ids().len() as u16);
                atom(r.node, out, atoms);
                out.put_u32(r.creation);
                for w in r.ids() {
                    out.put_u32(*w);
                }
            }
            Term::Tuple(elems) => {
                if let Ok(n) = u8::try_from(elems.len()) {
                    out.put_u8(SMALL_TUPLE_EXT);
                    out.put_u8(n);
                } else {
                    out.put_u8(LARGE_TUPLE_EXT);
                    out.put_u32(elems.len() as u32);
                }
                todo.extend(elems.iter().rev().map(Todo::Term));
            }
            Term::Nil => out.put_u8(NIL_EXT),
            Term::List(elems, tail) => {
                if let Some(bytes) = byte_string(elems, tail) {
                    out.put_u8(STRING_EXT);
                    out.put_u16(elems.len() as u16);
                    out.extend(bytes);
                } else {
                    out.put_u8(LIST_EXT);
                    out.put_u32(elems.len() as u32);
                    todo.push(Todo::Term(tail));
                    todo.extend(elems.iter().rev().map(Todo::Term));
                }
            }
            Term::Map(pairs) => {
                out.put_u8(MAP_EXT);
                out.put_u32(pairs.len() as u32);
                for (k, v) in pairs.iter().rev() {
                    todo.push(Todo::Term(v));
                    todo.push(Todo::Term(k));
                }
            }
            Term::Export {
                module,
                function,
                arity,
            } => {
                out.put_u8(EXPORT_EXT);
                atom(*module, out, atoms);
                atom(*function, out, atoms);
                out.put_u8(SMALL_INTEGER_EXT);
                out.put_u8(*arity);
            }
            Term::Fun(f) => {
                out.put_u8(NEW_FUN_EXT);
                let at = out.len();
                out.put_u32(0);
                out.put_u8(f.arity);
                out.extend_from_slice(&f.uniq);
                out.put_u32(f.index);
                out.put_u32(f.free_vars.len() as u32);
                atom(f.module, out, atoms);
                int(f.old_index, out);
                int(f.old_uniq, out);
                pid(&f.pid, out, atoms);
                todo.push(Todo::FunSize(at));
                todo.extend(f.free_vars.iter().rev().map(Todo::Term));
            }
        }
    }
}

/// The bytes of a proper list of 1..=65535 integers in 0..=255, which OTP sends as STRING_EXT.
fn byte_string<'t>(elems: &'t [Term], tail: &Term) -> Option<impl Iterator<Item = u8> + 't> {
    if *tail != Term::Nil || elems.len() > usize::from(u16::MAX) {
        return None;
    }
    if !elems.iter().all(|e| matches!(e, Term::Int(0..=255))) {
        return None;
    }
    Some(elems.iter().map(|e| match e {
        Term::Int(i) => *i as u8,
        _ => 0,
    }))
}

#[inline]
fn atom<A: AtomRefs>(a: Atom, out: &mut BytesMut, atoms: &mut A) {
    if let Some(i) = atoms.atom_ref(a) {
        out.put_u8(ATOM_CACHE_REF);
        out.put_u8(i);
        return;
    }
    let s = a.as_str().as_bytes();
    if let Ok(n) = u8::try_from(s.len()) {
        out.put_u8(SMALL_ATOM_UTF8_EXT);
        out.put_u8(n);
    } else {
        out.put_u8(ATOM_UTF8_EXT);
        out.put_u16(s.len() as u16);
    }
    out.extend_from_slice(s);
}

fn pid<A: AtomRefs>(p: &Pid, out: &mut BytesMut, atoms: &mut A) {
    out.put_u8(NEW_PID_EXT);
    atom(p.node, out, atoms);
    out.put_u32(p.id);
    out.put_u32(p.serial);
    out.put_u32(p.creation);
}

fn int(i: i64, out: &mut BytesMut) {
    if (0..=255).contains(&i) {
        out.put_u8(SMALL_INTEGER_EXT);
        out.put_u8(i as u8);
    } else if let Ok(v) = i32::try_from(i) {
        out.put_u8(INTEGER_EXT);
        out.put_i32(v);
    } else {
        let mag = i.unsigned_abs().to_le_bytes();
        let n = mag.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
        out.put_u8(SMALL_BIG_EXT);
        out.put_u8(n as u8);
        out.put_u8(u8::from(i < 0));
        out.extend_from_slice(&mag[..n]);
    }
}

fn big(b: &BigInt, out: &mut BytesMut) {
    if let Ok(n) = u8::try_from(b.magnitude.len()) {
        out.put_u8(SMALL_BIG_EXT);
        out.put_u8(n);
    } else {
        out.put_u8(LARGE_BIG_EXT);
        out.put_u32(b.magnitude.len() as u32);
    }
    out.put_u8(u8::from(b.negative));
    out.extend_from_slice(&b.magnitude);
}
