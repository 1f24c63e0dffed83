//! Property tests: the topic trie against a brute-force matcher written from MQTT 5.0 section
//! 4.7, insert/remove sequences against a reference-count model, and the batch match against
//! the one-topic match.

use beamq::router::{
    RouteTable, ShareStrategy, SubOptions, Subscription, SubscriptionTable, TopicFilter, TopicTrie,
};
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::collections::{BTreeMap, BTreeSet};

/// Brute force, straight from the spec: compare level lists; `#` takes the rest (the parent
/// level included), `+` one level (an empty one too); a leading wildcard never matches a topic
/// starting with `$`.
fn spec_match(filter: &str, topic: &str) -> bool {
    let f: Vec<&str> = filter.split('/').collect();
    let t: Vec<&str> = topic.split('/').collect();
    if topic.starts_with('$') && (f[0] == "+" || f[0] == "#") {
        return false;
    }
    fn go(f: &[&str], t: &[&str]) -> bool {
        match (f.first(), t.first()) {
            (Some(&"#"), _) => true,
            (None, None) => true,
            (Some(&"+"), Some(_)) => go(&f[1..], &t[1..]),
            (Some(a), Some(b)) if a == b => go(&f[1..], &t[1..]),
            _ => false,
        }
    }
    go(&f, &t)
}

fn literal() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("a".to_string()),
        Just("b".to_string()),
        Just(String::new()),
        Just("$s".to_string()),
        Just("ab".to_string()),
    ]
}

fn topic() -> impl Strategy<Value = String> {
    prop::collection::vec(literal(), 1..6).prop_map(|v| v.join("/"))
}

fn filter() -> impl Strategy<Value = String> {
    let level = prop_oneof![3 => literal(), 1 => Just("+".to_string())];
    (prop::collection::vec(level, 0..5), any::<bool>()).prop_filter_map(
        "filter is non-empty",
        |(mut levels, hash)| {
            if hash {
                levels.push("#".to_string());
            }
            let s = levels.join("/");
            (!levels.is_empty() && !s.is_empty()).then_some(s)
        },
    )
}

fn trie_matches(t: &TopicTrie<u8>, topic: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    t.matches(topic, |f, _| {
        assert!(out.insert(f.to_string()), "{f} reported twice for {topic}");
    });
    out
}

/// `(topic index, filter)` in callback order: from one batch call, and from one `matches`
/// call per topic.
type Reported = Vec<(usize, String)>;

