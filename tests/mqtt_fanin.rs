//! End-to-end: QoS 0 fan-in into a subscriber slower than its publishers (issue 5, the 100→1
//! axis of BENCHMARKS.md; docs/decisions.md "QoS 0 under a busy subscriber").
//!
//! Flat-out publishers on `in/N` feed one subscriber of `in/+` that reads as fast as it can;
//! an unrelated publisher sends `other/t` at a fixed rate to a subscriber of its own. The
//! broker must admit the fan-in publishers at the pace their subscriber takes messages (they
//! wait for room in its queue instead of being read, matched and dropped), so most of what it
//! reads is delivered, and the unrelated pair keeps its messages and a low latency. Before the
//! admission gate, the first publisher that waited a grace in vain marked the queue congested,
//! all of them then read and dropped at full speed, and the subscriber's own task was starved
//! of the CPU to drain its queue (3 % of what the broker read was delivered in the benchmark).
//!
//! The bound on the gate: a subscriber that reads nothing at all holds its publisher up one
//! grace, not one per batch, so a reading subscriber of the same publisher keeps its pace.
//!
//! The clients are plain blocking sockets on their own threads (not tasks of the broker's
//! runtime), writing MQTT 3.1.1 packets encoded here.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use beamq::mqtt::broker::{Broker, BrokerConfig};
use beamq::mqtt::transport::{ListenerConfig, ListenerKind};

const PUBLISHERS: usize = 16;
const RUN: Duration = Duration::from_secs(3);
const OTHER_EVERY: Duration = Duration::from_millis(5);

fn packet(first: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![first];
    let mut len = body.len();
    loop {
        let mut b = (len % 128) as u8;
        len /= 128;
        if len > 0 {
            b |= 0x80;
        }
        out.push(b);
        if len == 0 {
            break;
        }
    }
    out.extend_from_slice(body);
    out
}

fn string(s: &str) -> Vec<u8> {
    let mut out = (s.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(s.as_bytes());
    out
}

fn publish(topic: &str, payload: &[u8]) -> Vec<u8> {
    let mut body = string(topic);
    body.extend_from_slice(payload);
    packet(0x30, &body)
}

fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// Reads one packet: (first byte, body).
fn read_packet(s: &mut TcpStream) -> std::io::Result<(u8, Vec<u8>)> {
    let mut first = [0u8; 1];
    s.read_exact(&mut first)?;
    let (mut len, mut shift) = (0usize, 0);
    loop {
        let mut b = [0u8; 1];
        s.read_exact(&mut b)?;
        len |= usize::from(b[0] & 0x7f) << shift;
        shift += 7;
        if b[0] & 0x80 == 0 {
            break;
        }
    }
    let mut body = vec![0u8; len];
    s.read_exact(&mut body)?;
    Ok((first[0], body))
}

/// A connected MQTT 3.1.1 client (CONNACK read).
fn connect(port: u16, id: &str) -> TcpStream {
    connect_with(port, id, None)
}

/// [`connect`] with the socket's receive buffer set before connecting (a small one stops the
/// kernel from absorbing megabytes for a client that does not read).
fn connect_with(port: u16, id: &str, recv_buffer: Option<usize>) -> TcpStream {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    if let Some(n) = recv_buffer {
        sock.set_recv_buffer_size(n).unwrap();
    }
    sock.connect(&SocketAddr::from(([127, 0, 0, 1], port)).into())
        .unwrap();
    let mut s: TcpStream = sock.into();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut body = string("MQTT");
    body.extend_from_slice(&[4, 0x02, 0, 60]);
    body.extend_from_slice(&string(id));
    s.write_all(&packet(0x10, &body)).unwrap();
    let (first, ack) = read_packet(&mut s).unwrap();
    assert_eq!((first, ack), (0x20, vec![0, 0]), "CONNACK of {id}");
    s
}

fn subscribe(port: u16, id: &str, filter: &str) -> TcpStream {
    subscribe_with(port, id, filter, None)
}

fn subscribe_with(port: u16, id: &str, filter: &str, recv_buffer: Option<usize>) -> TcpStream {
    let mut s = connect_with(port, id, recv_buffer);
    let mut body = vec![0, 1];
    body.extend_from_slice(&string(filter));
    body.push(0);
    s.write_all(&packet(0x82, &body)).unwrap();
    let (first, _) = read_packet(&mut s).unwrap();
    assert_eq!(first, 0x90, "SUBACK of {id}");
    s
}

/// Counts the PUBLISHes arriving on `s`; with `latencies`, records each one's send-to-receive
/// time (µs) from the timestamp its payload starts with.
fn reader(
    mut s: TcpStream,
    count: Arc<AtomicU64>,
    latencies: Option<Arc<std::sync::Mutex<Vec<u64>>>>,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        while let Ok((first, body)) = read_packet(&mut s) {
            if first & 0xf0 != 0x30 {
                continue;
            }
            count.fetch_add(1, Ordering::Relaxed);
            if let Some(l) = &latencies {
                let topic_len = usize::from(u16::from_be_bytes([body[0], body[1]]));
                let at = 2 + topic_len;
                let mut sent = [0u8; 8];
                sent.copy_from_slice(&body[at..at + 8]);
                let lat = now_micros().saturating_sub(u64::from_be_bytes(sent));
                l.lock().unwrap().push(lat);
            }
        }
    })
}

