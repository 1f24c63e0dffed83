use std::collections::HashMap;
use std::io::Write as _;
use std::time::Duration;

use super::*;
use crate::mqtt::auth::Access;
use crate::mqtt::codec::QoS;

fn write(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f
}

fn no_env(_: &str) -> Option<String> {
    None
}

fn with_file(text: &str) -> Result<Settings, ConfigError> {
    let f = write(text);
    resolve(Some(f.path()), &no_env, &Flags::default())
}

fn ports(s: &Settings) -> Vec<(&'static str, u16)> {
    s.listeners()
        .unwrap()
        .into_iter()
        .map(|p| (p.name, p.config.bind.port()))
        .collect()
}

#[test]
fn defaults_are_emqx_ports() {
    let s = resolve(None, &no_env, &Flags::default()).unwrap();
    assert_eq!(ports(&s), [("tcp", 1883), ("ws", 8083)]);
    assert_eq!(s.data_dir, PathBuf::from("data"));
    assert!(s.auth.allow_anonymous);
}

#[test]
fn file_keys_are_applied() {
    let s = with_file(
        "node.name = \"emqx@127.0.0.1\"\n\
         node.cookie = secret\n\
         node.data_dir = /tmp/bq\n\
         listeners.tcp.default.bind = \"127.0.0.1:1999\"\n\
         listeners.ssl.default.bind = 8999\n\
         listeners.ssl.default.ssl_options.certfile = /c.pem\n\
         listeners.ssl.default.ssl_options.keyfile = /k.pem\n\
         listeners.ws.default.websocket.mqtt_path = /ws\n\
         allow_anonymous = false\n\
         acl_nomatch = deny\n\
         password_file = /p\n\
         acl_file = /a\n\
         mqtt.max_packet_size = 64KB\n\
         mqtt.max_qos_allowed = 1\n\
         mqtt.max_session_expiry_interval = 2h\n\
         mqtt.shared_subscription_strategy = round_robin\n\
         broker.sys_interval = 5s\n\
         mqtt.idle_timeout = 3s\n",
    )
    .unwrap();
    assert_eq!(s.node_name.as_deref(), Some("emqx@127.0.0.1"));
    assert_eq!(s.cookie.as_deref(), Some("secret"));
    assert_eq!(s.data_dir, PathBuf::from("/tmp/bq"));
    assert_eq!(ports(&s), [("tcp", 1999), ("tls", 8999), ("ws", 8083)]);
    let plans = s.listeners().unwrap();
    assert_eq!(plans[0].config.bind.ip().to_string(), "127.0.0.1");
    assert_eq!(plans[0].config.handshake_timeout, Duration::from_secs(3));
    assert_eq!(s.websocket.path, "/ws");
    assert!(!s.auth.allow_anonymous);
    assert_eq!(s.auth.acl_nomatch, Access::Deny);
    assert_eq!(s.auth.password_file, Some(PathBuf::from("/p")));
    assert_eq!(s.session.max_packet_size, 65536);
    assert_eq!(s.session.maximum_qos, QoS::AtLeastOnce);
    assert_eq!(s.session.max_session_expiry, 7200);
    assert_eq!(s.share_strategy, ShareStrategy::RoundRobin);
    assert_eq!(s.sys_interval, Some(Duration::from_secs(5)));
    assert_eq!(s.session.connect_timeout, Duration::from_secs(3));
}

#[test]
fn relative_paths_in_the_file_are_relative_to_it() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("beamq.conf");
    std::fs::write(
        &conf,
        "acl_file = acl.conf\npassword_file = /abs/passwd\nnode.data_dir = d\n\
         listeners.ssl.default.ssl_options.certfile = certs/c.pem\n",
    )
    .unwrap();
    let vars: HashMap<&str, &str> = [("EMQX_ACL_FILE", "env.acl")].into_iter().collect();
    let s = resolve(Some(&conf), &no_env, &Flags::default()).unwrap();
    assert_eq!(s.auth.acl_file, Some(dir.path().join("acl.conf")));
    assert_eq!(s.auth.password_file, Some(PathBuf::from("/abs/passwd")));
    assert_eq!(s.data_dir, dir.path().join("d"));
    assert_eq!(s.tls.certfile, Some(dir.path().join("certs/c.pem")));
    let env = |k: &str| vars.get(k).map(|v| v.to_string());
    let s = resolve(Some(&conf), &env, &Flags::default()).unwrap();
    assert_eq!(s.auth.acl_file, Some(PathBuf::from("env.acl")));
}

