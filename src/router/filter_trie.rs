//! The matching engine: a map from topic filters to a payload `P`, answering "which filters
//! match this topic name" with MQTT semantics (MQTT 5.0 section 4.7).
//!
//! Layout, after EMQX 4's router (`emqx_router:match_routes/1` looks the topic up as an exact
//! route and asks `emqx_trie` only for wildcard filters):
//! - filters without wildcards live in one hash table keyed by their text (8-byte slots: a
//!   32-bit hash tag and the filter's terminal): a publish costs one lookup for all of them;
//! - wildcard filters live in a trie whose nodes are the slots of one flat open-addressing
//!   table keyed by `(parent node id, level id)` (`+` is a reserved level id). A slot holds the
//!   whole node (its id, its two terminals, its child counts: 24 bytes), so going down one
//!   level costs one probe, usually one cache line. Levels are interned ([`LevelInterner`]);
//! - every filter's text and payload live once, in a terminal arena shared by both parts.
//!
//! The big arrays ask for transparent huge pages ([`open_table::huge_vec`]), so that at 1 M
//! filters a random read is a cache miss but not also a TLB miss.
//!
//! Matching is in `filter_walk.rs` (one topic) and `filter_batch.rs` (several at once).

use super::filter_text::FilterText;
use super::levels::LevelInterner;
use super::open_table::{self, OpenTable};
use super::topic::{levels, TopicFilter};
use super::trie_slots::{edge_key, tag, ExactSlot, Node, HAS_PLUS, NONE, PLUS, PLUS_HASH};
use foldhash::fast::RandomState;
use std::hash::BuildHasher;

/// The root node's id.
const ROOT: u32 = 0;

/// Where a node lives: the root is kept outside the table (every walk starts there).
#[derive(Debug, Clone, Copy)]
enum Loc {
    Root,
    Slot(usize),
}

/// A stored filter with its payload.
#[derive(Debug)]
pub(super) struct Terminal<P> {
    pub(super) filter: FilterText,
    pub(super) payload: P,
}

/// Topic filters → `P`, with MQTT matching. Not synchronised: see `shared.rs`.
#[derive(Debug)]
pub struct FilterTrie<P> {
    /// Exact filters' terminals hashed by the filter text.
    pub(super) exact: OpenTable<ExactSlot>,
    /// The root node (id `ROOT`).
    pub(super) root: Node,
    /// Every other node, by `(parent id, level)`.
    pub(super) nodes: OpenTable<Node>,
    /// Next never-used node id.
    next_id: u32,
    /// Ids of freed nodes, reused first.
    free_ids: Vec<u32>,
    pub(super) levels: LevelInterner,
    pub(super) terminals: Vec<Option<Terminal<P>>>,
    free_terminals: Vec<u32>,
    /// Wildcard filters stored in the trie.
    pub(super) wildcards: usize,
    pub(super) hasher: RandomState,
}

impl<P> Default for FilterTrie<P> {
    fn default() -> Self {
        FilterTrie {
            exact: OpenTable::default(),
            root: Node {
                key: u64::MAX,
                id: ROOT,
                end: NONE,
                hash: NONE,
                kids: 0,
            },
            nodes: OpenTable::default(),
            next_id: ROOT + 1,
            free_ids: Vec::new(),
            levels: LevelInterner::default(),
            terminals: Vec::new(),
            free_terminals: Vec::new(),
            wildcards: 0,
            hasher: RandomState::default(),
        }
    }
}

impl<P> FilterTrie<P> {
    /// An empty trie.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of filters stored.
    pub fn len(&self) -> usize {
        self.exact.len() + self.wildcards
    }

    /// Whether no filter is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of trie nodes in use (root included), for memory reports.
    pub fn node_count(&self) -> usize {
        self.nodes.len() + 1
    }

    /// Distinct literal levels of the wildcard filters.
    pub fn level_count(&self) -> usize {
        self.levels.len()
    }

    /// Where the child of `parent` on the level whose interner hash is `level_hash` (or
    /// [`PLUS_HASH`]) is probed for. The level's text hash, not its id, goes in, so the walk
    /// can start loading a child's slot before the interner has answered with the id.
    #[inline]
    pub(super) fn probe_hash(&self, parent: u32, level_hash: u64) -> u64 {
        self.hasher.hash_one((parent, level_hash))
    }

