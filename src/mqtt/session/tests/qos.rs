//! QoS 0/1/2 in both directions, the inflight window, the queue, redelivery, session resume and
//! expiry, subscriptions, ACL and backpressure.

use super::*;
use crate::mqtt::codec::{Disconnect, Unsubscribe};

fn published(actions: &[Action]) -> Vec<&Arc<Message>> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Publish(m) => Some(m),
            _ => None,
        })
        .collect()
}

#[test]
fn inbound_qos0_and_qos1() {
    let mut h = Harness::connect(ProtocolVersion::V3_1_1);
    h.packet(Packet::Publish(publish("a/b", QoS::AtMostOnce, 0, b"zero")));
    assert!(h.recv().is_empty());
    let actions = h.actions();
    assert_eq!(published(&actions)[0].payload, &b"zero"[..]);
    h.packet(Packet::Publish(publish("a/b", QoS::AtLeastOnce, 7, b"one")));
    assert_eq!(h.recv(), vec![Packet::PubAck(ack(7))]);
    let actions = h.actions();
    let m = published(&actions)[0];
    assert_eq!((m.qos, m.publisher.as_str()), (QoS::AtLeastOnce, "c1"));
}

#[test]
fn inbound_qos2_routes_once_and_releases_on_pubrel() {
    let mut h = Harness::connect(ProtocolVersion::V5);
    h.packet(Packet::Publish(publish("a", QoS::ExactlyOnce, 9, b"two")));
    assert_eq!(h.recv(), vec![Packet::PubRec(ack(9))]);
    assert_eq!(published(&h.actions()).len(), 1);
    // The client re-sends (DUP): PUBREC again, not routed twice.
    let mut again = publish("a", QoS::ExactlyOnce, 9, b"two");
    again.dup = true;
    h.packet(Packet::Publish(again));
    assert_eq!(h.recv(), vec![Packet::PubRec(ack(9))]);
    assert!(published(&h.actions()).is_empty());
    h.packet(Packet::PubRel(ack(9)));
    assert_eq!(h.recv(), vec![Packet::PubComp(ack(9))]);
    // Unknown PUBREL: PUBCOMP 0x92.
    h.packet(Packet::PubRel(ack(9)));
    let out = h.recv();
    assert!(
        matches!(&out[..], [Packet::PubComp(a)] if a.reason == ReasonCode::PacketIdentifierNotFound)
    );
}

#[test]
fn inbound_receive_maximum_is_enforced() {
    let mut h = Harness::new(SessionConfig {
        receive_maximum: 2,
        ..Default::default()
    });
    let out = h.connect_with(connect_packet(ProtocolVersion::V5, "c", true, 0), None);
    assert!(matches!(&out[..], [Packet::ConnAck(a)] if a.properties.receive_maximum == Some(2)));
    for id in 1..=2 {
        h.packet(Packet::Publish(publish("a", QoS::ExactlyOnce, id, b"")));
    }
    assert_eq!(h.recv().len(), 2);
    h.packet(Packet::Publish(publish("a", QoS::ExactlyOnce, 3, b"")));
    assert!(
        matches!(&h.recv()[..], [Packet::Disconnect(d)] if d.reason == ReasonCode::ReceiveMaximumExceeded)
    );
    assert!(h.conn.is_closed());
}

#[test]
fn retained_publish_asks_the_broker_to_store_it() {
    let mut h = Harness::connect(ProtocolVersion::V3_1_1);
    let mut p = publish("r", QoS::AtMostOnce, 0, b"");
    p.retain = true;
    h.packet(Packet::Publish(p));
    let actions = h.actions();
    assert!(
        matches!(&actions[..], [Action::Retain(m), Action::Publish(_)] if m.retain && m.payload.is_empty())
    );
}

#[test]
fn invalid_topic_name_closes() {
    let mut h = Harness::connect(ProtocolVersion::V5);
    h.packet(Packet::Publish(publish("a/#", QoS::AtMostOnce, 0, b"")));
    assert!(
        matches!(&h.recv()[..], [Packet::Disconnect(d)] if d.reason == ReasonCode::TopicNameInvalid)
    );
}

