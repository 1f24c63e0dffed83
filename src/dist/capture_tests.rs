//! Frames captured between two stock OTP 25 nodes (`testdata/`: `capa.erl` run on node a
//! against `capb.erl` on node b, through `proxy.py`, see `testdata/README.md`) decode into the
//! messages the scenario sends: atom cache hits and updates, fragments, every control message
//! the scenario makes OTP emit.
use std::io::Read;

use bytes::Bytes;

use crate::dist::control::{ControlMessage, ProcRef, SpawnResult};
use crate::dist::etf::{Atom, Term};
use crate::dist::message::{DistMessage, Inbound, Outbound};

/// The data frames of one direction (handshake messages skipped).
pub(crate) fn frames(gz: &[u8], handshake_messages: usize) -> Vec<Bytes> {
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(gz)
        .read_to_end(&mut raw)
        .unwrap();
    let mut i = 0;
    for _ in 0..handshake_messages {
        let n = usize::from(u16::from_be_bytes([raw[i], raw[i + 1]]));
        i += 2 + n;
    }
    let mut out = Vec::new();
    while i + 4 <= raw.len() {
        let n = u32::from_be_bytes([raw[i], raw[i + 1], raw[i + 2], raw[i + 3]]) as usize;
        out.push(Bytes::copy_from_slice(&raw[i + 4..i + 4 + n]));
        i += 4 + n;
    }
    out
}

pub(crate) fn a2b() -> Vec<Bytes> {
    frames(include_bytes!("testdata/otp25_capture_a2b.bin.gz"), 2)
}

pub(crate) fn b2a() -> Vec<Bytes> {
    frames(include_bytes!("testdata/otp25_capture_b2a.bin.gz"), 3)
}

fn messages(frames: Vec<Bytes>) -> Vec<DistMessage> {
    let mut rx = Inbound::default();
    frames
        .into_iter()
        .filter_map(|f| rx.receive(f).unwrap())
        .collect()
}

fn find<'m>(
    msgs: &'m [DistMessage],
    what: &str,
    pred: impl Fn(&DistMessage) -> bool,
) -> &'m DistMessage {
    msgs.iter()
        .find(|m| pred(m))
        .unwrap_or_else(|| panic!("no {what} in capture"))
}

fn payload_tuple(m: &DistMessage) -> &[Term] {
    m.payload.as_ref().and_then(Term::as_tuple).unwrap_or(&[])
}

#[test]
fn a_to_b_decodes_every_frame() {
    let frames = a2b();
    assert_eq!(frames.len(), 36);
    let msgs = messages(frames);
    assert_eq!(
        msgs.len(),
        31,
        "36 frames hold 2 messages in 4 + 3 fragments"
    );
    let sink = Atom::new("sink");
    let small = find(&msgs, "small message", |m| {
        matches!(m.control, ControlMessage::RegSend { to_name, .. } if to_name == sink)
            && payload_tuple(m).first().is_some_and(|t| t.is_atom("t"))
    });
    let [_, topic, body] = small
        .payload
        .as_ref()
        .and_then(|p| p.as_tuple_n::<3>())
        .unwrap();
    assert_eq!(topic.as_binary().map(|b| &b[..]), Some(&b"a/b"[..]));
    assert_eq!(body.as_binary().map(|b| b.len()), Some(64));
    let big = find(&msgs, "fragmented message", |m| {
        payload_tuple(m).first().is_some_and(|t| t.is_atom("big"))
    });
    let data = payload_tuple(big)[1].as_binary().unwrap();
    assert_eq!(data.len(), 200_000);
    assert!(data.iter().all(|&b| b == b'x'));
    let reply_to = find(&msgs, "reply_to", |m| {
        payload_tuple(m)
            .first()
            .is_some_and(|t| t.is_atom("reply_to"))
    });
    let inner = payload_tuple(reply_to)[2].as_tuple().unwrap();
    let (alias, tail) = inner[2].as_improper_list().unwrap();
    assert_eq!(alias, &[Term::atom("alias")]);
    assert!(tail.as_ref().is_some());
    let key = Term::tuple([Term::atom("k"), Term::Int(1)]);
    assert_eq!(inner[3].map_get(&key), Some(&Term::Float(3.5)));
    let erpc = find(&msgs, "erpc spawn", |m| {
        matches!(&m.control, ControlMessage::SpawnRequest { mfa, .. } if mfa.1.as_str() == "execute_call")
            && m.payload
                .as_ref()
                .and_then(Term::as_list)
                .is_some_and(|a| a.get(2).is_some_and(|t| t.is_atom("node")))
    });
    let ControlMessage::SpawnRequest { mfa, opts, .. } = &erpc.control else {
        unreachable!()
    };
    assert_eq!((mfa.0.as_str(), mfa.2), ("erpc", 4));
    assert_eq!(opts, &Term::list([Term::atom("monitor")]));
    let args = erpc.payload.as_ref().and_then(Term::as_list).unwrap();
    assert!(args[1].is_atom("erlang") && args[3] == Term::Nil);
    assert!(msgs
        .iter()
        .any(|m| matches!(m.control, ControlMessage::UnlinkId { id: 4, .. })));
    let kill = find(&msgs, "exit2", |m| {
        matches!(m.control, ControlMessage::PayloadExit2 { .. })
    });
    assert_eq!(kill.payload, Some(Term::atom("kill")));
    let by_name = find(
        &msgs,
        "monitor by name",
        |m| matches!(m.control, ControlMessage::MonitorP { to: ProcRef::Name(n), .. } if n.as_str() == "nosuch"),
    );
    assert_eq!(by_name.payload, None);
    // global's session tags are bignums-on-the-wire that fit i64 and must round-trip exactly.
    let ack = find(&msgs, "init_connect_ack", |m| {
        payload_tuple(m)
            .first()
            .is_some_and(|t| t.is_atom("init_connect_ack"))
    });
    assert_eq!(payload_tuple(ack)[2], Term::Int(-576460752303423488));
}