#[test]
fn errors_name_file_and_line() {
    let cases = [
        ("\nbogus.key = 1\n", ":2: unknown key \"bogus.key\""),
        (
            "mqtt.max_packet_size = 10XB\n",
            ":1: mqtt.max_packet_size: \"10XB\": unknown size unit",
        ),
        ("a = 1\n\n\nallow_anonymous = maybe\n", ":1: unknown key"),
        (
            "allow_anonymous = maybe\n",
            ":1: allow_anonymous: \"maybe\" is not true or false",
        ),
        (
            "listeners.tcp.default.bind = localhost:1883\n",
            ":1: listeners.tcp.default.bind",
        ),
        ("sys_topics.sys_msg_interval = 10\n", "needs a unit"),
        (
            "mqtt.shared_subscription_strategy = fastest\n",
            "unknown shared subscription strategy",
        ),
        ("listeners.tcp.default {\n", ":1: `{ ... }` blocks"),
    ];
    for (text, expect) in cases {
        let f = write(text);
        let e = resolve(Some(f.path()), &no_env, &Flags::default())
            .unwrap_err()
            .to_string();
        let path = f.path().display().to_string();
        assert!(e.starts_with(&path), "{text:?}: {e}");
        assert!(e.contains(expect), "{text:?}: {e}");
    }
}

#[test]
fn missing_file_is_an_error() {
    let e = resolve(
        Some(Path::new("/nonexistent/beamq.conf")),
        &no_env,
        &Flags::default(),
    )
    .unwrap_err();
    assert!(
        e.to_string().starts_with("/nonexistent/beamq.conf: "),
        "{e}"
    );
}

#[test]
fn env_beats_file_and_flags_beat_env() {
    let f = write("node.cookie = fromfile\nnode.name = file@127.0.0.1\nnode.data_dir = f\n");
    let vars: HashMap<&str, &str> = [
        ("EMQX_NODE__COOKIE", "fromenv"),
        ("EMQX_NODE_NAME", "legacy@127.0.0.1"),
        ("EMQX_NODE__DATA_DIR", "e"),
        ("EMQX_LISTENERS__WS__DEFAULT__ENABLE", "false"),
    ]
    .into_iter()
    .collect();
    let env = |k: &str| vars.get(k).map(|v| v.to_string());
    let s = resolve(Some(f.path()), &env, &Flags::default()).unwrap();
    assert_eq!(s.cookie.as_deref(), Some("fromenv"));
    assert_eq!(s.node_name.as_deref(), Some("legacy@127.0.0.1"));
    assert_eq!(s.data_dir, PathBuf::from("e"));
    assert_eq!(ports(&s), [("tcp", 1883)]);
    let flags = Flags {
        cookie: Some("flag".into()),
        data_dir: Some("d".into()),
        ws_port: Some(PortFlag::Port(0)),
        ..Flags::default()
    };
    let s = resolve(Some(f.path()), &env, &flags).unwrap();
    assert_eq!(s.cookie.as_deref(), Some("flag"));
    assert_eq!(s.data_dir, PathBuf::from("d"));
    assert_eq!(ports(&s), [("tcp", 1883), ("ws", 0)]);

    let bad: HashMap<&str, &str> = [("EMQX_MQTT__MAX_INFLIGHT", "lots")].into_iter().collect();
    let env = |k: &str| bad.get(k).map(|v| v.to_string());
    let e = resolve(None, &env, &Flags::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("environment variable EMQX_MQTT__MAX_INFLIGHT: mqtt.max_inflight"),
        "{e}"
    );
}

