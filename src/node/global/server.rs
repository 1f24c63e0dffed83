//! `global_name_server` without I/O: its state and the call/cast/info dispatch of
//! `lib/kernel/src/global.erl` (OTP 25, protocol vsn 8). The connect protocol is in
//! [`super::connect`], partition handling in [`super::partition`]; the locker runs as its own
//! process ([`super::locker`]) because it makes blocking multi-calls, to this server included.
//!
//! Every effect (monitor, send, reply, exit, disconnect) goes through [`Effects`], so tests
//! drive the server with terms and read what it would send.
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use super::locks::{CanLock, LockTable, GLOBAL_RID};
use super::names::{NameEntry, NameTable};
use super::terms::{cast, tagged};
use crate::dist::etf::{Atom, Pid, Reference, Term};
use crate::node::pg::TermKey;
use crate::node::Dest;

/// Our protocol version (`-define(vsn, 8)`).
pub const VSN: u32 = 8;
/// The registered name.
pub const GNS: &str = "global_name_server";

/// What the server asks of the process running it.
pub trait Effects {
    /// `erlang:monitor(process, Pid)`.
    fn monitor(&mut self, pid: Pid) -> Reference;
    /// `erlang:demonitor(Ref, [flush])`.
    fn demonitor(&mut self, reference: Reference);
    /// `Dest ! Msg` (connects when needed, as `gen_server:cast/2` does).
    fn send(&mut self, to: Dest, msg: Term);
    /// `erlang:send(Dest, Msg, [noconnect])`.
    fn send_noconnect(&mut self, to: Dest, msg: Term);
    /// `gen_server:reply(From, Reply)`.
    fn reply(&mut self, from: &Term, reply: Term);
    /// `exit(Pid, Reason)` from the server.
    fn exit(&mut self, pid: Pid, reason: Term);
    /// `net_kernel:async_disconnect(Node)`.
    fn disconnect(&mut self, node: Atom);
    /// `sync_others(Nodes)`: connect to each node and cast `{in_sync, node(), true}` to its
    /// server, or report `{extra_nodedown, Node}` back when it cannot be reached.
    fn sync_others(&mut self, nodes: Vec<Atom>);
}

/// `{wait_lock, Node}` in the process dictionary.
#[derive(Debug, Clone, Default)]
pub(super) enum WaitLock {
    #[default]
    Nothing,
    LockIsSet,
    Exchange(Vec<Term>),
}

/// `{save_ops, Node}`.
#[derive(Debug, Clone, Default)]
pub(super) enum SaveOps {
    #[default]
    Nothing,
    Ops(Vec<Term>),
    Resolved {
        his_known: Vec<Term>,
        his_resolved: Vec<Term>,
    },
}

/// Per-node connect session (the process-dictionary keys `reset_node_state/1` erases).
#[derive(Debug, Clone, Default)]
pub(super) struct NodeDict {
    pub(super) my_tag: Option<Term>,
    pub(super) his_tag: Option<Term>,
    pub(super) prot_vsn: Option<u32>,
    pub(super) wait_lock: WaitLock,
    pub(super) save_ops: SaveOps,
    pub(super) pre_connect: Option<(u32, Term, Term)>,
    pub(super) lock_id: Option<Term>,
}

/// A local `global:sync()` waiting for nodes.
#[derive(Debug)]
pub(super) struct Syncer {
    pub(super) from: Term,
    pub(super) waiting: HashSet<Atom>,
}

