//! Proptest strategies for random packets of every protocol version: each packet family with
//! only the properties its context allows (MQTT 5.0 §2.2.2.2) and only the reason codes its
//! packet may carry (§2.4), so every generated packet is valid and must round-trip. Used by
//! [`super::tests_random`] and the rumqttc cross-check ([`super::tests_rumqttc`]).

use bytes::Bytes;
use proptest::prelude::*;

use super::tests::s;
use super::*;

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

pub(super) fn arb_versioned_packet() -> impl Strategy<Value = (ProtocolVersion, Packet)> {
    prop_oneof![
        Just(ProtocolVersion::V3_1),
        Just(ProtocolVersion::V3_1_1),
        Just(ProtocolVersion::V5)
    ]
    .prop_flat_map(|v| arb_packet(v).prop_map(move |p| (v, p)))
}