    /// [`Self::probe_hash`] of a stored node's key.
    fn key_hash(&self, key: u64) -> u64 {
        slot_hash(&self.hasher, &self.levels, key)
    }

    /// The slot in `exact` of the exact filter `topic` whose hash is `h`.
    #[inline]
    pub(super) fn find_exact(&self, topic: &str, h: u64) -> Option<usize> {
        let terms = &self.terminals;
        self.exact.find(h, |s| {
            s.tag == tag(h)
                && terms[s.term as usize]
                    .as_ref()
                    .is_some_and(|t| t.filter.as_str() == topic)
        })
    }

    /// The terminal of `filter`, if stored.
    fn find_terminal(&self, filter: &str) -> Option<u32> {
        if !is_wildcard_text(filter) {
            let h = self.hasher.hash_one(filter);
            return self.find_exact(filter, h).map(|i| self.exact.at(i).term);
        }
        let (at, hash) = self.find_path(filter, &mut Vec::new())?;
        let node = self.node(at);
        Some(if hash { node.hash } else { node.end }).filter(|&t| t != NONE)
    }

    /// The slot of the child of node `parent` on edge `level` (`+` or a literal); `None` if
    /// absent, or if a literal level is not interned.
    fn find_child(&self, parent: u32, level: &str) -> Option<usize> {
        let (id, h) = match level {
            "+" => (PLUS, PLUS_HASH),
            lit => {
                let h = self.levels.hash(lit);
                (self.levels.get_hashed(lit, h)?, h)
            }
        };
        let key = edge_key(parent, id);
        self.nodes
            .find(self.probe_hash(parent, h), |n| n.key == key)
    }

    #[inline]
    fn node(&self, at: Loc) -> &Node {
        match at {
            Loc::Root => &self.root,
            Loc::Slot(i) => self.nodes.at(i),
        }
    }

    #[inline]
    fn node_mut(&mut self, at: Loc) -> &mut Node {
        match at {
            Loc::Root => &mut self.root,
            Loc::Slot(i) => self.nodes.at_mut(i),
        }
    }

    /// The edge keys from the root to the node a wildcard filter ends at, and whether it ends
    /// with `#`; `None` if some level of its path is missing. `path` is cleared first.
    fn find_path(&self, filter: &str, path: &mut Vec<u64>) -> Option<(Loc, bool)> {
        path.clear();
        let mut at = Loc::Root;
        for level in levels(filter) {
            if level == "#" {
                return Some((at, true));
            }
            let i = self.find_child(self.node(at).id, level)?;
            path.push(self.nodes.at(i).key);
            at = Loc::Slot(i);
        }
        Some((at, false))
    }

    /// The payload of `filter`, if stored.
    pub fn get(&self, filter: &str) -> Option<&P> {
        let t = self.find_terminal(filter)?;
        self.terminals[t as usize].as_ref().map(|x| &x.payload)
    }

    /// The payload of `filter`, mutably.
    pub fn get_mut(&mut self, filter: &str) -> Option<&mut P> {
        let t = self.find_terminal(filter)?;
        self.terminals[t as usize].as_mut().map(|x| &mut x.payload)
    }

    fn alloc_terminal(&mut self, filter: &str, payload: P) -> u32 {
        let term = Some(Terminal {
            filter: filter.into(),
            payload,
        });
        match self.free_terminals.pop() {
            Some(t) => {
                self.terminals[t as usize] = term;
                t
            }
            None => {
                open_table::push_huge(&mut self.terminals, term);
                (self.terminals.len() - 1) as u32
            }
        }
    }

