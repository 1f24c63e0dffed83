//! Codec tests on hand-built byte vectors: each packet family's fields as the specs' tables lay
//! them out (MQTT 3.1.1 §3, MQTT 5.0 §3), the error and reason code each malformation maps to,
//! and the shared `decode` / `encode` helpers the random-packet tests ([`super::tests_random`])
//! use as well.

use bytes::BytesMut;

use super::*;

pub(super) const MAX: usize = 1 << 20;

pub(super) fn decode(bytes: &[u8], v: ProtocolVersion) -> Result<Packet> {
    let mut buf = BytesMut::from(bytes);
    let p = Packet::decode(&mut buf, v, MAX)?.ok_or(CodecError::Truncated)?;
    assert!(buf.is_empty(), "frame not fully consumed");
    Ok(p)
}

pub(super) fn encode(p: &Packet, v: ProtocolVersion) -> Vec<u8> {
    let mut out = BytesMut::new();
    let n = p.write(v, &mut out).unwrap();
    assert_eq!(n, out.len());
    assert_eq!(p.encoded_len(v).unwrap(), n);
    out.to_vec()
}

pub(super) fn s(x: &str) -> MqttString {
    MqttString::try_from(x).unwrap()
}

#[test]
fn v311_connect_minimal() {
    // §3.1: "MQTT", level 4, Clean Session, keep alive 60, empty client id.
    let bytes = [
        0x10, 0x0C, 0, 4, b'M', b'Q', b'T', b'T', 4, 0x02, 0, 60, 0, 0,
    ];
    let Packet::Connect(c) = decode(&bytes, ProtocolVersion::V3_1_1).unwrap() else {
        panic!("not a CONNECT")
    };
    assert_eq!(c.protocol, ProtocolVersion::V3_1_1);
    assert!(c.clean_start);
    assert_eq!(c.keep_alive, 60);
    assert!(c.client_id.is_empty());
    assert_eq!(
        encode(&Packet::Connect(c.clone()), ProtocolVersion::V3_1_1),
        bytes
    );
}

#[test]
fn v31_connect_uses_mqisdp() {
    let bytes = [
        0x10, 0x10, 0, 6, b'M', b'Q', b'I', b's', b'd', b'p', 3, 0x02, 0, 10, 0, 2, b'i', b'd',
    ];
    let Packet::Connect(c) = decode(&bytes, ProtocolVersion::V3_1_1).unwrap() else {
        panic!("not a CONNECT")
    };
    assert_eq!(c.protocol, ProtocolVersion::V3_1);
    assert_eq!(c.client_id, "id");
    assert_eq!(
        encode(&Packet::Connect(c.clone()), ProtocolVersion::V3_1),
        bytes
    );
}

#[test]
fn v5_connect_with_will_login_and_properties() {
    // Flags 0xEE: user name, password, will retain, will QoS 1, will, clean start (§3.1.2.3).
    let bytes: Vec<u8> = [
        &[0x10, 0x29][..],
        &[0, 4, b'M', b'Q', b'T', b'T', 5, 0xEE, 0, 10],
        &[5, 0x11, 0, 0, 0, 10], // Session Expiry Interval 10
        &[0, 1, b'c'],
        &[5, 0x18, 0, 0, 0, 30], // Will Delay Interval 30
        &[0, 3, b'w', b'/', b't'],
        &[0, 2, b'b', b'y'],
        &[0, 1, b'u'],
        &[0, 2, b'p', b'w'],
    ]
    .concat();
    assert_eq!(bytes.len() - 2, 0x29);
    let Packet::Connect(c) = decode(&bytes, ProtocolVersion::V5).unwrap() else {
        panic!("not a CONNECT")
    };
    assert_eq!(c.properties.session_expiry_interval, Some(10));
    let w = c.will.as_ref().unwrap();
    assert_eq!(
        (w.qos, w.retain, w.topic.as_str()),
        (QoS::AtLeastOnce, true, "w/t")
    );
    assert_eq!(w.properties.will_delay_interval, Some(30));
    assert_eq!(&w.payload[..], b"by");
    assert_eq!(c.username.as_ref().unwrap(), "u");
    assert_eq!(c.password.as_deref(), Some(&b"pw"[..]));
    assert_eq!(
        encode(&Packet::Connect(c.clone()), ProtocolVersion::V5),
        bytes
    );
}

