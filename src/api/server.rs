//! `beamq start`: the layers put together in the order their dependencies need.
//!
//! Node first (listener, built-ins, `global`, the `beamq_route` pg scope), then cluster
//! membership (it connects to members through the node), then the MQTT broker with its auth
//! (password file, ACL file) and its listeners (TCP, TLS, WebSocket as configured; ports not
//! derived from the node name shifted by `port_offset`, DESIGN.md section 4). A listener that
//! cannot bind stops the start: an operator who configured a port wants to know.
use std::net::SocketAddr;
use std::sync::Arc;

use crate::api::config::{ConfigError, Settings};
use crate::cluster::Cluster;
use crate::dist::listener::PortMode;
use crate::mqtt::auth::reload::ReloadableAccess;
use crate::mqtt::broker::{Broker, BrokerConfig};
use crate::mqtt::transport::Listener;
use crate::node::boot::{NodeConfig, RunningNode};

/// What `beamq start` was asked for, after flags, environment and config file are merged.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// The distribution node.
    pub node: NodeConfig,
    /// Everything else: data directory, listeners, auth, broker limits.
    pub settings: Settings,
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
    /// The listener settings do not fit together (port offset too large, TLS without a key).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The password or ACL file.
    #[error(transparent)]
    Auth(#[from] crate::mqtt::auth::AuthError),
    /// The cluster router did not start.
    #[error("cluster router: {0}")]
    Router(#[from] crate::router::cluster::RouterError),
    /// An MQTT listener could not bind.
    #[error("MQTT {name} listener on {bind}: {source}")]
    Listener {
        /// `tcp`, `tls` or `ws`.
        name: &'static str,
        /// The address asked for.
        bind: SocketAddr,
        /// Why.
        source: crate::mqtt::transport::TransportError,
    },
}

impl ServerError {
    /// True for errors in what the operator asked for (`beamq start` exits 2 on those).
    pub fn is_usage(&self) -> bool {
        matches!(self, ServerError::Config(_) | ServerError::Auth(_))
    }
}

/// A listener that is serving.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BoundListener {
    /// `tcp`, `tls` or `ws`.
    pub name: &'static str,
    /// The bound address (the real port when 0 was asked for).
    pub addr: SocketAddr,
}

/// A running server; dropping it stops the node's listener.
pub struct Server {
    /// The distribution node.
    pub node: RunningNode,
    /// Cluster membership.
    pub cluster: std::sync::Arc<Cluster>,
    /// The MQTT broker.
    pub broker: Broker,
    /// The MQTT listeners, in start order (tcp, tls, ws).
    pub listeners: Vec<BoundListener>,
    /// Password file and ACL in force; `reload()` re-reads them (`beamq start` does on SIGHUP).
    pub auth: Arc<ReloadableAccess>,
}

impl Server {
    /// Where the plain TCP MQTT listener is bound, when it runs.
    pub fn mqtt_addr(&self) -> Option<SocketAddr> {
        self.listener("tcp")
    }

    /// Where listener `name` (`tcp`, `tls`, `ws`) is bound, when it runs.
    pub fn listener(&self, name: &str) -> Option<SocketAddr> {
        self.listeners
            .iter()
            .find(|l| l.name == name)
            .map(|l| l.addr)
    }
}

/// Starts everything `beamq start` runs.
pub async fn start(opts: ServerOptions) -> Result<Server, ServerError> {
    if let PortMode::Epmd { epmd_port, .. } = opts.node.mode {
        let exe = std::env::current_exe().unwrap_or_else(|_| "beamq".into());
        crate::epmd::client::ensure_running(epmd_port, &exe)
            .await
            .map_err(|e| ServerError::Epmd(e.to_string()))?;
    }
    let settings = opts.settings;
    // Everything read from files is checked before anything binds.
    let plans = settings.listeners()?;
    let auth = Arc::new(ReloadableAccess::load(settings.auth.clone())?);
    let node = crate::node::boot::start(opts.node).await?;
    let cluster = crate::cluster::start(&node.node, &settings.data_dir)?;
    let broker = Broker::new(BrokerConfig {
        node_name: node.node.name().as_str().to_owned(),
        session: settings.session.clone(),
        share_strategy: settings.share_strategy,
        sys_interval: settings.sys_interval,
        auth: auth.clone(),
        ..Default::default()
    });
    broker.attach_cluster(crate::router::cluster::ClusterRouter::start(&node.node)?);
    // Bind every listener before serving any: a port in use fails the start with nothing
    // left half-running.
    let mut bound = Vec::with_capacity(plans.len());
    for plan in plans {
        let err = |source| ServerError::Listener {
            name: plan.name,
            bind: plan.config.bind,
            source,
        };
        let listener = Listener::bind(&plan.config).await.map_err(err)?;
        let addr = listener.local_addr().map_err(|e| err(e.into()))?;
        bound.push((plan.name, addr, listener, plan.config.acceptors));
    }
    // Every acceptor runtime of every listener exists before the first acceptor takes a
    // descriptor table of its own (transport::acceptors says why).
    let mut serving = Vec::with_capacity(bound.len());
    for (name, addr, listener, acceptors) in bound {
        let runtimes = crate::mqtt::transport::acceptors::runtimes_for(acceptors).map_err(|e| {
            ServerError::Listener {
                name,
                bind: addr,
                source: e.into(),
            }
        })?;
        serving.push((name, addr, listener, acceptors, runtimes));
    }
    let mut listeners = Vec::with_capacity(serving.len());
    for (name, addr, listener, acceptors, runtimes) in serving {
        tracing::info!(%addr, kind = name, acceptors, "MQTT listener");
        broker
            .spawn_serve(listener, runtimes)
            .map_err(|e| ServerError::Listener {
                name,
                bind: addr,
                source: e.into(),
            })?;
        listeners.push(BoundListener { name, addr });
    }
    Ok(Server {
        node,
        cluster,
        broker,
        listeners,
        auth,
    })
}