    /// The payload of `filter`, inserted with `make()` if absent; `true` when inserted.
    /// `None` only if the trie's `u32` index space is full (about 4 G nodes or levels).
    pub fn get_or_insert_with(
        &mut self,
        filter: &TopicFilter,
        make: impl FnOnce() -> P,
    ) -> Option<(&mut P, bool)> {
        let text = filter.as_str();
        if self.terminals.len() >= NONE as usize {
            return None;
        }
        let (t, new) = if !filter.is_wildcard() {
            let h = self.hasher.hash_one(text);
            match self.find_exact(text, h) {
                Some(i) => (self.exact.at(i).term, false),
                None => {
                    let t = self.alloc_terminal(text, make());
                    let (terms, hasher) = (&self.terminals, &self.hasher);
                    let slot = ExactSlot {
                        tag: tag(h),
                        term: t,
                    };
                    self.exact.insert(h, slot, |s| exact_hash(hasher, terms, s));
                    (t, true)
                }
            }
        } else {
            self.insert_wildcard(text, make)?
        };
        let term = self.terminals[t as usize].as_mut()?;
        Some((&mut term.payload, new))
    }

    fn insert_wildcard(&mut self, filter: &str, make: impl FnOnce() -> P) -> Option<(u32, bool)> {
        let mut at = Loc::Root;
        let mut hash = false;
        for level in levels(filter) {
            let parent = self.node(at).id;
            let known = match level {
                "#" => {
                    hash = true;
                    break;
                }
                level => self.find_child(parent, level),
            };
            at = Loc::Slot(match known {
                Some(i) => i,
                None => self.add_child(at, level)?,
            });
        }
        let node = self.node(at);
        let slot = if hash { node.hash } else { node.end };
        if slot != NONE {
            return Some((slot, false));
        }
        let t = self.alloc_terminal(filter, make());
        let node = self.node_mut(at);
        *(if hash { &mut node.hash } else { &mut node.end }) = t;
        self.wildcards += 1;
        Some((t, true))
    }

    /// Adds the child `level` (`+` or a literal) under the node at `at`; its slot.
    fn add_child(&mut self, at: Loc, level: &str) -> Option<usize> {
        let id = match self.free_ids.pop() {
            Some(id) => id,
            None if self.next_id < PLUS - 1 => {
                self.next_id += 1;
                self.next_id - 1
            }
            None => return None,
        };
        let lid = match level {
            "+" => PLUS,
            lit => match self.levels.acquire(lit) {
                Some(lid) => lid,
                None => {
                    self.free_ids.push(id);
                    return None;
                }
            },
        };
        // The parent is updated first: inserting may move every slot.
        let parent = self.node_mut(at);
        if lid == PLUS {
            parent.kids |= HAS_PLUS;
        } else {
            parent.kids += 1;
        }
        let key = edge_key(parent.id, lid);
        let node = Node {
            key,
            id,
            ..<Node as open_table::Slot>::EMPTY
        };
        let h = self.key_hash(key);
        let (hasher, levels) = (&self.hasher, &self.levels);
        Some(
            self.nodes
                .insert(h, node, |n| slot_hash(hasher, levels, n.key)),
        )
    }

    /// Removes `filter`, giving its payload back.
    pub fn remove(&mut self, filter: &str) -> Option<P> {
        let t = if !is_wildcard_text(filter) {
            let h = self.hasher.hash_one(filter);
            let i = self.find_exact(filter, h)?;
            let (terms, hasher) = (&self.terminals, &self.hasher);
            self.exact
                .remove_at(i, |s| exact_hash(hasher, terms, s))
                .term
        } else {
            let mut path = Vec::new();
            let (at, hash) = self.find_path(filter, &mut path)?;
            let node = self.node_mut(at);
            let slot = if hash { &mut node.hash } else { &mut node.end };
            let t = std::mem::replace(slot, NONE);
            if t == NONE {
                return None;
            }
            self.wildcards -= 1;
            self.prune(&path);
            t
        };
        let term = self.terminals[t as usize].take()?;
        self.free_terminals.push(t);
        Some(term.payload)
    }

    /// Frees the unused nodes at the end of `path` (edge keys from the root), deepest first.
    fn prune(&mut self, path: &[u64]) {
        for (depth, &key) in path.iter().enumerate().rev() {
            let Some(i) = self.nodes.find(self.key_hash(key), |n| n.key == key) else {
                return;
            };
            if !self.nodes.at(i).unused() {
                return;
            }
            let (hasher, levels) = (&self.hasher, &self.levels);
            let gone = self
                .nodes
                .remove_at(i, |n| slot_hash(hasher, levels, n.key));
            self.free_ids.push(gone.id);
            let parent = match depth.checked_sub(1) {
                None => Loc::Root,
                Some(up) => {
                    let pk = path[up];
                    match self.nodes.find(self.key_hash(pk), |n| n.key == pk) {
                        Some(p) => Loc::Slot(p),
                        None => return,
                    }
                }
            };
            let level = key as u32;
            let parent = self.node_mut(parent);
            if level == PLUS {
                parent.kids &= !HAS_PLUS;
            } else {
                parent.kids -= 1;
                self.levels.release(level);
            }
        }
    }

