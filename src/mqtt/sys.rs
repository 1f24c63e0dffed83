//! `$SYS/brokers/<node>/...` topics, named as EMQX 4 names them (`src/emqx_sys.erl`):
//! `version` and `sysdescr` (retained), `uptime` and `datetime` (every second in EMQX),
//! `stats/<stat>` and `metrics/<metric>` with EMQX's dotted names turned into levels
//! (`connections.count` → `stats/connections/count`, `messages.received` →
//! `metrics/messages/received`), `$SYS/brokers` (the node list, retained), and the
//! `clients/<clientid>/connected|disconnected` events with a JSON payload.
//!
//! This module only builds (topic, payload) lists from a [`MetricsSnapshot`]; the broker fills
//! the snapshot, publishes the list on its timer, and marks the messages as `sys`.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use super::metrics::MetricsSnapshot;

/// What EMQX 4 publishes as `sysdescr`; ours names the product.
pub const SYSDESCR: &str = "beamq MQTT broker";

/// One `$SYS` message to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SysMessage {
    /// Full topic, `$SYS/...`.
    pub topic: String,
    /// UTF-8 payload.
    pub payload: Bytes,
    /// Whether it is published retained (EMQX retains `version`, `sysdescr`, `$SYS/brokers`).
    pub retain: bool,
}

/// Builds `$SYS` messages for one node.
#[derive(Debug, Clone)]
pub struct SysTopics {
    node: String,
    prefix: String,
    version: String,
}

impl SysTopics {
    /// For node `node` (`beamq@127.0.0.1`) running `version`.
    pub fn new(node: &str, version: &str) -> Self {
        SysTopics {
            node: node.to_owned(),
            prefix: format!("$SYS/brokers/{node}/"),
            version: version.to_owned(),
        }
    }

    /// `$SYS/brokers/<node>/<suffix>`.
    pub fn topic(&self, suffix: &str) -> String {
        let mut t = String::with_capacity(self.prefix.len() + suffix.len());
        t.push_str(&self.prefix);
        t.push_str(suffix);
        t
    }

    fn msg(&self, suffix: &str, payload: String, retain: bool) -> SysMessage {
        SysMessage {
            topic: self.topic(suffix),
            payload: Bytes::from(payload),
            retain,
        }
    }

    /// The heartbeat messages (EMQX: every second): `uptime` and `datetime`.
    pub fn heartbeat(&self, uptime: Duration, now: SystemTime) -> Vec<SysMessage> {
        vec![
            self.msg("uptime", format_uptime(uptime), false),
            self.msg("datetime", format_datetime(now), false),
        ]
    }

    /// The periodic messages (EMQX: every `broker.sys_interval`, 1 minute by default):
    /// `version`, `sysdescr`, `$SYS/brokers` with the running nodes, `stats/...`, `metrics/...`.
    pub fn tick(&self, snap: &MetricsSnapshot, nodes: &[&str]) -> Vec<SysMessage> {
        let mut out = vec![
            self.msg("version", self.version.clone(), true),
            self.msg("sysdescr", SYSDESCR.to_owned(), true),
            SysMessage {
                topic: "$SYS/brokers".to_owned(),
                payload: Bytes::from(nodes.join(",")),
                retain: true,
            },
        ];
        for (name, value) in stats(snap).into_iter().chain(metrics(snap)) {
            out.push(self.msg(name, value.to_string(), false));
        }
        out
    }

    /// `clients/<clientid>/connected` with EMQX 4's JSON fields.
    pub fn client_connected(&self, ev: &ClientEvent<'_>) -> SysMessage {
        let mut json = String::from("{");
        push_json_field(&mut json, "clientid", ev.client_id);
        json.push(',');
        push_json_field(&mut json, "username", ev.username.unwrap_or("undefined"));
        let _ = write!(
            json,
            ",\"ipaddress\":\"{}\",\"proto_ver\":{},\"keepalive\":{},\"clean_start\":{},\"connected_at\":{},\"ts\":{}}}",
            ev.peer.ip(),
            ev.proto_ver,
            ev.keepalive,
            ev.clean_start,
            millis(ev.at),
            millis(ev.at)
        );
        self.msg(&client_suffix(ev.client_id, "connected"), json, false)
    }

