//! MQTT 5 features: topic aliases both ways, subscription identifiers, No Local, Retain As
//! Published, message expiry, maximum packet size, request/response and user properties.

use super::*;

fn connect_v5_with(h: &mut Harness, f: impl FnOnce(&mut Properties)) -> Vec<Packet> {
    let mut c = connect_packet(ProtocolVersion::V5, "c1", true, 0);
    f(&mut c.properties);
    h.connect_with(c, None)
}

fn aliased(topic: &str, alias: u16) -> Publish {
    let mut p = publish(topic, QoS::AtMostOnce, 0, b"x");
    p.properties.topic_alias = Some(alias);
    p
}

fn routed_topics(h: &mut Harness) -> Vec<String> {
    h.actions()
        .iter()
        .filter_map(|a| match a {
            Action::Publish(m) => Some(m.topic.to_string()),
            _ => None,
        })
        .collect()
}

#[test]
fn inbound_topic_aliases() {
    let mut h = Harness::new(SessionConfig {
        topic_alias_maximum: 4,
        ..Default::default()
    });
    let out = connect_v5_with(&mut h, |_| {});
    assert!(
        matches!(&out[..], [Packet::ConnAck(a)] if a.properties.topic_alias_maximum == Some(4))
    );
    h.packet(Packet::Publish(aliased("a/b", 1)));
    h.packet(Packet::Publish(aliased("", 1)));
    h.packet(Packet::Publish(aliased("c", 1)));
    h.packet(Packet::Publish(aliased("", 1)));
    assert_eq!(routed_topics(&mut h), ["a/b", "a/b", "c", "c"]);
    // Alias 5 > maximum 4: Topic Alias invalid.
    h.packet(Packet::Publish(aliased("d", 5)));
    assert!(
        matches!(&h.recv()[..], [Packet::Disconnect(d)] if d.reason == ReasonCode::TopicAliasInvalid)
    );

    let mut h = Harness::connect(ProtocolVersion::V5);
    h.packet(Packet::Publish(aliased("", 2)));
    assert!(
        matches!(&h.recv()[..], [Packet::Disconnect(d)] if d.reason == ReasonCode::ProtocolError)
    );
    let mut h = Harness::connect(ProtocolVersion::V5);
    h.packet(Packet::Publish(aliased("t", 0)));
    assert!(
        matches!(&h.recv()[..], [Packet::Disconnect(d)] if d.reason == ReasonCode::TopicAliasInvalid)
    );
}

#[test]
fn outbound_topic_aliases_within_the_client_limit() {
    let mut h = Harness::new(SessionConfig::default());
    connect_v5_with(&mut h, |p| p.topic_alias_maximum = Some(1));
    h.subscribe(subscribe(1, "#", QoS::AtMostOnce));
    for t in ["x/1", "x/1", "x/2"] {
        h.deliver(&message(t, QoS::AtMostOnce, b""), "#");
    }
    let out = h.recv();
    let p = publishes(&out);
    assert_eq!(
        (p[0].topic.as_str(), p[0].properties.topic_alias),
        ("x/1", Some(1))
    );
    assert_eq!(
        (p[1].topic.as_str(), p[1].properties.topic_alias),
        ("", Some(1))
    );
    assert_eq!(
        (p[2].topic.as_str(), p[2].properties.topic_alias),
        ("x/2", None)
    );
    // Without a client limit, no aliases at all.
    let mut h = Harness::connect(ProtocolVersion::V5);
    h.subscribe(subscribe(1, "#", QoS::AtMostOnce));
    h.deliver(&message("x/1", QoS::AtMostOnce, b""), "#");
    assert_eq!(publishes(&h.recv())[0].properties.topic_alias, None);
}