/// The server's state (`#state{}` plus the process dictionary).
#[derive(Debug)]
pub struct GlobalState {
    pub(super) me: Atom,
    pub(super) locker: Pid,
    /// Known nodes with their protocol version (`known` atom keys).
    pub(super) known: BTreeMap<Atom, u32>,
    /// `{pending, Node}` keys: connects in progress.
    pub(super) pending: HashMap<Atom, u32>,
    /// `{removing, Node}` keys.
    pub(super) removing: HashSet<Atom>,
    pub(super) synced: Vec<Atom>,
    /// `resolvers`: a connect session started by our nodeup, with our tag.
    pub(super) resolvers: HashMap<Atom, Term>,
    pub(super) dict: HashMap<Atom, NodeDict>,
    pub(super) syncers: Vec<Syncer>,
    pub(super) names: Arc<Mutex<NameTable>>,
    pub(super) locks: Arc<Mutex<LockTable>>,
    pub(super) global_lock_down: bool,
    /// `global_lost_connections`: (reporter, lost node) → (extended creation, op id).
    pub(super) lost: HashMap<(Atom, Atom), (Term, i128)>,
    next_tag: i64,
    pub(super) creation_extension: i64,
}

/// A message the server does not understand (BEAM logs these and carries on).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("global_name_server: unexpected message {0:?}")]
pub struct Unexpected(pub Term);

impl GlobalState {
    /// A server for node `me` with its locker.
    pub fn new(
        me: Atom,
        locker: Pid,
        names: Arc<Mutex<NameTable>>,
        locks: Arc<Mutex<LockTable>>,
    ) -> GlobalState {
        let seed: u32 = rand::random();
        GlobalState {
            me,
            locker,
            known: BTreeMap::new(),
            pending: HashMap::new(),
            removing: HashSet::new(),
            synced: Vec::new(),
            resolvers: HashMap::new(),
            dict: HashMap::new(),
            syncers: Vec::new(),
            names,
            locks,
            global_lock_down: false,
            lost: HashMap::new(),
            next_tag: -(1 << 30) + i64::from(seed >> 4),
            creation_extension: i64::from(rand::random::<u32>() >> 1) << 30,
        }
    }

    pub(super) fn names(&self) -> MutexGuard<'_, NameTable> {
        self.names.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn locks(&self) -> MutexGuard<'_, LockTable> {
        self.locks.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `erlang:unique_integer([monotonic])` for session tags; small integers, so they
    /// round-trip as INTEGER_EXT (any integer is a valid tag).
    pub(super) fn new_tag(&mut self) -> Term {
        self.next_tag += 1;
        Term::Int(self.next_tag)
    }

    /// Nodes we are synced with (`global:info()`'s `synced`).
    pub fn synced(&self) -> &[Atom] {
        &self.synced
    }

    /// Known nodes (`get_known`).
    pub fn known(&self) -> Vec<Atom> {
        self.known.keys().copied().collect()
    }

    pub(super) fn dict(&mut self, node: Atom) -> &mut NodeDict {
        self.dict.entry(node).or_default()
    }

    pub(super) fn my_tag(&self, node: Atom) -> Option<&Term> {
        self.dict.get(&node).and_then(|d| d.my_tag.as_ref())
    }

    pub(super) fn his_tag(&self, node: Atom) -> Term {
        self.dict
            .get(&node)
            .and_then(|d| d.his_tag.clone())
            .unwrap_or_else(|| Term::atom("undefined"))
    }

    /// True when `tag` is our current tag for `node`.
    pub(super) fn is_my_tag(&self, node: Atom, tag: &Term) -> bool {
        self.my_tag(node) == Some(tag)
    }

    /// `gen_server:cast({global_name_server, Node}, Body)`.
    /// Without connecting: a session message for a node that is gone is moot.
    pub(super) fn cast_to(&self, fx: &mut dyn Effects, node: Atom, body: Term) {
        fx.send_noconnect(Dest::NameAt(Atom::new(GNS), node), cast(body));
    }

    /// A message to our locker.
    pub(super) fn to_locker(&self, fx: &mut dyn Effects, msg: Term) {
        fx.send(Dest::Pid(self.locker), msg);
    }

    /// `node_vsn/2`.
    pub(super) fn node_vsn(&self, node: Atom) -> u32 {
        if node == self.me {
            return VSN;
        }
        self.known
            .get(&node)
            .or_else(|| self.pending.get(&node))
            .copied()
            .unwrap_or(0)
    }

