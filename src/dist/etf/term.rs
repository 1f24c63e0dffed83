//! The owned term model: cheap to build and to match, with checked accessors so callers never
//! index into a tuple without looking.
use bytes::Bytes;

use super::atom::Atom;

/// A process identifier (NEW_PID_EXT; `erts/doc/src/erl_ext_dist.xml`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pid {
    /// Node the process lives on.
    pub node: Atom,
    /// Process number (15 bits on BEAM, 32 on the wire since OTP 23).
    pub id: u32,
    /// Serial (wrap counter of `id`).
    pub serial: u32,
    /// The node incarnation, so a pid of a restarted node is not mistaken for a live one.
    pub creation: u32,
}

/// A port identifier (V4_PORT_EXT / NEW_PORT_EXT).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Port {
    /// Node the port lives on.
    pub node: Atom,
    /// Port number; OTP 26+ (V4_NC) allows 64 bits.
    pub id: u64,
    /// The node incarnation.
    pub creation: u32,
}

/// Most reference words OTP emits: 3 for plain refs, 5 for pid-refs (OTP 26+, `ERTS_MAX_REF_NUMBERS`).
pub const MAX_REF_WORDS: usize = 5;

/// A reference (NEWER_REFERENCE_EXT): up to 5 32-bit words, stored inline so a reference is
/// `Copy` and needs no allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    /// Node that made the reference.
    pub node: Atom,
    /// The node incarnation.
    pub creation: u32,
    ids: [u32; MAX_REF_WORDS],
    len: u8,
}

impl Reference {
    /// A reference from 1 to 5 words; `None` for any other count.
    pub fn new(node: Atom, creation: u32, words: &[u32]) -> Option<Reference> {
        if words.is_empty() || words.len() > MAX_REF_WORDS {
            return None;
        }
        let mut ids = [0u32; MAX_REF_WORDS];
        ids[..words.len()].copy_from_slice(words);
        Some(Reference {
            node,
            creation,
            ids,
            len: words.len() as u8,
        })
    }

    /// The reference's words, least significant first as on the wire.
    pub fn ids(&self) -> &[u32] {
        &self.ids[..usize::from(self.len)]
    }
}

/// An integer beyond `i64`: sign and little-endian magnitude without high zero bytes, as
/// SMALL_BIG_EXT / LARGE_BIG_EXT carry it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BigInt {
    /// True for a negative number.
    pub negative: bool,
    /// Magnitude, least significant byte first.
    pub magnitude: Vec<u8>,
}

impl BigInt {
    /// The value as `u64` when it is non-negative and fits.
    pub fn to_u64(&self) -> Option<u64> {
        if self.negative || self.magnitude.len() > 8 {
            return None;
        }
        Some(
            self.magnitude
                .iter()
                .rev()
                .fold(0u64, |acc, &b| (acc << 8) | u64::from(b)),
        )
    }
}

/// A local fun (NEW_FUN_EXT). Opaque to us (we run no Erlang code) but kept field by field so
/// it re-encodes exactly as received, including when it arrived with atom-cache references.
#[derive(Debug, Clone, PartialEq)]
pub struct Fun {
    /// Arity of the fun.
    pub arity: u8,
    /// MD5 of the module's significant parts.
    pub uniq: [u8; 16],
    /// Index in the module's fun table.
    pub index: u32,
    /// Defining module.
    pub module: Atom,
    /// Old index (an integer term on the wire).
    pub old_index: i64,
    /// Old uniq (an integer term on the wire).
    pub old_uniq: i64,
    /// Process that created the fun.
    pub pid: Pid,
    /// Captured free variables.
    pub free_vars: Vec<Term>,
}

/// The tail of a [`Term::List`]: `[]` for a proper list, held without an allocation (nearly
/// every list is proper, and a boxed `[]` per list was an allocation and a free for each of a
/// million groups in a pg sync), any other term boxed. Dereferences to the tail term.
#[derive(Clone, PartialEq)]
pub struct Tail(Option<Box<Term>>);

/// The tail every proper list dereferences to.
static NIL: Term = Term::Nil;

impl Tail {
    /// The tail of a proper list.
    pub const NIL: Tail = Tail(None);

    /// `tail` as a list's tail.
    pub fn new(tail: Term) -> Tail {
        match tail {
            Term::Nil => Tail::NIL,
            t => Tail(Some(Box::new(t))),
        }
    }

    /// The tail term, by value.
    pub fn into_term(self) -> Term {
        self.0.map_or(Term::Nil, |t| *t)
    }
}

impl std::ops::Deref for Tail {
    type Target = Term;

    fn deref(&self) -> &Term {
        self.0.as_deref().unwrap_or(&NIL)
    }
}

