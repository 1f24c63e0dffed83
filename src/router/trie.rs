//! The topic trie: topic filter → reference-counted set of values (node ids for the cluster
//! route table, subscriber ids for local subscriptions), matched with MQTT semantics.
//!
//! Reference counts follow `pg` (OTP `lib/kernel/src/pg.erl`: a process may join a group
//! several times and must leave as often) and EMQX 4's trie (`emqx_trie:insert_key/1` counts
//! references): inserting `(F, v)` twice needs two removals before `v` leaves `F`, and `F`
//! leaves the trie with its last value.

use super::filter_trie::FilterTrie;
use super::topic::TopicFilter;
use thiserror::Error;

/// The trie's `u32` index space is exhausted (about 4 G nodes, filters or distinct levels).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("topic trie is full")]
pub struct TrieFull;

/// The values of one filter, each with its reference count. Most filters have one value (one
/// node, one subscriber), so that case is stored inline; a filter's set is expected to stay
/// small (a linear scan finds a value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValueSet<V> {
    /// A single value and its count.
    One(V, u32),
    /// Several values with their counts (never empty, never a single value for long).
    Many(Box<Vec<(V, u32)>>),
}

impl<V: PartialEq> ValueSet<V> {
    fn new(v: V) -> Self {
        ValueSet::One(v, 1)
    }

    /// Adds one reference to `v`; `true` if `v` was not in the set.
    fn add(&mut self, v: V) -> bool {
        match self {
            ValueSet::One(x, n) if *x == v => {
                *n += 1;
                false
            }
            ValueSet::One(..) => {
                let ValueSet::One(x, n) = std::mem::replace(self, ValueSet::Many(Box::default()))
                else {
                    return false;
                };
                *self = ValueSet::Many(Box::new(vec![(x, n), (v, 1)]));
                true
            }
            ValueSet::Many(items) => match items.iter_mut().find(|(x, _)| *x == v) {
                Some((_, n)) => {
                    *n += 1;
                    false
                }
                None => {
                    items.push((v, 1));
                    true
                }
            },
        }
    }

    /// Drops one reference to `v`; `Some(true)` when the set became empty, `None` when `v`
    /// was not in it.
    fn remove(&mut self, v: &V) -> Option<bool> {
        match self {
            ValueSet::One(x, n) if x == v => {
                *n -= 1;
                Some(*n == 0)
            }
            ValueSet::One(..) => None,
            ValueSet::Many(items) => {
                let i = items.iter().position(|(x, _)| x == v)?;
                items[i].1 -= 1;
                if items[i].1 == 0 {
                    items.swap_remove(i);
                }
                if items.len() == 1 {
                    if let Some((x, n)) = items.pop() {
                        *self = ValueSet::One(x, n);
                    }
                }
                Some(false)
            }
        }
    }

    /// Drops every reference to `v`; `true` when the set is now empty.
    fn remove_all(&mut self, v: &V) -> bool {
        match self {
            ValueSet::One(x, _) => x == v,
            ValueSet::Many(items) => {
                items.retain(|(x, _)| x != v);
                if items.len() == 1 {
                    if let Some((x, n)) = items.pop() {
                        *self = ValueSet::One(x, n);
                    }
                }
                false
            }
        }
    }

    /// How many references `v` has in the set (0 if absent).
    pub fn count(&self, v: &V) -> u32 {
        self.iter_counts()
            .find(|(x, _)| *x == v)
            .map_or(0, |(_, n)| n)
    }

    /// Whether `v` is in the set.
    pub fn contains(&self, v: &V) -> bool {
        self.count(v) > 0
    }
}

impl<V> ValueSet<V> {
    /// The distinct values.
    pub fn iter(&self) -> impl Iterator<Item = &V> + '_ {
        self.iter_counts().map(|(v, _)| v)
    }

    /// The distinct values with their reference counts.
    pub fn iter_counts(&self) -> impl Iterator<Item = (&V, u32)> + '_ {
        let (one, many) = match self {
            ValueSet::One(v, n) => (Some((v, *n)), None),
            ValueSet::Many(items) => (None, Some(items.iter().map(|(v, n)| (v, *n)))),
        };
        one.into_iter().chain(many.into_iter().flatten())
    }

    /// Number of distinct values.
    pub fn len(&self) -> usize {
        match self {
            ValueSet::One(..) => 1,
            ValueSet::Many(items) => items.len(),
        }
    }

    /// Always false: an empty set is removed from the trie with its filter.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Topic filter → [`ValueSet`] with MQTT matching (see `filter_trie.rs` for the layout).
#[derive(Debug)]
pub struct TopicTrie<V> {
    inner: FilterTrie<ValueSet<V>>,
}

impl<V> Default for TopicTrie<V> {
    fn default() -> Self {
        TopicTrie {
            inner: FilterTrie::new(),
        }
    }
}

impl<V: PartialEq> TopicTrie<V> {
    /// An empty trie.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one reference of `v` to `filter`; `Ok(true)` when the filter is new to the trie.
    pub fn insert(&mut self, filter: &TopicFilter, v: V) -> Result<bool, TrieFull> {
        if let Some(set) = self.inner.get_mut(filter.as_str()) {
            set.add(v);
            return Ok(false);
        }
        let (_, new) = self
            .inner
            .get_or_insert_with(filter, || ValueSet::new(v))
            .ok_or(TrieFull)?;
        Ok(new)
    }

