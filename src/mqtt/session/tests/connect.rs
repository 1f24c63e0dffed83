//! CONNECT validation, keep alive, timeouts, Will, takeover and closing.

use super::*;
use crate::mqtt::codec::{CodecError, Disconnect, LastWill, PropertyValues};

#[test]
fn v311_connect_gets_connack_and_open_session_carries_the_client() {
    let mut h = Harness::new(SessionConfig::default());
    h.packet(Packet::Connect(connect_packet(
        ProtocolVersion::V3_1_1,
        "dev-1",
        false,
        30,
    )));
    assert!(h.conn.is_awaiting_session());
    assert!(
        h.recv().is_empty(),
        "no CONNACK before the broker attaches the session"
    );
    let actions = h.actions();
    let [Action::OpenSession {
        client,
        clean_start,
    }] = actions.as_slice()
    else {
        panic!("{actions:?}")
    };
    assert_eq!((client.client_id.as_str(), *clean_start), ("dev-1", false));
    h.conn.attach_session(None, h.now);
    let out = h.recv();
    let [Packet::ConnAck(a)] = out.as_slice() else {
        panic!("{out:?}")
    };
    assert_eq!((a.reason, a.session_present), (ReasonCode::Success, false));
    assert!(h.conn.is_connected());
}

#[test]
fn first_packet_other_than_connect_closes_silently() {
    let mut h = Harness::new(SessionConfig::default());
    h.packet(Packet::PingReq);
    assert!(h.conn.is_closed());
    assert!(h.recv().is_empty());
    let (reason, session, ..) = h.closed();
    assert_eq!(reason, ReasonCode::ProtocolError);
    assert!(session.is_none());
}

#[test]
fn connect_timeout_closes_a_silent_connection() {
    let mut h = Harness::new(SessionConfig::default());
    assert_eq!(h.conn.poll_timeout(), Some(h.now + Duration::from_secs(15)));
    h.advance(Duration::from_secs(14));
    assert!(!h.conn.is_closed());
    h.advance(Duration::from_secs(1));
    assert!(h.conn.is_closed());
    assert_eq!(h.closed().0, ReasonCode::MaximumConnectTime);
}

#[test]
fn unsupported_protocol_level_gets_return_code_1() {
    let mut h = Harness::new(SessionConfig::default());
    h.conn
        .handle_decode_error(&CodecError::UnsupportedProtocolVersion(6), h.now);
    let bytes = h.conn.poll_transmit(h.now).unwrap();
    assert_eq!(&bytes[..], [0x20, 0x02, 0x00, 0x01]);
    assert!(h.conn.is_closed());
}

#[test]
fn client_id_rules_per_version() {
    // v5 empty id: assigned, and returned in CONNACK.
    let mut h = Harness::new(SessionConfig::default());
    let out = h.connect_with(connect_packet(ProtocolVersion::V5, "", true, 0), None);
    let [Packet::ConnAck(a)] = out.as_slice() else {
        panic!("{out:?}")
    };
    let assigned = a.properties.assigned_client_identifier.clone().unwrap();
    assert!(assigned.as_str().starts_with("beamq-") && assigned.len() > 6);
    assert_eq!(h.conn.client().unwrap().client_id, assigned);

    // 3.1.1 empty id with Clean Session: accepted (id assigned internally).
    let mut h = Harness::new(SessionConfig::default());
    let out = h.connect_with(connect_packet(ProtocolVersion::V3_1_1, "", true, 0), None);
    assert!(matches!(&out[..], [Packet::ConnAck(a)] if a.reason == ReasonCode::Success));

    // 3.1.1 empty id without Clean Session, 3.1 empty id, 3.1 id over 23 chars: refused (rc 2).
    for (v, id, clean) in [
        (ProtocolVersion::V3_1_1, "", false),
        (ProtocolVersion::V3_1, "", true),
        (ProtocolVersion::V3_1, "abcdefghijklmnopqrstuvwx", true),
    ] {
        let mut h = Harness::new(SessionConfig::default());
        h.packet(Packet::Connect(connect_packet(v, id, clean, 0)));
        let out = h.recv();
        let [Packet::ConnAck(a)] = out.as_slice() else {
            panic!("{out:?}")
        };
        assert_eq!(
            a.reason,
            ReasonCode::ClientIdentifierNotValid,
            "{v:?} {id:?}"
        );
        assert!(h.conn.is_closed());
        assert!(h.closed().1.is_none());
    }
}

#[test]
fn credentials_go_through_the_auth_hook() {
    for (v, pw, expect) in [
        (ProtocolVersion::V3_1_1, &b"p"[..], ReasonCode::Success),
        (
            ProtocolVersion::V3_1_1,
            b"wrong",
            ReasonCode::BadUserNameOrPassword,
        ),
        (
            ProtocolVersion::V5,
            b"wrong",
            ReasonCode::BadUserNameOrPassword,
        ),
    ] {
        let mut h = Harness::new(SessionConfig::default());
        let mut c = connect_packet(v, "c", true, 0);
        c.username = Some(s("u"));
        c.password = Some(Bytes::copy_from_slice(pw));
        h.packet(Packet::Connect(c));
        if expect == ReasonCode::Success {
            assert!(h.conn.is_awaiting_session());
            continue;
        }
        let out = h.recv();
        let [Packet::ConnAck(a)] = out.as_slice() else {
            panic!("{out:?}")
        };
        // The 3.1.1 CONNACK carries return code 4, decoded back to the same reason.
        assert_eq!(a.reason, expect);
        assert!(h.conn.is_closed());
    }
}

