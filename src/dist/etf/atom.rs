//! The node-wide atom table.
//!
//! Atoms are interned once and never freed, as on BEAM (`erts/emulator/beam/atom.c`): the table
//! is bounded (1,048,576 entries, BEAM's default `+t`), so a peer that sends ever new atoms makes
//! decoding fail with [`AtomError::TableFull`] instead of exhausting memory. An [`Atom`] is a
//! pointer to its leaked entry: `Copy`, 8 bytes, compared and hashed by identity (interning makes
//! identity equal to content), ordered by content as Erlang's term order orders atoms.
//!
//! Interning an atom that is already in the table does not allocate: a per-thread direct-mapped
//! cache of 512 recently seen atoms answers most lookups with one cheap hash and one compare;
//! otherwise a shared lock on one of 64 shards of the table. That is the decode hot path for
//! atoms the distribution header's atom cache does not cover.
use std::cell::Cell;
use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{OnceLock, RwLock};

/// BEAM's default atom table limit (`erl +t`), our cap too.
pub const MAX_ATOMS: u32 = 1_048_576;
/// Longest atom in characters, as BEAM (`MAX_ATOM_CHARACTERS` in `erts/emulator/beam/atom.h`).
pub const MAX_ATOM_CHARS: usize = 255;

const SHARDS: usize = 64;
const RECENT: usize = 512;

thread_local! {
    /// Recently interned atoms of this thread, by [`quick_hash`] of their text.
    static RECENT_ATOMS: [Cell<Option<Atom>>; RECENT] = const { [const { Cell::new(None) }; RECENT] };
}

/// FNV-1a: a few cycles per byte, good enough to spread atom texts over the recent cache (the
/// table itself uses a keyed hasher, since peers choose the texts).
fn quick_hash(bytes: &[u8]) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    (h ^ (h >> 32)) as usize
}

/// The atom for `bytes` if this thread saw it recently.
#[inline]
fn recent(bytes: &[u8]) -> (usize, Option<Atom>) {
    let slot = quick_hash(bytes) % RECENT;
    let hit = RECENT_ATOMS
        .with(|r| r[slot].get())
        .filter(|a| a.as_str().as_bytes() == bytes);
    (slot, hit)
}

fn remember(slot: usize, a: Atom) {
    RECENT_ATOMS.with(|r| r[slot].set(Some(a)));
}

/// Why an atom could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AtomError {
    /// The table holds [`MAX_ATOMS`] atoms already.
    #[error("atom table full ({MAX_ATOMS} atoms)")]
    TableFull,
    /// More than 255 characters.
    #[error("atom longer than {MAX_ATOM_CHARS} characters")]
    TooLong,
    /// Not valid UTF-8.
    #[error("atom text is not valid UTF-8")]
    InvalidUtf8,
}

struct Entry {
    text: &'static str,
    index: u32,
}

/// An interned atom: a pointer to its table entry.
#[derive(Clone, Copy)]
pub struct Atom(&'static Entry);

struct Table {
    shards: Vec<RwLock<HashMap<&'static str, &'static Entry>>>,
    hasher: std::collections::hash_map::RandomState,
    count: AtomicU32,
    cap: u32,
}

fn table() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(|| Table::with_cap(MAX_ATOMS))
}

impl Table {
    fn with_cap(cap: u32) -> Table {
        Table {
            shards: (0..SHARDS).map(|_| RwLock::new(HashMap::new())).collect(),
            hasher: std::collections::hash_map::RandomState::new(),
            count: AtomicU32::new(0),
            cap,
        }
    }

    fn intern(&'static self, text: &str) -> Result<Atom, AtomError> {
        let shard = &self.shards[(self.hasher.hash_one(text) as usize) % SHARDS];
        // A poisoned lock only means another thread panicked while holding it; the map itself
        // is never left half-updated by `insert`, so keep using it.
        if let Some(e) = shard.read().unwrap_or_else(|p| p.into_inner()).get(text) {
            return Ok(Atom(e));
        }
        let mut map = shard.write().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = map.get(text) {
            return Ok(Atom(e));
        }
        let index = self
            .count
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < self.cap).then_some(n + 1)
            })
            .map_err(|_| AtomError::TableFull)?;
        let text: &'static str = Box::leak(text.to_owned().into_boxed_str());
        let entry: &'static Entry = Box::leak(Box::new(Entry { text, index }));
        map.insert(text, entry);
        Ok(Atom(entry))
    }
}

impl Atom {
    /// Interns `text`. For names written in our own source; panics only if the table is full or
    /// `text` is longer than 255 characters, which is a bug in the caller, never wire data
    /// (use [`Atom::try_new`] / [`Atom::from_bytes`] for that).
    #[allow(clippy::new_ret_no_self)]
    pub fn new(text: &str) -> Atom {
        match Atom::try_new(text) {
            Ok(a) => a,
            Err(e) => panic!("Atom::new({text:?}): {e}"),
        }
    }

    /// Interns `text`, failing when it is too long or the table is full.
    pub fn try_new(text: &str) -> Result<Atom, AtomError> {
        let (slot, hit) = recent(text.as_bytes());
        if let Some(a) = hit {
            return Ok(a);
        }
        Atom::intern(slot, text)
    }

