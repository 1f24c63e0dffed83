//! The match walk of [`FilterTrie`]: the exact lookup and the wildcard trie, level by level.
//!
//! At 1 M filters a publish is bound by cache misses (BENCHMARKS.md, trie section), so the
//! walk is laid out to start every load it can know before it needs the answer:
//! - the exact table's slot and the interner slot of every topic level are prefetched first,
//!   then the exact candidate's terminal, and the text comparison that confirms it is left to
//!   the end, after the trie walk has overlapped that miss;
//! - the trie is walked breadth-first: the probes of all children of one depth (the literal
//!   child and the `+` child of every node reached) are hashed and prefetched together, then
//!   compared, so a level costs about one memory latency however many nodes it has. A child
//!   is probed for by its level's text hash (`FilterTrie::probe_hash`), so these loads start
//!   before the interner lookup of that level (a miss of its own) has given the level id;
//! - matched terminals are prefetched when found and handed to the callback only after the
//!   walk, when their loads have had the whole walk to complete.
//!
//! No recursion (a 65535-byte topic may have 32 k levels); the buffers are thread-local and
//! reused, so a match allocates nothing once warm.

use super::filter_trie::{emit, FilterTrie, Terminal};
use super::open_table::prefetch;
use super::topic::{is_dollar_topic, levels};
use super::trie_slots::{edge_key, tag, Node, ABSENT, HAS_PLUS, NONE, PLUS, PLUS_HASH};
use std::cell::RefCell;

/// Reused buffers of the match walk.
#[derive(Default)]
struct Scratch {
    /// Interner hash per topic level.
    hashes: Vec<u64>,
    /// Nodes reached at the current depth.
    cur: Vec<Node>,
    /// Nodes reached at the next depth.
    next: Vec<Node>,
    /// `(parent id, is the + child, hash)` of the child probes of the current depth.
    probes: Vec<(u32, bool, u64)>,
    /// Terminals matched, prefetched when found and handed to the callback at the end.
    found: Vec<u32>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// Prefetches terminal `t` (if any).
#[inline]
pub(super) fn prefetch_term<P>(terms: &[Option<Terminal<P>>], t: u32) {
    if let Some(x) = terms.get(t as usize) {
        prefetch(x);
    }
}

impl<P> FilterTrie<P> {
    /// Exact lookup and wildcard walk for `topic`, whose hash is `exact_hash`.
    pub(super) fn walk<'s>(
        &'s self,
        topic: &str,
        exact_hash: u64,
        f: &mut impl FnMut(&'s str, &'s P),
    ) {
        SCRATCH.with(|s| match s.try_borrow_mut() {
            Ok(mut s) => self.walk_with(topic, exact_hash, &mut s, f),
            // Re-entered from inside `f`: use fresh buffers.
            Err(_) => self.walk_with(topic, exact_hash, &mut Scratch::default(), f),
        });
    }

    fn walk_with<'s>(
        &'s self,
        topic: &str,
        exact_hash: u64,
        s: &mut Scratch,
        f: &mut impl FnMut(&'s str, &'s P),
    ) {
        let terms = &self.terminals[..];
        self.exact.prefetch(exact_hash);
        s.hashes.clear();
        for l in levels(topic) {
            let h = self.levels.hash(l);
            self.levels.prefetch(h);
            s.hashes.push(h);
        }
        // The exact candidate's terminal starts loading now; its text is compared at the end.
        let want = tag(exact_hash);
        if let Some(i) = self.exact.find(exact_hash, |x| x.tag == want) {
            prefetch_term(terms, self.exact.at(i).term);
        }
        let depth = s.hashes.len();
        let mut topic_levels = levels(topic);
        let dollar = is_dollar_topic(topic);
        s.found.clear();
        s.cur.clear();
        s.cur.push(self.root);
        for d in 0..=depth {
            // MQTT 5.0 section 4.7.2: a leading wildcard does not match a `$` topic.
            let wild_ok = !(dollar && d == 0);
            s.probes.clear();
            for n in &s.cur {
                if n.hash != NONE && wild_ok {
                    prefetch_term(terms, n.hash);
                    s.found.push(n.hash);
                }
                if d == depth {
                    if n.end != NONE {
                        prefetch_term(terms, n.end);
                        s.found.push(n.end);
                    }
                    continue;
                }
                if n.kids & !HAS_PLUS != 0 {
                    s.probes
                        .push((n.id, false, self.probe_hash(n.id, s.hashes[d])));
                }
                if n.kids & HAS_PLUS != 0 && wild_ok {
                    s.probes
                        .push((n.id, true, self.probe_hash(n.id, PLUS_HASH)));
                }
            }
            if s.probes.is_empty() {
                break;
            }
            for &(_, _, h) in &s.probes {
                self.nodes.prefetch(h);
            }
            // The level's id, needed only now to compare keys.
            let lit = match topic_levels.next() {
                Some(l) => self.levels.get_hashed(l, s.hashes[d]).unwrap_or(ABSENT),
                None => ABSENT,
            };
            s.next.clear();
            for &(parent, plus, h) in &s.probes {
                let level = if plus { PLUS } else { lit };
                if level == ABSENT {
                    continue;
                }
                let key = edge_key(parent, level);
                if let Some(i) = self.nodes.find(h, |n| n.key == key) {
                    s.next.push(*self.nodes.at(i));
                }
            }
            std::mem::swap(&mut s.cur, &mut s.next);
        }
        if let Some(i) = self.find_exact(topic, exact_hash) {
            emit(terms, self.exact.at(i).term, f);
        }
        for &t in &s.found {
            emit(terms, t, f);
        }
    }
}
