//! The replicated route table: every group of the `beamq_route` pg scope as filter → member
//! pids, matched with MQTT semantics (DESIGN.md section 5, ROUTE-PROTOCOL rules 2 and 4).
//!
//! Pids are interned to [`MemberId`]s (a `u32` slot) and nodes to [`NodeId`]s, so a route in
//! the trie costs four bytes plus its share of the filter's node; a member slot is freed when
//! its last join is gone. Keyed by member pid, not node: a stock BEAM node where several plain
//! processes joined a group has several subscribers there, and each gets its own dispatch
//! (rule 5); a node following rule 3 has one member, so one dispatch per node.
use std::collections::HashMap as StdHashMap;

use crate::dist::etf::{Atom, Pid, Term};
use crate::node::pg::Membership;
use crate::router::{NodeId, NodeNames, RouteTable, TopicFilter};

/// foldhash, as pg's tables: every route a sync brings looks its member pid up here.
type HashMap<K, V> = StdHashMap<K, V, foldhash::fast::RandomState>;

/// A member pid interned to a slot of [`ClusterRoutes`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MemberId(u32);

#[derive(Debug)]
struct Slot {
    pid: Pid,
    node: NodeId,
    /// Joins of this pid across all groups (pg counts each join).
    joins: u32,
}

/// Filter → member pids, with the member and node tables.
#[derive(Debug)]
pub struct ClusterRoutes {
    table: RouteTable<MemberId>,
    ids: HashMap<Pid, MemberId>,
    slots: Vec<Option<Slot>>,
    free: Vec<u32>,
    nodes: NodeNames,
    own: NodeId,
    /// Member pids on other nodes (the publish path skips matching when 0).
    remote: usize,
    /// Groups seen that are not binaries or not valid filters.
    ignored: u64,
}

/// The group term as a filter, if it is one (rule 2: anything else is ignored).
pub fn group_filter(group: &Term) -> Option<TopicFilter> {
    TopicFilter::from_bytes(group.as_binary()?).ok()
}

impl ClusterRoutes {
    /// An empty table on the node named `own` (whose members are never forwarded to).
    pub fn new(own: Atom) -> Self {
        let mut nodes = NodeNames::new();
        let own = nodes.intern(own.as_str());
        ClusterRoutes {
            table: RouteTable::new(),
            ids: HashMap::default(),
            slots: Vec::new(),
            free: Vec::new(),
            nodes,
            own,
            remote: 0,
            ignored: 0,
        }
    }

