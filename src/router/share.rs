//! Shared-subscription groups (`$share/G/F`, `$queue/F`) and the strategies that pick one
//! member per group per message: EMQX 4's `broker.shared_subscription_strategy` values
//! `random`, `round_robin`, `sticky` and `hash` (`emqx_shared_sub:pick/6`).
//!
//! Differences from EMQX 4, on purpose (docs/decisions.md): EMQX keeps the round-robin counter
//! and the sticky choice in the *publisher's* process dictionary; here they live in the group
//! (atomics, so picking needs only a shared borrow on the publish path): round-robin is fair
//! across all publishers, and sticky keeps one member for the whole group until it leaves.

use super::subscriptions::SubOptions;
use foldhash::fast::FixedState;
use rand::Rng;
use std::hash::BuildHasher;
use std::str::FromStr;
use std::sync::atomic::{AtomicU32, Ordering};
use thiserror::Error;

/// How a group picks the member that gets a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ShareStrategy {
    /// A uniformly random member (EMQX 4's default).
    #[default]
    Random,
    /// Members in turn.
    RoundRobin,
    /// The same member until it leaves the group, then a random one.
    Sticky,
    /// A member chosen by a hash of the publisher's client id: one publisher, one member.
    Hash,
}

/// An unknown strategy name in the configuration.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("unknown shared subscription strategy {0:?} (random, round_robin, sticky, hash)")]
pub struct UnknownStrategy(pub String);

impl FromStr for ShareStrategy {
    type Err = UnknownStrategy;

    /// Parses EMQX 4's configuration spelling.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "random" => Ok(ShareStrategy::Random),
            "round_robin" => Ok(ShareStrategy::RoundRobin),
            "sticky" => Ok(ShareStrategy::Sticky),
            "hash" | "hash_clientid" => Ok(ShareStrategy::Hash),
            other => Err(UnknownStrategy(other.to_string())),
        }
    }
}

/// "No sticky member chosen yet".
const NO_MEMBER: u32 = u32::MAX;

/// One share group of one filter: its members, each with its subscription options.
#[derive(Debug)]
pub struct ShareGroup<S> {
    name: Box<str>,
    members: Vec<(S, SubOptions)>,
    /// Round-robin position.
    cursor: AtomicU32,
    /// Index of the sticky member, or `NO_MEMBER`.
    sticky: AtomicU32,
}

impl<S: PartialEq> ShareGroup<S> {
    /// An empty group called `name`.
    pub fn new(name: &str) -> Self {
        ShareGroup {
            name: name.into(),
            members: Vec::new(),
            cursor: AtomicU32::new(0),
            sticky: AtomicU32::new(NO_MEMBER),
        }
    }

    /// The group name (`$queue` for `$queue/F`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Members with their options.
    pub fn members(&self) -> &[(S, SubOptions)] {
        &self.members
    }

    /// Adds `member`, or replaces its options if it is already in (a re-subscribe);
    /// `true` when it was already a member.
    pub fn join(&mut self, member: S, opts: SubOptions) -> bool {
        match self.members.iter_mut().find(|(m, _)| *m == member) {
            Some((_, o)) => {
                *o = opts;
                true
            }
            None => {
                self.members.push((member, opts));
                false
            }
        }
    }

    /// Removes `member`; `true` if it was in the group. Keeps the sticky choice on the same
    /// member when another one leaves.
    pub fn leave(&mut self, member: &S) -> bool {
        let Some(i) = self.members.iter().position(|(m, _)| m == member) else {
            return false;
        };
        let last = self.members.len() - 1;
        self.members.swap_remove(i);
        let sticky = self.sticky.get_mut();
        if *sticky == i as u32 {
            *sticky = NO_MEMBER;
        } else if *sticky == last as u32 {
            *sticky = i as u32;
        }
        true
    }