    /// Calls `f(filter, payload)` for every stored filter matching the topic name `topic`,
    /// each once. `topic` should be a valid [`TopicName`](super::topic::TopicName); any other
    /// string is matched literally (a `+` level in it is not a wildcard) and never panics.
    pub fn for_each_match<'s>(&'s self, topic: &str, mut f: impl FnMut(&'s str, &'s P)) {
        let h = self.hasher.hash_one(topic);
        if self.wildcards == 0 {
            if let Some(i) = self.find_exact(topic, h) {
                emit(&self.terminals, self.exact.at(i).term, &mut f);
            }
            return;
        }
        self.walk(topic, h, &mut f);
    }

    /// Every stored filter with its payload, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &P)> + '_ {
        self.terminals
            .iter()
            .filter_map(|t| t.as_ref().map(|t| (t.filter.as_str(), &t.payload)))
    }

    /// Keeps the filters for which `keep(filter, payload)` is true; the others are removed.
    /// `O(filters)`: for rare bulk changes such as a node going down.
    pub fn retain(&mut self, mut keep: impl FnMut(&str, &mut P) -> bool) {
        for i in 0..self.terminals.len() {
            let drop_it = match &mut self.terminals[i] {
                Some(t) => !keep(t.filter.as_str(), &mut t.payload),
                None => false,
            };
            if drop_it {
                let filter = self.terminals[i]
                    .as_ref()
                    .map(|t| t.filter.as_str().to_string())
                    .unwrap_or_default();
                self.remove(&filter);
            }
        }
    }
}

/// Hands terminal `t` to the match callback.
#[inline]
pub(super) fn emit<'s, P>(
    terms: &'s [Option<Terminal<P>>],
    t: u32,
    f: &mut impl FnMut(&'s str, &'s P),
) {
    if let Some(term) = &terms[t as usize] {
        f(term.filter.as_str(), &term.payload);
    }
}

/// [`FilterTrie::probe_hash`] of the node with `key`: where it is stored.
fn slot_hash(hasher: &RandomState, levels: &LevelInterner, key: u64) -> u64 {
    let (parent, level) = ((key >> 32) as u32, key as u32);
    let level_hash = match level {
        PLUS => PLUS_HASH,
        id => levels.hash_of(id),
    };
    hasher.hash_one((parent, level_hash))
}

/// The hash of the exact filter in slot `s` (to move it when the table grows or shifts).
fn exact_hash<P>(hasher: &RandomState, terms: &[Option<Terminal<P>>], s: &ExactSlot) -> u64 {
    terms[s.term as usize]
        .as_ref()
        .map_or(0, |t| hasher.hash_one(t.filter.as_str()))
}

