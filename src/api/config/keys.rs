//! The configuration keys and their value syntax: durations as EMQX 5 writes them (`15s`,
//! `1m`, `2h`, `500ms`, `1d`), sizes with `KB`/`MB`/`GB` (powers of 1024, as EMQX's
//! `emqx_schema:bytesize`), binds as `IP:PORT`, `[IPv6]:PORT` or a bare port.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use super::{ConfigError, ListenerSetting, Origin, Settings};
use crate::mqtt::auth::Access;
use crate::mqtt::codec::QoS;
use crate::router::ShareStrategy;

/// One known key.
#[derive(Debug, Clone, Copy)]
pub struct Key {
    /// Dotted name as written in the file.
    pub name: &'static str,
}

macro_rules! keys {
    ($($name:literal),* $(,)?) => { &[$(Key { name: $name }),*] };
}

/// Every key `beamq start` reads (docs/config.md describes each).
pub const KEYS: &[Key] = keys![
    "node.name",
    "node.cookie",
    "node.data_dir",
    "node.dist_net_ticktime",
    "node.dist_listen_min",
    "node.dist_listen_max",
    "node.port_offset",
    "listeners.tcp.default.enable",
    "listeners.tcp.default.bind",
    "listeners.tcp.default.acceptors",
    "listeners.ssl.default.enable",
    "listeners.ssl.default.bind",
    "listeners.ssl.default.acceptors",
    "listeners.ssl.default.ssl_options.certfile",
    "listeners.ssl.default.ssl_options.keyfile",
    "listeners.ssl.default.ssl_options.cacertfile",
    "listeners.ssl.default.ssl_options.verify",
    "listeners.ssl.default.ssl_options.fail_if_no_peer_cert",
    "listeners.ws.default.enable",
    "listeners.ws.default.bind",
    "listeners.ws.default.acceptors",
    "listeners.ws.default.websocket.mqtt_path",
    "listeners.ws.default.websocket.fail_if_no_subprotocol",
    "listeners.ws.default.websocket.max_frame_size",
    "allow_anonymous",
    "password_file",
    "acl_file",
    "acl_nomatch",
    "mqtt.max_packet_size",
    "mqtt.max_clientid_len",
    "mqtt.max_topic_alias",
    "mqtt.max_qos_allowed",
    "mqtt.retain_available",
    "mqtt.server_keepalive",
    "mqtt.max_inflight",
    "mqtt.max_awaiting_rel",
    "mqtt.max_mqueue_len",
    "mqtt.mqueue_store_qos0",
    "mqtt.max_session_expiry_interval",
    "mqtt.idle_timeout",
    "mqtt.response_information",
    "mqtt.shared_subscription_strategy",
    "sys_topics.sys_msg_interval",
];

/// EMQX 4 and EMQX 5 spellings accepted for the same setting.
const ALIASES: &[(&str, &str)] = &[
    ("broker.sys_interval", "sys_topics.sys_msg_interval"),
    ("sys_interval", "sys_topics.sys_msg_interval"),
    (
        "broker.shared_subscription_strategy",
        "mqtt.shared_subscription_strategy",
    ),
    ("authorization.no_match", "acl_nomatch"),
    ("port_offset", "node.port_offset"),
];

fn bool_value(v: &str) -> Result<bool, String> {
    match v {
        "true" | "on" => Ok(true),
        "false" | "off" => Ok(false),
        _ => Err(format!("{v:?} is not true or false")),
    }
}

/// `listeners.*.default.acceptors`: 1 to `MAX_ACCEPTORS`.
fn acceptors(v: &str) -> Result<usize, String> {
    use crate::mqtt::transport::acceptors::MAX_ACCEPTORS;
    match int::<usize>(v)? {
        n @ 1..=MAX_ACCEPTORS => Ok(n),
        _ => Err(format!("{v:?} is not between 1 and {MAX_ACCEPTORS}")),
    }
}

fn int<T: FromStr>(v: &str) -> Result<T, String> {
    v.parse()
        .map_err(|_| format!("{v:?} is not a whole number in range"))
}

/// `15s`, `1m`, `500ms`, `2h`, `1d`.
pub(super) fn duration(v: &str) -> Result<Duration, String> {
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (n, unit) = v.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("{v:?} is not a duration such as 15s, 1m, 2h"))?;
    let ms = match unit {
        "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "" => return Err(format!("{v:?}: a duration needs a unit (ms, s, m, h, d)")),
        _ => return Err(format!("{v:?}: unknown duration unit {unit:?}")),
    };
    n.checked_mul(ms)
        .map(Duration::from_millis)
        .ok_or_else(|| format!("{v:?} is too long"))
}

