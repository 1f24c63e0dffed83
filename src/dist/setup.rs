//! Connection setup: runs the handshake on a TCP stream (accepted or dialled), then starts the
//! connection's I/O tasks ([`crate::dist::connection`]).
//!
//! - [`accept`]`(stream, &local)`: the acceptor; net_kernel's decisions come from
//!   [`LocalNode::pending`] (simultaneous connects, peers that restarted).
//! - [`connect`]`(addr, &local, peer)`: the initiator; fails with [`SetupError::Superseded`] if
//!   the peer's own simultaneous attempt wins (after a `nok` status it keeps its pending entry
//!   until the peer's attempt arrives, as dist_util does, so callers can wait for that one).
//!
//! Every failure is logged with the peer's address (and name when known); a wrong cookie is a
//! warning naming both. The cookie itself is never logged.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;

use crate::dist::connection::{self, Connection, IoConfig, PeerInfo};
use crate::dist::cookie::Cookie;
use crate::dist::flags::{self, DistFlags};
use crate::dist::frame::DEFAULT_MAX_FRAME;
use crate::dist::handshake::{
    Established, Handshake, HandshakeConfig, HandshakeError, HandshakeEvent, DEFAULT_SETUP_TIME,
};
use crate::dist::nodename::NodeName;
use crate::dist::pending::{BeginError, PendingTable, Ticket};
use crate::dist::tick::{DEFAULT_NET_TICKTIME, DEFAULT_TICK_INTENSITY};

/// Everything the connection layer needs to know about the local node.
#[derive(Debug, Clone)]
pub struct LocalNode {
    /// Our node name.
    pub name: NodeName,
    /// Our creation (from epmd's ALIVE2 answer, or random in ekka mode).
    pub creation: u32,
    /// The cookie.
    pub cookie: Cookie,
    /// Hidden node: no PUBLISHED flag.
    pub hidden: bool,
    /// `net_ticktime`.
    pub net_ticktime: Duration,
    /// `net_tickintensity`.
    pub tick_intensity: u32,
    /// `net_setuptime`: limit per handshake step.
    pub setup_time: Duration,
    /// Largest frame accepted.
    pub max_frame: usize,
    /// Frames queued per direction before backpressure.
    pub channel_capacity: usize,
    /// Pending and up connections, for simultaneous-connect resolution.
    pub pending: Arc<PendingTable>,
}

impl LocalNode {
    /// A node with OTP's defaults (ticktime 60 s, setup time 7 s, visible).
    pub fn new(name: NodeName, creation: u32, cookie: Cookie) -> LocalNode {
        LocalNode {
            name,
            creation,
            cookie,
            hidden: false,
            net_ticktime: DEFAULT_NET_TICKTIME,
            tick_intensity: DEFAULT_TICK_INTENSITY,
            setup_time: DEFAULT_SETUP_TIME,
            max_frame: DEFAULT_MAX_FRAME,
            channel_capacity: 1024,
            pending: PendingTable::new(),
        }
    }

    fn handshake_config(&self) -> HandshakeConfig {
        HandshakeConfig {
            name: self.name.to_string(),
            creation: self.creation,
            flags: DistFlags::ours(self.hidden),
            required: flags::REQUIRED,
            cookie: self.cookie.clone(),
            setup_time: self.setup_time,
        }
    }

    fn io_config(&self) -> IoConfig {
        IoConfig {
            net_ticktime: self.net_ticktime,
            tick_intensity: self.tick_intensity,
            hidden: self.hidden,
            max_frame: self.max_frame,
            channel_capacity: self.channel_capacity,
            max_batch_bytes: 256 * 1024,
        }
    }
}

/// Why a connection could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// Socket error.
    #[error("{addr}: {source}")]
    Io {
        /// Peer address.
        addr: String,
        /// The error.
        source: std::io::Error,
    },
    /// The handshake failed.
    #[error("handshake with {addr} failed: {source}")]
    Handshake {
        /// Peer address.
        addr: SocketAddr,
        /// The failure.
        source: HandshakeError,
    },
    /// The peer closed the socket during the handshake.
    #[error("{addr} closed the connection during the handshake")]
    Closed {
        /// Peer address.
        addr: SocketAddr,
    },
    /// Our attempt was cancelled: the peer's simultaneous attempt won, or a disconnect.
    #[error("connection attempt to {peer} superseded")]
    Superseded {
        /// Peer node.
        peer: String,
    },
    /// Already connected or connecting to that node.
    #[error("{peer}: {source}")]
    Busy {
        /// Peer node.
        peer: String,
        /// Why.
        source: BeginError,
    },
    /// The peer's address could not be found.
    #[error("cannot resolve {peer}: {reason}")]
    Resolve {
        /// Peer node.
        peer: String,
        /// Why.
        reason: String,
    },
}