/// Whether a filter text contains a `+` or `#` level (the text is assumed validated).
fn is_wildcard_text(filter: &str) -> bool {
    levels(filter).any(|l| l == "+" || l == "#")
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A trie holding `filters`, each with its index as the value.
    pub(in crate::router) fn trie(filters: &[&str]) -> FilterTrie<usize> {
        let mut t = FilterTrie::new();
        for (i, f) in filters.iter().enumerate() {
            let f = TopicFilter::new(f).unwrap();
            assert!(t.get_or_insert_with(&f, || i).unwrap().1);
        }
        t
    }

    fn matched(t: &FilterTrie<usize>, topic: &str) -> Vec<String> {
        let mut v = Vec::new();
        t.for_each_match(topic, |f, _| v.push(f.to_string()));
        v.sort();
        v
    }

    #[test]
    fn mqtt_semantics() {
        let t = trie(&[
            "a/b", "a/+", "a/#", "#", "+/+", "+", "/+", "+/#", "$SYS/#", "a//b",
        ]);
        assert_eq!(matched(&t, "a/b"), ["#", "+/#", "+/+", "a/#", "a/+", "a/b"]);
        assert_eq!(matched(&t, "a"), ["#", "+", "+/#", "a/#"]);
        assert_eq!(matched(&t, "a/"), ["#", "+/#", "+/+", "a/#", "a/+"]);
        assert_eq!(matched(&t, "/x"), ["#", "+/#", "+/+", "/+"]);
        assert_eq!(matched(&t, "a//b"), ["#", "+/#", "a/#", "a//b"]);
        assert_eq!(matched(&t, "$SYS/x"), ["$SYS/#"]);
        assert_eq!(matched(&t, "$SYS"), ["$SYS/#"]);
        assert_eq!(matched(&t, "$other"), Vec::<String>::new());
    }

    #[test]
    fn remove_prunes_everything() {
        let filters = ["a/b/c/+", "a/b/#", "a/+/c", "+/b", "x/y", "#", "a/b/c/+/#"];
        let mut t = trie(&filters);
        assert_eq!(t.len(), filters.len());
        assert_eq!(t.remove("a/b"), None);
        assert_eq!(t.remove("a/b/c"), None);
        for (i, f) in filters.iter().enumerate() {
            assert_eq!(t.remove(f), Some(i), "{f}");
            assert_eq!(t.remove(f), None);
        }
        assert!(t.is_empty());
        assert_eq!(t.node_count(), 1);
        assert_eq!(t.level_count(), 0);
        assert!(t.nodes.is_empty());
        assert_eq!(t.root.kids, 0);
        // Freed node ids and terminals are reused.
        let (ids, terms) = (t.next_id, t.terminals.len());
        let t2 = &mut t;
        for f in ["a/b/c/+", "q/+"] {
            t2.get_or_insert_with(&TopicFilter::new(f).unwrap(), || 9);
        }
        assert_eq!((t.next_id, t.terminals.len()), (ids, terms));
        assert_eq!(t.node_count(), 7);
        assert_eq!(matched(&t, "a/b/c/d"), ["a/b/c/+"]);
    }

    #[test]
    fn get_and_retain() {
        let mut t = trie(&["a/+", "a/b", "c/#"]);
        *t.get_mut("a/+").unwrap() += 10;
        assert_eq!(t.get("a/+"), Some(&10));
        assert_eq!(t.get("a/b"), Some(&1));
        assert_eq!(t.get("a/c"), None);
        let again = t.get_or_insert_with(&TopicFilter::new("a/b").unwrap(), || 99);
        assert_eq!(again.map(|(p, new)| (*p, new)), Some((1, false)));
        t.retain(|f, _| f != "c/#");
        assert_eq!(t.len(), 2);
        assert_eq!(matched(&t, "c/d"), Vec::<String>::new());
        let mut all: Vec<_> = t.iter().map(|(f, _)| f.to_string()).collect();
        all.sort();
        assert_eq!(all, ["a/+", "a/b"]);
    }

    #[test]
    fn long_filters_and_topics() {
        let long = "a-level-longer-than-thirty-bytes-in-all/b";
        let wild = "a-level-longer-than-thirty-bytes-in-all/+";
        let mut t = trie(&[long, wild, "short/+"]);
        assert_eq!(matched(&t, long), [wild, long]);
        assert_eq!(t.get(long), Some(&0));
        assert_eq!(t.remove(long), Some(0));
        assert_eq!(matched(&t, long), [wild]);
        assert_eq!(matched(&t, "short/x"), ["short/+"]);
    }

    #[test]
    fn deep_topic_needs_no_recursion() {
        let deep = vec!["+"; 30_000].join("/");
        let t = trie(&[&deep, "#"]);
        let topic = vec!["x"; 30_000].join("/");
        assert_eq!(matched(&t, &topic).len(), 2);
    }

    #[test]
    fn reentrant_match() {
        let t = trie(&["a/+", "a/b"]);
        let mut inner = 0;
        t.for_each_match("a/b", |_, _| t.for_each_match("a/b", |_, _| inner += 1));
        assert_eq!(inner, 4);
    }
}
