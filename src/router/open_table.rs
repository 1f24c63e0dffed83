//! A flat open-addressing hash table (linear probing, backward-shift deletion) whose slots hold
//! the whole entry: the trie's node table and level interner use it so that a lookup reads one
//! slot, usually one cache line, instead of a control-byte group, then a slot, then the record
//! the slot points at (hashbrown's layout plus an arena index: three dependent cache misses).
//!
//! On a table of a million nodes, those misses are what a publish pays for (see the trie
//! section of BENCHMARKS.md); a linear probe sequence is contiguous, so even a probe that runs
//! over a few slots touches one or two adjacent lines. The load is kept at most 5/8 so that a
//! lookup of an absent key stays short (Knuth: about 4 slots at that load).
//!
//! The slot type knows its own "empty" value, and callers pass the hash of each key (computed
//! once per lookup; `rehash` recomputes it from a stored slot when the table grows or shifts
//! entries back on removal), so the table stores no hashes.

/// A slot value with a distinguished empty state.
pub trait Slot: Copy {
    /// The value of a free slot.
    const EMPTY: Self;
    /// Whether this slot is free.
    fn is_empty(&self) -> bool;
}

/// Linear-probing table of `T` slots; the capacity is a power of two (or zero).
#[derive(Debug, Clone)]
pub struct OpenTable<T> {
    slots: Box<[T]>,
    len: usize,
}

impl<T: Slot> Default for OpenTable<T> {
    fn default() -> Self {
        OpenTable {
            slots: Box::new([]),
            len: 0,
        }
    }
}

impl<T: Slot> OpenTable<T> {
    /// Number of entries.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the table has no entry.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[inline]
    fn mask(&self) -> usize {
        self.slots.len().wrapping_sub(1)
    }

    /// Hints the CPU to load the line of `hash`'s first slot: for walks that know several keys
    /// before they need the answers, so the misses overlap.
    #[inline]
    pub fn prefetch(&self, hash: u64) {
        if let Some(s) = self.slots.get(hash as usize & self.mask()) {
            prefetch(s);
        }
    }

    /// The index of the slot for which `eq` holds, probing from `hash`.
    #[inline]
    pub fn find(&self, hash: u64, mut eq: impl FnMut(&T) -> bool) -> Option<usize> {
        if self.len == 0 {
            return None;
        }
        let mask = self.mask();
        let mut i = hash as usize & mask;
        loop {
            let s = &self.slots[i];
            if s.is_empty() {
                return None;
            }
            if eq(s) {
                return Some(i);
            }
            i = (i + 1) & mask;
        }
    }

    /// The slot at `i` (an index from [`Self::find`]).
    #[inline]
    pub fn at(&self, i: usize) -> &T {
        &self.slots[i]
    }

    /// The slot at `i`, mutably. Do not change its key (what its hash is computed from).
    #[inline]
    pub fn at_mut(&mut self, i: usize) -> &mut T {
        &mut self.slots[i]
    }

    /// Adds `value`, whose key must not be in the table yet; returns its slot index.
    pub fn insert(&mut self, hash: u64, value: T, rehash: impl Fn(&T) -> u64) -> usize {
        if (self.len + 1) * 8 > self.slots.len() * 5 {
            self.grow(&rehash);
        }
        let mask = self.mask();
        let mut i = hash as usize & mask;
        while !self.slots[i].is_empty() {
            i = (i + 1) & mask;
        }
        self.slots[i] = value;
        self.len += 1;
        i
    }

    fn grow(&mut self, rehash: &impl Fn(&T) -> u64) {
        let cap = (self.slots.len() * 2).max(16);
        let mut slots = huge_vec(cap);
        slots.resize(cap, T::EMPTY);
        let old = std::mem::replace(&mut self.slots, slots.into_boxed_slice());
        let mask = cap - 1;
        for s in old.iter().filter(|s| !s.is_empty()) {
            let mut i = rehash(s) as usize & mask;
            while !self.slots[i].is_empty() {
                i = (i + 1) & mask;
            }
            self.slots[i] = *s;
        }
    }