    fn intern(&mut self, pid: Pid) -> MemberId {
        if let Some(&id) = self.ids.get(&pid) {
            return id;
        }
        let node = self.nodes.intern(pid.node.as_str());
        let slot = Slot {
            pid,
            node,
            joins: 0,
        };
        let id = match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = Some(slot);
                MemberId(i)
            }
            None => {
                self.slots.push(Some(slot));
                MemberId(self.slots.len() as u32 - 1)
            }
        };
        if node != self.own {
            self.remote += 1;
        }
        self.ids.insert(pid, id);
        id
    }

    fn slot_mut(&mut self, id: MemberId) -> Option<&mut Slot> {
        self.slots.get_mut(id.0 as usize).and_then(Option::as_mut)
    }

    fn slot(&self, id: MemberId) -> Option<&Slot> {
        self.slots.get(id.0 as usize).and_then(Option::as_ref)
    }

    /// Drops one join of `id`, freeing its slot with the last.
    fn release(&mut self, id: MemberId) {
        let own = self.own;
        let Some(slot) = self.slot_mut(id) else {
            return;
        };
        slot.joins = slot.joins.saturating_sub(1);
        if slot.joins > 0 {
            return;
        }
        let (pid, node) = (slot.pid, slot.node);
        self.slots[id.0 as usize] = None;
        self.free.push(id.0);
        self.ids.remove(&pid);
        if node != own {
            self.remote -= 1;
        }
    }

    /// `pids` joined `group` (once per pid occurrence, as pg counts).
    pub fn join(&mut self, group: &Term, pids: &[Pid]) {
        if pids.is_empty() {
            return;
        }
        let Some(filter) = group_filter(group) else {
            self.ignored += 1;
            if self.ignored.is_power_of_two() {
                tracing::debug!(
                    ?group,
                    ignored = self.ignored,
                    "route group that is not a topic filter; ignored"
                );
            }
            return;
        };
        for &pid in pids {
            let id = self.intern(pid);
            match self.table.add_route(&filter, id) {
                Ok(_) => {
                    if let Some(s) = self.slot_mut(id) {
                        s.joins += 1;
                    }
                }
                Err(e) => {
                    tracing::warn!(filter = filter.as_str(), "route not added: {e}");
                    if self.slot(id).is_some_and(|s| s.joins == 0) {
                        self.release(id);
                    }
                }
            }
        }
    }

    /// `pids` left `group` (or went down).
    pub fn leave(&mut self, group: &Term, pids: &[Pid]) {
        // A peer's sync reports a new group as a leave of no pids, then the join.
        if pids.is_empty() {
            return;
        }
        let Some(filter) = group_filter(group) else {
            return;
        };
        for pid in pids {
            let Some(&id) = self.ids.get(pid) else {
                continue;
            };
            if self.table.has_route(filter.as_str(), &id) {
                self.table.delete_route(filter.as_str(), &id);
                self.release(id);
            }
        }
    }

    /// Applies one pg change.
    pub fn apply(&mut self, change: &Membership) {
        match change {
            Membership::Join { group, pids } => self.join(group, pids),
            Membership::Leave { group, pids } => self.leave(group, pids),
        }
    }

    /// Member pids on other nodes.
    pub fn remote_members(&self) -> usize {
        self.remote
    }

    /// Groups ignored so far (not binaries, or not filters).
    pub fn ignored(&self) -> u64 {
        self.ignored
    }

    /// Number of filters.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// Whether no filter has a member.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// Appends to `out` each distinct member pid on another node with a filter matching
    /// `topic` (rule 5): the pids a publish is forwarded to. `scratch` is reused.
    pub fn remote_destinations(
        &self,
        topic: &str,
        scratch: &mut Vec<MemberId>,
        out: &mut Vec<Pid>,
    ) {
        scratch.clear();
        self.table.destinations_into(topic, scratch);
        out.extend(
            scratch
                .iter()
                .filter_map(|&id| self.slot(id))
                .filter(|s| s.node != self.own)
                .map(|s| s.pid),
        );
    }

    fn node_names<'a>(&self, ids: impl Iterator<Item = &'a MemberId>) -> Vec<Atom> {
        let mut names: Vec<&str> = ids
            .filter_map(|&id| self.slot(id))
            .filter_map(|s| self.nodes.name(s.node))
            .collect();
        names.sort_unstable();
        names.dedup();
        names.into_iter().map(Atom::new).collect()
    }

    /// Every filter with its nodes, both sorted (`beamq_routes:list/0`).
    pub fn list(&self) -> Vec<(String, Vec<Atom>)> {
        let mut v: Vec<(String, Vec<Atom>)> = self
            .table
            .routes()
            .map(|(f, set)| (f.to_string(), self.node_names(set.iter())))
            .collect();
        v.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// `filter`'s nodes, if it has any (`beamq_routes:list/1`).
    pub fn list_filter(&self, filter: &str) -> Vec<(String, Vec<Atom>)> {
        let nodes = self.node_names(self.table_nodes(filter).iter());
        if nodes.is_empty() {
            return Vec::new();
        }
        vec![(filter.to_string(), nodes)]
    }

    fn table_nodes(&self, filter: &str) -> Vec<MemberId> {
        self.table.nodes_of(filter).collect()
    }

    /// Every filter matching `topic` with its nodes, sorted (`beamq_routes:show/1`).
    pub fn show(&self, topic: &str) -> Vec<(String, Vec<Atom>)> {
        let mut v: Vec<(String, Vec<Atom>)> = self
            .table
            .match_routes(topic)
            .into_iter()
            .map(|(f, set)| (f.to_string(), self.node_names(set.iter())))
            .collect();
        v.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::pg::PidList;

    fn pid(node: &str, id: u32) -> Pid {
        Pid {
            node: Atom::new(node),
            id,
            serial: 0,
            creation: 1,
        }
    }

    fn g(f: &str) -> Term {
        Term::binary(f.as_bytes())
    }

    fn join(group: &str, pids: &[Pid]) -> Membership {
        Membership::Join {
            group: g(group),
            pids: PidList::from_slice(pids),
        }
    }

    fn leave(group: &str, pids: &[Pid]) -> Membership {
        Membership::Leave {
            group: g(group),
            pids: PidList::from_slice(pids),
        }
    }

    fn dests(t: &ClusterRoutes, topic: &str) -> Vec<Pid> {
        let mut out = Vec::new();
        t.remote_destinations(topic, &mut Vec::new(), &mut out);
        out.sort();
        out
    }

    #[test]
    fn one_dispatch_per_member_pid_never_to_self() {
        let (me, b, c) = (pid("a@h", 1), pid("b@h", 1), pid("c@h", 1));
        let mut t = ClusterRoutes::new(Atom::new("a@h"));
        for f in ["t/#", "t/+", "t/a"] {
            t.apply(&join(f, &[b]));
            t.apply(&join(f, &[me]));
        }
        t.apply(&join("t/a", &[c]));
        assert_eq!(dests(&t, "t/a"), vec![b, c]);
        assert_eq!(dests(&t, "t/b"), vec![b]);
        assert_eq!(dests(&t, "u"), vec![]);
        assert_eq!(t.remote_members(), 2);
        // Two plain processes on one stock node are two subscribers.
        let c2 = pid("c@h", 2);
        t.apply(&join("t/#", &[c2]));
        assert_eq!(dests(&t, "t/a"), vec![b, c, c2]);
    }

    #[test]
    fn sync_from_events_matches_pg_counting() {
        let b = pid("b@h", 1);
        let mut t = ClusterRoutes::new(Atom::new("a@h"));
        t.apply(&join("t/#", &[b, b]));
        t.apply(&leave("t/#", &[b]));
        assert_eq!(t.list(), vec![("t/#".into(), vec![Atom::new("b@h")])]);
        t.apply(&leave("t/#", &[b]));
        assert!(t.is_empty());
        assert_eq!(t.remote_members(), 0);
        assert!(t.ids.is_empty(), "slot freed with the last join");
        // A leave of something never joined changes nothing.
        t.apply(&leave("t/#", &[b]));
        t.apply(&leave("x", &[pid("z@h", 9)]));
        assert!(t.is_empty());
        // Slots are reused.
        t.apply(&join("x", &[pid("z@h", 9)]));
        assert_eq!(t.slots.len(), 1);
    }

    #[test]
    fn groups_that_are_not_filters_are_ignored() {
        let b = pid("b@h", 1);
        let mut t = ClusterRoutes::new(Atom::new("a@h"));
        t.apply(&Membership::Join {
            group: Term::atom("t"),
            pids: smallvec::smallvec![b],
        });
        t.apply(&join("a/#/b", &[b]));
        t.apply(&join("", &[b]));
        t.apply(&Membership::Leave {
            group: Term::tuple(vec![Term::Int(1)]),
            pids: smallvec::smallvec![b],
        });
        assert!(t.is_empty());
        assert_eq!(t.ignored(), 3);
        assert_eq!(t.remote_members(), 0);
    }

    #[test]
    fn list_show_and_node_down() {
        let (me, b1, b2, c) = (pid("a@h", 1), pid("b@h", 1), pid("b@h", 2), pid("c@h", 1));
        let mut t = ClusterRoutes::new(Atom::new("a@h"));
        t.apply(&join("t/#", &[c, me]));
        t.apply(&join("t/+", &[b1, b2]));
        t.apply(&join("u", &[b1]));
        let (a, b, cn) = (Atom::new("a@h"), Atom::new("b@h"), Atom::new("c@h"));
        assert_eq!(
            t.list(),
            vec![
                ("t/#".into(), vec![a, cn]),
                ("t/+".into(), vec![b]),
                ("u".into(), vec![b]),
            ]
        );
        assert_eq!(t.list_filter("t/+"), vec![("t/+".into(), vec![b])]);
        assert_eq!(t.list_filter("t"), vec![]);
        assert_eq!(
            t.show("t/x"),
            vec![("t/#".into(), vec![a, cn]), ("t/+".into(), vec![b])]
        );
        // pg reports a down node's members as leaves.
        t.apply(&leave("t/+", &[b1, b2]));
        t.apply(&leave("u", &[b1]));
        assert_eq!(t.list(), vec![("t/#".into(), vec![a, cn])]);
        assert_eq!(t.remote_members(), 1);
    }
}