    /// Drops one reference of `v` from `filter`; `true` when the filter left the trie (its
    /// last value went). Removing what is not there changes nothing and gives `false`.
    pub fn remove(&mut self, filter: &str, v: &V) -> bool {
        let Some(set) = self.inner.get_mut(filter) else {
            return false;
        };
        if set.remove(v) == Some(true) {
            self.inner.remove(filter);
            return true;
        }
        false
    }

    /// Calls `f(filter, values)` for each filter matching the topic name `topic`, each once.
    pub fn matches<'s>(&'s self, topic: &str, f: impl FnMut(&'s str, &'s ValueSet<V>)) {
        self.inner.for_each_match(topic, f)
    }

    /// Calls `f(i, filter, values)` for each filter matching the `i`-th of `topics`: what
    /// [`TopicTrie::matches`] gives for each topic alone, in the same order, topic after
    /// topic, but with the topics' memory loads overlapped (`filter_batch.rs`).
    pub fn matches_batch<'s, 't>(
        &'s self,
        topics: impl IntoIterator<Item = &'t str>,
        f: impl FnMut(usize, &'s str, &'s ValueSet<V>),
    ) {
        self.inner.for_each_match_batch(topics, f)
    }

    /// The matching filters with their values, collected.
    pub fn match_vec(&self, topic: &str) -> Vec<(&str, &ValueSet<V>)> {
        let mut out = Vec::new();
        self.matches(topic, |f, v| out.push((f, v)));
        out
    }

    /// The values of `filter`, if stored.
    pub fn get(&self, filter: &str) -> Option<&ValueSet<V>> {
        self.inner.get(filter)
    }

    /// Number of filters.
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    /// Whether the trie holds no filter.
    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }

    /// Every filter with its values, in no particular order.
    pub fn filters(&self) -> impl Iterator<Item = (&str, &ValueSet<V>)> + '_ {
        self.inner.iter()
    }

    /// Removes `v` (all its references) from every filter; returns the filters that left the
    /// trie. `O(filters)`: for a node going down or a subscriber going away in bulk.
    pub fn remove_value_everywhere(&mut self, v: &V) -> Vec<Box<str>> {
        let mut gone = Vec::new();
        self.inner.retain(|f, set| {
            let emptied = set.remove_all(v);
            if emptied {
                gone.push(f.into());
            }
            !emptied
        });
        gone
    }

    /// Trie nodes in use (root included): for memory reports.
    pub fn node_count(&self) -> usize {
        self.inner.node_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(s: &str) -> TopicFilter {
        TopicFilter::new(s).unwrap()
    }

    #[test]
    fn refcounts() {
        let mut t = TopicTrie::new();
        assert_eq!(t.insert(&f("a/+"), 1), Ok(true));
        assert_eq!(t.insert(&f("a/+"), 1), Ok(false));
        assert_eq!(t.insert(&f("a/+"), 2), Ok(false));
        assert_eq!(
            t.get("a/+").map(|s| (s.count(&1), s.count(&2))),
            Some((2, 1))
        );
        assert!(!t.remove("a/+", &3));
        assert!(!t.remove("a/+", &1));
        assert!(!t.remove("a/+", &2));
        assert_eq!(t.get("a/+"), Some(&ValueSet::One(1, 1)));
        assert!(t.remove("a/+", &1));
        assert!(t.is_empty());
        assert!(!t.remove("a/+", &1));
    }

    #[test]
    fn matches_with_values() {
        let mut t = TopicTrie::new();
        for (flt, v) in [("a/b", 1), ("a/+", 2), ("a/+", 3), ("#", 1), ("$SYS/#", 4)] {
            t.insert(&f(flt), v).unwrap();
        }
        let mut m: Vec<(String, Vec<i32>)> = t
            .match_vec("a/b")
            .into_iter()
            .map(|(flt, s)| (flt.to_string(), s.iter().copied().collect()))
            .collect();
        m.sort();
        assert_eq!(
            m,
            [
                ("#".to_string(), vec![1]),
                ("a/+".to_string(), vec![2, 3]),
                ("a/b".to_string(), vec![1])
            ]
        );
        assert_eq!(t.match_vec("$SYS/x").len(), 1);
        assert_eq!(t.filters().count(), 4);
    }

    #[test]
    fn remove_value_everywhere() {
        let mut t = TopicTrie::new();
        t.insert(&f("a"), 1).unwrap();
        t.insert(&f("a"), 1).unwrap();
        t.insert(&f("b/+"), 1).unwrap();
        t.insert(&f("b/+"), 2).unwrap();
        t.insert(&f("c/#"), 2).unwrap();
        let mut gone = t.remove_value_everywhere(&1);
        gone.sort();
        assert_eq!(gone, vec![Box::from("a")]);
        assert_eq!(t.len(), 2);
        assert_eq!(t.get("b/+"), Some(&ValueSet::One(2, 1)));
    }
}
