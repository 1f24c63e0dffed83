//! The single-node MQTT broker: shared state that connection tasks act on.
//!
//! Concurrency (docs/decisions.md, "MQTT broker concurrency"): every connection is one tokio
//! task driving its sans-IO [`Connection`](crate::mqtt::session::Connection) over a
//! [`Transport`](crate::mqtt::transport::Transport). There is no central broker task: the
//! publish path reads the subscription table through the router's [`ReadMostly`] lock (writers
//! are subscribes), then hands each delivery to the subscriber's bounded channel with
//! `try_send`. A full channel (slow consumer) holds up the publishing client's task
//! (backpressure: it stops reading its socket, so the publisher slows to the subscriber's pace,
//! as TCP would) for up to [`QOS0_GRACE`] (QoS 0: then dropped; if the subscriber took nothing
//! meanwhile, later QoS 0 deliveries to it drop at once until it drains) or
//! [`SLOW_CONSUMER_GRACE`] (QoS 1/2: then the
//! subscriber is disconnected), counting `messages_dropped`; memory per connection stays
//! bounded (`mailbox`). The session store
//! (client id → live connection or stored offline session) is one short-held mutex, as EMQX 4's
//! `emqx_cm` registry is one ETS table.

mod cluster;
mod conn;
mod inbound;
pub mod mailbox;
mod store;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::mpsc;
use tokio::task::AbortHandle;

use crate::mqtt::codec::{MqttString, Properties, QoS};
use crate::mqtt::metrics::Metrics;
use crate::mqtt::retained::{RetainedLimits, RetainedMessage, RetainedStore};
use crate::mqtt::session::{AllowAll, AuthHook, Delivery, Message, SessionConfig};
use crate::mqtt::sys::SysTopics;
use crate::mqtt::transport::{acceptors, Listener, ListenerConfig, TransportError};
use crate::router::{ReadMostly, ShareStrategy, SubscriptionTable};

pub use cluster::{from_cluster, to_cluster};
pub use store::SessionEntry;

/// A route's subscriber: the session (by client id) and the filter exactly as it wrote it,
/// which [`Delivery::filter`] must carry (held as an `MqttString`, so a delivery takes a
/// reference count, not a copy and a UTF-8 check).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SubKey {
    /// Client identifier of the session.
    pub client: Arc<str>,
    /// The filter as written in SUBSCRIBE (`$share/g/...` included).
    pub filter: MqttString,
}

impl SubKey {
    /// The key of `client`'s subscription `filter`. The filter is copied out of the buffer it
    /// was decoded from (a slice would pin the whole receive buffer for as long as the route
    /// lives).
    pub fn new(client: Arc<str>, filter: &MqttString) -> SubKey {
        // A valid MqttString always converts; the fallback keeps this free of panics.
        let filter = MqttString::try_from(filter.as_str()).unwrap_or_else(|_| filter.clone());
        SubKey { client, filter }
    }
}

/// Maps on the publish path: foldhash with a per-map random seed, as the router's level
/// interner (`router/levels.rs`); SipHash of the client id was the largest single cost of a
/// 1→100 fan-out in `perf`.
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// A taken-over connection's session and how long it was to be kept.
pub type Handover = (
    Option<crate::mqtt::session::SessionState>,
    crate::mqtt::session::SessionExpiry,
);

/// What the broker sends a connection task.
#[derive(Debug)]
pub enum ToConn {
    /// A message to deliver.
    Deliver(Delivery),
    /// Another connection opened this client id: close and hand the session back.
    Takeover(tokio::sync::oneshot::Sender<Handover>),
}

/// How long a publisher waits for room in a subscriber's full channel (QoS 1/2) before that
/// subscriber is disconnected as a slow consumer.
pub const SLOW_CONSUMER_GRACE: Duration = Duration::from_secs(2);

/// How long a publisher waits for room in a subscriber's full channel (QoS 0) before the
/// delivery is dropped (and the channel marked congested if its receiver took nothing).
pub const QOS0_GRACE: Duration = Duration::from_millis(20);

/// One connection's deliveries from a publish batch, in message order: queued together (one
/// lock, at most one wakeup), and what did not fit is waited for or given up.
struct ConnBatch {
    tx: mailbox::Sender<ToConn>,
    kick: Arc<tokio::sync::Notify>,
    client: Arc<str>,
    items: VecDeque<ToConn>,
}

impl ConnBatch {
    /// Queues what fits now; false when the connection is gone (the rest is counted dropped).
    fn send_now(&mut self, broker: &Broker) -> bool {
        if self.tx.try_send_many(&mut self.items).is_err() {
            broker.count_dropped(self.items.len());
            self.items.clear();
            return false;
        }
        true
    }

