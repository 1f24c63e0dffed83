//! Fuzzes the handshake state machine (both roles) and the dist framing with arbitrary peer
//! bytes: no input may panic, hang, or make a side buffer more than a bounded amount.
#![no_main]

use std::time::{Duration, Instant};

use beamq::dist::cookie::Cookie;
use beamq::dist::flags::{DistFlags, REQUIRED};
use beamq::dist::frame::{decode_dist, MAX_HANDSHAKE_FRAME};
use beamq::dist::handshake::{AcceptPending, Handshake, HandshakeConfig, HandshakeEvent};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, input)) = data.split_first() else { return };
    let Ok(cookie) = Cookie::new("fuzz") else { return };
    let cfg = HandshakeConfig {
        name: "a@127.0.0.1".into(),
        creation: 1,
        flags: DistFlags::ours(false),
        required: REQUIRED,
        cookie,
        setup_time: Duration::from_secs(7),
    };
    let now = Instant::now();
    let mut hs = if mode & 1 == 0 {
        Handshake::acceptor(cfg, 7, now)
    } else {
        Handshake::initiator(cfg, "b@127.0.0.1", 7, now)
    };
    // Feed in chunks whose sizes come from `mode`, answering every question.
    for chunk in input.chunks(usize::from(mode >> 1).max(1)) {
        if hs.handle_input(chunk, now).is_err() {
            break;
        }
        while let Some(ev) = hs.poll_event() {
            let _ = match ev {
                HandshakeEvent::PeerName { .. } => hs.accept_pending(AcceptPending::Ok, now),
                HandshakeEvent::AliveQuery => hs.answer_alive(true, now),
                HandshakeEvent::AwaitOldConnection => hs.old_connection_gone(now),
                HandshakeEvent::Established(mut est) => {
                    while let Ok(Some(_)) = decode_dist(&mut est.rest, 1 << 20) {}
                    Ok(())
                }
            };
        }
        assert!(hs.take_output().map_or(0, |o| o.len()) <= 4 * MAX_HANDSHAKE_FRAME);
    }
    let _ = hs.handle_timeout(now + Duration::from_secs(8));
});