#[test]
fn b_to_a_decodes_every_frame() {
    let frames = b2a();
    assert_eq!(frames.len(), 31);
    let msgs = messages(frames);
    assert_eq!(msgs.len(), 29, "31 frames hold one message in 3 fragments");
    let down = find(
        &msgs,
        "noproc DOWN",
        |m| matches!(m.control, ControlMessage::PayloadMonitorPExit { from: ProcRef::Name(n), .. } if n.as_str() == "nosuch"),
    );
    assert_eq!(down.payload, Some(Term::atom("noproc")));
    let reply = find(&msgs, "spawn reply", |m| {
        matches!(m.control, ControlMessage::SpawnReply { flags: 2, .. })
    });
    let ControlMessage::SpawnReply {
        result: SpawnResult::Pid(p),
        ..
    } = reply.control
    else {
        panic!("{reply:?}")
    };
    assert_eq!(p.node.as_str(), "b@127.0.0.1");
    let ret = find(
        &msgs,
        "erpc return",
        |m| matches!(m.control, ControlMessage::PayloadMonitorPExit { from: ProcRef::Pid(f), .. } if f == p),
    );
    let [_, tag, value] = ret
        .payload
        .as_ref()
        .and_then(|t| t.as_tuple_n::<3>())
        .unwrap();
    assert!(tag.is_atom("return"));
    assert!(
        value.is_atom("node"),
        "the fun returned the atom node: {value:?}"
    );
    assert!(msgs
        .iter()
        .any(|m| matches!(m.control, ControlMessage::UnlinkIdAck { id: 4, .. })));
    assert!(msgs
        .iter()
        .any(|m| matches!(m.control, ControlMessage::Link { .. })));
    let echo = find(&msgs, "big echo", |m| {
        payload_tuple(m)
            .get(1)
            .and_then(Term::as_tuple)
            .is_some_and(|t| t.first().is_some_and(|a| a.is_atom("big")))
    });
    assert_eq!(
        payload_tuple(echo)[1].as_tuple().unwrap()[1]
            .as_binary()
            .map(|b| b.len()),
        Some(150_000)
    );
}

/// Every captured message survives our encoder and decoder, through one connection's state (so
/// atom cache entries set by earlier frames are used by later ones), with small fragments.
#[test]
fn captured_messages_round_trip_through_our_frames() {
    use crate::dist::message::OutboundConfig;
    let msgs: Vec<DistMessage> = messages(a2b()).into_iter().chain(messages(b2a())).collect();
    for config in [
        OutboundConfig::default(),
        OutboundConfig {
            fragment_size: 1000,
            ..OutboundConfig::default()
        },
        OutboundConfig {
            atom_cache: false,
            fragments: false,
            ..OutboundConfig::default()
        },
    ] {
        let mut tx = Outbound::new(config);
        let mut rx = Inbound::default();
        for m in &msgs {
            let mut out = bytes::BytesMut::new();
            tx.encode(m, &mut out);
            let all = frames_of(out.freeze());
            let n = all.len();
            let mut got = None;
            for (i, f) in all.into_iter().enumerate() {
                let r = rx.receive(f).unwrap();
                assert_eq!(r.is_some(), i + 1 == n, "only the last fragment completes");
                got = r;
            }
            assert_eq!(got.as_ref(), Some(m));
        }
        assert_eq!(rx.fragments().in_flight(), 0);
    }
}

/// Splits length-prefixed frames.
pub(crate) fn frames_of(mut b: Bytes) -> Vec<Bytes> {
    let mut v = Vec::new();
    while b.len() >= 4 {
        let n = u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
        let _ = b.split_to(4);
        v.push(b.split_to(n));
    }
    v
}