    /// Whether the group has no member left.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The member that gets the next message, or `None` for an empty group. `publisher` is the
    /// publishing client's id (used by [`ShareStrategy::Hash`]).
    pub fn pick<R: Rng + ?Sized>(
        &self,
        strategy: ShareStrategy,
        publisher: &str,
        rng: &mut R,
    ) -> Option<&(S, SubOptions)> {
        let n = self.members.len();
        if n == 0 {
            return None;
        }
        let i = match strategy {
            ShareStrategy::Random => rng.gen_range(0..n),
            ShareStrategy::RoundRobin => self.cursor.fetch_add(1, Ordering::Relaxed) as usize % n,
            ShareStrategy::Hash => {
                // A fixed seed: the same client goes to the same member across restarts, as
                // EMQX's `erlang:phash2(ClientId, N)` does.
                (FixedState::with_seed(0).hash_one(publisher) % n as u64) as usize
            }
            ShareStrategy::Sticky => match self.sticky.load(Ordering::Relaxed) {
                s if (s as usize) < n => s as usize,
                _ => {
                    let i = rng.gen_range(0..n);
                    // Two racing publishers may both choose; the first choice stands.
                    match self.sticky.compare_exchange(
                        NO_MEMBER,
                        i as u32,
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    ) {
                        Ok(_) => i,
                        Err(s) if (s as usize) < n => s as usize,
                        Err(_) => i,
                    }
                }
            },
        };
        self.members.get(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn group(n: u32) -> ShareGroup<u32> {
        let mut g = ShareGroup::new("g");
        for m in 0..n {
            assert!(!g.join(m, SubOptions::default()));
        }
        g
    }

    fn picks(g: &ShareGroup<u32>, s: ShareStrategy, publisher: &str, k: usize) -> Vec<u32> {
        let mut rng = StdRng::seed_from_u64(7);
        (0..k)
            .map(|_| g.pick(s, publisher, &mut rng).unwrap().0)
            .collect()
    }

    #[test]
    fn strategies_parse() {
        assert_eq!("round_robin".parse(), Ok(ShareStrategy::RoundRobin));
        assert_eq!("hash_clientid".parse(), Ok(ShareStrategy::Hash));
        assert!("fastest".parse::<ShareStrategy>().is_err());
    }

    #[test]
    fn round_robin_visits_everyone_in_turn() {
        let g = group(3);
        assert_eq!(
            picks(&g, ShareStrategy::RoundRobin, "p", 6),
            [0, 1, 2, 0, 1, 2]
        );
    }

    #[test]
    fn random_spreads() {
        let g = group(4);
        let p = picks(&g, ShareStrategy::Random, "p", 400);
        for m in 0..4 {
            let c = p.iter().filter(|&&x| x == m).count();
            assert!((50..150).contains(&c), "member {m} got {c} of 400");
        }
    }

    #[test]
    fn hash_is_per_publisher() {
        let g = group(8);
        let a = picks(&g, ShareStrategy::Hash, "client-a", 5);
        assert!(a.iter().all(|&x| x == a[0]));
        let spread: std::collections::HashSet<u32> = (0..64)
            .map(|i| picks(&g, ShareStrategy::Hash, &format!("c{i}"), 1)[0])
            .collect();
        assert!(
            spread.len() > 1,
            "different publishers reach different members"
        );
    }

    #[test]
    fn sticky_until_the_member_leaves() {
        let mut g = group(5);
        let first = picks(&g, ShareStrategy::Sticky, "p", 10);
        assert!(first.iter().all(|&x| x == first[0]));
        let other = (first[0] + 1) % 5;
        assert!(g.leave(&other));
        assert_eq!(picks(&g, ShareStrategy::Sticky, "p", 3), [first[0]; 3]);
        assert!(g.leave(&first[0]));
        let next = picks(&g, ShareStrategy::Sticky, "p", 5);
        assert_ne!(next[0], first[0]);
        assert!(next.iter().all(|&x| x == next[0]));
        assert!(!g.leave(&first[0]));
    }

    #[test]
    fn join_replaces_options() {
        let mut g = group(2);
        let opts = SubOptions {
            qos: 2,
            ..SubOptions::default()
        };
        assert!(g.join(1, opts));
        assert_eq!(g.members().len(), 2);
        assert_eq!(g.members()[1].1.qos, 2);
        let empty: ShareGroup<u32> = ShareGroup::new("e");
        assert!(empty
            .pick(ShareStrategy::Random, "p", &mut rand::thread_rng())
            .is_none());
    }
}
