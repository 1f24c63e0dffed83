//! The local subscription table: topic filter → this node's subscribers, each with its
//! subscription options, plus the filter's share groups.
//!
//! EMQX 4 keeps this in three ETS tables (`emqx_broker`: `?SUBSCRIBER` filter → pids,
//! `?SUBOPTION` {pid, filter} → options; `emqx_shared_sub`: {group, filter} → members). Here
//! one trie entry per filter holds all three, so a publish finds every subscriber and its
//! options in one walk. A filter's first subscription (shared or not) is when the node joins
//! the filter's route group; its last unsubscription is when it leaves (DESIGN.md section 5).

use super::filter_trie::FilterTrie;
use super::share::{ShareGroup, ShareStrategy};
use super::topic::Subscription;
use super::trie::TrieFull;
use rand::Rng;
use std::collections::HashMap;
use std::hash::Hash;

/// Subscription options of MQTT 5.0 section 3.8.3.1 plus the subscription identifier
/// (section 3.8.2.1.2); an MQTT 3.1.1 subscription uses only `qos`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SubOptions {
    /// Maximum QoS, 0..=2 (checked by the codec).
    pub qos: u8,
    /// Do not send the subscriber its own publishes.
    pub no_local: bool,
    /// Keep the RETAIN flag as published instead of clearing it.
    pub retain_as_published: bool,
    /// 0: send retained on subscribe, 1: only if new, 2: never.
    pub retain_handling: u8,
    /// The subscription identifier to attach to deliveries.
    pub subscription_id: Option<u32>,
}

/// One delivery a publish produces: who gets it and under which subscription.
#[derive(Debug, Clone, Copy)]
pub struct Delivery<'a, S> {
    /// The subscriber.
    pub subscriber: &'a S,
    /// The options of the matching subscription.
    pub options: &'a SubOptions,
    /// The matching filter (without any share prefix).
    pub filter: &'a str,
    /// The share group when the subscription is shared.
    pub group: Option<&'a str>,
}

/// What a subscribe changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subscribed {
    /// The filter had no subscription on this node: join its route group.
    pub new_filter: bool,
    /// The subscriber already had this subscription; its options were replaced
    /// (MQTT 5.0 section 3.8.4).
    pub replaced: bool,
}

/// What an unsubscribe changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unsubscribed {
    /// The subscription existed (MQTT 5.0 UNSUBACK reason 0x00 rather than 0x11).
    pub found: bool,
    /// The filter has no subscription left on this node: leave its route group.
    pub filter_gone: bool,
}

/// Direct subscriptions past this many get a hash index (subscribe/unsubscribe stay `O(1)`
/// with 100 k subscribers on one filter).
const INDEX_FROM: usize = 32;

/// Everything subscribed to one filter on this node.
#[derive(Debug)]
struct FilterSubs<S> {
    direct: Vec<(S, SubOptions)>,
    /// Subscriber → position in `direct`, once `direct` is large. Boxed: one pointer in the
    /// common small case instead of a 48-byte map in every filter's entry.
    #[allow(clippy::box_collection)]
    index: Option<Box<HashMap<S, usize>>>,
    groups: Vec<ShareGroup<S>>,
}

impl<S: Clone + Eq + Hash> FilterSubs<S> {
    fn new() -> Self {
        FilterSubs {
            direct: Vec::new(),
            index: None,
            groups: Vec::new(),
        }
    }

    fn is_empty(&self) -> bool {
        self.direct.is_empty() && self.groups.is_empty()
    }

    fn position(&self, s: &S) -> Option<usize> {
        match &self.index {
            Some(ix) => ix.get(s).copied(),
            None => self.direct.iter().position(|(x, _)| x == s),
        }
    }