/// Runs the acceptor side on an accepted stream.
pub async fn accept(mut stream: TcpStream, local: &LocalNode) -> Result<Connection, SetupError> {
    let addr = peer_addr(&stream)?;
    let now = tokio::time::Instant::now().into_std();
    let hs = Handshake::acceptor(local.handshake_config(), rand::random(), now);
    let mut ticket: Option<Ticket> = None;
    let result = drive(&mut stream, hs, addr, local, &mut ticket, None).await;
    if let (Err(_), Some(t)) = (&result, &ticket) {
        local.pending.remove_id(t.id);
    }
    finish(stream, result, addr, local, ticket)
}

/// Dials `addr` and runs the initiator side towards node `peer`.
pub async fn connect(
    addr: SocketAddr,
    local: &LocalNode,
    peer: &str,
) -> Result<Connection, SetupError> {
    let ticket = local
        .pending
        .begin_connect(peer)
        .map_err(|source| SetupError::Busy {
            peer: peer.to_string(),
            source,
        })?;
    let id = ticket.id;
    let r = async {
        let stream = tokio::time::timeout(local.setup_time, TcpStream::connect(addr))
            .await
            .map_err(|_| SetupError::Io {
                addr: addr.to_string(),
                source: std::io::ErrorKind::TimedOut.into(),
            })?
            .map_err(|source| SetupError::Io {
                addr: addr.to_string(),
                source,
            })?;
        Ok::<_, SetupError>(stream)
    }
    .await;
    let mut stream = match r {
        Ok(s) => s,
        Err(e) => {
            local.pending.remove(peer, id);
            tracing::info!(%peer, %addr, error = %e, "dist connect failed");
            return Err(e);
        }
    };
    let now = tokio::time::Instant::now().into_std();
    let hs = Handshake::initiator(local.handshake_config(), peer, rand::random(), now);
    let cancel = ticket.cancel.clone();
    let mut t = Some(ticket);
    let cancelled = cancel.clone();
    let mut result = drive(&mut stream, hs, addr, local, &mut t, Some(cancel)).await;
    if let Err(SetupError::Handshake {
        source: HandshakeError::Refused { status: "nok", .. },
        ..
    }) = &result
    {
        // The peer is connecting to us too and its attempt wins (its name is greater).
        // dist_util's initiator then "waits to be killed by net_kernel": our attempt stays
        // pending until the peer's arrives and replaces it, so no nodedown happens between.
        if tokio::time::timeout(local.setup_time, cancelled.notified())
            .await
            .is_ok()
        {
            result = Err(SetupError::Superseded {
                peer: peer.to_string(),
            });
        }
    }
    if result.is_err() {
        local.pending.remove(peer, id);
    }
    finish(stream, result, addr, local, t)
}

fn peer_addr(stream: &TcpStream) -> Result<SocketAddr, SetupError> {
    stream.peer_addr().map_err(|source| SetupError::Io {
        addr: "?".into(),
        source,
    })
}

fn finish(
    stream: TcpStream,
    result: Result<Established, SetupError>,
    addr: SocketAddr,
    local: &LocalNode,
    ticket: Option<Ticket>,
) -> Result<Connection, SetupError> {
    let est = result?;
    let Some(ticket) = ticket else {
        return Err(SetupError::Superseded { peer: est.peer });
    };
    if !local.pending.mark_up(&est.peer, ticket.id) {
        return Err(SetupError::Superseded { peer: est.peer });
    }
    tracing::info!(peer = %est.peer, %addr, flags = ?est.flags, "nodeup");
    let peer = PeerInfo {
        name: est.peer.clone(),
        creation: est.peer_creation,
        flags: est.flags,
        addr,
    };
    let table = local.pending.clone();
    let (name, id) = (est.peer.clone(), ticket.id);
    let on_down = Box::new(move |_: &connection::NodeDown| table.remove(&name, id));
    let mut io = local.io_config();
    // dist_util ticks by the connection's publish type (the agreed flags), not the node's.
    io.hidden = !est.flags.is_published();
    Ok(connection::spawn(
        stream,
        est.rest,
        peer,
        io,
        ticket.cancel,
        on_down,
    ))
}