#[test]
fn connect_errors_map_to_reason_codes() {
    let v = ProtocolVersion::V3_1_1;
    let level6 = [
        0x10, 0x0C, 0, 4, b'M', b'Q', b'T', b'T', 6, 0x02, 0, 60, 0, 0,
    ];
    let e = decode(&level6, v).unwrap_err();
    assert_eq!(e, CodecError::UnsupportedProtocolVersion(6));
    assert_eq!(e.reason_code(), ReasonCode::UnsupportedProtocolVersion);
    let name = [
        0x10, 0x0C, 0, 4, b'M', b'Q', b'T', b'X', 4, 0x02, 0, 60, 0, 0,
    ];
    assert_eq!(
        decode(&name, v).unwrap_err(),
        CodecError::InvalidProtocolName
    );
    let reserved = [
        0x10, 0x0C, 0, 4, b'M', b'Q', b'T', b'T', 4, 0x03, 0, 60, 0, 0,
    ];
    assert_eq!(
        decode(&reserved, v).unwrap_err().reason_code().as_u8(),
        0x81
    );
    // Will QoS 3.
    let q3 = [
        0x10, 0x0C, 0, 4, b'M', b'Q', b'T', b'T', 4, 0x1E, 0, 60, 0, 0,
    ];
    assert_eq!(decode(&q3, v).unwrap_err(), CodecError::InvalidQos);
    // Will retain without will flag.
    let wr = [
        0x10, 0x0C, 0, 4, b'M', b'Q', b'T', b'T', 4, 0x22, 0, 60, 0, 0,
    ];
    assert!(matches!(
        decode(&wr, v).unwrap_err(),
        CodecError::Malformed(_)
    ));
    // Password without user name: malformed in 3.1.1, fine in 5.
    let pw = [
        0x10, 0x0E, 0, 4, b'M', b'Q', b'T', b'T', 4, 0x42, 0, 60, 0, 0, 0, 0,
    ];
    assert!(matches!(
        decode(&pw, v).unwrap_err(),
        CodecError::Malformed(_)
    ));
    let pw5 = [
        0x10, 0x0F, 0, 4, b'M', b'Q', b'T', b'T', 5, 0x42, 0, 60, 0, 0, 0, 0, 0,
    ];
    assert!(decode(&pw5, v).is_ok());
    // Trailing garbage after the last field.
    let tail = [
        0x10, 0x0D, 0, 4, b'M', b'Q', b'T', b'T', 4, 0x02, 0, 60, 0, 0, 9,
    ];
    assert_eq!(decode(&tail, v).unwrap_err(), CodecError::TrailingBytes(1));
    // NUL in the client id (§1.5.4).
    let nul = [
        0x10, 0x0D, 0, 4, b'M', b'Q', b'T', b'T', 4, 0x02, 0, 60, 0, 1, 0,
    ];
    assert_eq!(decode(&nul, v).unwrap_err(), CodecError::BadUtf8);
}

#[test]
fn publish_payload_is_a_slice_of_the_input() {
    // v5 QoS 1 PUBLISH, topic "a/b", id 10, Topic Alias 3, payload "hello".
    let bytes = [
        0x32, 0x10, 0, 3, b'a', b'/', b'b', 0, 10, 3, 0x23, 0, 3, b'h', b'e', b'l', b'l', b'o',
    ];
    let mut buf = BytesMut::from(&bytes[..]);
    let (fh, len) = check(&buf, MAX).unwrap().unwrap();
    let frame = buf.split_to(len).freeze();
    let body = frame.slice(fh.header_len..);
    let Packet::Publish(p) = Packet::read(&fh, body, ProtocolVersion::V5).unwrap() else {
        panic!("not a PUBLISH")
    };
    assert_eq!(p.topic, "a/b");
    assert_eq!(p.packet_id, 10);
    assert_eq!(p.properties.topic_alias, Some(3));
    assert_eq!(&p.payload[..], b"hello");
    let range = frame.as_ptr() as usize..frame.as_ptr() as usize + frame.len();
    assert!(
        range.contains(&(p.payload.as_ptr() as usize)),
        "payload was copied"
    );
    assert!(
        range.contains(&(p.topic.as_bytes().as_ptr() as usize)),
        "topic was copied"
    );
    assert_eq!(encode(&Packet::Publish(p), ProtocolVersion::V5), bytes);
}

