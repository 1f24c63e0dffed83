//! Async epmd client, as `lib/kernel/src/erl_epmd.erl` talks to epmd: one request per
//! connection; a registration holds its connection open for the node's lifetime.
//!
//! Used by `beamq epmd -names|-kill|-stop|-dump` and by the distribution layer (register,
//! look up peers). [`ensure_running`] starts `beamq epmd -daemon` when nothing answers, as `erl`
//! starts `epmd -daemon` (`erts/etc/common/erlexec.c`, `start_epmd`).

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub use super::request::Alive2Req;
use super::request::Request;
pub use super::response::NodeEntry;
use super::response::{self, ResponseError};
use super::wire::DEFAULT_PORT;

/// How long one request may take before the client gives up.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest response the client accepts (a `NAMES_RESP` of thousands of nodes fits easily).
pub const MAX_RESPONSE: usize = 16 * 1024 * 1024;

/// Why an epmd exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Connecting, writing or reading failed.
    #[error("epmd at {addr}: {source}")]
    Io {
        /// The epmd address.
        addr: SocketAddr,
        /// The socket error.
        source: std::io::Error,
    },
    /// No answer within [`REQUEST_TIMEOUT`].
    #[error("epmd at {0} did not answer in time")]
    Timeout(SocketAddr),
    /// epmd closed the connection before a complete answer.
    #[error("epmd at {0} closed the connection without a complete answer")]
    Closed(SocketAddr),
    /// The answer did not parse.
    #[error("epmd at {addr}: {source}")]
    Response {
        /// The epmd address.
        addr: SocketAddr,
        /// The parse error.
        source: ResponseError,
    },
    /// The answer exceeded [`MAX_RESPONSE`].
    #[error("epmd at {0} sent more than {MAX_RESPONSE} bytes")]
    TooLarge(SocketAddr),
    /// epmd refused the registration (name in use or invalid); erl reports the name as in use.
    #[error("epmd refused the registration of {name:?} (result {result})")]
    Refused {
        /// The refused name.
        name: String,
        /// The result byte.
        result: u8,
    },
    /// Starting `beamq epmd -daemon` failed or it never answered.
    #[error("could not start epmd on port {port}: {reason}")]
    Start {
        /// The port epmd should listen on.
        port: u16,
        /// What went wrong.
        reason: String,
    },
}

/// Result alias for client calls.
pub type Result<T> = std::result::Result<T, ClientError>;

/// A live registration: the node stays registered while this value (and its TCP connection)
/// lives. Dropping it closes the connection and epmd unregisters the name.
#[derive(Debug)]
pub struct Registration {
    stream: TcpStream,
    creation: u32,
    addr: SocketAddr,
}

impl Registration {
    /// The creation epmd assigned: part of every pid, port and reference of the node.
    pub fn creation(&self) -> u32 {
        self.creation
    }

    /// The epmd this registration is held by.
    pub fn epmd_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Resolves when epmd closes the connection (it was killed, or `-stop` removed the name);
    /// the node is then no longer registered. Reads nothing: epmd never sends more.
    pub async fn closed(&mut self) {
        let mut byte = [0u8; 1];
        // Any outcome (EOF, error, unexpected byte) means the registration is gone.
        let _ = self.stream.read(&mut byte).await;
    }
}

/// The port epmd listens on as `erl` finds it: `ERL_EPMD_PORT`, else 4369.
pub fn epmd_port() -> u16 {
    std::env::var("ERL_EPMD_PORT")
        .ok()
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or(DEFAULT_PORT)
}

/// The local epmd's address as `erl_epmd` connects to it: 127.0.0.1 on [`epmd_port`].
pub fn local_epmd() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, epmd_port()))
}

async fn connect(addr: SocketAddr) -> Result<TcpStream> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|source| ClientError::Io { addr, source })?;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

async fn with_timeout<T>(
    addr: SocketAddr,
    fut: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    tokio::time::timeout(REQUEST_TIMEOUT, fut)
        .await
        .map_err(|_| ClientError::Timeout(addr))?
}

/// Send `req` and read everything until epmd closes the connection.
async fn exchange(addr: SocketAddr, req: &Request) -> Result<Vec<u8>> {
    with_timeout(addr, async {
        let mut stream = connect(addr).await?;
        let io = |source| ClientError::Io { addr, source };
        stream.write_all(&req.encode()).await.map_err(io)?;
        let mut out = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let n = match stream.read(&mut chunk).await {
                Ok(n) => n,
                // epmd closes right after answering; a reset after a full answer is still an answer.
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset && !out.is_empty() => 0,
                Err(e) => return Err(io(e)),
            };
            if n == 0 {
                return Ok(out);
            }
            if out.len() + n > MAX_RESPONSE {
                return Err(ClientError::TooLarge(addr));
            }
            out.extend_from_slice(&chunk[..n]);
        }
    })
    .await
}

