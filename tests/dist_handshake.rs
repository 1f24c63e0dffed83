//! End to end: our connection layer against stock `erl -name` nodes (OTP 25), with a private
//! `/usr/bin/epmd -port P` per test (never 4369). Every process a test starts is killed by PID
//! when its guard drops.
//!
//! What is checked is what the connection layer owns: the handshake in both directions as seen
//! from `erl` (`net_kernel:connect_node/1`, `nodeup`), ticks keeping an idle connection up with
//! `net_ticktime 4` on both sides, nodedown detection on both sides (`monitor_node` on the erl
//! side when we fall silent; our `NodeDown::NetTickTimeout` when erl is frozen), and refusal
//! of a wrong cookie in both directions.

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::process::Stdio;
use std::time::Duration;

use beamq::dist::connection::{Connection, NodeDown};
use beamq::dist::cookie::Cookie;
use beamq::dist::handshake::{Handshake, HandshakeError, HandshakeEvent};
use beamq::dist::listener::{self, DistListener, PortMode};
use beamq::dist::nodename::{NameKind, NodeName};
use beamq::dist::setup::{self, LocalNode, SetupError};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

const TICKTIME: Duration = Duration::from_secs(4);

/// Whether an `NodeDown::Io` text is the peer's RST (`ECONNRESET`), the other way a peer that
/// exits ends its side of the connection.
fn is_reset(io_error: &str) -> bool {
    io_error.contains(&format!("(os error {})", libc::ECONNRESET))
}

/// Kills a child process by PID on drop.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(pid) = self.0.id() {
            // SIGKILL works on stopped (SIGSTOP) processes too.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
    }
}