    /// `mk_known_list(Vsn, S)` for a vsn 7+ peer: `[{Node, Vsn}]`.
    pub(super) fn known_list(&self) -> Term {
        Term::list(
            self.known
                .iter()
                .map(|(n, v)| Term::tuple(vec![Term::Atom(*n), Term::Int(i64::from(*v))]))
                .collect::<Vec<_>>(),
        )
    }

    /// One message from the mailbox (`nodeup`/`nodedown` come through [`Self::nodeup`] and
    /// [`Self::nodedown`], after the driver dropped hidden nodes).
    pub fn handle(&mut self, msg: &Term, fx: &mut dyn Effects) -> Result<(), Unexpected> {
        let bad = || Unexpected(msg.clone());
        let t = msg.as_tuple().ok_or_else(bad)?;
        match t {
            [tag, from, req] if tag.is_atom("$gen_call") => {
                self.handle_call(req, from, fx).ok_or_else(bad)
            }
            [tag, req] if tag.is_atom("$gen_cast") => self.handle_cast(req, fx).ok_or_else(bad),
            _ => self.handle_info(t, fx).ok_or_else(bad),
        }
    }

    fn handle_call(&mut self, req: &Term, from: &Term, fx: &mut dyn Effects) -> Option<()> {
        let from_pid = from
            .as_tuple()
            .and_then(|t| t.first())
            .and_then(Term::as_pid)?;
        if let Some(a) = req.as_atom() {
            let reply = match a.as_str() {
                "get_known" => {
                    Term::list(self.known().into_iter().map(Term::Atom).collect::<Vec<_>>())
                }
                "get_synced" => Term::list(
                    self.synced
                        .iter()
                        .copied()
                        .map(Term::Atom)
                        .collect::<Vec<_>>(),
                ),
                "get_protocol_version" => Term::Int(i64::from(VSN)),
                "get_names_ext" => Term::Nil,
                _ => return None,
            };
            fx.reply(from, reply);
            return Some(());
        }
        let t = req.as_tuple()?;
        match t {
            [op, lock] if op.is_atom("set_lock") => {
                let r = self.handle_set_lock(lock, from_pid, fx);
                fx.reply(from, Term::atom(if r { "true" } else { "false" }));
            }
            [op, lock] if op.is_atom("del_lock") => {
                self.handle_del_lock(lock, from_pid, fx);
                fx.reply(from, Term::atom("true"));
            }
            [op, name, Term::Pid(pid), method] if op.is_atom("register") => {
                self.ins_name(name.clone(), *pid, method.clone(), Some(from_pid), None, fx);
                fx.reply(from, Term::atom("yes"));
            }
            [op, name, Term::Pid(pid), method, _reg_node] if op.is_atom("register_ext") => {
                self.ins_name(name.clone(), *pid, method.clone(), Some(from_pid), None, fx);
                fx.reply(from, Term::atom("yes"));
            }
            [op, name] if op.is_atom("unregister") => {
                self.delete_global_name(&TermKey::new(name.clone()), fx);
                fx.reply(from, Term::atom("ok"));
            }
            [op, nodes] if op.is_atom("sync") => {
                let nodes = super::terms::atoms_of(nodes)?;
                self.start_sync(nodes, from.clone(), fx);
            }
            _ => return None,
        }
        Some(())
    }

