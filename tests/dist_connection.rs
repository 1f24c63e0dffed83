//! Our connection layer against itself: frames both ways in order, a restarted peer replacing
//! its old connection (`alive`), simultaneous connects, dead-peer detection and garbage.
//! Listeners bind 127.0.0.1 port 0; no external process is started.

use std::net::SocketAddr;
use std::time::Duration;

use beamq::dist::connection::{Connection, NodeDown};
use beamq::dist::cookie::Cookie;
use beamq::dist::nodename::{NameKind, NodeName};
use beamq::dist::setup::{self, LocalNode, SetupError};
use bytes::Bytes;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

fn node(name: &str, ticktime_ms: u64) -> LocalNode {
    let name = NodeName::parse(name, NameKind::Long).unwrap_or_else(|e| panic!("{e}"));
    let cookie = Cookie::new("secret").unwrap_or_else(|e| panic!("{e}"));
    let mut n = LocalNode::new(name, 100, cookie);
    n.net_ticktime = Duration::from_millis(ticktime_ms);
    n.channel_capacity = 8;
    n
}

/// Accepts connections for `node` forever; results arrive on the channel.
async fn serve(
    node: LocalNode,
) -> (
    SocketAddr,
    mpsc::UnboundedReceiver<Result<Connection, SetupError>>,
) {
    let l = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let addr = l.local_addr().unwrap_or_else(|e| panic!("{e}"));
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let (node, tx) = (node.clone(), tx.clone());
            tokio::spawn(async move {
                let _ = tx.send(setup::accept(s, &node).await);
            });
        }
    });
    (addr, rx)
}

async fn next<T>(rx: &mut mpsc::UnboundedReceiver<T>) -> T {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("nothing arrived"))
}

#[tokio::test]
async fn frames_flow_both_ways_in_order_with_backpressure() {
    let a = node("a@127.0.0.1", 60_000);
    let b = node("b@127.0.0.1", 60_000);
    let (addr, mut accepted) = serve(a.clone()).await;
    let mut cb = setup::connect(addr, &b, "a@127.0.0.1")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut ca = next(&mut accepted).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (ca.peer.name.as_str(), ca.peer.creation),
        ("b@127.0.0.1", 100)
    );
    // 2000 frames through channels of 8: the sender waits rather than queueing without bound.
    let sender = cb.sender.clone();
    let producer = tokio::spawn(async move {
        for i in 0..2000u32 {
            let mut f = vec![112];
            f.extend_from_slice(&i.to_be_bytes());
            f.resize(5 + (i as usize % 300), 7);
            if sender.send(Bytes::from(f)).await.is_err() {
                return false;
            }
        }
        true
    });
    for i in 0..2000u32 {
        let f = tokio::time::timeout(Duration::from_secs(5), ca.incoming.recv())
            .await
            .ok()
            .flatten();
        let f = f.unwrap_or_else(|| panic!("frame {i} missing"));
        assert_eq!(&f[1..5], &i.to_be_bytes());
        assert_eq!(f.len(), 5 + (i as usize % 300));
    }
    assert!(producer.await.unwrap_or(false));
    ca.sender
        .send(Bytes::from_static(&[131, 68, 0, 1]))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let back = tokio::time::timeout(Duration::from_secs(5), cb.incoming.recv())
        .await
        .ok()
        .flatten();
    assert_eq!(back.as_deref(), Some(&[131, 68, 0, 1][..]));
    // Closing one side is a connection_closed on the other.
    ca.sender.disconnect();
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(5), cb.down.wait())
            .await
            .ok(),
        Some(NodeDown::ConnectionClosed)
    );
}

#[tokio::test]
async fn restarted_peer_replaces_its_old_connection() {
    let a = node("a@127.0.0.1", 60_000);
    let (addr, mut accepted) = serve(a.clone()).await;
    let b1 = node("b@127.0.0.1", 60_000);
    let _old_b = setup::connect(addr, &b1, "a@127.0.0.1")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut old_a = next(&mut accepted).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(a.pending.is_up("b@127.0.0.1"));
    // b restarts (a new table, nothing up) while a still holds the old connection.
    let b2 = node("b@127.0.0.1", 60_000);
    let new_b = setup::connect(addr, &b2, "a@127.0.0.1")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let new_a = next(&mut accepted).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(new_a.peer.name, "b@127.0.0.1");
    assert_eq!(
        old_a.down.wait().await,
        NodeDown::Disconnected,
        "a closed the old connection"
    );
    assert!(a.pending.is_up("b@127.0.0.1"));
    assert!(!new_b.sender.is_down() && !new_a.sender.is_down());
}