#[test]
fn publish_rules() {
    let v = ProtocolVersion::V3_1_1;
    // DUP on QoS 0.
    assert!(decode(&[0x38, 0x03, 0, 1, b't'], v).is_err());
    // QoS 1 with packet id 0: protocol error.
    assert_eq!(
        decode(&[0x32, 0x05, 0, 1, b't', 0, 0], v)
            .unwrap_err()
            .reason_code(),
        ReasonCode::ProtocolError
    );
    // Topic length past the end.
    assert_eq!(
        decode(&[0x30, 0x03, 0, 5, b't'], v).unwrap_err(),
        CodecError::Truncated
    );
    // QoS 0 v3 with an empty payload.
    let Packet::Publish(p) = decode(&[0x31, 0x03, 0, 1, b't'], v).unwrap() else {
        panic!("not a PUBLISH")
    };
    assert!(p.retain && p.payload.is_empty());
}

#[test]
fn property_rules() {
    let v = ProtocolVersion::V5;
    // Duplicate Message Expiry Interval in a PUBLISH: protocol error.
    let dup = [0x30, 0x0E, 0, 1, b't', 10, 2, 0, 0, 0, 1, 2, 0, 0, 0, 2];
    assert_eq!(
        decode(&dup, v).unwrap_err(),
        CodecError::DuplicateProperty(2)
    );
    assert_eq!(decode(&dup, v).unwrap_err().reason_code().as_u8(), 0x82);
    // Session Expiry Interval is not a PUBLISH property: malformed.
    let na = [0x30, 0x09, 0, 1, b't', 5, 0x11, 0, 0, 0, 1];
    assert_eq!(decode(&na, v).unwrap_err().reason_code().as_u8(), 0x81);
    // Unknown property 0x7F.
    let unk = [0x30, 0x06, 0, 1, b't', 2, 0x7F, 0];
    assert_eq!(
        decode(&unk, v).unwrap_err(),
        CodecError::UnknownProperty(0x7F)
    );
    // User Property may repeat.
    let up = [
        0x30, 0x15, 0, 1, b't', 16, 0x26, 0, 1, b'k', 0, 1, b'v', 0x26, 0, 1, b'k', 0, 1, b'w',
        0x01, 1, b'x',
    ];
    let Packet::Publish(p) = decode(&up, v).unwrap() else {
        panic!("not a PUBLISH")
    };
    assert_eq!(p.properties.user_properties.len(), 2);
    assert_eq!(p.properties.payload_format_indicator, Some(true));
    assert_eq!(&p.payload[..], b"x");
    // Payload Format Indicator 2 is a protocol error.
    let pfi = [0x30, 0x06, 0, 1, b't', 2, 0x01, 2];
    assert_eq!(
        decode(&pfi, v).unwrap_err(),
        CodecError::InvalidPropertyValue(1)
    );
    // Property length past the end of the packet.
    let long = [0x30, 0x06, 0, 1, b't', 9, 0x01, 1];
    assert_eq!(decode(&long, v).unwrap_err(), CodecError::Truncated);
    // Receive Maximum 0 in CONNECT.
    let rm0 = [
        0x10, 0x10, 0, 4, b'M', b'Q', b'T', b'T', 5, 0x02, 0, 60, 3, 0x21, 0, 0, 0, 0,
    ];
    assert_eq!(
        decode(&rm0, v).unwrap_err(),
        CodecError::InvalidPropertyValue(0x21)
    );
    // Two Subscription Identifiers in a SUBSCRIBE.
    let sid = [0x82, 0x0B, 0, 1, 4, 0x0B, 1, 0x0B, 2, 0, 1, b't', 0];
    assert_eq!(
        decode(&sid, v).unwrap_err(),
        CodecError::DuplicateProperty(0x0B)
    );
}

#[test]
fn acks_short_and_long_forms() {
    let v = ProtocolVersion::V5;
    let Packet::PubAck(a) = decode(&[0x40, 0x02, 0, 7], v).unwrap() else {
        panic!()
    };
    assert_eq!((a.packet_id, a.reason), (7, ReasonCode::Success));
    let Packet::PubRec(a) = decode(&[0x50, 0x03, 0, 7, 0x10], v).unwrap() else {
        panic!()
    };
    assert_eq!(a.reason, ReasonCode::NoMatchingSubscribers);
    assert_eq!(encode(&Packet::PubRec(a), v), [0x50, 0x03, 0, 7, 0x10]);
    // Success with an explicit empty property list decodes, and is re-encoded short.
    let Packet::PubComp(a) = decode(&[0x70, 0x04, 0, 7, 0, 0], v).unwrap() else {
        panic!()
    };
    assert_eq!(encode(&Packet::PubComp(a), v), [0x70, 0x02, 0, 7]);
    // 0x10 is not a PUBREL reason.
    assert!(decode(&[0x62, 0x03, 0, 7, 0x10], v).is_err());
    // 3.1.1 acks are exactly two bytes.
    assert_eq!(
        decode(&[0x40, 0x03, 0, 7, 0], ProtocolVersion::V3_1_1).unwrap_err(),
        CodecError::TrailingBytes(1)
    );
}

