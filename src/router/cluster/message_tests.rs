//! Message and dispatch terms: round trips, eetf as an independent oracle both ways, and
//! malformed input giving errors (never panics).
use super::*;
use crate::dist::etf::{decode, term_to_binary, Pid};
use eetf::{
    Atom as EA, Binary as EB, FixInteger as EI, List as EL, Map as EM, Term as E, Tuple as ET,
};

fn full() -> ClusterMessage {
    ClusterMessage {
        id: message_id(1_700_000_000_000_000, 0xabcdef012345, 7),
        qos: 1,
        from: Publisher::Client(Bytes::from_static(b"client-1")),
        flags: Flags {
            retain: true,
            dup: false,
            sys: false,
        },
        headers: Headers {
            proto_ver: Some(5),
            username: Some(Bytes::from_static(b"alice")),
            peerhost: Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3))),
            properties: Some(MessageProperties {
                payload_format_indicator: Some(1),
                message_expiry_interval: Some(30),
                content_type: Some(Bytes::from_static(b"text/plain")),
                response_topic: Some(Bytes::from_static(b"r/1")),
                correlation_data: Some(Bytes::from_static(b"\x00\x01")),
                user_properties: vec![
                    (Bytes::from_static(b"k"), Bytes::from_static(b"v")),
                    (Bytes::from_static(b"k"), Bytes::from_static(b"w")),
                ],
            }),
        },
        topic: Bytes::from_static(b"t/a"),
        payload: Bytes::from_static(b"hello"),
        timestamp: 1_700_000_000_123,
    }
}

fn minimal() -> ClusterMessage {
    ClusterMessage {
        id: Bytes::new(),
        qos: 0,
        from: Publisher::Atom(Atom::new("beamq_interop")),
        flags: Flags::default(),
        headers: Headers::default(),
        topic: Bytes::from_static(b"x"),
        payload: Bytes::new(),
        timestamp: 0,
    }
}

fn wire_round_trip(t: &Term) -> Term {
    decode(&term_to_binary(t)).unwrap()
}

#[test]
fn message_round_trips_through_the_wire() {
    for m in [full(), minimal()] {
        let back = ClusterMessage::from_term(&wire_round_trip(&m.to_term())).unwrap();
        assert_eq!(back, m);
    }
    let mut v6 = full();
    v6.headers.peerhost = Some("::1".parse().unwrap());
    assert_eq!(ClusterMessage::from_term(&v6.to_term()).unwrap(), v6);
}

#[test]
fn message_id_layout() {
    let id = message_id(0x0102030405060708, 0xffff_aabbccddeeff, 0x1122);
    assert_eq!(
        &id[..],
        &[1, 2, 3, 4, 5, 6, 7, 8, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x11, 0x22]
    );
}

#[test]
fn dispatch_round_trips() {
    let sender = Pid {
        node: Atom::new("a@127.0.0.1"),
        id: 40,
        serial: 0,
        creation: 3,
    };
    let m = full();
    let t = Dispatch::term(&m.topic, sender, &m);
    let d = Dispatch::from_term(&wire_round_trip(&t)).unwrap();
    assert_eq!(d.topic, m.topic);
    assert_eq!(d.sender, Some(sender));
    assert_eq!(d.message, m);
}

fn eb(b: &[u8]) -> E {
    E::from(EB::from(b))
}
fn ea(a: &str) -> E {
    E::from(EA::from(a))
}
fn ei(i: i32) -> E {
    E::from(EI::from(i))
}

