//! `beamq bench` options, named as emqtt-bench names them (`-h -p -c -i -I -t -s -q -V -u -P
//! -k -C -n --ifaddr`), plus `--count` and `--duration` so a run ends by itself.

use std::net::IpAddr;
use std::time::Duration;

use clap::Args;

use crate::mqtt::codec::{ProtocolVersion, QoS};

/// Options every bench mode takes.
#[derive(Debug, Clone, Args)]
pub struct CommonOpts {
    /// Broker host.
    #[arg(short = 'h', long, default_value = "localhost")]
    pub host: String,
    /// Broker port.
    #[arg(short = 'p', long, default_value_t = 1883)]
    pub port: u16,
    /// Number of clients.
    #[arg(short = 'c', long = "clients", default_value_t = 200)]
    pub clients: usize,
    /// Milliseconds between client connection starts (0: as fast as `--concurrency` allows).
    #[arg(short = 'i', long = "interval", default_value_t = 10)]
    pub connect_interval_ms: u64,
    /// Connections in progress at once when `-i 0`.
    #[arg(long, default_value_t = 256)]
    pub concurrency: usize,
    /// First client index (`%i`).
    #[arg(short = 'n', long = "startnumber", default_value_t = 0)]
    pub start_number: usize,
    /// MQTT version: 3 (3.1), 4 (3.1.1) or 5, as emqtt-bench.
    #[arg(short = 'V', long = "version", default_value_t = 4, value_parser = clap::value_parser!(u8).range(3..=5))]
    pub version: u8,
    /// Keep alive, seconds.
    #[arg(short = 'k', long, default_value_t = 300)]
    pub keepalive: u16,
    /// Clean session / clean start.
    #[arg(short = 'C', long, default_value_t = true, action = clap::ArgAction::Set)]
    pub clean: bool,
    /// User name.
    #[arg(short = 'u', long)]
    pub username: Option<String>,
    /// Password.
    #[arg(short = 'P', long)]
    pub password: Option<String>,
    /// Client id prefix (ids are PREFIX_MODE_INDEX).
    #[arg(long, default_value = "bench")]
    pub prefix: String,
    /// Local addresses to connect from, round robin: IPs and CIDR ranges, comma separated
    /// (`127.0.0.1,127.0.0.2` or `127.0.1.0/24`), to open more connections than one source
    /// address has ports for.
    #[arg(long)]
    pub ifaddr: Option<String>,
    /// Stop after this many seconds (0: when the work is done, or on Ctrl-C).
    #[arg(long, default_value_t = 0)]
    pub duration: u64,
    /// Print help.
    #[arg(long, action = clap::ArgAction::Help)]
    pub help: Option<bool>,
}

/// Options for `pub` and `sub`.
#[derive(Debug, Clone, Args)]
pub struct MessageOpts {
    /// Topic; `%i` is the client index, `%c` the client id, `%u` the user name.
    #[arg(short = 't', long)]
    pub topic: String,
    /// QoS.
    #[arg(short = 'q', long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=2))]
    pub qos: u8,
}

/// `beamq bench pub`.
#[derive(Debug, Clone, Args)]
#[command(disable_help_flag = true)]
pub struct PubOpts {
    #[command(flatten)]
    pub common: CommonOpts,
    #[command(flatten)]
    pub msg: MessageOpts,
    /// Payload size in bytes (the first 8 carry the send time for subscriber latency).
    #[arg(short = 's', long, default_value_t = 256)]
    pub size: usize,
    /// Milliseconds between messages of one client (0: as fast as possible).
    #[arg(short = 'I', long = "interval_of_msg", default_value_t = 1000)]
    pub msg_interval_ms: u64,
    /// Messages per client (0: no limit). emqtt-bench's `-L`.
    #[arg(long = "count", short = 'L', default_value_t = 0)]
    pub count: u64,
    /// RETAIN flag.
    #[arg(short = 'r', long)]
    pub retain: bool,
    /// Unacknowledged QoS 1/2 messages per client, capped by the broker's Receive Maximum
    /// (v5). The default is mosquitto's `max_inflight_messages`: a 3.1.1 broker has no way to
    /// say its limit, and mosquitto drops QoS 2 messages past it.
    #[arg(short = 'F', long, default_value_t = 20)]
    pub inflight: usize,
}