    /// `true` when `s` was already subscribed (options replaced).
    fn add_direct(&mut self, s: S, opts: SubOptions) -> bool {
        if let Some(i) = self.position(&s) {
            self.direct[i].1 = opts;
            return true;
        }
        if let Some(ix) = &mut self.index {
            ix.insert(s.clone(), self.direct.len());
        } else if self.direct.len() + 1 >= INDEX_FROM {
            let mut ix: HashMap<S, usize> = self
                .direct
                .iter()
                .enumerate()
                .map(|(i, (x, _))| (x.clone(), i))
                .collect();
            ix.insert(s.clone(), self.direct.len());
            self.index = Some(Box::new(ix));
        }
        self.direct.push((s, opts));
        false
    }

    fn remove_direct(&mut self, s: &S) -> bool {
        let Some(i) = self.position(s) else {
            return false;
        };
        self.direct.swap_remove(i);
        if let Some(ix) = &mut self.index {
            ix.remove(s);
            if let Some((moved, _)) = self.direct.get(i) {
                ix.insert(moved.clone(), i);
            }
        }
        true
    }
}

/// Filter → local subscribers and share groups, matched with MQTT semantics.
#[derive(Debug)]
pub struct SubscriptionTable<S> {
    trie: FilterTrie<FilterSubs<S>>,
    strategy: ShareStrategy,
    subscriptions: usize,
}

impl<S: Clone + Eq + Hash> SubscriptionTable<S> {
    /// An empty table whose share groups pick members with `strategy`.
    pub fn new(strategy: ShareStrategy) -> Self {
        SubscriptionTable {
            trie: FilterTrie::new(),
            strategy,
            subscriptions: 0,
        }
    }

    /// The share strategy in use.
    pub fn strategy(&self) -> ShareStrategy {
        self.strategy
    }

    /// Subscribes `subscriber` to `sub` (plain or shared) with `opts`; subscribing again
    /// replaces the options.
    pub fn subscribe(
        &mut self,
        sub: &Subscription,
        subscriber: S,
        opts: SubOptions,
    ) -> Result<Subscribed, TrieFull> {
        let (subs, new_filter) = self
            .trie
            .get_or_insert_with(&sub.filter, FilterSubs::new)
            .ok_or(TrieFull)?;
        let replaced = match &sub.group {
            None => subs.add_direct(subscriber, opts),
            Some(name) => {
                let group = match subs.groups.iter().position(|g| g.name() == &**name) {
                    Some(i) => &mut subs.groups[i],
                    None => {
                        subs.groups.push(ShareGroup::new(name));
                        let last = subs.groups.len() - 1;
                        &mut subs.groups[last]
                    }
                };
                group.join(subscriber, opts)
            }
        };
        if !replaced {
            self.subscriptions += 1;
        }
        Ok(Subscribed {
            new_filter,
            replaced,
        })
    }

    /// Removes `subscriber`'s subscription `sub`.
    pub fn unsubscribe(&mut self, sub: &Subscription, subscriber: &S) -> Unsubscribed {
        let filter = sub.filter.as_str();
        let Some(subs) = self.trie.get_mut(filter) else {
            return Unsubscribed {
                found: false,
                filter_gone: false,
            };
        };
        let found = match &sub.group {
            None => subs.remove_direct(subscriber),
            Some(name) => match subs.groups.iter().position(|g| g.name() == &**name) {
                Some(i) => {
                    let left = subs.groups[i].leave(subscriber);
                    if subs.groups[i].is_empty() {
                        subs.groups.swap_remove(i);
                    }
                    left
                }
                None => false,
            },
        };
        let filter_gone = subs.is_empty();
        if filter_gone {
            self.trie.remove(filter);
        }
        if found {
            self.subscriptions -= 1;
        }
        Unsubscribed { found, filter_gone }
    }

