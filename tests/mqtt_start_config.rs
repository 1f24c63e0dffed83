//! `beamq start --config`: configuration errors, the listeners it prints, TLS, and auth + ACL
//! from a password file and an ACL file, driven by rumqttc (MQTT 3.1.1 and 5.0).

mod common;

use std::net::TcpListener;
use std::time::Duration;

use common::beamq::{start_output, write_test_certs, Beamq};
use rumqttc::v5::mqttbytes::v5::{ConnectReturnCode as C5, Packet as P5};
use rumqttc::v5::mqttbytes::QoS as Q5;
use rumqttc::v5::{AsyncClient as Client5, ConnectionError, Event as E5, MqttOptions as O5};
use rumqttc::{AsyncClient, ConnectReturnCode, Event, MqttOptions, Packet, QoS};
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(10);

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn config_errors_name_file_and_line_and_exit_2() {
    let out = start_output(
        &["--mqtt-port", "0", "--ws-port", "off"],
        Some("# beamq\nallow_anonymous = true\nlisteners.tcp.default.bnd = 1883\n"),
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("beamq.conf:3: unknown key \"listeners.tcp.default.bnd\""),
        "{err}"
    );

    let out = start_output(&[], Some("mqtt.max_packet_size = lots\n"));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("beamq.conf:1: mqtt.max_packet_size: \"lots\""),
        "{}",
        stderr(&out)
    );

    let out = start_output(&["--config", "/nonexistent/beamq.conf"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("/nonexistent/beamq.conf"));

    let out = start_output(&["--ws-port", "sometimes"], None);
    assert_eq!(out.status.code(), Some(2));

    // TLS asked for without a certificate.
    let out = start_output(
        &["--mqtt-port", "0", "--ws-port", "off", "--tls-port", "0"],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("certfile"), "{}", stderr(&out));

    // A broken password file stops the start.
    let out = start_output(
        &["--mqtt-port", "0", "--ws-port", "off"],
        Some("password_file = /nonexistent/passwd\n"),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("password file"), "{}", stderr(&out));
}

#[test]
fn a_port_in_use_is_fatal_and_named() {
    let taken = TcpListener::bind("0.0.0.0:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let out = start_output(&["--mqtt-port", "0", "--ws-port", &port], None);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("MQTT ws listener on 0.0.0.0:{port}")),
        "{err}"
    );
}

/// The real environment reaches the configuration (precedence itself: unit tests in
/// src/api/config).
#[test]
fn environment_keys_are_read() {
    let out = std::process::Command::new(common::beamq::BIN)
        .args(["start", "--mqtt-port", "0", "--ws-port", "off"])
        .env("EMQX_MQTT__MAX_INFLIGHT", "lots")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("environment variable EMQX_MQTT__MAX_INFLIGHT: mqtt.max_inflight"),
        "{}",
        stderr(&out)
    );
}

/// A rumqttc v3.1.1 connection's first answer and the running event loop.
async fn v3_connect(
    opts: MqttOptions,
) -> (
    Result<(), ConnectReturnCode>,
    AsyncClient,
    tokio::sync::mpsc::UnboundedReceiver<Packet>,
) {
    let (client, mut el) = AsyncClient::new(opts, 64);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            match el.poll().await {
                Ok(Event::Incoming(p)) => {
                    if tx.send(p).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(rumqttc::ConnectionError::ConnectionRefused(code)) => {
                    let _ = tx.send(Packet::ConnAck(rumqttc::ConnAck {
                        session_present: false,
                        code,
                    }));
                    return;
                }
                Err(_) => return,
            }
        }
    });
    let first = timeout(WAIT, rx.recv()).await.unwrap().unwrap();
    let Packet::ConnAck(ack) = first else {
        panic!("expected CONNACK, got {first:?}");
    };
    let r = match ack.code {
        ConnectReturnCode::Success => Ok(()),
        c => Err(c),
    };
    (r, client, rx)
}

