//! A live distribution connection after the handshake: tokio tasks that frame, tick and watch
//! the peer, handing raw dist frames to the node layer.
//!
//! [`crate::dist::setup::accept`] / [`crate::dist::setup::connect`] return a [`Connection`]:
//! - [`Connection::incoming`]: every received non-tick frame, the bytes after the 4-byte length
//!   (`112 ...` pass-through or `131,68 ...` dist header), on a bounded channel. When the node
//!   layer falls behind, reading stops and TCP pushes back on the peer; that stall does not
//!   count as peer silence.
//! - [`Connection::sender`]: a clonable [`FrameSender`] taking payloads (same form, without the
//!   length) on a bounded channel; the writer drains whatever is queued and writes it with one
//!   vectored write.
//! - [`Connection::down`]: resolves once with the [`NodeDown`] reason: the peer closed, went
//!   silent for about net_ticktime (`net_tick_timeout`), sent garbage, a write failed, or the node
//!   layer disconnected ([`FrameSender::disconnect`], or dropping `incoming`). After that
//!   `incoming` ends and sends fail.
//!
//! Ticks follow [`crate::dist::tick`], from their own task, so a busy node layer never stops
//! them.

use std::io::IoSlice;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch, Notify};

use crate::dist::flags::DistFlags;
use crate::dist::frame::{self, DistFrame, TICK};
use crate::dist::tick::{IoStats, TickAction, Ticker};

/// Smallest room made for one socket read.
const MIN_READ: usize = 16 * 1024;

/// Why a connection went down (the `nodedown_reason` OTP reports).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeDown {
    /// The peer closed the connection (`connection_closed`).
    #[error("connection_closed")]
    ConnectionClosed,
    /// Nothing received for about net_ticktime (`net_tick_timeout`).
    #[error("net_tick_timeout")]
    NetTickTimeout,
    /// The peer sent something that is not a valid frame.
    #[error("bad frame: {0}")]
    BadFrame(String),
    /// Reading or writing the socket failed.
    #[error("socket error: {0}")]
    Io(String),
    /// Closed locally (`disconnected`).
    #[error("disconnected")]
    Disconnected,
}

/// Who the peer is, as the handshake established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    /// The peer's node name.
    pub name: String,
    /// The peer's creation.
    pub creation: u32,
    /// The flags in use (ours AND the peer's).
    pub flags: DistFlags,
    /// The peer's socket address.
    pub addr: SocketAddr,
}

/// Tuning of a connection's I/O tasks.
#[derive(Debug, Clone)]
pub struct IoConfig {
    /// `net_ticktime`.
    pub net_ticktime: Duration,
    /// `net_tickintensity` (4).
    pub tick_intensity: u32,
    /// Whether the connection is hidden (ticks whenever nothing was read).
    pub hidden: bool,
    /// Largest frame accepted from the peer.
    pub max_frame: usize,
    /// Frames queued in each direction before backpressure.
    pub channel_capacity: usize,
    /// At most this many bytes are gathered into one write.
    pub max_batch_bytes: usize,
}

/// The sending side of a connection; cheap to clone.
#[derive(Debug, Clone)]
pub struct FrameSender {
    tx: mpsc::Sender<Bytes>,
    shared: Arc<Shared>,
}

/// Sending on a connection that is down.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("connection is down")]
pub struct ConnectionDown;

impl FrameSender {
    /// Queues one frame payload (without the 4-byte length); waits while the queue is full.
    pub async fn send(&self, payload: Bytes) -> Result<(), ConnectionDown> {
        if payload.is_empty() {
            return Ok(()); // an empty payload would be a tick; nothing to send
        }
        self.tx.send(payload).await.map_err(|_| ConnectionDown)
    }

    /// Queues a frame if there is room now.
    pub fn try_send(&self, payload: Bytes) -> Result<(), mpsc::error::TrySendError<Bytes>> {
        if payload.is_empty() {
            return Ok(());
        }
        self.tx.try_send(payload)
    }

    /// Closes the connection (`disconnected`).
    pub fn disconnect(&self) {
        self.shared.set_down(NodeDown::Disconnected);
    }

    /// Whether the connection is down.
    pub fn is_down(&self) -> bool {
        self.shared.down.borrow().is_some()
    }
}

/// Resolves to the reason once the connection is down.
#[derive(Debug, Clone)]
pub struct DownWatch(watch::Receiver<Option<NodeDown>>);

impl DownWatch {
    /// Waits for the connection to go down.
    pub async fn wait(&mut self) -> NodeDown {
        loop {
            if let Some(r) = self.0.borrow_and_update().clone() {
                return r;
            }
            if self.0.changed().await.is_err() {
                return NodeDown::Disconnected;
            }
        }
    }

