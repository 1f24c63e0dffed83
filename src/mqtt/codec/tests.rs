//! Codec tests: byte vectors built from the specs' field tables, the error each malformation
//! maps to, and a round trip over random packets of both versions.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;

use super::*;

const MAX: usize = 1 << 20;

fn decode(bytes: &[u8], v: ProtocolVersion) -> Result<Packet> {
    let mut buf = BytesMut::from(bytes);
    let p = Packet::decode(&mut buf, v, MAX)?.ok_or(CodecError::Truncated)?;
    assert!(buf.is_empty(), "frame not fully consumed");
    Ok(p)
}

fn encode(p: &Packet, v: ProtocolVersion) -> Vec<u8> {
    let mut out = BytesMut::new();
    let n = p.write(v, &mut out).unwrap();
    assert_eq!(n, out.len());
    assert_eq!(p.encoded_len(v).unwrap(), n);
    out.to_vec()
}

fn s(x: &str) -> MqttString {
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

#[test]
fn fuzz_entry_survives_random_bytes() {
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    for _ in 0..20_000 {
        let mut data = [0u8; 48];
        for b in data.iter_mut() {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            *b = rng as u8;
        }
        let len = (rng as usize >> 8) % data.len();
        // A plausible first byte half the time, so bodies get parsed too.
        if rng & 1 == 0 {
            data[0] = (data[0] & 0xF0).max(0x10) | [0, 2][usize::from(data[0] >> 4 == 6)];
            data[1] = (len.saturating_sub(2) as u8) & 0x7F;
        }
        fuzz_decode(&data[..len]);
    }
}

// ---- random packets -------------------------------------------------------------------------

fn arb_string() -> impl Strategy<Value = MqttString> {
    "[a-z/+#é𪛔]{0,12}".prop_map(|x| s(&x))
}

fn arb_bytes() -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(any::<u8>(), 0..20).prop_map(Bytes::from)
}

fn arb_qos() -> impl Strategy<Value = QoS> {
    prop_oneof![
        Just(QoS::AtMostOnce),
        Just(QoS::AtLeastOnce),
        Just(QoS::ExactlyOnce)
    ]
}

fn opt<T: std::fmt::Debug + Clone>(
    s: impl Strategy<Value = T>,
) -> impl Strategy<Value = Option<T>> {
    proptest::option::of(s)
}

fn arb_properties(ctx: PropertyContext) -> impl Strategy<Value = Properties> {
    let a = (
        opt(any::<bool>()),
        opt(any::<u32>()),
        opt(arb_string()),
        opt(arb_string()),
        opt(arb_bytes()),
        proptest::collection::vec(1u32..=wire::VARINT_MAX, 0..3),
        opt(any::<u32>()),
        opt(arb_string()),
        opt(any::<u16>()),
        opt(arb_string()),
        opt(arb_bytes()),
        opt(any::<bool>()),
    );
    let b = (
        opt(any::<u32>()),
        opt(any::<bool>()),
        opt(arb_string()),
        opt(arb_string()),
        opt(arb_string()),
        opt(1u16..),
        opt(any::<u16>()),
        opt(any::<u16>()),
        opt(prop_oneof![Just(QoS::AtMostOnce), Just(QoS::AtLeastOnce)]),
        opt(any::<bool>()),
        proptest::collection::vec((arb_string(), arb_string()), 0..3),
        opt(1u32..),
    );
    let c = (opt(any::<bool>()), opt(any::<bool>()), opt(any::<bool>()));
    (a, b, c).prop_map(move |(a, b, c)| {
        let mut p: Properties = PropertyValues {
            payload_format_indicator: a.0,
            message_expiry_interval: a.1,
            content_type: a.2,
            response_topic: a.3,
            correlation_data: a.4,
            subscription_identifiers: a.5,
            session_expiry_interval: a.6,
            assigned_client_identifier: a.7,
            server_keep_alive: a.8,
            authentication_method: a.9,
            authentication_data: a.10,
            request_problem_information: a.11,
            will_delay_interval: b.0,
            request_response_information: b.1,
            response_information: b.2,
            server_reference: b.3,
            reason_string: b.4,
            receive_maximum: b.5,
            topic_alias_maximum: b.6,
            topic_alias: b.7,
            maximum_qos: b.8,
            retain_available: b.9,
            user_properties: b.10,
            maximum_packet_size: b.11,
            wildcard_subscription_available: c.0,
            subscription_identifier_available: c.1,
            shared_subscription_available: c.2,
        }
        .into();
        restrict(&mut p, ctx);
        p
    })
}

