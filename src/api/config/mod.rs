//! `beamq start` configuration: defaults, then the `--config` file, then the environment, then
//! flags (DESIGN.md section 6; each later source wins). Key names are EMQX 5's where EMQX has
//! the setting (`listeners.tcp.default.bind`, `node.cookie`, `mqtt.max_packet_size`, ...),
//! EMQX 4's where EMQX 5 moved it behind its authn/authz chains (`allow_anonymous`,
//! `acl_nomatch`, `acl_file`), mosquitto's `password_file`. Every key: docs/config.md.
//!
//! The environment follows EMQX 5: `EMQX_` + the key upper-cased with `.` written `__`
//! (`EMQX_LISTENERS__TCP__DEFAULT__BIND`), plus EMQX 4's `EMQX_NODE_NAME` / `EMQX_NODE_COOKIE`.
//! An unknown key or a bad value is an error naming its origin (`file:line`, the variable or
//! the flag); `beamq start` exits 2 on it.

pub mod file;
mod keys;

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::mqtt::auth::AuthConfig;
use crate::mqtt::session::SessionConfig;
use crate::mqtt::transport::{
    ListenerConfig, ListenerKind, TlsConfig, WsConfig, DEFAULT_TCP_PORT, DEFAULT_TLS_PORT,
    DEFAULT_WS_PORT,
};
use crate::router::ShareStrategy;

pub use keys::KEYS;

/// Where a setting came from, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// Built-in default.
    Default,
    /// A line of the config file.
    File {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
    },
    /// An environment variable.
    Env(String),
    /// A command-line flag.
    Flag(&'static str),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => f.write_str("default"),
            Origin::File { path, line } => write!(f, "{}:{line}", path.display()),
            Origin::Env(v) => write!(f, "environment variable {v}"),
            Origin::Flag(n) => write!(f, "flag {n}"),
        }
    }
}

/// Why the configuration is unusable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: file::ReadError,
    },
    /// A line is not `key = value`.
    #[error("{}:{}: {}", path.display(), source.line, source.message)]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The line and why.
        source: file::SyntaxError,
    },
    /// A key we do not know.
    #[error("{origin}: unknown key {key:?} (see docs/config.md)")]
    UnknownKey {
        /// Where.
        origin: Origin,
        /// The key.
        key: String,
    },
    /// A value that does not fit its key.
    #[error("{origin}: {key}: {message}")]
    BadValue {
        /// Where.
        origin: Origin,
        /// The key.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// Settings that contradict each other.
    #[error("{0}")]
    Inconsistent(String),
}

/// One MQTT listener's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerSetting {
    /// `enable`: `None` means "the default for this listener" (on for TCP and WebSocket, on for
    /// TLS when a certificate and key are configured).
    pub enable: Option<bool>,
    /// `bind`.
    pub bind: SocketAddr,
    /// `acceptors`: threads taking this listener's connections, each with its own runtime and
    /// descriptor table (`mqtt::transport::acceptors`); 1 serves on the node's runtime.
    pub acceptors: usize,
    /// Whether `--port-offset` shifts the port: true for defaults and the file (one file
    /// serves several nodes on a machine), false for an exact `--*-port` flag.
    pub shift: bool,
    /// Where `bind` or `enable` was last set (for errors).
    pub origin: Origin,
}

impl ListenerSetting {
    fn new(port: u16) -> ListenerSetting {
        ListenerSetting {
            enable: None,
            bind: SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)),
            acceptors: 1,
            shift: true,
            origin: Origin::Default,
        }
    }
}

/// A `--mqtt-port` / `--tls-port` / `--ws-port` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortFlag {
    /// `off`: do not run this listener.
    Off,
    /// This exact port (0: a free one), not shifted by `--port-offset`.
    Port(u16),
}

impl std::str::FromStr for PortFlag {
    type Err = String;
    fn from_str(s: &str) -> Result<PortFlag, String> {
        match s {
            "off" | "false" | "disabled" => Ok(PortFlag::Off),
            _ => s
                .parse()
                .map(PortFlag::Port)
                .map_err(|_| format!("{s:?} is neither a port (0-65535) nor `off`")),
        }
    }
}

/// What the command line says, each `None` when the flag is absent.
#[derive(Debug, Clone, Default)]
pub struct Flags {
    /// `--cookie`.
    pub cookie: Option<String>,
    /// `--net-ticktime`.
    pub net_ticktime: Option<u64>,
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// `--port-offset`.
    pub port_offset: Option<u16>,
    /// `--dist-listen-min`.
    pub dist_listen_min: Option<u16>,
    /// `--dist-listen-max`.
    pub dist_listen_max: Option<u16>,
    /// `--mqtt-port`.
    pub mqtt_port: Option<PortFlag>,
    /// `--tls-port`.
    pub tls_port: Option<PortFlag>,
    /// `--ws-port`.
    pub ws_port: Option<PortFlag>,
}

