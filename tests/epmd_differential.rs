//! Byte-level differential tests: the same request sequences against OTP's C epmd
//! (`/usr/bin/epmd`) and `beamq epmd`, each on its own loopback port; the transcripts must match
//! (creations, which come from the clock, and DUMP's descriptor numbers are normalised).
mod epmd_support;

use std::io::Write;
use std::net::Shutdown;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use epmd_support::*;

type Transcript = Vec<(String, Vec<u8>)>;

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Replace a 32-bit creation by a marker after checking it is "the clock plus one".
fn normalise_x_resp(label: &str, resp: &[u8]) -> (Vec<u8>, u32) {
    assert_eq!(resp.len(), 6, "{label}: ALIVE2_X_RESP length");
    let creation = u32::from_be_bytes([resp[2], resp[3], resp[4], resp[5]]);
    if resp[1] == 0 {
        let delta = i64::from(creation) - now();
        assert!(
            (-10..=10).contains(&delta),
            "{label}: creation {creation} not seeded from the clock"
        );
        (vec![resp[0], resp[1], b'C'], creation)
    } else {
        (resp.to_vec(), creation)
    }
}

/// Check the 4-byte port header of NAMES/DUMP answers and replace it by a marker.
fn header(port: u16, bytes: Vec<u8>) -> Vec<u8> {
    assert!(
        bytes.len() >= 4,
        "NAMES/DUMP answer without header: {bytes:?}"
    );
    assert_eq!(
        bytes[..4],
        u32::from(port).to_be_bytes(),
        "header is not the epmd port"
    );
    let mut out = b"<port>".to_vec();
    out.extend_from_slice(&bytes[4..]);
    out
}

fn strict_scenario(d: &Daemon) -> Transcript {
    let p = d.port;
    let mut t: Transcript = Vec::new();
    let mut push = |label: &str, bytes: Vec<u8>| t.push((label.to_owned(), bytes));

    push("names empty", header(p, names(p)));
    push("port2 unknown", exchange(p, &framed(b"znobody")));
    push("dump empty", header(p, exchange(p, &framed(b"d"))));

    let (a_conn, resp) = register(p, &alive2_body(b"a", 5001, 6, b"xy"));
    let (norm, a_creation) = normalise_x_resp("register a", &resp);
    push("register a", norm);
    let (_dup_conn, dup) = register(p, &alive2_body(b"a", 5002, 6, b""));
    push("register duplicate a", dup);
    let (b_conn, b_resp) = register(p, &alive2_body(b"b", 5003, 5, b""));
    assert!(
        (1..=3).contains(&b_resp[3]),
        "old-version creation {} not in 1..=3",
        b_resp[3]
    );
    push("register b (highvsn 5)", b_resp[..3].to_vec());
    let (bad_conn, bad) = register(p, &alive2_body(b"a\xffz", 5004, 6, b""));
    push("register invalid utf8", bad);
    let long = "é".repeat(256);
    let (_long_conn, long_resp) = register(p, &alive2_body(long.as_bytes(), 5005, 6, b""));
    push("register 256 chars", long_resp);
    let (_xl_conn, xl) = register(p, &alive2_body(b"c", 5006, 6, &[1u8; 1021]));
    push("register extra 1021 bytes", xl);
    drop(bad_conn);

    push(
        "names a b",
        wait_names(p, |n| n.contains("name a") && n.contains("name b")).into_bytes(),
    );
    push("port2 a", exchange(p, &framed(b"za")));
    push("port2 a with NUL", exchange(p, &framed(b"za\0")));
    push("port2 b", exchange(p, &framed(b"zb")));
    push("dump a b", header(p, mask_fds(&exchange(p, &framed(b"d")))));
    push("kill with live nodes", exchange(p, &framed(b"k")));
    push("stop when strict", exchange(p, &framed(b"sa")));

    push("zero length", exchange(p, &[0, 0]));
    push("garbage code", exchange(p, &framed(b"Q")));
    push(
        "alive2 13 bytes",
        exchange(p, &framed(&alive2_body(b"", 1, 6, b""))),
    );
    push(
        "alive2 name too long for packet",
        exchange(p, &framed(&alive2_body(b"abc", 1, 6, b"")[..14])),
    );
    push(
        "alive2 NUL in name",
        exchange(p, &framed(&alive2_body(b"a\0b", 1, 6, b""))),
    );
    let mut p255 = b"z".to_vec();
    p255.extend_from_slice("a".repeat(255).as_bytes());
    push("port2 255 chars", exchange(p, &framed(&p255)));
    push("port2 empty", exchange(p, &framed(b"z\0")));
    let mut pipelined = framed(b"n");
    pipelined.extend_from_slice(&framed(b"n"));
    push("two requests in one write", exchange(p, &pipelined));
    push("length 3058", exchange(p, &3058u16.to_be_bytes()));
    let mut s = connect(p);
    s.write_all(&[0, 5, b'z', b'a']).unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    push("truncated then half-close", read_to_close(&mut s));

    drop(a_conn);
    push(
        "names after a closed",
        wait_names(p, |n| !n.contains("name a")).into_bytes(),
    );
    let (a2_conn, resp) = register(p, &alive2_body(b"a", 5007, 6, b""));
    let (norm, a2_creation) = normalise_x_resp("register a again", &resp);
    push("register a again", norm);
    push(
        "creation bumped by one",
        vec![u8::from(a2_creation == a_creation.wrapping_add(1))],
    );

    let mut b_conn = b_conn;
    b_conn.write_all(b"garbage").unwrap();
    push(
        "names after garbage on b",
        wait_names(p, |n| !n.contains("name b")).into_bytes(),
    );
    push(
        "dump with unused",
        header(p, mask_fds(&exchange(p, &framed(b"d")))),
    );
    drop(a2_conn);
    t
}

