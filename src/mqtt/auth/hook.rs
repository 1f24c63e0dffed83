//! The bridge from the session's [`AuthHook`] (what the sans-IO session calls on CONNECT,
//! PUBLISH and SUBSCRIBE) to [`FileAccess`] (password file + ACL file). The session decides
//! the wire answer from the result, as mosquitto and EMQX do: CONNACK 0x86/0x87 (3.1.1 return
//! codes 4/5), v5 PUBACK/PUBREC 0x87 and v3 silent drop on a refused publish, SUBACK 0x87
//! (3.1.1: 0x80) on a refused filter.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use bytes::Bytes;

use super::{AccessControl, Action, FileAccess, Identity};
use crate::mqtt::codec::ReasonCode;
use crate::mqtt::session::{Access as SessionAccess, AuthHook, ClientInfo};

/// A peer the listener did not report (only in tests): matches no `ip:` rule.
const UNKNOWN_PEER: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0);

/// `$share/G/F` and `$queue/F` are checked as `F`: the ACL is about what the client reads, and
/// the group is only how deliveries are spread (EMQX 4 `emqx_access_control` sees the topic
/// after `emqx_topic:parse/1` strips the share prefix).
fn routed_filter(filter: &str) -> &str {
    if let Some(rest) = filter.strip_prefix("$share/") {
        return rest.split_once('/').map_or(filter, |(_, f)| f);
    }
    filter.strip_prefix("$queue/").unwrap_or(filter)
}

impl FileAccess {
    fn identity(client: &ClientInfo, anonymous: bool) -> Identity {
        Identity {
            client_id: Arc::from(client.client_id.as_str()),
            username: client.username.as_ref().map(|u| Arc::from(u.as_str())),
            peer: client.peer.unwrap_or(UNKNOWN_PEER),
            anonymous,
        }
    }
}

impl AuthHook for FileAccess {
    fn authenticate(
        &self,
        client: &ClientInfo,
        password: Option<&Bytes>,
    ) -> Result<(), ReasonCode> {
        AccessControl::authenticate(
            self,
            client.client_id.as_str(),
            client.username.as_ref().map(|u| u.as_str()),
            password.map(|p| &p[..]),
            client.peer.unwrap_or(UNKNOWN_PEER),
        )
        .map(|_| ())
    }

    fn authorize(&self, client: &ClientInfo, access: SessionAccess, topic: &str) -> bool {
        // No ACL file: one branch, no allocation on the publish path.
        if self.acl.is_none() {
            return self.nomatch == super::acl::Access::Allow;
        }
        let (action, topic) = match access {
            SessionAccess::Publish => (Action::Publish, topic),
            SessionAccess::Subscribe => (Action::Subscribe, routed_filter(topic)),
        };
        let anonymous = client.username.is_none() || self.passwords.is_none();
        AccessControl::authorize(self, &Self::identity(client, anonymous), action, topic)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mqtt::auth::{Acl, Credential, PasswordFile};
    use crate::mqtt::codec::{MqttString, ProtocolVersion};

    fn client(id: &str, user: Option<&str>) -> ClientInfo {
        ClientInfo {
            client_id: MqttString::try_from(id).unwrap(),
            username: user.map(|u| MqttString::try_from(u).unwrap()),
            peer: Some("127.0.0.1:5000".parse().unwrap()),
            protocol: ProtocolVersion::V3_1_1,
        }
    }

    fn access() -> FileAccess {
        let mut pw = PasswordFile::new();
        let iters = std::num::NonZeroU32::new(10).unwrap();
        pw.set("alice", Credential::hash(b"secret", iters).unwrap())
            .unwrap();
        let acl = Acl::parse(
            "allow user:alice pubsub home/%u/#\n\
             allow all subscribe public/#\n\
             deny all pubsub #\n",
            crate::mqtt::auth::Access::Deny,
        )
        .unwrap();
        FileAccess::new(Some(pw), Some(acl), false, crate::mqtt::auth::Access::Deny)
    }

    #[test]
    fn connack_codes() {
        let a = access();
        let good = Bytes::from_static(b"secret");
        let bad = Bytes::from_static(b"nope");
        assert_eq!(
            AuthHook::authenticate(&a, &client("c", Some("alice")), Some(&good)),
            Ok(())
        );
        assert_eq!(
            AuthHook::authenticate(&a, &client("c", Some("alice")), Some(&bad)),
            Err(ReasonCode::BadUserNameOrPassword)
        );
        assert_eq!(
            AuthHook::authenticate(&a, &client("c", None), None),
            Err(ReasonCode::NotAuthorized)
        );
    }

    #[test]
    fn acl_through_the_hook() {
        let a = access();
        let alice = client("c1", Some("alice"));
        let pub_ = SessionAccess::Publish;
        let sub = SessionAccess::Subscribe;
        assert!(AuthHook::authorize(&a, &alice, pub_, "home/alice/lamp"));
        assert!(!AuthHook::authorize(&a, &alice, pub_, "home/bob/lamp"));
        assert!(AuthHook::authorize(
            &a,
            &alice,
            sub,
            "$share/g/home/alice/#"
        ));
        assert!(AuthHook::authorize(&a, &alice, sub, "$queue/public/x"));
        assert!(!AuthHook::authorize(&a, &alice, sub, "$share/g/secret"));
        assert!(!AuthHook::authorize(&a, &alice, pub_, "public/x"));
    }

    #[test]
    fn no_acl_file_gives_nomatch() {
        let allow = FileAccess::allow_all();
        assert!(AuthHook::authorize(
            &allow,
            &client("c", None),
            SessionAccess::Publish,
            "a"
        ));
        let deny = FileAccess::new(None, None, true, crate::mqtt::auth::Access::Deny);
        assert!(!AuthHook::authorize(
            &deny,
            &client("c", None),
            SessionAccess::Publish,
            "a"
        ));
    }

    #[test]
    fn share_prefix_stripped() {
        assert_eq!(routed_filter("$share/g/a/b"), "a/b");
        assert_eq!(routed_filter("$queue/a/#"), "a/#");
        assert_eq!(routed_filter("$share/g"), "$share/g");
        assert_eq!(routed_filter("a/b"), "a/b");
    }
}