    /// The reason, if already down.
    pub fn reason(&self) -> Option<NodeDown> {
        self.0.borrow().clone()
    }
}

/// An established, ticking connection (see the module docs).
#[derive(Debug)]
pub struct Connection {
    /// The peer.
    pub peer: PeerInfo,
    /// Received frames.
    pub incoming: mpsc::Receiver<Bytes>,
    /// Sends frames.
    pub sender: FrameSender,
    /// Reports the end of the connection.
    pub down: DownWatch,
}

#[derive(Debug)]
struct Shared {
    read: AtomicU64,
    written: AtomicU64,
    writing: AtomicBool,
    reader_stalled: AtomicBool,
    tick: Notify,
    down: watch::Sender<Option<NodeDown>>,
}

impl Shared {
    /// First reason wins.
    fn set_down(&self, reason: NodeDown) {
        self.down.send_if_modified(|cur| {
            if cur.is_none() {
                *cur = Some(reason);
                true
            } else {
                false
            }
        });
    }
}

/// Starts the reader, writer and ticker tasks on an established stream. `rest` holds bytes
/// already read past the handshake. `on_down` runs once when the connection ends (used to
/// clear the pending table); `cancel` closes the connection when notified.
pub(crate) fn spawn(
    stream: TcpStream,
    rest: BytesMut,
    peer: PeerInfo,
    cfg: IoConfig,
    cancel: Arc<Notify>,
    on_down: Box<dyn FnOnce(&NodeDown) + Send>,
) -> Connection {
    let _ = stream.set_nodelay(true);
    let (down_tx, down_rx) = watch::channel(None);
    let shared = Arc::new(Shared {
        read: AtomicU64::new(0),
        written: AtomicU64::new(0),
        writing: AtomicBool::new(false),
        reader_stalled: AtomicBool::new(false),
        tick: Notify::new(),
        down: down_tx,
    });
    let (in_tx, in_rx) = mpsc::channel(cfg.channel_capacity.max(1));
    let (out_tx, out_rx) = mpsc::channel(cfg.channel_capacity.max(1));
    let (rd, wr) = stream.into_split();
    tokio::spawn(reader(
        rd,
        rest,
        in_tx,
        shared.clone(),
        cfg.max_frame,
        peer.name.clone(),
    ));
    tokio::spawn(writer(wr, out_rx, shared.clone(), cfg.max_batch_bytes));
    tokio::spawn(ticker(
        shared.clone(),
        out_tx.clone(),
        cfg,
        cancel,
        peer.name.clone(),
        on_down,
    ));
    Connection {
        peer,
        incoming: in_rx,
        sender: FrameSender { tx: out_tx, shared },
        down: DownWatch(down_rx),
    }
}

async fn reader(
    mut rd: OwnedReadHalf,
    mut buf: BytesMut,
    tx: mpsc::Sender<Bytes>,
    shared: Arc<Shared>,
    max_frame: usize,
    peer: String,
) {
    let mut down = shared.down.subscribe();
    loop {
        loop {
            match frame::decode_dist(&mut buf, max_frame) {
                Ok(None) => break,
                Ok(Some(DistFrame::Tick)) => {}
                Ok(Some(DistFrame::Data(payload))) => {
                    shared.reader_stalled.store(true, Ordering::Relaxed);
                    let sent = tokio::select! {
                        r = tx.send(payload) => r.is_ok(),
                        _ = down.changed() => return,
                    };
                    shared.reader_stalled.store(false, Ordering::Relaxed);
                    if !sent {
                        shared.set_down(NodeDown::Disconnected);
                        return;
                    }
                }
                Err(e) => {
                    tracing::warn!(%peer, error = %e, "closing dist connection: bad frame");
                    shared.set_down(NodeDown::BadFrame(e.to_string()));
                    return;
                }
            }
        }
        // At least MIN_READ of room so many small frames cost few reads; never more than what
        // the current frame still needs or READ_CHUNK, so a huge declared length cannot make us
        // allocate ahead of the bytes really arriving.
        buf.reserve(frame::read_hint(&buf, 4).max(MIN_READ));
        let n = tokio::select! {
            r = rd.read_buf(&mut buf) => r,
            _ = down.changed() => return,
            _ = tx.closed() => {
                // The node layer dropped `incoming`: nobody wants this connection any more.
                shared.set_down(NodeDown::Disconnected);
                return;
            }
        };
        match n {
            Ok(0) => {
                shared.set_down(NodeDown::ConnectionClosed);
                return;
            }
            Ok(_) => {
                shared.read.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                shared.set_down(NodeDown::Io(e.to_string()));
                return;
            }
        }
    }
}

