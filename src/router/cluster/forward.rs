//! Forwarding a publish to the other nodes (ROUTE-PROTOCOL rule 5): match the replicated
//! table, send one `{dispatch, Topic, {delivery, Sender, Message}}` to each distinct member pid
//! on another node. EMQX 4 sends one per matched (filter, node) pair (`emqx_broker:forward/4`);
//! one per member is what lets a node with `t/#`, `t/+` and `t/a` get a publish once.
//!
//! Order per (publisher, destination node) holds because every send to a node goes through
//! that node's one dist connection queue, pushed here in publish order. A destination whose
//! node is not connected is gone, and a full connection queue refuses: both are counted as
//! dropped and logged, never retried (a gone node's routes leave the table when pg sees it
//! down). Sending never connects: the route table only holds members of connected nodes.
use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;

use super::message::{ClusterMessage, Dispatch};
use super::table::MemberId;
use super::ClusterRouter;
use crate::dist::etf::Pid;

/// `messages.forward`, `messages.forward.received`, `messages.forward.dropped`.
#[derive(Debug, Default)]
pub struct ForwardStats {
    forward: AtomicU64,
    received: AtomicU64,
    dropped: AtomicU64,
}

/// The counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Dispatches sent.
    pub forward: u64,
    /// Dispatches received by `beamq_broker`.
    pub forward_received: u64,
    /// Dispatches not sent: the destination's node is gone.
    pub forward_dropped: u64,
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
            self.inner
                .routes
                .read()
                .remote_destinations(topic, &mut Vec::new(), &mut out);
        }
        out
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
        let inner = &self.inner;
        let msg = message();
        let term = Dispatch::term(
            &Bytes::copy_from_slice(topic.as_bytes()),
            inner.broker,
            &msg,
        );
        let mut sent = 0;
        for &pid in pids {
            if inner
                .node
                .send_if_connected(inner.broker, pid, term.clone())
            {
                sent += 1;
                continue;
            }
            let n = inner.stats.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                tracing::warn!(
                    node = pid.node.as_str(),
                    dropped = n,
                    "forward to a node that is gone (or whose queue is full); dropped"
                );
            }
        }
        inner
            .stats
            .forward
            .fetch_add(sent as u64, Ordering::Relaxed);
        sent
    }
}
