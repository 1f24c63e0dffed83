//! The cluster route table: topic filter → the nodes with a local subscriber to it.
//!
//! It mirrors the `beamq_route` pg scope (DESIGN.md section 5): group = filter, one member per
//! node, so "which nodes have F" is `{node(P) || P <- pg:get_members(beamq_route, F)}`. EMQX 4
//! keeps the same table as `emqx_route` records `{Filter, Node}` (`emqx_router:add_route/2`),
//! and forwards once per matched `(filter, node)` pair (`emqx_broker:forward/4`); we answer
//! "which destination nodes, deduplicated" so a publish is forwarded once per node.

use super::topic::TopicFilter;
use super::trie::{TopicTrie, TrieFull, ValueSet};
use std::collections::HashMap;

/// A cluster node name (`name@host`) interned to a small integer, so a route costs four bytes
/// and comparisons are integer compares. Ids are never reused: node names are few.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(u32);

impl NodeId {
    /// The raw index, for tables indexed by node.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// Node name ↔ [`NodeId`].
#[derive(Debug, Default)]
pub struct NodeNames {
    ids: HashMap<Box<str>, NodeId>,
    names: Vec<Box<str>>,
}

impl NodeNames {
    /// An empty name table.
    pub fn new() -> Self {
        Self::default()
    }

    /// The id of `name`, allocated on first sight.
    pub fn intern(&mut self, name: &str) -> NodeId {
        if let Some(&id) = self.ids.get(name) {
            return id;
        }
        let id = NodeId(self.names.len() as u32);
        self.names.push(name.into());
        self.ids.insert(name.into(), id);
        id
    }

    /// The id of `name`, if interned.
    pub fn get(&self, name: &str) -> Option<NodeId> {
        self.ids.get(name).copied()
    }

    /// The name of `id`.
    pub fn name(&self, id: NodeId) -> Option<&str> {
        self.names.get(id.index()).map(|s| &**s)
    }

    /// Number of names known.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether no name is known.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

/// Filter → nodes, matched with MQTT semantics. `N` is the node type ([`NodeId`] by default;
/// the cluster layer may use its own atom type).
#[derive(Debug)]
pub struct RouteTable<N = NodeId> {
    trie: TopicTrie<N>,
}

impl<N> Default for RouteTable<N> {
    fn default() -> Self {
        RouteTable {
            trie: TopicTrie::default(),
        }
    }
}

impl<N: Copy + PartialEq> RouteTable<N> {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that `node` has `filter` (a pg join). Joins are counted as pg counts them: a
    /// second join needs a second leave. `Ok(true)` when the filter is new to the table.
    pub fn add_route(&mut self, filter: &TopicFilter, node: N) -> Result<bool, TrieFull> {
        self.trie.insert(filter, node)
    }

    /// Drops one join of `node` to `filter` (a pg leave); `true` when no node has the filter
    /// any more.
    pub fn delete_route(&mut self, filter: &str, node: &N) -> bool {
        self.trie.remove(filter, node)
    }

    /// Whether `node` has `filter`.
    pub fn has_route(&self, filter: &str, node: &N) -> bool {
        self.trie.get(filter).is_some_and(|s| s.contains(node))
    }

    /// The nodes with `filter`.
    pub fn nodes_of(&self, filter: &str) -> impl Iterator<Item = N> + '_ {
        self.trie
            .get(filter)
            .into_iter()
            .flat_map(|s| s.iter().copied())
    }

    /// Appends to `out` each node with a filter matching `topic`, once per node: where the
    /// forwarder sends one dispatch each. `out` is the caller's buffer, reused across
    /// publishes; nodes already in it are not added again.
    pub fn destinations_into(&self, topic: &str, out: &mut Vec<N>) {
        self.trie.matches(topic, |_, nodes| {
            for n in nodes.iter() {
                if !out.contains(n) {
                    out.push(*n);
                }
            }
        });
    }

