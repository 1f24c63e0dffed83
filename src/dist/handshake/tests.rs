//! Handshake tests: against bytes recorded from stock OTP 25 nodes
//! (tests/vectors/otp25_handshake.txt, made by scripts/capture-handshake.py), and our two
//! sides against each other with a simulated clock.

use std::time::{Duration, Instant};

use bytes::BytesMut;

use super::messages::{gen_digest, Challenge, ChallengeReply, Complement, SendName, Status};
use super::*;
use crate::dist::flags::{self, DistFlags};
use crate::dist::frame;

const VECTORS: &str = include_str!("../../../tests/vectors/otp25_handshake.txt");

fn recorded(dir: &str) -> Vec<u8> {
    let line = VECTORS
        .lines()
        .find(|l| l.starts_with(dir))
        .unwrap_or_default();
    let hex = line.split_whitespace().nth(1).unwrap_or_default();
    (0..hex.len() / 2)
        .filter_map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok())
        .collect()
}

/// Splits the first `n` handshake frames off a recorded stream: (framed bytes, messages, rest).
fn frames(stream: &[u8], n: usize) -> (Vec<u8>, Vec<Vec<u8>>, Vec<u8>) {
    let mut buf = BytesMut::from(stream);
    let mut msgs = Vec::new();
    for _ in 0..n {
        match frame::decode_handshake(&mut buf) {
            Ok(Some(m)) => msgs.push(m.to_vec()),
            other => panic!("recorded stream too short: {other:?}"),
        }
    }
    let used = stream.len() - buf.len();
    (stream[..used].to_vec(), msgs, buf.to_vec())
}

fn config(name: &str, creation: u32, flags: u64, cookie: &str) -> HandshakeConfig {
    HandshakeConfig {
        name: name.into(),
        creation,
        flags: DistFlags(flags),
        required: flags::REQUIRED,
        cookie: Cookie::new(cookie).unwrap_or_else(|e| panic!("cookie: {e}")),
        setup_time: DEFAULT_SETUP_TIME,
    }
}

fn established(hs: &mut Handshake) -> Option<Established> {
    std::iter::from_fn(|| hs.poll_event()).find_map(|e| match e {
        HandshakeEvent::Established(est) => Some(est),
        _ => None,
    })
}

#[test]
fn acceptor_reproduces_recorded_otp25_bytes() {
    let from_b = recorded("initiator");
    let from_a = recorded("acceptor");
    let (_, b_msgs, b_rest) = frames(&from_b, 2);
    let (a_framed, a_msgs, a_rest) = frames(&from_a, 3);
    let ch = Challenge::parse(&a_msgs[1]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        ch.flags, 0xd_07df_7fbd,
        "stock OTP 25 flags, as otp25-traces.md 0.1 says"
    );
    assert_eq!(Status::parse(&a_msgs[0]), Ok(Status::Ok));

    let now = Instant::now();
    let mut hs = Handshake::acceptor(
        config("a@127.0.0.1", ch.creation, ch.flags, "t"),
        ch.challenge,
        now,
    );
    // Everything b sent at once: name, reply and its first data frames.
    assert_eq!(hs.handle_input(&from_b, now), Ok(()));
    let name = SendName::parse(&b_msgs[0]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        hs.poll_event(),
        Some(HandshakeEvent::PeerName {
            name: "b@127.0.0.1".into(),
            flags: DistFlags(name.flags).expand_mandatory_25(),
            creation: name.creation,
        })
    );
    assert_eq!(hs.accept_pending(AcceptPending::Ok, now), Ok(()));
    let out = hs.take_output().map(|b| b.to_vec());
    assert_eq!(
        out,
        Some(a_framed),
        "status, challenge and ack byte for byte as OTP sent them"
    );
    let est = established(&mut hs).unwrap_or_else(|| panic!("not established"));
    assert_eq!(est.peer, "b@127.0.0.1");
    assert_eq!(est.peer_creation, name.creation.unwrap_or(0));
    assert_eq!(est.flags, DistFlags(0xd_07df_7fbd));
    assert_eq!(
        est.rest.to_vec(),
        b_rest,
        "data frames after the handshake are handed on"
    );
    assert!(a_rest.starts_with(&[0, 0, 0]) && a_rest[4..6] == [131, 68]);
}

