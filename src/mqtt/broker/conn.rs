//! One client connection as a tokio task: reads bytes into the sans-IO
//! [`Connection`](crate::mqtt::session::Connection), carries out its actions on the shared
//! [`Broker`], writes its output, and takes deliveries from its bounded channel.
//! The loop is the one documented in `src/mqtt/session/mod.rs`.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf as _, BytesMut};
use tokio::io::AsyncWriteExt as _;
use tokio::sync::{oneshot, Notify};

use super::mailbox;
use super::{Broker, Handover, SubKey, ToConn};
use crate::mqtt::codec::{self, CodecError, Packet, ReasonCode};
use crate::mqtt::session::{Action, Connection, Message};
use crate::mqtt::transport::Transport;
use crate::router::SubOptions;

/// Source of connection ids (tell an old holder of a client id from a new one).
static NEXT_CONN_ID: AtomicU64 = AtomicU64::new(1);

/// Spare read-buffer room kept before each read; the codec rejects a frame larger than the
/// session's maximum packet size from its header, so the buffer stays below that plus this.
const READ_RESERVE: usize = 8192;

/// How long deliveries may be held back while the session's queue is full and the client makes
/// no room (acknowledges nothing): past it the held ones go into the queue, which then drops its
/// oldest (`mqtt.max_mqueue_len`, EMQX's mqueue), counted in `messages_dropped`. Shorter than
/// the takeover timeout (a takeover waits behind held deliveries) and longer than the broker's
/// slow-consumer grace, so a publisher blocked on this connection disconnects it first.
const HOLD_GRACE: Duration = Duration::from_secs(3);

/// Per-connection state the task keeps beside the sans-IO machine.
struct Task {
    broker: Broker,
    conn_id: u64,
    tx: mailbox::Sender<ToConn>,
    kick: Arc<Notify>,
    /// Client id once the session is open.
    client: Option<Arc<str>>,
    /// Set when taken over: the session goes to the new holder instead of the store.
    handover: Option<oneshot::Sender<Handover>>,
}