/// Clears every property `ctx` does not allow.
fn restrict(p: &mut Properties, ctx: PropertyContext) {
    use properties::id;
    let keep = |pid| ctx.allows(pid);
    macro_rules! clear {
        ($($field:ident = $pid:expr),*) => {$( if !keep($pid) { p.$field = Default::default(); } )*};
    }
    clear!(
        payload_format_indicator = id::PAYLOAD_FORMAT_INDICATOR,
        message_expiry_interval = id::MESSAGE_EXPIRY_INTERVAL,
        content_type = id::CONTENT_TYPE,
        response_topic = id::RESPONSE_TOPIC,
        correlation_data = id::CORRELATION_DATA,
        subscription_identifiers = id::SUBSCRIPTION_IDENTIFIER,
        session_expiry_interval = id::SESSION_EXPIRY_INTERVAL,
        assigned_client_identifier = id::ASSIGNED_CLIENT_IDENTIFIER,
        server_keep_alive = id::SERVER_KEEP_ALIVE,
        authentication_method = id::AUTHENTICATION_METHOD,
        authentication_data = id::AUTHENTICATION_DATA,
        request_problem_information = id::REQUEST_PROBLEM_INFORMATION,
        will_delay_interval = id::WILL_DELAY_INTERVAL,
        request_response_information = id::REQUEST_RESPONSE_INFORMATION,
        response_information = id::RESPONSE_INFORMATION,
        server_reference = id::SERVER_REFERENCE,
        reason_string = id::REASON_STRING,
        receive_maximum = id::RECEIVE_MAXIMUM,
        topic_alias_maximum = id::TOPIC_ALIAS_MAXIMUM,
        topic_alias = id::TOPIC_ALIAS,
        maximum_qos = id::MAXIMUM_QOS,
        retain_available = id::RETAIN_AVAILABLE,
        user_properties = id::USER_PROPERTY,
        maximum_packet_size = id::MAXIMUM_PACKET_SIZE,
        wildcard_subscription_available = id::WILDCARD_SUBSCRIPTION_AVAILABLE,
        subscription_identifier_available = id::SUBSCRIPTION_IDENTIFIER_AVAILABLE,
        shared_subscription_available = id::SHARED_SUBSCRIPTION_AVAILABLE
    );
    if ctx == PropertyContext::Subscribe {
        p.subscription_identifiers.truncate(1);
    }
}

fn props(v: ProtocolVersion, ctx: PropertyContext) -> BoxedStrategy<Properties> {
    if v.is_v5() {
        arb_properties(ctx).boxed()
    } else {
        Just(Properties::default()).boxed()
    }
}

fn reasons(ctx: ReasonContext) -> impl Strategy<Value = ReasonCode> {
    let allowed: Vec<ReasonCode> = (0..=255u8)
        .filter_map(ReasonCode::from_u8)
        .filter(|r| r.allowed_in(ctx))
        .collect();
    proptest::sample::select(allowed)
}

fn arb_ack(v: ProtocolVersion, ctx: ReasonContext) -> impl Strategy<Value = Ack> {
    let reason = if v.is_v5() {
        reasons(ctx).boxed()
    } else {
        Just(ReasonCode::Success).boxed()
    };
    (1u16.., reason, props(v, PropertyContext::PubAck)).prop_map(
        |(packet_id, reason, properties)| Ack {
            packet_id,
            reason,
            properties,
        },
    )
}