#[test]
fn subscription_identifier_is_returned_with_matching_messages() {
    let mut h = Harness::connect(ProtocolVersion::V5);
    let mut sub = subscribe(1, "a/+", QoS::AtMostOnce);
    sub.properties.subscription_identifiers = vec![42];
    h.subscribe(sub);
    h.deliver(&message("a/b", QoS::AtMostOnce, b""), "a/+");
    assert_eq!(
        publishes(&h.recv())[0].properties.subscription_identifiers,
        [42]
    );
    // A client may not send one.
    let mut p = publish("a/b", QoS::AtMostOnce, 0, b"");
    p.properties.subscription_identifiers = vec![1];
    h.packet(Packet::Publish(p));
    assert!(
        matches!(&h.recv()[..], [Packet::Disconnect(d)] if d.reason == ReasonCode::ProtocolError)
    );
}

#[test]
fn no_local_suppresses_own_messages() {
    let mut h = Harness::connect(ProtocolVersion::V5);
    let mut sub = subscribe(1, "t", QoS::AtMostOnce);
    sub.filters[0].1.no_local = true;
    h.subscribe(sub);
    let mut own = (*message("t", QoS::AtMostOnce, b"mine")).clone();
    own.publisher = s("c1");
    h.deliver(&Arc::new(own), "t");
    h.deliver(&message("t", QoS::AtMostOnce, b"theirs"), "t");
    let out = h.recv();
    let p = publishes(&out);
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].payload, &b"theirs"[..]);
    // No Local on a shared subscription is a protocol error.
    let mut sub = subscribe(2, "$share/g/t", QoS::AtMostOnce);
    sub.filters[0].1.no_local = true;
    h.subscribe(sub);
    assert!(h.conn.is_closed());
}

#[test]
fn retain_flag_rules_for_deliveries() {
    let mut h = Harness::connect(ProtocolVersion::V5);
    let mut sub = subscribe(1, "rap", QoS::AtMostOnce);
    sub.filters[0].1.retain_as_published = true;
    h.subscribe(sub);
    h.subscribe(subscribe(2, "plain", QoS::AtMostOnce));
    let retained = |t: &str| {
        let mut m = (*message(t, QoS::AtMostOnce, b"")).clone();
        m.retain = true;
        Arc::new(m)
    };
    h.deliver(&retained("rap"), "rap");
    h.deliver(&retained("plain"), "plain");
    h.conn.deliver(
        &Delivery {
            message: retained("plain"),
            filter: s("plain"),
            from_retained: true,
        },
        h.now,
    );
    let out = h.recv();
    let flags: Vec<_> = publishes(&out).iter().map(|p| p.retain).collect();
    assert_eq!(flags, [true, false, true]);
}

#[test]
fn message_expiry_counts_down_and_expired_messages_are_dropped() {
    let mut h = Harness::new(SessionConfig::default());
    connect_v5_with(&mut h, |p| p.receive_maximum = Some(1));
    h.subscribe(subscribe(1, "t", QoS::AtLeastOnce));
    let expiring = |secs: u64, h: &Harness| {
        let mut m = (*message("t", QoS::AtLeastOnce, b"")).clone();
        m.expires_at = Some(h.now + Duration::from_secs(secs));
        Arc::new(m)
    };
    let first = expiring(10, &h);
    let second = expiring(5, &h);
    h.now += Duration::from_secs(4);
    h.deliver(&first, "t");
    h.deliver(&second, "t");
    let out = h.recv();
    let p = publishes(&out);
    assert_eq!(p.len(), 1, "window of 1: the second waits");
    assert_eq!(p[0].properties.message_expiry_interval, Some(6));
    // The queued one expires before the window opens.
    h.now += Duration::from_secs(2);
    h.packet(Packet::PubAck(ack(p[0].packet_id)));
    assert!(publishes(&h.recv()).is_empty());
    assert_eq!(h.conn.session().unwrap().queued().count(), 0);
}