#[test]
fn authentication_method_is_refused_with_bad_authentication_method() {
    let mut h = Harness::new(SessionConfig::default());
    let mut c = connect_packet(ProtocolVersion::V5, "c", true, 0);
    c.properties.authentication_method = Some(s("SCRAM-SHA-1"));
    h.packet(Packet::Connect(c));
    let out = h.recv();
    assert!(
        matches!(&out[..], [Packet::ConnAck(a)] if a.reason == ReasonCode::BadAuthenticationMethod)
    );
    assert!(h.conn.is_closed());
}

#[test]
fn keep_alive_is_one_and_a_half_intervals_and_any_packet_resets_it() {
    let mut h = Harness::new(SessionConfig::default());
    let mut c = connect_packet(ProtocolVersion::V5, "c", true, 10);
    c.will = Some(LastWill {
        topic: s("will/t"),
        payload: Bytes::from_static(b"gone"),
        qos: QoS::AtLeastOnce,
        retain: false,
        properties: Properties::default(),
    });
    h.connect_with(c, None);
    h.advance(Duration::from_secs(14));
    h.packet(Packet::PingReq);
    assert_eq!(h.recv(), vec![Packet::PingResp]);
    h.advance(Duration::from_millis(14_900));
    assert!(h.conn.is_connected(), "deadline restarted by PINGREQ");
    h.advance(Duration::from_millis(100));
    assert!(h.conn.is_closed());
    let out = h.recv();
    assert!(
        matches!(&out[..], [Packet::Disconnect(d)] if d.reason == ReasonCode::KeepAliveTimeout)
    );
    let (reason, _, _, rest) = h.closed();
    assert_eq!(reason, ReasonCode::KeepAliveTimeout);
    assert!(
        matches!(&rest[..], [Action::Will { message, delay }] if message.topic == "will/t" && delay.is_zero())
    );
}

#[test]
fn zero_keep_alive_never_times_out() {
    let mut h = Harness::connect(ProtocolVersion::V3_1_1);
    assert_eq!(h.conn.poll_timeout(), None);
    h.advance(Duration::from_secs(100_000));
    assert!(h.conn.is_connected());
}

#[test]
fn server_keep_alive_overrides_a_v5_client() {
    let mut h = Harness::new(SessionConfig {
        server_keep_alive: Some(20),
        ..Default::default()
    });
    let out = h.connect_with(connect_packet(ProtocolVersion::V5, "c", true, 600), None);
    let [Packet::ConnAck(a)] = out.as_slice() else {
        panic!("{out:?}")
    };
    assert_eq!(a.properties.server_keep_alive, Some(20));
    h.advance(Duration::from_secs(30));
    assert!(h.conn.is_closed(), "held to 1.5 x 20 s, not 600 s");
}

#[test]
fn will_fires_on_abnormal_close_not_on_normal_disconnect() {
    let will = || LastWill {
        topic: s("w"),
        payload: Bytes::from_static(b"x"),
        qos: QoS::AtMostOnce,
        retain: true,
        properties: Properties::default(),
    };
    // Normal DISCONNECT: Will discarded.
    let mut h = Harness::new(SessionConfig::default());
    let mut c = connect_packet(ProtocolVersion::V5, "c", true, 0);
    c.will = Some(will());
    h.connect_with(c.clone(), None);
    h.packet(Packet::Disconnect(Disconnect::default()));
    let (_, _, _, rest) = h.closed();
    assert!(rest.is_empty(), "{rest:?}");
    // DISCONNECT 0x04: Will sent.
    let mut h = Harness::new(SessionConfig::default());
    h.connect_with(c.clone(), None);
    h.packet(Packet::Disconnect(Disconnect::new(
        ReasonCode::DisconnectWithWillMessage,
    )));
    let (_, _, _, rest) = h.closed();
    assert!(matches!(&rest[..], [Action::Will { message, .. }] if message.retain));
    // Socket closed: Will sent.
    let mut h = Harness::new(SessionConfig::default());
    h.connect_with(c, None);
    h.conn.handle_eof(h.now);
    assert!(matches!(&h.closed().3[..], [Action::Will { .. }]));
}