/// Pumps bytes between the socket and the handshake machine until it is established.
async fn drive(
    stream: &mut TcpStream,
    mut hs: Handshake,
    addr: SocketAddr,
    local: &LocalNode,
    ticket: &mut Option<Ticket>,
    cancel: Option<Arc<Notify>>,
) -> Result<Established, SetupError> {
    let never = Arc::new(Notify::new());
    let cancel = cancel.unwrap_or(never);
    let mut buf = BytesMut::with_capacity(4096);
    loop {
        if let Some(out) = hs.take_output() {
            stream
                .write_all(&out)
                .await
                .map_err(|source| SetupError::Io {
                    addr: addr.to_string(),
                    source,
                })?;
        }
        while let Some(ev) = hs.poll_event() {
            let now = tokio::time::Instant::now().into_std();
            let r = match ev {
                HandshakeEvent::Established(est) => return Ok(est),
                HandshakeEvent::PeerName { name, .. } => {
                    let (decision, t) =
                        local.pending.accept_pending(&local.name.to_string(), &name);
                    *ticket = t;
                    hs.accept_pending(decision, now)
                }
                HandshakeEvent::AliveQuery => {
                    let wanted = ticket
                        .as_ref()
                        .is_some_and(|t| local.pending.is_pending(hs.peer(), t.id));
                    hs.answer_alive(wanted, now)
                }
                HandshakeEvent::AwaitOldConnection => {
                    if let Some(t) = ticket.as_ref() {
                        let peer = hs.peer().to_string();
                        local.pending.replace_up(&peer, t).await;
                    }
                    hs.old_connection_gone(tokio::time::Instant::now().into_std())
                }
            };
            if let Err(e) = r {
                return Err(fail(stream, &mut hs, addr, e).await);
            }
            if let Some(out) = hs.take_output() {
                stream
                    .write_all(&out)
                    .await
                    .map_err(|source| SetupError::Io {
                        addr: addr.to_string(),
                        source,
                    })?;
            }
        }
        let deadline = hs.poll_timeout().map(tokio::time::Instant::from_std);
        let Some(deadline) = deadline else {
            return Err(SetupError::Handshake {
                addr,
                source: HandshakeError::Unexpected("handshake stalled"),
            });
        };
        buf.clear();
        buf.reserve(4096);
        tokio::select! {
            r = stream.read_buf(&mut buf) => match r {
                Ok(0) => {
                    tracing::info!(%addr, peer = hs.peer(), "peer closed the connection during the handshake");
                    return Err(SetupError::Closed { addr });
                }
                Ok(_) => {
                    let now = tokio::time::Instant::now().into_std();
                    if let Err(e) = hs.handle_input(&buf, now) {
                        return Err(fail(stream, &mut hs, addr, e).await);
                    }
                }
                Err(source) => return Err(SetupError::Io { addr: addr.to_string(), source }),
            },
            _ = tokio::time::sleep_until(deadline) => {
                if let Err(e) = hs.handle_timeout(tokio::time::Instant::now().into_std()) {
                    return Err(fail(stream, &mut hs, addr, e).await);
                }
            }
            _ = cancel.notified() => {
                tracing::info!(%addr, peer = hs.peer(), "connection attempt superseded by the peer's");
                return Err(SetupError::Superseded { peer: hs.peer().to_string() });
            }
        }
    }
}

/// Logs a handshake failure with the peer's address, flushes any status we owe the peer, and
/// builds the error.
async fn fail(
    stream: &mut TcpStream,
    hs: &mut Handshake,
    addr: SocketAddr,
    e: HandshakeError,
) -> SetupError {
    match &e {
        HandshakeError::BadCookie { peer, .. } => {
            tracing::warn!(%addr, %peer, "dist handshake failed: wrong cookie (digest mismatch)")
        }
        _ => tracing::warn!(%addr, peer = hs.peer(), error = %e, "dist handshake failed"),
    }
    if let Some(out) = hs.take_output() {
        let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(&out)).await;
    }
    SetupError::Handshake { addr, source: e }
}