#[test]
fn initiator_reproduces_recorded_otp25_bytes() {
    let from_b = recorded("initiator");
    let from_a = recorded("acceptor");
    let (b_framed, b_msgs, _) = frames(&from_b, 2);
    let (_, _, a_rest) = frames(&from_a, 3);
    let name = SendName::parse(&b_msgs[0]).unwrap_or_else(|e| panic!("{e}"));
    let reply = ChallengeReply::parse(&b_msgs[1]).unwrap_or_else(|e| panic!("{e}"));
    let now = Instant::now();
    let cfg = config("b@127.0.0.1", name.creation.unwrap_or(0), name.flags, "t");
    let mut hs = Handshake::initiator(cfg, "a@127.0.0.1", reply.challenge, now);
    let mut out = hs.take_output().map(|b| b.to_vec()).unwrap_or_default();
    assert_eq!(hs.handle_input(&from_a, now), Ok(()));
    out.extend(hs.take_output().map(|b| b.to_vec()).unwrap_or_default());
    assert_eq!(
        out, b_framed,
        "name and challenge reply byte for byte as OTP sent them"
    );
    let est = established(&mut hs).unwrap_or_else(|| panic!("not established"));
    assert_eq!(est.peer, "a@127.0.0.1");
    assert_eq!(est.rest.to_vec(), a_rest);
}

#[test]
fn recorded_reply_with_another_cookie_is_refused() {
    let from_b = recorded("initiator");
    let (_, a_msgs, _) = frames(&recorded("acceptor"), 3);
    let ch = Challenge::parse(&a_msgs[1]).unwrap_or_else(|e| panic!("{e}"));
    let now = Instant::now();
    let mut hs = Handshake::acceptor(
        config("a@127.0.0.1", ch.creation, ch.flags, "other"),
        ch.challenge,
        now,
    );
    assert_eq!(hs.handle_input(&from_b, now), Ok(()));
    let r = hs.accept_pending(AcceptPending::Ok, now);
    assert_eq!(
        r,
        Err(HandshakeError::BadCookie {
            peer: "b@127.0.0.1".into(),
            step: "reply"
        })
    );
    let out = hs.take_output().map(|b| b.to_vec()).unwrap_or_default();
    assert!(
        !out.windows(2).any(|w| w == [0, 17]),
        "no ack after a bad reply"
    );
}

/// Our two sides, exchanging bytes until neither has anything to say.
struct Pair {
    init: Handshake,
    acc: Handshake,
    now: Instant,
}

impl Pair {
    fn new(init_cookie: &str, acc_cookie: &str) -> Pair {
        let now = Instant::now();
        let ours = DistFlags::ours(false).0;
        Pair {
            init: Handshake::initiator(
                config("i@127.0.0.1", 11, ours, init_cookie),
                "a@127.0.0.1",
                1111,
                now,
            ),
            acc: Handshake::acceptor(config("a@127.0.0.1", 22, ours, acc_cookie), 2222, now),
            now,
        }
    }

    /// Moves bytes both ways; returns the first error of either side.
    fn pump(&mut self) -> Result<(), HandshakeError> {
        for _ in 0..10 {
            let a = self.init.take_output();
            let b = self.acc.take_output();
            if a.is_none() && b.is_none() {
                return Ok(());
            }
            if let Some(a) = a {
                self.acc.handle_input(&a, self.now)?;
            }
            if let Some(b) = b {
                self.init.handle_input(&b, self.now)?;
            }
        }
        Ok(())
    }
}

#[test]
fn our_initiator_and_acceptor_agree() {
    let mut p = Pair::new("c", "c");
    assert_eq!(p.pump(), Ok(()));
    assert!(matches!(
        p.acc.poll_event(),
        Some(HandshakeEvent::PeerName { .. })
    ));
    assert_eq!(p.acc.accept_pending(AcceptPending::Ok, p.now), Ok(()));
    assert_eq!(p.pump(), Ok(()));
    let (i, a) = (established(&mut p.init), established(&mut p.acc));
    assert_eq!(
        i.as_ref().map(|e| (e.peer.as_str(), e.peer_creation)),
        Some(("a@127.0.0.1", 22))
    );
    assert_eq!(
        a.as_ref().map(|e| (e.peer.as_str(), e.peer_creation)),
        Some(("i@127.0.0.1", 11))
    );
    assert!(i.is_some_and(|e| e.flags.is_published() && e.flags.contains(flags::SPAWN)));
}