    /// `clients/<clientid>/disconnected` with the reason as EMQX 4 gives it (`normal`, ...).
    pub fn client_disconnected(&self, ev: &ClientEvent<'_>, reason: &str) -> SysMessage {
        let mut json = String::from("{");
        push_json_field(&mut json, "clientid", ev.client_id);
        json.push(',');
        push_json_field(&mut json, "username", ev.username.unwrap_or("undefined"));
        json.push(',');
        push_json_field(&mut json, "reason", reason);
        let _ = write!(json, ",\"ts\":{}}}", millis(ev.at));
        self.msg(&client_suffix(ev.client_id, "disconnected"), json, false)
    }

    /// The node name these topics are for.
    pub fn node(&self) -> &str {
        &self.node
    }
}

/// What a client event message reports.
#[derive(Debug, Clone, Copy)]
pub struct ClientEvent<'a> {
    /// Client identifier.
    pub client_id: &'a str,
    /// User name, if any.
    pub username: Option<&'a str>,
    /// Peer address.
    pub peer: SocketAddr,
    /// Protocol level (3, 4, 5).
    pub proto_ver: u8,
    /// Keep alive in seconds.
    pub keepalive: u16,
    /// Clean session / clean start.
    pub clean_start: bool,
    /// When it happened.
    pub at: SystemTime,
}

fn client_suffix(client_id: &str, what: &str) -> String {
    format!("clients/{client_id}/{what}")
}

fn millis(t: SystemTime) -> u128 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis())
}

