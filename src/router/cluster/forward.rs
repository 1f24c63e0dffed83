//! Forwarding a publish to the other nodes (ROUTE-PROTOCOL rule 5): match the replicated
//! table, send one `{dispatch, Topic, {delivery, Sender, Message}}` to each distinct member pid
//! on another node. EMQX 4 sends one per matched (filter, node) pair (`emqx_broker:forward/4`);
//! one per member is what lets a node with `t/#`, `t/+` and `t/a` get a publish once.
//!
//! Order per (publisher, destination node) holds because every send to a node goes through
//! that node's one dist connection queue, pushed here in publish order. A client's publish
//! ([`ClusterRouter::forward_wait`]) waits while that queue is busy, as `erlang:send` suspends
//! a process on a busy distribution port (`erts/emulator/beam/dist.c`), so a fast publisher
//! slows to what the connection carries instead of growing the queue without end; the wait is
//! bounded by [`BUSY_WAIT`], after which the dispatch is queued anyway (counted and logged).
//! A destination whose node is not connected is gone, and a connection queue at its hard cap
//! refuses: both are counted as dropped and logged, never retried (a gone node's routes leave
//! the table when pg sees it down). Sending never connects: the route table only holds members
//! of connected nodes.
use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;

use super::message::{ClusterMessage, Dispatch};
use super::table::MemberId;
use super::ClusterRouter;
use crate::dist::etf::{Pid, Term};

/// How long a publish waits for room on a busy connection before its dispatch is queued
/// anyway: long enough to ride out a burst or a stalled peer's TCP window, short enough that a
/// publisher is never held for good (a dead peer is cut by the tick long after).
pub const BUSY_WAIT: Duration = Duration::from_secs(5);

/// `messages.forward`, `messages.forward.received`, `messages.forward.dropped`, plus the
/// dispatches that waited for a busy connection and those that gave up waiting.
#[derive(Debug, Default)]
pub struct ForwardStats {
    forward: AtomicU64,
    received: AtomicU64,
    dropped: AtomicU64,
    busy: AtomicU64,
    busy_timeout: AtomicU64,
}

/// The counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Dispatches sent.
    pub forward: u64,
    /// Dispatches received by `beamq_broker`.
    pub forward_received: u64,
    /// Dispatches not sent: the destination's node is gone (or its queue at the hard cap).
    pub forward_dropped: u64,
    /// Dispatches that found their connection busy and waited for room.
    pub forward_busy: u64,
    /// Of those, the ones queued after [`BUSY_WAIT`] without room.
    pub forward_busy_timeout: u64,
}

impl ForwardStats {
    pub(super) fn received(&self) {
        self.received.fetch_add(1, Ordering::Relaxed);
    }

    /// The counters now.
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            forward: self.forward.load(Ordering::Relaxed),
            forward_received: self.received.load(Ordering::Relaxed),
            forward_dropped: self.dropped.load(Ordering::Relaxed),
            forward_busy: self.busy.load(Ordering::Relaxed),
            forward_busy_timeout: self.busy_timeout.load(Ordering::Relaxed),
        }
    }
}

thread_local! {
    /// Match buffers reused across publishes on a worker thread.
    static SCRATCH: RefCell<(Vec<MemberId>, Vec<Pid>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

impl ClusterRouter {
    /// The member pids on other nodes a publish to `topic` goes to, one per pid.
    pub fn destinations(&self, topic: &str) -> Vec<Pid> {
        let mut out = Vec::new();
        if self.has_remote_routes() {
            let routes = self.inner.routes.read();
            SCRATCH.with(|cell| match cell.try_borrow_mut() {
                Ok(mut bufs) => routes.remote_destinations(topic, &mut bufs.0, &mut out),
                Err(_) => routes.remote_destinations(topic, &mut Vec::new(), &mut out),
            });
        }
        out
    }

    /// [`Self::forward`] for a client's publish: a dispatch whose connection is busy waits
    /// for room (at most [`BUSY_WAIT`]) before it is queued, holding up this publisher only.
    pub async fn forward_wait(
        &self,
        topic: &str,
        message: impl FnOnce() -> ClusterMessage,
    ) -> usize {
        let pids = self.destinations(topic);
        if pids.is_empty() {
            return 0;
        }
        let inner = &self.inner;
        let term = self.dispatch_term(topic, message);
        let mut sent = 0;
        for pid in pids {
            if inner.node.dist_busy(pid.node) {
                inner.stats.busy.fetch_add(1, Ordering::Relaxed);
                if !inner.node.wait_dist_room(pid.node, BUSY_WAIT).await {
                    let n = inner.stats.busy_timeout.fetch_add(1, Ordering::Relaxed) + 1;
                    if n.is_power_of_two() {
                        tracing::warn!(
                            node = pid.node.as_str(),
                            timeouts = n,
                            "connection busy for {BUSY_WAIT:?}; forwarding anyway"
                        );
                    }
                }
            }
            sent += usize::from(self.send_one(pid, term.clone()));
        }
        self.counted(sent)
    }

    /// Forwards a publish to `topic` to every remote destination; `message` builds the
    /// message only when there is one (the single-node path never encodes). Returns the
    /// dispatches sent.
    pub fn forward(&self, topic: &str, message: impl FnOnce() -> ClusterMessage) -> usize {
        if !self.has_remote_routes() {
            return 0;
        }
        SCRATCH.with(|cell| {
            let Ok(mut bufs) = cell.try_borrow_mut() else {
                return self.send_all(topic, &self.destinations(topic), message);
            };
            let (scratch, pids) = &mut *bufs;
            pids.clear();
            self.inner
                .routes
                .read()
                .remote_destinations(topic, scratch, pids);
            self.send_all(topic, pids, message)
        })
    }

    fn send_all(
        &self,
        topic: &str,
        pids: &[Pid],
        message: impl FnOnce() -> ClusterMessage,
    ) -> usize {
        if pids.is_empty() {
            return 0;
        }
        let term = self.dispatch_term(topic, message);
        let sent = pids
            .iter()
            .map(|&pid| usize::from(self.send_one(pid, term.clone())))
            .sum();
        self.counted(sent)
    }

    /// The `{dispatch, Topic, {delivery, Sender, Message}}` term sent to every destination.
    fn dispatch_term(&self, topic: &str, message: impl FnOnce() -> ClusterMessage) -> Term {
        Dispatch::term(
            &Bytes::copy_from_slice(topic.as_bytes()),
            self.inner.broker,
            &message(),
        )
    }

    /// Adds `sent` dispatches to the `forward` counter and returns it.
    fn counted(&self, sent: usize) -> usize {
        self.inner
            .stats
            .forward
            .fetch_add(sent as u64, Ordering::Relaxed);
        sent
    }

    /// Queues one dispatch; a refused one is counted and logged (at powers of two).
    fn send_one(&self, pid: Pid, term: Term) -> bool {
        let inner = &self.inner;
        if inner.node.send_if_connected(inner.broker, pid, term) {
            return true;
        }
        let n = inner.stats.dropped.fetch_add(1, Ordering::Relaxed) + 1;
        if n.is_power_of_two() {
            tracing::warn!(
                node = pid.node.as_str(),
                dropped = n,
                "forward to a node that is gone (or whose queue is full); dropped"
            );
        }
        false
    }
}
