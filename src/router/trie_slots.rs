//! The slot types of the trie's open-addressing tables ([`super::open_table`]): a trie node
//! and an exact-filter entry, with the reserved ids they use.

use super::levels::LevelId;
use super::open_table;

/// "No node / no terminal".
pub(super) const NONE: u32 = u32::MAX;
/// The level id of the edge to a `+` child.
pub(super) const PLUS: LevelId = u32::MAX - 1;
/// A topic level not known to the interner: only wildcards can match it.
pub(super) const ABSENT: LevelId = u32::MAX;
/// Stands for the interner hash of the `+` level in `FilterTrie::probe_hash`.
pub(super) const PLUS_HASH: u64 = 0x9e37_79b9_7f4a_7c15;
/// In [`Node::kids`]: the node has a `+` child.
pub(super) const HAS_PLUS: u32 = 1 << 31;

/// One trie node, stored in the node table under its key `(parent id, level)`: 24 bytes.
#[derive(Debug, Clone, Copy)]
pub(super) struct Node {
    /// `edge_key(parent id, level id or PLUS)`.
    pub(super) key: u64,
    /// This node's id: its children's parent id. `NONE` marks a free slot.
    pub(super) id: u32,
    /// Terminal of the filter ending at this node.
    pub(super) end: u32,
    /// Terminal of the filter `<this node>/#`.
    pub(super) hash: u32,
    /// Number of literal children, and `HAS_PLUS`.
    pub(super) kids: u32,
}

impl open_table::Slot for Node {
    const EMPTY: Node = Node {
        key: u64::MAX,
        id: NONE,
        end: NONE,
        hash: NONE,
        kids: 0,
    };

    #[inline]
    fn is_empty(&self) -> bool {
        self.id == NONE
    }
}

impl Node {
    pub(super) fn unused(&self) -> bool {
        self.end == NONE && self.hash == NONE && self.kids == 0
    }
}

/// A slot of the exact-filter table: 8 bytes, eight to a cache line.
#[derive(Debug, Clone, Copy)]
pub(super) struct ExactSlot {
    /// The high half of the filter's hash: compared before the filter text is.
    pub(super) tag: u32,
    /// The filter's terminal; `NONE` marks a free slot.
    pub(super) term: u32,
}

impl open_table::Slot for ExactSlot {
    const EMPTY: ExactSlot = ExactSlot { tag: 0, term: NONE };

    #[inline]
    fn is_empty(&self) -> bool {
        self.term == NONE
    }
}

#[inline]
pub(super) fn tag(hash: u64) -> u32 {
    (hash >> 32) as u32
}

#[inline]
pub(super) fn edge_key(parent: u32, level: LevelId) -> u64 {
    (u64::from(parent) << 32) | u64::from(level)
}
