//! Decoding errors and the bounds a decoder enforces.
use super::atom::AtomError;

/// Why a term could not be decoded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    /// The input ended inside a term.
    #[error("truncated term")]
    Truncated,
    /// The version byte was not 131.
    #[error("bad version byte {0}")]
    BadVersion(u8),
    /// A tag we do not know (or one that never travels between nodes).
    #[error("unknown or unsupported tag {0}")]
    UnknownTag(u8),
    /// Bytes left after the term.
    #[error("{0} trailing bytes after term")]
    Trailing(usize),
    /// Nesting deeper than the limit.
    #[error("term nested deeper than {0}")]
    TooDeep(usize),
    /// An atom was invalid or the atom table is full.
    #[error("atom: {0}")]
    Atom(#[from] AtomError),
    /// ATOM_CACHE_REF to an index the distribution header did not give.
    #[error("atom cache reference {0} not in the distribution header")]
    AtomCacheRef(u8),
    /// A compressed term declares more than the limit.
    #[error("compressed term of {size} bytes exceeds limit {limit}")]
    TooLarge {
        /// Declared uncompressed size.
        size: u64,
        /// The configured limit.
        limit: usize,
    },
    /// zlib data was bad or did not match the declared size.
    #[error("bad compressed term")]
    BadCompression,
    /// Structurally invalid (bad float text, reference length, fun size ...).
    #[error("malformed term: {0}")]
    Malformed(&'static str),
}

/// Bounds applied while decoding; the defaults suit the distribution wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Deepest nesting of tuples, lists, maps and funs.
    pub max_depth: usize,
    /// Largest uncompressed size a COMPRESSED term may declare.
    pub max_uncompressed: usize,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits {
            max_depth: 10_000,
            max_uncompressed: 64 << 20,
        }
    }
}