#[test]
fn messages_over_the_client_maximum_packet_size_are_discarded() {
    let mut h = Harness::new(SessionConfig::default());
    connect_v5_with(&mut h, |p| p.maximum_packet_size = Some(40));
    h.subscribe(subscribe(1, "t", QoS::AtLeastOnce));
    h.deliver(&message("t", QoS::AtLeastOnce, &[0u8; 64]), "t");
    h.deliver(&message("t", QoS::AtLeastOnce, b"small"), "t");
    let out = h.recv();
    let p = publishes(&out);
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].payload, &b"small"[..]);
    assert_eq!(
        h.conn.session().unwrap().inflight().count(),
        1,
        "the big one is not inflight"
    );
}

#[test]
fn request_response_and_user_properties_pass_through() {
    let mut h = Harness::new(SessionConfig {
        response_information: Some("resp/".into()),
        ..Default::default()
    });
    let out = connect_v5_with(&mut h, |p| p.request_response_information = Some(true));
    assert!(
        matches!(&out[..], [Packet::ConnAck(a)] if a.properties.response_information.as_ref().is_some_and(|r| r == "resp/"))
    );
    h.subscribe(subscribe(1, "req", QoS::AtMostOnce));
    let mut p = publish("req", QoS::AtMostOnce, 0, b"{}");
    p.properties.response_topic = Some(s("resp/c1"));
    p.properties.correlation_data = Some(Bytes::from_static(b"\x01\x02"));
    p.properties.content_type = Some(s("application/json"));
    p.properties.payload_format_indicator = Some(true);
    p.properties.user_properties = vec![(s("k"), s("v"))];
    h.packet(Packet::Publish(p));
    let actions = h.actions();
    let Some(Action::Publish(m)) = actions.first() else {
        panic!("{actions:?}")
    };
    h.deliver(m, "req");
    let out = h.recv();
    let got = &publishes(&out)[0].properties;
    assert_eq!(got.response_topic.as_ref().unwrap(), "resp/c1");
    assert_eq!(got.correlation_data.as_deref(), Some(&b"\x01\x02"[..]));
    assert_eq!(got.content_type.as_ref().unwrap(), "application/json");
    assert_eq!(got.payload_format_indicator, Some(true));
    assert_eq!(got.user_properties, [(s("k"), s("v"))]);
}

#[test]
fn payload_format_violation_is_refused_in_the_ack() {
    let mut h = Harness::connect(ProtocolVersion::V5);
    let mut p = publish("t", QoS::AtLeastOnce, 5, b"\xff\xfe");
    p.properties.payload_format_indicator = Some(true);
    h.packet(Packet::Publish(p));
    assert!(
        matches!(&h.recv()[..], [Packet::PubAck(a)] if a.reason == ReasonCode::PayloadFormatInvalid)
    );
    assert!(h.actions().is_empty());
}

#[test]
fn maximum_qos_and_retain_availability_are_advertised_and_enforced() {
    let mut h = Harness::new(SessionConfig {
        maximum_qos: QoS::AtLeastOnce,
        retain_available: false,
        ..Default::default()
    });
    let out = connect_v5_with(&mut h, |_| {});
    let [Packet::ConnAck(a)] = out.as_slice() else {
        panic!("{out:?}")
    };
    assert_eq!(a.properties.maximum_qos, Some(QoS::AtLeastOnce));
    assert_eq!(a.properties.retain_available, Some(false));
    let mut r = publish("t", QoS::AtMostOnce, 0, b"");
    r.retain = true;
    h.packet(Packet::Publish(r));
    assert!(
        matches!(&h.recv()[..], [Packet::Disconnect(d)] if d.reason == ReasonCode::RetainNotSupported)
    );

    let mut h = Harness::new(SessionConfig {
        maximum_qos: QoS::AtLeastOnce,
        ..Default::default()
    });
    connect_v5_with(&mut h, |_| {});
    h.packet(Packet::Publish(publish("t", QoS::ExactlyOnce, 1, b"")));
    assert!(
        matches!(&h.recv()[..], [Packet::Disconnect(d)] if d.reason == ReasonCode::QosNotSupported)
    );
}
