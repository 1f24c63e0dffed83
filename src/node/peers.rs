//! Connections to other nodes as the runtime sees them: up (a queue into that connection's
//! writer), connecting (signals wait, bounded), or absent. A send, link, monitor or spawn
//! request to an absent node starts a connection, as BEAM's auto-connect does
//! (`lib/kernel/src/net_kernel.erl` `auto_connect`); exit and demonitor signals for an
//! absent node are dropped, as `erts/emulator/beam/dist.c` drops them.
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use futures_util::future::BoxFuture;
use tokio::sync::{mpsc, oneshot, Notify};

use super::runtime::Node;
use super::signal::{Outgoing, RemoteSignal};
use crate::dist::etf::Atom;

/// Signals queued to one connection's writer before further ones are refused (and logged).
pub const QUEUE_CAP: usize = 1_000_000;
/// Signals queued to one connection above which a sender that may wait does
/// ([`Node::wait_dist_room`]): BEAM suspends a process sending on a busy distribution port,
/// whose output buffer is past `dist_buf_busy_limit` (`erts/emulator/beam/dist.c`,
/// `erts_dsig_send`; 1 MB by default, some 10 k small messages).
pub const BUSY_LIMIT: usize = 16_384;
/// Signals kept for a node while its connection is being set up: as many as a live
/// connection queues (BEAM suspends the sender instead; our sends never block).
pub const PENDING_CAP: usize = QUEUE_CAP;

/// Opens a connection to a node (handshake included) and, on success, hands it to
/// [`Node::peer_up`]; on failure returns an error and the runtime fires nodedown.
pub trait Connector: Send + Sync + 'static {
    /// Connects this node to `peer`.
    fn connect(&self, node: Node, peer: Atom) -> BoxFuture<'static, Result<(), String>>;
}

/// The receiving end a connection's writer drains.
#[derive(Debug)]
pub struct PeerQueue {
    rx: mpsc::UnboundedReceiver<RemoteSignal>,
    queued: Arc<AtomicUsize>,
    room: Arc<Notify>,
}

impl PeerQueue {
    /// The next signal to write; `None` when the runtime dropped the connection.
    pub async fn recv(&mut self) -> Option<RemoteSignal> {
        let s = self.rx.recv().await?;
        self.taken();
        Some(s)
    }

    /// A signal ready now, without waiting (for batching writes).
    pub fn try_recv(&mut self) -> Option<RemoteSignal> {
        let s = self.rx.try_recv().ok()?;
        self.taken();
        Some(s)
    }

    /// One signal left the queue; crossing under [`BUSY_LIMIT`] wakes waiting senders (the
    /// count moves by one, so every crossing passes exactly `BUSY_LIMIT`).
    fn taken(&self) {
        if self.queued.fetch_sub(1, Ordering::AcqRel) == BUSY_LIMIT {
            self.room.notify_waiters();
        }
    }
}

impl Drop for PeerQueue {
    /// The writer is gone: senders waiting for room stop waiting.
    fn drop(&mut self) {
        self.rx.close();
        self.room.notify_waiters();
    }
}

#[derive(Debug, Clone)]
struct PeerLink {
    id: u64,
    hidden: bool,
    tx: mpsc::UnboundedSender<RemoteSignal>,
    queued: Arc<AtomicUsize>,
    room: Arc<Notify>,
}

impl PeerLink {
    /// Waits until the queue is under [`BUSY_LIMIT`] or the writer is gone (true), or until
    /// `deadline` (false).
    async fn wait_room(&self, deadline: tokio::time::Instant) -> bool {
        loop {
            let room = self.room.notified();
            tokio::pin!(room);
            // Registered before the check: a crossing after it wakes us.
            room.as_mut().enable();
            if self.queued.load(Ordering::Acquire) < BUSY_LIMIT || self.tx.is_closed() {
                return true;
            }
            if tokio::time::timeout_at(deadline, room).await.is_err() {
                return false;
            }
        }
    }

