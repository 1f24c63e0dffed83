//! Listener plumbing, independent of the MQTT session: TCP, TLS and WebSocket listeners that
//! each yield a [`Connection`] — a [`Transport`] byte stream plus the peer address — so the
//! connection loop is written once.
//!
//! Accepting and handshaking are split: [`Listener::accept`] only takes the TCP connection (the
//! accept loop never waits on a client), and [`Incoming::handshake`], run in the connection's
//! own task, does TLS or the WebSocket upgrade under a deadline, so a client that stalls in the
//! handshake holds only its own task and socket. Default ports are EMQX 4's; the caller adds
//! the node's port offset ([`ListenerConfig::port`] + `--port-offset`).

pub mod acceptors;
pub mod framed;
mod stream;
pub mod tls;
pub mod ws;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use thiserror::Error;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio_rustls::TlsAcceptor;

pub use framed::{read_packet, ReadError};
pub use stream::Transport;
pub use tls::{TlsConfig, TlsSetupError};
pub use ws::{WsConfig, WsStream};

/// `listeners.tcp.default` (EMQX 4 `listener.tcp.external`).
pub const DEFAULT_TCP_PORT: u16 = 1883;
/// `listener.ssl.external`.
pub const DEFAULT_TLS_PORT: u16 = 8883;
/// `listener.ws.external`.
pub const DEFAULT_WS_PORT: u16 = 8083;

/// What kind of listener, with its settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenerKind {
    /// Plain MQTT over TCP.
    Tcp,
    /// MQTT over TLS.
    Tls(TlsConfig),
    /// MQTT over WebSocket.
    Ws(WsConfig),
}

/// One listener's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerConfig {
    /// Address to bind, port offset already applied.
    pub bind: SocketAddr,
    /// Protocol.
    pub kind: ListenerKind,
    /// Deadline for the TLS handshake or WebSocket upgrade.
    pub handshake_timeout: Duration,
    /// Listen backlog: connection floods queue here instead of being refused by the kernel.
    pub backlog: u32,
    /// Acceptor threads, each with its own runtime and descriptor table
    /// ([`acceptors`]); 1 serves on the node's runtime.
    pub acceptors: usize,
}

impl ListenerConfig {
    /// Defaults for `kind` on `bind`: 15 s handshake deadline (EMQX's `handshake_timeout`),
    /// backlog 1024.
    pub fn new(bind: SocketAddr, kind: ListenerKind) -> Self {
        ListenerConfig {
            bind,
            kind,
            handshake_timeout: Duration::from_secs(15),
            backlog: 1024,
            acceptors: 1,
        }
    }

    /// `port + offset`, for the caller applying `--port-offset` (None on overflow).
    pub fn port(base: u16, offset: u16) -> Option<u16> {
        base.checked_add(offset)
    }
}

/// Why a connection did not get through its handshake.
#[derive(Debug, Error)]
pub enum TransportError {
    /// The TLS handshake failed.
    #[error("TLS handshake: {0}")]
    Tls(io::Error),
    /// The WebSocket upgrade failed or was refused.
    #[error("WebSocket upgrade: {0}")]
    Ws(#[from] tokio_tungstenite::tungstenite::Error),
    /// The handshake did not finish in time.
    #[error("handshake timed out")]
    Timeout,
    /// Setting up the listener failed.
    #[error("listener setup: {0}")]
    Setup(#[from] TlsSetupError),
    /// A socket call failed.
    #[error("{0}")]
    Io(#[from] io::Error),
}

enum Handshake {
    Tcp,
    Tls(TlsAcceptor),
    Ws(WsConfig),
}

/// How often `accept` logs that the process is out of descriptors while it stays so.
const EXHAUSTED_LOG_EVERY: Duration = Duration::from_secs(10);

/// A bound listener.
pub struct Listener {
    tcp: TcpListener,
    handshake: Arc<Handshake>,
    timeout: Duration,
    exhausted_logged: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener").field("tcp", &self.tcp).finish()
    }
}

/// A TCP connection accepted but not yet through its TLS/WebSocket handshake.
pub struct Incoming {
    tcp: TcpStream,
    peer: SocketAddr,
    handshake: Arc<Handshake>,
    timeout: Duration,
}

/// A client connection ready for MQTT.
#[derive(Debug)]
pub struct Connection {
    /// The byte stream.
    pub stream: Transport,
    /// The client's address.
    pub peer: SocketAddr,
}

/// Errors `accept` rides out: the client went away before we took it, or the process ran out
/// of descriptors or buffers for a moment (then we pause briefly instead of spinning).
fn transient(e: &io::Error) -> Option<Duration> {
    match e.kind() {
        io::ErrorKind::ConnectionAborted
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::Interrupted => return Some(Duration::ZERO),
        _ => {}
    }
    match e.raw_os_error() {
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM) => {
            Some(Duration::from_millis(100))
        }
        _ => None,
    }
}

impl Listener {
    /// Binds (SO_REUSEADDR, the configured backlog) and, for TLS, loads the certificate.
    pub async fn bind(cfg: &ListenerConfig) -> Result<Listener, TransportError> {
        let handshake = match &cfg.kind {
            ListenerKind::Tcp => Handshake::Tcp,
            ListenerKind::Tls(t) => Handshake::Tls(tls::acceptor(t)?),
            ListenerKind::Ws(w) => Handshake::Ws(w.clone()),
        };
        let socket = if cfg.bind.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        // Accepted sockets inherit TCP_NODELAY from the listening one on Linux (the kernel
        // clones the listener's socket): one `setsockopt` per listener instead of per client.
        socket.set_nodelay(true)?;
        socket.bind(cfg.bind)?;
        let tcp = socket.listen(cfg.backlog)?;
        Ok(Listener {
            tcp,
            handshake: Arc::new(handshake),
            timeout: cfg.handshake_timeout,
            exhausted_logged: Mutex::new(None),
        })
    }