/// Everything `beamq start` is configured with, all sources merged.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `node.name` (file or environment; `--name`/`--sname` are applied by the caller).
    pub node_name: Option<String>,
    /// `node.cookie` (flag, environment or file; `None`: `~/.erlang.cookie`).
    pub cookie: Option<String>,
    /// `node.data_dir`.
    pub data_dir: PathBuf,
    /// `node.dist_net_ticktime`, seconds.
    pub net_ticktime: u64,
    /// `node.dist_listen_min`.
    pub dist_listen_min: u16,
    /// `node.dist_listen_max`.
    pub dist_listen_max: u16,
    /// `node.port_offset`.
    pub port_offset: u16,
    /// `listeners.tcp.default`.
    pub tcp: ListenerSetting,
    /// `listeners.ssl.default`.
    pub ssl: ListenerSetting,
    /// `listeners.ssl.default.ssl_options`.
    pub tls: TlsSettings,
    /// `listeners.ws.default`.
    pub ws: ListenerSetting,
    /// `listeners.ws.default.websocket`.
    pub websocket: WsConfig,
    /// Handshake deadline of every listener (`mqtt.idle_timeout` also bounds the wait for
    /// CONNECT).
    pub handshake_timeout: Duration,
    /// Password file, ACL file, anonymous access, ACL default.
    pub auth: AuthConfig,
    /// Session limits.
    pub session: SessionConfig,
    /// `mqtt.shared_subscription_strategy`.
    pub share_strategy: ShareStrategy,
    /// `sys_topics.sys_msg_interval` (`None`: disabled).
    pub sys_interval: Option<Duration>,
}

/// `listeners.ssl.default.ssl_options.*`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsSettings {
    /// `certfile`.
    pub certfile: Option<PathBuf>,
    /// `keyfile`.
    pub keyfile: Option<PathBuf>,
    /// `cacertfile`: CA that client certificates must chain to when `verify = verify_peer`.
    pub cacertfile: Option<PathBuf>,
    /// `verify = verify_peer`.
    pub verify_peer: bool,
    /// `fail_if_no_peer_cert`.
    pub fail_if_no_peer_cert: bool,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            node_name: None,
            cookie: None,
            data_dir: PathBuf::from("data"),
            net_ticktime: 60,
            dist_listen_min: crate::node::config::DEFAULT_DIST_LISTEN_PORT,
            dist_listen_max: crate::node::config::DEFAULT_DIST_LISTEN_PORT,
            port_offset: 0,
            tcp: ListenerSetting::new(DEFAULT_TCP_PORT),
            ssl: ListenerSetting::new(DEFAULT_TLS_PORT),
            tls: TlsSettings::default(),
            ws: ListenerSetting::new(DEFAULT_WS_PORT),
            websocket: WsConfig::default(),
            handshake_timeout: Duration::from_secs(15),
            auth: AuthConfig::default(),
            session: SessionConfig::default(),
            share_strategy: ShareStrategy::default(),
            sys_interval: Some(Duration::from_secs(60)),
        }
    }
}

/// One listener to start, fully resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerPlan {
    /// `tcp`, `tls` or `ws` (the word in the "listening on port" line).
    pub name: &'static str,
    /// What to bind.
    pub config: ListenerConfig,
}