pub(super) fn arb_packet(v: ProtocolVersion) -> BoxedStrategy<Packet> {
    let v5 = v.is_v5();
    let connect = (
        any::<bool>(),
        any::<u16>(),
        props(v, PropertyContext::Connect),
        arb_string(),
        opt((
            arb_string(),
            arb_bytes(),
            arb_qos(),
            any::<bool>(),
            props(v, PropertyContext::Will),
        )),
        opt(arb_string()),
        opt(arb_bytes()),
    )
        .prop_map(
            move |(clean_start, keep_alive, properties, client_id, will, username, password)| {
                let password = if v5 || username.is_some() {
                    password
                } else {
                    None
                };
                Packet::Connect(Box::new(Connect {
                    protocol: v,
                    clean_start,
                    keep_alive,
                    properties,
                    client_id,
                    will: will.map(|(topic, payload, qos, retain, properties)| LastWill {
                        topic,
                        payload,
                        qos,
                        retain,
                        properties,
                    }),
                    username,
                    password,
                }))
            },
        );
    let connack_reason = if v5 {
        reasons(ReasonContext::ConnAck).boxed()
    } else {
        (0u8..=5)
            .prop_map(|c| ReasonCode::from_v3_connack(c).unwrap())
            .boxed()
    };
    let connack = (
        any::<bool>(),
        connack_reason,
        props(v, PropertyContext::ConnAck),
    )
        .prop_map(|(session_present, reason, properties)| {
            Packet::ConnAck(ConnAck {
                session_present,
                reason,
                properties,
            })
        });
    let publish = (
        arb_qos(),
        any::<bool>(),
        any::<bool>(),
        arb_string(),
        1u16..,
        props(v, PropertyContext::Publish),
        arb_bytes(),
    )
        .prop_map(|(qos, dup, retain, topic, id, properties, payload)| {
            let q0 = qos == QoS::AtMostOnce;
            Packet::Publish(Publish {
                dup: dup && !q0,
                qos,
                retain,
                topic,
                packet_id: if q0 { 0 } else { id },
                properties,
                payload,
            })
        });
    let sub_opts =
        (arb_qos(), any::<bool>(), any::<bool>(), 0u8..3).prop_map(move |(qos, nl, rap, rh)| {
            SubscriptionOptions::from_byte(
                SubscriptionOptions {
                    qos,
                    no_local: nl,
                    retain_as_published: rap,
                    retain_handling: [
                        RetainHandling::SendAtSubscribe,
                        RetainHandling::SendAtSubscribeIfNew,
                        RetainHandling::DoNotSend,
                    ][usize::from(rh)],
                }
                .to_byte(v),
                v,
            )
            .unwrap()
        });
    let subscribe = (
        1u16..,
        props(v, PropertyContext::Subscribe),
        proptest::collection::vec((arb_string(), sub_opts), 1..4),
    )
        .prop_map(|(packet_id, properties, filters)| {
            Packet::Subscribe(Subscribe {
                packet_id,
                properties,
                filters,
            })
        });
    let suback_reason = if v5 {
        reasons(ReasonContext::SubAck).boxed()
    } else {
        prop_oneof![Just(0u8), Just(1), Just(2), Just(0x80)]
            .prop_map(|c| ReasonCode::from_v3_suback(c).unwrap())
            .boxed()
    };
    let suback = (
        any::<u16>(),
        props(v, PropertyContext::SubAck),
        proptest::collection::vec(suback_reason, 1..4),
    )
        .prop_map(|(packet_id, properties, reasons)| {
            Packet::SubAck(SubAck {
                packet_id,
                properties,
                reasons,
            })
        });
    let unsubscribe = (
        1u16..,
        props(v, PropertyContext::Unsubscribe),
        proptest::collection::vec(arb_string(), 1..4),
    )
        .prop_map(|(packet_id, properties, filters)| {
            Packet::Unsubscribe(Unsubscribe {
                packet_id,
                properties,
                filters,
            })
        });
    let unsuback_reasons = if v5 {
        proptest::collection::vec(reasons(ReasonContext::UnsubAck), 1..4).boxed()
    } else {
        Just(Vec::new()).boxed()
    };
    let unsuback = (
        any::<u16>(),
        props(v, PropertyContext::UnsubAck),
        unsuback_reasons,
    )
        .prop_map(|(packet_id, properties, reasons)| {
            Packet::UnsubAck(UnsubAck {
                packet_id,
                properties,
                reasons,
            })
        });
    let disconnect_reason = if v5 {
        reasons(ReasonContext::Disconnect).boxed()
    } else {
        Just(ReasonCode::Success).boxed()
    };
    let disconnect = (disconnect_reason, props(v, PropertyContext::Disconnect))
        .prop_map(|(reason, properties)| Packet::Disconnect(Disconnect { reason, properties }));
    let mut all = vec![
        connect.boxed(),
        connack.boxed(),
        publish.boxed(),
        arb_ack(v, ReasonContext::PubAckPubRec)
            .prop_map(Packet::PubAck)
            .boxed(),
        arb_ack(v, ReasonContext::PubAckPubRec)
            .prop_map(Packet::PubRec)
            .boxed(),
        arb_ack(v, ReasonContext::PubRelPubComp)
            .prop_map(Packet::PubRel)
            .boxed(),
        arb_ack(v, ReasonContext::PubRelPubComp)
            .prop_map(Packet::PubComp)
            .boxed(),
        subscribe.boxed(),
        suback.boxed(),
        unsubscribe.boxed(),
        unsuback.boxed(),
        Just(Packet::PingReq).boxed(),
        Just(Packet::PingResp).boxed(),
        disconnect.boxed(),
    ];
    if v5 {
        let auth = (
            reasons(ReasonContext::Auth),
            props(v, PropertyContext::Auth),
        )
            .prop_map(|(reason, properties)| Packet::Auth(Auth { reason, properties }));
        all.push(auth.boxed());
    }
    proptest::strategy::Union::new(all).boxed()
}