async fn next_packet(rx: &mut tokio::sync::mpsc::UnboundedReceiver<Packet>) -> Packet {
    loop {
        let p = timeout(WAIT, rx.recv()).await.unwrap().unwrap();
        if !matches!(p, Packet::PingResp) {
            return p;
        }
    }
}

fn write_auth_files(dir: &std::path::Path) {
    let status = std::process::Command::new(common::beamq::BIN)
        .args(["passwd", "-c"])
        .arg(dir.join("passwd"))
        .args(["alice", "wonderland"])
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::write(
        dir.join("acl.conf"),
        "allow user:alice pubsub home/%u/#\n\
         allow all subscribe public/#\n\
         deny all\n",
    )
    .unwrap();
}

const AUTH_CONF: &str = "allow_anonymous = false\n\
                         password_file = passwd\n\
                         acl_file = acl.conf\n\
                         acl_nomatch = deny\n\
                         listeners.tcp.default.bind = \"127.0.0.1:0\"\n\
                         listeners.ws.default.enable = false\n";

#[tokio::test]
async fn auth_and_acl_v311() {
    let dir = tempfile::tempdir().unwrap();
    write_auth_files(dir.path());
    let node = Beamq::start_in(dir, &[], Some(AUTH_CONF), 1);
    let port = node.port("tcp");

    let anon = MqttOptions::new("anon", "127.0.0.1", port);
    let (r, _, _) = v3_connect(anon).await;
    assert_eq!(r, Err(ConnectReturnCode::NotAuthorized));

    let mut bad = MqttOptions::new("bad", "127.0.0.1", port);
    bad.set_credentials("alice", "queen");
    let (r, _, _) = v3_connect(bad).await;
    assert_eq!(r, Err(ConnectReturnCode::BadUserNamePassword));

    let mut good = MqttOptions::new("alice-1", "127.0.0.1", port);
    good.set_credentials("alice", "wonderland");
    let (r, client, mut rx) = v3_connect(good).await;
    assert_eq!(r, Ok(()));
    client
        .subscribe_many([
            rumqttc::SubscribeFilter::new("home/alice/#".into(), QoS::AtLeastOnce),
            rumqttc::SubscribeFilter::new("home/bob/#".into(), QoS::AtLeastOnce),
            rumqttc::SubscribeFilter::new("public/#".into(), QoS::AtLeastOnce),
        ])
        .await
        .unwrap();
    let Packet::SubAck(ack) = next_packet(&mut rx).await else {
        panic!("expected SUBACK")
    };
    use rumqttc::SubscribeReasonCode as R;
    assert_eq!(
        ack.return_codes,
        [
            R::Success(QoS::AtLeastOnce),
            R::Failure,
            R::Success(QoS::AtLeastOnce)
        ]
    );
    // A refused publish is acknowledged and dropped (3.1.1 has no failure code), as mosquitto.
    client
        .publish("home/bob/lamp", QoS::AtLeastOnce, false, "no")
        .await
        .unwrap();
    assert!(matches!(next_packet(&mut rx).await, Packet::PubAck(_)));
    client
        .publish("home/alice/lamp", QoS::AtLeastOnce, false, "on")
        .await
        .unwrap();
    let mut got = Vec::new();
    while got.len() < 2 {
        match next_packet(&mut rx).await {
            Packet::PubAck(_) => got.push("puback".to_owned()),
            Packet::Publish(p) => got.push(format!(
                "{} {}",
                p.topic,
                String::from_utf8_lossy(&p.payload)
            )),
            other => panic!("unexpected {other:?}"),
        }
    }
    got.sort();
    assert_eq!(got, ["home/alice/lamp on", "puback"]);
}