/// What an Erlang shell would build for `#message{}` with EMQX's headers, encoded by eetf.
fn eetf_message() -> E {
    let props = E::from(EM::from([
        (ea("Content-Type"), eb(b"json")),
        (
            ea("User-Property"),
            E::from(EL::from(vec![E::from(ET::from(vec![eb(b"a"), eb(b"b")]))])),
        ),
        (ea("Some-Future-Property"), ei(1)),
    ]));
    E::from(ET::from(vec![
        ea("message"),
        eb(&[0u8; 16]),
        ei(2),
        eb(b"erl-client"),
        E::from(EM::from([
            (ea("retain"), ea("false")),
            (ea("dup"), ea("true")),
        ])),
        E::from(EM::from([
            (ea("proto_ver"), ei(4)),
            (ea("username"), ea("undefined")),
            (
                ea("peerhost"),
                E::from(ET::from(vec![ei(10), ei(0), ei(0), ei(1)])),
            ),
            (ea("properties"), props),
            (ea("zone"), ea("external")),
        ])),
        eb(b"sensors/1/temp"),
        eb(b"21.5"),
        ei(1_700_000_000),
    ]))
}

#[test]
fn eetf_built_message_decodes() {
    let mut buf = Vec::new();
    eetf_message().encode(&mut buf).unwrap();
    let t = decode(&Bytes::from(buf)).unwrap();
    let m = ClusterMessage::from_term(&t).unwrap();
    assert_eq!(m.qos, 2);
    assert_eq!(m.from, Publisher::Client(Bytes::from_static(b"erl-client")));
    assert_eq!(
        m.flags,
        Flags {
            retain: false,
            dup: true,
            sys: false
        }
    );
    assert_eq!(m.headers.proto_ver, Some(4));
    assert_eq!(m.headers.username, None);
    assert_eq!(
        m.headers.peerhost,
        Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)))
    );
    let p = m.headers.properties.unwrap();
    assert_eq!(p.content_type.as_deref(), Some(&b"json"[..]));
    assert_eq!(
        p.user_properties,
        vec![(Bytes::from_static(b"a"), Bytes::from_static(b"b"))]
    );
    assert_eq!(&m.topic[..], b"sensors/1/temp");
    assert_eq!(&m.payload[..], b"21.5");
    assert_eq!(m.timestamp, 1_700_000_000);
}

#[test]
fn our_message_reads_in_eetf() {
    let bytes = term_to_binary(&full().to_term());
    let e = E::decode(&bytes[..]).unwrap();
    let E::Tuple(t) = e else {
        panic!("not a tuple: {e}")
    };
    assert_eq!(t.elements.len(), 9);
    assert_eq!(t.elements[0], ea("message"));
    assert_eq!(t.elements[2], ei(1));
    assert_eq!(t.elements[3], eb(b"client-1"));
    assert_eq!(t.elements[6], eb(b"t/a"));
    assert_eq!(t.elements[7], eb(b"hello"));
    let E::Map(flags) = &t.elements[4] else {
        panic!("flags")
    };
    assert_eq!(flags.map.get(&ea("retain")), Some(&ea("true")));
    let E::Map(headers) = &t.elements[5] else {
        panic!("headers")
    };
    assert_eq!(headers.map.get(&ea("proto_ver")), Some(&ei(5)));
    let Some(E::Map(props)) = headers.map.get(&ea("properties")) else {
        panic!("properties")
    };
    assert_eq!(props.map.get(&ea("Message-Expiry-Interval")), Some(&ei(30)));
    assert_eq!(
        props.map.get(&ea("User-Property")),
        Some(&E::from(EL::from(vec![
            E::from(ET::from(vec![eb(b"k"), eb(b"v")])),
            E::from(ET::from(vec![eb(b"k"), eb(b"w")])),
        ])))
    );
}

fn with_field(i: usize, v: Term) -> Term {
    let Term::Tuple(mut elems) = full().to_term() else {
        unreachable!()
    };
    elems[i] = v;
    Term::Tuple(elems)
}

