//! global's connect protocol, vsn 8 (`lib/kernel/src/global.erl`, "Connection algorithm"):
//! nodeup → `init_connect` both ways → `init_connect_ack` → the lockers take `{global, [LockerA,
//! LockerB]}` in both partitions → `lock_is_set` → `exchange` of names → conflicts resolved by
//! the smaller node → `resolved` both ways → `new_nodes` to the rest of each partition and
//! `in_sync` from the nodes that connect because of it (reference/otp25-traces.md §1).
//!
//! Each side buffers what arrives early (`wait_lock`, `save_ops`, `pre_connect`), and every
//! message carries the receiver's session tag: a stale tag cancels that session.
use super::server::{Effects, GlobalState, SaveOps, WaitLock, VSN};
use super::terms::{list_of, tagged};
use crate::dist::etf::{Atom, Pid, Term};
use crate::node::pg::TermKey;

impl GlobalState {
    /// `handle_nodeup/2` for a visible node.
    pub fn nodeup(&mut self, node: Atom, fx: &mut dyn Effects) {
        if node == self.me || self.known.contains_key(&node) || self.resolvers.contains_key(&node) {
            return;
        }
        let pre = self.dict.get_mut(&node).and_then(|d| d.pre_connect.take());
        let my_tag = self.new_tag();
        self.dict(node).my_tag = Some(my_tag.clone());
        let known = Term::map(
            self.known
                .iter()
                .map(|(n, v)| (Term::Atom(*n), Term::Int(i64::from(*v))))
                .collect::<Vec<_>>(),
        );
        let locker = Term::tuple(vec![
            Term::atom("locker"),
            Term::atom("no_longer_a_pid"),
            known,
            Term::Pid(self.locker),
        ]);
        let init = tagged(
            "init_connect",
            vec![
                Term::tuple(vec![Term::Int(i64::from(VSN)), my_tag.clone()]),
                Term::Atom(self.me),
                locker,
            ],
        );
        self.cast_to(fx, node, init);
        self.resolvers.insert(node, my_tag);
        if let Some((vsn, init_msg, his_tag)) = pre {
            let v = Term::tuple(vec![Term::Int(i64::from(vsn)), his_tag]);
            self.init_connect(&v, node, &init_msg, fx);
        }
    }

    /// `handle_cast({init_connect, Vsn, Node, InitMsg})`.
    pub(super) fn init_connect(
        &mut self,
        vsn: &Term,
        node: Atom,
        init_msg: &Term,
        fx: &mut dyn Effects,
    ) {
        let Some(t) = vsn.as_tuple().filter(|t| t.len() >= 2) else {
            tracing::info!(
                node = node.as_str(),
                ?vsn,
                "global: illegal protocol version"
            );
            return;
        };
        let Some(his_vsn) = t[0].as_u32() else {
            tracing::info!(
                node = node.as_str(),
                ?vsn,
                "global: illegal protocol version"
            );
            return;
        };
        let his_tag = t[1].clone();
        let vsn = his_vsn.min(VSN);
        if self.pending.contains_key(&node) {
            // An out-of-sync second attempt: cancel both and start over.
            self.send_cancel_connect_message(node, &his_tag, fx);
            let old = self.my_tag(node).cloned();
            self.restart_connect(node, old, fx);
        }
        let d = self.dict(node);
        d.prot_vsn = Some(vsn);
        d.his_tag = Some(his_tag.clone());
        match self.resolvers.get(&node).cloned() {
            Some(my_tag) => {
                let Some([_, _, _, his_locker]) = init_msg.as_tuple_n::<4>() else {
                    tracing::info!(node = node.as_str(), "global: bad init_connect locker info");
                    return;
                };
                let m = Self::his_the_locker(his_locker, vsn, &his_tag, &my_tag);
                self.to_locker(fx, m);
                let ack = tagged(
                    "init_connect_ack",
                    vec![Term::Atom(self.me), his_tag, my_tag],
                );
                fx.send_noconnect(
                    crate::node::Dest::NameAt(Atom::new(super::server::GNS), node),
                    ack,
                );
                self.pending.insert(node, his_vsn);
            }
            None => {
                self.dict(node).pre_connect = Some((vsn, init_msg.clone(), his_tag));
            }
        }
    }

    /// `handle_info({init_connect_ack, Node, HisMyTag, HisHisTag})`.
    pub(super) fn init_connect_ack(
        &mut self,
        node: Atom,
        his_my: &Term,
        his_his: &Term,
        fx: &mut dyn Effects,
    ) {
        let my = self.my_tag(node).cloned();
        let his = self.dict.get(&node).and_then(|d| d.his_tag.clone());
        if my.as_ref() == Some(his_my) && his.as_ref() == Some(his_his) {
            return;
        }
        self.send_cancel_connect_message(node, his_his, fx);
        self.restart_connect(node, my, fx);
    }