    /// Drops the QoS 0 deliveries at once if the channel is marked congested (its subscriber
    /// is not reading); true if any were.
    fn shed_if_congested(&mut self, broker: &Broker) -> bool {
        if self.items.is_empty() || !self.tx.is_congested() {
            return false;
        }
        let before = self.items.len();
        self.items.retain(|i| !is_best_effort(i));
        broker.count_dropped(before - self.items.len());
        before > self.items.len()
    }

    /// Drops what is left without waiting: QoS 0 is lost, a QoS 1/2 delivery may not be lost
    /// silently, so its subscriber is disconnected.
    fn give_up(mut self, broker: &Broker) {
        let reliable = self.items.iter().any(|i| !is_best_effort(i));
        broker.count_dropped(self.items.len());
        self.items.clear();
        if reliable {
            tracing::warn!(client = %self.client, "slow consumer: disconnecting");
            self.kick.notify_one();
        }
    }

    /// Waits for room for what is left, in order: QoS 1/2 up to [`SLOW_CONSUMER_GRACE`] per
    /// delivery (then the subscriber is disconnected), QoS 0 up to [`QOS0_GRACE`] per delivery
    /// (then dropped).
    ///
    /// This is the admission gate of a subscriber that is slower than its publishers: the
    /// publisher waiting here reads nothing more from its socket, so the publishers feeding a
    /// busy subscriber take turns at the room it makes, and the broker does not spend its CPU
    /// reading, matching and dropping messages the subscriber cannot take (which starved the
    /// subscriber's own task of the CPU to drain its queue: docs/decisions.md, "QoS 0 under a
    /// busy subscriber"). A QoS 0 delivery that timed out while the subscriber kept taking
    /// (other publishers won the room) is dropped and the publisher keeps waiting for the rest
    /// of its batch. Only a subscriber that took nothing for a whole grace (it is not reading)
    /// is marked congested: further QoS 0 deliveries to it drop at once, without waiting, until
    /// it takes items again, so a stuck subscriber holds each publisher up at most one grace.
    /// A publisher whose deliveries were dropped that way yields before reading on: it goes on
    /// at full speed, but one batch per turn of the runtime instead of a whole coop budget (128
    /// reads), so the subscriber's task, once it can take again, is polled within a turn.
    async fn wait_for_room(mut self, broker: &Broker) {
        if self.shed_if_congested(broker) {
            tokio::task::yield_now().await;
        }
        while let Some(item) = self.items.pop_front() {
            let best_effort = is_best_effort(&item);
            if best_effort && self.tx.is_congested() {
                broker.count_dropped(1);
                continue;
            }
            let grace = if best_effort {
                QOS0_GRACE
            } else {
                SLOW_CONSUMER_GRACE
            };
            let takes = self.tx.takes();
            match self.tx.send_timeout(item, grace).await {
                Ok(()) => {
                    // The receiver took its queue: the rest likely fits at once.
                    if !self.send_now(broker) {
                        return;
                    }
                }
                Err(mpsc::error::SendTimeoutError::Timeout(_)) if best_effort => {
                    self.tx.mark_congested_unless_taken(takes);
                    broker.count_dropped(1);
                }
                Err(mpsc::error::SendTimeoutError::Timeout(item)) => {
                    self.items.push_front(item);
                    self.give_up(broker);
                    return;
                }
                Err(mpsc::error::SendTimeoutError::Closed(_)) => {
                    broker.count_dropped(1 + self.items.len());
                    return;
                }
            }
        }
    }
}

fn is_best_effort(item: &ToConn) -> bool {
    match item {
        ToConn::Deliver(d) => d.message.qos == QoS::AtMostOnce,
        ToConn::Takeover(_) => false,
    }
}

/// Broker-wide settings.
#[derive(Clone)]
pub struct BrokerConfig {
    /// Limits of every session.
    pub session: SessionConfig,
    /// Shared subscription strategy.
    pub share_strategy: ShareStrategy,
    /// Capacity of each connection's delivery channel.
    pub channel_capacity: usize,
    /// Interval of the `$SYS` stats publication (`None`: never).
    pub sys_interval: Option<Duration>,
    /// Node name in `$SYS/brokers/<node>/...`.
    pub node_name: String,
    /// Authentication and ACL.
    pub auth: Arc<dyn AuthHook>,
}

