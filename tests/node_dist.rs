//! Two beamq nodes in one test process, ekka mode, over real sockets: auto-connect on send,
//! rpc through `rex`, name monitors, links across nodes, 10 MB messages, disconnect.
use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::time::Duration;

use beamq::dist::cookie::Cookie;
use beamq::dist::etf::{Atom, Term};
use beamq::dist::listener::PortMode;
use beamq::dist::nodename::{NameKind, NodeName};
use beamq::node::boot::{start, NodeConfig, RunningNode};
use beamq::node::{Dest, MonitorTarget};

/// A node name whose ekka port (4370 + suffix) is free now.
fn free_ekka_name(prefix: &str) -> NodeName {
    loop {
        let n: u16 = 20000 + rand::random::<u16>() % 30000;
        if TcpListener::bind(("127.0.0.1", 4370 + n)).is_ok() {
            let name = format!("{prefix}{n}@127.0.0.1");
            return NodeName::parse(&name, NameKind::Long).unwrap();
        }
    }
}

async fn node(prefix: &str) -> RunningNode {
    let cfg = NodeConfig {
        name: free_ekka_name(prefix),
        cookie: Cookie::new("node_dist_test").unwrap(),
        net_ticktime: Duration::from_secs(4),
        mode: PortMode::Ekka,
        bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
        hidden: false,
    };
    start(cfg).await.unwrap()
}

const T: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_beamq_nodes_talk() {
    let a = node("bqa").await;
    let b = node("bqb").await;
    let (an, bn) = (a.node.name(), b.node.name());

    // An echo process on b.
    b.node
        .spawn_opt(
            beamq::node::SpawnOpts {
                name: Some(Atom::new("echo")),
                ..Default::default()
            },
            |mut p| async move {
                while let Some(m) = p.recv().await {
                    if let Some([Term::Pid(from), body]) = m.as_tuple_n::<2>() {
                        p.send(*from, body.clone());
                    }
                }
                Term::atom("normal")
            },
        )
        .unwrap();

    let (tx, rx) = tokio::sync::oneshot::channel();
    a.node.spawn(move |mut p| async move {
        // Auto-connect on the first send to {echo, b}.
        let me = p.pid();
        p.send(
            Dest::NameAt(Atom::new("echo"), bn),
            Term::tuple(vec![Term::Pid(me), Term::atom("hi")]),
        );
        let echoed = p.recv_timeout(T).await;
        // 10 MB both ways.
        let big = Term::binary(vec![7u8; 10 * 1024 * 1024]);
        p.send(
            Dest::NameAt(Atom::new("echo"), bn),
            Term::tuple(vec![Term::Pid(me), big.clone()]),
        );
        let big_back = p.recv_timeout(T).await == Some(big);
        // rpc through rex, and an unknown function.
        let node = p.rpc_call(bn, "erlang", "node", vec![], Some(T)).await;
        let undef = p.rpc_call(bn, "nomod", "nofun", vec![], Some(T)).await;
        // Monitor of a name nobody has on b.
        let r = p.monitor(MonitorTarget::Name(Atom::new("nosuch"), bn));
        let down = p.recv_timeout(T).await;
        let _ = tx.send((echoed, big_back, node, undef, r, down));
        Term::atom("normal")
    });
    let (echoed, big_back, node, undef, r, down) = rx.await.unwrap();
    assert_eq!(echoed, Some(Term::atom("hi")));
    assert!(big_back, "10 MB echo");
    assert_eq!(node, Term::Atom(bn));
    assert_eq!(undef.element(0), Some(&Term::atom("badrpc")));
    assert_eq!(
        down,
        Some(Term::tuple(vec![
            Term::atom("DOWN"),
            Term::Ref(r),
            Term::atom("process"),
            Term::tuple(vec![Term::atom("nosuch"), Term::Atom(bn)]),
            Term::atom("noproc"),
        ]))
    );
    assert_eq!(a.node.nodes().0, vec![bn]);
    assert_eq!(b.node.nodes().0, vec![an]);

    // A link across the nodes: b's process dies, a's trapping process gets the EXIT; then
    // a disconnect fires nodedown for a node monitor.
    // b watches a, so its nodedown is seen even if something (global, say) reconnects later.
    let (wtx, wrx) = tokio::sync::oneshot::channel();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    b.node.spawn(move |mut p| async move {
        p.monitor_node(an, true);
        let _ = ready_tx.send(());
        let _ = wtx.send(p.recv_timeout(T).await);
        Term::atom("normal")
    });
    ready_rx.await.unwrap();
    let victim = b.node.spawn(|mut p| async move {
        let _ = p.recv().await;
        Term::atom("bye")
    });
    let (tx, rx) = tokio::sync::oneshot::channel();
    a.node.spawn(move |mut p| async move {
        p.trap_exit(true);
        p.link(&victim);
        p.monitor_node(bn, true);
        p.send(victim, Term::atom("go"));
        let exit = p.recv_timeout(T).await;
        p.node().disconnect(bn);
        let nodedown = p.recv_timeout(T).await;
        let _ = tx.send((exit, nodedown));
        Term::atom("normal")
    });
    let (exit, nodedown) = rx.await.unwrap();
    assert_eq!(
        exit,
        Some(Term::tuple(vec![
            Term::atom("EXIT"),
            Term::Pid(victim),
            Term::atom("bye")
        ]))
    );
    assert_eq!(
        nodedown,
        Some(Term::tuple(vec![Term::atom("nodedown"), Term::Atom(bn)]))
    );
    // b notices the closed connection too.
    assert_eq!(
        wrx.await.unwrap(),
        Some(Term::tuple(vec![Term::atom("nodedown"), Term::Atom(an)]))
    );
}

#[tokio::test]
async fn wrong_cookie_is_refused() {
    let a = node("bqc").await;
    let cfg = NodeConfig {
        name: free_ekka_name("bqd"),
        cookie: Cookie::new("another_cookie").unwrap(),
        net_ticktime: Duration::from_secs(4),
        mode: PortMode::Ekka,
        bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
        hidden: false,
    };
    let b = start(cfg).await.unwrap();
    assert!(!a.node.connect(b.node.name()).await);
    assert!(a.node.nodes().0.is_empty());
}