    /// `handle_info({cancel_connect, Node, MyTag})`: the peer gave up this session.
    pub(super) fn cancel_connect(&mut self, node: Atom, tag: &Term, fx: &mut dyn Effects) {
        if !self.is_my_tag(node, tag) {
            return;
        }
        self.cancel_locker(node, Some(tag.clone()), None, fx);
        self.dict.remove(&node);
        self.pending.remove(&node);
        self.restart_connect(node, Some(tag.clone()), fx);
    }

    /// `restart_connect/3`.
    pub(super) fn restart_connect(
        &mut self,
        node: Atom,
        my_tag: Option<Term>,
        fx: &mut dyn Effects,
    ) {
        self.cancel_locker(node, my_tag.clone(), None, fx);
        self.dict.remove(&node);
        self.pending.remove(&node);
        if my_tag.is_some_and(|t| matches!(t, Term::Int(_) | Term::Big(_))) {
            self.nodeup(node, fx);
        }
    }

    /// `send_cancel_connect_message/2`.
    pub(super) fn send_cancel_connect_message(
        &self,
        node: Atom,
        his_tag: &Term,
        fx: &mut dyn Effects,
    ) {
        let msg = tagged("cancel_connect", vec![Term::Atom(self.me), his_tag.clone()]);
        fx.send_noconnect(
            crate::node::Dest::NameAt(Atom::new(super::server::GNS), node),
            msg,
        );
    }

    /// `cancel_locker/4`: tells the locker to drop `node`'s session `tag` (running
    /// `new_nodes` first when given), tells the peer if a connect was pending, and forgets the
    /// session's resolver.
    pub(super) fn cancel_locker(
        &mut self,
        node: Atom,
        tag: Option<Term>,
        new_nodes: Option<Term>,
        fx: &mut dyn Effects,
    ) {
        let tag_term = tag.clone().unwrap_or_else(|| Term::atom("undefined"));
        let fun = new_nodes.unwrap_or_else(|| Term::atom("no_fun"));
        let m = tagged("cancel", vec![Term::Atom(node), tag_term, fun]);
        self.to_locker(fx, m);
        if let (Some(v), Some(t)) = (self.pending.get(&node), tag.as_ref()) {
            if *v >= VSN && self.is_my_tag(node, t) {
                let his = self.his_tag(node);
                self.send_cancel_connect_message(node, &his, fx);
            }
        }
        if self
            .resolvers
            .get(&node)
            .is_some_and(|t| Some(t) == tag.as_ref())
        {
            self.resolvers.remove(&node);
        }
    }

    /// `handle_cast({lock_is_set, Node, MyTag, LockId})` from our locker.
    pub(super) fn lock_is_set_cast(
        &mut self,
        node: Atom,
        tag: &Term,
        lock_id: Term,
        fx: &mut dyn Effects,
    ) {
        if !self.is_my_tag(node, tag) {
            self.cancel_locker(node, Some(tag.clone()), None, fx);
            return;
        }
        let names = Term::list(self.names().name_list());
        let his = self.his_tag(node);
        self.cast_to(
            fx,
            node,
            tagged("exchange", vec![Term::Atom(self.me), names, Term::Nil, his]),
        );
        let d = self.dict(node);
        d.lock_id = Some(lock_id);
        match std::mem::take(&mut d.wait_lock) {
            WaitLock::Exchange(list) => {
                d.wait_lock = WaitLock::LockIsSet;
                self.exchange(node, list, fx);
            }
            _ => d.wait_lock = WaitLock::LockIsSet,
        }
    }

    /// `handle_cast({exchange, Node, NameList, _, MyTag})`.
    pub(super) fn exchange_cast(
        &mut self,
        node: Atom,
        names: Vec<Term>,
        tag: &Term,
        fx: &mut dyn Effects,
    ) {
        if self.is_my_tag(node, tag) {
            self.exchange(node, names, fx);
        } else {
            self.cancel_locker(node, Some(tag.clone()), None, fx);
        }
    }

    /// `exchange/3`: once both the lock and the peer's names are here, resolve.
    fn exchange(&mut self, node: Atom, names: Vec<Term>, fx: &mut dyn Effects) {
        let d = self.dict(node);
        match std::mem::take(&mut d.wait_lock) {
            WaitLock::LockIsSet => {
                if self.resolvers.contains_key(&node) {
                    self.resolve(node, names, fx);
                }
            }
            _ => d.wait_lock = WaitLock::Exchange(names),
        }
    }

