//! Terms as hash keys. [`Term`] has no `Eq`/`Hash` (floats, maps in wire order), but pg groups
//! and global names are arbitrary terms looked up by exact equality (`ets:lookup/2` on a `set`
//! table). The external term format of a term is a faithful key for the terms these tables
//! hold (atoms, binaries, tuples, integers, pids), so a key is the term and its encoding.
//!
//! A binary, the shape of every route group (DESIGN.md section 5), is its own encoding's
//! content: its key is the binary alone, compared and hashed on its bytes, with no encoding
//! made (a joining node's sync builds a million keys; encoding each was an allocation and a
//! copy per route). Binary keys and other keys are never equal, as their encodings are not.
use std::hash::{Hash, Hasher};

use bytes::Bytes;

use crate::dist::etf::encode::term_to_binary;
use crate::dist::etf::Term;

/// A term usable as a `HashMap` key: equal when the encodings are equal.
///
/// 40 bytes for a binary (the term alone), so a table of a million route groups does not carry
/// an empty encoding slot per key; any other term keeps its encoding beside it, boxed.
#[derive(Debug, Clone)]
pub struct TermKey(Repr);

#[derive(Debug, Clone)]
enum Repr {
    /// Always a `Term::Binary`: its bytes are the key.
    Binary(Term),
    /// Any other term and its encoding.
    Encoded(Box<(Term, Bytes)>),
}

impl TermKey {
    /// The key of `term`.
    pub fn new(term: Term) -> TermKey {
        match term {
            Term::Binary(_) => TermKey(Repr::Binary(term)),
            _ => {
                let bytes = term_to_binary(&term);
                TermKey(Repr::Encoded(Box::new((term, bytes))))
            }
        }
    }

    /// The key of the binary `b` (what [`TermKey::new`] makes of `Term::Binary(b)`).
    pub fn binary(b: Bytes) -> TermKey {
        TermKey(Repr::Binary(Term::Binary(b)))
    }

    /// The term itself.
    pub fn term(&self) -> &Term {
        match &self.0 {
            Repr::Binary(t) => t,
            Repr::Encoded(e) => &e.0,
        }
    }

    /// Gives the term back.
    pub fn into_term(self) -> Term {
        match self.0 {
            Repr::Binary(t) => t,
            Repr::Encoded(e) => e.0,
        }
    }

    /// What equality and hashing look at (whether it is a binary, and the binary's bytes or
    /// the encoding), also what a sync's digest takes of the group.
    pub(super) fn digest_bytes(&self) -> (bool, &[u8]) {
        self.key()
    }

    /// What equality and hashing look at: the binary's bytes, or the encoding.
    fn key(&self) -> (bool, &[u8]) {
        match &self.0 {
            Repr::Binary(Term::Binary(b)) => (true, b),
            Repr::Binary(_) => (true, &[]),
            Repr::Encoded(e) => (false, &e.1),
        }
    }
}

impl PartialEq for TermKey {
    fn eq(&self, other: &TermKey) -> bool {
        self.key() == other.key()
    }
}
impl Eq for TermKey {}

impl Hash for TermKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.key().hash(state);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_terms_are_equal_keys_and_different_ones_are_not() {
        let a = TermKey::new(Term::binary(b"t/#"));
        let b = TermKey::new(Term::binary(b"t/#"));
        let c = TermKey::new(Term::binary(b"t/+"));
        let d = TermKey::new(Term::list(vec![
            Term::Int(116),
            Term::Int(47),
            Term::Int(35),
        ]));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, d, "a binary is not the string with the same bytes");
        let mut set = std::collections::HashSet::new();
        set.insert(a.clone());
        assert!(set.contains(&b));
        assert_eq!(a.term(), &Term::binary(b"t/#"));
        assert_eq!(a, TermKey::binary(bytes::Bytes::from_static(b"t/#")));
        // A binary and a term whose encoding holds the same bytes are different keys.
        let e = TermKey::new(Term::atom("t/#"));
        assert_ne!(a, e);
        assert_ne!(TermKey::new(Term::binary(b"")), TermKey::new(Term::Nil));
        assert_eq!(TermKey::new(Term::atom("x")).into_term(), Term::atom("x"));
        assert!(std::mem::size_of::<TermKey>() <= std::mem::size_of::<Term>());
    }
}
