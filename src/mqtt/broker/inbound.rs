//! Dispatches from other nodes into local subscribers without head-of-line blocking (issue 6,
//! ROUTE-PROTOCOL rule 7, docs/decisions.md "QoS 1/2 under a busy subscriber").
//!
//! One `beamq_broker` process carries every remote publisher's messages into this node, so it
//! must not wait on one subscriber as a local publisher's task does (that would hold up every
//! other subscriber here). It owns a [`BrokerInbound`]: a dispatch goes at once to every
//! subscriber with room; for a subscriber whose channel is full it is parked, and later
//! dispatches for that subscriber go behind it (order per (publisher, subscriber), MQTT-4.6.0).
//! One waiter per parked subscriber sends its parked deliveries in order as the channel makes
//! room ([`ConnBatch::wait_for_room`]), under the local publishers' policy: QoS 0 waits [`QOS0_GRACE`] then is dropped,
//! QoS 1/2 waits [`SLOW_CONSUMER_GRACE`] per delivery, then the subscriber is disconnected and
//! its parked deliveries dropped (counted in `messages_dropped`). At most [`PARKED_CHANNELS`]
//! channels' worth is parked per subscriber; past that it is a slow consumer as well. The
//! process never waits for a subscriber.
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Weak};
use std::time::Instant;

use futures_util::future::BoxFuture;
use futures_util::stream::{FuturesUnordered, StreamExt};

use super::cluster::from_cluster;
use super::{is_best_effort, Broker, ConnBatch, Shared};
#[cfg(doc)]
use super::{QOS0_GRACE, SLOW_CONSUMER_GRACE};
use crate::router::cluster::{Dispatch, Inbound};

/// How many channels' worth of deliveries may be parked for one subscriber (bounded memory:
/// with the channel itself and the session queue, what a stuck subscriber can hold).
pub const PARKED_CHANNELS: usize = 4;

/// A waiter: one connection's parked deliveries being sent; yields the client when done.
type Waiter = BoxFuture<'static, Arc<str>>;

/// One client's deliveries behind the ones its waiter is sending.
#[derive(Default)]
struct Parked {
    batches: VecDeque<ConnBatch>,
    /// Deliveries in `batches`.
    len: usize,
}

/// The broker process's deliveries in progress (owned by that process alone).
pub(super) struct BrokerInbound {
    broker: Weak<Shared>,
    /// Per parked client; a client is here exactly while a waiter of its runs.
    parked: HashMap<Arc<str>, Parked>,
    waiters: FuturesUnordered<Waiter>,
}

impl BrokerInbound {
    pub(super) fn new(broker: Weak<Shared>) -> BrokerInbound {
        BrokerInbound {
            broker,
            parked: HashMap::new(),
            waiters: FuturesUnordered::new(),
        }
    }

    async fn deliver_dispatch(&mut self, d: Dispatch) {
        let Some(inner) = self.broker.upgrade() else {
            return;
        };
        let broker = Broker { inner };
        let Some(msg) = from_cluster(d, Instant::now()) else {
            tracing::debug!("dispatch not deliverable over MQTT; dropped");
            return;
        };
        let parked = &self.parked;
        let blocked = broker.route_nowait_unless(&[Arc::new(msg)], &|c| parked.contains_key(c));
        for b in blocked {
            self.park(b, &broker);
        }
    }

    /// Parks `b` behind its client's parked deliveries, or starts a waiter for it. A client
    /// with [`PARKED_CHANNELS`] channels' worth parked is a slow consumer: `b` is dropped and,
    /// unless it is QoS 0 only, the client is disconnected and its parked deliveries dropped
    /// (a QoS 1/2 delivery is never lost silently, and no other subscriber waits for this one).
    fn park(&mut self, mut b: ConnBatch, broker: &Broker) {
        let limit = broker
            .inner
            .channel_capacity
            .saturating_mul(PARKED_CHANNELS);
        let Some(p) = self.parked.get_mut(&b.client) else {
            // QoS 0 to a subscriber that is not reading drops at once: no waiter for it.
            b.shed_if_congested(broker);
            if b.items.is_empty() {
                return;
            }
            self.parked.insert(b.client.clone(), Parked::default());
            self.waiters.push(wait(b, broker.clone()));
            return;
        };
        if p.len + b.items.len() <= limit {
            p.len += b.items.len();
            p.batches.push_back(b);
            return;
        }
        if b.items.iter().any(|i| !is_best_effort(i)) {
            tracing::warn!(client = %b.client, limit, "parked deliveries at their bound");
            // The waiter keeps its head deliveries; they fail once the connection closes.
            broker.count_dropped(p.len);
            p.len = 0;
            p.batches.clear();
        }
        b.give_up(broker);
    }

    /// A waiter ended: start the client's next parked deliveries, or forget the client.
    fn finished(&mut self, client: Arc<str>, broker: &Broker) {
        let next = self.parked.get_mut(&client).and_then(|p| {
            let b = p.batches.pop_front()?;
            p.len -= b.items.len();
            Some(b)
        });
        match next {
            Some(b) => self.waiters.push(wait(b, broker.clone())),
            None => {
                self.parked.remove(&client);
            }
        }
    }

    async fn progress_one(&mut self) {
        match self.waiters.next().await {
            Some(client) => match self.broker.upgrade() {
                Some(inner) => self.finished(client, &Broker { inner }),
                None => self.parked.clear(),
            },
            None => std::future::pending().await,
        }
    }
}

/// Sends `b` in order as its channel makes room, under the slow-consumer policy.
fn wait(b: ConnBatch, broker: Broker) -> Waiter {
    Box::pin(async move {
        let client = b.client.clone();
        b.wait_for_room(&broker).await;
        client
    })
}

impl Inbound for BrokerInbound {
    fn deliver(&mut self, dispatch: Dispatch) -> BoxFuture<'_, ()> {
        Box::pin(self.deliver_dispatch(dispatch))
    }

    fn progress(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(self.progress_one())
    }
}