/// `1024`, `64KB`, `1MB`, `1GB` (powers of 1024).
pub(super) fn size(v: &str) -> Result<u64, String> {
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (n, unit) = v.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("{v:?} is not a size such as 1MB"))?;
    let mult = match unit.to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "KB" | "K" => 1 << 10,
        "MB" | "M" => 1 << 20,
        "GB" | "G" => 1 << 30,
        _ => return Err(format!("{v:?}: unknown size unit {unit:?} (KB, MB, GB)")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("{v:?} is too large"))
}

/// `0.0.0.0:1883`, `[::]:1883` or `1883` (all IPv4 interfaces, as EMQX 5 reads a bare port).
pub(super) fn bind(v: &str) -> Result<SocketAddr, String> {
    if let Ok(p) = v.parse::<u16>() {
        return Ok(SocketAddr::from((Ipv4Addr::UNSPECIFIED, p)));
    }
    v.parse()
        .map_err(|_| format!("{v:?} is not IP:PORT, [IPv6]:PORT or a port"))
}

/// A path value. Relative paths in the file are relative to the file's directory, so
/// `beamq start --config /etc/beamq/beamq.conf` with `acl_file = acl.conf` works from any working
/// directory; from the environment or a flag they are relative to the working directory.
fn path(v: &str, origin: &Origin) -> PathBuf {
    let p = PathBuf::from(v);
    match origin {
        Origin::File { path: file, .. } if p.is_relative() => match file.parent() {
            Some(dir) => dir.join(p),
            None => p,
        },
        _ => p,
    }
}

fn limited<T: TryFrom<u64>>(v: &str, n: u64) -> Result<T, String> {
    T::try_from(n).map_err(|_| format!("{v:?} is too large for this setting"))
}

fn set_bind(l: &mut ListenerSetting, v: &str, origin: &Origin) -> Result<(), String> {
    l.bind = bind(v)?;
    l.shift = true;
    l.origin = origin.clone();
    Ok(())
}

fn set_enable(l: &mut ListenerSetting, v: &str, origin: &Origin) -> Result<(), String> {
    l.enable = Some(bool_value(v)?);
    l.origin = origin.clone();
    Ok(())
}

