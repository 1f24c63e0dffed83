//! The External Term Format codec of the distribution wire (`erts/doc/src/erl_ext_dist.xml`).
//!
//! Why our own and not a crate: `eetf` 0.12 allocates a `String` per atom, panics
//! (`unimplemented!`) on DISTRIBUTION_HEADER and ATOM_CACHE_REF, sizes allocations from wire
//! lengths and recurses without a bound, so a hostile or merely large message can crash or
//! exhaust the node; `erl_dist` 0.8 has no atom cache, fragments or ticks and decodes into owned
//! copies per message. This codec interns atoms in a bounded table without allocating for known
//! atoms ([`atom`]), slices binaries out of the received `Bytes` without copying, bounds nesting
//! depth and every length before allocating, and never recurses over input. `eetf` stays the
//! oracle for it in property tests and fuzzing (on well-formed input only).
pub mod atom;
pub mod decode;
pub mod encode;
pub mod error;
pub mod tags;
pub mod term;

#[cfg(test)]
mod eetf_tests;
#[cfg(test)]
mod golden_tests;

pub use atom::{Atom, AtomError, MAX_ATOMS};
pub use decode::{decode, decode_with, DecodeError, DecodeLimits, TermReader};
pub use encode::{encode, encode_body, term_to_binary, AtomRefs, InlineAtoms};
pub use term::{BigInt, Fun, Pid, Port, Reference, Tail, Term, MAX_REF_WORDS};