impl std::fmt::Debug for BrokerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerConfig")
            .field("share_strategy", &self.share_strategy)
            .field("channel_capacity", &self.channel_capacity)
            .finish()
    }
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            session: SessionConfig::default(),
            share_strategy: ShareStrategy::default(),
            channel_capacity: 1024,
            sys_interval: Some(Duration::from_secs(60)),
            node_name: "beamq@127.0.0.1".to_owned(),
            auth: Arc::new(AllowAll),
        }
    }
}

/// The broker's shared state (cheap to clone).
#[derive(Clone)]
pub struct Broker {
    inner: Arc<Shared>,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker").finish_non_exhaustive()
    }
}

struct Shared {
    config: Arc<SessionConfig>,
    channel_capacity: usize,
    auth: Arc<dyn AuthHook>,
    subs: ReadMostly<SubscriptionTable<SubKey>>,
    sessions: Mutex<FastMap<Arc<str>, SessionEntry>>,
    retained: Mutex<RetainedStore>,
    wills: Mutex<HashMap<Arc<str>, AbortHandle>>,
    metrics: Metrics,
    started: Instant,
    /// The cluster router, once attached (`cluster.rs`).
    cluster: OnceLock<crate::router::cluster::ClusterRouter>,
}

/// Locks a mutex, recovering the data if a holder panicked (the state stays usable).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Broker {
    /// A broker with `config`; spawns the `$SYS` publisher when configured (needs a runtime).
    pub fn new(config: BrokerConfig) -> Broker {
        let broker = Broker {
            inner: Arc::new(Shared {
                config: Arc::new(config.session),
                channel_capacity: config.channel_capacity.max(1),
                auth: config.auth,
                subs: ReadMostly::new(SubscriptionTable::new(config.share_strategy)),
                sessions: Mutex::new(FastMap::default()),
                retained: Mutex::new(RetainedStore::new(RetainedLimits::default())),
                wills: Mutex::new(HashMap::new()),
                metrics: Metrics::new(),
                started: Instant::now(),
                cluster: OnceLock::new(),
            }),
        };
        if let Some(every) = config.sys_interval {
            let weak = Arc::downgrade(&broker.inner);
            let sys = SysTopics::new(&config.node_name, env!("CARGO_PKG_VERSION"));
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                loop {
                    tick.tick().await;
                    let Some(inner) = weak.upgrade() else { return };
                    Broker { inner }.publish_sys(&sys);
                }
            });
        }
        broker
    }

    /// The broker's counters.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Accepts connections on `listener` until the task is dropped or accept fails for good.
    pub async fn serve(self, listener: Listener) -> std::io::Result<()> {
        loop {
            let incoming = listener.accept().await?;
            let _ = self.inner.metrics.connections_accepted.inc();
            let broker = self.clone();
            tokio::spawn(async move {
                let peer = incoming.peer();
                match incoming.handshake().await {
                    Ok(c) => conn::run(broker, c.stream, c.peer).await,
                    Err(e) => tracing::debug!(%peer, "transport handshake: {e}"),
                }
            });
        }
    }

    /// Binds `cfg` and serves it (see [`Broker::spawn_serve`]); returns the bound address.
    pub async fn listen(&self, cfg: &ListenerConfig) -> Result<SocketAddr, TransportError> {
        let listener = Listener::bind(cfg).await?;
        let addr = listener.local_addr()?;
        let kind = match &cfg.kind {
            crate::mqtt::transport::ListenerKind::Tcp => "tcp",
            crate::mqtt::transport::ListenerKind::Tls(_) => "tls",
            crate::mqtt::transport::ListenerKind::Ws(_) => "ws",
        };
        tracing::info!(%addr, kind, acceptors = cfg.acceptors, "MQTT listener");
        self.spawn_serve(listener, acceptors::runtimes_for(cfg.acceptors)?)?;
        Ok(addr)
    }

    /// Serves `listener` in a task on the node's runtime or, given acceptor runtimes (built
    /// for every listener before any starts: [`acceptors::AcceptorRuntime`]), on threads of
    /// their own (`listeners.*.default.acceptors`).
    pub fn spawn_serve(
        &self,
        listener: Listener,
        runtimes: Option<Vec<acceptors::AcceptorRuntime>>,
    ) -> std::io::Result<()> {
        let addr = listener.local_addr()?;
        let broker = self.clone();
        match runtimes {
            Some(rts) => acceptors::spawn(listener, rts, move |l| broker.clone().serve(l)),
            None => {
                tokio::spawn(async move {
                    if let Err(e) = broker.serve(listener).await {
                        tracing::error!(%addr, "MQTT listener stopped: {e}");
                    }
                });
                Ok(())
            }
        }
    }

    /// Routes `msg` to every matching subscription on this node and forwards it to the other
    /// nodes with a matching route (when in a cluster).
    pub fn route(&self, msg: &Arc<Message>) {
        self.route_local(msg);
        self.forward(msg);
    }

    /// Routes `msg` to every matching subscription on this node: live sessions through their
    /// channel, stored ones into their offline queue. A QoS 1/2 delivery that finds a full
    /// channel disconnects that subscriber (a client's PUBLISH uses [`Broker::route_publish`],
    /// which waits first).
    pub fn route_local(&self, msg: &Arc<Message>) {
        for blocked in self.route_nowait(std::slice::from_ref(msg)) {
            blocked.give_up(self);
        }
    }

    /// [`Broker::route`] for a client's PUBLISHes (in the order received), with flow control:
    /// deliveries that find their subscriber's channel full are awaited, holding up only this
    /// publisher (which then stops reading its socket, so it slows to the subscriber's pace as
    /// over one TCP connection). QoS 1/2 waits up to [`SLOW_CONSUMER_GRACE`], then disconnects
    /// the subscriber; QoS 0 waits up to [`QOS0_GRACE`], then is dropped, and marks the channel
    /// congested if the subscriber took nothing meanwhile, so that later QoS 0 deliveries to a
    /// subscriber that is not reading drop at once ([`ConnBatch::wait_for_room`]).
    ///
    /// A batch (the PUBLISHes decoded from one read) is matched under one read guard and its
    /// deliveries are grouped per connection, so a connection gets one lock and at most one
    /// wakeup per batch instead of one per message (as rumqttd's router drains its inputs in
    /// batches). Each subscriber still sees the messages in publish order.
    pub async fn route_publish(&self, msgs: &[Arc<Message>]) {
        let blocked = self.route_nowait(msgs);
        for msg in msgs {
            self.forward_publish(msg).await;
        }
        self.wait_blocked(blocked).await;
    }

    /// Waits for room for the deliveries [`Broker::route_nowait`] could not queue, connection
    /// by connection, giving up (and counting) past their grace.
    async fn wait_blocked(&self, blocked: Vec<ConnBatch>) {
        for b in blocked {
            b.wait_for_room(self).await;
        }
    }

    fn count_dropped(&self, n: usize) {
        if n > 0 {
            let _ = self.inner.metrics.messages_dropped.inc_by(n as u64);
        }
    }

    /// Matches `msgs` and queues what fits at once; returns the connections some of whose
    /// deliveries did not fit (QoS 0 ones to a congested channel are dropped by
    /// [`ConnBatch::wait_for_room`] or [`ConnBatch::give_up`]).
    ///
    /// Lock order: the subscription table's read guard, then the session store (no path takes
    /// them the other way round: the store's users drop it before changing routes).
    fn route_nowait(&self, msgs: &[Arc<Message>]) -> Vec<ConnBatch> {
        self.route_nowait_unless(msgs, &|_| false)
    }

    /// [`Broker::route_nowait`] that returns, untried, the deliveries to a live subscriber for
    /// which `parked` holds (they must go behind that subscriber's parked ones, `inbound.rs`).
    fn route_nowait_unless(
        &self,
        msgs: &[Arc<Message>],
        parked: &dyn Fn(&str) -> bool,
    ) -> Vec<ConnBatch> {
        let mut conns: Vec<ConnBatch> = Vec::new();
        let now = Instant::now();
        {
            let subs = self.inner.subs.read();
            if subs.is_empty() {
                return conns;
            }
            let mut sessions = lock(&self.inner.sessions);
            // Client id → its entry in `conns`, for this batch.
            let mut index: FastMap<&str, usize> = FastMap::default();
            let mut rng = rand::thread_rng();
            // The batch's topics are matched together, their trie walks overlapped; the
            // deliveries come publish after publish, so each subscriber keeps the order.
            subs.dispatch_batch(
                msgs,
                |m| (m.topic.as_str(), m.publisher.as_str()),
                &mut rng,
                |i, d| {
                    let Some(msg) = msgs.get(i) else {
                        return;
                    };
                    let publisher = msg.publisher.as_str();
                    let key = d.subscriber;
                    if d.options.no_local && *key.client == *publisher {
                        return;
                    }
                    let delivery = Delivery {
                        message: msg.clone(),
                        filter: key.filter.clone(),
                        from_retained: false,
                    };
                    if let Some(&i) = index.get(&*key.client) {
                        conns[i].items.push_back(ToConn::Deliver(delivery));
                        return;
                    }
                    match sessions.get_mut(&key.client) {
                        Some(SessionEntry::Live { tx, kick, .. }) => {
                            index.insert(&key.client, conns.len());
                            let mut items = VecDeque::with_capacity(msgs.len());
                            items.push_back(ToConn::Deliver(delivery));
                            conns.push(ConnBatch {
                                tx: tx.clone(),
                                kick: kick.clone(),
                                client: key.client.clone(),
                                items,
                            });
                        }
                        Some(SessionEntry::Stored { state, .. }) => {
                            state.deliver_offline(&delivery, &self.inner.config, now)
                        }
                        None => {}
                    }
                },
            );
        }
        conns.retain_mut(|c| parked(&c.client) || (c.send_now(self) && !c.items.is_empty()));
        conns
    }

    /// Sets or clears (empty payload) the retained message of `msg.topic`.
    pub fn retain(&self, msg: &Message) {
        let mut store = lock(&self.inner.retained);
        if msg.payload.is_empty() {
            store.remove(msg.topic.as_str());
            return;
        }
        let r = RetainedMessage {
            topic: msg.topic.as_str().into(),
            qos: msg.qos,
            payload: msg.payload.clone(),
            properties: msg.properties.clone(),
            expires_at: msg.expires_at,
        };
        match store.insert(r) {
            Ok(()) => {
                let _ = self.inner.metrics.messages_retained.inc();
            }
            Err(e) => tracing::warn!(topic = %msg.topic, "retained message refused: {e}"),
        };
    }

    /// Retained messages matching `filter`, as deliveries from the retained store.
    fn retained_for(&self, filter: &MqttString, routing: &str, now: Instant) -> Vec<Delivery> {
        let store = lock(&self.inner.retained);
        let mut out = Vec::new();
        store.for_each_match(routing, now, |m| {
            let Ok(topic) = MqttString::try_from(&*m.topic) else {
                return;
            };
            out.push(Delivery {
                message: Arc::new(Message {
                    topic,
                    payload: m.payload.clone(),
                    qos: m.qos,
                    retain: true,
                    publisher: MqttString::default(),
                    properties: m.properties.clone(),
                    expires_at: m.expires_at,
                }),
                filter: filter.clone(),
                from_retained: true,
            });
        });
        out
    }

    /// Publishes a Will now or after `delay` unless the client id reconnects first.
    fn schedule_will(&self, client: Arc<str>, msg: Arc<Message>, delay: Duration) {
        if delay.is_zero() {
            self.publish(&msg);
            return;
        }
        let broker = self.clone();
        let key = client.clone();
        let task = tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            lock(&broker.inner.wills).remove(&key);
            broker.publish(&msg);
        });
        if let Some(old) = lock(&self.inner.wills).insert(client, task.abort_handle()) {
            old.abort();
        }
    }

    /// Cancels the pending delayed Will of `client` (it reconnected).
    fn cancel_will(&self, client: &str) {
        if let Some(h) = lock(&self.inner.wills).remove(client) {
            h.abort();
        }
    }

    /// A PUBLISH from the broker itself (Will, `$SYS`): retained first, then routed.
    fn publish(&self, msg: &Arc<Message>) {
        if msg.retain {
            self.retain(msg);
        }
        self.route(msg);
    }

    /// Publishes the `$SYS/brokers/<node>/...` topics once.
    fn publish_sys(&self, sys: &SysTopics) {
        let mut snap = self.inner.metrics.snapshot();
        snap.sessions_count = lock(&self.inner.sessions).len() as u64;
        {
            let subs = self.inner.subs.read();
            snap.subscriptions_count = subs.len() as u64;
            snap.topics_count = subs.filter_count() as u64;
            snap.routes_count = subs.filter_count() as u64;
        }
        if let Some(c) = self.inner.cluster.get() {
            snap.routes_count = c.routes().read().len() as u64;
        }
        snap.retained_count = lock(&self.inner.retained).len() as u64;
        let now = Instant::now();
        let mut msgs = sys.heartbeat(now - self.inner.started, SystemTime::now());
        msgs.extend(sys.tick(&snap, &[sys.node()]));
        for m in msgs {
            let Ok(topic) = MqttString::try_from(m.topic) else {
                continue;
            };
            let msg = Arc::new(Message {
                topic,
                payload: m.payload,
                qos: QoS::AtMostOnce,
                retain: m.retain,
                publisher: MqttString::default(),
                properties: Properties::default(),
                expires_at: None,
            });
            self.publish(&msg);
        }
    }
}
