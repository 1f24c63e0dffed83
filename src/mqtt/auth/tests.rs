//! ACL semantics (EMQX 4 `etc/acl.conf` examples) and authentication outcomes.

use std::net::SocketAddr;
use std::num::NonZeroU32;

use super::*;

fn id(client: &str, user: Option<&str>, ip: [u8; 4]) -> Identity {
    Identity {
        client_id: client.into(),
        username: user.map(Arc::from),
        peer: SocketAddr::from((ip, 40000)),
        anonymous: user.is_none(),
    }
}

fn acl(text: &str, nomatch: Access) -> Acl {
    match Acl::parse(text, nomatch) {
        Ok(a) => a,
        Err(e) => panic!("{e}"),
    }
}

/// EMQX 4's shipped acl.conf, in our format.
const EMQX_DEFAULT: &str = "\
# EMQX 4 default rules
allow user:dashboard subscribe $SYS/#
allow ip:127.0.0.1 pubsub $SYS/# #
deny all subscribe $SYS/# eq:#
allow all
";

#[test]
fn emqx_default_rules() {
    let a = acl(EMQX_DEFAULT, Access::Deny);
    let local = id("c", None, [127, 0, 0, 1]);
    let remote = id("c", None, [10, 0, 0, 5]);
    let dash = id("c", Some("dashboard"), [10, 0, 0, 5]);
    use Action::*;
    assert_eq!(
        a.check(&local, Subscribe, "$SYS/brokers/x/uptime"),
        Access::Allow
    );
    assert_eq!(a.check(&local, Subscribe, "#"), Access::Allow);
    assert_eq!(a.check(&remote, Subscribe, "$SYS/#"), Access::Deny);
    assert_eq!(a.check(&remote, Subscribe, "#"), Access::Deny);
    assert_eq!(
        a.check(&remote, Subscribe, "a/#"),
        Access::Allow,
        "eq:# is literal"
    );
    assert_eq!(a.check(&remote, Publish, "#x"), Access::Allow);
    assert_eq!(a.check(&dash, Subscribe, "$SYS/brokers"), Access::Allow);
    assert_eq!(
        a.check(&dash, Publish, "$SYS/brokers"),
        Access::Allow,
        "catch-all"
    );
}

#[test]
fn placeholders_actions_and_default() {
    let a = acl(
        "allow client:sensor-1 publish sensors/%c/#\n\
         allow user:alice,ip:10.0.0.0/8 pubsub home/%u/+\n\
         deny all pubsub home/#\n\
         allow all subscribe pub/#\n",
        Access::Deny,
    );
    let sensor = id("sensor-1", None, [1, 2, 3, 4]);
    let alice_in = id("c1", Some("alice"), [10, 9, 8, 7]);
    let alice_out = id("c1", Some("alice"), [11, 9, 8, 7]);
    let anon = id("c2", None, [10, 0, 0, 1]);
    use Action::*;
    assert_eq!(
        a.check(&sensor, Publish, "sensors/sensor-1/t"),
        Access::Allow
    );
    assert_eq!(a.check(&sensor, Publish, "sensors/sensor-1"), Access::Allow);
    assert_eq!(
        a.check(&sensor, Publish, "sensors/sensor-2/t"),
        Access::Deny
    );
    assert_eq!(
        a.check(&sensor, Subscribe, "sensors/sensor-1/t"),
        Access::Deny
    );
    assert_eq!(
        a.check(&alice_in, Publish, "home/alice/lamp"),
        Access::Allow
    );
    assert_eq!(a.check(&alice_in, Subscribe, "home/alice/+"), Access::Allow);
    assert_eq!(a.check(&alice_in, Subscribe, "home/bob/lamp"), Access::Deny);
    assert_eq!(
        a.check(&alice_out, Publish, "home/alice/lamp"),
        Access::Deny
    );
    assert_eq!(a.check(&anon, Publish, "home/%u/lamp"), Access::Deny);
    assert_eq!(a.check(&anon, Subscribe, "pub/x"), Access::Allow);
    assert_eq!(a.check(&anon, Publish, "pub/x"), Access::Deny, "default");
}

#[test]
fn subscribed_wildcards_are_levels_and_dollar_topics_are_apart() {
    let a = acl(
        "allow all subscribe a/+\nallow all pubsub +/x\n",
        Access::Deny,
    );
    let c = id("c", None, [1, 1, 1, 1]);
    assert_eq!(a.check(&c, Action::Subscribe, "a/+"), Access::Allow);
    assert_eq!(a.check(&c, Action::Subscribe, "a/#"), Access::Allow);
    assert_eq!(a.check(&c, Action::Subscribe, "#"), Access::Deny);
    assert_eq!(a.check(&c, Action::Subscribe, "a/b/c"), Access::Deny);
    assert_eq!(a.check(&c, Action::Publish, "$SYS/x"), Access::Deny);
    assert_eq!(a.check(&c, Action::Publish, "y/x"), Access::Allow);
}

