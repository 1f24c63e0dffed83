//! Raw frame throughput of one dist connection, beamq to beamq over loopback (connection layer
//! only: no term encoding). Run: `cargo bench --bench dist_frames`.
//! Prints frames/s and MB/s for small (80-byte) and 64 KiB frames.

use std::time::{Duration, Instant};

use beamq::dist::cookie::Cookie;
use beamq::dist::nodename::{NameKind, NodeName};
use beamq::dist::setup::{self, LocalNode};
use bytes::Bytes;
use tokio::net::TcpListener;

fn node(name: &str) -> LocalNode {
    let name = NodeName::parse(name, NameKind::Long).unwrap_or_else(|e| panic!("{e}"));
    LocalNode::new(
        name,
        1,
        Cookie::new("bench").unwrap_or_else(|e| panic!("{e}")),
    )
}

async fn run(size: usize, count: usize) -> (f64, f64) {
    let a = node("a@127.0.0.1");
    let b = node("b@127.0.0.1");
    let l = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let addr = l.local_addr().unwrap_or_else(|e| panic!("{e}"));
    let acc = tokio::spawn(async move {
        let (s, _) = l.accept().await.unwrap_or_else(|e| panic!("{e}"));
        setup::accept(s, &a).await.unwrap_or_else(|e| panic!("{e}"))
    });
    let cb = setup::connect(addr, &b, "a@127.0.0.1")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut ca = acc.await.unwrap_or_else(|e| panic!("{e}"));
    let payload = Bytes::from(vec![112u8; size]);
    let start = Instant::now();
    let sender = cb.sender.clone();
    tokio::spawn(async move {
        for _ in 0..count {
            if sender.send(payload.clone()).await.is_err() {
                break;
            }
        }
    });
    let mut got = 0;
    while got < count {
        match tokio::time::timeout(Duration::from_secs(10), ca.incoming.recv()).await {
            Ok(Some(_)) => got += 1,
            _ => panic!("stalled after {got} frames"),
        }
    }
    let secs = start.elapsed().as_secs_f64();
    (count as f64 / secs, (count * size) as f64 / secs / 1e6)
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build();
    let rt = rt.unwrap_or_else(|e| panic!("{e}"));
    for (size, count) in [(80usize, 1_000_000usize), (64 * 1024, 20_000)] {
        let (fps, mbs) = rt.block_on(run(size, count));
        println!("dist frames {size:>6} B: {fps:>12.0} frames/s {mbs:>9.1} MB/s");
    }
}