fn batch_and_single(t: &TopicTrie<u8>, topics: &[String]) -> (Reported, Reported) {
    let mut batch = Vec::new();
    t.matches_batch(topics.iter().map(String::as_str), |i, f, _| {
        batch.push((i, f.to_string()))
    });
    let mut single = Vec::new();
    for (i, topic) in topics.iter().enumerate() {
        t.matches(topic, |f, _| single.push((i, f.to_string())));
    }
    (batch, single)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// The batch walk reports exactly what the one-topic walk does, in the same order, and
    /// that agrees with the spec; batches of 0 to 40 topics (several chunks, a partial last
    /// one), with `$` topics, empty levels, shared prefixes and repeated topics.
    #[test]
    fn batch_agrees_with_single_and_brute_force(
        filters in prop::collection::vec(filter(), 0..40),
        topics in prop::collection::vec(topic(), 0..40),
    ) {
        let mut t = TopicTrie::new();
        for f in &filters {
            t.insert(&TopicFilter::new(f).unwrap(), 0u8).unwrap();
        }
        let (batch, single) = batch_and_single(&t, &topics);
        prop_assert_eq!(&batch, &single);
        let distinct: BTreeSet<&String> = filters.iter().collect();
        for (i, topic) in topics.iter().enumerate() {
            let got: BTreeSet<String> =
                batch.iter().filter(|(j, _)| *j == i).map(|(_, f)| f.clone()).collect();
            let want: BTreeSet<String> = distinct
                .iter()
                .filter(|f| spec_match(f, topic))
                .map(|f| f.to_string())
                .collect();
            prop_assert_eq!(got, want, "topic {}", topic);
        }
    }

    /// The batch dispatch of the subscription table gives the deliveries of one `dispatch`
    /// per publish, in the same order, share-group picks included (same seeded generator).
    #[test]
    fn dispatch_batch_agrees_with_dispatch(
        subs in prop::collection::vec((filter(), 0u8..4, prop::option::of(0u8..2)), 0..30),
        publishes in prop::collection::vec((topic(), 0u8..3), 0..30),
        strategy in prop_oneof![
            Just(ShareStrategy::Random),
            Just(ShareStrategy::Hash),
            Just(ShareStrategy::RoundRobin),
        ],
    ) {
        let table = |subs: &[(String, u8, Option<u8>)]| {
            let mut t = SubscriptionTable::new(strategy);
            for (f, who, group) in subs {
                let text = match group {
                    Some(g) => format!("$share/g{g}/{f}"),
                    None => f.clone(),
                };
                t.subscribe(&Subscription::parse(&text).unwrap(), *who, SubOptions::default())
                    .unwrap();
            }
            t
        };
        let publishes: Vec<(String, String)> =
            publishes.into_iter().map(|(t, p)| (t, format!("client{p}"))).collect();
        let (one, batched) = (table(&subs), table(&subs));
        let mut rng = StdRng::seed_from_u64(3);
        let mut want = Vec::new();
        for (i, (topic, publisher)) in publishes.iter().enumerate() {
            one.dispatch(topic, publisher, &mut rng, |d| {
                want.push((i, *d.subscriber, d.filter.to_string(), d.group.map(str::to_string)))
            });
        }
        let mut rng = StdRng::seed_from_u64(3);
        let mut got = Vec::new();
        batched.dispatch_batch(
            &publishes,
            |(t, p)| (t.as_str(), p.as_str()),
            &mut rng,
            |i, d| got.push((i, *d.subscriber, d.filter.to_string(), d.group.map(str::to_string))),
        );
        prop_assert_eq!(got, want);
    }

    #[test]
    fn trie_agrees_with_brute_force(
        filters in prop::collection::vec(filter(), 0..40),
        topics in prop::collection::vec(topic(), 1..20),
    ) {
        let mut t = TopicTrie::new();
        for f in &filters {
            t.insert(&TopicFilter::new(f).unwrap(), 0u8).unwrap();
        }
        let distinct: BTreeSet<&String> = filters.iter().collect();
        prop_assert_eq!(t.len(), distinct.len());
        for topic in &topics {
            let want: BTreeSet<String> = distinct
                .iter()
                .filter(|f| spec_match(f, topic))
                .map(|f| f.to_string())
                .collect();
            prop_assert_eq!(trie_matches(&t, topic), want, "topic {}", topic);
            // The filter's own brute-force check agrees too.
            for f in &distinct {
                prop_assert_eq!(
                    TopicFilter::new(f).unwrap().matches(topic),
                    spec_match(f, topic)
                );
            }
        }
    }

    #[test]
    fn insert_remove_keeps_counts(
        ops in prop::collection::vec((any::<bool>(), filter(), 0u8..3), 1..120),
        topics in prop::collection::vec(topic(), 1..10),
    ) {
        let mut t = TopicTrie::new();
        let mut model: BTreeMap<String, BTreeMap<u8, u32>> = BTreeMap::new();
        for (insert, f, v) in &ops {
            if *insert {
                let new = !model.contains_key(f);
                *model.entry(f.clone()).or_default().entry(*v).or_default() += 1;
                prop_assert_eq!(t.insert(&TopicFilter::new(f).unwrap(), *v), Ok(new));
            } else {
                let mut gone = false;
                if let Some(vals) = model.get_mut(f) {
                    if let Some(n) = vals.get_mut(v) {
                        *n -= 1;
                        if *n == 0 {
                            vals.remove(v);
                        }
                    }
                    if vals.is_empty() {
                        model.remove(f);
                        gone = true;
                    }
                }
                prop_assert_eq!(t.remove(f, v), gone);
            }
            prop_assert_eq!(t.len(), model.len());
        }
        let stored: BTreeMap<String, BTreeMap<u8, u32>> = t
            .filters()
            .map(|(f, s)| (f.to_string(), s.iter_counts().map(|(v, n)| (*v, n)).collect()))
            .collect();
        prop_assert_eq!(&stored, &model);
        for topic in &topics {
            let want: BTreeSet<String> =
                model.keys().filter(|f| spec_match(f, topic)).cloned().collect();
            prop_assert_eq!(trie_matches(&t, topic), want);
        }
        // Removing everything leaves an empty trie with only the root node.
        for (f, vals) in &model {
            for (v, n) in vals {
                for _ in 0..*n {
                    t.remove(f, v);
                }
            }
        }
        prop_assert!(t.is_empty());
        prop_assert_eq!(t.node_count(), 1);
    }

    #[test]
    fn one_destination_per_node(
        routes in prop::collection::vec((filter(), 0u8..4), 0..40),
        topics in prop::collection::vec(topic(), 1..10),
    ) {
        let mut rt = RouteTable::new();
        for (f, node) in &routes {
            rt.add_route(&TopicFilter::new(f).unwrap(), *node).unwrap();
        }
        for topic in &topics {
            let mut got = rt.destinations(topic);
            let n = got.len();
            got.sort();
            got.dedup();
            prop_assert_eq!(n, got.len(), "a node listed twice for {}", topic);
            let want: BTreeSet<u8> = routes
                .iter()
                .filter(|(f, _)| spec_match(f, topic))
                .map(|(_, node)| *node)
                .collect();
            prop_assert_eq!(got, want.into_iter().collect::<Vec<_>>());
        }
    }

}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Hundreds of filters over a wider vocabulary (long levels and texts over 30 bytes
    /// included): the trie's open-addressing tables grow several times, and removing half of
    /// the filters shifts entries back inside them; matching must still agree with the spec.
    #[test]
    fn large_tables_grow_and_shrink(
        filters in prop::collection::btree_set(wide_filter(), 100..600),
        topics in prop::collection::vec(wide_topic(), 1..30),
    ) {
        let mut t = TopicTrie::new();
        for f in &filters {
            prop_assert_eq!(t.insert(&TopicFilter::new(f).unwrap(), 0u8), Ok(true));
        }
        let all: Vec<&String> = filters.iter().collect();
        let gone: Vec<&String> = all.iter().copied().step_by(2).collect();
        let kept: Vec<&String> = all.iter().copied().skip(1).step_by(2).collect();
        for f in &gone {
            prop_assert!(t.remove(f, &0));
        }
        prop_assert_eq!(t.len(), kept.len());
        for topic in &topics {
            let want: BTreeSet<String> =
                kept.iter().filter(|f| spec_match(f, topic)).map(|f| f.to_string()).collect();
            prop_assert_eq!(trie_matches(&t, topic), want, "topic {}", topic);
        }
        let (batch, single) = batch_and_single(&t, &topics);
        prop_assert_eq!(batch, single);
        for f in &kept {
            prop_assert!(t.remove(f, &0));
        }
        prop_assert!(t.is_empty());
        prop_assert_eq!(t.node_count(), 1);
    }
}

/// A level from a wider vocabulary: 40 short ones, some over 11 bytes (the interner keeps those
/// out of its slots), empty ones and `$` ones.
fn wide_literal() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => (0u8..40).prop_map(|i| format!("l{i}")),
        1 => (0u8..4).prop_map(|i| format!("a-long-level-name-{i}")),
        1 => Just(String::new()),
        1 => Just("$w".to_string()),
    ]
}

fn wide_topic() -> impl Strategy<Value = String> {
    prop::collection::vec(wide_literal(), 1..6).prop_map(|v| v.join("/"))
}

fn wide_filter() -> impl Strategy<Value = String> {
    let level = prop_oneof![4 => wide_literal(), 1 => Just("+".to_string())];
    (prop::collection::vec(level, 1..6), any::<bool>()).prop_filter_map(
        "filter is non-empty",
        |(mut levels, hash)| {
            if hash {
                levels.push("#".to_string());
            }
            Some(levels.join("/")).filter(|s| !s.is_empty())
        },
    )
}