async fn writer(
    mut wr: OwnedWriteHalf,
    mut rx: mpsc::Receiver<Bytes>,
    shared: Arc<Shared>,
    max_batch: usize,
) {
    let mut down = shared.down.subscribe();
    let mut batch: Vec<Bytes> = Vec::new();
    loop {
        tokio::select! {
            biased;
            _ = down.changed() => break,
            first = rx.recv() => {
                let Some(first) = first else {
                    shared.set_down(NodeDown::Disconnected);
                    break;
                };
                shared.writing.store(true, Ordering::Relaxed);
                let mut size = first.len();
                batch.push(first);
                while size < max_batch {
                    match rx.try_recv() {
                        Ok(p) => {
                            size += p.len();
                            batch.push(p);
                        }
                        Err(_) => break,
                    }
                }
                let n = batch.len() as u64;
                let r = tokio::select! {
                    r = write_frames(&mut wr, &batch) => r,
                    _ = down.changed() => break,
                };
                batch.clear();
                shared.writing.store(false, Ordering::Relaxed);
                if let Err(e) = r {
                    shared.set_down(NodeDown::Io(e.to_string()));
                    break;
                }
                shared.written.fetch_add(n, Ordering::Relaxed);
            }
            _ = shared.tick.notified() => {
                shared.writing.store(true, Ordering::Relaxed);
                let r = tokio::select! {
                    r = wr.write_all(&TICK) => r,
                    _ = down.changed() => break,
                };
                shared.writing.store(false, Ordering::Relaxed);
                if let Err(e) = r {
                    shared.set_down(NodeDown::Io(e.to_string()));
                    break;
                }
                shared.written.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    let _ = wr.shutdown().await;
}

/// Writes each payload behind its 4-byte length with vectored writes, handling partial writes.
async fn write_frames<W: AsyncWrite + Unpin>(w: &mut W, payloads: &[Bytes]) -> std::io::Result<()> {
    let headers: Vec<[u8; 4]> = payloads
        .iter()
        .map(|p| frame::dist_header(p.len()))
        .collect();
    let mut slices: Vec<IoSlice<'_>> = Vec::with_capacity(payloads.len() * 2);
    for (h, p) in headers.iter().zip(payloads) {
        slices.push(IoSlice::new(h));
        slices.push(IoSlice::new(p));
    }
    let mut bufs: &mut [IoSlice<'_>] = &mut slices;
    while !bufs.is_empty() {
        let n = w.write_vectored(bufs).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut bufs, n);
    }
    Ok(())
}

async fn ticker(
    shared: Arc<Shared>,
    out: mpsc::Sender<Bytes>,
    cfg: IoConfig,
    cancel: Arc<Notify>,
    peer: String,
    on_down: Box<dyn FnOnce(&NodeDown) + Send>,
) {
    let mut down = shared.down.subscribe();
    let mut t = Ticker::new(
        cfg.net_ticktime,
        cfg.tick_intensity,
        cfg.hidden,
        tokio::time::Instant::now().into_std(),
    );
    loop {
        let at = tokio::time::Instant::from_std(t.next_check());
        tokio::select! {
            _ = down.changed() => break,
            _ = cancel.notified() => {
                shared.set_down(NodeDown::Disconnected);
                break;
            }
            _ = tokio::time::sleep_until(at) => {
                if shared.reader_stalled.load(Ordering::Relaxed) {
                    // Our own consumer is slow, not the peer: count it as progress.
                    shared.read.fetch_add(1, Ordering::Relaxed);
                }
                let stats = IoStats {
                    read: shared.read.load(Ordering::Relaxed),
                    written: shared.written.load(Ordering::Relaxed),
                    pending_write: shared.writing.load(Ordering::Relaxed)
                        || out.capacity() < out.max_capacity(),
                };
                match t.on_timer(tokio::time::Instant::now().into_std(), stats) {
                    TickAction::Nothing => {}
                    TickAction::SendTick => shared.tick.notify_one(),
                    TickAction::PeerDead => {
                        tracing::warn!(%peer, "node not responding; removing (timed out) connection");
                        shared.set_down(NodeDown::NetTickTimeout);
                        break;
                    }
                }
            }
        }
    }
    let reason = shared
        .down
        .borrow()
        .clone()
        .unwrap_or(NodeDown::Disconnected);
    tracing::info!(%peer, %reason, "nodedown");
    on_down(&reason);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn vectored_write_frames_each_payload() -> std::io::Result<()> {
        let mut out = Vec::new();
        write_frames(
            &mut out,
            &[Bytes::from_static(b"\x70ab"), Bytes::from_static(b"c")],
        )
        .await?;
        assert_eq!(out, b"\x00\x00\x00\x03\x70ab\x00\x00\x00\x01c");
        Ok(())
    }
}