fn relaxed_scenario(d: &mut Daemon) -> Transcript {
    let p = d.port;
    let mut t: Transcript = Vec::new();
    let (mut a_conn, resp) = register(p, &alive2_body(b"a", 5001, 6, b""));
    t.push(("register a".into(), normalise_x_resp("register a", &resp).0));
    t.push(("stop unknown".into(), exchange(p, &framed(b"szz"))));
    t.push(("stop a".into(), exchange(p, &framed(b"sa"))));
    t.push((
        "registration closed by stop".into(),
        read_to_close(&mut a_conn),
    ));
    t.push(("names after stop".into(), header(p, names(p))));
    let (_b_conn, _) = register(p, &alive2_body(b"b", 5002, 6, b""));
    t.push(("kill with live node".into(), exchange(p, &framed(b"k"))));
    let status = d.exited_within(Duration::from_secs(5));
    t.push((
        "exited 0 after kill".into(),
        vec![u8::from(status.is_some_and(|s| s.success()))],
    ));
    t
}

fn compare(c: Transcript, ours: Transcript) {
    assert_eq!(c.len(), ours.len());
    for ((label, want), (_, got)) in c.iter().zip(ours.iter()) {
        assert_eq!(
            String::from_utf8_lossy(got),
            String::from_utf8_lossy(want),
            "step {label:?}: beamq {got:?} vs C epmd {want:?}"
        );
    }
}

#[test]
fn strict_daemon_matches_c_epmd_byte_for_byte() {
    if !have_c_epmd() {
        eprintln!("SKIP: {C_EPMD} not installed (scripts/test-all installs erlang-nox)");
        return;
    }
    let c = start_c(&[]);
    let ours = start_beamq(&[]);
    compare(strict_scenario(&c), strict_scenario(&ours));
}

#[test]
fn relaxed_daemon_matches_c_epmd_byte_for_byte() {
    if !have_c_epmd() {
        eprintln!("SKIP: {C_EPMD} not installed (scripts/test-all installs erlang-nox)");
        return;
    }
    let mut c = start_c(&["-relaxed_command_check"]);
    let mut ours = start_beamq(&["-relaxed_command_check"]);
    compare(relaxed_scenario(&mut c), relaxed_scenario(&mut ours));
}
