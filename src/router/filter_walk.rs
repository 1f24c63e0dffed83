//! The match walk of [`FilterTrie`]: the exact lookup and the wildcard trie, level by level.
//!
//! At 1 M filters a publish is bound by cache misses (BENCHMARKS.md, trie section), so the
//! walk is laid out to start every load it can know before it needs the answer:
//! - the exact table's slot and the interner slot of every topic level are prefetched first,
//!   then the exact candidate's terminal, and the text comparison that confirms it is left to
//!   the end, after the trie walk has overlapped that miss;
//! - the trie is walked breadth-first: the probes of all children of one depth (the literal
//!   child and the `+` child of every node reached) are hashed and prefetched together, then
//!   compared, so a level costs about one memory latency however many nodes it has;
//! - matched terminals are prefetched when found and handed to the callback only after the
//!   walk, when their loads have had the whole walk to complete.
//!
//! No recursion (a 65535-byte topic may have 32 k levels); the buffers are thread-local and
//! reused, so a match allocates nothing once warm.

use super::filter_trie::{
    edge_key, emit, tag, FilterTrie, Node, Terminal, ABSENT, HAS_PLUS, NONE, PLUS,
};
use super::levels::LevelId;
use super::open_table::prefetch;
use super::topic::{is_dollar_topic, levels};
use std::cell::RefCell;

/// Reused buffers of the match walk.
#[derive(Default)]
struct Scratch {
    /// Interner hash per topic level.
    hashes: Vec<u64>,
    /// Interned id per topic level (`ABSENT` for a level no filter has).
    ids: Vec<LevelId>,
    /// Nodes reached at the current depth.
    cur: Vec<Node>,
    /// Nodes reached at the next depth.
    next: Vec<Node>,
    /// `(key, hash)` of the child probes of the current depth.
    probes: Vec<(u64, u64)>,
    /// Terminals matched, prefetched when found and handed to the callback at the end.
    found: Vec<u32>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// Prefetches terminal `t` (if any).
#[inline]
fn prefetch_term<P>(terms: &[Option<Terminal<P>>], t: u32) {
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
        s.ids.clear();
        s.ids.extend(
            levels(topic)
                .zip(&s.hashes)
                .map(|(l, &h)| self.levels.get_hashed(l, h).unwrap_or(ABSENT)),
        );
        let depth = s.ids.len();
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
                let lit = s.ids[d];
                if lit != ABSENT && n.kids & !HAS_PLUS != 0 {
                    let key = edge_key(n.id, lit);
                    s.probes.push((key, self.key_hash(key)));
                }
                if n.kids & HAS_PLUS != 0 && wild_ok {
                    let key = edge_key(n.id, PLUS);
                    s.probes.push((key, self.key_hash(key)));
                }
            }
            if s.probes.is_empty() {
                break;
            }
            for &(_, h) in &s.probes {
                self.nodes.prefetch(h);
            }
            s.next.clear();
            for &(key, h) in &s.probes {
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