#[test]
fn wrong_cookie_is_detected_by_the_acceptor() {
    let mut p = Pair::new("c1", "c2");
    assert_eq!(p.pump(), Ok(()));
    assert_eq!(p.acc.accept_pending(AcceptPending::Ok, p.now), Ok(()));
    let r = p.pump();
    assert_eq!(
        r,
        Err(HandshakeError::BadCookie {
            peer: "i@127.0.0.1".into(),
            step: "reply"
        })
    );
    assert!(!format!("{r:?}").contains("c1") && !format!("{r:?}").contains("c2"));
}

#[test]
fn wrong_ack_is_detected_by_the_initiator() {
    let now = Instant::now();
    let ours = DistFlags::ours(false).0;
    let mut hs = Handshake::initiator(config("i@h.x", 1, ours, "c"), "a@h.x", 5, now);
    let ch = Challenge {
        flags: ours,
        challenge: 9,
        creation: 2,
        name: "a@h.x".into(),
    };
    let mut input = BytesMut::new();
    frame::encode_handshake(&Status::Ok.encode(), &mut input);
    frame::encode_handshake(&ch.encode(), &mut input);
    frame::encode_handshake(
        &super::messages::ChallengeAck {
            digest: gen_digest(5, b"wrong"),
        }
        .encode(),
        &mut input,
    );
    let r = hs.handle_input(&input, now);
    assert_eq!(
        r,
        Err(HandshakeError::BadCookie {
            peer: "a@h.x".into(),
            step: "ack"
        })
    );
}

#[test]
fn refusals_reach_the_initiator() {
    for (decision, status) in [
        (AcceptPending::Nok, "nok"),
        (AcceptPending::NotAllowed, "not_allowed"),
    ] {
        let mut p = Pair::new("c", "c");
        assert_eq!(p.pump(), Ok(()));
        let r = p.acc.accept_pending(decision, p.now);
        assert!(matches!(r, Err(HandshakeError::RefusedByUs { .. })));
        assert_eq!(
            p.pump(),
            Err(HandshakeError::Refused {
                peer: "a@127.0.0.1".into(),
                status
            })
        );
    }
}

#[test]
fn alive_is_asked_and_answered() {
    for wanted in [true, false] {
        let mut p = Pair::new("c", "c");
        assert_eq!(p.pump(), Ok(()));
        assert_eq!(p.acc.accept_pending(AcceptPending::Alive, p.now), Ok(()));
        assert_eq!(p.pump(), Ok(()));
        assert_eq!(p.init.poll_event(), Some(HandshakeEvent::AliveQuery));
        let r = p.init.answer_alive(wanted, p.now);
        assert_eq!(r.is_ok(), wanted);
        if !wanted {
            assert_eq!(
                p.pump(),
                Err(HandshakeError::Refused {
                    peer: "i@127.0.0.1".into(),
                    status: "false"
                })
            );
            continue;
        }
        assert_eq!(p.pump(), Ok(()));
        assert!(matches!(
            p.acc.poll_event(),
            Some(HandshakeEvent::PeerName { .. })
        ));
        assert_eq!(p.acc.poll_event(), Some(HandshakeEvent::AwaitOldConnection));
        assert_eq!(p.acc.old_connection_gone(p.now), Ok(()));
        assert_eq!(p.pump(), Ok(()));
        assert!(established(&mut p.init).is_some() && established(&mut p.acc).is_some());
    }
}

#[test]
fn dynamic_name_is_given_by_the_acceptor() {
    let now = Instant::now();
    let flags = DistFlags::ours(false).0 | flags::NAME_ME;
    let init = Handshake::initiator(config("127.0.0.1", 0, flags, "c"), "a@127.0.0.1", 1, now);
    let acc = Handshake::acceptor(
        config("a@127.0.0.1", 22, DistFlags::ours(false).0, "c"),
        2,
        now,
    );
    let mut p = Pair { init, acc, now };
    assert_eq!(p.pump(), Ok(()));
    let ev = p.acc.poll_event();
    assert!(matches!(ev, Some(HandshakeEvent::PeerName { ref name, .. }) if name == "127.0.0.1"));
    let named = AcceptPending::Named {
        name: "dyn1@127.0.0.1".into(),
        creation: 77,
    };
    assert_eq!(p.acc.accept_pending(named, now), Ok(()));
    assert_eq!(p.pump(), Ok(()));
    let i = established(&mut p.init);
    assert_eq!(
        i.as_ref().map(|e| (e.our_name.as_str(), e.our_creation)),
        Some(("dyn1@127.0.0.1", 77))
    );
    assert!(
        i.is_some_and(|e| !e.flags.is_published()),
        "dynamic nodes are hidden"
    );
    assert_eq!(
        established(&mut p.acc).map(|e| e.peer),
        Some("dyn1@127.0.0.1".into())
    );
}

