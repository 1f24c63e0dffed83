//! Batch matching for [`FilterTrie`]: several topics walked together, depth by depth.
//!
//! One topic's walk (`filter_walk.rs`) is a chain of dependent loads: the nodes of depth
//! `d + 1` are known only once the slots of depth `d` have arrived, so at 1 M filters a
//! publish costs about one memory latency per level however well each depth is prefetched
//! (BENCHMARKS.md, trie section). Independent topics have independent chains, so walking
//! [`BATCH`] of them in step lets their misses overlap: the exact-table slots, the interner
//! slots of every level, and at each depth the child probes of every topic of the batch are
//! hashed and prefetched together before any of them is compared.
//!
//! The results are those of [`FilterTrie::for_each_match`] on each topic alone, in the same
//! order: topic after topic (so a caller that queues deliveries per subscriber keeps the
//! publish order), and within a topic the exact hit first, then the wildcard filters in the
//! order the single walk finds them. The broker routes the PUBLISHes decoded from one read
//! this way (`Broker::route_publish`).

use super::filter_trie::{emit, FilterTrie};
use super::filter_walk::prefetch_term;
use super::open_table::prefetch;
use super::topic::{is_dollar_topic, levels};
use super::trie_slots::{edge_key, tag, Node, ABSENT, HAS_PLUS, NONE, PLUS, PLUS_HASH};
use std::cell::RefCell;
use std::hash::BuildHasher;

/// Topics walked together: enough to keep the core's outstanding misses busy (about two
/// probes per topic and depth), few enough that the first topic's prefetched lines are still
/// in L1 when it is compared.
pub const BATCH: usize = 8;

/// One child probe of a depth: `(topic, parent id, is the + child, probe hash)`.
type Probe = (u8, u32, bool, u64);

/// Reused buffers of the batch walk; per-topic groups are contiguous, topic after topic.
#[derive(Default)]
struct Scratch {
    /// Interner hash of every level of every topic.
    hashes: Vec<u64>,
    /// Nodes reached at the current depth.
    cur: Vec<Node>,
    /// Nodes reached at the next depth.
    next: Vec<Node>,
    /// The child probes of the current depth.
    probes: Vec<Probe>,
    /// `(topic, terminal)` matched, in walk order.
    found: Vec<(u8, u32)>,
    /// `found`'s terminals grouped by topic (each group in walk order).
    by_topic: Vec<u32>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

impl<P> FilterTrie<P> {
    /// Calls `f(i, filter, payload)` for every stored filter matching the `i`-th of `topics`:
    /// exactly what [`FilterTrie::for_each_match`] reports for each topic alone, in the same
    /// order, topic after topic. Topics are walked [`BATCH`] at a time, their memory loads
    /// overlapped (see the module doc); no allocation once warm.
    pub fn for_each_match_batch<'s, 't>(
        &'s self,
        topics: impl IntoIterator<Item = &'t str>,
        mut f: impl FnMut(usize, &'s str, &'s P),
    ) {
        let mut it = topics.into_iter();
        let mut base = 0;
        loop {
            let mut chunk = [""; BATCH];
            let mut n = 0;
            for (slot, t) in chunk.iter_mut().zip(it.by_ref()) {
                *slot = t;
                n += 1;
            }
            match n {
                0 => return,
                1 => self.for_each_match(chunk[0], |flt, p| f(base, flt, p)),
                _ => self.match_chunk(&chunk[..n], &mut |i, flt, p| f(base + i, flt, p)),
            }
            if n < BATCH {
                return;
            }
            base += n;
        }
    }

    /// Matches up to [`BATCH`] topics together.
    fn match_chunk<'s>(&'s self, topics: &[&str], f: &mut impl FnMut(usize, &'s str, &'s P)) {
        SCRATCH.with(|s| match s.try_borrow_mut() {
            Ok(mut s) => self.chunk_with(topics, &mut s, f),
            // Re-entered from inside `f`: use fresh buffers.
            Err(_) => self.chunk_with(topics, &mut Scratch::default(), f),
        });
    }