#[test]
fn syntax_errors_name_the_line() {
    for (text, line) in [
        ("allow\n", 1),
        ("# c\nallow all publish\n", 2),
        ("permit all publish t\n", 1),
        ("allow everyone publish t\n", 1),
        ("allow user: publish t\n", 1),
        ("allow ip:10.0.0.0/40 publish t\n", 1),
        ("allow all read t\n", 1),
        ("allow all publish a/#/b\n", 1),
        ("\n\nallow all publish eq:\n", 3),
    ] {
        match Acl::parse(text, Access::Allow) {
            Err(AclError::Syntax { line: l, .. }) => assert_eq!(l, line, "{text:?}"),
            other => panic!("{text:?} gave {other:?}"),
        }
    }
}

fn passwords() -> PasswordFile {
    let mut f = PasswordFile::new();
    let it = NonZeroU32::new(passwd::DEFAULT_ITERATIONS).unwrap_or(NonZeroU32::MIN);
    for (u, p) in [("alice", "wonder"), ("bob", "builder")] {
        let set = Credential::hash(p.as_bytes(), it).map(|c| f.set(u, c));
        assert!(matches!(set, Ok(Ok(()))));
    }
    f
}

#[test]
fn authenticate_outcomes() {
    let peer = SocketAddr::from(([127, 0, 0, 1], 1));
    let strict = FileAccess::new(Some(passwords()), None, false, Access::Allow);
    let ok = strict.authenticate("c", Some("alice"), Some(b"wonder"), peer);
    assert!(ok
        .as_ref()
        .is_ok_and(|i| !i.anonymous && i.username.as_deref() == Some("alice")));
    assert_eq!(
        strict.authenticate("c", Some("alice"), Some(b"wonderX"), peer),
        Err(ReasonCode::BadUserNameOrPassword)
    );
    assert_eq!(
        strict.authenticate("c", Some("alice"), None, peer),
        Err(ReasonCode::BadUserNameOrPassword)
    );
    assert_eq!(
        strict.authenticate("c", Some("carol"), Some(b"wonder"), peer),
        Err(ReasonCode::BadUserNameOrPassword)
    );
    assert_eq!(
        strict.authenticate("c", None, None, peer),
        Err(ReasonCode::NotAuthorized)
    );
    let open = FileAccess::new(Some(passwords()), None, true, Access::Allow);
    assert!(open
        .authenticate("c", None, None, peer)
        .is_ok_and(|i| i.anonymous));
    assert_eq!(
        open.authenticate("c", Some("bob"), Some(b"nope"), peer),
        Err(ReasonCode::BadUserNameOrPassword),
        "a wrong password is refused even when anonymous clients are allowed"
    );
    let none = FileAccess::new(None, None, false, Access::Allow);
    assert_eq!(
        none.authenticate("c", Some("x"), Some(b"y"), peer),
        Err(ReasonCode::NotAuthorized)
    );
    assert!(FileAccess::allow_all()
        .authenticate("c", Some("x"), Some(b"y"), peer)
        .is_ok());
}

#[test]
fn authorize_fast_path_and_rules() {
    let c = id("c", None, [1, 1, 1, 1]);
    assert!(FileAccess::allow_all().authorize(&c, Action::Publish, "any"));
    let closed = FileAccess::new(None, None, true, Access::Deny);
    assert!(!closed.authorize(&c, Action::Subscribe, "any"));
    let ruled = FileAccess::new(
        None,
        Some(acl("deny all publish secret/#\n", Access::Allow)),
        true,
        Access::Allow,
    );
    assert!(!ruled.authorize(&c, Action::Publish, "secret/x"));
    assert!(ruled.authorize(&c, Action::Subscribe, "secret/x"));
}

#[test]
fn load_from_config_files() {
    let Ok(dir) = tempfile::tempdir() else {
        panic!("tempdir")
    };
    let pw = dir.path().join("passwd");
    let aclf = dir.path().join("acl");
    assert!(passwords().save(&pw).is_ok());
    assert!(std::fs::write(&aclf, EMQX_DEFAULT).is_ok());
    let cfg = AuthConfig {
        password_file: Some(pw),
        acl_file: Some(aclf),
        allow_anonymous: false,
        acl_nomatch: Access::Deny,
    };
    let Ok(fa) = FileAccess::load(&cfg) else {
        panic!("load")
    };
    let peer = SocketAddr::from(([10, 0, 0, 1], 1));
    let Ok(bob) = fa.authenticate("c", Some("bob"), Some(b"builder"), peer) else {
        panic!("bob refused")
    };
    assert!(!fa.authorize(&bob, Action::Subscribe, "#"));
    assert!(fa.authorize(&bob, Action::Subscribe, "x/#"));
    let missing = AuthConfig {
        acl_file: Some(dir.path().join("nope")),
        ..AuthConfig::default()
    };
    assert!(matches!(FileAccess::load(&missing), Err(AuthError::Acl(_))));
}