#[test]
fn otp24_old_name_and_complement_are_accepted() {
    let now = Instant::now();
    let ours = DistFlags::ours(false).0;
    let mut acc = Handshake::acceptor(config("a@h.x", 22, ours, "c"), 2222, now);
    // OTP 24 sends 'n' (version 5, 32 flag bits) when epmd (e.g. ekka's module) says version 5.
    let mut old = vec![b'n', 0, 5];
    old.extend_from_slice(&(ours as u32).to_be_bytes());
    old.extend_from_slice(b"old@h.x");
    let mut input = BytesMut::new();
    frame::encode_handshake(&old, &mut input);
    assert_eq!(acc.handle_input(&input, now), Ok(()));
    assert!(matches!(
        acc.poll_event(),
        Some(HandshakeEvent::PeerName { creation: None, .. })
    ));
    assert_eq!(acc.accept_pending(AcceptPending::Ok, now), Ok(()));
    let mut input = BytesMut::new();
    frame::encode_handshake(
        &Complement {
            flags_high: (ours >> 32) as u32,
            creation: 99,
        }
        .encode(),
        &mut input,
    );
    frame::encode_handshake(
        &ChallengeReply {
            challenge: 3,
            digest: gen_digest(2222, b"c"),
        }
        .encode(),
        &mut input,
    );
    assert_eq!(acc.handle_input(&input, now), Ok(()));
    let est = established(&mut acc);
    assert_eq!(est.as_ref().map(|e| e.peer_creation), Some(99));
    assert!(est.is_some_and(|e| e.flags.contains(flags::SPAWN | flags::ALIAS)));
}

#[test]
fn peer_without_mandatory_flags_gets_not_allowed() {
    let now = Instant::now();
    let mut acc = Handshake::acceptor(config("a@h.x", 22, DistFlags::ours(false).0, "c"), 1, now);
    let name = SendName {
        flags: flags::MANDATORY_25 & !flags::UTF8_ATOMS,
        creation: Some(1),
        name: "o@h.x".into(),
    };
    let mut input = BytesMut::new();
    frame::encode_handshake(&name.encode(), &mut input);
    let r = acc.handle_input(&input, now);
    assert!(matches!(r, Err(HandshakeError::MissingFlags { ref peer, .. }) if peer == "o@h.x"));
    let mut sent = BytesMut::from(&acc.take_output().unwrap_or_default()[..]);
    assert_eq!(
        frame::decode_handshake(&mut sent)
            .ok()
            .flatten()
            .map(|m| m.to_vec()),
        Some(b"snot_allowed".to_vec())
    );
}

#[test]
fn old_name_without_handshake_23_is_refused() {
    let now = Instant::now();
    let mut acc = Handshake::acceptor(config("a@h.x", 22, DistFlags::ours(false).0, "c"), 1, now);
    let mut old = vec![b'n', 0, 5];
    old.extend_from_slice(&((flags::MANDATORY_25 & !flags::HANDSHAKE_23) as u32).to_be_bytes());
    old.extend_from_slice(b"r22@h.x");
    let mut input = BytesMut::new();
    frame::encode_handshake(&old, &mut input);
    assert!(matches!(
        acc.handle_input(&input, now),
        Err(HandshakeError::MissingFlags { .. })
    ));
}

#[test]
fn challenge_from_another_node_is_refused() {
    let now = Instant::now();
    let ours = DistFlags::ours(false).0;
    let mut hs = Handshake::initiator(config("i@h.x", 1, ours, "c"), "a@h.x", 5, now);
    let mut input = BytesMut::new();
    frame::encode_handshake(&Status::Ok.encode(), &mut input);
    frame::encode_handshake(
        &Challenge {
            flags: ours,
            challenge: 1,
            creation: 2,
            name: "z@h.x".into(),
        }
        .encode(),
        &mut input,
    );
    assert!(matches!(
        hs.handle_input(&input, now),
        Err(HandshakeError::WrongPeer { .. })
    ));
}

