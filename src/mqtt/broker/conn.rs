//! One client connection as a tokio task: reads bytes into the sans-IO
//! [`Connection`](crate::mqtt::session::Connection), carries out its actions on the shared
//! [`Broker`], writes its output, and takes deliveries from its bounded channel.
//! The loop is the one documented in `src/mqtt/session/mod.rs`.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::io::AsyncWriteExt as _;
use tokio::sync::{oneshot, Notify};

use super::mailbox;
use super::{Broker, Handover, SubKey, ToConn};
use crate::mqtt::codec::{Packet, ReasonCode};
use crate::mqtt::session::{Action, Connection};
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
    loop {
        let now = Instant::now();
        let mut decoded = false;
        while !conn.is_awaiting_session() && !conn.is_closed() {
            let max = conn.max_incoming_packet_size();
            match Packet::decode(&mut buf, conn.protocol_version(), max) {
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
        while let Some(action) = conn.poll_action() {
            resumed |= task.act(&mut conn, action, now).await;
        }
        if !task.flush(&mut conn, &mut stream, now).await {
            conn.handle_eof(Instant::now());
            while let Some(action) = conn.poll_action() {
                task.act(&mut conn, action, Instant::now()).await;
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
            if last_batch <= 1 && batch.is_empty() && batch.capacity() > 0 {
                // Busy connections (bursts of deliveries) keep their two queue buffers.
                batch = VecDeque::new();
                rx.shrink();
            }
        }
        let deadline = conn.poll_timeout();
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
            () = sleep_until(stalled.map(|t| t + HOLD_GRACE)), if stalled.is_some() => {}
            () = kick.notified() => conn.shutdown(ReasonCode::QuotaExceeded, Instant::now()),
            () = sleep_until(deadline), if deadline.is_some() => conn.handle_timeout(Instant::now()),
        }
    }
    let _ = stream.shutdown().await;
}

/// Read room to reserve: small until CONNECT is handled. The decoded CONNECT's strings are
/// zero-copy slices of the buffer they were read into, and the session keeps them for the
/// connection's lifetime, which pins that whole allocation: 512 bytes (room for a usual
/// CONNECT; a larger one grows the buffer) instead of `READ_RESERVE` per idle connection.
fn read_reserve(conn: &Connection) -> usize {
    if conn.is_connected() {
        READ_RESERVE
    } else {
        512
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    if let Some(d) = deadline {
        tokio::time::sleep_until(d.into()).await;
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

    /// Carries out one action; true when a session was attached (buffered input may resume).
    async fn act(&mut self, conn: &mut Connection, action: Action, now: Instant) -> bool {
        let broker = self.broker.clone();
        match action {
            Action::OpenSession {
                client,
                clean_start,
            } => {
                let id: Arc<str> = client.client_id.as_str().into();
                self.client = Some(id.clone());
                let existing = broker
                    .open_session(
                        id,
                        clean_start,
                        self.conn_id,
                        self.tx.clone(),
                        self.kick.clone(),
                    )
                    .await;
                conn.attach_session(existing, Instant::now());
                return true;
            }
            Action::Subscribe {
                filter,
                subscription,
                options,
                send_retained,
            } => {
                let Some(client) = self.client.clone() else {
                    return false;
                };
                let key = SubKey {
                    client,
                    filter: filter.as_str().into(),
                };
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
                    let key = SubKey {
                        client,
                        filter: filter.as_str().into(),
                    };
                    let mut subs = broker.inner.subs.write();
                    broker.unsubscribe_in(&mut subs, &subscription, &key);
                }
            }
            Action::Publish(m) => {
                let _ = broker.inner.metrics.messages_received.inc();
                broker.route_publish(&m).await;
            }
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
        false
    }
}
