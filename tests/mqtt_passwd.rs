//! The password file interoperates with mosquitto both ways: `mosquitto_passwd` output verifies
//! here, and mosquitto accepts (and refuses) CONNECTs against a file `beamq passwd` wrote.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::Duration;

use beamq::mqtt::auth::PasswordFile;
use beamq::mqtt::codec::{Connect, Packet, ProtocolVersion, ReasonCode};
use bytes::{Bytes, BytesMut};

#[test]
fn mosquitto_passwd_file_verifies_here() {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = dir.path().join("pw");
    let st = Command::new("mosquitto_passwd")
        .args(["-b", "-c"])
        .arg(&f)
        .args(["alice", "s3cret"])
        .status()
        .expect("run mosquitto_passwd");
    assert!(st.success());
    let pw = PasswordFile::load(&f).expect("load mosquitto's file");
    let cred = pw.get("alice").expect("alice is there");
    assert!(cred.verify(b"s3cret"));
    assert!(!cred.verify(b"s3cre"));
}

/// CONNECT as `user`/`password` and return the CONNACK reason.
fn connect(addr: SocketAddr, user: &str, password: &str) -> ReasonCode {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let c = Connect {
        protocol: ProtocolVersion::V3_1_1,
        clean_start: true,
        keep_alive: 30,
        properties: Default::default(),
        client_id: "pwtest".try_into().expect("id"),
        will: None,
        username: Some(user.try_into().expect("user")),
        password: Some(Bytes::copy_from_slice(password.as_bytes())),
    };
    let mut out = BytesMut::new();
    Packet::Connect(Box::new(c))
        .write(ProtocolVersion::V3_1_1, &mut out)
        .expect("encode");
    s.write_all(&out).expect("send CONNECT");
    let mut buf = BytesMut::new();
    loop {
        if let Some(p) = Packet::decode(&mut buf, ProtocolVersion::V3_1_1, 1 << 20).expect("decode")
        {
            match p {
                Packet::ConnAck(ack) => return ack.reason,
                other => panic!("expected CONNACK, got {other:?}"),
            }
        }
        let mut chunk = [0u8; 256];
        let n = s.read(&mut chunk).expect("read CONNACK");
        assert!(n > 0, "mosquitto closed without CONNACK");
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[test]
fn mosquitto_accepts_beamq_passwd_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = dir.path().join("pw");
    let bin = env!("CARGO_BIN_EXE_beamq");
    let st = Command::new(bin)
        .arg("passwd")
        .arg("-c")
        .arg(&f)
        .args(["bob", "builder"])
        .status()
        .expect("run beamq passwd");
    assert!(st.success());
    let body = std::fs::read(&f).expect("read file");
    let m = common::mosquitto::start(
        "allow_anonymous false\npassword_file $DIR/pw",
        &[("pw", &body)],
    );
    assert_eq!(connect(m.addr, "bob", "builder"), ReasonCode::Success);
    // mosquitto 2 answers a 3.1.1 client's bad password with return code 5 (not authorized).
    let refused = connect(m.addr, "bob", "wrong");
    assert!(
        matches!(
            refused,
            ReasonCode::BadUserNameOrPassword | ReasonCode::NotAuthorized
        ),
        "{refused:?}"
    );
}
