//! The authentication and authorization boundary. The session calls the hook synchronously
//! (a password-file lookup or an ACL match is fast); a hook needing I/O would answer from a
//! cache the broker keeps warm.

use bytes::Bytes;

use crate::mqtt::codec::{MqttString, ProtocolVersion, ReasonCode};

/// Who is connecting (what `authenticate` and `authorize` see).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientInfo {
    /// Client identifier (assigned one included).
    pub client_id: MqttString,
    /// User name from CONNECT.
    pub username: Option<MqttString>,
    /// Peer address as the listener saw it (for IP rules).
    pub peer: Option<std::net::SocketAddr>,
    /// Protocol level.
    pub protocol: ProtocolVersion,
}

/// What `authorize` is asked about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// PUBLISH to a topic name.
    Publish,
    /// SUBSCRIBE to a topic filter.
    Subscribe,
}

/// Authentication and ACL decisions for sessions.
pub trait AuthHook: Send + Sync {
    /// Checks CONNECT credentials; `Err(reason)` refuses the connection with that CONNACK code
    /// (typically `BadUserNameOrPassword` or `NotAuthorized`).
    fn authenticate(&self, client: &ClientInfo, password: Option<&Bytes>)
        -> Result<(), ReasonCode>;

    /// Whether `client` may publish to / subscribe to `topic`. Allows everything by default.
    fn authorize(&self, client: &ClientInfo, access: Access, topic: &str) -> bool {
        let _ = (client, access, topic);
        true
    }
}

/// Anonymous access, everything allowed.
#[derive(Debug, Clone, Copy, Default)]
pub struct AllowAll;

impl AuthHook for AllowAll {
    fn authenticate(&self, _: &ClientInfo, _: Option<&Bytes>) -> Result<(), ReasonCode> {
        Ok(())
    }
}