#[test]
fn each_step_times_out_on_the_simulated_clock() {
    let mut p = Pair::new("c", "c");
    let now = p.now;
    assert_eq!(p.pump(), Ok(()));
    // The initiator waits for a status while the acceptor waits for net_kernel.
    assert_eq!(p.init.poll_timeout(), Some(now + DEFAULT_SETUP_TIME));
    assert_eq!(p.init.handle_timeout(now + Duration::from_secs(6)), Ok(()));
    assert_eq!(
        p.init.handle_timeout(now + DEFAULT_SETUP_TIME),
        Err(HandshakeError::Timeout("status"))
    );
    assert_eq!(p.init.poll_timeout(), None);
    let mut acc = Handshake::acceptor(config("a@h.x", 1, DistFlags::ours(false).0, "c"), 1, now);
    assert_eq!(
        acc.handle_timeout(now + Duration::from_secs(8)),
        Err(HandshakeError::Timeout("send_name"))
    );
}

#[test]
fn garbage_and_floods_fail_cleanly() {
    let now = Instant::now();
    let cfg = || config("a@h.x", 1, DistFlags::ours(false).0, "c");
    let mut acc = Handshake::acceptor(cfg(), 1, now);
    assert!(matches!(
        acc.handle_input(&[0xff, 0xff], now),
        Err(HandshakeError::Frame(_))
    ));
    let mut acc = Handshake::acceptor(cfg(), 1, now);
    assert!(matches!(
        acc.handle_input(&[0, 1, b'X'], now),
        Err(HandshakeError::Message(_))
    ));
    let mut acc = Handshake::acceptor(cfg(), 1, now);
    let mut input = BytesMut::new();
    frame::encode_handshake(
        &SendName {
            flags: DistFlags::ours(false).0,
            creation: Some(1),
            name: "bad".into(),
        }
        .encode(),
        &mut input,
    );
    assert!(matches!(
        acc.handle_input(&input, now),
        Err(HandshakeError::BadName(_))
    ));
    // A peer that keeps sending while we wait for net_kernel's decision.
    let mut acc = Handshake::acceptor(cfg(), 1, now);
    let mut input = BytesMut::new();
    frame::encode_handshake(
        &SendName {
            flags: DistFlags::ours(false).0,
            creation: Some(1),
            name: "o@h.x".into(),
        }
        .encode(),
        &mut input,
    );
    assert_eq!(acc.handle_input(&input, now), Ok(()));
    assert_eq!(
        acc.handle_input(&[0u8; 4000], now),
        Err(HandshakeError::OutOfTurn)
    );
}

#[test]
fn simultaneous_connect_rule_compares_names() {
    assert_eq!(resolve_simultaneous("b@h", "a@h"), AcceptPending::Nok);
    assert_eq!(
        resolve_simultaneous("a@h", "b@h"),
        AcceptPending::OkSimultaneous
    );
}

/// What the fuzz target does, on random input: never a panic, and bounded output.
fn drive_with(input: &[u8], initiator: bool, chunk: usize) {
    let now = Instant::now();
    let cfg = config("a@127.0.0.1", 1, DistFlags::ours(false).0, "c");
    let mut hs = if initiator {
        Handshake::initiator(cfg, "b@127.0.0.1", 7, now)
    } else {
        Handshake::acceptor(cfg, 7, now)
    };
    for c in input.chunks(chunk.max(1)) {
        if hs.handle_input(c, now).is_err() {
            break;
        }
        while let Some(ev) = hs.poll_event() {
            let _ = match ev {
                HandshakeEvent::PeerName { .. } => hs.accept_pending(AcceptPending::Ok, now),
                HandshakeEvent::AliveQuery => hs.answer_alive(true, now),
                HandshakeEvent::AwaitOldConnection => hs.old_connection_gone(now),
                HandshakeEvent::Established(mut est) => {
                    while let Ok(Some(_)) = frame::decode_dist(&mut est.rest, 1 << 20) {}
                    Ok(())
                }
            };
        }
        assert!(hs.take_output().map_or(0, |o| o.len()) <= 4 * frame::MAX_HANDSHAKE_FRAME);
    }
}

proptest::proptest! {
    #[test]
    fn random_input_never_panics(input in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600),
                                 initiator in proptest::prelude::any::<bool>(), chunk in 1usize..64) {
        drive_with(&input, initiator, chunk);
    }

    #[test]
    fn mutated_recorded_handshake_never_panics(pos in 0usize..200, byte in proptest::prelude::any::<u8>(),
                                               initiator in proptest::prelude::any::<bool>()) {
        let mut input = if initiator { recorded("acceptor") } else { recorded("initiator") };
        let at = pos % input.len().max(1);
        if let Some(b) = input.get_mut(at) {
            *b = byte;
        }
        drive_with(&input, initiator, 7);
    }
}