/// Stops the client threads and closes their sockets, also when an assertion fails (so a
/// failing run ends instead of leaving flat-out publishers behind).
struct Clients {
    stop: Arc<AtomicBool>,
    sockets: Vec<TcpStream>,
    threads: Vec<JoinHandle<()>>,
}

impl Clients {
    fn close(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for s in &self.sockets {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }
}

impl Drop for Clients {
    fn drop(&mut self) {
        self.close();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fan_in_publishers_wait_for_their_subscriber_and_others_keep_their_pace() {
    let b = Broker::new(BrokerConfig {
        sys_interval: None,
        ..Default::default()
    });
    let cfg = ListenerConfig::new(SocketAddr::from(([127, 0, 0, 1], 0)), ListenerKind::Tcp);
    let port = b.listen(&cfg).await.unwrap().port();

    // Every client connects before the flood starts. The test's own waits are on this thread
    // (not the broker's runtime), so they end on time however busy the broker is.
    let (fanin, other, mut publishers, mut other_pub) = tokio::task::spawn_blocking(move || {
        let publishers: Vec<TcpStream> = (0..PUBLISHERS)
            .map(|i| connect(port, &format!("fanin-pub-{i}")))
            .collect();
        (
            subscribe(port, "fanin-sub", "in/+"),
            subscribe(port, "other-sub", "other/t"),
            publishers,
            connect(port, "other-pub"),
        )
    })
    .await
    .unwrap();
    let mut clients = Clients {
        stop: Arc::new(AtomicBool::new(false)),
        sockets: Vec::new(),
        threads: Vec::new(),
    };
    for s in [&fanin, &other, &other_pub].into_iter().chain(&publishers) {
        clients.sockets.push(s.try_clone().unwrap());
    }
    let fanin_got = Arc::new(AtomicU64::new(0));
    let other_got = Arc::new(AtomicU64::new(0));
    let latencies = Arc::new(std::sync::Mutex::new(Vec::new()));
    clients.threads.push(reader(fanin, fanin_got.clone(), None));
    clients
        .threads
        .push(reader(other, other_got.clone(), Some(latencies.clone())));

    // The unrelated publisher: one timestamped message every 5 ms.
    let other_sent = Arc::new(AtomicU64::new(0));
    let other_stop = Arc::new(AtomicBool::new(false));
    {
        let (stop, sent) = (other_stop.clone(), other_sent.clone());
        clients.threads.push(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let mut payload = now_micros().to_be_bytes().to_vec();
                payload.resize(64, b'y');
                if other_pub.write_all(&publish("other/t", &payload)).is_err() {
                    return;
                }
                sent.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(OTHER_EVERY);
            }
        }));
    }
    // Flat-out publishers: 100 PUBLISHes of 64 bytes per write, as fast as the socket takes them.
    for (i, mut s) in publishers.drain(..).enumerate() {
        let burst: Vec<u8> = (0..100)
            .flat_map(|_| publish(&format!("in/{i}"), &[b'x'; 64]))
            .collect();
        let stop = clients.stop.clone();
        clients.threads.push(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if s.write_all(&burst).is_err() {
                    return;
                }
            }
        }));
    }

    std::thread::sleep(RUN);
    let m = b.metrics().snapshot();
    let delivered = fanin_got.load(Ordering::Relaxed);
    other_stop.store(true, Ordering::Relaxed);
    // Let the unrelated pair's last messages arrive before counting them.
    std::thread::sleep(Duration::from_millis(300));
    let other_sent = other_sent.load(Ordering::Relaxed);
    let other_received = other_got.load(Ordering::Relaxed);
    drop(clients);
    let mut lat = std::mem::take(&mut *latencies.lock().unwrap());
    lat.sort_unstable();
    let p99 = lat.get(lat.len() * 99 / 100).copied().unwrap_or(u64::MAX);
    eprintln!(
        "read {} dropped {} fan-in delivered {delivered}; other {other_received}/{other_sent}, p99 {p99} µs",
        m.messages_received, m.messages_dropped
    );

    // Most of what the broker read from the fan-in publishers reached their subscriber: it
    // read them at the subscriber's pace instead of reading and dropping.
    assert!(
        m.messages_dropped * 4 < m.messages_received,
        "dropped {} of {} read",
        m.messages_dropped,
        m.messages_received
    );
    assert!(delivered > 0);
    // The unrelated pair is not held up by the congested subscriber or its publishers.
    assert!(
        other_received * 10 >= other_sent * 9,
        "unrelated subscriber got {other_received} of {other_sent}"
    );
    assert!(p99 < 500_000, "unrelated subscriber's p99 latency {p99} µs");
}