#[test]
fn subscribe_grants_qos_reports_bad_filters_and_retain_handling() {
    let mut h = Harness::new(SessionConfig {
        maximum_qos: QoS::AtLeastOnce,
        ..Default::default()
    });
    h.connect_with(connect_packet(ProtocolVersion::V5, "c", true, 0), None);
    let sub = Subscribe {
        packet_id: 3,
        properties: Properties::default(),
        filters: vec![
            (
                s("a/+"),
                options(QoS::ExactlyOnce, RetainHandling::SendAtSubscribeIfNew),
            ),
            (
                s("a/#/b"),
                options(QoS::AtMostOnce, RetainHandling::SendAtSubscribe),
            ),
            (
                s("$share/g/x"),
                options(QoS::AtMostOnce, RetainHandling::SendAtSubscribe),
            ),
            (
                s("deny/x"),
                options(QoS::AtMostOnce, RetainHandling::SendAtSubscribe),
            ),
        ],
    };
    let (out, actions) = h.subscribe(sub.clone());
    let [Packet::SubAck(a)] = out.as_slice() else {
        panic!("{out:?}")
    };
    assert_eq!(a.packet_id, 3);
    assert_eq!(
        a.reasons,
        [
            ReasonCode::GrantedQos1,
            ReasonCode::TopicFilterInvalid,
            ReasonCode::Success,
            ReasonCode::NotAuthorized
        ]
    );
    let sends: Vec<_> = actions
        .iter()
        .map(|a| match a {
            Action::Subscribe {
                filter,
                send_retained,
                subscription,
                ..
            } => (
                filter.to_string(),
                *send_retained,
                subscription.group.is_some(),
            ),
            other => panic!("{other:?}"),
        })
        .collect();
    // Shared subscriptions never get retained messages.
    assert_eq!(
        sends,
        [
            ("a/+".into(), true, false),
            ("$share/g/x".into(), false, true)
        ]
    );
    // Subscribing again: "send if new" now says no.
    let (_, actions) = h.subscribe(sub);
    assert!(matches!(
        &actions[0],
        Action::Subscribe {
            send_retained: false,
            ..
        }
    ));
}

#[test]
fn v311_suback_failure_is_0x80() {
    let mut h = Harness::connect(ProtocolVersion::V3_1_1);
    let (out, _) = h.subscribe(subscribe(1, "a/#/b", QoS::AtMostOnce));
    let [Packet::SubAck(a)] = out.as_slice() else {
        panic!("{out:?}")
    };
    // Decoded from the 3.1.1 failure byte 0x80.
    assert_eq!(a.reasons, [ReasonCode::UnspecifiedError]);
}

#[test]
fn unsubscribe_reports_what_existed() {
    let mut h = Harness::connect(ProtocolVersion::V5);
    h.subscribe(subscribe(1, "a", QoS::AtMostOnce));
    h.packet(Packet::Unsubscribe(Unsubscribe {
        packet_id: 2,
        properties: Properties::default(),
        filters: vec![s("a"), s("b")],
    }));
    let out = h.recv();
    let [Packet::UnsubAck(a)] = out.as_slice() else {
        panic!("{out:?}")
    };
    assert_eq!(
        a.reasons,
        [ReasonCode::Success, ReasonCode::NoSubscriptionExisted]
    );
    let actions = h.actions();
    assert!(matches!(&actions[..], [Action::Unsubscribe { filter, .. }] if filter == "a"));
    assert_eq!(h.conn.session().unwrap().subscriptions().count(), 0);
}

#[test]
fn outbound_qos_is_the_minimum_of_published_and_granted() {
    let mut h = Harness::connect(ProtocolVersion::V3_1_1);
    h.subscribe(subscribe(1, "t/#", QoS::AtLeastOnce));
    h.deliver(&message("t/1", QoS::ExactlyOnce, b"x"), "t/#");
    h.deliver(&message("t/2", QoS::AtMostOnce, b"y"), "t/#");
    let out = h.recv();
    let p = publishes(&out);
    assert_eq!((p[0].qos, p[0].packet_id), (QoS::AtLeastOnce, 1));
    assert_eq!((p[1].qos, p[1].packet_id), (QoS::AtMostOnce, 0));
    // A delivery for a filter the session does not have is ignored.
    h.deliver(&message("t/3", QoS::AtMostOnce, b"z"), "other");
    assert!(h.recv().is_empty());
}

