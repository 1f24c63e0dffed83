//! The matching engine: a map from topic filters to a payload `P`, answering "which filters
//! match this topic name" with MQTT semantics (MQTT 5.0 section 4.7).
//!
//! Layout, after EMQX 4's router (`emqx_router:match_routes/1` looks the topic up as an exact
//! route and asks `emqx_trie` only for wildcard filters):
//! - filters without wildcards live in one hash table keyed by their text: a publish costs one
//!   lookup for all of them, however many there are;
//! - wildcard filters live in a trie whose nodes sit in one arena (`u32` indices, 24 bytes a
//!   node); `+` is a field of the node, `#` and "a filter ends here" are terminal slots, and
//!   literal children are edges `(parent, level id)` in a single hash table that stores just the
//!   child's index (4 bytes a slot: the key is read back from the child node). Levels are
//!   interned ([`LevelInterner`]).
//! - every filter's text and payload live once, in a terminal arena shared by both parts.
//!
//! Matching walks the trie with an explicit stack (no recursion: a 65535-byte topic may have
//! 32 k levels) in thread-local scratch buffers, so a match allocates nothing once warm. The
//! topic's levels are all looked up in the interner before the walk, in one loop of independent
//! lookups (measured ~30 % faster at 1 M filters than resolving each level when first needed:
//! the cache misses overlap).

use super::levels::{LevelId, LevelInterner};
use super::topic::{is_dollar_topic, levels, TopicFilter};
use foldhash::fast::RandomState;
use hashbrown::HashTable;
use std::cell::RefCell;
use std::hash::BuildHasher;

/// "No node / no terminal".
const NONE: u32 = u32::MAX;
/// The `level` of a node reached through `+` from its parent.
const PLUS: LevelId = u32::MAX - 1;
/// A topic level not known to the interner: only wildcards can match it.
const ABSENT: LevelId = u32::MAX;
/// The root node's index.
const ROOT: u32 = 0;

/// One trie node: 24 bytes.
#[derive(Debug, Clone, Copy)]
struct Node {
    /// Parent index (`NONE` for the root and for free nodes).
    parent: u32,
    /// The level id on the edge from the parent, or `PLUS`.
    level: LevelId,
    /// The child reached by `+`; on a free node, the next free node.
    plus: u32,
    /// Terminal of the filter ending at this node.
    end: u32,
    /// Terminal of the filter `<this node>/#`.
    hash: u32,
    /// Number of literal children (edges from this node).
    children: u32,
}

impl Node {
    const EMPTY: Node = Node {
        parent: NONE,
        level: NONE,
        plus: NONE,
        end: NONE,
        hash: NONE,
        children: 0,
    };

    fn is_empty(&self) -> bool {
        self.plus == NONE && self.end == NONE && self.hash == NONE && self.children == 0
    }
}

/// A stored filter with its payload.
#[derive(Debug)]
struct Terminal<P> {
    filter: Box<str>,
    payload: P,
}

/// Reused buffers of the match walk.
#[derive(Default)]
struct Scratch {
    /// Interned id per topic level (`ABSENT` for a level no filter has).
    ids: Vec<LevelId>,
    /// DFS stack of `(node, depth)`.
    stack: Vec<(u32, u32)>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// Topic filters → `P`, with MQTT matching. Not synchronised: see `shared.rs`.
#[derive(Debug)]
pub struct FilterTrie<P> {
    /// Exact (wildcard-free) filters: terminal indices hashed by filter text.
    exact: HashTable<u32>,
    /// Trie nodes; index 0 is the root.
    nodes: Vec<Node>,
    /// Head of the free node list (chained through `plus`).
    free_node: u32,
    /// Literal edges: child node indices hashed by `(parent, level)`.
    edges: HashTable<u32>,
    levels: LevelInterner,
    terminals: Vec<Option<Terminal<P>>>,
    free_terminals: Vec<u32>,
    /// Wildcard filters stored in the trie.
    wildcards: usize,
    hasher: RandomState,
}

impl<P> Default for FilterTrie<P> {
    fn default() -> Self {
        FilterTrie {
            exact: HashTable::new(),
            nodes: vec![Node::EMPTY],
            free_node: NONE,
            edges: HashTable::new(),
            levels: LevelInterner::default(),
            terminals: Vec::new(),
            free_terminals: Vec::new(),
            wildcards: 0,
            hasher: RandomState::default(),
        }
    }
}

#[inline]
fn edge_key(parent: u32, level: LevelId) -> u64 {
    (u64::from(parent) << 32) | u64::from(level)
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
        self.nodes.len() - self.free_node_count()
    }