/// Serves one transport until the session machine closes.
pub(super) async fn run(broker: Broker, mut stream: Transport, peer: SocketAddr) {
    let (tx, mut rx) = mailbox::channel(broker.inner.channel_capacity);
    let kick = Arc::new(Notify::new());
    let mut conn = Connection::new(
        broker.inner.config.clone(),
        broker.inner.auth.clone(),
        Some(peer),
        Instant::now(),
    );
    let mut task = Task {
        broker,
        conn_id: NEXT_CONN_ID.fetch_add(1, Ordering::Relaxed),
        tx,
        kick: kick.clone(),
        client: None,
        handover: None,
    };
    let mut buf = BytesMut::new();
    let mut batch = VecDeque::new();
    let mut last_batch = 0;
    // Since when held deliveries have been waiting for queue room without any being taken.
    let mut stalled: Option<Instant> = None;
    // One timer for the connection's life, armed at the session machine's deadline (or the
    // hold grace's end, `stalled`: the loop then forces held deliveries in). A packet
    // moves the keep-alive deadline later; the timer is then left where it is (no timer-wheel
    // update per packet) and, when it fires early, `handle_timeout` finds nothing due and the
    // timer is armed again at the new deadline.
    let timer = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(timer);
    let mut armed: Option<Instant> = None;
    match stream.read_now(&mut buf, read_reserve(&conn)) {
        Ok(Some(0)) => conn.handle_eof(Instant::now()),
        Ok(Some(n)) => {
            task.broker.inner.metrics.bytes_received.inc_by(n as u64);
        }
        // Nothing yet, or an error the first wait for readiness meets again.
        Ok(None) | Err(_) => {}
    }
    loop {
        let now = Instant::now();
        let mut decoded = false;
        while !conn.is_awaiting_session() && !conn.is_closed() {
            match decode(&mut buf, &conn) {
                Ok(Some(p)) => {
                    let _ = task.broker.inner.metrics.packets_received.inc();
                    conn.handle_packet(p, now);
                    decoded = true;
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::info!(%peer, "bad packet: {e}");
                    conn.handle_decode_error(&e, now);
                }
            }
        }
        if !batch.is_empty() {
            let force = stalled.is_some_and(|t| now >= t + HOLD_GRACE);
            let before = batch.len();
            task.deliver_held(&mut conn, &mut batch, force, now);
            stalled = match batch.len() {
                0 => None,
                n if n < before => Some(now),
                _ => stalled.or(Some(now)),
            };
        }
        let mut resumed = false;
        // Consecutive PUBLISHes are routed as one batch (`Broker::route_publish`).
        let mut publishes = Vec::new();
        while let Some(action) = conn.poll_action() {
            if let Action::Publish(m) = action {
                publishes.push(m);
                continue;
            }
            if let Some(wait) = task.publish(&mut publishes) {
                task.wait(&mut conn, wait).await;
            }
            if let Some(wait) = task.act(&mut conn, action, now) {
                resumed |= task.wait(&mut conn, wait).await;
            }
        }
        let routed = !publishes.is_empty();
        if let Some(wait) = task.publish(&mut publishes) {
            task.wait(&mut conn, wait).await;
        }
        if routed {
            // The subscribers' tasks our deliveries woke wait on this worker (tokio's LIFO
            // slot) until this task yields: let them write the message out before we write our
            // PUBACKs. Measured (BENCHMARKS.md run 12): p50 latency at 5 k msg/s QoS 1 down by
            // 15-35 %, throughput unchanged.
            tokio::task::yield_now().await;
        }
        if !task.flush(&mut conn, &mut stream, now).await {
            conn.handle_eof(Instant::now());
            while let Some(action) = conn.poll_action() {
                if let Some(wait) = task.act(&mut conn, action, Instant::now()) {
                    task.wait(&mut conn, wait).await;
                }
            }
            break;
        }
        if conn.is_closed() {
            break;
        }
        if resumed || (decoded && !buf.is_empty()) {
            continue;
        }
        if buf.is_empty() {
            // Hold no buffers while waiting: an idle connection then costs no 8 KiB read
            // buffer (`read_ready` allocates once data is there) and no delivery queue.
            buf = BytesMut::new();
            if last_batch <= 1 && batch.is_empty() {
                // Busy connections (bursts of deliveries) keep their buffers.
                if batch.capacity() > 0 {
                    batch = VecDeque::new();
                    rx.shrink();
                }
                conn.shrink_idle();
            }
        }
        // The session machine's deadline, or the end of the hold grace if that is sooner.
        let deadline = match (conn.poll_timeout(), stalled.map(|t| t + HOLD_GRACE)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        match deadline {
            Some(d) if armed.is_none_or(|a| d < a) => {
                timer.as_mut().reset(d.into());
                armed = Some(d);
            }
            Some(_) => {}
            None => armed = None,
        }
        tokio::select! {
            r = stream.read_ready(&mut buf, read_reserve(&conn)), if !conn.is_awaiting_session() => match r {
                Ok(0) => conn.handle_eof(Instant::now()),
                Ok(n) => {
                    task.broker.inner.metrics.bytes_received.inc_by(n as u64);
                }
                Err(e) => {
                    tracing::debug!(%peer, "read: {e}");
                    conn.handle_eof(Instant::now());
                }
            },
            // Everything queued (at most the channel capacity): one wakeup, one write for a
            // burst. Not taken while earlier ones are still held, so a full channel holds up
            // the publishers (backpressure) instead of the session queue dropping messages.
            () = rx.recv_batch(&mut batch), if batch.is_empty() => last_batch = batch.len(),
            () = kick.notified() => conn.shutdown(ReasonCode::QuotaExceeded, Instant::now()),
            () = &mut timer, if armed.is_some() => {
                armed = None;
                // Nothing due yet when the deadline moved on or it was the hold grace.
                conn.handle_timeout(Instant::now());
            }
        }
    }
    let _ = stream.shutdown().await;
}

/// Decodes the next packet from `buf`. CONNECT's frame is first copied into an allocation of
/// its own size: its strings (client id, user name, Will) are zero-copy slices that the
/// session keeps for the connection's life, and as slices of the read buffer they would pin
/// that whole buffer (512 bytes and up) on every idle connection.
fn decode(buf: &mut BytesMut, conn: &Connection) -> Result<Option<Packet>, CodecError> {
    let max = conn.max_incoming_packet_size();
    let version = conn.protocol_version();
    if conn.is_connected() {
        return Packet::decode(buf, version, max);
    }
    let Some((_, len)) = codec::check(buf, max)? else {
        return Ok(None);
    };
    let mut frame = BytesMut::from(&buf[..len]);
    buf.advance(len);
    Packet::decode(&mut frame, version, max)
}

/// Read room to reserve: small until CONNECT is handled, so that a flood of connections that
/// have not sent CONNECT yet holds 512 bytes each (a larger CONNECT grows the buffer) instead
/// of `READ_RESERVE`.
fn read_reserve(conn: &Connection) -> usize {
    if conn.is_connected() {
        READ_RESERVE
    } else {
        512
    }
}

/// Whether the session queue can take one more message without dropping its oldest.
fn queue_has_room(conn: &Connection, max_queue_len: usize) -> bool {
    max_queue_len == 0 || conn.session().is_none_or(|s| s.queue_len() < max_queue_len)
}

impl Task {
    /// Hands held deliveries to the session, in order, while its queue has room (all of them
    /// when `force`); the rest stay in `batch`. Messages the session drops are counted.
    fn deliver_held(
        &mut self,
        conn: &mut Connection,
        batch: &mut VecDeque<ToConn>,
        force: bool,
        now: Instant,
    ) {
        let max_queue_len = self.broker.inner.config.max_queue_len;
        let dropped = |c: &Connection| c.session().map_or(0, |s| s.dropped());
        let before = dropped(conn);
        if force {
            tracing::warn!(client = ?self.client, held = batch.len(), "subscriber made no room for {HOLD_GRACE:?}; its queue drops its oldest");
        }
        while let Some(m) = batch.pop_front() {
            match m {
                ToConn::Deliver(d) if !force && !queue_has_room(conn, max_queue_len) => {
                    batch.push_front(ToConn::Deliver(d));
                    break;
                }
                ToConn::Deliver(d) => conn.deliver(&d, now),
                ToConn::Takeover(reply) => {
                    self.handover = Some(reply);
                    conn.takeover(now);
                    batch.clear();
                }
            }
        }
        let n = dropped(conn).saturating_sub(before);
        if n > 0 {
            let _ = self.broker.inner.metrics.messages_dropped.inc_by(n);
        }
    }

    /// Writes all pending output; false when the socket failed.
    async fn flush(&self, conn: &mut Connection, stream: &mut Transport, now: Instant) -> bool {
        while let Some(bytes) = conn.poll_transmit(now) {
            let n = bytes.len() as u64;
            if let Err(e) = stream.write_all(&bytes).await {
                tracing::debug!("write: {e}");
                return false;
            }
            let _ = self.broker.inner.metrics.bytes_sent.inc_by(n);
        }
        if let Err(e) = stream.flush().await {
            tracing::debug!("flush: {e}");
            return false;
        }
        true
    }

    /// Routes a batch of the client's PUBLISHes (emptying it) as far as that does not wait;
    /// the rest of [`Broker::route_publish`] comes back as [`Wait::Publish`].
    fn publish(&self, batch: &mut Vec<Arc<Message>>) -> Option<Wait> {
        if batch.is_empty() {
            return None;
        }
        let broker = &self.broker;
        let _ = broker
            .inner
            .metrics
            .messages_received
            .inc_by(batch.len() as u64);
        let blocked = broker.route_nowait(batch);
        // Only in a cluster can forwarding wait (on a busy node connection).
        if !blocked.is_empty() || broker.inner.cluster.get().is_some() {
            return Some(Wait::Publish(std::mem::take(batch), blocked));
        }
        batch.clear();
        None
    }

    /// Carries out one action. The two that wait (opening the session, a publish that finds
    /// a subscriber's queue full or goes to the cluster) come back as [`Wait`] for [`Task::wait`]: the rest is
    /// synchronous, so the task future, which lives as long as the connection, does not hold
    /// an `Action` and the routing futures in one of its states.
    fn act(&mut self, conn: &mut Connection, action: Action, now: Instant) -> Option<Wait> {
        let broker = &self.broker;
        match action {
            Action::OpenSession {
                client,
                clean_start,
            } => {
                let id: Arc<str> = client.client_id.as_str().into();
                self.client = Some(id.clone());
                return Some(Wait::Open { id, clean_start });
            }
            Action::Subscribe {
                filter,
                subscription,
                options,
                send_retained,
            } => {
                let client = self.client.clone()?;
                let key = SubKey::new(client, &filter);
                let opts = SubOptions {
                    qos: options.qos as u8,
                    no_local: options.no_local,
                    retain_as_published: options.retain_as_published,
                    retain_handling: options.retain_handling as u8,
                    subscription_id: None,
                };
                let subscribed = {
                    let mut subs = broker.inner.subs.write();
                    broker.subscribe_in(&mut subs, &subscription, key, opts)
                };
                if let Err(e) = subscribed {
                    tracing::warn!(%filter, "subscribe: {e}");
                }
                if send_retained && subscription.group.is_none() {
                    for d in broker.retained_for(&filter, subscription.filter.as_str(), now) {
                        conn.deliver(&d, now);
                    }
                }
            }
            Action::Unsubscribe {
                filter,
                subscription,
            } => {
                if let Some(client) = self.client.clone() {
                    let key = SubKey::new(client, &filter);
                    let mut subs = broker.inner.subs.write();
                    broker.unsubscribe_in(&mut subs, &subscription, &key);
                }
            }
            Action::Publish(m) => return self.publish(&mut vec![m]),
            Action::Retain(m) => broker.retain(&m),
            Action::Will { message, delay } => {
                if let Some(client) = self.client.clone() {
                    broker.schedule_will(client, message, delay);
                }
            }
            Action::Closed {
                reason,
                session,
                expiry,
            } => {
                tracing::debug!(client = ?self.client, ?reason, "connection closed");
                if let Some(reply) = self.handover.take() {
                    let _ = reply.send((session, expiry));
                } else if let Some(client) = self.client.clone() {
                    broker.close_session(client, self.conn_id, session, expiry);
                }
            }
        }
        None
    }

    /// Carries out the waiting part of an action, each behind a `Box` (once per connection,
    /// or only when a subscriber is slow) so that the connection's future stays small; true
    /// when a session was attached (buffered input may resume).
    async fn wait(&mut self, conn: &mut Connection, wait: Wait) -> bool {
        match wait {
            Wait::Open { id, clean_start } => {
                let existing = Box::pin(self.broker.open_session(
                    id,
                    clean_start,
                    self.conn_id,
                    self.tx.clone(),
                    self.kick.clone(),
                ))
                .await;
                conn.attach_session(existing, Instant::now());
                true
            }
            Wait::Publish(msgs, blocked) => {
                let broker = &self.broker;
                Box::pin(async move {
                    for m in &msgs {
                        broker.forward_publish(m).await;
                    }
                    broker.wait_blocked(blocked).await;
                })
                .await;
                false
            }
        }
    }
}

/// The part of an action that waits.
enum Wait {
    /// Register the session (taking over a live holder of the client id) and attach it.
    Open { id: Arc<str>, clean_start: bool },
    /// The rest of [`Broker::route_publish`] after its local deliveries: forward to the
    /// cluster, wait for room in the subscribers' queues `route_nowait` found full.
    Publish(Vec<Arc<Message>>, Vec<super::ConnBatch>),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mqtt::broker::BrokerConfig;

    /// The connection task's future lives as long as its connection, so its size is part of
    /// every idle connection's memory (issue 5 budget: 4 KiB per idle connection in all).
    #[tokio::test]
    async fn connection_future_stays_small() -> std::io::Result<()> {
        let broker = Broker::new(BrokerConfig {
            sys_interval: None,
            ..BrokerConfig::default()
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let _client = tokio::net::TcpStream::connect(listener.local_addr()?).await?;
        let (server, peer) = listener.accept().await?;
        let task = run(broker, Transport::Tcp(server), peer);
        let size = std::mem::size_of_val(&task);
        // 1.6 KiB in a debug build; 2.4 KiB while the routing futures were awaited inline
        // (BENCHMARKS.md, "MQTT brokers side by side").
        assert!(size <= 2048, "connection future is {size} bytes");
        Ok(())
    }
}
