//! Where a node listens for distribution connections and how it finds its peers, in the two
//! port modes of EMQX 4 (DESIGN.md section 4):
//!
//! - ekka mode (default): no epmd; the dist port follows the node name
//!   ([`NodeName::ekka_dist_port`]), for us and for every peer. The creation is random, as
//!   `ekka_epmd:register_node/2` makes it up too.
//! - epmd mode (`WITH_EPMD=1`): listen on the first free port of `dist_listen_min..=max`
//!   (`inet_tcp_dist:listen/2` with `inet_dist_listen_min/max`), register it with the epmd at
//!   `ERL_EPMD_PORT` (the creation comes from epmd's answer), and find peers with
//!   `PORT_PLEASE2` to the epmd on the peer's host. Starting an epmd when none answers is the
//!   caller's step ([`crate::epmd::client::ensure_running`]), as erlexec does it before the VM.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use tokio::net::TcpListener;

use crate::dist::nodename::NodeName;
use crate::dist::setup::SetupError;
use crate::epmd::client::{self, Alive2Req, Registration};

/// Distribution version we speak (epmd's highvsn = lowvsn = 6, OTP 23+).
pub const DIST_VERSION: u16 = 6;

/// How ports are found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortMode {
    /// Port from the node name; no epmd.
    Ekka,
    /// Register with and ask epmd.
    Epmd {
        /// epmd's port (`ERL_EPMD_PORT`, 4369), on every host.
        epmd_port: u16,
        /// Lowest dist port to try (`node.dist_listen_min`).
        listen_min: u16,
        /// Highest dist port to try (`node.dist_listen_max`).
        listen_max: u16,
    },
}

/// A bound distribution listener.
#[derive(Debug)]
pub struct DistListener {
    /// The socket to accept on.
    pub listener: TcpListener,
    /// The port it listens on.
    pub port: u16,
    /// The node's creation.
    pub creation: u32,
    /// The epmd registration (epmd mode); the node stays registered while it lives.
    pub registration: Option<Registration>,
}

/// Why a listener could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    /// `remsh*` names have no dist port in ekka mode.
    #[error("node name {0} has no dist port in ekka mode (remsh names never listen)")]
    NoPort(String),
    /// Binding failed.
    #[error("cannot listen for distribution on {addr}: {source}")]
    Bind {
        /// What we tried.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// epmd registration failed.
    #[error(transparent)]
    Epmd(#[from] client::ClientError),
}

/// Binds the distribution listener of `name` on `bind` (0.0.0.0 for all interfaces).
pub async fn listen(
    name: &NodeName,
    mode: &PortMode,
    bind: IpAddr,
    hidden: bool,
) -> Result<DistListener, ListenError> {
    match mode {
        PortMode::Ekka => {
            let port = name
                .ekka_dist_port()
                .ok_or_else(|| ListenError::NoPort(name.to_string()))?;
            let listener =
                TcpListener::bind((bind, port))
                    .await
                    .map_err(|source| ListenError::Bind {
                        addr: format!("{bind}:{port}"),
                        source,
                    })?;
            Ok(DistListener {
                listener,
                port,
                creation: random_creation(),
                registration: None,
            })
        }
        PortMode::Epmd {
            epmd_port,
            listen_min,
            listen_max,
        } => {
            let (listener, port) = bind_in_range(bind, *listen_min, *listen_max).await?;
            let req = Alive2Req {
                port,
                node_type: if hidden { 72 } else { 77 },
                protocol: 0,
                highvsn: DIST_VERSION,
                lowvsn: DIST_VERSION,
                name: name.name().to_string(),
                extra: Vec::new(),
            };
            let epmd = SocketAddr::from((Ipv4Addr::LOCALHOST, *epmd_port));
            let registration = client::register(epmd, req).await?;
            let creation = registration.creation();
            Ok(DistListener {
                listener,
                port,
                creation,
                registration: Some(registration),
            })
        }
    }
}

/// Binds the first free port of `min..=max`; port 0 (or min > max) lets the OS choose.
async fn bind_in_range(
    bind: IpAddr,
    min: u16,
    max: u16,
) -> Result<(TcpListener, u16), ListenError> {
    let mut last = None;
    let ports: Vec<u16> = if min == 0 || min > max {
        vec![0]
    } else {
        (min..=max).collect()
    };
    for port in ports {
        match TcpListener::bind((bind, port)).await {
            Ok(l) => {
                let port = l
                    .local_addr()
                    .map_err(|source| ListenError::Bind {
                        addr: bind.to_string(),
                        source,
                    })?
                    .port();
                return Ok((l, port));
            }
            Err(e) => last = Some(e),
        }
    }
    Err(ListenError::Bind {
        addr: format!("{bind}:{min}..{max}"),
        source: last.unwrap_or_else(|| std::io::ErrorKind::AddrInUse.into()),
    })
}

/// A random creation that is not one of the small values old nodes use (0..=3).
pub fn random_creation() -> u32 {
    use rand::Rng;
    rand::thread_rng().gen_range(4..=u32::MAX)
}

/// Resolves a host part to an address (IPv4 preferred, as `inet_tcp` does).
pub async fn resolve_host(host: &str) -> Result<IpAddr, String> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(ip);
    }
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, 0))
        .await
        .map_err(|e| e.to_string())?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .map(|a| a.ip())
        .ok_or_else(|| "no address".to_string())
}

/// Finds the dist address of `peer`: the ekka port rule, or `PORT_PLEASE2` to the epmd on
/// the peer's host.
pub async fn resolve_peer(peer: &NodeName, mode: &PortMode) -> Result<SocketAddr, SetupError> {
    let fail = |reason: String| SetupError::Resolve {
        peer: peer.to_string(),
        reason,
    };
    let ip = resolve_host(peer.host()).await.map_err(fail)?;
    match mode {
        PortMode::Ekka => {
            let port = peer
                .ekka_dist_port()
                .ok_or_else(|| fail("remsh names have no dist port".into()))?;
            Ok(SocketAddr::new(ip, port))
        }
        PortMode::Epmd { epmd_port, .. } => {
            let entry = client::port_please(SocketAddr::new(ip, *epmd_port), peer.name())
                .await
                .map_err(|e| fail(e.to_string()))?
                .ok_or_else(|| fail(format!("{} is not registered with epmd", peer.name())))?;
            if entry.highvsn < DIST_VERSION {
                return Err(fail(format!(
                    "peer speaks dist version {} only",
                    entry.highvsn
                )));
            }
            Ok(SocketAddr::new(ip, entry.port))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dist::nodename::NameKind;

    #[tokio::test]
    async fn ekka_peer_address_follows_the_name() {
        let n = NodeName::parse("emqx-2@127.0.0.1", NameKind::Long).ok();
        let addr = match n {
            Some(n) => resolve_peer(&n, &PortMode::Ekka).await.ok(),
            None => None,
        };
        assert_eq!(addr, Some(SocketAddr::from(([127, 0, 0, 1], 4372))));
    }

    #[tokio::test]
    async fn bind_range_skips_busy_ports() -> Result<(), Box<dyn std::error::Error>> {
        let busy = TcpListener::bind("127.0.0.1:0").await?;
        let p = busy.local_addr()?.port();
        let lo = IpAddr::from([127, 0, 0, 1]);
        match bind_in_range(lo, p, p).await {
            Err(ListenError::Bind { .. }) => {}
            other => panic!("expected a bind error, got {other:?}"),
        }
        let (_l, got) = bind_in_range(lo, 0, 0).await?;
        assert_ne!(got, 0);
        Ok(())
    }
}