#[test]
fn will_delay_is_capped_by_session_expiry() {
    let mut h = Harness::new(SessionConfig::default());
    let mut c = connect_packet(ProtocolVersion::V5, "c", false, 0);
    c.properties.session_expiry_interval = Some(30);
    let props: Properties = PropertyValues {
        will_delay_interval: Some(120),
        message_expiry_interval: Some(10),
        ..Default::default()
    }
    .into();
    c.will = Some(LastWill {
        topic: s("w"),
        payload: Bytes::new(),
        qos: QoS::AtMostOnce,
        retain: false,
        properties: props,
    });
    h.connect_with(c, None);
    h.conn.handle_eof(h.now);
    let (_, session, expiry, rest) = h.closed();
    assert!(session.is_some());
    assert_eq!(expiry, SessionExpiry::After(Duration::from_secs(30)));
    let [Action::Will { message, delay }] = &rest[..] else {
        panic!("{rest:?}")
    };
    assert_eq!(*delay, Duration::from_secs(30));
    // Message expiry counts from publication, i.e. after the delay.
    assert_eq!(message.expires_at, Some(h.now + Duration::from_secs(40)));
}

#[test]
fn will_topic_is_validated() {
    let mut h = Harness::new(SessionConfig::default());
    let mut c = connect_packet(ProtocolVersion::V5, "c", true, 0);
    c.will = Some(LastWill {
        topic: s("a/+"),
        payload: Bytes::new(),
        qos: QoS::AtMostOnce,
        retain: false,
        properties: Properties::default(),
    });
    h.packet(Packet::Connect(c));
    assert!(
        matches!(&h.recv()[..], [Packet::ConnAck(a)] if a.reason == ReasonCode::TopicNameInvalid)
    );
}

#[test]
fn second_connect_and_server_only_packets_are_protocol_errors() {
    let mut h = Harness::connect(ProtocolVersion::V5);
    h.packet(Packet::Connect(connect_packet(
        ProtocolVersion::V5,
        "c1",
        true,
        0,
    )));
    assert!(
        matches!(&h.recv()[..], [Packet::Disconnect(d)] if d.reason == ReasonCode::ProtocolError)
    );
    assert!(h.conn.is_closed());
    let mut h = Harness::connect(ProtocolVersion::V3_1_1);
    h.packet(Packet::PingResp);
    assert!(
        h.recv().is_empty(),
        "3.1.1 has no DISCONNECT from the server"
    );
    assert!(h.conn.is_closed());
}

#[test]
fn decode_error_after_connect_sends_its_reason_code() {
    let mut h = Harness::connect(ProtocolVersion::V5);
    h.conn
        .handle_decode_error(&CodecError::PacketTooLarge { size: 10, max: 5 }, h.now);
    assert!(
        matches!(&h.recv()[..], [Packet::Disconnect(d)] if d.reason == ReasonCode::PacketTooLarge)
    );
    assert_eq!(h.closed().0, ReasonCode::PacketTooLarge);
}

#[test]
fn takeover_sends_session_taken_over_and_hands_back_the_session() {
    let mut h = Harness::connect(ProtocolVersion::V5);
    h.subscribe(subscribe(1, "a/b", QoS::AtLeastOnce));
    h.conn.takeover(h.now);
    assert!(
        matches!(&h.recv()[..], [Packet::Disconnect(d)] if d.reason == ReasonCode::SessionTakenOver)
    );
    let (reason, session, ..) = h.closed();
    assert_eq!(reason, ReasonCode::SessionTakenOver);
    assert_eq!(session.unwrap().subscriptions().count(), 1);
}

#[test]
fn auth_packet_is_rejected_cleanly() {
    let mut h = Harness::connect(ProtocolVersion::V5);
    h.packet(Packet::Auth(crate::mqtt::codec::Auth::default()));
    assert!(
        matches!(&h.recv()[..], [Packet::Disconnect(d)] if d.reason == ReasonCode::ProtocolError)
    );
    assert!(h.conn.is_closed());
}

#[test]
fn packets_pipelined_behind_connect_are_handled_after_connack() {
    let mut h = Harness::new(SessionConfig::default());
    h.packet(Packet::Connect(connect_packet(
        ProtocolVersion::V5,
        "c",
        true,
        0,
    )));
    h.packet(Packet::Subscribe(subscribe(1, "t", QoS::AtMostOnce)));
    h.packet(Packet::PingReq);
    assert!(h.recv().is_empty());
    assert!(matches!(&h.actions()[..], [Action::OpenSession { .. }]));
    h.conn.attach_session(None, h.now);
    let out = h.recv();
    assert!(
        matches!(
            &out[..],
            [Packet::ConnAck(_), Packet::SubAck(_), Packet::PingResp]
        ),
        "{out:?}"
    );
    assert!(matches!(&h.actions()[..], [Action::Subscribe { .. }]));
}

#[test]
fn too_many_packets_before_connack_close_the_connection() {
    let mut h = Harness::new(SessionConfig::default());
    h.packet(Packet::Connect(connect_packet(
        ProtocolVersion::V5,
        "c",
        true,
        0,
    )));
    for _ in 0..64 {
        h.packet(Packet::PingReq);
    }
    assert!(!h.conn.is_closed());
    h.packet(Packet::PingReq);
    assert!(h.conn.is_closed());
}