    /// Distinct literal levels of the wildcard filters.
    pub fn level_count(&self) -> usize {
        self.levels.len()
    }

    fn free_node_count(&self) -> usize {
        let mut n = 0;
        let mut i = self.free_node;
        while i != NONE {
            n += 1;
            i = self.nodes[i as usize].plus;
        }
        n
    }

    #[inline]
    fn find_exact(&self, topic: &str) -> Option<u32> {
        let h = self.hasher.hash_one(topic);
        let terms = &self.terminals;
        self.exact
            .find(h, |&t| {
                terms[t as usize]
                    .as_ref()
                    .is_some_and(|x| &*x.filter == topic)
            })
            .copied()
    }

    #[inline]
    fn find_edge(&self, parent: u32, level: LevelId) -> Option<u32> {
        let h = self.hasher.hash_one(edge_key(parent, level));
        let nodes = &self.nodes;
        self.edges
            .find(h, |&c| {
                let n = &nodes[c as usize];
                n.parent == parent && n.level == level
            })
            .copied()
    }

    /// The node a wildcard filter ends at and whether it ends with `#`; `None` if some level
    /// of its path is missing.
    fn find_node(&self, filter: &str) -> Option<(u32, bool)> {
        let mut n = ROOT;
        for level in levels(filter) {
            n = match level {
                "#" => return Some((n, true)),
                "+" => Some(self.nodes[n as usize].plus).filter(|&p| p != NONE)?,
                lit => self.find_edge(n, self.levels.get(lit)?)?,
            };
        }
        Some((n, false))
    }

