//! Starting a node: bind the distribution listener in the configured port mode (registering
//! with epmd in epmd mode), start the built-in processes, accept peers, and connect out on
//! demand (`lib/kernel/src/net_kernel.erl` `init/1` + `inet_tcp_dist:listen/accept/setup`).
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use tokio::task::JoinHandle;

use super::functions::register_builtins;
use super::peers::Connector;
use super::runtime::Node;
use super::{group_leader, net_kernel, rex, session};
use crate::dist::cookie::Cookie;
use crate::dist::etf::Atom;
use crate::dist::listener::{listen, resolve_peer, ListenError, PortMode};
use crate::dist::nodename::NodeName;
use crate::dist::setup::{self, LocalNode, SetupError};
use crate::epmd::client::Registration;

/// Everything needed to start a node.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// The node's name.
    pub name: NodeName,
    /// The cookie.
    pub cookie: Cookie,
    /// `net_ticktime`.
    pub net_ticktime: Duration,
    /// ekka or epmd port mode.
    pub mode: PortMode,
    /// Address the dist listener binds.
    pub bind: IpAddr,
    /// A hidden node (no PUBLISHED flag).
    pub hidden: bool,
}

/// Why a node did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The dist listener or epmd registration failed.
    #[error(transparent)]
    Listen(#[from] ListenError),
    /// The node name is not a valid atom.
    #[error("node name {0} is not a valid atom")]
    BadName(String),
    /// A built-in process could not be registered.
    #[error("cannot register built-in process: {0}")]
    Builtin(#[from] super::table::RegisterError),
}

/// A started node; dropping it stops accepting connections.
pub struct RunningNode {
    /// The runtime.
    pub node: Node,
    /// The dist port it listens on.
    pub port: u16,
    /// The connection layer's view of the node.
    pub local: Arc<LocalNode>,
    _registration: Option<Registration>,
    accept: JoinHandle<()>,
}

impl Drop for RunningNode {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Starts a node: listener, built-ins (`net_kernel`, `rex`, `user`, erpc functions), accept
/// loop.
pub async fn start(cfg: NodeConfig) -> Result<RunningNode, StartError> {
    let full = cfg.name.to_string();
    let atom = Atom::try_new(&full).map_err(|_| StartError::BadName(full.clone()))?;
    let listener = listen(&cfg.name, &cfg.mode, cfg.bind, cfg.hidden).await?;
    let mut local = LocalNode::new(cfg.name.clone(), listener.creation, cfg.cookie);
    local.hidden = cfg.hidden;
    local.net_ticktime = cfg.net_ticktime;
    let local = Arc::new(local);
    let node = Node::new(atom, listener.creation);
    register_builtins(node.functions());
    net_kernel::start(&node)?;
    rex::start(&node)?;
    group_leader::start(&node)?;
    super::global::Global::start(&node)?;
    super::pg::Scope::start(&node, Atom::new(super::pg::ROUTE_SCOPE))?;
    node.set_connector(Arc::new(DistConnector {
        local: local.clone(),
        mode: cfg.mode.clone(),
    }));
    let tcp = listener.listener;
    let accept = {
        let node = node.clone();
        let local = local.clone();
        tokio::spawn(async move {
            loop {
                let (stream, addr) = match tcp.accept().await {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!(error = %e, "dist accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let node = node.clone();
                let local = local.clone();
                tokio::spawn(async move {
                    match setup::accept(stream, &local).await {
                        Ok(conn) => {
                            if let Err(e) = session::attach(&node, conn) {
                                tracing::warn!(%addr, error = %e, "connection refused");
                            }
                        }
                        Err(e) => {
                            tracing::info!(%addr, error = %e, "dist accept: handshake failed")
                        }
                    }
                });
            }
        })
    };
    tracing::info!(node = %full, port = listener.port, creation = listener.creation, "node started");
    Ok(RunningNode {
        node,
        port: listener.port,
        local,
        _registration: listener.registration,
        accept,
    })
}

/// Outgoing connections: find the peer's port (ekka rule or epmd), handshake, attach.
struct DistConnector {
    local: Arc<LocalNode>,
    mode: PortMode,
}

impl Connector for DistConnector {
    fn connect(&self, node: Node, peer: Atom) -> BoxFuture<'static, Result<(), String>> {
        let local = self.local.clone();
        let mode = self.mode.clone();
        async move {
            let name = NodeName::from_wire(peer.as_str()).map_err(|e| e.to_string())?;
            let addr = resolve_peer(&name, &mode)
                .await
                .map_err(|e| e.to_string())?;
            match setup::connect(addr, &local, peer.as_str()).await {
                Ok(conn) => session::attach(&node, conn)
                    .map(|_| ())
                    .map_err(|e| e.to_string()),
                Err(e @ (SetupError::Superseded { .. } | SetupError::Busy { .. })) => {
                    // The peer's own attempt (accepted here) wins: wait for it to come up.
                    let deadline = tokio::time::Instant::now() + local.setup_time;
                    while tokio::time::Instant::now() < deadline {
                        if node.is_connected(peer) {
                            return Ok(());
                        }
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    Err(e.to_string())
                }
                Err(e) => Err(e.to_string()),
            }
        }
        .boxed()
    }
}
