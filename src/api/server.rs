//! `beamq start`: the layers put together in the order their dependencies need.
//!
//! Node first (listener, built-ins, `global`, the `beamq_route` pg scope), then cluster
//! membership (it connects to members through the node), then the MQTT broker and its
//! listeners. Ports not derived from the node name are shifted by `port_offset` (DESIGN.md
//! section 4).
use std::net::SocketAddr;
use std::path::PathBuf;

use crate::cluster::Cluster;
use crate::dist::listener::PortMode;
use crate::mqtt::broker::{Broker, BrokerConfig};
use crate::mqtt::transport::{ListenerConfig, ListenerKind, DEFAULT_TCP_PORT};
use crate::node::boot::{NodeConfig, RunningNode};

/// What `beamq start` was asked for, after flags, environment and config file are merged.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// The distribution node.
    pub node: NodeConfig,
    /// Where `cluster.json` lives.
    pub data_dir: PathBuf,
    /// The TCP MQTT port; `None` means 1883 + `port_offset`; `Some(0)` picks a free port.
    pub mqtt_port: Option<u16>,
    /// Shift of every listener port not derived from the node name.
    pub port_offset: u16,
}

/// Why the server did not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// epmd mode and no epmd could be started.
    #[error("{0}")]
    Epmd(String),
    /// The node did not start.
    #[error(transparent)]
    Node(#[from] crate::node::boot::StartError),
    /// `cluster.json` is unreadable.
    #[error("cluster membership: {0}")]
    Cluster(#[from] crate::cluster::state::StateError),
    /// `--port-offset` pushes a port past 65535.
    #[error("--port-offset {0} too large")]
    PortOffset(u16),
    /// An MQTT listener could not bind.
    #[error("MQTT listener on port {port}: {source}")]
    Listener {
        /// The port asked for.
        port: u16,
        /// Why.
        source: crate::mqtt::transport::TransportError,
    },
}

/// A running server; dropping it stops the node's listener.
pub struct Server {
    /// The distribution node.
    pub node: RunningNode,
    /// Cluster membership.
    pub cluster: std::sync::Arc<Cluster>,
    /// The MQTT broker.
    pub broker: Broker,
    /// Where the TCP MQTT listener is bound.
    pub mqtt_addr: SocketAddr,
}

/// Starts everything `beamq start` runs.
pub async fn start(opts: ServerOptions) -> Result<Server, ServerError> {
    if let PortMode::Epmd { epmd_port, .. } = opts.node.mode {
        let exe = std::env::current_exe().unwrap_or_else(|_| "beamq".into());
        crate::epmd::client::ensure_running(epmd_port, &exe)
            .await
            .map_err(|e| ServerError::Epmd(e.to_string()))?;
    }
    let node = crate::node::boot::start(opts.node).await?;
    let cluster = crate::cluster::start(&node.node, &opts.data_dir)?;
    let mqtt_port = match opts.mqtt_port {
        Some(p) => p,
        None => ListenerConfig::port(DEFAULT_TCP_PORT, opts.port_offset)
            .ok_or(ServerError::PortOffset(opts.port_offset))?,
    };
    let broker = Broker::new(BrokerConfig {
        node_name: node.node.name().as_str().to_owned(),
        ..Default::default()
    });
    let listener = ListenerConfig::new(
        SocketAddr::from(([0, 0, 0, 0], mqtt_port)),
        ListenerKind::Tcp,
    );
    let mqtt_addr = broker
        .listen(&listener)
        .await
        .map_err(|source| ServerError::Listener {
            port: mqtt_port,
            source,
        })?;
    Ok(Server {
        node,
        cluster,
        broker,
        mqtt_addr,
    })
}