    /// The terminal index of `filter`, if stored.
    fn find_terminal(&self, filter: &str) -> Option<u32> {
        if !is_wildcard_text(filter) {
            return self.find_exact(filter);
        }
        let (n, hash) = self.find_node(filter)?;
        let node = &self.nodes[n as usize];
        Some(if hash { node.hash } else { node.end }).filter(|&t| t != NONE)
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
                self.terminals.push(term);
                (self.terminals.len() - 1) as u32
            }
        }
    }

    fn alloc_node(&mut self, parent: u32, level: LevelId) -> u32 {
        let node = Node {
            parent,
            level,
            ..Node::EMPTY
        };
        if self.free_node != NONE {
            let i = self.free_node;
            self.free_node = self.nodes[i as usize].plus;
            self.nodes[i as usize] = node;
            i
        } else {
            self.nodes.push(node);
            (self.nodes.len() - 1) as u32
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
        let (t, new) = if !filter.is_wildcard() {
            match self.find_exact(text) {
                Some(t) => (t, false),
                None => {
                    self.check_capacity()?;
                    let t = self.alloc_terminal(text, make());
                    let (terms, hasher) = (&self.terminals, &self.hasher);
                    let h = hasher.hash_one(text);
                    self.exact.insert_unique(h, t, |&x| {
                        terms[x as usize]
                            .as_ref()
                            .map_or(0, |x| hasher.hash_one(&*x.filter))
                    });
                    (t, true)
                }
            }
        } else {
            self.insert_wildcard(text, make)?
        };
        let term = self.terminals[t as usize].as_mut()?;
        Some((&mut term.payload, new))
    }

    fn check_capacity(&self) -> Option<()> {
        let room = |len: usize| len < (PLUS - 1) as usize;
        (room(self.terminals.len()) && room(self.nodes.len())).then_some(())
    }

    fn insert_wildcard(&mut self, filter: &str, make: impl FnOnce() -> P) -> Option<(u32, bool)> {
        self.check_capacity()?;
        let mut n = ROOT;
        let mut hash = false;
        for level in levels(filter) {
            if self.nodes.len() >= (PLUS - 1) as usize {
                return None;
            }
            n = match level {
                "#" => {
                    hash = true;
                    break;
                }
                "+" => match self.nodes[n as usize].plus {
                    NONE => {
                        let c = self.alloc_node(n, PLUS);
                        self.nodes[n as usize].plus = c;
                        c
                    }
                    p => p,
                },
                lit => match self.levels.get(lit).and_then(|id| self.find_edge(n, id)) {
                    Some(c) => c,
                    None => self.add_edge(n, lit)?,
                },
            };
        }
        let node = &self.nodes[n as usize];
        let slot = if hash { node.hash } else { node.end };
        if slot != NONE {
            return Some((slot, false));
        }
        let t = self.alloc_terminal(filter, make());
        let node = &mut self.nodes[n as usize];
        *(if hash { &mut node.hash } else { &mut node.end }) = t;
        self.wildcards += 1;
        Some((t, true))
    }

    fn add_edge(&mut self, parent: u32, lit: &str) -> Option<u32> {
        let id = self.levels.acquire(lit)?;
        let c = self.alloc_node(parent, id);
        self.nodes[parent as usize].children += 1;
        let (nodes, hasher) = (&self.nodes, &self.hasher);
        let h = hasher.hash_one(edge_key(parent, id));
        self.edges.insert_unique(h, c, |&x| {
            let n = &nodes[x as usize];
            hasher.hash_one(edge_key(n.parent, n.level))
        });
        Some(c)
    }

    /// Removes `filter`, giving its payload back.
    pub fn remove(&mut self, filter: &str) -> Option<P> {
        if !is_wildcard_text(filter) {
            let h = self.hasher.hash_one(filter);
            let terms = &self.terminals;
            let entry = self
                .exact
                .find_entry(h, |&t| {
                    terms[t as usize]
                        .as_ref()
                        .is_some_and(|x| &*x.filter == filter)
                })
                .ok()?;
            let (t, _) = entry.remove();
            return self.free_terminal(t);
        }
        let (n, hash) = self.find_node(filter)?;
        let node = &mut self.nodes[n as usize];
        let slot = if hash { &mut node.hash } else { &mut node.end };
        let t = std::mem::replace(slot, NONE);
        if t == NONE {
            return None;
        }
        self.wildcards -= 1;
        self.prune(n);
        self.free_terminal(t)
    }

    fn free_terminal(&mut self, t: u32) -> Option<P> {
        let term = self.terminals[t as usize].take()?;
        self.free_terminals.push(t);
        Some(term.payload)
    }

    /// Frees empty nodes from `n` up towards the root.
    fn prune(&mut self, mut n: u32) {
        while n != ROOT {
            let node = self.nodes[n as usize];
            if !node.is_empty() {
                return;
            }
            let p = node.parent;
            if node.level == PLUS {
                self.nodes[p as usize].plus = NONE;
            } else {
                let h = self.hasher.hash_one(edge_key(p, node.level));
                if let Ok(e) = self.edges.find_entry(h, |&c| c == n) {
                    e.remove();
                }
                self.nodes[p as usize].children -= 1;
                self.levels.release(node.level);
            }
            self.nodes[n as usize] = Node {
                plus: self.free_node,
                ..Node::EMPTY
            };
            self.free_node = n;
            n = p;
        }
    }

    /// Calls `f(filter, payload)` for every stored filter matching the topic name `topic`,
    /// each once. `topic` should be a valid [`TopicName`](super::topic::TopicName); any other
    /// string is matched literally (a `+` level in it is not a wildcard) and never panics.
    pub fn for_each_match<'s>(&'s self, topic: &str, mut f: impl FnMut(&'s str, &'s P)) {
        if let Some(t) = self.find_exact(topic) {
            if let Some(term) = &self.terminals[t as usize] {
                f(&term.filter, &term.payload);
            }
        }
        if self.wildcards == 0 {
            return;
        }
        SCRATCH.with(|s| match s.try_borrow_mut() {
            Ok(mut s) => self.walk(topic, &mut s, &mut f),
            // Re-entered from inside `f`: use fresh buffers.
            Err(_) => self.walk(topic, &mut Scratch::default(), &mut f),
        });
    }

    /// The wildcard part of the match: DFS over (node, topic depth).
    fn walk<'s>(&'s self, topic: &str, s: &mut Scratch, f: &mut impl FnMut(&'s str, &'s P)) {
        // Every level's id up front, in one loop: the lookups are independent, so the CPU
        // overlaps their cache misses instead of taking them one by one inside the walk.
        s.ids.clear();
        s.ids
            .extend(levels(topic).map(|l| self.levels.get(l).unwrap_or(ABSENT)));
        let depth = s.ids.len() as u32;
        let dollar = is_dollar_topic(topic);
        let terms = &self.terminals[..];
        s.stack.clear();
        s.stack.push((ROOT, 0));
        while let Some((n, d)) = s.stack.pop() {
            let node = &self.nodes[n as usize];
            // MQTT 5.0 section 4.7.2: a leading wildcard does not match a `$` topic.
            let wild_ok = !(dollar && n == ROOT);
            if node.hash != NONE && wild_ok {
                emit(terms, node.hash, f);
            }
            if d == depth {
                if node.end != NONE {
                    emit(terms, node.end, f);
                }
                continue;
            }
            if node.plus != NONE && wild_ok {
                s.stack.push((node.plus, d + 1));
            }
            if node.children > 0 {
                let di = d as usize;
                if s.ids[di] != ABSENT {
                    if let Some(c) = self.find_edge(n, s.ids[di]) {
                        s.stack.push((c, d + 1));
                    }
                }
            }
        }
    }

    /// Every stored filter with its payload, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &P)> + '_ {
        self.terminals
            .iter()
            .filter_map(|t| t.as_ref().map(|t| (&*t.filter, &t.payload)))
    }

    /// Keeps the filters for which `keep(filter, payload)` is true; the others are removed.
    /// `O(filters)`: for rare bulk changes such as a node going down.
    pub fn retain(&mut self, mut keep: impl FnMut(&str, &mut P) -> bool) {
        for i in 0..self.terminals.len() {
            let drop_it = match &mut self.terminals[i] {
                Some(t) => !keep(&t.filter, &mut t.payload),
                None => false,
            };
            if drop_it {
                let filter = self.terminals[i]
                    .as_ref()
                    .map(|t| t.filter.clone())
                    .unwrap_or_default();
                self.remove(&filter);
            }
        }
    }
}

/// Hands terminal `t` to the match callback.
#[inline]
fn emit<'s, P>(terms: &'s [Option<Terminal<P>>], t: u32, f: &mut impl FnMut(&'s str, &'s P)) {
    if let Some(term) = &terms[t as usize] {
        f(&term.filter, &term.payload);
    }
}

/// Whether a filter text contains a `+` or `#` level (the text is assumed validated).
fn is_wildcard_text(filter: &str) -> bool {
    levels(filter).any(|l| l == "+" || l == "#")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trie(filters: &[&str]) -> FilterTrie<usize> {
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
        assert!(t.edges.is_empty());
        // Freed nodes and terminals are reused.
        let before = t.nodes.len();
        let t2 = &mut t;
        for f in ["a/b/c/+", "q/+"] {
            t2.get_or_insert_with(&TopicFilter::new(f).unwrap(), || 9);
        }
        assert_eq!(t.nodes.len(), before);
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