fn push_json_field(out: &mut String, key: &str, value: &str) {
    let _ = write!(out, "\"{key}\":\"");
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// EMQX 4 `emqx_stats` names, as `$SYS` levels.
fn stats(s: &MetricsSnapshot) -> [(&'static str, u64); 8] {
    [
        ("stats/connections/count", s.connections_count),
        ("stats/connections/max", s.connections_max),
        ("stats/sessions/count", s.sessions_count),
        ("stats/subscriptions/count", s.subscriptions_count),
        ("stats/subscribers/count", s.subscriptions_count),
        ("stats/topics/count", s.topics_count),
        ("stats/retained/count", s.retained_count),
        ("stats/routes/count", s.routes_count),
    ]
}

/// EMQX 4 `emqx_metrics` names, as `$SYS` levels.
fn metrics(s: &MetricsSnapshot) -> [(&'static str, u64); 8] {
    [
        ("metrics/messages/received", s.messages_received),
        ("metrics/messages/sent", s.messages_sent),
        ("metrics/messages/dropped", s.messages_dropped),
        ("metrics/messages/retained", s.messages_retained),
        ("metrics/bytes/received", s.bytes_received),
        ("metrics/bytes/sent", s.bytes_sent),
        ("metrics/packets/received", s.packets_received),
        ("metrics/packets/sent", s.packets_sent),
    ]
}

/// EMQX's uptime text: `"5 seconds"`, `"2 minutes, 5 seconds"`,
/// `"1 days, 3 hours, 2 minutes, 5 seconds"` (`emqx_sys:uptime/2`).
pub fn format_uptime(d: Duration) -> String {
    let secs = d.as_secs();
    let (days, hours, mins, s) = (secs / 86_400, secs / 3_600 % 24, secs / 60 % 60, secs % 60);
    let mut out = String::new();
    if days > 0 {
        let _ = write!(out, "{days} days, ");
    }
    if secs >= 3_600 {
        let _ = write!(out, "{hours} hours, ");
    }
    if secs >= 60 {
        let _ = write!(out, "{mins} minutes, ");
    }
    let _ = write!(out, "{s} seconds");
    out
}

/// `YYYY-MM-DD HH:MM:SS` in UTC (EMQX prints local time; a broker's clock is UTC in practice
/// and this keeps the module free of time-zone lookups).
pub fn format_datetime(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), Howard Hinnant's `civil_from_days`.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uptime_text_as_emqx() {
        assert_eq!(format_uptime(Duration::from_secs(5)), "5 seconds");
        assert_eq!(
            format_uptime(Duration::from_secs(125)),
            "2 minutes, 5 seconds"
        );
        assert_eq!(
            format_uptime(Duration::from_secs(86_400 + 3 * 3600 + 5)),
            "1 days, 3 hours, 0 minutes, 5 seconds"
        );
    }

    #[test]
    fn datetime_utc() {
        let t = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(format_datetime(t), "2023-11-14 22:13:20");
        assert_eq!(format_datetime(UNIX_EPOCH), "1970-01-01 00:00:00");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(format_datetime(leap), "2000-02-29 00:00:00");
    }

    #[test]
    fn tick_topics_from_snapshot() {
        let sys = SysTopics::new("beamq@127.0.0.1", "0.1.0");
        let snap = MetricsSnapshot {
            messages_received: 42,
            connections_count: 3,
            subscriptions_count: 9,
            ..Default::default()
        };
        let msgs = sys.tick(&snap, &["beamq@127.0.0.1", "beamq1@127.0.0.1"]);
        let find = |t: &str| {
            msgs.iter()
                .find(|m| m.topic == t)
                .map(|m| m.payload.clone())
        };
        assert_eq!(
            find("$SYS/brokers/beamq@127.0.0.1/metrics/messages/received"),
            Some(Bytes::from("42"))
        );
        assert_eq!(
            find("$SYS/brokers/beamq@127.0.0.1/stats/connections/count"),
            Some(Bytes::from("3"))
        );
        assert_eq!(
            find("$SYS/brokers/beamq@127.0.0.1/stats/subscriptions/count"),
            Some(Bytes::from("9"))
        );
        assert_eq!(
            find("$SYS/brokers"),
            Some(Bytes::from("beamq@127.0.0.1,beamq1@127.0.0.1"))
        );
        let version = msgs.iter().find(|m| m.topic.ends_with("/version"));
        assert!(version.is_some_and(|m| m.retain && m.payload == "0.1.0"));
        for m in &msgs {
            assert!(
                crate::router::TopicName::new(&m.topic).is_ok(),
                "{}",
                m.topic
            );
        }
    }

    #[test]
    fn client_events_are_json() {
        let sys = SysTopics::new("n@h", "1");
        let ev = ClientEvent {
            client_id: "c\"1",
            username: None,
            peer: SocketAddr::from(([127, 0, 0, 1], 5000)),
            proto_ver: 5,
            keepalive: 60,
            clean_start: true,
            at: UNIX_EPOCH + Duration::from_millis(1234),
        };
        let m = sys.client_connected(&ev);
        assert_eq!(m.topic, "$SYS/brokers/n@h/clients/c\"1/connected");
        let v: serde_json::Value = match serde_json::from_slice(&m.payload) {
            Ok(v) => v,
            Err(e) => panic!("not JSON: {e}"),
        };
        assert_eq!(v["clientid"], "c\"1");
        assert_eq!(v["username"], "undefined");
        assert_eq!(v["ipaddress"], "127.0.0.1");
        assert_eq!(v["proto_ver"], 5);
        assert_eq!(v["connected_at"], 1234);
        let d = sys.client_disconnected(&ev, "normal");
        assert!(d.topic.ends_with("/disconnected"));
        assert!(std::str::from_utf8(&d.payload).is_ok_and(|s| s.contains("\"reason\":\"normal\"")));
    }
}
