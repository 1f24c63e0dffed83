//! Interned topic levels: every distinct literal level of the wildcard filters gets a `u32`.
//!
//! Why: a trie edge is then `(parent node, level id)`, two `u32`s, and the same level text
//! (`status`, `temp`, a device id under several prefixes) is stored once however many filters
//! use it. On the match path a topic level is looked up here once; a level that no filter has
//! cannot match any literal edge, so the walk tries only `+` and `#` below it.
//!
//! The table is an [`OpenTable`] of 16-byte slots that hold short level text inline: looking
//! up a level of up to 11 bytes reads one slot and nothing else.

use super::open_table::{self, OpenTable};
use foldhash::fast::RandomState;
use std::hash::BuildHasher;

/// A level id; literal ids stay below [`LevelInterner::MAX_ID`].
pub type LevelId = u32;

/// Levels up to this many bytes are compared inside the hash table slot.
const INLINE: usize = 11;

/// One hash table slot (16 bytes): the id, and the level text itself when it is short, so a
/// lookup of a short level touches one cache line (device ids, `temp`, `status` ...) instead
/// of also chasing `names` and the text on the heap.
#[derive(Debug, Clone, Copy)]
struct Slot {
    id: LevelId,
    /// Text length if `<= INLINE`, else `u8::MAX` (text only in `names`).
    len: u8,
    text: [u8; INLINE],
}

impl open_table::Slot for Slot {
    const EMPTY: Slot = Slot {
        id: LevelId::MAX,
        len: 0,
        text: [0; INLINE],
    };

    #[inline]
    fn is_empty(&self) -> bool {
        self.id == LevelId::MAX
    }
}

impl Slot {
    fn new(id: LevelId, level: &str) -> Self {
        let mut text = [0; INLINE];
        let len = match level.len() {
            n if n <= INLINE => {
                text[..n].copy_from_slice(level.as_bytes());
                n as u8
            }
            _ => u8::MAX,
        };
        Slot { id, len, text }
    }

    #[inline]
    fn is(&self, level: &str, names: &[Box<str>]) -> bool {
        match self.len {
            u8::MAX => level.len() > INLINE && &*names[self.id as usize] == level,
            n => level.len() == n as usize && &self.text[..n as usize] == level.as_bytes(),
        }
    }

    fn text<'a>(&'a self, names: &'a [Box<str>]) -> &'a [u8] {
        match self.len {
            u8::MAX => names[self.id as usize].as_bytes(),
            n => &self.text[..n as usize],
        }
    }
}

/// Level text ↔ id, reference-counted by the trie edges that use the level.
#[derive(Debug, Default)]
pub struct LevelInterner {
    /// Ids hashed by their text.
    table: OpenTable<Slot>,
    /// Text per id; an empty box for a free id (an empty level is a live `""` with refs > 0).
    names: Vec<Box<str>>,
    /// Edges using each id; 0 means the id is free.
    refs: Vec<u32>,
    /// Free ids, reused first.
    free: Vec<LevelId>,
    hasher: RandomState,
}

impl LevelInterner {
    /// Ids from here up are reserved by the trie for markers (`+`, "none").
    pub const MAX_ID: LevelId = u32::MAX - 2;

    /// The id of `level`, if some edge uses it.
    #[inline]
    pub fn get(&self, level: &str) -> Option<LevelId> {
        self.get_hashed(level, self.hash(level))
    }

    /// The hash [`Self::get_hashed`] wants for `level`.
    #[inline]
    pub fn hash(&self, level: &str) -> u64 {
        self.hasher.hash_one(level.as_bytes())
    }

    /// The hash of live level `id`'s text (as [`Self::hash`] gives it).
    pub fn hash_of(&self, id: LevelId) -> u64 {
        self.names.get(id as usize).map_or(0, |n| self.hash(n))
    }

    /// Starts loading the slot where `hash`'s lookup begins (see [`OpenTable::prefetch`]).
    #[inline]
    pub fn prefetch(&self, hash: u64) {
        self.table.prefetch(hash)
    }

    /// [`Self::get`] with the hash already computed by [`Self::hash`].
    #[inline]
    pub fn get_hashed(&self, level: &str, hash: u64) -> Option<LevelId> {
        let names = &self.names;
        self.table
            .find(hash, |s| s.is(level, names))
            .map(|i| self.table.at(i).id)
    }

    /// The id of `level`, created if needed, with one more reference. `None` when the id
    /// space is exhausted (more than ~4 G distinct levels).
    pub fn acquire(&mut self, level: &str) -> Option<LevelId> {
        if let Some(id) = self.get(level) {
            self.refs[id as usize] += 1;
            return Some(id);
        }
        let id = match self.free.pop() {
            Some(id) => {
                self.names[id as usize] = level.into();
                self.refs[id as usize] = 1;
                id
            }
            None => {
                let id = LevelId::try_from(self.names.len())
                    .ok()
                    .filter(|&id| id < Self::MAX_ID)?;
                self.names.push(level.into());
                self.refs.push(1);
                id
            }
        };
        let (names, hasher) = (&self.names, &self.hasher);
        let h = hasher.hash_one(level.as_bytes());
        self.table
            .insert(h, Slot::new(id, level), |s| hasher.hash_one(s.text(names)));
        Some(id)
    }

    /// Drops one reference to `id`; the level is forgotten with its last reference.
    pub fn release(&mut self, id: LevelId) {
        let i = id as usize;
        let Some(r) = self.refs.get_mut(i) else {
            return;
        };
        if *r > 1 {
            *r -= 1;
            return;
        }
        *r = 0;
        let (names, hasher) = (&self.names, &self.hasher);
        let h = hasher.hash_one(names[i].as_bytes());
        if let Some(at) = self.table.find(h, |s| s.id == id) {
            self.table.remove_at(at, |s| hasher.hash_one(s.text(names)));
        }
        self.names[i] = Box::from("");
        self.free.push(id);
    }

    /// Distinct live levels.
    pub fn len(&self) -> usize {
        self.table.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acquire_release_reuse() {
        let mut l = LevelInterner::default();
        let a = l.acquire("a").unwrap();
        let e = l.acquire("").unwrap();
        assert_ne!(a, e);
        assert_eq!(l.acquire("a"), Some(a));
        assert_eq!(l.get("a"), Some(a));
        assert_eq!(l.get(""), Some(e));
        l.release(a);
        assert_eq!(l.get("a"), Some(a));
        l.release(a);
        assert_eq!(l.get("a"), None);
        let b = l.acquire("b").unwrap();
        assert_eq!(b, a, "freed id is reused");
        assert_eq!(l.len(), 2);
        assert_eq!(l.get(""), Some(e));
    }

    #[test]
    fn long_and_short_levels() {
        let mut l = LevelInterner::default();
        let long = "a-level-longer-than-eleven-bytes";
        let a = l.acquire(long).unwrap();
        let b = l.acquire("elevenbytes").unwrap();
        let c = l.acquire("twelve-bytes").unwrap();
        assert_eq!(l.get(long), Some(a));
        assert_eq!(l.get("elevenbytes"), Some(b));
        assert_eq!(l.get("twelve-bytes"), Some(c));
        assert_eq!(l.get("twelve-bytez"), None);
        assert_eq!(l.get(&long[..11]), None);
        for _ in 0..1000 {
            l.acquire(&format!("x{}", l.len())).unwrap();
        }
        assert_eq!(l.get(long), Some(a), "found after the table grew");
        l.release(a);
        assert_eq!(l.get(long), None);
    }
}