    /// The resolver (`resolver/2` + `exchange_names/4`) and then `exchange_ops`: conflicts
    /// are resolved here only when our node name is the smaller one. We cannot run the
    /// registration's `Method` fun, so a conflict is resolved as the default
    /// `global:random_exit_name/3` does: the pid on the smaller node wins and the other is
    /// killed (docs/decisions.md).
    fn resolve(&mut self, node: Atom, names: Vec<Term>, fx: &mut dyn Effects) {
        let mut ops = Vec::new();
        let mut res = Vec::new();
        for entry in names {
            let Some([name, Term::Pid(pid), method]) = entry.as_tuple_n::<3>() else {
                continue;
            };
            let ours = self.names().get(&TermKey::new(name.clone())).cloned();
            match ours {
                Some(e) if e.pid == *pid => {}
                Some(e) if self.me < node => {
                    let (min, max) = if e.pid.node < pid.node {
                        (e.pid, *pid)
                    } else {
                        (*pid, e.pid)
                    };
                    tracing::info!(?name, loser = ?max, "global: name conflict, terminating the loser");
                    fx.exit(max, Term::atom("kill"));
                    if min == *pid {
                        ops.push(insert_op(name, *pid, method));
                    } else {
                        res.push(insert_op(name, e.pid, &e.method));
                    }
                }
                Some(_) => {}
                None => ops.push(insert_op(name, *pid, method)),
            }
        }
        let his = self.his_tag(node);
        let resolved = tagged(
            "resolved",
            vec![
                Term::Atom(self.me),
                Term::list(res),
                self.known_list(),
                Term::atom("unused"),
                Term::Nil,
                his,
            ],
        );
        self.cast_to(fx, node, resolved);
        let d = self.dict(node);
        if let SaveOps::Resolved {
            his_known,
            his_resolved,
        } = std::mem::replace(&mut d.save_ops, SaveOps::Ops(ops))
        {
            self.resolved(node, his_resolved, his_known, fx);
        }
    }

    /// `handle_cast({resolved, Node, HisResolved, HisKnown, _, _, MyTag})`.
    pub(super) fn resolved_cast(
        &mut self,
        node: Atom,
        his_resolved: Vec<Term>,
        his_known: Vec<Term>,
        tag: &Term,
        fx: &mut dyn Effects,
    ) {
        if !self.is_my_tag(node, tag) {
            self.cancel_locker(node, Some(tag.clone()), None, fx);
            return;
        }
        let d = self.dict(node);
        if matches!(d.save_ops, SaveOps::Ops(_)) {
            self.resolved(node, his_resolved, his_known, fx);
        } else {
            d.save_ops = SaveOps::Resolved {
                his_known,
                his_resolved,
            };
        }
    }

    /// `resolved/5`: apply the ops, tell our old partition about the new nodes (through the
    /// locker, before it releases the lock), connect to the peer's partition.
    fn resolved(
        &mut self,
        node: Atom,
        his_resolved: Vec<Term>,
        his_known: Vec<Term>,
        fx: &mut dyn Effects,
    ) {
        let mut ops = match std::mem::take(&mut self.dict(node).save_ops) {
            SaveOps::Ops(o) => o,
            _ => Vec::new(),
        };
        ops.extend(his_resolved);
        let old_known: Vec<(Atom, u32)> = self.known.iter().map(|(n, v)| (*n, *v)).collect();
        let mut new_nodes = vec![(node, self.node_vsn(node))];
        for k in &his_known {
            if let Some(nv) = self.node_vsn_entry(k) {
                new_nodes.push(nv);
            }
        }
        let his_known_nodes: Vec<Atom> = new_nodes[1..].iter().map(|(n, _)| *n).collect();
        fx.sync_others(his_known_nodes.clone());
        let d = self.dict(node);
        let vsn = d.prot_vsn.unwrap_or(VSN);
        let lock_id = d.lock_id.clone().unwrap_or_else(|| Term::atom("undefined"));
        let extra = Term::list(vec![
            Term::tuple(vec![Term::atom("vsn"), Term::Int(i64::from(vsn))]),
            Term::tuple(vec![Term::atom("lock"), lock_id.clone()]),
        ]);
        self.do_ops(&ops, None, Some(&lock_id), fx);
        self.syncers_synced(node, fx);
        for n in &his_known_nodes {
            let tag = self.my_tag(*n).cloned();
            self.pending.remove(n);
            self.cancel_locker(*n, tag, None, fx);
            self.dict.remove(n);
        }
        let nodes_term = Term::list(
            new_nodes
                .iter()
                .map(|(n, v)| Term::tuple(vec![Term::Atom(*n), Term::Int(i64::from(*v))]))
                .collect::<Vec<_>>(),
        );
        let msg = tagged(
            "new_nodes",
            vec![
                Term::Atom(self.me),
                Term::list(ops),
                Term::Nil,
                nodes_term,
                extra,
            ],
        );
        let targets: Vec<Term> = old_known.iter().map(|(n, _)| Term::Atom(*n)).collect();
        let fun = tagged(
            "new_nodes_to",
            vec![super::terms::cast(msg), Term::list(targets)],
        );
        let tag = self.my_tag(node).cloned();
        self.pending.remove(&node);
        self.cancel_locker(node, tag, Some(fun), fx);
        self.dict.remove(&node);
        let added = self.add_to_known(&new_nodes);
        let added_term = Term::list(added.iter().copied().map(Term::Atom).collect::<Vec<_>>());
        self.to_locker(fx, tagged("add_to_known", vec![added_term]));
        if !self.synced.contains(&node) {
            self.synced.insert(0, node);
        }
    }