    /// The deduplicated destination nodes of `topic` (see [`Self::destinations_into`]).
    pub fn destinations(&self, topic: &str) -> Vec<N> {
        let mut out = Vec::new();
        self.destinations_into(topic, &mut out);
        out
    }

    /// The matching filters with their nodes, as `emqx_router:match_routes/1` gives them:
    /// for `routes show TOPIC`.
    pub fn match_routes(&self, topic: &str) -> Vec<(&str, &ValueSet<N>)> {
        self.trie.match_vec(topic)
    }

    /// Removes every route of `node` (it went down, or left the cluster); returns the filters
    /// no node has any more. `O(filters)`, as pg's scan of a dead node's members.
    pub fn purge_node(&mut self, node: &N) -> Vec<Box<str>> {
        self.trie.remove_value_everywhere(node)
    }

    /// Every filter with its nodes, for `routes list` and for syncing a joining node.
    pub fn routes(&self) -> impl Iterator<Item = (&str, &ValueSet<N>)> + '_ {
        self.trie.filters()
    }

    /// Number of filters with at least one node.
    pub fn len(&self) -> usize {
        self.trie.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.trie.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(s: &str) -> TopicFilter {
        TopicFilter::new(s).unwrap()
    }

    #[test]
    fn node_names() {
        let mut names = NodeNames::new();
        let a = names.intern("a@h");
        let b = names.intern("b@h");
        assert_ne!(a, b);
        assert_eq!(names.intern("a@h"), a);
        assert_eq!(names.get("b@h"), Some(b));
        assert_eq!(names.get("c@h"), None);
        assert_eq!(names.name(b), Some("b@h"));
        assert_eq!(names.len(), 2);
    }

    #[test]
    fn one_destination_per_node() {
        let mut names = NodeNames::new();
        let (n1, n2, n3) = (
            names.intern("n1@h"),
            names.intern("n2@h"),
            names.intern("n3@h"),
        );
        let mut rt = RouteTable::new();
        assert_eq!(rt.add_route(&f("t/#"), n2), Ok(true));
        assert_eq!(rt.add_route(&f("t/+"), n2), Ok(true));
        assert_eq!(rt.add_route(&f("t/a"), n2), Ok(true));
        assert_eq!(rt.add_route(&f("t/a"), n3), Ok(false));
        assert_eq!(rt.add_route(&f("x"), n1), Ok(true));
        let mut d = rt.destinations("t/a");
        d.sort();
        assert_eq!(d, vec![n2, n3]);
        assert_eq!(rt.match_routes("t/a").len(), 3);
        assert_eq!(rt.destinations("t"), vec![n2]);
        assert!(rt.destinations("y").is_empty());
        assert!(rt.destinations("$SYS/t").is_empty());
        let mut buf = vec![n3];
        rt.destinations_into("t/a", &mut buf);
        assert_eq!(buf.len(), 2, "nodes already in the buffer are not repeated");
    }

    #[test]
    fn joins_are_counted_and_nodes_purged() {
        let mut rt = RouteTable::new();
        let (a, b) = (NodeId(0), NodeId(1));
        rt.add_route(&f("t/#"), a).unwrap();
        rt.add_route(&f("t/#"), a).unwrap();
        rt.add_route(&f("t/#"), b).unwrap();
        rt.add_route(&f("u"), a).unwrap();
        assert!(!rt.delete_route("t/#", &a));
        assert!(rt.has_route("t/#", &a));
        let mut gone = rt.purge_node(&a);
        gone.sort();
        assert_eq!(gone, vec![Box::from("u")]);
        assert!(!rt.has_route("t/#", &a));
        assert_eq!(rt.nodes_of("t/#").collect::<Vec<_>>(), vec![b]);
        assert!(rt.delete_route("t/#", &b));
        assert!(rt.is_empty());
        assert_eq!(rt.routes().count(), 0);
    }
}
