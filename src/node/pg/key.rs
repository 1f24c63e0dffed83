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
#[derive(Debug, Clone)]
pub struct TermKey {
    term: Term,
    /// The encoding, for any term but a binary (whose bytes are the key).
    bytes: Option<Bytes>,
}

impl TermKey {
    /// The key of `term`.
    pub fn new(term: Term) -> TermKey {
        let bytes = match term {
            Term::Binary(_) => None,
            _ => Some(term_to_binary(&term)),
        };
        TermKey { term, bytes }
    }

    /// The key of the binary `b` (what [`TermKey::new`] makes of `Term::Binary(b)`).
    pub fn binary(b: Bytes) -> TermKey {
        TermKey {
            term: Term::Binary(b),
            bytes: None,
        }
    }

    /// The term itself.
    pub fn term(&self) -> &Term {
        &self.term
    }

    /// Gives the term back.
    pub fn into_term(self) -> Term {
        self.term
    }

    /// What equality and hashing look at: the binary's bytes, or the encoding.
    fn key(&self) -> (bool, &[u8]) {
        match (&self.bytes, &self.term) {
            (Some(b), _) => (false, b),
            (None, Term::Binary(b)) => (true, b),
            (None, _) => (false, &[]),
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
    }
}