/// Merges defaults, the file (when given), the environment (`env` looks a variable up) and
/// the flags.
pub fn resolve(
    config_file: Option<&Path>,
    env: &dyn Fn(&str) -> Option<String>,
    flags: &Flags,
) -> Result<Settings, ConfigError> {
    let mut s = Settings::default();
    if let Some(path) = config_file {
        let text = file::read(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let entries = file::parse(&text).map_err(|source| ConfigError::Syntax {
            path: path.to_owned(),
            source,
        })?;
        for e in entries {
            let origin = Origin::File {
                path: path.to_owned(),
                line: e.line,
            };
            keys::apply(&mut s, &e.key, &e.value, origin)?;
        }
    }
    for key in KEYS {
        let var = env_var_name(key.name);
        if let Some(v) = env(&var).filter(|v| !v.is_empty()) {
            keys::apply(&mut s, key.name, &v, Origin::Env(var))?;
        }
    }
    for (var, key) in [
        ("EMQX_NODE_NAME", "node.name"),
        ("EMQX_NODE_COOKIE", "node.cookie"),
    ] {
        if let Some(v) = env(var).filter(|v| !v.is_empty()) {
            keys::apply(&mut s, key, &v, Origin::Env(var.to_owned()))?;
        }
    }
    apply_flags(&mut s, flags);
    Ok(s)
}

/// EMQX 5's environment name for a key: `a.b_c` → `EMQX_A__B_C`.
pub fn env_var_name(key: &str) -> String {
    format!("EMQX_{}", key.to_ascii_uppercase().replace('.', "__"))
}

fn apply_flags(s: &mut Settings, f: &Flags) {
    if let Some(c) = &f.cookie {
        s.cookie = Some(c.clone());
    }
    if let Some(t) = f.net_ticktime {
        s.net_ticktime = t;
    }
    if let Some(d) = &f.data_dir {
        s.data_dir = d.clone();
    }
    if let Some(k) = f.port_offset {
        s.port_offset = k;
    }
    if let Some(p) = f.dist_listen_min {
        s.dist_listen_min = p;
    }
    if let Some(p) = f.dist_listen_max {
        s.dist_listen_max = p;
    }
    for (l, flag, name) in [
        (&mut s.tcp, f.mqtt_port, "--mqtt-port"),
        (&mut s.ssl, f.tls_port, "--tls-port"),
        (&mut s.ws, f.ws_port, "--ws-port"),
    ] {
        match flag {
            None => {}
            Some(PortFlag::Off) => {
                l.enable = Some(false);
                l.origin = Origin::Flag(name);
            }
            Some(PortFlag::Port(p)) => {
                l.enable = Some(true);
                l.bind.set_port(p);
                l.shift = false;
                l.origin = Origin::Flag(name);
            }
        }
    }
}

impl Settings {
    /// The listeners to start, ports shifted, TLS files checked for presence in the settings
    /// (their contents are checked when the listener binds).
    pub fn listeners(&self) -> Result<Vec<ListenerPlan>, ConfigError> {
        let mut out = Vec::new();
        let shifted = |l: &ListenerSetting| -> Result<SocketAddr, ConfigError> {
            let mut bind = l.bind;
            if l.shift && bind.port() != 0 {
                let p = ListenerConfig::port(bind.port(), self.port_offset).ok_or_else(|| {
                    ConfigError::Inconsistent(format!(
                        "port offset {} pushes port {} of {} past 65535",
                        self.port_offset,
                        bind.port(),
                        l.origin
                    ))
                })?;
                bind.set_port(p);
            }
            Ok(bind)
        };
        let plan = |name, bind, kind, l: &ListenerSetting| {
            let mut config = ListenerConfig::new(bind, kind);
            config.handshake_timeout = self.handshake_timeout;
            config.acceptors = l.acceptors;
            ListenerPlan { name, config }
        };
        if self.tcp.enable.unwrap_or(true) {
            out.push(plan(
                "tcp",
                shifted(&self.tcp)?,
                ListenerKind::Tcp,
                &self.tcp,
            ));
        }
        let have_cert = self.tls.certfile.is_some() && self.tls.keyfile.is_some();
        if self.ssl.enable.unwrap_or(have_cert) {
            let (Some(certfile), Some(keyfile)) = (&self.tls.certfile, &self.tls.keyfile) else {
                return Err(ConfigError::Inconsistent(format!(
                    "the TLS listener ({}) needs listeners.ssl.default.ssl_options.certfile and \
                     keyfile",
                    self.ssl.origin
                )));
            };
            if self.tls.verify_peer && self.tls.cacertfile.is_none() {
                return Err(ConfigError::Inconsistent(
                    "listeners.ssl.default.ssl_options.verify = verify_peer needs cacertfile"
                        .to_owned(),
                ));
            }
            let tls = TlsConfig {
                certfile: certfile.clone(),
                keyfile: keyfile.clone(),
                cacertfile: self.tls.cacertfile.clone(),
                verify_peer: self.tls.verify_peer,
                fail_if_no_peer_cert: self.tls.fail_if_no_peer_cert,
            };
            out.push(plan(
                "tls",
                shifted(&self.ssl)?,
                ListenerKind::Tls(tls),
                &self.ssl,
            ));
        }
        if self.ws.enable.unwrap_or(true) {
            out.push(plan(
                "ws",
                shifted(&self.ws)?,
                ListenerKind::Ws(self.websocket.clone()),
                &self.ws,
            ));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