    fn handle_cast(&mut self, req: &Term, fx: &mut dyn Effects) -> Option<()> {
        let t = req.as_tuple()?;
        let op = t.first()?.as_atom()?;
        match (op.as_str(), &t[1..]) {
            ("init_connect", [vsn, Term::Atom(node), init_msg]) => {
                self.init_connect(vsn, *node, init_msg, fx)
            }
            ("lock_is_set", [Term::Atom(node), tag, lock_id]) => {
                self.lock_is_set_cast(*node, tag, lock_id.clone(), fx)
            }
            ("exchange", [Term::Atom(node), names, _ext, tag]) => {
                let names = super::terms::list_of(names)?.to_vec();
                self.exchange_cast(*node, names, tag, fx)
            }
            ("resolved", [Term::Atom(node), his_resolved, his_known, _unused, _ext, tag]) => {
                let his_resolved = super::terms::list_of(his_resolved)?.to_vec();
                let his_known = super::terms::list_of(his_known)?.to_vec();
                self.resolved_cast(*node, his_resolved, his_known, tag, fx)
            }
            ("new_nodes", [Term::Atom(node), ops, _ext, nodes, extra]) => {
                let ops = super::terms::list_of(ops)?.to_vec();
                let nodes = super::terms::list_of(nodes)?.to_vec();
                self.new_nodes(*node, ops, nodes, extra, fx)
            }
            ("in_sync", [Term::Atom(node), _is_known]) => self.in_sync(*node, fx),
            ("async_del_name", [_, _]) | ("async_del_lock", [_, _]) => {}
            ("lock_set", [Term::Pid(pid), _set, _known, tag]) => {
                if self.is_my_tag(pid.node, tag) {
                    self.to_locker(fx, req.clone());
                }
            }
            ("lock_set", [Term::Pid(_), _set, _known]) => self.to_locker(fx, req.clone()),
            _ => return None,
        }
        Some(())
    }

    fn handle_info(&mut self, t: &[Term], fx: &mut dyn Effects) -> Option<()> {
        let op = t.first()?.as_atom()?;
        match (op.as_str(), &t[1..]) {
            ("EXIT", [_, _]) => {}
            ("nodeup", [Term::Atom(n), ..]) => self.nodeup(*n, fx),
            ("nodedown", [Term::Atom(n), ..]) => self.nodedown(*n, fx),
            ("extra_nodedown", [Term::Atom(n)]) => {
                self.syncers_nodedown(*n, fx);
                self.handle_nodedown(*n, super::partition::NodeDown::Disconnected, fx);
            }
            ("whereis", [name, from]) => {
                let r = self.where_name(&TermKey::new(name.clone()));
                fx.reply(
                    from,
                    r.map(Term::Pid).unwrap_or_else(|| Term::atom("undefined")),
                );
            }
            ("lost_connection", [Term::Atom(a), xcre, opid, Term::Atom(b)]) => {
                let msg = Term::Tuple(t.to_vec());
                self.lost_connection(msg, *a, xcre, opid, *b, fx)?
            }
            ("remove_connection", [Term::Atom(n)]) => self.remove_connection(*n, fx),
            ("cancel_connect", [Term::Atom(n), tag]) => self.cancel_connect(*n, tag, fx),
            ("init_connect_ack", [Term::Atom(n), his_my, his_his]) => {
                self.init_connect_ack(*n, his_my, his_his, fx)
            }
            ("DOWN", [Term::Ref(r), _, _, _]) => self.down(*r, fx),
            _ => return None,
        }
        Some(())
    }

    /// A lock id `{ResourceId, LockRequesterId}`.
    fn lock_parts(lock: &Term) -> Option<(TermKey, Term)> {
        let [res, req] = lock.as_tuple_n::<2>()?;
        Some((TermKey::new(res.clone()), req.clone()))
    }

    /// `handle_set_lock/3`.
    fn handle_set_lock(&mut self, lock: &Term, pid: Pid, fx: &mut dyn Effects) -> bool {
        let Some((res, req)) = Self::lock_parts(lock) else {
            return false;
        };
        let can = self.locks().can_set(&res, &req);
        match can {
            CanLock::No => false,
            CanLock::Yes(holders) if holders.contains(&pid) => true,
            CanLock::Yes(_) => {
                let r = fx.monitor(pid);
                self.locks().insert(res, req, pid, r);
                true
            }
        }
    }

    /// `handle_del_lock/3`.
    fn handle_del_lock(&mut self, lock: &Term, pid: Pid, fx: &mut dyn Effects) {
        let Some((res, req)) = Self::lock_parts(lock) else {
            return;
        };
        let released = self.locks().release(&res, &req, &pid);
        if let Some((r, freed)) = released {
            fx.demonitor(r);
            if freed && res.term().is_atom(GLOBAL_RID) {
                self.global_lock_down = false;
            }
        }
    }

