//! `listeners.tcp.default.acceptors`: a node whose `RLIMIT_NOFILE` is capped holds more
//! connections than the cap, because each acceptor thread has a descriptor table of its own,
//! and a publish reaches subscribers held by every acceptor. The same cap with one acceptor
//! stops short: the test can fail.

mod common;

use std::io::{ErrorKind, Read as _, Write as _};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::beamq::Beamq;

/// The node's descriptor limit: well below [`CLIENTS`], and low enough that the test
/// process's own sockets fit in a default soft limit of 1024.
const NOFILE: u64 = 128;
const CLIENTS: usize = 300;
const TOPIC: &str = "acceptors/all";

fn connect_packet(client_id: &str) -> Vec<u8> {
    let mut body = vec![0, 4, b'M', b'Q', b'T', b'T', 4, 0x02, 0, 60];
    body.extend((client_id.len() as u16).to_be_bytes());
    body.extend(client_id.as_bytes());
    packet(0x10, &body)
}

fn subscribe_packet() -> Vec<u8> {
    let mut body = vec![0, 1];
    body.extend((TOPIC.len() as u16).to_be_bytes());
    body.extend(TOPIC.as_bytes());
    body.push(0);
    packet(0x82, &body)
}

fn publish_packet(payload: &[u8]) -> Vec<u8> {
    let mut body = (TOPIC.len() as u16).to_be_bytes().to_vec();
    body.extend(TOPIC.as_bytes());
    body.extend(payload);
    packet(0x30, &body)
}

fn packet(first: u8, body: &[u8]) -> Vec<u8> {
    assert!(body.len() < 128);
    let mut p = vec![first, body.len() as u8];
    p.extend(body);
    p
}

fn node(acceptors: usize) -> Beamq {
    // The test's own sockets: up to 2 × CLIENTS per test, two tests at once.
    common::fdlimit::raise_soft_nofile(4096);
    let config = format!("listeners.tcp.default.acceptors = {acceptors}\n");
    Beamq::start_limited(
        tempfile::tempdir().unwrap(),
        &["--mqtt-port", "0", "--ws-port", "off"],
        Some(&config),
        1,
        Some(NOFILE),
    )
}

/// Opens `n` clients that each send CONNECT at once; returns them all.
fn open_clients(port: u16, n: usize, prefix: &str) -> Vec<TcpStream> {
    (0..n)
        .map(|i| {
            let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
            s.write_all(&connect_packet(&format!("{prefix}-{i}")))
                .unwrap();
            s
        })
        .collect()
}

/// Reads exactly `want.len()` bytes within `limit`; false on timeout or a short read.
fn read_exact_within(s: &mut TcpStream, want: &[u8], limit: Duration) -> bool {
    let mut got = vec![0u8; want.len()];
    let mut n = 0;
    let until = Instant::now() + limit;
    while n < got.len() {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        s.set_read_timeout(Some(left)).unwrap();
        match s.read(&mut got[n..]) {
            Ok(0) => return false,
            Ok(k) => n += k,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return false
            }
            Err(e) => panic!("read: {e}"),
        }
    }
    assert_eq!(got, want);
    true
}

/// How many of `clients` have their CONNACK within `limit` in all.
fn connacks(clients: &mut [TcpStream], limit: Duration) -> usize {
    let until = Instant::now() + limit;
    let mut n = 0;
    for c in clients.iter_mut() {
        let left = until
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(20));
        if read_exact_within(c, &[0x20, 2, 0, 0], left) {
            n += 1;
        }
    }
    n
}

/// TCP sockets in the descriptor table of each `mqtt-acceptor-*` thread of `pid`.
fn sockets_per_acceptor(pid: u32) -> Vec<usize> {
    let mut out = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let task = task.unwrap().path();
        let comm = std::fs::read_to_string(task.join("comm")).unwrap_or_default();
        if !comm.starts_with("mqtt-acceptor-") {
            continue;
        }
        let sockets = std::fs::read_dir(task.join("fd"))
            .unwrap()
            .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
            .filter(|l| l.to_string_lossy().starts_with("socket:"))
            .count();
        out.push(sockets);
    }
    out
}

#[test]
fn one_acceptor_stops_at_the_descriptor_limit() {
    let node = node(1);
    let mut clients = open_clients(node.port("tcp"), CLIENTS, "one");
    let connected = connacks(&mut clients, Duration::from_secs(3));
    assert!(
        connected < CLIENTS && connected > 0,
        "{connected} of {CLIENTS} connected under RLIMIT_NOFILE {NOFILE}"
    );
}

#[test]
fn acceptors_hold_more_than_the_descriptor_limit_and_deliver_across() {
    let node = node(4);
    let mut clients = open_clients(node.port("tcp"), CLIENTS, "many");
    assert_eq!(
        connacks(&mut clients, Duration::from_secs(20)),
        CLIENTS,
        "under RLIMIT_NOFILE {NOFILE} with 4 acceptors"
    );
    let tables = sockets_per_acceptor(node.pid());
    assert_eq!(tables.len(), 4, "{tables:?}");
    assert!(
        tables.iter().filter(|&&n| n > 1).count() >= 2,
        "connections spread over several tables: {tables:?}"
    );
    assert!(tables.iter().sum::<usize>() > CLIENTS, "{tables:?}");

    // Every client subscribes; one more publishes: the message crosses acceptors.
    for c in &mut clients {
        c.write_all(&subscribe_packet()).unwrap();
    }
    for c in &mut clients {
        assert!(read_exact_within(
            c,
            &[0x90, 3, 0, 1, 0],
            Duration::from_secs(10)
        ));
    }
    let mut publisher = open_clients(node.port("tcp"), 1, "publisher").remove(0);
    assert!(read_exact_within(
        &mut publisher,
        &[0x20, 2, 0, 0],
        Duration::from_secs(10)
    ));
    publisher.write_all(&publish_packet(b"hello")).unwrap();
    let expected = publish_packet(b"hello");
    for (i, c) in clients.iter_mut().enumerate() {
        assert!(
            read_exact_within(c, &expected, Duration::from_secs(10)),
            "subscriber {i} got no PUBLISH"
        );
    }

    // Closed connections give their descriptors back: as many again connect.
    drop(clients);
    let mut again = Vec::new();
    let until = Instant::now() + Duration::from_secs(20);
    while again.len() < CLIENTS && Instant::now() < until {
        let mut batch = open_clients(node.port("tcp"), CLIENTS, "again");
        if connacks(&mut batch, Duration::from_secs(10)) == CLIENTS {
            again = batch;
        }
    }
    assert_eq!(again.len(), CLIENTS);
}