#[test]
fn malformed_messages_are_errors() {
    let bad = [
        (Term::atom("message"), MessageError::Shape("message")),
        (
            Term::tuple(vec![Term::atom("message"), Term::Int(1)]),
            MessageError::Shape("message"),
        ),
        (
            with_field(0, Term::atom("msg")),
            MessageError::Shape("message"),
        ),
        (with_field(1, Term::Int(1)), MessageError::Field("id")),
        (with_field(2, Term::Int(3)), MessageError::Field("qos")),
        (
            with_field(2, Term::atom("qos1")),
            MessageError::Field("qos"),
        ),
        (with_field(3, Term::Int(1)), MessageError::Field("from")),
        (with_field(4, Term::Nil), MessageError::Field("flags")),
        (
            with_field(4, Term::map(vec![(Term::atom("retain"), Term::Int(1))])),
            MessageError::Field("flags"),
        ),
        (with_field(5, Term::Nil), MessageError::Field("headers")),
        (
            with_field(5, Term::map(vec![(Term::atom("proto_ver"), Term::Int(9))])),
            MessageError::Field("proto_ver"),
        ),
        (
            with_field(
                5,
                Term::map(vec![(
                    Term::atom("peerhost"),
                    Term::tuple(vec![
                        Term::Int(300),
                        Term::Int(0),
                        Term::Int(0),
                        Term::Int(1),
                    ]),
                )]),
            ),
            MessageError::Field("peerhost"),
        ),
        (
            with_field(
                5,
                Term::map(vec![(
                    Term::atom("properties"),
                    Term::map(vec![(Term::atom("User-Property"), Term::Int(1))]),
                )]),
            ),
            MessageError::Field("User-Property"),
        ),
        (with_field(6, Term::binary(b"t/#")), MessageError::Topic),
        (with_field(6, Term::binary(b"")), MessageError::Topic),
        (
            with_field(6, Term::binary([0xff, 0xfe])),
            MessageError::Topic,
        ),
        (with_field(7, Term::Nil), MessageError::Field("payload")),
        (
            with_field(8, Term::Float(1.0)),
            MessageError::Field("timestamp"),
        ),
    ];
    for (t, want) in bad {
        assert_eq!(ClusterMessage::from_term(&t), Err(want), "{t:?}");
    }
}

#[test]
fn malformed_dispatches_are_errors() {
    let m = full().to_term();
    let delivery = |m: Term| Term::tuple(vec![Term::atom("delivery"), Term::atom("x"), m]);
    let cases = [
        Term::Nil,
        Term::tuple(vec![Term::atom("dispatch"), Term::binary(b"t")]),
        Term::tuple(vec![
            Term::atom("publish"),
            Term::binary(b"t"),
            delivery(m.clone()),
        ]),
        Term::tuple(vec![Term::atom("dispatch"), Term::binary(b"t"), m.clone()]),
        Term::tuple(vec![
            Term::atom("dispatch"),
            Term::binary(b"t/+"),
            delivery(m.clone()),
        ]),
        Term::tuple(vec![
            Term::atom("dispatch"),
            Term::atom("t"),
            delivery(m.clone()),
        ]),
        Term::tuple(vec![
            Term::atom("dispatch"),
            Term::binary(b"t"),
            delivery(Term::Nil),
        ]),
    ];
    for t in cases {
        assert!(Dispatch::from_term(&t).is_err(), "{t:?}");
    }
    // A sender that is not a pid is accepted (it is informational).
    let ok = Term::tuple(vec![
        Term::atom("dispatch"),
        Term::binary(b"t"),
        delivery(m),
    ]);
    assert_eq!(Dispatch::from_term(&ok).map(|d| d.sender), Ok(None));
}

proptest::proptest! {
    /// Any byte string that decodes as a term is either a message or an error, never a panic.
    #[test]
    fn arbitrary_terms_never_panic(mut raw in proptest::collection::vec(proptest::num::u8::ANY, 0..200), cut in 0usize..400) {
        let good = term_to_binary(&full().to_term());
        let mut bytes = good.to_vec();
        if !raw.is_empty() {
            let at = cut % bytes.len();
            bytes.splice(at..at + raw.len().min(bytes.len() - at), raw.drain(..));
        }
        if let Ok(t) = decode(&Bytes::from(bytes)) {
            let _ = ClusterMessage::from_term(&t);
            let _ = Dispatch::from_term(&t);
        }
    }
}
