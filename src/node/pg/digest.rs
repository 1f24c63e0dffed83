//! A digest of a peer's `sync` list, so the identical second copy is recognised without a
//! lookup per group.
//!
//! pg.erl answers every `discover` with a full sync (`lib/kernel/src/pg.erl`,
//! `handle_info({discover, Peer}, ...)`), and both nodes of a new connection discover each
//! other, so a node joining a cluster receives each peer's whole group list twice, usually
//! with nothing in between. Checking the second copy group by group against what the first
//! left costs a hash-map lookup per group, a cache miss each at a million routes: most of a
//! second of the joiner's CPU. A digest of the list taken while the first copy is applied, and
//! one of the second taken in a sequential walk, make that check one comparison.
//!
//! The digest is only trusted while nothing else changed the peer's groups: any `join` or
//! `leave` from that peer, and a list that names a group twice (pg.erl then joins it twice,
//! which a second application would not reproduce), make it unusable. It is 128 bits from two
//! independently seeded hashers, so an accidental match is out of reach; the seeds are random
//! per process, and only the peer itself chooses what its list holds.
use std::hash::{BuildHasher, Hash, Hasher};

use foldhash::fast::{FoldHasher, RandomState};

use super::key::TermKey;
use crate::dist::etf::{Pid, Term};

/// The two seeds of one scope's digests (digests are compared within one scope only).
#[derive(Debug, Default)]
pub(super) struct DigestSeeds(RandomState, RandomState);

/// A digest being taken, group by group, in list order.
pub(super) struct Digest {
    a: FoldHasher<'static>,
    b: FoldHasher<'static>,
    groups: u64,
}

impl DigestSeeds {
    pub(super) fn start(&self) -> Digest {
        Digest {
            a: self.0.build_hasher(),
            b: self.1.build_hasher(),
            groups: 0,
        }
    }

    /// The digest of a checked sync list, walking it once; `None` when a group is not a
    /// binary (route groups always are; other groups take the group-by-group check).
    pub(super) fn of_list(&self, groups: &[Term]) -> Option<u128> {
        let mut d = self.start();
        for e in groups {
            let [Term::Binary(g), pids] = e.as_tuple_n::<2>()? else {
                return None;
            };
            d.group(true, g, pids);
        }
        Some(d.finish())
    }
}

impl Digest {
    /// Adds the group with key `key` (see [`TermKey`]) and its `PidOrPids`.
    pub(super) fn key(&mut self, key: &TermKey, pids: &Term) {
        let (binary, bytes) = key.digest_bytes();
        self.group(binary, bytes, pids);
    }

    fn group(&mut self, binary: bool, bytes: &[u8], pids: &Term) {
        self.groups += 1;
        for h in [&mut self.a, &mut self.b] {
            binary.hash(h);
            bytes.hash(h);
            match pids {
                Term::Pid(p) => hash_pids(h, std::slice::from_ref(p)),
                _ => {
                    let list = pids.as_list().unwrap_or_default();
                    h.write_usize(list.len());
                    for p in list.iter().filter_map(Term::as_pid) {
                        p.hash(h);
                    }
                }
            }
        }
    }

    pub(super) fn finish(self) -> u128 {
        let mut a = self.a;
        a.write_u64(self.groups);
        (u128::from(a.finish()) << 64) | u128::from(self.b.finish())
    }
}

/// A bare pid and a one-pid list are the same members (pg.erl's `PidOrPids`).
fn hash_pids(h: &mut FoldHasher<'static>, pids: &[Pid]) {
    h.write_usize(pids.len());
    for p in pids {
        p.hash(h);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dist::etf::Atom;

    fn pid(id: u32) -> Pid {
        Pid {
            node: Atom::new("a@h"),
            id,
            serial: 0,
            creation: 1,
        }
    }

    fn entry(g: &str, pids: Term) -> Term {
        Term::tuple(vec![Term::binary(g.as_bytes()), pids])
    }

    #[test]
    fn a_walk_and_group_by_group_agree_and_any_difference_shows() {
        let seeds = DigestSeeds::default();
        let list = vec![
            entry("a/#", Term::list(vec![Term::Pid(pid(1))])),
            entry("b", Term::Pid(pid(2))),
        ];
        let walked = seeds.of_list(&list);
        let mut d = seeds.start();
        for e in &list {
            let [g, p] = e.as_tuple_n::<2>().expect("pair");
            d.key(&TermKey::new(g.clone()), p);
        }
        assert_eq!(walked, Some(d.finish()));
        // A bare pid is the one-pid list.
        let bare = vec![
            entry("a/#", Term::Pid(pid(1))),
            entry("b", Term::list(vec![Term::Pid(pid(2))])),
        ];
        assert_eq!(seeds.of_list(&bare), walked);
        let changed = [
            vec![entry("a/#", Term::Pid(pid(1)))],
            vec![
                entry("b", Term::Pid(pid(2))),
                entry("a/#", Term::Pid(pid(1))),
            ],
            vec![
                entry("a/#", Term::Pid(pid(3))),
                entry("b", Term::Pid(pid(2))),
            ],
            vec![entry("a/#", Term::Nil), entry("b", Term::Pid(pid(2)))],
            vec![
                entry("a/+", Term::Pid(pid(1))),
                entry("b", Term::Pid(pid(2))),
            ],
        ];
        for c in changed {
            assert_ne!(seeds.of_list(&c), walked, "{c:?}");
        }
        let atom_group = vec![Term::tuple(vec![Term::atom("g"), Term::Pid(pid(1))])];
        assert_eq!(seeds.of_list(&atom_group), None);
        assert_ne!(
            DigestSeeds::default().of_list(&list),
            walked,
            "seeded per scope"
        );
    }
}