    /// The bound address (the real port when bound to port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.tcp.local_addr()
    }

    /// Out of descriptors lasts as long as the clients stay: one line per
    /// `EXHAUSTED_LOG_EVERY`, not one per retry.
    fn log_exhausted(&self, e: &io::Error) {
        let now = Instant::now();
        let mut last = self
            .exhausted_logged
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if last.is_none_or(|t| now.duration_since(t) >= EXHAUSTED_LOG_EVERY) {
            *last = Some(now);
            tracing::warn!(
                addr = ?self.tcp.local_addr().ok(),
                "accept: {e}; new connections wait in the backlog"
            );
        }
    }

    /// Waits for the next TCP connection; transient failures are logged and ridden out.
    pub async fn accept(&self) -> io::Result<Incoming> {
        loop {
            match self.tcp.accept().await {
                Ok((tcp, peer)) => {
                    if !cfg!(target_os = "linux") {
                        if let Err(e) = tcp.set_nodelay(true) {
                            tracing::debug!(%peer, "TCP_NODELAY: {e}");
                        }
                    }
                    return Ok(Incoming {
                        tcp,
                        peer,
                        handshake: self.handshake.clone(),
                        timeout: self.timeout,
                    });
                }
                Err(e) => match transient(&e) {
                    Some(pause) if pause.is_zero() => tracing::warn!("accept: {e}"),
                    Some(pause) => {
                        self.log_exhausted(&e);
                        tokio::time::sleep(pause).await;
                    }
                    None => return Err(e),
                },
            }
        }
    }
}

impl Incoming {
    /// The client's address.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// Runs the TLS handshake or WebSocket upgrade (nothing for TCP) within the deadline.
    pub async fn handshake(self) -> Result<Connection, TransportError> {
        let peer = self.peer;
        let stream = match &*self.handshake {
            Handshake::Tcp => Transport::Tcp(self.tcp),
            // The TLS and WebSocket handshake futures are boxed: the connection task's future
            // is as large as its largest state for the connection's whole life, and a TCP
            // connection (no handshake) should not pay for them.
            Handshake::Tls(acceptor) => {
                let s = Box::pin(tokio::time::timeout(
                    self.timeout,
                    acceptor.accept(self.tcp),
                ))
                .await
                .map_err(|_| TransportError::Timeout)?
                .map_err(TransportError::Tls)?;
                Transport::Tls(Box::new(s))
            }
            Handshake::Ws(cfg) => {
                let s = Box::pin(tokio::time::timeout(
                    self.timeout,
                    ws::accept(self.tcp, cfg),
                ))
                .await
                .map_err(|_| TransportError::Timeout)??;
                Transport::Ws(Box::new(s))
            }
        };
        Ok(Connection { stream, peer })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Nagle stays off on every accepted connection (small MQTT packets are latency-bound),
    /// whether set per socket or inherited from the listener.
    #[tokio::test]
    async fn accepted_connections_have_nodelay() -> Result<(), TransportError> {
        let cfg = ListenerConfig::new(SocketAddr::from(([127, 0, 0, 1], 0)), ListenerKind::Tcp);
        let listener = Listener::bind(&cfg).await?;
        let _client = TcpStream::connect(listener.local_addr()?).await?;
        let conn = listener.accept().await?.handshake().await?;
        let Transport::Tcp(s) = conn.stream else {
            panic!("a TCP listener yields TCP streams");
        };
        assert!(s.nodelay()?);
        Ok(())
    }
}
