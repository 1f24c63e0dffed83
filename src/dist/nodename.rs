//! Node names (`name@host`) and the port rule of EMQX 4's ekka mode.
//!
//! Validation follows `net_kernel:create_name/3` of OTP 25: the name part matches
//! `^[0-9A-Za-z_\-]+$` (`valid_name_head/1`), the host part is printable Latin-1 without
//! spaces (`validate_hostname/1`); short names (`-sname`) may not have a dot in the host. For long
//! names we also require an IP address or a dotted FQDN, as DESIGN.md section 4 asks, because a
//! node reachable by other machines needs one.
//!
//! Ports without epmd follow `ekka_dist:port/1` (emqx/ekka `src/ekka_dist.erl`): base port
//! 4370 plus the integer at the end of the name part (`emqx` -> 4370, `emqx1` and `emqx-1`
//! -> 4371), the offset taken `rem 60000`; names starting with `remsh` get port 0 (they never
//! listen). EMQX's cluster RPC (gen_rpc, stateless port discovery) uses 5370 + the same offset.

use std::fmt;
use std::net::IpAddr;

/// Base of the ekka dist port rule (`?DEFAULT_PORT` in ekka_dist.erl).
pub const EKKA_DIST_BASE_PORT: u16 = 4370;
/// Base of EMQX 4's gen_rpc port with stateless discovery.
pub const EKKA_RPC_BASE_PORT: u16 = 5370;
/// `?MAX_PORT_LIMIT` of ekka_dist.erl: offsets are taken modulo this.
const EKKA_MAX_PORT_LIMIT: u64 = 60000;
/// An atom holds at most 255 characters: the longest node name OTP can represent.
pub const MAX_NODE_NAME_LEN: usize = 255;

/// Long names (`-name`, host is an IP or FQDN) or short names (`-sname`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameKind {
    /// `-name`.
    Long,
    /// `-sname`.
    Short,
}

/// A validated node name.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeName {
    name: String,
    host: String,
}

/// Why a node name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeNameError {
    /// No `@` or more than one.
    #[error("node name {0:?} must be NAME@HOST with exactly one '@'")]
    Shape(String),
    /// Name part empty or with characters outside `[0-9A-Za-z_-]`.
    #[error("node name {0:?}: the part before '@' may only hold letters, digits, '_' and '-'")]
    BadName(String),
    /// Host part empty or with characters erl refuses.
    #[error("node name {0:?}: bad host part")]
    BadHost(String),
    /// A long name whose host is neither an IP address nor a dotted FQDN.
    #[error("node name {0:?}: a long name (--name) needs an IP address or a fully qualified host name with a dot")]
    NotLongHost(String),
    /// A short name with a dot in the host.
    #[error("node name {0:?}: a short name (--sname) cannot have a dot in the host part")]
    NotShortHost(String),
    /// Longer than an atom can be.
    #[error("node name is longer than {MAX_NODE_NAME_LEN} characters")]
    TooLong,
}

impl NodeName {
    /// Parses and validates `name@host` for the given kind.
    pub fn parse(s: &str, kind: NameKind) -> Result<NodeName, NodeNameError> {
        if s.chars().count() > MAX_NODE_NAME_LEN {
            return Err(NodeNameError::TooLong);
        }
        let mut parts = s.split('@');
        let (name, host) = match (parts.next(), parts.next(), parts.next()) {
            (Some(n), Some(h), None) => (n, h),
            _ => return Err(NodeNameError::Shape(s.to_string())),
        };
        Self::from_parts(name, host, kind).map_err(|e| match e {
            NodeNameError::BadName(_) => NodeNameError::BadName(s.to_string()),
            NodeNameError::BadHost(_) => NodeNameError::BadHost(s.to_string()),
            NodeNameError::NotLongHost(_) => NodeNameError::NotLongHost(s.to_string()),
            NodeNameError::NotShortHost(_) => NodeNameError::NotShortHost(s.to_string()),
            other => other,
        })
    }

    /// Builds a name from its parts (for `--sname NAME`, pass the short host name).
    pub fn from_parts(name: &str, host: &str, kind: NameKind) -> Result<NodeName, NodeNameError> {
        let full = format!("{name}@{host}");
        if full.chars().count() > MAX_NODE_NAME_LEN {
            return Err(NodeNameError::TooLong);
        }
        let name_ok = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !name_ok {
            return Err(NodeNameError::BadName(full));
        }
        // validate_hostname/1: "^[!-\xff]*$" (printable Latin-1, no space), non-empty.
        let host_ok = !host.is_empty()
            && host
                .chars()
                .all(|c| ('!'..='\u{ff}').contains(&c) && c != '@');
        if !host_ok {
            return Err(NodeNameError::BadHost(full));
        }
        match kind {
            NameKind::Short if host.contains('.') => return Err(NodeNameError::NotShortHost(full)),
            NameKind::Long if host.parse::<IpAddr>().is_err() && !is_dotted_fqdn(host) => {
                return Err(NodeNameError::NotLongHost(full))
            }
            _ => {}
        }
        Ok(NodeName {
            name: name.to_string(),
            host: host.to_string(),
        })
    }