    /// An entry of a known list: `Node` or `{Node, Vsn}` (`make_node_vsn_list/2`).
    fn node_vsn_entry(&self, t: &Term) -> Option<(Atom, u32)> {
        match t {
            Term::Atom(n) => Some((*n, self.node_vsn(*n))),
            _ => {
                let [n, v] = t.as_tuple_n::<2>()?;
                let n = n.as_atom()?;
                match v.as_u32()? {
                    0 => Some((n, self.node_vsn(n))),
                    v => Some((n, v)),
                }
            }
        }
    }

    /// `add_to_known/2`: returns the nodes that were new.
    fn add_to_known(&mut self, nodes: &[(Atom, u32)]) -> Vec<Atom> {
        let mut added = Vec::new();
        for (n, v) in nodes {
            if *n == self.me || self.known.contains_key(n) {
                continue;
            }
            self.known.insert(*n, *v);
            added.push(*n);
        }
        added
    }

    /// `do_ops/5`: `{insert, {Name, Pid, Method}}` and `{delete, Name}`.
    fn do_ops(
        &mut self,
        ops: &[Term],
        from: Option<Pid>,
        lock_id: Option<&Term>,
        fx: &mut dyn Effects,
    ) {
        for op in ops {
            match op.as_tuple() {
                Some([k, entry]) if k.is_atom("insert") => {
                    if let Some([name, Term::Pid(pid), method]) = entry.as_tuple_n::<3>() {
                        self.ins_name(name.clone(), *pid, method.clone(), from, lock_id, fx);
                    }
                }
                Some([k, name]) if k.is_atom("delete") => {
                    self.delete_global_name(&TermKey::new(name.clone()), fx);
                }
                _ => tracing::debug!(?op, "global: unknown op ignored"),
            }
        }
    }

    /// `handle_cast({new_nodes, Node, Ops, _, Nodes, ExtraInfo})`.
    pub(super) fn new_nodes(
        &mut self,
        _node: Atom,
        ops: Vec<Term>,
        nodes: Vec<Term>,
        extra: &Term,
        fx: &mut dyn Effects,
    ) {
        let entries: Vec<(Atom, u32)> = nodes
            .iter()
            .filter_map(|t| self.node_vsn_entry(t))
            .collect();
        let added = self.add_to_known(&entries);
        fx.sync_others(added.clone());
        let lock_id = list_of(extra).and_then(|l| {
            l.iter().find_map(|e| match e.as_tuple() {
                Some([k, v]) if k.is_atom("lock") => Some(v.clone()),
                _ => None,
            })
        });
        self.do_ops(&ops, None, lock_id.as_ref(), fx);
        let added_term = Term::list(added.into_iter().map(Term::Atom).collect::<Vec<_>>());
        self.to_locker(fx, tagged("add_to_known", vec![added_term]));
    }

    /// `handle_cast({in_sync, Node, _})`.
    pub(super) fn in_sync(&mut self, node: Atom, fx: &mut dyn Effects) {
        self.syncers_synced(node, fx);
        if !self.synced.contains(&node) {
            self.synced.insert(0, node);
        }
        self.pending.remove(&node);
        let tag = self.my_tag(node).cloned();
        self.cancel_locker(node, tag, None, fx);
        self.dict.remove(&node);
    }
}

fn insert_op(name: &Term, pid: Pid, method: &Term) -> Term {
    Term::tuple(vec![
        Term::atom("insert"),
        Term::tuple(vec![name.clone(), Term::Pid(pid), method.clone()]),
    ])
}