/// The other side of the gate: a QoS 0 subscriber that stops reading altogether must not hold
/// up its publisher for more than a grace. Once its socket and channel are full and it took
/// nothing for a whole grace, its deliveries are dropped at once and the publisher goes on at
/// the pace of its other, reading subscriber (a gate that waited a grace per batch would
/// throttle it to ~50 reads a second).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_stops_reading_does_not_hold_up_its_publisher() {
    let b = Broker::new(BrokerConfig {
        sys_interval: None,
        ..Default::default()
    });
    let cfg = ListenerConfig::new(SocketAddr::from(([127, 0, 0, 1], 0)), ListenerKind::Tcp);
    let port = b.listen(&cfg).await.unwrap().port();
    let (live, mut publisher) = tokio::task::spawn_blocking(move || {
        (subscribe(port, "live-sub", "t"), connect(port, "pub"))
    })
    .await
    .unwrap();
    let mut clients = Clients {
        stop: Arc::new(AtomicBool::new(false)),
        sockets: vec![live.try_clone().unwrap(), publisher.try_clone().unwrap()],
        threads: Vec::new(),
    };
    let got = Arc::new(AtomicU64::new(0));
    clients.threads.push(reader(live, got.clone(), None));
    let burst: Vec<u8> = (0..100).flat_map(|_| publish("t", &[b'x'; 64])).collect();
    let stop = clients.stop.clone();
    clients.threads.push(std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            if publisher.write_all(&burst).is_err() {
                return;
            }
        }
    }));
    let rate = |d: Duration| {
        let n0 = got.load(Ordering::Relaxed);
        std::thread::sleep(d);
        got.load(Ordering::Relaxed) - n0
    };
    std::thread::sleep(Duration::from_millis(500));
    let alone = rate(Duration::from_secs(1));

    // A second subscriber that never reads: its small socket buffer, the broker's send buffer
    // and output, then its channel fill up (well within 2 s at this rate).
    let stuck = subscribe_with(port, "stuck-sub", "t", Some(4096));
    clients.sockets.push(stuck.try_clone().unwrap());
    let dropped = b.metrics().snapshot().messages_dropped;
    std::thread::sleep(Duration::from_secs(2));
    let beside_stuck = rate(Duration::from_secs(1));
    let dropped = b.metrics().snapshot().messages_dropped - dropped;
    drop(clients);
    drop(stuck);
    eprintln!(
        "live subscriber: {alone}/s alone, {beside_stuck}/s beside a stuck one ({dropped} dropped)"
    );
    assert!(
        dropped > 0,
        "the stuck subscriber's deliveries were never dropped"
    );
    assert!(
        beside_stuck * 4 >= alone,
        "live subscriber fell from {alone}/s to {beside_stuck}/s beside a stuck one"
    );
}