    /// Queues `s`; false when it was dropped (queue full, connection closing).
    fn push(&self, node: Atom, s: RemoteSignal) -> bool {
        if self.queued.fetch_add(1, Ordering::AcqRel) >= QUEUE_CAP {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            tracing::warn!(
                node = node.as_str(),
                "connection queue full; signal dropped"
            );
            return false;
        }
        if self.tx.send(s).is_err() {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            return false;
        }
        true
    }
}

enum PeerState {
    Up(PeerLink),
    Connecting {
        pending: VecDeque<RemoteSignal>,
        waiters: Vec<oneshot::Sender<bool>>,
    },
}

/// Every peer connection of the node.
#[derive(Default)]
pub struct Peers {
    inner: Mutex<PeersInner>,
}

#[derive(Default)]
struct PeersInner {
    map: HashMap<Atom, PeerState>,
    connector: Option<Arc<dyn Connector>>,
    next_id: u64,
}

impl RemoteSignal {
    /// Signals that open a connection to an unconnected node (`erlang:send`, `link`,
    /// `monitor`, `spawn_request` do on BEAM).
    fn autoconnects(&self) -> bool {
        matches!(
            self,
            RemoteSignal::Send { .. }
                | RemoteSignal::RegSend { .. }
                | RemoteSignal::AliasSend { .. }
                | RemoteSignal::Link { .. }
                | RemoteSignal::Monitor { .. }
        )
    }
}

impl Peers {
    fn lock(&self) -> MutexGuard<'_, PeersInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sets how outgoing connections are made (none: sends to unconnected nodes are dropped).
    pub fn set_connector(&self, c: Arc<dyn Connector>) {
        self.lock().connector = Some(c);
    }

    /// Queues `o` for its node, connecting first when needed and allowed.
    pub(super) fn route(&self, node: &Node, o: Outgoing) {
        let mut g = self.lock();
        match g.map.get_mut(&o.node) {
            Some(PeerState::Up(link)) => {
                link.push(o.node, o.signal);
            }
            Some(PeerState::Connecting { pending, .. }) => {
                if pending.len() < PENDING_CAP {
                    pending.push_back(o.signal);
                } else {
                    tracing::warn!(node = o.node.as_str(), "pending queue full; signal dropped");
                }
            }
            None if o.signal.autoconnects() => {
                let mut pending = VecDeque::new();
                pending.push_back(o.signal);
                self.start_connect(&mut g, node, o.node, pending, Vec::new());
            }
            None => {}
        }
    }

    /// Queues `o` on its node's connection only while that connection is up (no
    /// auto-connect); false when it is not up or the signal was dropped.
    pub(super) fn route_if_up(&self, o: Outgoing) -> bool {
        match self.lock().map.get(&o.node) {
            Some(PeerState::Up(link)) => link.push(o.node, o.signal),
            _ => false,
        }
    }

    fn start_connect(
        &self,
        g: &mut PeersInner,
        node: &Node,
        peer: Atom,
        pending: VecDeque<RemoteSignal>,
        waiters: Vec<oneshot::Sender<bool>>,
    ) {
        let Some(connector) = g.connector.clone() else {
            drop(pending);
            for w in waiters {
                let _ = w.send(false);
            }
            let node = node.clone();
            tokio::spawn(async move { node.table().nodedown(peer) });
            return;
        };
        g.map
            .insert(peer, PeerState::Connecting { pending, waiters });
        let node = node.clone();
        tokio::spawn(async move {
            if let Err(e) = connector.connect(node.clone(), peer).await {
                tracing::info!(peer = peer.as_str(), error = %e, "connect failed");
                node.inner.peers.connect_failed(&node, peer);
            }
        });
    }

    /// Starts connecting to `peer` unless connected or connecting; the receiver fires
    /// with the outcome (`net_kernel:connect_node/1`).
    pub(super) fn connect(&self, node: &Node, peer: Atom) -> oneshot::Receiver<bool> {
        let (tx, rx) = oneshot::channel();
        let mut g = self.lock();
        match g.map.get_mut(&peer) {
            Some(PeerState::Up(_)) => {
                let _ = tx.send(true);
            }
            Some(PeerState::Connecting { waiters, .. }) => waiters.push(tx),
            None => self.start_connect(&mut g, node, peer, VecDeque::new(), vec![tx]),
        }
        rx
    }