#[tokio::test]
async fn auth_and_acl_v5() {
    use rumqttc::v5::mqttbytes::v5::SubscribeReasonCode;

    let dir = tempfile::tempdir().unwrap();
    write_auth_files(dir.path());
    let node = Beamq::start_in(dir, &[], Some(AUTH_CONF), 1);
    let port = node.port("tcp");

    let (r, _, _) = v5_connect(O5::new("anon5", "127.0.0.1", port)).await;
    assert_eq!(r, Err(C5::NotAuthorized));
    let mut bad = O5::new("bad5", "127.0.0.1", port);
    bad.set_credentials("alice", "queen");
    let (r, _, _) = v5_connect(bad).await;
    assert_eq!(r, Err(C5::BadUserNamePassword));

    let mut good = O5::new("alice-5", "127.0.0.1", port);
    good.set_credentials("alice", "wonderland");
    let (r, client, mut rx) = v5_connect(good).await;
    assert_eq!(r, Ok(()));
    async fn next(
        rx: &mut tokio::sync::mpsc::UnboundedReceiver<Result<P5, String>>,
    ) -> Result<P5, String> {
        timeout(WAIT, rx.recv()).await.unwrap().unwrap()
    }
    client
        .subscribe("home/alice/#", Q5::AtLeastOnce)
        .await
        .unwrap();
    let Ok(P5::SubAck(ack)) = next(&mut rx).await else {
        panic!("expected SUBACK")
    };
    assert_eq!(
        ack.return_codes,
        [SubscribeReasonCode::Success(Q5::AtLeastOnce)]
    );
    // rumqttc turns a failure code into an error naming it: SUBACK 0x87 for a shared
    // subscription to a refused filter.
    client
        .subscribe("$share/g/home/bob/#", Q5::AtLeastOnce)
        .await
        .unwrap();
    let e = next(&mut rx).await.unwrap_err();
    assert_eq!(e, "MqttState(SubFail { reason: NotAuthorized })");
    // After rumqttc's reconnect, PUBACK 0x87 for a refused publish.
    client
        .publish("home/bob/lamp", Q5::AtLeastOnce, false, "no")
        .await
        .unwrap();
    let e = loop {
        match next(&mut rx).await {
            Err(e) => break e,
            Ok(P5::ConnAck(_)) => {}
            Ok(other) => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(e, "MqttState(PubAckFail { reason: NotAuthorized })");
}

/// A rumqttc v5 connection: the CONNACK outcome, the client, and what the event loop
/// reports after it (packets, or rumqttc's error for a refused SUBACK/PUBACK).
async fn v5_connect(
    opts: O5,
) -> (
    Result<(), C5>,
    Client5,
    tokio::sync::mpsc::UnboundedReceiver<Result<P5, String>>,
) {
    let (client, mut el) = Client5::new(opts, 64);
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let (first_tx, first_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let mut first = Some(first_tx);
        loop {
            match el.poll().await {
                Ok(E5::Incoming(P5::ConnAck(_))) => {
                    if let Some(f) = first.take() {
                        let _ = f.send(Ok(()));
                    }
                }
                Ok(E5::Incoming(p)) => {
                    if tx.send(Ok(p)).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(ConnectionError::ConnectionRefused(code)) => {
                    if let Some(f) = first.take() {
                        let _ = f.send(Err(code));
                    }
                    return;
                }
                // rumqttc ends the connection on a refused SUBACK or PUBACK and
                // reconnects on the next poll: report it and go on.
                Err(e) => {
                    if tx.send(Err(format!("{e:?}"))).is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    });
    let r = timeout(WAIT, first_rx).await.unwrap().unwrap();
    (r, client, rx)
}

/// TLS (a CA and a server certificate generated now) and plain TCP from one config file;
/// a v3.1.1 client over TLS and a v5 client over TCP exchange messages both ways. TLS runs on
/// two acceptor threads of its own (`acceptors`), TCP on the node's runtime.
#[tokio::test]
async fn tls_listener_from_config() {
    let dir = tempfile::tempdir().unwrap();
    write_test_certs(dir.path());
    let conf = "listeners.tcp.default.bind = \"127.0.0.1:0\"\n\
                listeners.ssl.default.bind = \"127.0.0.1:0\"\n\
                listeners.ssl.default.ssl_options.certfile = cert.pem\n\
                listeners.ssl.default.ssl_options.keyfile = key.pem\n\
                listeners.ssl.default.acceptors = 2\n\
                listeners.ws.default.bind = \"127.0.0.1:0\"\n";
    let node = Beamq::start_in(dir, &[], Some(conf), 3);
    let (tcp, tls) = (node.port("tcp"), node.port("tls"));
    assert!(node.ports.contains_key("ws"));

    let ca = std::fs::read(node.path("ca.pem")).unwrap();
    let mut opts = MqttOptions::new("tls-v3", "localhost", tls);
    opts.set_transport(rumqttc::Transport::tls(ca, None, None));
    let (r, tls_client, mut tls_rx) = v3_connect(opts).await;
    assert_eq!(r, Ok(()));
    tls_client.subscribe("t/#", QoS::ExactlyOnce).await.unwrap();
    assert!(matches!(next_packet(&mut tls_rx).await, Packet::SubAck(_)));

    let (r, tcp_client, mut tcp_rx) =
        v3_connect(MqttOptions::new("tcp-v3", "127.0.0.1", tcp)).await;
    assert_eq!(r, Ok(()));
    tcp_client
        .publish("t/1", QoS::ExactlyOnce, false, "over tls")
        .await
        .unwrap();
    let p = loop {
        if let Packet::Publish(p) = next_packet(&mut tls_rx).await {
            break p;
        }
    };
    assert_eq!(
        (p.topic.as_str(), &p.payload[..]),
        ("t/1", &b"over tls"[..])
    );
    assert_eq!(p.qos, QoS::ExactlyOnce);
    tcp_client
        .subscribe("back", QoS::AtLeastOnce)
        .await
        .unwrap();
    loop {
        if let Packet::SubAck(_) = next_packet(&mut tcp_rx).await {
            break;
        }
    }
    tls_client
        .publish("back", QoS::AtLeastOnce, false, "from tls")
        .await
        .unwrap();
    let p = loop {
        if let Packet::Publish(p) = next_packet(&mut tcp_rx).await {
            break p;
        }
    };
    assert_eq!(&p.payload[..], b"from tls");
}

/// MQTT over WebSocket (`/mqtt`, subprotocol `mqtt`) from the config file: rumqttc 3.1.1 and
/// 5.0 clients over WebSocket and a TCP client, messages both ways; another path is refused.
/// WebSocket and TCP each run on acceptor threads of their own.
#[tokio::test]
async fn websocket_listener_from_config() {
    let conf = "listeners.tcp.default.bind = \"127.0.0.1:0\"\n\
                listeners.ws.default.bind = \"127.0.0.1:0\"\n\
                listeners.ws.default.websocket.mqtt_path = \"/mqtt\"\n\
                listeners.ws.default.acceptors = 2\n\
                listeners.tcp.default.acceptors = 2\n";
    let node = Beamq::start(&[], Some(conf), 2);
    let ws = node.port("ws");
    let url = format!("ws://127.0.0.1:{ws}/mqtt");

    let mut opts = MqttOptions::new("ws-v3", &url, ws);
    opts.set_transport(rumqttc::Transport::Ws);
    opts.set_max_packet_size(1 << 20, 1 << 20);
    let (r, ws3, mut ws3_rx) = v3_connect(opts).await;
    assert_eq!(r, Ok(()));
    ws3.subscribe("w/#", QoS::AtLeastOnce).await.unwrap();
    assert!(matches!(next_packet(&mut ws3_rx).await, Packet::SubAck(_)));

    let mut opts = O5::new("ws-v5", &url, ws);
    opts.set_transport(rumqttc::Transport::Ws);
    let (r, ws5, mut ws5_rx) = v5_connect(opts).await;
    assert_eq!(r, Ok(()));
    ws5.subscribe("back/#", Q5::ExactlyOnce).await.unwrap();
    assert!(matches!(
        timeout(WAIT, ws5_rx.recv()).await.unwrap().unwrap(),
        Ok(P5::SubAck(_))
    ));

    let mut opts = MqttOptions::new("ws-tcp", "127.0.0.1", node.port("tcp"));
    opts.set_max_packet_size(1 << 20, 1 << 20);
    let (r, tcp, _tcp_rx) = v3_connect(opts).await;
    assert_eq!(r, Ok(()));
    // Large enough to span several WebSocket frames' worth of TCP segments.
    let big = vec![7u8; 100_000];
    tcp.publish("w/big", QoS::AtLeastOnce, false, big.clone())
        .await
        .unwrap();
    let p = loop {
        if let Packet::Publish(p) = next_packet(&mut ws3_rx).await {
            break p;
        }
    };
    assert_eq!((p.topic.as_str(), p.payload.len()), ("w/big", big.len()));
    ws3.publish("back/1", QoS::ExactlyOnce, false, "via ws")
        .await
        .unwrap();
    let p = loop {
        match timeout(WAIT, ws5_rx.recv()).await.unwrap().unwrap() {
            Ok(P5::Publish(p)) => break p,
            Ok(_) => {}
            Err(e) => panic!("{e}"),
        }
    };
    assert_eq!(
        (&p.topic[..], &p.payload[..], p.qos),
        (&b"back/1"[..], &b"via ws"[..], Q5::ExactlyOnce)
    );

    let mut opts = MqttOptions::new("ws-bad-path", format!("ws://127.0.0.1:{ws}/other"), ws);
    opts.set_transport(rumqttc::Transport::Ws);
    let (_client, mut el) = AsyncClient::new(opts, 8);
    let e = timeout(WAIT, el.poll()).await.unwrap().unwrap_err();
    assert!(e.to_string().to_lowercase().contains("404"), "{e}");
}

/// `node.port_offset` shifts the file's (and the default) ports; a flag beats the file.
#[test]
fn port_offset_from_the_file() {
    let k = common::ports::free_port_offset(1, 0);
    let conf = format!(
        "node.port_offset = {k}\n\
         listeners.tcp.default.bind = \"127.0.0.1:1883\"\n\
         listeners.ws.default.bind = \"127.0.0.1:8083\"\n"
    );
    let node = Beamq::start(&[], Some(&conf), 2);
    assert_eq!(node.port("tcp"), 1883 + k);
    assert_eq!(node.port("ws"), 8083 + k);
    drop(node);
    let node = Beamq::start(&["--ws-port", "off"], Some(&conf), 1);
    assert_eq!(node.port("tcp"), 1883 + k);
    assert!(!node.ports.contains_key("ws"));
}

/// SIGHUP re-reads the password file (a user added with `beamq passwd` gets in) and the ACL;
/// a broken file keeps the rules in force.
#[tokio::test]
async fn sighup_reloads_password_and_acl_files() {
    let dir = tempfile::tempdir().unwrap();
    write_auth_files(dir.path());
    let node = Beamq::start_in(dir, &[], Some(AUTH_CONF), 1);
    let port = node.port("tcp");
    let bob = || {
        let mut o = MqttOptions::new("bob-1", "127.0.0.1", port);
        o.set_credentials("bob", "builder");
        o
    };
    let (r, _, _) = v3_connect(bob()).await;
    assert_eq!(r, Err(ConnectReturnCode::BadUserNamePassword));
    let status = std::process::Command::new(common::beamq::BIN)
        .arg("passwd")
        .arg(node.path("passwd"))
        .args(["bob", "builder"])
        .status()
        .unwrap();
    assert!(status.success());
    // Not before the signal.
    let (r, _, _) = v3_connect(bob()).await;
    assert_eq!(r, Err(ConnectReturnCode::BadUserNamePassword));
    node.signal(libc::SIGHUP);
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let (r, _, _) = v3_connect(bob()).await;
        if r.is_ok() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "bob still refused");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A broken password file: the node keeps running with the rules it has.
    std::fs::write(node.path("passwd"), "not a password line\n").unwrap();
    node.signal(libc::SIGHUP);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (r, _, _) = v3_connect(bob()).await;
    assert_eq!(r, Ok(()));
}
