//! From command line and environment to a [`NodeConfig`]: node name rules of `erl -name` /
//! `-sname`, EMQX's `EMQX_NODE_NAME`, the two port modes, the cookie (DESIGN.md section 6).
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

use super::boot::NodeConfig;
use crate::dist::cookie::{Cookie, CookieError};
use crate::dist::listener::PortMode;
use crate::dist::nodename::{NameKind, NodeName, NodeNameError};

/// The default node name, as EMQX 4's `emqx@127.0.0.1` but ours.
pub const DEFAULT_NODE_NAME: &str = "beamq@127.0.0.1";
/// `node.dist_listen_min` / `max` default of EMQX 4.
pub const DEFAULT_DIST_LISTEN_PORT: u16 = 6369;

/// The `beamq start` options that shape the node (the rest belongs to later layers).
#[derive(Debug, Clone, Default)]
pub struct StartOptions {
    /// `--name NAME@HOST` (or `NAME`, completed with this host's FQDN).
    pub name: Option<String>,
    /// `--sname NAME` (or `NAME@HOST`).
    pub sname: Option<String>,
    /// `EMQX_NODE_NAME`.
    pub env_name: Option<String>,
    /// `--cookie`.
    pub cookie: Option<String>,
    /// `--net-ticktime` in seconds.
    pub net_ticktime: u64,
    /// `WITH_EPMD=1`.
    pub with_epmd: bool,
    /// `ERL_EPMD_PORT`.
    pub epmd_port: u16,
    /// `--dist-listen-min`.
    pub dist_listen_min: u16,
    /// `--dist-listen-max`.
    pub dist_listen_max: u16,
    /// `--data-dir`.
    pub data_dir: PathBuf,
}

/// Why the options do not make a node.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A bad node name.
    #[error(transparent)]
    Name(#[from] NodeNameError),
    /// `--name NAME` on a host without a fully qualified name.
    #[error("--name {0}: this host has no fully qualified name; give --name {0}@HOST")]
    NoFqdn(String),
    /// The cookie could not be read or created.
    #[error("cookie: {0}")]
    Cookie(#[from] CookieError),
    /// `--net-ticktime 0`.
    #[error("--net-ticktime must be at least 1 second")]
    Ticktime,
}

/// This machine's host name (`inet:gethostname/0`).
fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname writes at most that many bytes.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "localhost".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// Resolves the node name: `--sname`, then `--name`, then `EMQX_NODE_NAME`, then the default.
pub fn node_name(opts: &StartOptions) -> Result<NodeName, ConfigError> {
    if let Some(s) = &opts.sname {
        if s.contains('@') {
            return Ok(NodeName::parse(s, NameKind::Short)?);
        }
        let host = hostname();
        let short = host.split('.').next().unwrap_or("localhost");
        return Ok(NodeName::from_parts(s, short, NameKind::Short)?);
    }
    let long = opts.name.as_ref().or(opts.env_name.as_ref());
    match long {
        Some(n) if n.contains('@') => Ok(NodeName::parse(n, NameKind::Long)?),
        Some(n) => {
            let host = hostname();
            if !host.contains('.') {
                return Err(ConfigError::NoFqdn(n.clone()));
            }
            Ok(NodeName::from_parts(n, &host, NameKind::Long)?)
        }
        None => Ok(NodeName::parse(DEFAULT_NODE_NAME, NameKind::Long)?),
    }
}

/// Builds the node configuration.
pub fn node_config(opts: &StartOptions) -> Result<NodeConfig, ConfigError> {
    let name = node_name(opts)?;
    if opts.net_ticktime == 0 {
        return Err(ConfigError::Ticktime);
    }
    let cookie = Cookie::resolve(opts.cookie.as_deref())?;
    let mode = if opts.with_epmd {
        PortMode::Epmd {
            epmd_port: opts.epmd_port,
            listen_min: opts.dist_listen_min,
            listen_max: opts.dist_listen_max,
        }
    } else {
        PortMode::Ekka
    };
    Ok(NodeConfig {
        name,
        cookie,
        net_ticktime: Duration::from_secs(opts.net_ticktime),
        mode,
        bind: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        hidden: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> StartOptions {
        StartOptions {
            net_ticktime: 60,
            cookie: Some("c".into()),
            ..Default::default()
        }
    }

    #[test]
    fn default_and_explicit_names() {
        assert_eq!(node_name(&opts()).unwrap().to_string(), DEFAULT_NODE_NAME);
        let o = StartOptions {
            name: Some("emqx1@10.0.0.1".into()),
            env_name: Some("other@127.0.0.1".into()),
            ..opts()
        };
        assert_eq!(node_name(&o).unwrap().to_string(), "emqx1@10.0.0.1");
        let o = StartOptions {
            env_name: Some("other@127.0.0.1".into()),
            ..opts()
        };
        assert_eq!(node_name(&o).unwrap().to_string(), "other@127.0.0.1");
        let o = StartOptions {
            sname: Some("s@box".into()),
            ..opts()
        };
        assert_eq!(node_name(&o).unwrap().to_string(), "s@box");
    }

    #[test]
    fn bad_names_are_errors() {
        for bad in ["a b@127.0.0.1", "x@host", "@127.0.0.1", "a@b@c"] {
            let o = StartOptions {
                name: Some(bad.into()),
                ..opts()
            };
            assert!(node_name(&o).is_err(), "{bad}");
        }
        let o = StartOptions {
            sname: Some("s@h.example.com".into()),
            ..opts()
        };
        assert!(node_name(&o).is_err());
    }

    #[test]
    fn port_modes() {
        let c = node_config(&opts()).unwrap();
        assert_eq!(c.mode, PortMode::Ekka);
        let o = StartOptions {
            with_epmd: true,
            epmd_port: 4400,
            dist_listen_min: 7000,
            dist_listen_max: 7010,
            ..opts()
        };
        let c = node_config(&o).unwrap();
        assert_eq!(
            c.mode,
            PortMode::Epmd {
                epmd_port: 4400,
                listen_min: 7000,
                listen_max: 7010
            }
        );
    }
}