#[test]
fn port_offset_shifts_defaults_and_file_not_flags() {
    let f = write("node.port_offset = 1000\nlisteners.ws.default.bind = 9083\n");
    let flags = Flags {
        mqtt_port: Some(PortFlag::Port(5555)),
        ..Flags::default()
    };
    let s = resolve(Some(f.path()), &no_env, &flags).unwrap();
    assert_eq!(ports(&s), [("tcp", 5555), ("ws", 10083)]);
    let flags = Flags {
        port_offset: Some(65000),
        ..Flags::default()
    };
    let e = resolve(None, &no_env, &flags)
        .unwrap()
        .listeners()
        .unwrap_err();
    assert!(e.to_string().contains("past 65535"), "{e}");
}

#[test]
fn tls_listener_needs_cert_and_key() {
    let flags = Flags {
        tls_port: Some(PortFlag::Port(0)),
        ..Flags::default()
    };
    let e = resolve(None, &no_env, &flags)
        .unwrap()
        .listeners()
        .unwrap_err();
    assert!(e.to_string().contains("--tls-port"), "{e}");
    assert!(e.to_string().contains("certfile"), "{e}");
    let s = with_file(
        "listeners.ssl.default.ssl_options.certfile = c\n\
         listeners.ssl.default.ssl_options.keyfile = k\n\
         listeners.ssl.default.enable = false\n",
    )
    .unwrap();
    assert_eq!(ports(&s), [("tcp", 1883), ("ws", 8083)]);
    let s = with_file(
        "listeners.ssl.default.ssl_options.certfile = c\n\
         listeners.ssl.default.ssl_options.keyfile = k\n\
         listeners.ssl.default.ssl_options.verify = verify_peer\n",
    )
    .unwrap();
    assert!(s
        .listeners()
        .unwrap_err()
        .to_string()
        .contains("cacertfile"));
}

#[test]
fn port_flags_parse() {
    assert_eq!("off".parse::<PortFlag>(), Ok(PortFlag::Off));
    assert_eq!("0".parse::<PortFlag>(), Ok(PortFlag::Port(0)));
    assert_eq!("1883".parse::<PortFlag>(), Ok(PortFlag::Port(1883)));
    assert!("70000".parse::<PortFlag>().is_err());
    assert!("x".parse::<PortFlag>().is_err());
}

#[test]
fn value_syntax() {
    use keys::{bind, duration, size};
    assert_eq!(duration("500ms"), Ok(Duration::from_millis(500)));
    assert_eq!(duration("2h"), Ok(Duration::from_secs(7200)));
    assert_eq!(duration("1d"), Ok(Duration::from_secs(86400)));
    assert!(duration("1w").is_err());
    assert!(duration("s").is_err());
    assert_eq!(size("1MB"), Ok(1 << 20));
    assert_eq!(size("10kb"), Ok(10 << 10));
    assert_eq!(size("77"), Ok(77));
    assert!(size("99999999999999999999GB").is_err());
    assert_eq!(bind("1883").unwrap().to_string(), "0.0.0.0:1883");
    assert_eq!(bind("[::1]:1883").unwrap().to_string(), "[::1]:1883");
    assert!(bind("host:1").is_err());
}

/// Every key is documented, so docs/config.md cannot fall behind the code.
#[test]
fn every_key_is_documented() {
    let doc = include_str!("../../../docs/config.md");
    for k in KEYS {
        assert!(
            doc.contains(&format!("`{}`", k.name)),
            "{} undocumented",
            k.name
        );
    }
}

#[test]
fn acceptors_per_listener() {
    let s = with_file("listeners.tcp.default.acceptors = 8\nlisteners.ws.default.acceptors = 2\n")
        .unwrap();
    let plans = s.listeners().unwrap();
    let acceptors: Vec<_> = plans.iter().map(|p| (p.name, p.config.acceptors)).collect();
    assert_eq!(acceptors, [("tcp", 8), ("ws", 2)]);
    assert_eq!(
        with_file("").unwrap().listeners().unwrap()[0]
            .config
            .acceptors,
        1
    );
    for bad in ["0", "1025", "many", "-1"] {
        let e = with_file(&format!("listeners.tcp.default.acceptors = {bad}\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("listeners.tcp.default.acceptors"), "{bad}: {e}");
    }
}