/// Starts a private epmd and waits until it answers.
async fn start_epmd() -> (Guard, u16) {
    let port = common::ports::free_listen_port();
    let child = Command::new("/usr/bin/epmd")
        .args(["-port", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("start epmd: {e}"));
    let guard = Guard(child);
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return (guard, port);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("epmd on {port} never answered");
}

/// Starts `erl -name NAME@127.0.0.1` against the epmd on `epmd_port`, running `eval`; its
/// stdout lines arrive on the returned channel.
fn start_erl(
    name: &str,
    cookie: &str,
    epmd_port: u16,
    eval: &str,
) -> (Guard, mpsc::UnboundedReceiver<String>) {
    let mut child = Command::new("erl")
        .args([
            "-noshell",
            "-start_epmd",
            "false",
            "-name",
            &format!("{name}@127.0.0.1"),
        ])
        .args([
            "-setcookie",
            cookie,
            "-kernel",
            "net_ticktime",
            "4",
            "-eval",
            eval,
        ])
        .env("ERL_EPMD_PORT", epmd_port.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("start erl: {e}"));
    let (tx, rx) = mpsc::unbounded_channel();
    if let Some(out) = child.stdout.take() {
        tokio::spawn(async move {
            let mut lines = BufReader::new(out).lines();
            while let Ok(Some(l)) = lines.next_line().await {
                let _ = tx.send(l);
            }
        });
    }
    (Guard(child), rx)
}

/// Waits for a line starting with `prefix`; returns it, or None after `within`.
async fn expect_line(
    rx: &mut mpsc::UnboundedReceiver<String>,
    prefix: &str,
    within: Duration,
) -> Option<String> {
    tokio::time::timeout(within, async {
        while let Some(l) = rx.recv().await {
            if l.starts_with(prefix) {
                return Some(l);
            }
        }
        None
    })
    .await
    .ok()
    .flatten()
}

fn local(name: &str, cookie: &str) -> LocalNode {
    let name = NodeName::parse(name, NameKind::Long).unwrap_or_else(|e| panic!("{e}"));
    let cookie = Cookie::new(cookie).unwrap_or_else(|e| panic!("{e}"));
    let mut node = LocalNode::new(name, 0, cookie);
    node.net_ticktime = TICKTIME;
    node
}

async fn listen_epmd(node: &mut LocalNode, epmd_port: u16) -> DistListener {
    let mode = PortMode::Epmd {
        epmd_port,
        listen_min: 0,
        listen_max: 0,
    };
    let l = listener::listen(&node.name, &mode, IpAddr::V4(Ipv4Addr::LOCALHOST), false)
        .await
        .unwrap_or_else(|e| panic!("listen: {e}"));
    node.creation = l.creation;
    l
}

/// Drains a connection's incoming frames (no node layer here) until it goes down.
fn drain(mut conn: Connection) -> tokio::task::JoinHandle<NodeDown> {
    tokio::spawn(async move {
        while conn.incoming.recv().await.is_some() {}
        conn.down.wait().await
    })
}

/// Erlang snippet: subscribe to node events and print them, one per line.
const PRINT_NODE_EVENTS: &str = "net_kernel:monitor_nodes(true, [nodedown_reason]), \
    Loop = fun L() -> receive {nodeup, N, _} -> io:format(\"nodeup ~s~n\", [N]), L(); \
    {nodedown, N, I} -> io:format(\"nodedown ~s ~p~n\", [N, proplists:get_value(nodedown_reason, I)]), L() end end";

#[tokio::test]
async fn stock_erl_connects_to_us_and_stays_up_over_ticks() {
    let (_epmd, epmd_port) = start_epmd().await;
    let mut node = local("beamq@127.0.0.1", "C1");
    let l = listen_epmd(&mut node, epmd_port).await;
    let eval = "R = net_kernel:connect_node('beamq@127.0.0.1'), io:format(\"connect ~p~n\", [R]), \
         erlang:monitor_node('beamq@127.0.0.1', true), \
         receive {nodedown, _} -> io:format(\"nodedown~n\") after 10000 -> io:format(\"still_up ~p~n\", [nodes()]) end, \
         timer:sleep(2000), halt().";
    let (_erl, mut out) = start_erl("x", "C1", epmd_port, eval);
    let (stream, _) = tokio::time::timeout(Duration::from_secs(20), l.listener.accept())
        .await
        .unwrap_or_else(|_| panic!("erl never connected"))
        .unwrap_or_else(|e| panic!("accept: {e}"));
    let conn = setup::accept(stream, &node)
        .await
        .unwrap_or_else(|e| panic!("handshake: {e}"));
    assert_eq!(conn.peer.name, "x@127.0.0.1");
    assert!(conn.peer.flags.is_published());
    let mut down = conn.down.clone();
    let drained = drain(conn);
    assert_eq!(
        expect_line(&mut out, "connect", Duration::from_secs(10))
            .await
            .as_deref(),
        Some("connect true")
    );
    // 10 s idle = 2.5 tick times: without our ticks erl drops us after 4-5 s, and we drop it
    // without its ticks.
    let line = expect_line(&mut out, "", Duration::from_secs(15)).await;
    assert_eq!(line.as_deref(), Some("still_up ['beamq@127.0.0.1']"));
    assert_eq!(down.reason(), None);
    // erl halts 2 s after printing: we see the peer end the connection. `halt()` closes the
    // socket with a FIN, or with a RST when a tick of ours is still unread in erl's receive
    // buffer (RFC 2525 2.17); both are the peer going away, unlike a tick timeout or a bad frame.
    let reason = tokio::time::timeout(Duration::from_secs(10), down.wait()).await;
    let peer_went_away = match &reason {
        Ok(NodeDown::ConnectionClosed) => true,
        Ok(NodeDown::Io(e)) => is_reset(e),
        _ => false,
    };
    assert!(
        peer_went_away,
        "erl's halt must end the connection as a close or a reset, got {reason:?}"
    );
    drained.abort();
}

#[tokio::test]
async fn we_connect_to_stock_erl_then_disconnect() {
    let (_epmd, epmd_port) = start_epmd().await;
    let node = local("beamq2@127.0.0.1", "C2");
    let eval = format!("{PRINT_NODE_EVENTS}, io:format(\"ready~n\"), Loop().");
    let (_erl, mut out) = start_erl("y", "C2", epmd_port, &eval);
    assert!(expect_line(&mut out, "ready", Duration::from_secs(20))
        .await
        .is_some());
    let peer = NodeName::parse("y@127.0.0.1", NameKind::Long).unwrap_or_else(|e| panic!("{e}"));
    let mode = PortMode::Epmd {
        epmd_port,
        listen_min: 0,
        listen_max: 0,
    };
    let addr = listener::resolve_peer(&peer, &mode)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let conn = setup::connect(addr, &node, "y@127.0.0.1")
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"));
    assert_eq!(conn.peer.name, "y@127.0.0.1");
    assert!(node.pending.is_up("y@127.0.0.1"));
    assert_eq!(
        expect_line(&mut out, "node", Duration::from_secs(5))
            .await
            .as_deref(),
        Some("nodeup beamq2@127.0.0.1")
    );
    let sender = conn.sender.clone();
    let mut down = conn.down.clone();
    let drained = drain(conn);
    // Idle for 2 tick times: nothing goes down on either side.
    assert_eq!(
        expect_line(&mut out, "node", Duration::from_secs(8)).await,
        None
    );
    assert_eq!(down.reason(), None);
    sender.disconnect();
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(5), down.wait())
            .await
            .ok(),
        Some(NodeDown::Disconnected)
    );
    let line = expect_line(&mut out, "nodedown", Duration::from_secs(5)).await;
    assert_eq!(
        line.as_deref(),
        Some("nodedown beamq2@127.0.0.1 connection_closed")
    );
    // The table is cleared once the tasks end.
    for _ in 0..50 {
        if !node.pending.is_up("y@127.0.0.1") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!node.pending.is_up("y@127.0.0.1"));
    drained.abort();
}