#[test]
fn subscribe_options_and_suback_codes() {
    let v5 = ProtocolVersion::V5;
    // Options 0x2E: retain handling 2, RAP, no local, QoS 2.
    let sub = [0x82, 0x09, 0, 1, 2, 0x0B, 5, 0, 1, b't', 0x2E];
    let Packet::Subscribe(s5) = decode(&sub, v5).unwrap() else {
        panic!()
    };
    let o = s5.filters[0].1;
    assert_eq!(o.qos, QoS::ExactlyOnce);
    assert!(o.no_local && o.retain_as_published);
    assert_eq!(o.retain_handling, RetainHandling::DoNotSend);
    assert_eq!(s5.properties.subscription_identifiers, vec![5]);
    assert_eq!(encode(&Packet::Subscribe(s5), v5), sub);
    // Retain handling 3: protocol error; reserved bits: malformed.
    assert_eq!(
        decode(&[0x82, 0x07, 0, 1, 0, 0, 1, b't', 0x30], v5)
            .unwrap_err()
            .reason_code(),
        ReasonCode::ProtocolError
    );
    assert_eq!(
        decode(&[0x82, 0x07, 0, 1, 0, 0, 1, b't', 0x40], v5)
            .unwrap_err()
            .reason_code(),
        ReasonCode::MalformedPacket
    );
    // 3.1.1 forbids the v5 option bits; no filters at all is a protocol error.
    let v3 = ProtocolVersion::V3_1_1;
    assert!(decode(&[0x82, 0x06, 0, 1, 0, 1, b't', 0x04], v3).is_err());
    assert!(decode(&[0x82, 0x02, 0, 1], v3).is_err());
    // SUBACK 3.1.1 failure code 0x80 maps to/from a v5 error.
    let ack = SubAck {
        packet_id: 1,
        properties: Properties::default(),
        reasons: vec![ReasonCode::GrantedQos1, ReasonCode::TopicFilterInvalid],
    };
    assert_eq!(
        encode(&Packet::SubAck(ack), v3),
        [0x90, 0x04, 0, 1, 1, 0x80]
    );
}

#[test]
fn disconnect_auth_ping_unsuback() {
    let v5 = ProtocolVersion::V5;
    let v3 = ProtocolVersion::V3_1_1;
    assert_eq!(
        decode(&[0xE0, 0x00], v5).unwrap(),
        Packet::Disconnect(Disconnect::default())
    );
    let d = Packet::Disconnect(Disconnect::new(ReasonCode::KeepAliveTimeout));
    assert_eq!(encode(&d, v5), [0xE0, 0x01, 0x8D]);
    assert_eq!(encode(&d, v3), [0xE0, 0x00]);
    assert_eq!(
        decode(&[0xF0, 0x00], v5).unwrap(),
        Packet::Auth(Auth::default())
    );
    assert_eq!(
        decode(&[0xF0, 0x00], v3).unwrap_err(),
        CodecError::InvalidPacketType(15)
    );
    assert_eq!(decode(&[0xC0, 0x00], v3).unwrap(), Packet::PingReq);
    assert!(decode(&[0xD0, 0x01, 0], v3).is_err());
    let ua = UnsubAck {
        packet_id: 9,
        properties: Properties::default(),
        reasons: vec![ReasonCode::NoSubscriptionExisted],
    };
    assert_eq!(
        encode(&Packet::UnsubAck(ua.clone()), v5),
        [0xB0, 0x04, 0, 9, 0, 0x11]
    );
    assert_eq!(encode(&Packet::UnsubAck(ua), v3), [0xB0, 0x02, 0, 9]);
}

#[test]
fn writing_a_property_the_packet_does_not_allow_fails_cleanly() {
    let mut p = Publish {
        topic: s("t"),
        ..Default::default()
    };
    p.properties.session_expiry_interval = Some(1);
    let mut out = BytesMut::new();
    assert!(Packet::Publish(p)
        .write(ProtocolVersion::V5, &mut out)
        .is_err());
    assert!(out.is_empty(), "nothing written on error");
}