impl std::fmt::Debug for Tail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&**self, f)
    }
}

/// An Erlang term as it travels between nodes.
///
/// Lists: `Nil` is `[]`; `List(elems, tail)` is non-empty with `tail` `Nil` for a proper list and
/// anything else for an improper one (`[alias | Ref]`). STRING_EXT decodes to a list of `Int`s
/// and a proper list of small integers encodes back to STRING_EXT, as `term_to_binary` does.
#[derive(Debug, Clone, PartialEq)]
pub enum Term {
    /// An atom.
    Atom(Atom),
    /// An integer that fits `i64`.
    Int(i64),
    /// An integer beyond `i64`.
    Big(Box<BigInt>),
    /// A float.
    Float(f64),
    /// A binary; a zero-copy slice of the received buffer.
    Binary(Bytes),
    /// A bitstring: `bits` (1..=8) bits of the last byte count.
    BitBinary {
        /// The bytes, last one partly used.
        bytes: Bytes,
        /// How many high bits of the last byte belong to the value.
        bits: u8,
    },
    /// A pid.
    Pid(Pid),
    /// A port.
    Port(Port),
    /// A reference.
    Ref(Reference),
    /// A tuple.
    Tuple(Vec<Term>),
    /// The empty list.
    Nil,
    /// A non-empty list and its tail.
    List(Vec<Term>, Tail),
    /// A map, pairs in wire order (keys may be any term).
    Map(Vec<(Term, Term)>),
    /// `fun M:F/A` (EXPORT_EXT).
    Export {
        /// Module.
        module: Atom,
        /// Function.
        function: Atom,
        /// Arity.
        arity: u8,
    },
    /// A local fun (NEW_FUN_EXT).
    Fun(Box<Fun>),
}

impl From<Atom> for Term {
    fn from(a: Atom) -> Term {
        Term::Atom(a)
    }
}
impl From<i64> for Term {
    fn from(i: i64) -> Term {
        Term::Int(i)
    }
}
impl From<Pid> for Term {
    fn from(p: Pid) -> Term {
        Term::Pid(p)
    }
}
impl From<Reference> for Term {
    fn from(r: Reference) -> Term {
        Term::Ref(r)
    }
}
impl From<Bytes> for Term {
    fn from(b: Bytes) -> Term {
        Term::Binary(b)
    }
}

impl Term {
    /// An atom term, interning `name` (a name from our own code).
    pub fn atom(name: &str) -> Term {
        Term::Atom(Atom::new(name))
    }

    /// A tuple.
    pub fn tuple(elems: impl Into<Vec<Term>>) -> Term {
        Term::Tuple(elems.into())
    }

    /// A binary copied from `data`.
    pub fn binary(data: impl AsRef<[u8]>) -> Term {
        Term::Binary(Bytes::copy_from_slice(data.as_ref()))
    }

    /// A proper list (`Nil` when empty).
    pub fn list(elems: impl Into<Vec<Term>>) -> Term {
        let elems = elems.into();
        if elems.is_empty() {
            Term::Nil
        } else {
            Term::List(elems, Tail::NIL)
        }
    }

    /// An improper list `[e1, ..., en | tail]`; with `tail == Nil` it is proper.
    pub fn improper_list(elems: impl Into<Vec<Term>>, tail: Term) -> Term {
        let elems = elems.into();
        if elems.is_empty() {
            tail
        } else {
            Term::List(elems, Tail::new(tail))
        }
    }

    /// A map.
    pub fn map(pairs: impl Into<Vec<(Term, Term)>>) -> Term {
        Term::Map(pairs.into())
    }

    /// An integer (big when it does not fit `i64`).
    pub fn int(i: i128) -> Term {
        match i64::try_from(i) {
            Ok(v) => Term::Int(v),
            Err(_) => {
                let mut magnitude = i.unsigned_abs().to_le_bytes().to_vec();
                while magnitude.last() == Some(&0) {
                    magnitude.pop();
                }
                Term::Big(Box::new(BigInt {
                    negative: i < 0,
                    magnitude,
                }))
            }
        }
    }

    /// The atom, if this is one.
    pub fn as_atom(&self) -> Option<Atom> {
        match self {
            Term::Atom(a) => Some(*a),
            _ => None,
        }
    }

    /// True if this is the atom `name`.
    pub fn is_atom(&self, name: &str) -> bool {
        matches!(self, Term::Atom(a) if a.as_str() == name)
    }