    fn connect_failed(&self, node: &Node, peer: Atom) {
        let state = {
            let mut g = self.lock();
            match g.map.get(&peer) {
                Some(PeerState::Connecting { .. }) => g.map.remove(&peer),
                _ => None,
            }
        };
        if let Some(PeerState::Connecting { waiters, .. }) = state {
            for w in waiters {
                let _ = w.send(false);
            }
            node.table().nodedown(peer);
        }
    }

    /// Registers a connection that finished its handshake and returns its id and queue, and
    /// whether it replaced a connection still registered (a peer that restarted, or the
    /// losing side of a simultaneous connect not yet torn down). Pending signals go first.
    pub(super) fn up(&self, peer: Atom, hidden: bool) -> (u64, PeerQueue, bool) {
        let mut g = self.lock();
        g.next_id += 1;
        let id = g.next_id;
        let (tx, rx) = mpsc::unbounded_channel();
        let link = PeerLink {
            id,
            hidden,
            tx,
            queued: Arc::new(AtomicUsize::new(0)),
            room: Arc::new(Notify::new()),
        };
        let replaced = match g.map.insert(peer, PeerState::Up(link.clone())) {
            Some(PeerState::Connecting { pending, waiters }) => {
                for s in pending {
                    link.push(peer, s);
                }
                for w in waiters {
                    let _ = w.send(true);
                }
                false
            }
            Some(PeerState::Up(_)) => true,
            None => false,
        };
        let queue = PeerQueue {
            rx,
            queued: link.queued,
            room: link.room,
        };
        (id, queue, replaced)
    }

    /// Removes connection `id` to `peer`; false when another connection replaced it.
    pub(super) fn down(&self, peer: Atom, id: u64) -> bool {
        let mut g = self.lock();
        match g.map.get(&peer) {
            Some(PeerState::Up(link)) if link.id == id => {
                g.map.remove(&peer);
                true
            }
            _ => false,
        }
    }

    /// Forgets the connection to `peer` if up: its writer sees the queue close and closes the
    /// socket. True when there was one.
    fn remove_up(&self, peer: Atom) -> bool {
        let mut g = self.lock();
        if let Some(PeerState::Up(_)) = g.map.get(&peer) {
            g.map.remove(&peer);
            true
        } else {
            false
        }
    }

    /// The connection to `peer` when up and busy (over [`BUSY_LIMIT`] queued).
    fn busy_link(&self, peer: Atom) -> Option<PeerLink> {
        match self.lock().map.get(&peer) {
            Some(PeerState::Up(l)) if l.queued.load(Ordering::Acquire) >= BUSY_LIMIT => {
                Some(l.clone())
            }
            _ => None,
        }
    }

    /// True when a connection to `peer` is up.
    pub fn is_up(&self, peer: Atom) -> bool {
        matches!(self.lock().map.get(&peer), Some(PeerState::Up(_)))
    }

    /// `(visible, hidden)` connected nodes.
    pub(super) fn connected(&self) -> (Vec<Atom>, Vec<Atom>) {
        let g = self.lock();
        let mut visible = Vec::new();
        let mut hidden = Vec::new();
        for (n, s) in &g.map {
            if let PeerState::Up(l) = s {
                if l.hidden {
                    hidden.push(*n);
                } else {
                    visible.push(*n);
                }
            }
        }
        visible.sort();
        hidden.sort();
        (visible, hidden)
    }
}

impl Node {
    /// Hands a connection that completed its handshake to the runtime: returns its id and
    /// the queue its writer drains. A connection it replaces counts as gone first (its links
    /// and monitors fire `noconnection`; its writer sees its queue close).
    pub fn peer_up(&self, peer: Atom, hidden: bool) -> (u64, PeerQueue) {
        let (id, queue, replaced) = self.inner.peers.up(peer, hidden);
        let mut t = self.table();
        if replaced {
            tracing::info!(peer = peer.as_str(), "connection replaced; nodedown first");
            t.nodedown(peer);
        }
        t.nodeup(peer);
        drop(t);
        tracing::info!(peer = peer.as_str(), hidden, "nodeup");
        (id, queue)
    }