#[test]
fn outbound_window_follows_the_client_receive_maximum() {
    let mut h = Harness::new(SessionConfig::default());
    let mut c = connect_packet(ProtocolVersion::V5, "c", true, 0);
    c.properties.receive_maximum = Some(2);
    h.connect_with(c, None);
    h.subscribe(subscribe(1, "t", QoS::AtLeastOnce));
    for payload in [&b"1"[..], b"2", b"3"] {
        let m = Arc::new(Message {
            payload: Bytes::from_static(payload),
            ..(*message("t", QoS::AtLeastOnce, b"")).clone()
        });
        h.deliver(&m, "t");
    }
    let out = h.recv();
    let ids: Vec<_> = publishes(&out).iter().map(|p| p.packet_id).collect();
    assert_eq!(ids, [1, 2]);
    assert_eq!(h.conn.session().unwrap().queued().count(), 1);
    h.packet(Packet::PubAck(ack(1)));
    let out = h.recv();
    assert_eq!(publishes(&out)[0].payload, &b"3"[..]);
    assert_eq!(h.conn.session().unwrap().inflight().count(), 2);
}

#[test]
fn outbound_qos2_handshake() {
    let mut h = Harness::connect(ProtocolVersion::V5);
    h.subscribe(subscribe(1, "t", QoS::ExactlyOnce));
    h.deliver(&message("t", QoS::ExactlyOnce, b"x"), "t");
    let out = h.recv();
    let id = publishes(&out)[0].packet_id;
    h.packet(Packet::PubRec(ack(id)));
    assert_eq!(h.recv(), vec![Packet::PubRel(ack(id))]);
    let f = h.conn.session().unwrap().inflight().next().unwrap().state;
    assert_eq!(f, InflightState::AwaitComp);
    h.packet(Packet::PubComp(ack(id)));
    assert_eq!(h.conn.session().unwrap().inflight().count(), 0);
    // PUBREC for an unknown id gets PUBREL 0x92.
    h.packet(Packet::PubRec(ack(77)));
    assert!(
        matches!(&h.recv()[..], [Packet::PubRel(a)] if a.reason == ReasonCode::PacketIdentifierNotFound)
    );
}

#[test]
fn resumed_session_redelivers_with_dup_then_drains_the_queue() {
    let mut h = Harness::new(SessionConfig::default());
    h.connect_with(connect_packet(ProtocolVersion::V3_1_1, "p", false, 0), None);
    h.subscribe(subscribe(1, "t", QoS::ExactlyOnce));
    h.deliver(&message("t", QoS::AtLeastOnce, b"one"), "t");
    h.deliver(&message("t", QoS::ExactlyOnce, b"two"), "t");
    h.recv();
    h.packet(Packet::PubRec(ack(2)));
    h.recv();
    h.conn.handle_eof(h.now);
    let (_, session, expiry, _) = h.closed();
    assert_eq!(
        expiry,
        SessionExpiry::Never,
        "3.1.1 Clean Session 0 persists"
    );
    let mut session = session.unwrap();
    // Offline: the broker queues for the stored session.
    let d = Delivery {
        message: message("t", QoS::AtLeastOnce, b"three"),
        filter: s("t"),
        from_retained: false,
    };
    session.deliver_offline(&d, &h.config, h.now);

    let mut h2 = Harness::new(SessionConfig::default());
    let out = h2.connect_with(
        connect_packet(ProtocolVersion::V3_1_1, "p", false, 0),
        Some(session),
    );
    let [Packet::ConnAck(a), Packet::Publish(p1), Packet::PubRel(rel), Packet::Publish(p3)] =
        &out[..]
    else {
        panic!("{out:?}")
    };
    assert!(a.session_present);
    assert!(p1.dup && p1.packet_id == 1 && p1.payload == b"one"[..]);
    assert_eq!(rel.packet_id, 2);
    assert!(!p3.dup && p3.payload == b"three"[..] && p3.packet_id == 3);
}

#[test]
fn clean_start_discards_the_old_session() {
    let mut old = SessionState::new(s("p"));
    let d = Delivery {
        message: message("t", QoS::AtLeastOnce, b"x"),
        filter: s("t"),
        from_retained: false,
    };
    old.deliver_offline(&d, &SessionConfig::default(), Instant::now());
    let mut h = Harness::new(SessionConfig::default());
    let out = h.connect_with(connect_packet(ProtocolVersion::V5, "p", true, 0), Some(old));
    assert!(matches!(&out[..], [Packet::ConnAck(a)] if !a.session_present));
}