/// Register a node (`ALIVE2_REQ`). The returned [`Registration`] must be kept alive.
pub async fn register(epmd_addr: SocketAddr, req: Alive2Req) -> Result<Registration> {
    let addr = epmd_addr;
    with_timeout(addr, async {
        let mut stream = connect(addr).await?;
        let io = |source| ClientError::Io { addr, source };
        let name = req.name.clone();
        stream
            .write_all(&Request::Alive2(req).encode())
            .await
            .map_err(io)?;
        let mut buf = [0u8; 6];
        let mut got = 0;
        let resp = loop {
            if let Some(resp) = response::decode_alive2(&buf[..got])
                .map_err(|source| ClientError::Response { addr, source })?
            {
                break resp;
            }
            let n = stream.read(&mut buf[got..]).await.map_err(io)?;
            if n == 0 {
                return Err(ClientError::Closed(addr));
            }
            got += n;
        };
        if resp.result != 0 {
            return Err(ClientError::Refused {
                name,
                result: resp.result,
            });
        }
        Ok(Registration {
            stream,
            creation: resp.creation,
            addr,
        })
    })
    .await
}

/// Look up a node's distribution port (`PORT_PLEASE2_REQ`); `None` when it is not registered.
pub async fn port_please(epmd_addr: SocketAddr, name: &str) -> Result<Option<NodeEntry>> {
    let bytes = exchange(epmd_addr, &Request::PortPlease2(name.to_owned())).await?;
    if bytes.is_empty() {
        return Err(ClientError::Closed(epmd_addr));
    }
    response::decode_port2(&bytes).map_err(|source| ClientError::Response {
        addr: epmd_addr,
        source,
    })
}

/// List registered names (`NAMES_REQ`): epmd's port and `(name, port)` pairs, newest first.
pub async fn names(epmd_addr: SocketAddr) -> Result<(u16, Vec<(String, u16)>)> {
    let bytes = exchange(epmd_addr, &Request::Names).await?;
    response::decode_names(&bytes).map_err(|source| ClientError::Response {
        addr: epmd_addr,
        source,
    })
}

/// The raw answer to `NAMES_REQ` or `DUMP_REQ` (port header included), for the CLI, which
/// prints it verbatim as `epmd_cli.c` does.
pub async fn raw_listing(epmd_addr: SocketAddr, dump: bool) -> Result<Vec<u8>> {
    exchange(
        epmd_addr,
        if dump {
            &Request::Dump
        } else {
            &Request::Names
        },
    )
    .await
}

/// `KILL_REQ`: the raw answer (`OK`, `NO`, or whatever arrived before the close).
pub async fn kill(epmd_addr: SocketAddr) -> Result<Vec<u8>> {
    exchange(epmd_addr, &Request::Kill).await
}

/// `STOP_REQ` for `name`: the raw answer (`STOPPED`, `NOEXIST...`, or empty when refused).
pub async fn stop(epmd_addr: SocketAddr, name: &str) -> Result<Vec<u8>> {
    exchange(epmd_addr, &Request::Stop(name.as_bytes().to_vec())).await
}

/// Whether an epmd answers `NAMES_REQ` at `epmd_addr`.
pub async fn is_running(epmd_addr: SocketAddr) -> bool {
    names(epmd_addr).await.is_ok()
}

/// Make sure an epmd answers on 127.0.0.1:`port`, starting `<beamq> epmd -daemon -port <port>`
/// when none does (what `WITH_EPMD=1` needs, as erl starts `epmd -daemon`). `beamq` is the path
/// of the beamq binary (usually `std::env::current_exe()`).
pub async fn ensure_running(port: u16, beamq: &Path) -> Result<()> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    if is_running(addr).await {
        return Ok(());
    }
    let fail = |reason: String| ClientError::Start { port, reason };
    let status = tokio::process::Command::new(beamq)
        .args(["epmd", "-daemon", "-port", &port.to_string()])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .await
        .map_err(|e| fail(format!("{}: {e}", beamq.display())))?;
    if !status.success() {
        return Err(fail(format!(
            "{} epmd -daemon exited with {status}",
            beamq.display()
        )));
    }
    // The daemon binds before its parent exits, so it normally answers at once.
    for _ in 0..50 {
        if is_running(addr).await {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(fail("no answer after start".into()))
}