    /// Removes the entry at slot `i`, moving later entries of its probe run back so that no
    /// lookup stops early at the hole (Knuth's algorithm R; no tombstones).
    pub fn remove_at(&mut self, mut i: usize, rehash: impl Fn(&T) -> u64) -> T {
        let mask = self.mask();
        let gone = self.slots[i];
        self.slots[i] = T::EMPTY;
        self.len -= 1;
        let mut j = i;
        loop {
            j = (j + 1) & mask;
            if self.slots[j].is_empty() {
                break;
            }
            let home = rehash(&self.slots[j]) as usize & mask;
            // The entry at `j` may move to the hole at `i` unless its home lies cyclically
            // in `(i, j]` (then the hole is before its home and moving it would hide it).
            let stays = if i <= j {
                i < home && home <= j
            } else {
                i < home || home <= j
            };
            if !stays {
                self.slots[i] = self.slots[j];
                self.slots[j] = T::EMPTY;
                i = j;
            }
        }
        gone
    }

    /// Every occupied slot.
    #[cfg(test)]
    pub fn iter(&self) -> impl Iterator<Item = &T> + '_ {
        self.slots.iter().filter(|s| !s.is_empty())
    }

    /// Heap bytes held.
    #[cfg(test)]
    pub fn heap_bytes(&self) -> usize {
        std::mem::size_of_val(&*self.slots)
    }
}

/// Hints the CPU to start loading the cache line of `x`.
#[inline]
pub fn prefetch<T>(x: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint with no architectural effect, and `x` is a valid reference.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
            (x as *const T).cast(),
        );
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = x;
}

/// Tables at least this large ask for transparent huge pages.
const HUGE_FROM: usize = 4 << 20;

/// An empty vector with room for `cap` items whose memory, when large, is marked for
/// transparent huge pages (`madvise(MADV_HUGEPAGE)`, Linux `mm/khugepaged.c`) before it is first
/// touched. Why: a publish at 1 M filters makes ~10 random reads into ~100 MiB; with 4 KiB
/// pages each is also a TLB miss (a page walk, two-dimensional under a hypervisor). With THP
/// in `madvise` mode (the Debian default) only memory advised this way gets 2 MiB pages.
pub fn huge_vec<T>(cap: usize) -> Vec<T> {
    let v: Vec<T> = Vec::with_capacity(cap);
    let bytes = cap * std::mem::size_of::<T>();
    if bytes >= HUGE_FROM {
        advise_huge_pages(v.as_ptr().cast(), bytes);
    }
    v
}

/// Pushes `x`, growing a full vector by doubling into a [`huge_vec`] (for arenas).
pub fn push_huge<T>(v: &mut Vec<T>, x: T) {
    if v.len() == v.capacity() {
        let mut bigger = huge_vec(v.len().saturating_mul(2).max(16));
        bigger.append(v);
        *v = bigger;
    }
    v.push(x);
}

#[cfg(target_os = "linux")]
fn advise_huge_pages(p: *const u8, bytes: usize) {
    const PAGE: usize = 2 << 20;
    let start = (p as usize).next_multiple_of(PAGE);
    let end = (p as usize + bytes) & !(PAGE - 1);
    if end > start {
        // SAFETY: the range lies inside an allocation we own; MADV_HUGEPAGE only changes how
        // the kernel backs it, never its contents. Failure (THP off) is harmless.
        unsafe {
            libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn advise_huge_pages(_: *const u8, _: usize) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, Copy, PartialEq)]
    struct K(u32);

    impl Slot for K {
        const EMPTY: K = K(u32::MAX);
        fn is_empty(&self) -> bool {
            self.0 == u32::MAX
        }
    }

    /// A deliberately bad hash (many keys per home slot) to exercise long runs and wrapping.
    fn h(k: &K) -> u64 {
        u64::from(k.0 / 3) * 7
    }

    #[test]
    fn insert_find_remove_against_a_model() {
        let mut t = OpenTable::<K>::default();
        let mut model = std::collections::BTreeSet::new();
        let mut x = 12345u32;
        for step in 0..20_000 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let k = K((x >> 8) % 500);
            let found = t.find(h(&k), |s| *s == k);
            assert_eq!(found.is_some(), model.contains(&k.0), "step {step}");
            match found {
                Some(i) if !x.is_multiple_of(3) => {
                    assert_eq!(t.remove_at(i, h), k);
                    model.remove(&k.0);
                }
                Some(_) => {}
                None => {
                    t.insert(h(&k), k, h);
                    model.insert(k.0);
                }
            }
            assert_eq!(t.len(), model.len());
        }
        for k in 0..500 {
            let k = K(k);
            assert_eq!(t.find(h(&k), |s| *s == k).is_some(), model.contains(&k.0));
        }
        assert_eq!(t.iter().count(), model.len());
        assert!(t.len() * 8 <= t.heap_bytes() / 4 * 5);
    }
}