#[tokio::test]
async fn simultaneous_connect_leaves_one_connection() {
    let a = node("a@127.0.0.1", 60_000);
    let b = node("b@127.0.0.1", 60_000);
    let (addr_a, mut acc_a) = serve(a.clone()).await;
    let (addr_b, mut acc_b) = serve(b.clone()).await;
    let (ra, rb) = tokio::join!(
        setup::connect(addr_b, &a, "b@127.0.0.1"),
        setup::connect(addr_a, &b, "a@127.0.0.1")
    );
    let ia = next(&mut acc_a).await;
    let ib = next(&mut acc_b).await;
    // Each side: exactly one of (its outgoing attempt, its accepted attempt) survives, and the
    // two survivors are the two ends of the same connection.
    let a_out = ra.is_ok();
    let b_out = rb.is_ok();
    assert_ne!(a_out, ia.is_ok(), "a keeps exactly one: {ra:?} / {ia:?}");
    assert_ne!(b_out, ib.is_ok(), "b keeps exactly one: {rb:?} / {ib:?}");
    assert_eq!(
        a_out,
        ib.is_ok(),
        "a's outgoing connection is b's accepted one"
    );
    // dist_util's rule: the greater name ("b@..." > "a@...") keeps its own attempt.
    assert!(b_out, "b's attempt wins");
    assert!(a.pending.is_up("b@127.0.0.1") && b.pending.is_up("a@127.0.0.1"));
}

#[tokio::test]
async fn silent_peer_is_dropped_after_ticktime() {
    let a = node("a@127.0.0.1", 800);
    let (addr, mut accepted) = serve(a.clone()).await;
    // A peer that completes the handshake and then never writes: our own node with a huge
    // ticktime, whose writer we stall by never sending and whose ticks are 100 s apart.
    let quiet = node("q@127.0.0.1", 400_000);
    let q = setup::connect(addr, &quiet, "a@127.0.0.1")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut ca = next(&mut accepted).await.unwrap_or_else(|e| panic!("{e}"));
    let started = std::time::Instant::now();
    let reason = tokio::time::timeout(Duration::from_secs(5), ca.down.wait())
        .await
        .ok();
    assert_eq!(reason, Some(NodeDown::NetTickTimeout));
    // 4 intervals of 200 ms (silent from the start); the upper bound leaves room for a loaded machine.
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(600) && took <= Duration::from_millis(3000),
        "took {took:?}"
    );
    drop(q);
}

#[tokio::test]
async fn oversized_frame_closes_the_connection() {
    let mut a = node("a@127.0.0.1", 60_000);
    a.max_frame = 1000;
    let (addr, mut accepted) = serve(a.clone()).await;
    let b = node("b@127.0.0.1", 60_000);
    let cb = setup::connect(addr, &b, "a@127.0.0.1")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut ca = next(&mut accepted).await.unwrap_or_else(|e| panic!("{e}"));
    cb.sender
        .send(Bytes::from(vec![112; 2000]))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let reason = tokio::time::timeout(Duration::from_secs(5), ca.down.wait())
        .await
        .ok();
    assert!(
        matches!(reason, Some(NodeDown::BadFrame(_))),
        "got {reason:?}"
    );
}

#[tokio::test]
async fn garbage_instead_of_a_handshake_fails_with_the_address() {
    let a = node("a@127.0.0.1", 60_000);
    let (addr, mut accepted) = serve(a.clone()).await;
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    s.write_all(b"GET / HTTP/1.1\r\n\r\n")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    match next(&mut accepted).await {
        Err(SetupError::Handshake { addr: peer, .. }) => {
            assert_eq!(peer, s.local_addr().unwrap_or(peer))
        }
        other => panic!("expected a handshake error, got {other:?}"),
    }
}

#[tokio::test]
async fn stalled_consumer_pushes_back_without_nodedown() {
    let a = node("a@127.0.0.1", 800);
    let b = node("b@127.0.0.1", 800);
    let (addr, mut accepted) = serve(a.clone()).await;
    let cb = setup::connect(addr, &b, "a@127.0.0.1")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut ca = next(&mut accepted).await.unwrap_or_else(|e| panic!("{e}"));
    // a's node layer never reads: b's queue must fill up (bounded), not grow without end.
    let frame = Bytes::from(vec![112u8; 64 * 1024]);
    let mut sent = 0;
    let full = loop {
        match cb.sender.try_send(frame.clone()) {
            Ok(()) => sent += 1,
            Err(mpsc::error::TrySendError::Full(_)) => break true,
            Err(mpsc::error::TrySendError::Closed(_)) => break false,
        }
        if sent > 2000 {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    assert!(full, "queue never filled after {sent} frames of 64 KiB");
    // Stalled for 2.5 tick times: a slow consumer is not a dead peer, on either side.
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert_eq!(ca.down.reason(), None);
    assert!(!cb.sender.is_down());
    // Once a reads again, everything arrives.
    let mut got = 0;
    while got < sent {
        let f = tokio::time::timeout(Duration::from_secs(5), ca.incoming.recv())
            .await
            .ok()
            .flatten();
        assert_eq!(f.map(|f| f.len()), Some(64 * 1024));
        got += 1;
    }
}

#[tokio::test]
async fn dropping_incoming_closes_the_connection() {
    let a = node("a@127.0.0.1", 60_000);
    let (addr, mut accepted) = serve(a.clone()).await;
    let b = node("b@127.0.0.1", 60_000);
    let mut cb = setup::connect(addr, &b, "a@127.0.0.1")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let ca = next(&mut accepted).await.unwrap_or_else(|e| panic!("{e}"));
    drop(ca.incoming);
    let reason = tokio::time::timeout(Duration::from_secs(5), cb.down.wait())
        .await
        .ok();
    assert_eq!(reason, Some(NodeDown::ConnectionClosed));
    let mut down = ca.down.clone();
    assert_eq!(down.wait().await, NodeDown::Disconnected);
}
