//! Node loss and global's "prevent overlapping partitions" (vsn 7+, `lib/kernel/src/global.erl`
//! `inform_connection_loss/2`, `handle_info({lost_connection, ...})`,
//! `handle_info({remove_connection, ...})`; reference/otp25-traces.md §1.6):
//! - on an unexpected nodedown, tell every known node `{lost_connection, Me, ExtCreation,
//!   OpId, Lost}` (plain message to `global_name_server`);
//! - on a lost_connection not seen before, re-broadcast it, ask the node it names (or the
//!   reporter, if it names us) to drop its connection to us with `{remove_connection, Me}`,
//!   and forget that node;
//! - on `{remove_connection, Node}`, disconnect from Node and forget it, without reporting the
//!   nodedown that follows.
use super::server::{Effects, GlobalState, GNS};
use super::terms::{int_of, tagged};
use crate::dist::etf::{Atom, Term};
use crate::node::Dest;

/// The lowest protocol version that knows lost_connection / remove_connection (`?pop_vsn`).
const POP_VSN: u32 = 7;

/// How a node is being dropped (`handle_nodedown/3`'s `What`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum NodeDown {
    /// The connection went down by itself: report it unless we asked for it.
    Disconnected,
    /// We are removing the node: its coming nodedown is expected.
    RemoveConnection,
}

impl GlobalState {
    /// `handle_info({nodedown, Node, _})` for a visible node.
    pub fn nodedown(&mut self, node: Atom, fx: &mut dyn Effects) {
        if node == self.me {
            return;
        }
        self.syncers_nodedown(node, fx);
        self.handle_nodedown(node, NodeDown::Disconnected, fx);
    }

    /// `handle_nodedown/3`.
    pub(super) fn handle_nodedown(&mut self, node: Atom, what: NodeDown, fx: &mut dyn Effects) {
        let tag = self.my_tag(node).cloned();
        self.cancel_locker(node, tag, None, fx);
        self.to_locker(fx, tagged("remove_from_known", vec![Term::Atom(node)]));
        self.dict.remove(&node);
        match what {
            NodeDown::RemoveConnection => {
                self.removing.insert(node);
            }
            NodeDown::Disconnected => {
                if !self.removing.remove(&node) {
                    self.inform_connection_loss(node, fx);
                }
            }
        }
        self.pending.remove(&node);
        self.known.remove(&node);
        self.synced.retain(|n| *n != node);
    }

    /// `inform_connection_loss/2`.
    fn inform_connection_loss(&mut self, node: Atom, fx: &mut dyn Effects) {
        let op_id = self.new_tag();
        let xcre = Term::int(i128::from(self.creation_extension) + (1 << 59));
        let msg = tagged(
            "lost_connection",
            vec![Term::Atom(self.me), xcre, op_id, Term::Atom(node)],
        );
        self.volatile_multicast(&msg, node, fx);
    }

    /// `gns_volatile_multicast(Msg, IgnoreNode, ?pop_vsn, true, S)`: known and pending nodes.
    fn volatile_multicast(&self, msg: &Term, ignore: Atom, fx: &mut dyn Effects) {
        let targets = self
            .known
            .iter()
            .chain(self.pending.iter())
            .filter(|(n, v)| **n != ignore && **v >= POP_VSN)
            .map(|(n, _)| *n);
        for n in targets {
            fx.send_noconnect(Dest::NameAt(Atom::new(GNS), n), msg.clone());
        }
    }

    fn is_potentially_known(&self, node: Atom) -> bool {
        self.known.contains_key(&node) || self.pending.contains_key(&node)
    }

    /// `handle_info({lost_connection, NodeA, XCreationA, OpIdA, NodeB})`; `None` when the
    /// op id is not an integer.
    pub(super) fn lost_connection(
        &mut self,
        msg: Term,
        a: Atom,
        xcre: &Term,
        op_id: &Term,
        b: Atom,
        fx: &mut dyn Effects,
    ) -> Option<()> {
        let op = int_of(op_id)?;
        if let Some((seen_xcre, seen_op)) = self.lost.get(&(a, b)) {
            if seen_xcre == xcre && op <= *seen_op {
                return Some(());
            }
        }
        self.volatile_multicast(&msg, a, fx);
        self.lost.insert((a, b), (xcre.clone(), op));
        let rm = if b == self.me { a } else { b };
        if !self.is_potentially_known(rm) {
            return Some(());
        }
        if self.node_vsn(rm) < POP_VSN {
            fx.disconnect(rm);
        } else {
            let m = tagged("remove_connection", vec![Term::Atom(self.me)]);
            fx.send_noconnect(Dest::NameAt(Atom::new(GNS), rm), m);
        }
        tracing::warn!(
            node = self.me.as_str(),
            removed = rm.as_str(),
            "'global' requested disconnect from a node in order to prevent overlapping partitions"
        );
        self.handle_nodedown(rm, NodeDown::RemoveConnection, fx);
        Some(())
    }

    /// `handle_info({remove_connection, Node})`.
    pub(super) fn remove_connection(&mut self, node: Atom, fx: &mut dyn Effects) {
        if !self.is_potentially_known(node) {
            return;
        }
        fx.disconnect(node);
        self.handle_nodedown(node, NodeDown::RemoveConnection, fx);
        tracing::warn!(
            node = self.me.as_str(),
            removed = node.as_str(),
            "'global' disconnected a node in order to prevent overlapping partitions"
        );
    }
}