    /// Splits a peer's name as received on the wire, with only `dist_util:is_node_name/1`'s
    /// check (one `@`, both parts non-empty): peers may use either kind of name.
    pub fn from_wire(s: &str) -> Result<NodeName, NodeNameError> {
        if s.chars().count() > MAX_NODE_NAME_LEN {
            return Err(NodeNameError::TooLong);
        }
        let mut parts = s.split('@');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(n), Some(h), None) if !n.is_empty() && !h.is_empty() => Ok(NodeName {
                name: n.to_string(),
                host: h.to_string(),
            }),
            _ => Err(NodeNameError::Shape(s.to_string())),
        }
    }

    /// The part before `@`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The part after `@`.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The numeric suffix of the name part used by ekka (`emqx-12` -> 12), 0 when none.
    pub fn ekka_offset(&self) -> u16 {
        let digits_start = self
            .name
            .bytes()
            .rposition(|b| !b.is_ascii_digit())
            .map_or(0, |i| i + 1);
        let digits = &self.name[digits_start..];
        if digits.is_empty() {
            return 0;
        }
        // Arbitrarily long digit strings: reduce modulo 60000 digit by digit, no overflow.
        let offset = digits.bytes().fold(0u64, |acc, d| {
            (acc * 10 + u64::from(d - b'0')) % EKKA_MAX_PORT_LIMIT
        });
        offset as u16
    }

    /// The dist port of this node in ekka mode (`ekka_dist:port/1`), or `None` for `remsh*`
    /// names, which ekka gives port 0 (they never accept connections).
    pub fn ekka_dist_port(&self) -> Option<u16> {
        if self.name.starts_with("remsh") {
            return None;
        }
        Some(EKKA_DIST_BASE_PORT.wrapping_add(self.ekka_offset()))
    }

    /// The cluster RPC (gen_rpc) port in ekka mode: 5370 + the same offset.
    pub fn ekka_rpc_port(&self) -> u16 {
        EKKA_RPC_BASE_PORT.wrapping_add(self.ekka_offset())
    }
}

fn is_dotted_fqdn(host: &str) -> bool {
    host.contains('.')
        && host.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

impl fmt::Display for NodeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.name, self.host)
    }
}

impl fmt::Debug for NodeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "'{}@{}'", self.name, self.host)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn long(s: &str) -> Result<NodeName, NodeNameError> {
        NodeName::parse(s, NameKind::Long)
    }

    #[test]
    fn long_names() {
        assert_eq!(
            long("emqx@127.0.0.1").map(|n| n.to_string()),
            Ok("emqx@127.0.0.1".into())
        );
        assert!(long("a@host.example.com").is_ok());
        assert!(long("a@::1").is_ok());
        assert!(matches!(
            long("a@localhost"),
            Err(NodeNameError::NotLongHost(_))
        ));
        assert!(matches!(long("a@b@c.d"), Err(NodeNameError::Shape(_))));
        assert!(matches!(long("nohost"), Err(NodeNameError::Shape(_))));
        assert!(matches!(
            long("a.b@1.2.3.4"),
            Err(NodeNameError::BadName(_))
        ));
        assert!(matches!(long("@1.2.3.4"), Err(NodeNameError::BadName(_))));
        assert!(matches!(long("a@"), Err(NodeNameError::BadHost(_))));
        assert!(matches!(long("a@ho st.x"), Err(NodeNameError::BadHost(_))));
        assert!(matches!(
            long("a@host..x"),
            Err(NodeNameError::NotLongHost(_))
        ));
        let huge = format!("{}@1.2.3.4", "a".repeat(300));
        assert_eq!(long(&huge), Err(NodeNameError::TooLong));
    }

    #[test]
    fn short_names() {
        assert!(NodeName::parse("a@myhost", NameKind::Short).is_ok());
        assert!(matches!(
            NodeName::parse("a@myhost.lan", NameKind::Short),
            Err(NodeNameError::NotShortHost(_))
        ));
        assert!(NodeName::from_parts("node_1", "box", NameKind::Short).is_ok());
    }

    #[test]
    fn wire_names() {
        assert!(NodeName::from_wire("x@y").is_ok());
        assert!(NodeName::from_wire("x@").is_err());
        assert!(NodeName::from_wire("@y").is_err());
        assert!(NodeName::from_wire("x@y@z").is_err());
    }

    #[test]
    fn ekka_port_rule() {
        let port = |s: &str| long(s).ok().and_then(|n| n.ekka_dist_port());
        assert_eq!(port("emqx@127.0.0.1"), Some(4370));
        assert_eq!(port("emqx1@127.0.0.1"), Some(4371));
        assert_eq!(port("emqx-1@127.0.0.1"), Some(4371));
        assert_eq!(port("emqx12@127.0.0.1"), Some(4382));
        assert_eq!(port("n1x@127.0.0.1"), Some(4370));
        assert_eq!(port("123@127.0.0.1"), Some(4370 + 123));
        assert_eq!(port("e60001@127.0.0.1"), Some(4371));
        assert_eq!(port("remsh123@127.0.0.1"), None);
        let n = long("emqx-3@127.0.0.1").ok();
        assert_eq!(n.map(|n| n.ekka_rpc_port()), Some(5373));
    }
}