    /// A monitor fired: a lock holder or a registered process is gone.
    fn down(&mut self, r: Reference, fx: &mut dyn Effects) {
        let freed = self.locks().holder_down(&r);
        if freed.iter().any(|k| k.term().is_atom(GLOBAL_RID)) {
            self.global_lock_down = true;
        }
        let name = self.names().name_of_monitor(&r);
        if let Some(name) = name {
            self.delete_global_name(&name, fx);
        }
    }

    /// `where/1`.
    pub fn where_name(&self, name: &TermKey) -> Option<Pid> {
        self.names().get(name).map(|e| e.pid)
    }

    /// `ins_name/6` + `insert_global_name/6`: registers `name`, monitors the pid, and drops
    /// it again when the lock that protected the registration is gone (`lock_still_set/3`).
    /// `from` is the registrar pid of a `register` call; `lock_id` the lock of a connect.
    pub(super) fn ins_name(
        &mut self,
        name: Term,
        pid: Pid,
        method: Term,
        from: Option<Pid>,
        lock_id: Option<&Term>,
        fx: &mut dyn Effects,
    ) {
        let key = TermKey::new(name);
        let old = self.names().remove(&key);
        if let Some(old) = old {
            fx.demonitor(old.monitor);
        }
        let monitor = fx.monitor(pid);
        self.names().insert(
            key.clone(),
            NameEntry {
                pid,
                method,
                monitor,
            },
        );
        if !self.lock_still_set(from, lock_id) {
            self.delete_global_name(&key, fx);
        }
    }

    fn lock_still_set(&self, from: Option<Pid>, lock_id: Option<&Term>) -> bool {
        let locks = self.locks();
        match locks.get(&TermKey::new(Term::atom(GLOBAL_RID))) {
            Some(l) => match from {
                Some(pid) => l.holders.iter().any(|(p, _)| *p == pid),
                None => {
                    let id = lock_id
                        .and_then(|t| t.as_tuple_n::<2>())
                        .map(|[_, req]| req);
                    id == Some(&l.requester)
                }
            },
            None => !self.global_lock_down,
        }
    }

    /// `delete_global_name2/2`.
    pub(super) fn delete_global_name(&mut self, name: &TermKey, fx: &mut dyn Effects) {
        let removed = self.names().remove(name);
        if let Some(e) = removed {
            fx.demonitor(e.monitor);
        }
    }

    /// `{sync, Nodes}` from a local caller: replies `ok` once every node in `nodes` (minus
    /// ourselves and those synced already) is synced or down.
    fn start_sync(&mut self, nodes: Vec<Atom>, from: Term, fx: &mut dyn Effects) {
        let waiting: HashSet<Atom> = nodes
            .into_iter()
            .filter(|n| *n != self.me && !self.synced.contains(n))
            .collect();
        if waiting.is_empty() {
            fx.reply(&from, Term::atom("ok"));
        } else {
            self.syncers.push(Syncer { from, waiting });
        }
    }

    /// `Pid ! {synced, Nodes}` to every syncer.
    pub(super) fn syncers_synced(&mut self, node: Atom, fx: &mut dyn Effects) {
        self.syncers.retain_mut(|s| {
            s.waiting.remove(&node);
            if s.waiting.is_empty() {
                fx.reply(&s.from, Term::atom("ok"));
                false
            } else {
                true
            }
        });
    }

    /// A syncer's node went down: it stops waiting for it.
    pub(super) fn syncers_nodedown(&mut self, node: Atom, fx: &mut dyn Effects) {
        self.syncers_synced(node, fx);
    }

    /// The `{his_the_locker, ...}` message for our locker.
    pub(super) fn his_the_locker(locker: &Term, vsn: u32, his_tag: &Term, my_tag: &Term) -> Term {
        tagged(
            "his_the_locker",
            vec![
                locker.clone(),
                Term::tuple(vec![Term::Int(i64::from(vsn)), Term::Nil]),
                his_tag.clone(),
                my_tag.clone(),
            ],
        )
    }
}
