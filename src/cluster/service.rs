//! The `beamq_cluster` functions and the membership they change (`ekka_cluster:join/1`,
//! `leave/0`, `force_leave/1`, `info/0`; `ekka_membership` for peers telling each other).
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::state::{path_in, Membership, StateError};
use crate::dist::etf::{Atom, Term};
use crate::node::{Exception, Node};

/// The erpc module name of every cluster function.
pub const MODULE: &str = "beamq_cluster";
/// How long one member waits for another during join/leave.
pub const PEER_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a member that was told to drop a peer keeps the connection, so its reply arrives.
const REPLY_GRACE: Duration = Duration::from_millis(200);

/// A node's membership service.
pub struct Cluster {
    node: Node,
    path: PathBuf,
    state: Mutex<Membership>,
}

fn error(reason: Term) -> Term {
    Term::tuple(vec![Term::atom("error"), reason])
}

fn atom_list<'a>(names: impl IntoIterator<Item = &'a String>) -> Term {
    Term::list(names.into_iter().map(|n| Term::atom(n)).collect::<Vec<_>>())
}

fn is_ok(t: &Term) -> bool {
    t.is_atom("ok")
}

impl Cluster {
    fn lock(&self) -> MutexGuard<'_, Membership> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn me(&self) -> String {
        self.node.name().as_str().to_string()
    }

    /// Changes the membership and writes it to disk.
    fn update(&self, f: impl FnOnce(&mut Membership)) {
        let snapshot = {
            let mut m = self.lock();
            f(&mut m);
            m.clone()
        };
        if let Err(e) = snapshot.save(&self.path) {
            tracing::error!(error = %e, "cannot save cluster membership");
        }
    }

    /// The node this service runs on.
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// The current membership.
    pub fn membership(&self) -> Membership {
        self.lock().clone()
    }

    /// Members other than this node.
    pub fn others(&self) -> Vec<Atom> {
        let me = self.me();
        self.lock()
            .members
            .iter()
            .filter(|m| **m != me)
            .filter_map(|m| Atom::try_new(m).ok())
            .collect()
    }

    /// `status/0`: `[{running_nodes, [...]}] ++ [{stopped_nodes, [...]} || Stopped =/= []]`
    /// (`ekka_mnesia:cluster_status/0` as `emqx_ctl cluster status` prints it).
    pub fn status(&self) -> Term {
        let me = self.me();
        let members = self.lock().members.clone();
        let (running, stopped): (Vec<&String>, Vec<&String>) = members
            .iter()
            .partition(|m| **m == me || Atom::try_new(m).is_ok_and(|a| self.node.is_connected(a)));
        let mut out = vec![Term::tuple(vec![
            Term::atom("running_nodes"),
            atom_list(running),
        ])];
        if !stopped.is_empty() {
            out.push(Term::tuple(vec![
                Term::atom("stopped_nodes"),
                atom_list(stopped),
            ]));
        }
        Term::list(out)
    }

    /// `beamq_cluster:F(Args)` on `peer`, up to `tries` times. A connection torn down during
    /// the call (a restart, or `global`'s prevent_overlapping_partitions dropping it while
    /// another member re-forms its links: `lib/kernel/src/global.erl`, `lost_connection`) is
    /// reconnected and the call made again, as `interop/beamq_cluster.erl` does; every function
    /// called this way is idempotent.
    async fn call_member(&self, peer: Atom, function: &str, args: Vec<Term>, tries: u32) -> Term {
        let mut left = tries.max(1);
        loop {
            let r = self
                .node
                .rpc_call(peer, MODULE, function, args.clone(), Some(PEER_TIMEOUT))
                .await;
            left -= 1;
            let failed = !is_ok(&r) && !r.as_tuple_n::<2>().is_some_and(|[tag, _]| is_ok(tag));
            if !failed || left == 0 || self.node.is_connected(peer) {
                return r;
            }
            if !self.node.connect(peer).await {
                return r;
            }
            tracing::info!(
                peer = peer.as_str(),
                function,
                "connection lost during the call; again"
            );
        }
    }

    /// Tells every other member `beamq_cluster:F(Args)`, best effort.
    async fn tell_others(&self, function: &str, args: Vec<Term>) {
        for peer in self.others() {
            let r = self.call_member(peer, function, args.clone(), 2).await;
            if !is_ok(&r) {
                tracing::info!(peer = peer.as_str(), function, reply = ?r, "cluster peer not told");
            }
        }
    }

    /// `leave/0`: tell the others, then stand alone.
    pub async fn leave(&self) -> Term {
        let me = self.me();
        let others = self.others();
        if others.is_empty() {
            return error(Term::atom("node_not_in_cluster"));
        }
        self.tell_others("member_left", vec![Term::atom(&me)]).await;
        self.update(|m| *m = Membership::alone(&me));
        for p in others {
            self.node.disconnect(p);
        }
        tracing::info!("left the cluster");
        Term::atom("ok")
    }

    /// `join/1`: leave the current cluster, ask `target` to admit this node, take its list.
    pub async fn join(&self, target: Atom) -> Term {
        let me = self.me();
        if target.as_str() == me {
            return error(Term::atom("cannot_join_self"));
        }
        if self.lock().members.contains(target.as_str()) && self.node.is_connected(target) {
            return error(Term::atom("already_in_cluster"));
        }
        if !self.node.connect(target).await {
            return error(Term::tuple(vec![
                Term::atom("node_down"),
                Term::Atom(target),
            ]));
        }
        if !self.others().is_empty() {
            self.leave().await;
        }
        let reply = self
            .call_member(target, "admit", vec![Term::atom(&me)], 3)
            .await;
        let Some([ok, list]) = reply.as_tuple_n::<2>() else {
            return error(reply);
        };
        let Some(list) = list.as_list().filter(|_| is_ok(ok)) else {
            return error(reply);
        };
        let members: BTreeSet<String> = list
            .iter()
            .filter_map(|t| t.as_atom().map(|a| a.as_str().to_string()))
            .chain([me.clone()])
            .collect();
        self.update(|m| {
            m.members = members;
            m.force_left = false;
        });
        for p in self.others() {
            let _ = self.node.connect(p).await;
        }
        tracing::info!(target = target.as_str(), "joined the cluster");
        Term::atom("ok")
    }

    /// `admit/1` (on the joined node): add `node`, tell the others, reply `{ok, Members}`.
    async fn admit(&self, node: Atom) -> Term {
        self.tell_others("member_joined", vec![Term::Atom(node)])
            .await;
        self.update(|m| {
            m.members.insert(node.as_str().to_string());
        });
        Term::tuple(vec![Term::atom("ok"), atom_list(&self.lock().members)])
    }

    /// `force_leave/1`: remove `node`, which must not come back by itself.
    pub async fn force_leave(&self, node: Atom) -> Term {
        if node.as_str() == self.me() {
            return error(Term::atom("cannot_force_leave_self"));
        }
        if !self.lock().members.contains(node.as_str()) {
            return error(Term::atom("node_not_in_cluster"));
        }
        if self.node.is_connected(node) {
            let _ = self
                .node
                .rpc_call(node, MODULE, "forced_out", vec![], Some(PEER_TIMEOUT))
                .await;
        }
        self.update(|m| {
            m.members.remove(node.as_str());
        });
        self.tell_others("member_left", vec![Term::Atom(node)])
            .await;
        self.node.disconnect(node);
        tracing::info!(node = node.as_str(), "removed from the cluster");
        Term::atom("ok")
    }

    /// `member_left/1`: another member left or was removed. The disconnect waits until the
    /// reply has gone out: cutting the connection at once makes `global`'s
    /// prevent_overlapping_partitions ask the other members to drop the leaving node too, before
    /// it has told them (`lib/kernel/src/global.erl`, `lost_connection`), so they would keep it.
    fn member_left(&self, node: Atom) -> Term {
        self.update(|m| {
            m.members.remove(node.as_str());
        });
        self.disconnect_soon(vec![node]);
        Term::atom("ok")
    }

    /// Disconnects `peers` once the current reply has been sent.
    fn disconnect_soon(&self, peers: Vec<Atom>) {
        let node = self.node.clone();
        tokio::spawn(async move {
            tokio::time::sleep(REPLY_GRACE).await;
            for p in peers {
                node.disconnect(p);
            }
        });
    }

    /// `forced_out/0`: this node was force-left; record it and stand alone.
    fn forced_out(&self) -> Term {
        let me = self.me();
        let others = self.others();
        self.update(|m| {
            *m = Membership::alone(&me);
            m.force_left = true;
        });
        tracing::warn!("removed from the cluster by force-leave; standing alone");
        self.disconnect_soon(others);
        Term::atom("ok")
    }

    /// `is_member/1`: asked by a restarted member before it rejoins the mesh.
    fn is_member(&self, node: Atom) -> Term {
        Term::atom(if self.lock().members.contains(node.as_str()) {
            "true"
        } else {
            "false"
        })
    }

    /// Drops `peer` from this node's members (the peer no longer lists this node).
    pub(super) fn forget(&self, peer: Atom) {
        tracing::info!(
            peer = peer.as_str(),
            "member no longer lists this node; dropped"
        );
        self.member_left(peer);
    }
}