#[test]
fn session_expiry_per_version_and_disconnect_update() {
    let mut h = Harness::connect(ProtocolVersion::V3_1_1);
    h.conn.handle_eof(h.now);
    assert_eq!(
        h.closed().2,
        SessionExpiry::Now,
        "Clean Session 1 ends with the connection"
    );

    let mut h = Harness::new(SessionConfig {
        max_session_expiry: 3600,
        ..Default::default()
    });
    let mut c = connect_packet(ProtocolVersion::V5, "c", false, 0);
    c.properties.session_expiry_interval = Some(7200);
    let out = h.connect_with(c, None);
    // Capped, and the granted value told to the client.
    assert!(
        matches!(&out[..], [Packet::ConnAck(a)] if a.properties.session_expiry_interval == Some(3600))
    );
    let mut d = Disconnect::default();
    d.properties.session_expiry_interval = Some(60);
    h.packet(Packet::Disconnect(d));
    assert_eq!(h.closed().2, SessionExpiry::After(Duration::from_secs(60)));

    // 0 at CONNECT, non-zero at DISCONNECT: protocol error.
    let mut h = Harness::connect(ProtocolVersion::V5);
    let mut d = Disconnect::default();
    d.properties.session_expiry_interval = Some(60);
    h.packet(Packet::Disconnect(d));
    assert!(
        matches!(&h.recv()[..], [Packet::Disconnect(d)] if d.reason == ReasonCode::ProtocolError)
    );
    assert_eq!(h.closed().2, SessionExpiry::Now);
}

#[test]
fn offline_queue_is_bounded_and_drops_the_oldest() {
    let config = SessionConfig {
        max_queue_len: 2,
        ..Default::default()
    };
    let mut st = SessionState::new(s("c"));
    st.subscriptions.insert(
        s("t"),
        SubscriptionEntry {
            subscription: crate::router::Subscription::parse("t").unwrap(),
            options: options(QoS::AtLeastOnce, RetainHandling::SendAtSubscribe),
            identifier: None,
        },
    );
    let now = Instant::now();
    for payload in [&b"1"[..], b"2", b"3"] {
        let m = Arc::new(Message {
            payload: Bytes::from_static(payload),
            ..(*message("t", QoS::AtLeastOnce, b"")).clone()
        });
        let d = Delivery {
            message: m,
            filter: s("t"),
            from_retained: false,
        };
        st.deliver_offline(&d, &config, now);
    }
    let left: Vec<_> = st.queued().map(|q| q.message.payload.clone()).collect();
    assert_eq!(left, [&b"2"[..], &b"3"[..]]);
    assert_eq!(st.dropped(), 1);
}

#[test]
fn slow_reader_drops_qos0_and_queues_qos1() {
    let mut h = Harness::new(SessionConfig {
        max_output_buffer: 64,
        ..Default::default()
    });
    h.connect_with(connect_packet(ProtocolVersion::V3_1_1, "c", true, 0), None);
    h.subscribe(subscribe(1, "t", QoS::AtLeastOnce));
    let big = message("t", QoS::AtMostOnce, &[b'x'; 100]);
    h.deliver(&big, "t");
    assert!(h.conn.pending_output() > 64);
    h.deliver(&big, "t");
    h.deliver(&message("t", QoS::AtLeastOnce, b"q1"), "t");
    let st = h.conn.session().unwrap();
    assert_eq!((st.dropped(), st.queued().count()), (1, 1));
    // The driver takes the output: the queue refills the window.
    let out = h.recv();
    let p = publishes(&out);
    assert_eq!(p.len(), 2);
    assert_eq!(p[1].payload, &b"q1"[..]);
}

#[test]
fn publish_acl_denial() {
    let mut h = Harness::connect(ProtocolVersion::V5);
    h.packet(Packet::Publish(publish("deny/x", QoS::AtLeastOnce, 4, b"")));
    assert!(matches!(&h.recv()[..], [Packet::PubAck(a)] if a.reason == ReasonCode::NotAuthorized));
    assert!(h.actions().is_empty());
    // 3.1.1 cannot say no: acknowledged, not routed.
    let mut h = Harness::connect(ProtocolVersion::V3_1_1);
    h.packet(Packet::Publish(publish("deny/x", QoS::AtLeastOnce, 4, b"")));
    assert_eq!(h.recv(), vec![Packet::PubAck(ack(4))]);
    assert!(h.actions().is_empty());
}
