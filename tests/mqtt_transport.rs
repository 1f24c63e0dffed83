//! Listener plumbing end to end on 127.0.0.1 port 0: a TLS handshake against a certificate made
//! in the test, and WebSocket upgrades with and without the `mqtt` subprotocol, each carrying a
//! real CONNECT / CONNACK exchange through the codec.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use beamq::mqtt::codec::{ConnAck, Connect, Packet, ProtocolVersion, ReasonCode};
use beamq::mqtt::transport::{
    read_packet, Listener, ListenerConfig, ListenerKind, TlsConfig, Transport, WsConfig,
};
use bytes::BytesMut;
use futures_util::{SinkExt as _, StreamExt as _};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _};
use tokio_rustls::rustls;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::Message;

const V: ProtocolVersion = ProtocolVersion::V3_1_1;

fn connect_bytes() -> Vec<u8> {
    let c = Connect {
        protocol: V,
        clean_start: true,
        keep_alive: 30,
        properties: Default::default(),
        client_id: "transport-test".try_into().expect("id"),
        will: None,
        username: None,
        password: None,
    };
    let mut out = BytesMut::new();
    Packet::Connect(Box::new(c))
        .write(V, &mut out)
        .expect("encode");
    out.to_vec()
}

fn connack_bytes() -> Vec<u8> {
    let a = ConnAck {
        session_present: false,
        reason: ReasonCode::Success,
        properties: Default::default(),
    };
    let mut out = BytesMut::new();
    Packet::ConnAck(a).write(V, &mut out).expect("encode");
    out.to_vec()
}

/// Server side: one connection, expect CONNECT, answer CONNACK; returns what it saw.
async fn serve_one(listener: Listener) -> (String, SocketAddr, &'static str) {
    let incoming = listener.accept().await.expect("accept");
    let conn = incoming.handshake().await.expect("handshake");
    let mut stream: Transport = conn.stream;
    let kind = stream.kind();
    let mut buf = BytesMut::new();
    let p = read_packet(&mut stream, &mut buf, V, 1 << 16)
        .await
        .expect("read")
        .expect("a packet");
    let Packet::Connect(c) = p else {
        panic!("expected CONNECT, got {p:?}")
    };
    stream.write_all(&connack_bytes()).await.expect("write");
    stream.flush().await.expect("flush");
    // Wait for the client to close, so the CONNACK is not lost to an early drop.
    let _ = read_packet(&mut stream, &mut buf, V, 1 << 16).await;
    (c.client_id.to_string(), conn.peer, kind)
}

async fn client_exchange<S: AsyncRead + AsyncWrite + Unpin>(mut s: S) {
    s.write_all(&connect_bytes()).await.expect("send CONNECT");
    s.flush().await.expect("flush");
    let mut buf = BytesMut::new();
    let p = read_packet(&mut s, &mut buf, V, 1 << 16)
        .await
        .expect("read");
    assert!(
        matches!(p, Some(Packet::ConnAck(ref a)) if a.reason == ReasonCode::Success),
        "{p:?}"
    );
    let _ = s.shutdown().await;
}

fn local0() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

#[tokio::test]
async fn tls_handshake_with_generated_certificate() {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("rcgen");
    let dir = tempfile::tempdir().expect("tempdir");
    let (certfile, keyfile) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&certfile, ck.cert.pem()).expect("write cert");
    std::fs::write(&keyfile, ck.key_pair.serialize_pem()).expect("write key");
    let cfg = ListenerConfig::new(
        local0(),
        ListenerKind::Tls(TlsConfig::new(certfile, keyfile)),
    );
    let listener = Listener::bind(&cfg).await.expect("bind TLS");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(serve_one(listener));

    let mut roots = rustls::RootCertStore::empty();
    roots.add(ck.cert.der().clone()).expect("root");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let client_cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client_cfg));
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let client_addr = tcp.local_addr().expect("local");
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let tls = connector.connect(name, tcp).await.expect("TLS handshake");
    client_exchange(tls).await;
    let (id, peer, kind) = tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("server in time")
        .expect("server task");
    assert_eq!(id, "transport-test");
    assert_eq!(peer, client_addr);
    assert_eq!(kind, "ssl");
}

#[tokio::test]
async fn tls_listener_refuses_missing_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = ListenerConfig::new(
        local0(),
        ListenerKind::Tls(TlsConfig::new(
            dir.path().join("none.pem"),
            dir.path().join("none.key"),
        )),
    );
    assert!(Listener::bind(&cfg).await.is_err());
}

