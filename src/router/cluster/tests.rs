//! The router on one node: local routes reach pg and come back through the sync into the
//! table, the `beamq_routes` functions read it, and a node with only local routes forwards
//! nothing.
use std::time::Duration;

use super::*;
use crate::dist::etf::Term;
use crate::node::functions::apply;
use crate::node::CallContext;

async fn call(node: &Node, f: &str, args: Vec<Term>) -> Term {
    let ctx = CallContext {
        node: node.clone(),
        pid: node.spawn(|_| async { Term::atom("normal") }),
        caller: None,
        process: None,
    };
    apply(ctx, Atom::new(MODULE), Atom::new(f), args)
        .await
        .unwrap()
}

async fn eventually(mut f: impl FnMut() -> bool) {
    for _ in 0..200 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not met in 2 s");
}

fn route(filter: &str, nodes: &[&str]) -> Term {
    Term::tuple(vec![
        Term::binary(filter.as_bytes()),
        Term::list(nodes.iter().map(|n| Term::atom(n)).collect::<Vec<_>>()),
    ])
}

#[tokio::test]
async fn local_routes_round_trip_through_pg() {
    let me = "r1@127.0.0.1";
    let node = Node::new(Atom::new(me), 1);
    let scope = Scope::start(&node, Atom::new(ROUTE_SCOPE)).unwrap();
    let router = ClusterRouter::start(&node).unwrap();
    let broker = router.broker_pid();
    for f in ["t/#", "t/+", "a/b"] {
        router.add_local(f);
    }
    router.del_local("a/b");
    eventually(|| router.routes().read().len() == 2).await;
    assert_eq!(
        scope.get_members(&Term::binary(b"t/#")),
        vec![broker],
        "beamq_broker is the member"
    );
    assert!(scope.get_members(&Term::binary(b"a/b")).is_empty());
    assert_eq!(
        call(&node, "list", vec![]).await,
        Term::list(vec![route("t/#", &[me]), route("t/+", &[me])])
    );
    assert_eq!(
        call(&node, "list", vec![Term::binary(b"t/+")]).await,
        Term::list(vec![route("t/+", &[me])])
    );
    assert_eq!(
        call(&node, "show", vec![Term::binary(b"t/x")]).await,
        Term::list(vec![route("t/#", &[me]), route("t/+", &[me])])
    );
    assert_eq!(
        call(&node, "show", vec![Term::binary(b"u")]).await,
        Term::Nil
    );
    // Own routes are never forwarded to; the message is never built.
    assert!(!router.has_remote_routes());
    assert_eq!(router.forward("t/x", || unreachable!("no remote route")), 0);
    assert_eq!(
        call(&node, "stats", vec![]).await,
        Term::map(vec![
            (Term::atom("forward"), Term::Int(0)),
            (Term::atom("forward_received"), Term::Int(0)),
            (Term::atom("forward_dropped"), Term::Int(0)),
        ])
    );
    assert_eq!(
        call(&node, "busy", vec![]).await,
        Term::map(vec![
            (Term::atom("forward_busy"), Term::Int(0)),
            (Term::atom("forward_busy_timeout"), Term::Int(0)),
        ])
    );
    let id = router.message_id();
    assert_eq!(id.len(), 16);
    assert_ne!(router.message_id(), id);
}

#[tokio::test]
async fn a_forward_to_a_node_that_is_gone_is_counted_not_sent() {
    let node = Node::new(Atom::new("r2@127.0.0.1"), 1);
    Scope::start(&node, Atom::new(ROUTE_SCOPE)).unwrap();
    let router = ClusterRouter::start(&node).unwrap();
    let gone = Pid {
        node: Atom::new("gone@127.0.0.1"),
        id: 7,
        serial: 0,
        creation: 1,
    };
    {
        let mut t = router.routes().write();
        t.join(&Term::binary(b"t/#"), &[gone]);
        t.join(&Term::binary(b"t/+"), &[gone]);
        router
            .inner
            .remote
            .store(t.remote_members(), std::sync::atomic::Ordering::Release);
    }
    assert!(router.has_remote_routes());
    assert_eq!(router.destinations("t/a"), vec![gone], "one per member pid");
    let mut built = 0;
    let sent = router.forward("t/a", || {
        built += 1;
        ClusterMessage {
            id: router.message_id(),
            qos: 0,
            from: Publisher::Atom(Atom::new("test")),
            flags: Flags::default(),
            headers: Headers::default(),
            topic: bytes::Bytes::from_static(b"t/a"),
            payload: bytes::Bytes::new(),
            timestamp: 0,
        }
    });
    assert_eq!((sent, built), (0, 1));
    assert_eq!(
        router.stats(),
        StatsSnapshot {
            forward: 0,
            forward_received: 0,
            forward_dropped: 1,
            ..StatsSnapshot::default()
        }
    );
    assert_eq!(router.forward("u", || unreachable!("no route")), 0);
}