    /// Waits while the connection to `peer` is busy (more than [`BUSY_LIMIT`] signals queued
    /// for its writer), at most `limit`: what `erlang:send` does to a process sending on a busy
    /// distribution port, bounded in time. True when there is room (or no connection: the send
    /// that follows finds out), false when `limit` passed.
    pub async fn wait_dist_room(&self, peer: Atom, limit: std::time::Duration) -> bool {
        match self.inner.peers.busy_link(peer) {
            Some(link) => link.wait_room(tokio::time::Instant::now() + limit).await,
            None => true,
        }
    }

    /// True when the connection to `peer` is busy (see [`Node::wait_dist_room`]).
    pub fn dist_busy(&self, peer: Atom) -> bool {
        self.inner.peers.busy_link(peer).is_some()
    }

    /// The connection `id` to `peer` ended: links and monitors across it fire `noconnection`.
    pub fn peer_down(&self, peer: Atom, id: u64) {
        if self.inner.peers.down(peer, id) {
            tracing::info!(peer = peer.as_str(), "nodedown");
            self.table().nodedown(peer);
        }
    }

    /// `erlang:disconnect_node/1`: closes the connection to `peer`; links and monitors across
    /// it fire `noconnection` at once. False when not connected.
    pub fn disconnect(&self, peer: Atom) -> bool {
        let removed = self.inner.peers.remove_up(peer);
        if removed {
            tracing::info!(peer = peer.as_str(), "disconnected; nodedown");
            self.table().nodedown(peer);
        }
        removed
    }

    /// True while a connection to `peer` is up.
    pub fn is_connected(&self, peer: Atom) -> bool {
        self.inner.peers.is_up(peer)
    }

    /// Starts connecting to `peer` if not connected (for `monitor_node`).
    pub(super) fn ensure_connected(&self, peer: Atom) {
        drop(self.inner.peers.connect(self, peer));
    }

    /// `net_kernel:connect_node/1`: true once connected.
    pub async fn connect(&self, peer: Atom) -> bool {
        if peer == self.name() {
            return true;
        }
        self.inner.peers.connect(self, peer).await.unwrap_or(false)
    }

    /// Sets how this node opens connections to others (auto-connect, `connect`).
    pub fn set_connector(&self, c: Arc<dyn Connector>) {
        self.inner.peers.set_connector(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dist::etf::{Pid, Term};
    use std::time::Duration;

    #[tokio::test]
    async fn a_sender_waits_while_the_connection_is_busy() {
        let node = Node::new(Atom::new("busy@127.0.0.1"), 1);
        let peer = Atom::new("far@127.0.0.1");
        let (_, mut q) = node.peer_up(peer, false);
        let from = Pid {
            node: node.name(),
            id: 1,
            serial: 0,
            creation: 1,
        };
        let to = Pid {
            node: peer,
            id: 2,
            serial: 0,
            creation: 1,
        };
        for i in 0..BUSY_LIMIT {
            assert!(!node.dist_busy(peer), "busy at {i}");
            assert!(node.send_if_connected(from, to, Term::Nil));
        }
        assert!(node.dist_busy(peer));
        assert!(!node.wait_dist_room(peer, Duration::from_millis(20)).await);
        let n = node.clone();
        let waiter =
            tokio::spawn(async move { n.wait_dist_room(peer, Duration::from_secs(30)).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished());
        assert!(q.recv().await.is_some());
        assert!(waiter.await.unwrap(), "one taken wakes the waiter");
        assert!(!node.dist_busy(peer));
        assert!(node.send_if_connected(from, to, Term::Nil));
        let n = node.clone();
        let waiter =
            tokio::spawn(async move { n.wait_dist_room(peer, Duration::from_secs(30)).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(q);
        assert!(waiter.await.unwrap(), "a closed connection ends the wait");
    }
}