    /// Calls `deliver` for each subscription a publish to `topic` reaches: every direct
    /// subscription of every matching filter, and one member per share group picked with the
    /// table's strategy (`publisher` is the publishing client's id, for `hash`). A subscriber
    /// with several matching subscriptions is called once per subscription (MQTT 5.0 section
    /// 4.7.2 lets the server deliver per subscription, as EMQX 4 does); no-local and QoS are
    /// the caller's, from the options given.
    pub fn dispatch<'s, R: Rng + ?Sized>(
        &'s self,
        topic: &str,
        publisher: &str,
        rng: &mut R,
        mut deliver: impl FnMut(Delivery<'s, S>),
    ) {
        self.trie.for_each_match(topic, |filter, subs| {
            self.deliver_filter(filter, subs, publisher, rng, &mut deliver)
        });
    }

    /// [`SubscriptionTable::dispatch`] for several publishes at once (the PUBLISHes decoded
    /// from one read): `parts(p)` gives a publish's topic and publisher, and `deliver(i, d)`
    /// gets the deliveries of `publishes[i]`, publish after publish, each publish's in the
    /// order `dispatch` gives them. The topics are matched together
    /// ([`FilterTrie::for_each_match_batch`]), their memory loads overlapped.
    pub fn dispatch_batch<'s, 'p, M, R: Rng + ?Sized>(
        &'s self,
        publishes: &'p [M],
        parts: impl Fn(&'p M) -> (&'p str, &'p str),
        rng: &mut R,
        mut deliver: impl FnMut(usize, Delivery<'s, S>),
    ) {
        let topics = publishes.iter().map(|p| parts(p).0);
        self.trie.for_each_match_batch(topics, |i, filter, subs| {
            let publisher = publishes.get(i).map_or("", |p| parts(p).1);
            self.deliver_filter(filter, subs, publisher, rng, &mut |d| deliver(i, d))
        });
    }

    /// The deliveries of one matching filter: its direct subscriptions, then one member per
    /// share group.
    fn deliver_filter<'s, R: Rng + ?Sized>(
        &self,
        filter: &'s str,
        subs: &'s FilterSubs<S>,
        publisher: &str,
        rng: &mut R,
        deliver: &mut impl FnMut(Delivery<'s, S>),
    ) {
        for (s, o) in &subs.direct {
            deliver(Delivery {
                subscriber: s,
                options: o,
                filter,
                group: None,
            });
        }
        for g in &subs.groups {
            if let Some((s, o)) = g.pick(self.strategy, publisher, rng) {
                deliver(Delivery {
                    subscriber: s,
                    options: o,
                    filter,
                    group: Some(g.name()),
                });
            }
        }
    }

    /// The options of `subscriber`'s subscription `sub`, if it has it.
    pub fn options(&self, sub: &Subscription, subscriber: &S) -> Option<&SubOptions> {
        let subs = self.trie.get(sub.filter.as_str())?;
        match &sub.group {
            None => subs.position(subscriber).map(|i| &subs.direct[i].1),
            Some(name) => subs
                .groups
                .iter()
                .find(|g| g.name() == &**name)?
                .members()
                .iter()
                .find(|(m, _)| m == subscriber)
                .map(|(_, o)| o),
        }
    }

    /// Number of subscriptions (shared ones included).
    pub fn len(&self) -> usize {
        self.subscriptions
    }

    /// Whether there is no subscription.
    pub fn is_empty(&self) -> bool {
        self.subscriptions == 0
    }

    /// Number of distinct filters subscribed to: the node's routes.
    pub fn filter_count(&self) -> usize {
        self.trie.len()
    }

    /// The filters subscribed to, for resyncing the node's routes.
    pub fn filters(&self) -> impl Iterator<Item = &str> + '_ {
        self.trie.iter().map(|(f, _)| f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn sub(s: &str) -> Subscription {
        Subscription::parse(s).unwrap()
    }

    fn qos(q: u8) -> SubOptions {
        SubOptions {
            qos: q,
            ..SubOptions::default()
        }
    }

    fn deliveries(
        t: &SubscriptionTable<u32>,
        topic: &str,
    ) -> Vec<(u32, u8, String, Option<String>)> {
        let mut rng = StdRng::seed_from_u64(1);
        let mut v = Vec::new();
        t.dispatch(topic, "pub", &mut rng, |d| {
            v.push((
                *d.subscriber,
                d.options.qos,
                d.filter.to_string(),
                d.group.map(str::to_string),
            ))
        });
        v.sort();
        v
    }

    #[test]
    fn direct_and_shared() {
        let mut t = SubscriptionTable::new(ShareStrategy::RoundRobin);
        let s = t.subscribe(&sub("a/+"), 1, qos(1)).unwrap();
        assert_eq!((s.new_filter, s.replaced), (true, false));
        let s = t.subscribe(&sub("$share/g/a/+"), 2, qos(0)).unwrap();
        assert_eq!((s.new_filter, s.replaced), (false, false));
        t.subscribe(&sub("$share/g/a/+"), 3, qos(0)).unwrap();
        t.subscribe(&sub("$queue/a/b"), 4, qos(2)).unwrap();
        t.subscribe(&sub("a/+"), 1, qos(2))
            .map(|s| assert!(s.replaced))
            .unwrap();
        assert_eq!(t.len(), 4);
        assert_eq!(t.filter_count(), 2);
        let d = deliveries(&t, "a/b");
        assert_eq!(d.len(), 3, "{d:?}");
        assert!(d.contains(&(1, 2, "a/+".into(), None)));
        assert!(d.contains(&(4, 2, "a/b".into(), Some("$queue".into()))));
        let g: Vec<_> = d.iter().filter(|x| x.3.as_deref() == Some("g")).collect();
        assert_eq!(g.len(), 1, "one member per group per message");
        // Round robin: the next message goes to the other member.
        let next = deliveries(&t, "a/b");
        let g2: Vec<_> = next
            .iter()
            .filter(|x| x.3.as_deref() == Some("g"))
            .collect();
        assert_ne!(g[0].0, g2[0].0);
        assert_eq!(t.options(&sub("$queue/a/b"), &4).map(|o| o.qos), Some(2));
        assert_eq!(t.options(&sub("a/b"), &4), None);
    }

    #[test]
    fn unsubscribe_reports_route_changes() {
        let mut t = SubscriptionTable::new(ShareStrategy::Random);
        t.subscribe(&sub("x/#"), 1, qos(0)).unwrap();
        t.subscribe(&sub("$share/g/x/#"), 2, qos(0)).unwrap();
        let u = t.unsubscribe(&sub("x/#"), &2);
        assert_eq!((u.found, u.filter_gone), (false, false));
        let u = t.unsubscribe(&sub("x/#"), &1);
        assert_eq!((u.found, u.filter_gone), (true, false));
        let u = t.unsubscribe(&sub("$share/h/x/#"), &2);
        assert_eq!((u.found, u.filter_gone), (false, false));
        let u = t.unsubscribe(&sub("$share/g/x/#"), &2);
        assert_eq!((u.found, u.filter_gone), (true, true));
        assert!(t.is_empty());
        assert_eq!(t.filter_count(), 0);
        let u = t.unsubscribe(&sub("x/#"), &1);
        assert_eq!((u.found, u.filter_gone), (false, false));
    }

    #[test]
    fn many_subscribers_on_one_filter() {
        let mut t = SubscriptionTable::new(ShareStrategy::Random);
        for i in 0..1000 {
            t.subscribe(&sub("news"), i, qos((i % 3) as u8)).unwrap();
        }
        for i in (0..1000).step_by(2) {
            assert!(t.unsubscribe(&sub("news"), &i).found);
        }
        assert_eq!(
            t.subscribe(&sub("news"), 7, qos(0)).map(|s| s.replaced),
            Ok(true)
        );
        let d = deliveries(&t, "news");
        assert_eq!(d.len(), 500);
        assert!(d.iter().all(|x| x.0 % 2 == 1));
        for i in (1..1000).step_by(2) {
            assert!(t.unsubscribe(&sub("news"), &i).found, "{i}");
        }
        assert!(t.is_empty());
    }
}
