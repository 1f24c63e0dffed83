//! Terms as hash keys. [`Term`] has no `Eq`/`Hash` (floats, maps in wire order), but pg groups
//! and global names are arbitrary terms looked up by exact equality (`ets:lookup/2` on a `set`
//! table). The external term format of a term is a faithful key for the terms these tables
//! hold (atoms, binaries, tuples, integers, pids), so a key is the term and its encoding.
use std::hash::{Hash, Hasher};

use bytes::Bytes;

use crate::dist::etf::encode::term_to_binary;
use crate::dist::etf::Term;

/// A term usable as a `HashMap` key: equal when the encodings are equal.
#[derive(Debug, Clone)]
pub struct TermKey {
    term: Term,
    bytes: Bytes,
}

impl TermKey {
    /// The key of `term`.
    pub fn new(term: Term) -> TermKey {
        let bytes = term_to_binary(&term);
        TermKey { term, bytes }
    }

    /// The term itself.
    pub fn term(&self) -> &Term {
        &self.term
    }

    /// Gives the term back.
    pub fn into_term(self) -> Term {
        self.term
    }
}

impl PartialEq for TermKey {
    fn eq(&self, other: &TermKey) -> bool {
        self.bytes == other.bytes
    }
}
impl Eq for TermKey {}

impl Hash for TermKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.bytes.hash(state);
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
    }
}