#[tokio::test]
async fn erl_sees_nodedown_when_we_stop_ticking() {
    let (_epmd, epmd_port) = start_epmd().await;
    let node = local("mute@127.0.0.1", "C3");
    let eval = format!("{PRINT_NODE_EVENTS}, io:format(\"ready~n\"), Loop().");
    let (_erl, mut out) = start_erl("z", "C3", epmd_port, &eval);
    assert!(expect_line(&mut out, "ready", Duration::from_secs(20))
        .await
        .is_some());
    let peer = NodeName::parse("z@127.0.0.1", NameKind::Long).unwrap_or_else(|e| panic!("{e}"));
    let mode = PortMode::Epmd {
        epmd_port,
        listen_min: 0,
        listen_max: 0,
    };
    let addr = listener::resolve_peer(&peer, &mode)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // Run only the sans-IO handshake over a raw socket, then read but never write: no ticks.
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let cfg = beamq::dist::handshake::HandshakeConfig {
        name: "mute@127.0.0.1".into(),
        creation: 5,
        flags: beamq::dist::flags::DistFlags::ours(false),
        required: beamq::dist::flags::REQUIRED,
        cookie: node.cookie.clone(),
        setup_time: Duration::from_secs(7),
    };
    let mut hs = Handshake::initiator(cfg, "z@127.0.0.1", 42, std::time::Instant::now());
    let mut buf = vec![0u8; 4096];
    let est = loop {
        if let Some(o) = hs.take_output() {
            stream.write_all(&o).await.unwrap_or_else(|e| panic!("{e}"));
        }
        if let Some(HandshakeEvent::Established(e)) = hs.poll_event() {
            break e;
        }
        let n = stream
            .read(&mut buf)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(n > 0, "erl closed during the handshake");
        hs.handle_input(&buf[..n], std::time::Instant::now())
            .unwrap_or_else(|e| panic!("{e}"));
    };
    assert_eq!(est.peer, "z@127.0.0.1");
    let up = expect_line(&mut out, "node", Duration::from_secs(5)).await;
    assert_eq!(up.as_deref(), Some("nodeup mute@127.0.0.1"));
    let started = std::time::Instant::now();
    let reader = tokio::spawn(async move {
        let mut b = vec![0u8; 65536];
        while matches!(stream.read(&mut b).await, Ok(n) if n > 0) {}
    });
    let line = expect_line(&mut out, "nodedown", Duration::from_secs(10)).await;
    assert_eq!(
        line.as_deref(),
        Some("nodedown mute@127.0.0.1 net_tick_timeout")
    );
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(3) && took <= Duration::from_secs(9),
        "erl took {took:?}"
    );
    reader.abort();
}

