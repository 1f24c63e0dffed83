//! The epmd daemon: tokio drives the sans-IO pieces ([`PacketReader`], [`Request::decode`],
//! [`service::handle`]) over TCP, one task per connection, as `run`/`do_read` in
//! `erts/epmd/src/epmd_srv.c` do in one select loop.
//!
//! A registration lives exactly as long as its connection: EOF, an error or any byte on it
//! unregisters the node. Other connections are closed after the answer, or after
//! `packet_timeout` without a byte. Connections beyond the descriptor budget are accepted and
//! closed at once (C's `conn_open` when `max_conn` is reached), so memory stays bounded.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};

use super::accept;
use super::registry::{ConnId, Registry};
use super::request::Request;
use super::service::{self, After, Outcome, Peer, Settings};
use super::wire::{Framing, PacketReader};

/// `CLOSE_TIMEOUT` in `epmd_int.h`: idle non-registration connections are closed after this.
pub const DEFAULT_PACKET_TIMEOUT: Duration = Duration::from_secs(60);

/// How the daemon behaves (C's `EpmdVars` fields set from flags and environment).
#[derive(Debug, Clone)]
pub struct Config {
    /// Port reported in `NAMES`/`DUMP` headers; 0 means "the first listener's port".
    pub port: u16,
    /// `-relaxed_command_check`.
    pub relaxed: bool,
    /// `-d` count; any makes the name FIFO short (5).
    pub debug: u8,
    /// `-packet_timeout`.
    pub packet_timeout: Duration,
    /// `-delay_accept`: pause before each accept (busy-server simulation).
    pub delay_accept: Duration,
    /// `-delay_write`: pause before each reply (busy-server simulation).
    pub delay_write: Duration,
    /// Most connections open at once; further ones are closed on accept.
    pub max_connections: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            port: 0,
            relaxed: false,
            debug: 0,
            packet_timeout: DEFAULT_PACKET_TIMEOUT,
            delay_accept: Duration::ZERO,
            delay_write: Duration::ZERO,
            max_connections: 1024,
        }
    }
}

pub(super) struct Shared {
    pub(super) registry: RwLock<Registry>,
    pub(super) settings: Settings,
    pub(super) config: Config,
    pub(super) next_conn: AtomicU64,
    /// Closers of registration connections, for `STOP_REQ`.
    pub(super) stoppers: Mutex<HashMap<ConnId, oneshot::Sender<()>>>,
    pub(super) kill: mpsc::Sender<()>,
    pub(super) budget: Arc<Semaphore>,
}

/// A bound, not yet running epmd.
pub struct Server {
    listeners: Vec<StdListener>,
    config: Config,
}

impl Server {
    /// Serve on already bound listeners (see [`super::listen::bind`]).
    pub fn new(listeners: Vec<StdListener>, config: Config) -> Self {
        Self { listeners, config }
    }

    /// Addresses the server listens on.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect()
    }

    /// Serve until a `KILL_REQ` is accepted or `shutdown` resolves.
    pub async fn run_until(
        self,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> std::io::Result<()> {
        let port = match self.config.port {
            0 => self.local_addrs().first().map_or(0, |a| a.port()),
            p => p,
        };
        let (kill_tx, mut kill_rx) = mpsc::channel(1);
        let shared = Arc::new(Shared {
            registry: RwLock::new(Registry::new(self.config.debug > 0)),
            settings: Settings {
                port,
                relaxed: self.config.relaxed,
            },
            budget: Arc::new(Semaphore::new(self.config.max_connections)),
            config: self.config,
            next_conn: AtomicU64::new(1),
            stoppers: Mutex::new(HashMap::new()),
            kill: kill_tx,
        });
        let mut accepts = tokio::task::JoinSet::new();
        let acceptors = std::thread::available_parallelism().map_or(1, |n| n.get());
        for std_listener in self.listeners {
            std_listener.set_nonblocking(true)?;
            // SAFETY: the AsyncFd owns the listener, so its descriptor stays open and the same
            // for the AsyncFd's whole life.
            let listener = Arc::new(unsafe {
                AsyncFd::register_with_interest(std_listener, tokio::io::Interest::READABLE)
            }?);
            for _ in 0..acceptors {
                accepts.spawn(accept::accept_loop(listener.clone(), shared.clone()));
            }
        }
        tokio::select! {
            _ = kill_rx.recv() => tracing::info!("got KILL_REQ - terminates normal"),
            _ = shutdown => {}
        }
        accepts.abort_all();
        Ok(())
    }

    /// Serve until a `KILL_REQ` is accepted.
    pub async fn run(self) -> std::io::Result<()> {
        self.run_until(std::future::pending()).await
    }
}

fn now_secs() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as u32)
}