    fn chunk_with<'s>(
        &'s self,
        topics: &[&str],
        s: &mut Scratch,
        f: &mut impl FnMut(usize, &'s str, &'s P),
    ) {
        let n = topics.len().min(BATCH);
        let topics = &topics[..n];
        let terms = &self.terminals[..];
        // The topics' first bytes (a cold string costs a miss of its own before hashing).
        for b in topics.iter().filter_map(|t| t.as_bytes().first()) {
            prefetch(b);
        }
        let mut exact_h = [0u64; BATCH];
        for (h, t) in exact_h.iter_mut().zip(topics) {
            *h = self.hasher.hash_one(*t);
            self.exact.prefetch(*h);
        }
        if self.wildcards == 0 {
            for (i, t) in topics.iter().enumerate() {
                if let Some(j) = self.find_exact(t, exact_h[i]) {
                    emit(terms, self.exact.at(j).term, &mut |flt, p| f(i, flt, p));
                }
            }
            return;
        }
        // Every level of every topic: hashed, its interner slot prefetched.
        let mut first = [0usize; BATCH + 1];
        s.hashes.clear();
        for (i, t) in topics.iter().enumerate() {
            first[i] = s.hashes.len();
            for l in levels(t) {
                let h = self.levels.hash(l);
                self.levels.prefetch(h);
                s.hashes.push(h);
            }
        }
        first[n] = s.hashes.len();
        // The exact candidates' terminals start loading now; compared at the end.
        for &h in &exact_h[..n] {
            let want = tag(h);
            if let Some(j) = self.exact.find(h, |x| x.tag == want) {
                prefetch_term(terms, self.exact.at(j).term);
            }
        }
        let mut split: [Option<std::str::Split<'_, char>>; BATCH] =
            std::array::from_fn(|i| topics.get(i).map(|t| levels(t)));
        let dollar: [bool; BATCH] =
            std::array::from_fn(|i| topics.get(i).is_some_and(|t| is_dollar_topic(t)));
        // `cur[end[i - 1]..end[i]]` are topic `i`'s nodes at the current depth.
        let mut end = [0usize; BATCH];
        s.cur.clear();
        for e in &mut end[..n] {
            s.cur.push(self.root);
            *e = s.cur.len();
        }
        s.found.clear();
        for d in 0.. {
            s.probes.clear();
            let mut has_lit = [false; BATCH];
            let mut start = 0;
            for i in 0..n {
                let depth = first[i + 1] - first[i];
                // MQTT 5.0 section 4.7.2: a leading wildcard does not match a `$` topic.
                let wild_ok = !(dollar[i] && d == 0);
                for nd in &s.cur[start..end[i]] {
                    if nd.hash != NONE && wild_ok {
                        prefetch_term(terms, nd.hash);
                        s.found.push((i as u8, nd.hash));
                    }
                    if d == depth {
                        if nd.end != NONE {
                            prefetch_term(terms, nd.end);
                            s.found.push((i as u8, nd.end));
                        }
                        continue;
                    }
                    if nd.kids & !HAS_PLUS != 0 {
                        let h = self.probe_hash(nd.id, s.hashes[first[i] + d]);
                        s.probes.push((i as u8, nd.id, false, h));
                        has_lit[i] = true;
                    }
                    if nd.kids & HAS_PLUS != 0 && wild_ok {
                        let h = self.probe_hash(nd.id, PLUS_HASH);
                        s.probes.push((i as u8, nd.id, true, h));
                    }
                }
                start = end[i];
            }
            if s.probes.is_empty() {
                break;
            }
            for p in &s.probes {
                self.nodes.prefetch(p.3);
            }
            // Each topic's level id at this depth, needed only now to compare keys; every
            // topic still deeper than `d` steps its level iterator, probed or not.
            let mut lit = [ABSENT; BATCH];
            for i in 0..n {
                if d < first[i + 1] - first[i] {
                    let l = split[i].as_mut().and_then(Iterator::next);
                    if let (true, Some(l)) = (has_lit[i], l) {
                        let h = s.hashes[first[i] + d];
                        lit[i] = self.levels.get_hashed(l, h).unwrap_or(ABSENT);
                    }
                }
            }
            s.next.clear();
            let mut count = [0usize; BATCH];
            for &(i, parent, plus, h) in &s.probes {
                let level = if plus { PLUS } else { lit[i as usize] };
                if level == ABSENT {
                    continue;
                }
                let key = edge_key(parent, level);
                if let Some(j) = self.nodes.find(h, |x| x.key == key) {
                    s.next.push(*self.nodes.at(j));
                    count[i as usize] += 1;
                }
            }
            let mut total = 0;
            for (e, c) in end[..n].iter_mut().zip(count) {
                total += c;
                *e = total;
            }
            std::mem::swap(&mut s.cur, &mut s.next);
        }
        // Group the matched terminals by topic, keeping the walk order within a topic.
        let mut at = [0usize; BATCH + 1];
        for &(i, _) in &s.found {
            at[i as usize + 1] += 1;
        }
        for i in 0..n {
            at[i + 1] += at[i];
        }
        let from = at;
        s.by_topic.clear();
        s.by_topic.resize(s.found.len(), NONE);
        for &(i, t) in &s.found {
            s.by_topic[at[i as usize]] = t;
            at[i as usize] += 1;
        }
        for (i, t) in topics.iter().enumerate() {
            let mut g = |flt: &'s str, p: &'s P| f(i, flt, p);
            if let Some(j) = self.find_exact(t, exact_h[i]) {
                emit(terms, self.exact.at(j).term, &mut g);
            }
            for &term in &s.by_topic[from[i]..from[i + 1]] {
                emit(terms, term, &mut g);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::router::filter_trie::tests::trie;

    /// `(topic index, filter)` in callback order, batched and one by one.
    fn both(
        t: &FilterTrie<usize>,
        topics: &[&str],
    ) -> (Vec<(usize, String)>, Vec<(usize, String)>) {
        let mut batch = Vec::new();
        t.for_each_match_batch(topics.iter().copied(), |i, f, _| {
            batch.push((i, f.to_string()))
        });
        let mut single = Vec::new();
        for (i, topic) in topics.iter().enumerate() {
            t.for_each_match(topic, |f, _| single.push((i, f.to_string())));
        }
        (batch, single)
    }

    #[test]
    fn same_as_one_by_one_in_order() {
        let t = trie(&[
            "a/b", "a/+", "a/#", "#", "+/+", "+", "/+", "+/#", "$SYS/#", "a//b", "a/b/c/+",
        ]);
        let topics = [
            "a/b",
            "$SYS/x",
            "a",
            "a/",
            "/x",
            "a//b",
            "$SYS",
            "$other",
            "a/b/c/d",
            "q",
            "a/b",
            "",
            "/",
            "a/b/c",
            "x/y/z/w",
            "a/b/c/d/e",
            "b",
        ];
        let (batch, single) = both(&t, &topics);
        assert_eq!(batch, single);
        assert!(batch.contains(&(1, "$SYS/#".to_string())));
        assert!(!batch.iter().any(|(i, f)| *i == 7 && f == "#"));
        // Every batch length, including partial last chunks and single topics.
        for k in 0..topics.len() {
            let (batch, single) = both(&t, &topics[..k]);
            assert_eq!(batch, single, "{k} topics");
        }
    }

    #[test]
    fn exact_only_trie() {
        let t = trie(&["a/b", "c", "a/b/c"]);
        let (batch, single) = both(&t, &["c", "a/b", "x", "a/b/c", "a/b"]);
        assert_eq!(batch, single);
        assert_eq!(batch.len(), 4);
    }

    #[test]
    fn deep_topics_need_no_recursion() {
        let deep = vec!["+"; 20_000].join("/");
        let t = trie(&[&deep, "#", "x/#"]);
        let topic = vec!["x"; 20_000].join("/");
        let short = vec!["x"; 19_999].join("/");
        let (batch, single) = both(&t, &[&topic, "x", &short, &topic]);
        assert_eq!(batch, single);
        assert_eq!(batch.iter().filter(|(i, _)| *i == 0).count(), 3);
    }

    #[test]
    fn reentrant_batch() {
        let t = trie(&["a/+", "a/b"]);
        let mut inner = 0;
        t.for_each_match_batch(["a/b", "a/c"], |_, _, _| {
            t.for_each_match_batch(["a/b", "a/b", "z"], |_, _, _| inner += 1)
        });
        assert_eq!(inner, 3 * 4);
    }
}