#[tokio::test]
async fn we_see_nodedown_when_erl_freezes() {
    let (_epmd, epmd_port) = start_epmd().await;
    let node = local("watcher@127.0.0.1", "C4");
    let (erl, mut out) = start_erl(
        "f",
        "C4",
        epmd_port,
        "io:format(\"ready~n\"), receive after infinity -> ok end.",
    );
    assert!(expect_line(&mut out, "ready", Duration::from_secs(20))
        .await
        .is_some());
    let peer = NodeName::parse("f@127.0.0.1", NameKind::Long).unwrap_or_else(|e| panic!("{e}"));
    let mode = PortMode::Epmd {
        epmd_port,
        listen_min: 0,
        listen_max: 0,
    };
    let addr = listener::resolve_peer(&peer, &mode)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let conn = setup::connect(addr, &node, "f@127.0.0.1")
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"));
    let mut down = conn.down.clone();
    let drained = drain(conn);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(down.reason(), None);
    let pid = erl.0.id().unwrap_or_else(|| panic!("erl exited"));
    unsafe { libc::kill(pid as i32, libc::SIGSTOP) };
    let frozen = std::time::Instant::now();
    let reason = tokio::time::timeout(Duration::from_secs(10), down.wait()).await;
    assert_eq!(reason.ok(), Some(NodeDown::NetTickTimeout));
    let took = frozen.elapsed();
    // OTP's window: 4-5 intervals of 1 s after the last frame read.
    assert!(
        took >= Duration::from_secs(3) && took <= Duration::from_secs(8),
        "detected after {took:?}"
    );
    drained.abort();
}

#[tokio::test]
async fn wrong_cookie_fails_both_ways() {
    let (_epmd, epmd_port) = start_epmd().await;
    // erl -> us with another cookie: connect_node returns false, our accept fails.
    let mut node = local("strict@127.0.0.1", "RIGHT");
    let l = listen_epmd(&mut node, epmd_port).await;
    let eval =
        "R = net_kernel:connect_node('strict@127.0.0.1'), io:format(\"connect ~p~n\", [R]), \
                receive after infinity -> ok end.";
    let (_erl, mut out) = start_erl("w", "WRONG", epmd_port, eval);
    let (stream, _) = tokio::time::timeout(Duration::from_secs(20), l.listener.accept())
        .await
        .unwrap_or_else(|_| panic!("erl never connected"))
        .unwrap_or_else(|e| panic!("accept: {e}"));
    let r = setup::accept(stream, &node).await;
    match r {
        Err(SetupError::Handshake {
            source: HandshakeError::BadCookie { peer, .. },
            ..
        }) => {
            assert_eq!(peer, "w@127.0.0.1")
        }
        other => panic!("expected a bad cookie, got {other:?}"),
    }
    assert_eq!(
        expect_line(&mut out, "connect", Duration::from_secs(10))
            .await
            .as_deref(),
        Some("connect false")
    );
    assert!(!node.pending.is_up("w@127.0.0.1"));
    // us -> erl with another cookie: erl closes the socket after our reply.
    let peer = NodeName::parse("w@127.0.0.1", NameKind::Long).unwrap_or_else(|e| panic!("{e}"));
    let mode = PortMode::Epmd {
        epmd_port,
        listen_min: 0,
        listen_max: 0,
    };
    let addr = listener::resolve_peer(&peer, &mode)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let r = setup::connect(addr, &node, "w@127.0.0.1").await;
    assert!(matches!(r, Err(SetupError::Closed { .. })), "got {r:?}");
    assert!(
        node.pending.begin_connect("w@127.0.0.1").is_ok(),
        "failed attempt left no entry"
    );
}