/// Finish reading one request with C's framing, bounded by the packet timeout.
async fn read_request(
    stream: &mut TcpStream,
    shared: &Shared,
    mut reader: PacketReader,
) -> Option<Request> {
    loop {
        let read =
            tokio::time::timeout(shared.config.packet_timeout, stream.read(reader.read_buf()))
                .await;
        let n = match read {
            Err(_) => {
                tracing::info!("closing because timed out on receive");
                return None;
            }
            Ok(Err(e)) => {
                tracing::warn!("error in read: {e}");
                return None;
            }
            Ok(Ok(0)) => {
                if reader.received() > 0 {
                    tracing::warn!("got partial packet only ({} bytes)", reader.received());
                }
                return None;
            }
            Ok(Ok(n)) => n,
        };
        match reader.advance(n) {
            Ok(Framing::NeedMore) => continue,
            Ok(Framing::Complete) => break,
            Err(e) => {
                tracing::warn!("{e}");
                return None;
            }
        }
    }
    match Request::decode(reader.body()) {
        Ok(req) => Some(req),
        Err(e) => {
            tracing::warn!("{e}");
            None
        }
    }
}

/// How far [`accept::fast_path`] got with a connection before handing it to a task.
pub(super) enum Resume {
    /// Still reading the request.
    Read(PacketReader),
    /// The request is in; answer it here (registrations, KILL, or with `-delay_write`).
    Answer(Request),
    /// The answer did not fit the socket buffer at once: write the rest.
    Flush(Vec<u8>),
}

/// Serve one connection from where the fast path left it.
pub(super) async fn serve(
    mut stream: TcpStream,
    peer_addr: SocketAddr,
    peer: Peer,
    shared: Arc<Shared>,
    _permit: OwnedSemaphorePermit,
    resume: Resume,
) {
    let req = match resume {
        Resume::Read(reader) => match read_request(&mut stream, &shared, reader).await {
            Some(req) => req,
            None => return,
        },
        Resume::Answer(req) => req,
        Resume::Flush(rest) => {
            if let Err(e) = stream.write_all(&rest).await {
                tracing::warn!("failed to send answer to {peer_addr}: {e}");
            }
            return;
        }
    };
    let stopped = if matches!(req, Request::Alive2(_)) {
        let (tx, rx) = oneshot::channel();
        lock(&shared.stoppers).insert(peer.conn, tx);
        Some(rx)
    } else {
        None
    };
    let is_alive2 = stopped.is_some();
    let outcome = answer(&shared, &peer, req);
    side_effects(&shared, &outcome, peer_addr);
    if !shared.config.delay_write.is_zero() {
        tokio::time::sleep(shared.config.delay_write).await;
    }
    let written = stream.write_all(&outcome.reply).await;
    match outcome.after {
        After::Close => {}
        After::Kill => {
            drop(stream);
            let _ = shared.kill.try_send(());
        }
        After::Keep => {
            if let Err(e) = written {
                tracing::warn!("failed to send ALIVE2 answer: {e}");
            } else if let Some(stopped) = stopped {
                hold_registration(&mut stream, stopped).await;
            }
            if let Some(node) = write(&shared.registry).unregister_conn(peer.conn) {
                tracing::info!(
                    "unregistering '{}:{}', port {}",
                    node.req.name,
                    node.creation(),
                    node.req.port
                );
            }
        }
    }
    if is_alive2 {
        lock(&shared.stoppers).remove(&peer.conn);
    }
}

/// Log a refusal, and close the registration a `STOP_REQ` removed.
pub(super) fn side_effects(shared: &Shared, outcome: &Outcome, peer_addr: SocketAddr) {
    if let Some(note) = outcome.note {
        tracing::warn!("{note} (from {peer_addr})");
    }
    if let Some(conn) = outcome.close_conn {
        if let Some(closer) = lock(&shared.stoppers).remove(&conn) {
            let _ = closer.send(());
        }
    }
}

/// Wait until the registration connection ends: EOF, error, stray bytes, or `STOP_REQ`.
async fn hold_registration(stream: &mut TcpStream, stopped: oneshot::Receiver<()>) {
    let mut buf = [0u8; 64];
    tokio::select! {
        read = stream.read(&mut buf) => match read {
            Ok(0) => {}
            Ok(n) => tracing::info!("got more than expected on ALIVE socket ({n} bytes)"),
            Err(e) => tracing::info!("error on ALIVE socket: {e}"),
        },
        _ = stopped => tracing::info!("epmd connection stopped"),
    }
}

pub(super) fn answer(shared: &Shared, peer: &Peer, req: Request) -> Outcome {
    if !service::mutates(&req) {
        let reg = read(&shared.registry);
        if let Some(outcome) = service::query(&reg, &shared.settings, peer, &req) {
            return outcome;
        }
    }
    let mut reg = write(&shared.registry);
    let outcome = service::handle(&mut reg, &shared.settings, peer, req, now_secs());
    if outcome.after == After::Keep && outcome.note.is_none() {
        if let Some(node) = reg.live().next().filter(|n| n.conn == peer.conn) {
            tracing::info!(
                "registering '{}:{}', port {}",
                node.req.name,
                node.creation(),
                node.req.port
            );
        }
    }
    outcome
}

/// Lock helpers: a poisoned lock only means another task panicked mid-update of plain data;
/// keep serving with what is there rather than taking the daemon down.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn read<T>(m: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(m: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    m.write().unwrap_or_else(|p| p.into_inner())
}