fn arb_versioned_packet() -> impl Strategy<Value = (ProtocolVersion, Packet)> {
    prop_oneof![
        Just(ProtocolVersion::V3_1),
        Just(ProtocolVersion::V3_1_1),
        Just(ProtocolVersion::V5)
    ]
    .prop_flat_map(|v| arb_packet(v).prop_map(move |p| (v, p)))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_packets_round_trip((v, p) in arb_versioned_packet()) {
        let bytes = encode(&p, v);
        prop_assert_eq!(decode(&bytes, v).unwrap(), p);
    }

    /// Structured fuzzing: valid packets with a few bytes overwritten must never panic the
    /// decoder, and whatever still decodes must round-trip (see `fuzz_decode`).
    #[test]
    fn mutated_packets_never_panic(
        (v, p) in arb_versioned_packet(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut bytes = encode(&p, v);
        for (at, b) in edits {
            let i = at.index(bytes.len());
            bytes[i] = b;
        }
        fuzz_decode(&bytes);
    }

    #[test]
    fn every_prefix_of_a_packet_asks_for_more((v, p) in arb_versioned_packet()) {
        let bytes = encode(&p, v);
        for cut in 0..bytes.len() {
            let buf = BytesMut::from(&bytes[..cut]);
            prop_assert_eq!(check(&buf, MAX), Ok(None));
        }
    }

    #[test]
    fn a_frame_over_the_limit_is_rejected((v, p) in arb_versioned_packet()) {
        let bytes = encode(&p, v);
        let buf = BytesMut::from(&bytes[..2.min(bytes.len())]);
        let limited = check(&buf, bytes.len() - 1);
        let too_large = matches!(limited, Err(CodecError::PacketTooLarge { .. }));
        // With only 2 bytes in, the length is known when it fits in one varint byte.
        prop_assert!(too_large || bytes[1] & 0x80 != 0);
    }
}