    /// The integer, if this is one that fits `i64`.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Term::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The integer as `u64`, from either representation.
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Term::Int(i) => u64::try_from(*i).ok(),
            Term::Big(b) => b.to_u64(),
            _ => None,
        }
    }

    /// The integer as `u32`.
    pub fn as_u32(&self) -> Option<u32> {
        self.as_int().and_then(|i| u32::try_from(i).ok())
    }

    /// The float, if this is one.
    pub fn as_float(&self) -> Option<f64> {
        match self {
            Term::Float(f) => Some(*f),
            _ => None,
        }
    }

    /// The binary's bytes, if this is a (byte-aligned) binary.
    pub fn as_binary(&self) -> Option<&Bytes> {
        match self {
            Term::Binary(b) => Some(b),
            _ => None,
        }
    }

    /// The pid, if this is one.
    pub fn as_pid(&self) -> Option<Pid> {
        match self {
            Term::Pid(p) => Some(*p),
            _ => None,
        }
    }

    /// The reference, if this is one.
    pub fn as_ref(&self) -> Option<Reference> {
        match self {
            Term::Ref(r) => Some(*r),
            _ => None,
        }
    }

    /// The tuple's elements, if this is a tuple.
    pub fn as_tuple(&self) -> Option<&[Term]> {
        match self {
            Term::Tuple(t) => Some(t),
            _ => None,
        }
    }

    /// The elements if this is a tuple of exactly `N` elements: `let [a, b] = t.as_tuple_n()?`.
    pub fn as_tuple_n<const N: usize>(&self) -> Option<&[Term; N]> {
        self.as_tuple().and_then(|t| t.try_into().ok())
    }

    /// The elements of a proper list (`[]` gives an empty slice).
    pub fn as_list(&self) -> Option<&[Term]> {
        match self {
            Term::Nil => Some(&[]),
            Term::List(elems, tail) if **tail == Term::Nil => Some(elems),
            _ => None,
        }
    }

    /// Elements and tail of any list, proper or not (`[]` is `([], Nil)`).
    pub fn as_improper_list(&self) -> Option<(&[Term], &Term)> {
        match self {
            Term::Nil => Some((&[], self)),
            Term::List(elems, tail) => Some((elems, tail)),
            _ => None,
        }
    }

    /// The map's pairs, if this is a map.
    pub fn as_map(&self) -> Option<&[(Term, Term)]> {
        match self {
            Term::Map(m) => Some(m),
            _ => None,
        }
    }

    /// The value under `key` in a map (linear scan: wire maps are small).
    pub fn map_get(&self, key: &Term) -> Option<&Term> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    /// Element `i` (0-based) of a tuple.
    pub fn element(&self, i: usize) -> Option<&Term> {
        self.as_tuple()?.get(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constructors_and_accessors() {
        let t = Term::tuple([Term::atom("ok"), Term::Int(3), Term::binary(b"x")]);
        let [a, i, b] = t.as_tuple_n::<3>().unwrap();
        assert!(a.is_atom("ok"));
        assert_eq!(i.as_int(), Some(3));
        assert_eq!(b.as_binary().map(|b| &b[..]), Some(&b"x"[..]));
        assert!(t.as_tuple_n::<2>().is_none());
        assert_eq!(t.element(5), None);
        assert_eq!(Term::list(vec![]), Term::Nil);
        assert_eq!(Term::Nil.as_list(), Some(&[][..]));
        let imp = Term::improper_list([Term::atom("alias")], Term::Int(1));
        assert!(imp.as_list().is_none());
        assert_eq!(imp.as_improper_list().map(|(e, _)| e.len()), Some(1));
    }

    #[test]
    fn terms_stay_small() {
        // Decoded memory per input byte is bounded by this; keep big variants boxed.
        assert!(
            std::mem::size_of::<Term>() <= 48,
            "{}",
            std::mem::size_of::<Term>()
        );
    }

    #[test]
    fn big_ints() {
        assert_eq!(Term::int(5), Term::Int(5));
        let big = Term::int(u64::MAX as i128);
        assert_eq!(big.as_u64(), Some(u64::MAX));
        assert_eq!(Term::int(-(1i128 << 70)).as_u64(), None);
    }

    #[test]
    fn reference_words() {
        let r = Reference::new(Atom::new("n@h"), 1, &[1, 2, 3]).unwrap();
        assert_eq!(r.ids(), &[1, 2, 3]);
        assert!(Reference::new(Atom::new("n@h"), 1, &[]).is_none());
        assert!(Reference::new(Atom::new("n@h"), 1, &[0; 6]).is_none());
    }

    #[test]
    fn map_lookup() {
        let m = Term::map([(
            Term::tuple([Term::atom("k"), Term::Int(1)]),
            Term::atom("v"),
        )]);
        assert!(m
            .map_get(&Term::tuple([Term::atom("k"), Term::Int(1)]))
            .is_some_and(|v| v.is_atom("v")));
        assert!(m.map_get(&Term::Nil).is_none());
    }
}