async fn ws_listener() -> (Listener, SocketAddr) {
    let cfg = ListenerConfig::new(local0(), ListenerKind::Ws(WsConfig::default()));
    let listener = Listener::bind(&cfg).await.expect("bind WS");
    let addr = listener.local_addr().expect("addr");
    (listener, addr)
}

#[tokio::test]
async fn websocket_with_mqtt_subprotocol() {
    let (listener, addr) = ws_listener().await;
    let server = tokio::spawn(serve_one(listener));
    let mut req = format!("ws://{addr}/mqtt")
        .into_client_request()
        .expect("request");
    req.headers_mut()
        .insert("sec-websocket-protocol", "mqtt".parse().expect("header"));
    let (mut ws, resp) = tokio_tungstenite::connect_async(req)
        .await
        .expect("upgrade");
    assert_eq!(
        resp.headers()
            .get("sec-websocket-protocol")
            .and_then(|v| v.to_str().ok()),
        Some("mqtt")
    );
    // Split the CONNECT over two messages: the stream must reassemble it.
    let bytes = connect_bytes();
    let (a, b) = bytes.split_at(3);
    ws.send(Message::Binary(a.to_vec())).await.expect("send");
    ws.send(Message::Binary(b.to_vec())).await.expect("send");
    let reply = tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .expect("reply in time")
        .expect("a message")
        .expect("no error");
    assert_eq!(reply, Message::Binary(connack_bytes()));
    ws.close(None).await.expect("close");
    let (id, _, kind) = tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("server in time")
        .expect("server task");
    assert_eq!(id, "transport-test");
    assert_eq!(kind, "ws");
}

#[tokio::test]
async fn websocket_refusals() {
    for (path, proto) in [
        ("/mqtt", None),
        ("/other", Some("mqtt")),
        ("/mqtt", Some("chat")),
    ] {
        let (listener, addr) = ws_listener().await;
        let server = tokio::spawn(async move {
            let incoming = listener.accept().await.expect("accept");
            incoming.handshake().await.is_err()
        });
        let mut req = format!("ws://{addr}{path}")
            .into_client_request()
            .expect("request");
        if let Some(p) = proto {
            req.headers_mut()
                .insert("sec-websocket-protocol", p.parse().expect("header"));
        }
        assert!(
            tokio_tungstenite::connect_async(req).await.is_err(),
            "{path} {proto:?} should be refused"
        );
        assert!(server.await.expect("server task"), "{path} {proto:?}");
    }
}

#[tokio::test]
async fn websocket_text_message_closes() {
    let (listener, addr) = ws_listener().await;
    let server = tokio::spawn(async move {
        let conn = listener
            .accept()
            .await
            .expect("accept")
            .handshake()
            .await
            .expect("upgrade");
        let mut stream = conn.stream;
        let mut buf = BytesMut::new();
        read_packet(&mut stream, &mut buf, V, 1 << 16)
            .await
            .is_err()
    });
    let mut req = format!("ws://{addr}/mqtt")
        .into_client_request()
        .expect("request");
    req.headers_mut()
        .insert("sec-websocket-protocol", "mqtt".parse().expect("header"));
    let (mut ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .expect("upgrade");
    ws.send(Message::Text("hello".into())).await.expect("send");
    assert!(
        server.await.expect("server task"),
        "a text frame must be an error"
    );
}

#[tokio::test]
async fn tcp_listener_and_stalled_handshake_deadline() {
    let cfg = ListenerConfig::new(local0(), ListenerKind::Tcp);
    let listener = Listener::bind(&cfg).await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(serve_one(listener));
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    client_exchange(tcp).await;
    let (_, _, kind) = server.await.expect("server");
    assert_eq!(kind, "tcp");

    // A WebSocket client that connects and never sends its upgrade request.
    let mut cfg = ListenerConfig::new(local0(), ListenerKind::Ws(WsConfig::default()));
    cfg.handshake_timeout = Duration::from_millis(200);
    let listener = Listener::bind(&cfg).await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let _idle = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let incoming = listener.accept().await.expect("accept");
    let r = tokio::time::timeout(Duration::from_secs(5), incoming.handshake())
        .await
        .expect("deadline enforced");
    assert!(matches!(
        r,
        Err(beamq::mqtt::transport::TransportError::Timeout)
    ));
    assert_eq!(ListenerConfig::port(1883, 1000), Some(2883));
}