/// Sets `key` (or its alias) to `value`.
pub(super) fn apply(
    s: &mut Settings,
    key: &str,
    value: &str,
    origin: Origin,
) -> Result<(), ConfigError> {
    let key = ALIASES
        .iter()
        .find(|(alias, _)| *alias == key)
        .map_or(key, |(_, canonical)| canonical);
    let v = value;
    let o = &origin;
    let r: Result<(), String> = match key {
        "node.name" => {
            s.node_name = Some(v.to_owned());
            Ok(())
        }
        "node.cookie" => {
            s.cookie = Some(v.to_owned());
            Ok(())
        }
        "node.data_dir" => {
            s.data_dir = path(v, o);
            Ok(())
        }
        "node.dist_net_ticktime" => duration(v).and_then(|d| match d.as_secs() {
            0 => Err("must be at least 1s".to_owned()),
            n => {
                s.net_ticktime = n;
                Ok(())
            }
        }),
        "node.dist_listen_min" => int(v).map(|p| s.dist_listen_min = p),
        "node.dist_listen_max" => int(v).map(|p| s.dist_listen_max = p),
        "node.port_offset" => int(v).map(|k| s.port_offset = k),
        "listeners.tcp.default.enable" => set_enable(&mut s.tcp, v, o),
        "listeners.tcp.default.bind" => set_bind(&mut s.tcp, v, o),
        "listeners.tcp.default.acceptors" => acceptors(v).map(|n| s.tcp.acceptors = n),
        "listeners.ssl.default.enable" => set_enable(&mut s.ssl, v, o),
        "listeners.ssl.default.bind" => set_bind(&mut s.ssl, v, o),
        "listeners.ssl.default.acceptors" => acceptors(v).map(|n| s.ssl.acceptors = n),
        "listeners.ssl.default.ssl_options.certfile" => {
            s.tls.certfile = Some(path(v, o));
            Ok(())
        }
        "listeners.ssl.default.ssl_options.keyfile" => {
            s.tls.keyfile = Some(path(v, o));
            Ok(())
        }
        "listeners.ssl.default.ssl_options.cacertfile" => {
            s.tls.cacertfile = Some(path(v, o));
            Ok(())
        }
        "listeners.ssl.default.ssl_options.verify" => match v {
            "verify_peer" => {
                s.tls.verify_peer = true;
                Ok(())
            }
            "verify_none" => {
                s.tls.verify_peer = false;
                Ok(())
            }
            _ => Err(format!("{v:?} is not verify_peer or verify_none")),
        },
        "listeners.ssl.default.ssl_options.fail_if_no_peer_cert" => {
            bool_value(v).map(|b| s.tls.fail_if_no_peer_cert = b)
        }
        "listeners.ws.default.enable" => set_enable(&mut s.ws, v, o),
        "listeners.ws.default.bind" => set_bind(&mut s.ws, v, o),
        "listeners.ws.default.acceptors" => acceptors(v).map(|n| s.ws.acceptors = n),
        "listeners.ws.default.websocket.mqtt_path" => {
            if v.starts_with('/') {
                s.websocket.path = v.to_owned();
                Ok(())
            } else {
                Err(format!("{v:?} must start with /"))
            }
        }
        "listeners.ws.default.websocket.fail_if_no_subprotocol" => {
            bool_value(v).map(|b| s.websocket.fail_if_no_subprotocol = b)
        }
        "listeners.ws.default.websocket.max_frame_size" => size(v)
            .and_then(|n| limited(v, n))
            .map(|n| s.websocket.max_message_size = n),
        "allow_anonymous" => bool_value(v).map(|b| s.auth.allow_anonymous = b),
        "password_file" => {
            s.auth.password_file = Some(path(v, o));
            Ok(())
        }
        "acl_file" => {
            s.auth.acl_file = Some(path(v, o));
            Ok(())
        }
        "acl_nomatch" => match v {
            "allow" => {
                s.auth.acl_nomatch = Access::Allow;
                Ok(())
            }
            "deny" => {
                s.auth.acl_nomatch = Access::Deny;
                Ok(())
            }
            _ => Err(format!("{v:?} is not allow or deny")),
        },
        "mqtt.max_packet_size" => size(v).and_then(|n| {
            // MQTT's Remaining Length tops out at 268,435,455 (+ 5 header bytes).
            if !(2..=268_435_460).contains(&n) {
                return Err(format!("{v:?} is outside 2 bytes .. 256MB"));
            }
            limited(v, n).map(|n| s.session.max_packet_size = n)
        }),
        "mqtt.max_clientid_len" => int::<usize>(v).and_then(|n| {
            if n < 23 {
                Err("must be at least 23 (MQTT 3.1.1 §3.1.3.1)".to_owned())
            } else {
                s.session.max_client_id_len = n;
                Ok(())
            }
        }),
        "mqtt.max_topic_alias" => int(v).map(|n| s.session.topic_alias_maximum = n),
        "mqtt.max_qos_allowed" => int::<u8>(v).and_then(|n| {
            QoS::from_u8(n)
                .map(|q| s.session.maximum_qos = q)
                .map_err(|_| format!("{v:?} is not 0, 1 or 2"))
        }),
        "mqtt.retain_available" => bool_value(v).map(|b| s.session.retain_available = b),
        "mqtt.server_keepalive" => match v {
            "disabled" => {
                s.session.server_keep_alive = None;
                Ok(())
            }
            _ => int(v).map(|n| s.session.server_keep_alive = Some(n)),
        },
        "mqtt.max_inflight" => int::<u16>(v).and_then(|n| {
            if n == 0 {
                Err("must be at least 1".to_owned())
            } else {
                s.session.max_inflight = n;
                Ok(())
            }
        }),
        "mqtt.max_awaiting_rel" => int::<u16>(v).and_then(|n| {
            if n == 0 {
                Err("must be at least 1".to_owned())
            } else {
                s.session.receive_maximum = n;
                Ok(())
            }
        }),
        "mqtt.max_mqueue_len" => int(v).map(|n| s.session.max_queue_len = n),
        "mqtt.mqueue_store_qos0" => bool_value(v).map(|b| s.session.queue_qos0 = b),
        "mqtt.max_session_expiry_interval" => match v {
            "infinity" => {
                s.session.max_session_expiry = u32::MAX;
                Ok(())
            }
            _ => duration(v)
                .and_then(|d| limited(v, d.as_secs()).map(|n| s.session.max_session_expiry = n)),
        },
        "mqtt.idle_timeout" => duration(v).and_then(|d| {
            if d.is_zero() {
                return Err("must be longer than 0".to_owned());
            }
            s.session.connect_timeout = d;
            s.handshake_timeout = d;
            Ok(())
        }),
        "mqtt.response_information" => {
            s.session.response_information = Some(v.to_owned());
            Ok(())
        }
        "mqtt.shared_subscription_strategy" => ShareStrategy::from_str(v)
            .map(|st| s.share_strategy = st)
            .map_err(|e| e.to_string()),
        "sys_topics.sys_msg_interval" => match v {
            "disabled" => {
                s.sys_interval = None;
                Ok(())
            }
            _ => duration(v).and_then(|d| {
                if d.is_zero() {
                    Err("must be longer than 0 (or `disabled`)".to_owned())
                } else {
                    s.sys_interval = Some(d);
                    Ok(())
                }
            }),
        },
        _ => {
            return Err(ConfigError::UnknownKey {
                origin,
                key: key.to_owned(),
            })
        }
    };
    r.map_err(|message| ConfigError::BadValue {
        origin: origin.clone(),
        key: key.to_owned(),
        message,
    })
}