    fn intern(slot: usize, text: &str) -> Result<Atom, AtomError> {
        if text.len() > MAX_ATOM_CHARS && text.chars().count() > MAX_ATOM_CHARS {
            return Err(AtomError::TooLong);
        }
        let a = table().intern(text)?;
        remember(slot, a);
        Ok(a)
    }

    /// Interns UTF-8 bytes from the wire (ATOM_UTF8_EXT, SMALL_ATOM_UTF8_EXT, atom cache).
    pub fn from_bytes(bytes: &[u8]) -> Result<Atom, AtomError> {
        let (slot, hit) = recent(bytes);
        if let Some(a) = hit {
            // Equal to a valid atom's text, so valid UTF-8: no need to check again.
            return Ok(a);
        }
        let text = std::str::from_utf8(bytes).map_err(|_| AtomError::InvalidUtf8)?;
        Atom::intern(slot, text)
    }

    /// Interns Latin-1 bytes (the old ATOM_EXT / SMALL_ATOM_EXT); allocates only when a byte is
    /// outside ASCII.
    pub fn from_latin1(bytes: &[u8]) -> Result<Atom, AtomError> {
        if bytes.is_ascii() {
            // ASCII is UTF-8.
            return Atom::from_bytes(bytes);
        }
        let text: String = bytes.iter().map(|&b| char::from(b)).collect();
        Atom::try_new(&text)
    }

    /// The atom's text.
    pub fn as_str(self) -> &'static str {
        self.0.text
    }

    /// Position in the interning order: stable for the life of the process, used as the
    /// atom-cache slot on the sending side.
    pub fn index(self) -> u32 {
        self.0.index
    }

    /// How many atoms the table holds.
    pub fn count() -> u32 {
        table().count.load(Ordering::Relaxed)
    }
}

impl PartialEq for Atom {
    fn eq(&self, other: &Atom) -> bool {
        std::ptr::eq(self.0, other.0)
    }
}
impl Eq for Atom {}

impl Hash for Atom {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u32(self.0.index);
    }
}

impl PartialOrd for Atom {
    fn partial_cmp(&self, other: &Atom) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Atom {
    /// Content order, as Erlang orders atoms.
    fn cmp(&self, other: &Atom) -> std::cmp::Ordering {
        if self == other {
            return std::cmp::Ordering::Equal;
        }
        self.as_str().cmp(other.as_str())
    }
}

impl PartialEq<str> for Atom {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}
impl PartialEq<&str> for Atom {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl fmt::Debug for Atom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Atom {
    /// Erlang syntax: bare when it is a plain lowercase word, quoted otherwise.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.as_str();
        let plain = s.chars().next().is_some_and(|c| c.is_ascii_lowercase())
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '@');
        if plain {
            f.write_str(s)
        } else {
            write!(f, "'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
        }
    }
}

impl From<&str> for Atom {
    fn from(s: &str) -> Atom {
        Atom::new(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interning_is_identity() {
        let a = Atom::new("hello_atom_test");
        let b = Atom::from_bytes(b"hello_atom_test").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.index(), b.index());
        assert_eq!(a.as_str(), "hello_atom_test");
        assert_ne!(a, Atom::new("hello_atom_test2"));
    }

    #[test]
    fn a_full_table_refuses_new_atoms_only() {
        let t: &'static Table = Box::leak(Box::new(Table::with_cap(2)));
        let a = t.intern("full_a").unwrap();
        t.intern("full_b").unwrap();
        assert!(matches!(t.intern("full_c"), Err(AtomError::TableFull)));
        assert!(t.intern("full_a").is_ok_and(|x| x.as_str() == a.as_str()));
        assert!(matches!(t.intern("full_d"), Err(AtomError::TableFull)));
    }

    #[test]
    fn latin1_atoms_become_utf8() {
        let a = Atom::from_latin1(&[b'c', 0xE5, b'r']).unwrap();
        assert_eq!(a.as_str(), "cår");
        assert_eq!(a, Atom::new("cår"));
    }

    #[test]
    fn bad_atoms_are_errors() {
        assert_eq!(Atom::from_bytes(&[0xff, 0xfe]), Err(AtomError::InvalidUtf8));
        let long = "a".repeat(256);
        assert_eq!(Atom::try_new(&long), Err(AtomError::TooLong));
        // 255 characters of 4 bytes each is still a legal atom.
        let wide = "😀".repeat(255);
        assert!(Atom::try_new(&wide).is_ok());
        assert_eq!(Atom::try_new(&"😀".repeat(256)), Err(AtomError::TooLong));
    }

    #[test]
    fn ordered_by_content() {
        let mut v = [Atom::new("zeta"), Atom::new("alpha"), Atom::new("mid")];
        v.sort();
        let names: Vec<&str> = v.iter().map(|a| a.as_str()).collect();
        assert_eq!(names, ["alpha", "mid", "zeta"]);
    }

    #[test]
    fn display_quotes_when_needed() {
        assert_eq!(Atom::new("ok").to_string(), "ok");
        assert_eq!(Atom::new("a@b").to_string(), "a@b");
        assert_eq!(Atom::new("Hello").to_string(), "'Hello'");
        assert_eq!(Atom::new("").to_string(), "''");
    }
}