/// `beamq bench sub`.
#[derive(Debug, Clone, Args)]
#[command(disable_help_flag = true)]
pub struct SubOpts {
    #[command(flatten)]
    pub common: CommonOpts,
    #[command(flatten)]
    pub msg: MessageOpts,
    /// Stop once this many messages arrived in all (0: no limit).
    #[arg(long = "count", default_value_t = 0)]
    pub count: u64,
}

/// `beamq bench conn`.
#[derive(Debug, Clone, Args)]
#[command(disable_help_flag = true)]
pub struct ConnOpts {
    #[command(flatten)]
    pub common: CommonOpts,
}

impl CommonOpts {
    /// The protocol version `-V` names.
    pub fn protocol(&self) -> ProtocolVersion {
        match self.version {
            3 => ProtocolVersion::V3_1,
            5 => ProtocolVersion::V5,
            _ => ProtocolVersion::V3_1_1,
        }
    }

    /// Pause between connection starts.
    pub fn connect_interval(&self) -> Duration {
        Duration::from_millis(self.connect_interval_ms)
    }
}

impl MessageOpts {
    /// The QoS `-q` names.
    pub fn qos(&self) -> QoS {
        QoS::from_u8(self.qos).unwrap_or_default()
    }
}

/// Client id of client `index` in `mode`, unique per process so runs do not take each other
/// over.
pub fn client_id(prefix: &str, mode: &str, index: usize) -> String {
    format!("{prefix}_{mode}_{}_{index}", std::process::id())
}

/// Replaces `%i`, `%c`, `%u` in a topic.
pub fn expand_topic(topic: &str, index: usize, client_id: &str, username: Option<&str>) -> String {
    topic
        .replace("%i", &index.to_string())
        .replace("%c", client_id)
        .replace("%u", username.unwrap_or(""))
}

/// Most source addresses `--ifaddr` expands to.
pub const MAX_IFADDRS: usize = 1 << 16;

/// Parses `--ifaddr`: IPs and CIDR ranges, comma separated, expanded in order.
pub fn parse_ifaddrs(s: &str) -> Result<Vec<IpAddr>, String> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (addr, prefix) = match part.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (part, None),
        };
        let ip: IpAddr = addr.parse().map_err(|_| format!("bad address {addr:?}"))?;
        let Some(prefix) = prefix else {
            out.push(ip);
            continue;
        };
        let IpAddr::V4(v4) = ip else {
            return Err(format!("{part}: ranges are IPv4 only"));
        };
        let prefix: u32 = prefix
            .parse()
            .ok()
            .filter(|p| (16..=32).contains(p))
            .ok_or(format!("{part}: prefix must be 16..=32"))?;
        let base = u32::from(v4) & (u32::MAX << (32 - prefix));
        let n = 1u32 << (32 - prefix);
        out.extend((0..n).map(|k| IpAddr::from((base + k).to_be_bytes())));
        if out.len() > MAX_IFADDRS {
            return Err(format!("more than {MAX_IFADDRS} addresses"));
        }
    }
    if out.is_empty() {
        return Err("no address".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ifaddr_lists_and_ranges() {
        assert_eq!(
            parse_ifaddrs("127.0.0.1, 127.0.0.2"),
            Ok(vec![
                IpAddr::from([127, 0, 0, 1]),
                IpAddr::from([127, 0, 0, 2])
            ])
        );
        let r = parse_ifaddrs("127.0.1.7/30").unwrap_or_default();
        assert_eq!(r.len(), 4);
        assert_eq!(r[0], IpAddr::from([127, 0, 1, 4]));
        assert_eq!(r[3], IpAddr::from([127, 0, 1, 7]));
        for bad in ["", "x", "10.0.0.0/8", "::1/120", "1.2.3.4/40"] {
            assert!(parse_ifaddrs(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn topic_placeholders() {
        assert_eq!(expand_topic("t/%i/%c/%u", 7, "cid", Some("u")), "t/7/cid/u");
        assert_eq!(expand_topic("t/%i", 0, "c", None), "t/0");
    }
}
