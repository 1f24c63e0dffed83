//! Interned topic levels: every distinct literal level of the wildcard filters gets a `u32`.
//!
//! Why: a trie edge is then `(parent node, level id)`, two `u32`s, and the same level text
//! (`status`, `temp`, a device id under several prefixes) is stored once however many filters
//! use it. On the match path a topic level is looked up here once; a level that no filter has
//! cannot match any literal edge, so the walk tries only `+` and `#` below it.

use foldhash::fast::RandomState;
use hashbrown::HashTable;
use std::hash::BuildHasher;

/// A level id; literal ids stay below [`LevelInterner::MAX_ID`].
pub type LevelId = u32;

/// Level text ↔ id, reference-counted by the trie edges that use the level.
#[derive(Debug, Default)]
pub struct LevelInterner {
    /// Ids, hashed by their text (the text lives in `names`, so the table holds 4 bytes a slot).
    table: HashTable<LevelId>,
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
        let h = self.hasher.hash_one(level);
        self.table
            .find(h, |&id| &*self.names[id as usize] == level)
            .copied()
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
        let h = hasher.hash_one(level);
        self.table
            .insert_unique(h, id, |&i| hasher.hash_one(&*names[i as usize]));
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
        let h = self.hasher.hash_one(&*self.names[i]);
        if let Ok(entry) = self.table.find_entry(h, |&x| x == id) {
            entry.remove();
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
}
