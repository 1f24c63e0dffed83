//! Routes across the cluster (issue 6, DESIGN.md section 5, ROUTE-PROTOCOL.md): the route table
//! replicated over the `beamq_route` pg scope, this node's own routes as pg joins of its
//! `beamq_broker` process, and publishes forwarded once per destination member.
//!
//! ```text
//!  broker subscribe ──add_local──▶ [local task] ──pg join/leave──▶ beamq_route scope ──▶ peers
//!  peers ──pg join/leave/sync──▶ beamq_route scope ──subscribe()──▶ [sync task] ──▶ table
//!  broker publish ──forward──▶ table match ──{dispatch,...}──▶ remote beamq_broker pids
//!  peers ──{dispatch,...}──▶ beamq_broker process ──▶ Inbound (the MQTT broker: parks per busy subscriber)
//! ```
//!
//! EMQX 4 does the same with Mnesia (`emqx_router` adds `#route{}` records, `emqx_broker`
//! forwards by `emqx_rpc`); riding on pg lets a stock BEAM node take part with nothing installed.
mod broker_process;
pub mod ctl;
mod forward;
mod functions;
mod local;
pub mod message;
mod sync;
pub mod table;

use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use tokio::sync::mpsc;

pub use forward::{ForwardStats, StatsSnapshot, BUSY_WAIT};
pub use message::{
    ClusterMessage, Dispatch, Flags, Headers, MessageError, MessageProperties, Publisher,
};
pub use table::ClusterRoutes;

use crate::dist::etf::{Atom, Pid};
use crate::node::pg::{Scope, ROUTE_SCOPE};
use crate::node::table::RegisterError;
use crate::node::Node;
use crate::router::ReadMostly;

/// The registered name of every node's broker process (DESIGN.md section 3).
pub const BROKER_NAME: &str = "beamq_broker";
/// The erpc module of the route inspection functions (ROUTE-PROTOCOL rule 9).
pub const MODULE: &str = "beamq_routes";

/// Where dispatches received from other nodes go: the node's local subscribers only
/// (ROUTE-PROTOCOL rule 7). Implemented by the MQTT broker.
pub trait LocalSink: Send + Sync + 'static {
    /// The delivery state the broker process owns (alone) for its whole life.
    fn inbound(&self) -> Box<dyn Inbound>;
}

/// The broker process's deliveries in progress: a dispatch goes at once to every subscriber
/// with room, and is parked, in order, for a subscriber whose channel is full, so one busy
/// subscriber holds up only its own deliveries (ROUTE-PROTOCOL rule 7), as on one node a busy
/// subscriber holds up only the publishers sending to it.
pub trait Inbound: Send + 'static {
    /// Delivers `dispatch` to this node's local subscribers of its topic. Waits only while a
    /// subscriber's parked deliveries are at their bound (at most the slow-consumer grace).
    fn deliver(&mut self, dispatch: Dispatch) -> BoxFuture<'_, ()>;
    /// Completes when a parked delivery moved on (sent, or given up); pending while nothing
    /// is parked. Cancel-safe.
    fn progress(&mut self) -> BoxFuture<'_, ()>;
}

/// Why the cluster router did not start.
#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    /// The node has no `beamq_route` scope (it is started at boot).
    #[error("the beamq_route pg scope is not running")]
    NoScope,
    /// `beamq_broker` is taken.
    #[error(transparent)]
    Register(#[from] RegisterError),
}

/// A change of this node's own routes, applied to pg in order.
#[derive(Debug)]
enum LocalChange {
    Add(Bytes),
    Del(Bytes),
}

struct Inner {
    node: Node,
    broker: Pid,
    routes: Arc<ReadMostly<ClusterRoutes>>,
    remote: Arc<AtomicUsize>,
    local: mpsc::UnboundedSender<LocalChange>,
    sink: Arc<OnceLock<Arc<dyn LocalSink>>>,
    stats: Arc<ForwardStats>,
    node_hash: u64,
    seq: AtomicU16,
}

/// The node's cluster routing; cheap to clone.
#[derive(Clone)]
pub struct ClusterRouter {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ClusterRouter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ClusterRouter({:?})", self.inner.broker)
    }
}

/// 48 bits of the node name's FNV-1a hash, for message ids (EMQX: `emqx_guid` node part).
fn hash48(name: &str) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in name.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    h & 0xffff_ffff_ffff
}

impl ClusterRouter {
    /// Spawns `beamq_broker`, the route sync and the local route tasks on `node`, and registers
    /// the `beamq_routes` functions. Dispatches received before [`Self::set_sink`] are dropped.
    pub fn start(node: &Node) -> Result<ClusterRouter, RouterError> {
        let scope = Scope::lookup(node, Atom::new(ROUTE_SCOPE)).ok_or(RouterError::NoScope)?;
        let stats = Arc::new(ForwardStats::default());
        let sink: Arc<OnceLock<Arc<dyn LocalSink>>> = Arc::new(OnceLock::new());
        let broker = broker_process::spawn(node, sink.clone(), stats.clone())?;
        let routes = Arc::new(ReadMostly::new(ClusterRoutes::new(node.name())));
        let remote = Arc::new(AtomicUsize::new(0));
        sync::spawn(scope.subscribe(), routes.clone(), remote.clone());
        let local = local::spawn(scope, broker);
        let router = ClusterRouter {
            inner: Arc::new(Inner {
                node: node.clone(),
                broker,
                routes,
                remote,
                local,
                sink,
                stats,
                node_hash: hash48(node.name().as_str()),
                seq: AtomicU16::new(0),
            }),
        };
        functions::register(node, &router);
        Ok(router)
    }

    /// Where received dispatches go (set once; later calls are ignored).
    pub fn set_sink(&self, sink: Arc<dyn LocalSink>) {
        let _ = self.inner.sink.set(sink);
    }

    /// The `beamq_broker` pid: this node's member of every group it has local subscribers for.
    pub fn broker_pid(&self) -> Pid {
        self.inner.broker
    }

    /// This node's first local subscriber to `filter` (share prefix stripped): join its group.
    /// Never blocks; the join reaches pg in call order. Call it under the lock that decided
    /// the filter is new, so a racing [`Self::del_local`] cannot overtake it.
    pub fn add_local(&self, filter: &str) {
        let _ = self
            .inner
            .local
            .send(LocalChange::Add(Bytes::copy_from_slice(filter.as_bytes())));
    }

    /// The last local subscriber to `filter` is gone: leave its group.
    pub fn del_local(&self, filter: &str) {
        let _ = self
            .inner
            .local
            .send(LocalChange::Del(Bytes::copy_from_slice(filter.as_bytes())));
    }

    /// The replicated table (for inspection; the publish path uses [`Self::forward`]).
    pub fn routes(&self) -> &ReadMostly<ClusterRoutes> {
        &self.inner.routes
    }

    /// Forward counters.
    pub fn stats(&self) -> StatsSnapshot {
        self.inner.stats.snapshot()
    }

    /// Whether any member on another node is in the table: when not, a publish has nowhere
    /// to go and the publish path skips matching altogether.
    pub fn has_remote_routes(&self) -> bool {
        self.inner.remote.load(Ordering::Acquire) > 0
    }

    /// A fresh message id `<<Micros:64, NodeHash:48, Seq:16>>`.
    pub fn message_id(&self) -> Bytes {
        let micros = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        let seq = self.inner.seq.fetch_add(1, Ordering::Relaxed);
        message::message_id(micros, self.inner.node_hash, seq)
    }
}

#[cfg(test)]
mod tests;
