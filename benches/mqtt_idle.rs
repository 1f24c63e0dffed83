//! Heap bytes per idle MQTT connection, and which allocations they are.
//!
//! `scripts/bench-mqtt --axes idle` measures the broker's RSS from outside; this counts the
//! heap from inside: a counting global allocator (live bytes and live blocks per size class),
//! a broker on 127.0.0.1 port 0 with the default configuration, and N blocking client sockets
//! in this process that each send a v3.1.1 CONNECT (client id `idle-<i>`, keep alive 60 s),
//! read the CONNACK and then stay silent. The client side allocates nothing per socket (the
//! `Vec` holding them is sized before the first count), so the growth is the broker's. The
//! size classes whose live block count grew by about N are the per-connection allocations;
//! glibc adds 8–16 bytes of chunk header and rounding to each block, which RSS then shows.
//!
//! Run: `cargo bench --bench mqtt_idle` (`IDLE_CONNS=N`, default 5000; it needs 2N file
//! descriptors and raises the soft limit to the hard one).

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

use beamq::mqtt::broker::{Broker, BrokerConfig};

#[path = "../tests/common/fdlimit.rs"]
mod fdlimit;
use beamq::mqtt::transport::{ListenerConfig, ListenerKind};

/// Size classes of 8 bytes up to this size; larger blocks share the last class.
const CLASSES: usize = 4096;
const CLASS: usize = 8;

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);
static BLOCKS: [AtomicIsize; CLASSES + 1] = [const { AtomicIsize::new(0) }; CLASSES + 1];

fn class(size: usize) -> usize {
    (size.div_ceil(CLASS)).min(CLASSES)
}

fn count(size: usize, delta: isize) {
    LIVE.fetch_add(delta * size as isize, Ordering::Relaxed);
    BLOCKS[class(size)].fetch_add(delta, Ordering::Relaxed);
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        count(l.size(), 1);
        System.alloc(l)
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        count(l.size(), 1);
        System.alloc_zeroed(l)
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        count(l.size(), -1);
        System.dealloc(p, l)
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        count(l.size(), -1);
        count(new, 1);
        System.realloc(p, l, new)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

struct Snapshot {
    live: isize,
    blocks: Vec<isize>,
}

fn snapshot() -> Snapshot {
    Snapshot {
        live: LIVE.load(Ordering::Relaxed),
        blocks: BLOCKS.iter().map(|b| b.load(Ordering::Relaxed)).collect(),
    }
}

/// A v3.1.1 CONNECT: clean session, keep alive 60 s, client id `id`.
fn connect_packet(id: &str) -> Vec<u8> {
    let mut body = vec![0, 4, b'M', b'Q', b'T', b'T', 4, 0x02, 0, 60];
    body.extend_from_slice(&(id.len() as u16).to_be_bytes());
    body.extend_from_slice(id.as_bytes());
    let mut p = vec![0x10, body.len() as u8];
    p.extend(body);
    p
}

fn open(addr: SocketAddr, i: usize) -> std::io::Result<TcpStream> {
    let mut s = TcpStream::connect(addr)?;
    s.write_all(&connect_packet(&format!("idle-{i}")))?;
    let mut connack = [0u8; 4];
    s.read_exact(&mut connack)?;
    if connack != [0x20, 2, 0, 0] {
        return Err(std::io::Error::other(format!("CONNACK {connack:?}")));
    }
    Ok(s)
}

fn main() {
    fdlimit::raise_soft_nofile(u64::MAX);
    let n: usize = std::env::var("IDLE_CONNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5000);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let broker = rt.block_on(async { Broker::new(BrokerConfig::default()) });
    let cfg = ListenerConfig::new(SocketAddr::from(([127, 0, 0, 1], 0)), ListenerKind::Tcp);
    let addr = rt.block_on(broker.listen(&cfg)).expect("listen");
    // Warm up: the first connections allocate the runtime's and the store's shared parts.
    let warm: Vec<TcpStream> = (0..64)
        .map(|i| open(addr, n + i).expect("warm-up"))
        .collect();
    drop(warm);
    std::thread::sleep(Duration::from_millis(500));
    let mut conns = Vec::with_capacity(n);
    let before = snapshot();
    let t = Instant::now();
    for i in 0..n {
        conns.push(open(addr, i).expect("connect"));
    }
    let took = t.elapsed();
    std::thread::sleep(Duration::from_secs(1));
    let after = snapshot();
    let per = (after.live - before.live) as f64 / n as f64;
    println!(
        "{n} idle connections: {per:.0} heap bytes per connection ({:.1} MiB), \
         {:.0} connections/s one at a time",
        (after.live - before.live) as f64 / 1048576.0,
        n as f64 / took.as_secs_f64()
    );
    println!("per-connection blocks (size class: blocks per connection, bytes per connection):");
    let mut counted = 0.0;
    for c in 0..=CLASSES {
        let d = after.blocks[c] - before.blocks[c];
        let per_conn = d as f64 / n as f64;
        if per_conn >= 0.05 {
            let bytes = if c == CLASSES {
                f64::NAN
            } else {
                per_conn * (c * CLASS) as f64
            };
            counted += if bytes.is_nan() { 0.0 } else { bytes };
            let label = if c == CLASSES {
                format!("> {}", CLASSES * CLASS)
            } else {
                format!("{:>5}", c * CLASS)
            };
            println!("  {label} B: {per_conn:5.2} blocks, ~{bytes:.0} B");
        }
    }
    println!("  (sum of the classes above: ~{counted:.0} B; sizes rounded up to {CLASS})");
    drop(conns);
    std::thread::sleep(Duration::from_millis(500));
    drop(rt);
}
