//! Abuse of `beamq epmd`: silent clients, malformed and oversized requests, garbage on
//! registrations, and 10,000 registrations at once. The daemon must close what C epmd closes,
//! keep serving everyone else, and not grow.
mod epmd_support;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use epmd_support::*;

#[test]
fn silent_client_is_closed_after_packet_timeout_and_others_are_served() {
    let daemon = start_beamq(&["-packet_timeout", "1"]);
    let mut silent: Vec<_> = (0..50).map(|_| connect(daemon.port)).collect();
    // Meanwhile everyone else is served.
    let (_n, resp) = register(daemon.port, &alive2_body(b"busy", 7000, 6, b""));
    assert_eq!(&resp[..2], &[118, 0]);
    assert!(wait_names(daemon.port, |n| n.contains("name busy")).contains("name busy at port 7000"));
    let start = Instant::now();
    for s in &mut silent {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(s.read(&mut buf).expect("closed, not timed out"), 0);
    }
    let waited = start.elapsed();
    assert!(waited < Duration::from_secs(4), "closed after {waited:?}");
}

#[test]
fn registration_is_not_subject_to_packet_timeout() {
    let daemon = start_beamq(&["-packet_timeout", "1"]);
    let (_conn, _) = register(daemon.port, &alive2_body(b"patient", 7000, 6, b""));
    std::thread::sleep(Duration::from_millis(2500));
    assert!(String::from_utf8_lossy(&names(daemon.port)).contains("name patient"));
}

#[test]
fn half_sent_request_is_closed_after_packet_timeout() {
    let daemon = start_beamq(&["-packet_timeout", "1"]);
    let mut s = connect(daemon.port);
    s.write_all(&[0, 9, b'z', b'a']).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 8];
    assert_eq!(s.read(&mut buf).expect("closed"), 0);
}

fn abuse_round(port: u16) {
    let mut pipelined = framed(b"n");
    pipelined.extend_from_slice(&framed(b"za"));
    let oversized = {
        let mut v = 3058u16.to_be_bytes().to_vec();
        v.extend_from_slice(&[b'x'; 1000]);
        v
    };
    let cases: Vec<Vec<u8>> = vec![
        vec![0, 0],
        vec![0xff, 0xff],
        oversized,
        framed(b"Q"),
        framed(&alive2_body(b"", 1, 6, b"")),
        framed(&alive2_body(b"a\0b", 1, 6, b"")),
        pipelined,
        framed(b"z\0"),
    ];
    for case in &cases {
        let got = exchange(port, case);
        assert!(got.is_empty(), "{case:?} answered {got:?}");
    }
    // Garbage right after a registration unregisters it.
    let (mut s, resp) = register(port, &alive2_body(b"victim", 1, 6, b""));
    assert_eq!(&resp[..2], &[118, 0]);
    s.write_all(b"\x00\x01garbage").unwrap();
    assert!(read_to_close(&mut s).is_empty());
}

#[test]
fn malformed_requests_close_cleanly_and_memory_stays_flat() {
    let daemon = start_beamq(&[]);
    let pid = daemon.child.id();
    for _ in 0..100 {
        abuse_round(daemon.port);
    }
    let before = rss_kib(pid);
    for _ in 0..400 {
        abuse_round(daemon.port);
    }
    let after = rss_kib(pid);
    assert!(before > 0, "could not read VmRSS");
    assert!(
        after < before + 2048,
        "RSS grew from {before} KiB to {after} KiB"
    );
    assert!(!wait_names(daemon.port, |n| !n.contains("victim")).contains("victim"));
    assert_eq!(exchange(daemon.port, &framed(b"zvictim")), vec![119, 1]);
}

fn hold_registrations(port: u16, n: usize, round: usize) -> Vec<std::net::TcpStream> {
    (0..n)
        .map(|i| {
            let name = format!("node{i}");
            let (s, resp) = register(
                port,
                &alive2_body(name.as_bytes(), 10_000 + (i % 50_000) as u16, 6, b""),
            );
            assert_eq!(
                &resp[..2],
                &[118, 0],
                "round {round}: registration {i} refused"
            );
            s
        })
        .collect()
}

#[test]
fn ten_thousand_registrations_at_once() {
    const N: usize = 10_000;
    let daemon = start_beamq(&[]);
    let pid = daemon.child.id();
    let held = hold_registrations(daemon.port, N, 1);
    let listing = names(daemon.port);
    let text = String::from_utf8_lossy(&listing[4..]);
    assert_eq!(text.lines().count(), N);
    assert!(
        text.starts_with(&format!("name node{} at port", N - 1)),
        "newest first"
    );
    let found = exchange(daemon.port, &framed(b"znode4321"));
    assert_eq!(
        &found[..4],
        &[
            119,
            0,
            ((10_000 + 4321) >> 8) as u8,
            ((10_000 + 4321) & 0xff) as u8
        ]
    );
    // A duplicate of a held name is still refused, and a stranger is still served.
    let (_dup, dup) = register(daemon.port, &alive2_body(b"node77", 1, 6, b""));
    assert_eq!(dup, vec![118, 1, 0, 0, 0, 99]);
    drop(held);
    assert_eq!(wait_names(daemon.port, |n| n.is_empty()), "");
    let after_first = rss_kib(pid);
    for round in 2..=3 {
        let held = hold_registrations(daemon.port, N, round);
        drop(held);
        assert_eq!(wait_names(daemon.port, |n| n.is_empty()), "");
        let now = rss_kib(pid);
        assert!(
            now < after_first + 4096,
            "RSS grew from {after_first} KiB to {now} KiB by identical round {round}"
        );
    }
}

#[test]
fn closed_stderr_does_not_break_serving() {
    // An Erlang port or a shell pipe may close the daemon's stderr; log lines must not then
    // take down the connection that triggered them (a refused registration logs a warning).
    let daemon = start_on_free_port("beamq", |port| {
        let mut child = std::process::Command::new(beamq_bin())
            .args(["epmd", "-port", &port.to_string(), "-address", "127.0.0.1"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn beamq epmd");
        drop(child.stderr.take());
        child
    });
    let port = daemon.port;
    let (_a, first) = register(port, &alive2_body(b"dup", 1, 6, b""));
    assert_eq!(&first[..2], &[118, 0]);
    let (_b, second) = register(port, &alive2_body(b"dup", 1, 6, b""));
    assert_eq!(second, vec![118, 1, 0, 0, 0, 99]);
    drop(daemon);
}