#[tokio::test]
async fn frames_flow_both_ways_with_a_stock_node() {
    // Encoding terms is the codec's job, not this layer's: here erl's first frames
    // (features_request to rex, global's init_connect) must arrive as raw 131,68 payloads, and a
    // hand-made frame we send must reach a registered process on the erl side.
    let (_epmd, epmd_port) = start_epmd().await;
    let node = local("pipe@127.0.0.1", "C5");
    let eval = "register(sink, self()), net_kernel:monitor_nodes(true, [nodedown_reason]), \
        io:format(\"ready~n\"), Loop = fun L() -> receive {nodedown, N, I} -> \
        io:format(\"nodedown ~s ~p~n\", [N, I]), L(); {nodeup, _, _} -> L(); \
        M -> io:format(\"got ~p~n\", [M]), L() end end, Loop().";
    let (_erl, mut out) = start_erl("p", "C5", epmd_port, eval);
    assert!(expect_line(&mut out, "ready", Duration::from_secs(20))
        .await
        .is_some());
    let peer = NodeName::parse("p@127.0.0.1", NameKind::Long).unwrap_or_else(|e| panic!("{e}"));
    let mode = PortMode::Epmd {
        epmd_port,
        listen_min: 0,
        listen_max: 0,
    };
    let addr = listener::resolve_peer(&peer, &mode)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut conn = setup::connect(addr, &node, "p@127.0.0.1")
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"));
    let first = tokio::time::timeout(Duration::from_secs(5), conn.incoming.recv())
        .await
        .ok()
        .flatten();
    let first = first.unwrap_or_else(|| panic!("no frame from erl"));
    assert_eq!(
        &first[..2],
        &[131, 68],
        "dist header with atom cache, no length, no 112"
    );
    // REG_SEND {6, From, '', sink} with message `hello`, behind a dist header with no atom cache
    // refs (131,68,0; the terms then carry no version byte): erl delivers it to `sink`, which
    // prints it. A malformed frame would make erl drop the connection ("nodedown ... killed").
    let from_pid = [
        88, 100, 0, 14, b'p', b'i', b'p', b'e', b'@', b'1', b'2', b'7', b'.', b'0', b'.', b'0',
        b'.', b'1', 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 5,
    ];
    let mut frame = vec![131, 68, 0, 104, 4, 97, 6];
    frame.extend_from_slice(&from_pid);
    frame.extend_from_slice(&[100, 0, 0, 100, 0, 4, b's', b'i', b'n', b'k', 100, 0, 5]);
    frame.extend_from_slice(b"hello");
    conn.sender
        .send(frame.into())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let down = conn.down.clone();
    let drained = drain(conn);
    assert_eq!(
        expect_line(&mut out, "got", Duration::from_secs(5))
            .await
            .as_deref(),
        Some("got hello")
    );
    assert_eq!(
        expect_line(&mut out, "nodedown", Duration::from_secs(2)).await,
        None
    );
    assert_eq!(down.reason(), None);
    drained.abort();
}

#[tokio::test]
async fn erl_with_a_dynamic_name_is_named_by_us() {
    let (_epmd, epmd_port) = start_epmd().await;
    let mut node = local("namer@127.0.0.1", "C6");
    let l = listen_epmd(&mut node, epmd_port).await;
    let eval = "R = net_kernel:connect_node('namer@127.0.0.1'), \
                io:format(\"connect ~p ~s~n\", [R, node()]), receive after infinity -> ok end.";
    // `-name undefined@HOST` (OTP 23+): the node asks its first peer for a name (NAME_ME).
    let (_erl, mut out) = start_erl("undefined", "C6", epmd_port, eval);
    let (stream, _) = tokio::time::timeout(Duration::from_secs(20), l.listener.accept())
        .await
        .unwrap_or_else(|_| panic!("erl never connected"))
        .unwrap_or_else(|e| panic!("accept: {e}"));
    let conn = setup::accept(stream, &node)
        .await
        .unwrap_or_else(|e| panic!("handshake: {e}"));
    let line = expect_line(&mut out, "connect", Duration::from_secs(10)).await;
    assert_eq!(line, Some(format!("connect true {}", conn.peer.name)));
    assert!(conn.peer.name.ends_with("@127.0.0.1") && !conn.peer.name.starts_with("undefined"));
    assert!(
        !conn.peer.flags.is_published(),
        "dynamically named nodes are hidden"
    );
    assert!(node.pending.is_up(&conn.peer.name));
}