fn one_atom(args: &[Term]) -> Result<Atom, Exception> {
    args.first()
        .and_then(Term::as_atom)
        .ok_or_else(Exception::badarg)
}

/// Loads the membership from `data_dir`, registers the `beamq_cluster` functions and starts
/// the mesh keeper.
pub fn start(node: &Node, data_dir: &Path) -> Result<Arc<Cluster>, StateError> {
    let path = path_in(data_dir);
    let me = node.name().as_str().to_string();
    let mut m = Membership::load(&path, &me)?;
    if m.force_left {
        m = Membership {
            force_left: true,
            ..Membership::alone(&me)
        };
    }
    m.save(&path)?;
    let c = Arc::new(Cluster {
        node: node.clone(),
        path,
        state: Mutex::new(m),
    });
    register(node, &c);
    super::mesh::spawn(c.clone());
    Ok(c)
}

fn register(node: &Node, c: &Arc<Cluster>) {
    let f = node.functions();
    let s = c.clone();
    f.register_sync(MODULE, "status", 0, move |_, _| Ok(s.status()));
    let s = c.clone();
    f.register(MODULE, "join", 1, move |_, args| {
        let s = s.clone();
        async move { Ok(s.join(one_atom(&args)?).await) }
    });
    let s = c.clone();
    f.register(MODULE, "leave", 0, move |_, _| {
        let s = s.clone();
        async move { Ok(s.leave().await) }
    });
    let s = c.clone();
    f.register(MODULE, "force_leave", 1, move |_, args| {
        let s = s.clone();
        async move { Ok(s.force_leave(one_atom(&args)?).await) }
    });
    let s = c.clone();
    f.register(MODULE, "admit", 1, move |_, args| {
        let s = s.clone();
        async move { Ok(s.admit(one_atom(&args)?).await) }
    });
    let s = c.clone();
    f.register_sync(MODULE, "member_joined", 1, move |_, args| {
        let n = one_atom(args)?;
        s.update(|m| {
            m.members.insert(n.as_str().to_string());
        });
        Ok(Term::atom("ok"))
    });
    let s = c.clone();
    f.register_sync(MODULE, "member_left", 1, move |_, args| {
        Ok(s.member_left(one_atom(args)?))
    });
    let s = c.clone();
    f.register_sync(MODULE, "forced_out", 0, move |_, _| Ok(s.forced_out()));
    let s = c.clone();
    f.register_sync(MODULE, "is_member", 1, move |_, args| {
        Ok(s.is_member(one_atom(args)?))
    });
}
