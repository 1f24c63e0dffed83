//! The node runtime without sockets: processes, exits, monitors, gen calls, and the signals
//! erpc/rex/net_kernel produce for a peer (read from the peer's queue).
use std::time::Duration;

use beamq::dist::etf::{Atom, Pid, Reference, Term};
use beamq::node::erpc::{serve_spawn_request, SpawnRequest};
use beamq::node::{net_kernel, rex, Dest, MonitorTarget, Node, PeerQueue, PidOrName, RemoteSignal};

fn node() -> Node {
    let n = Node::new(Atom::new("rt@127.0.0.1"), 7);
    beamq::node::functions::register_builtins(n.functions());
    n
}

fn peer_node() -> Atom {
    Atom::new("beam@127.0.0.1")
}

fn peer_pid(id: u32) -> Pid {
    Pid {
        node: peer_node(),
        id,
        serial: 0,
        creation: 3,
    }
}

fn peer_ref(n: u32) -> Reference {
    Reference::new(peer_node(), 3, &[n, 1, 2]).unwrap()
}

async fn next(q: &mut PeerQueue) -> RemoteSignal {
    tokio::time::timeout(Duration::from_secs(2), q.recv())
        .await
        .expect("signal in time")
        .expect("queue open")
}

#[tokio::test]
async fn send_receive_and_exit_reason_reaches_monitor() {
    let node = node();
    let echo = node.spawn(|mut p| async move {
        let m = p.recv().await.unwrap();
        let [Term::Pid(from), body] = m.as_tuple_n::<2>().unwrap() else {
            return Term::atom("bad");
        };
        p.send(*from, body.clone());
        Term::atom("done")
    });
    let (tx, rx) = tokio::sync::oneshot::channel();
    node.spawn(move |mut p| async move {
        let r = p.monitor(MonitorTarget::Pid(echo));
        p.send(echo, Term::tuple(vec![Term::Pid(p.pid()), Term::Int(42)]));
        let reply = p.recv().await.unwrap();
        let down = p.recv().await.unwrap();
        let _ = tx.send((r, reply, down));
        Term::atom("normal")
    });
    let (r, reply, down) = rx.await.unwrap();
    assert_eq!(reply, Term::Int(42));
    assert_eq!(down.element(1), Some(&Term::Ref(r)));
    assert_eq!(down.element(4), Some(&Term::atom("done")));
}

#[tokio::test]
async fn link_kills_non_trapping_and_informs_trapping() {
    let node = node();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let victim = node.spawn(|mut p| async move {
        p.recv().await;
        Term::atom("normal")
    });
    node.spawn(move |mut p| async move {
        p.trap_exit(true);
        let crasher = p.node().spawn(|_| async { Term::atom("crash") });
        p.link(&crasher);
        let m = p.recv().await.unwrap();
        let _ = tx.send(m);
        Term::atom("normal")
    });
    let watcher = node.spawn(move |mut p| async move {
        p.link(&victim);
        p.node().exit(&p.pid(), &victim, Term::atom("bye"));
        p.recv().await;
        Term::atom("normal")
    });
    let exit = rx.await.unwrap();
    assert_eq!(exit.element(0), Some(&Term::atom("EXIT")));
    assert_eq!(exit.element(2), Some(&Term::atom("crash")));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!node.is_alive(&victim));
    assert!(
        !node.is_alive(&watcher),
        "link propagates bye to the watcher"
    );
}

#[tokio::test]
async fn gen_call_and_name_monitor_noproc() {
    let node = node();
    net_kernel::start(&node).unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel();
    node.spawn(move |mut p| async move {
        let me = p.node().name();
        let yes = p
            .call(
                Dest::NameAt(Atom::new("net_kernel"), me),
                Term::tuple(vec![Term::atom("is_auth"), Term::Atom(me)]),
                Some(Duration::from_secs(1)),
            )
            .await;
        let missing = p
            .call(Dest::Name(Atom::new("nosuch")), Term::atom("x"), None)
            .await;
        let _ = tx.send((yes, missing));
        Term::atom("normal")
    });
    let (yes, missing) = rx.await.unwrap();
    assert_eq!(yes, Ok(Term::atom("yes")));
    assert_eq!(
        missing,
        Err(beamq::node::CallError::Down(Term::atom("noproc")))
    );
}

#[tokio::test]
async fn net_kernel_answers_alias_tagged_is_auth_to_the_pid() {
    let node = node();
    net_kernel::start(&node).unwrap();
    let (_, mut q) = node.peer_up(peer_node(), false);
    let caller = peer_pid(1);
    let tag = Term::improper_list(vec![Term::atom("alias")], Term::Ref(peer_ref(9)));
    let call = Term::tuple(vec![
        Term::atom("$gen_call"),
        Term::tuple(vec![Term::Pid(caller), tag.clone()]),
        Term::tuple(vec![Term::atom("is_auth"), Term::Atom(peer_node())]),
    ]);
    node.send_from(Some(caller), Dest::Name(Atom::new("net_kernel")), call);
    match next(&mut q).await {
        RemoteSignal::Send { from, to, msg } => {
            assert_eq!(from, node.whereis(Atom::new("net_kernel")));
            assert_eq!(to, caller);
            assert_eq!(msg, Term::tuple(vec![tag, Term::atom("yes")]));
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn rex_features_and_old_call_form() {
    let node = node();
    rex::start(&node).unwrap();
    let (_, mut q) = node.peer_up(peer_node(), false);
    let caller = peer_pid(2);
    let rex = Dest::Name(Atom::new("rex"));
    node.send_from(
        Some(caller),
        rex,
        Term::tuple(vec![Term::Pid(caller), Term::atom("features_request")]),
    );
    let RemoteSignal::Send { msg, .. } = next(&mut q).await else {
        panic!("expected a send");
    };
    assert_eq!(
        msg,
        Term::tuple(vec![
            Term::atom("features_reply"),
            Term::Atom(node.name()),
            Term::list(vec![Term::atom("erpc")])
        ])
    );
    let tag = Term::Ref(peer_ref(4));
    let call = |m: &str, f: &str| {
        Term::tuple(vec![
            Term::atom("$gen_call"),
            Term::tuple(vec![Term::Pid(caller), tag.clone()]),
            Term::tuple(vec![
                Term::atom("call"),
                Term::atom(m),
                Term::atom(f),
                Term::Nil,
                Term::Pid(caller),
            ]),
        ])
    };
    node.send_from(Some(caller), rex, call("erlang", "node"));
    let RemoteSignal::Send { msg, .. } = next(&mut q).await else {
        panic!("expected a send");
    };
    assert_eq!(msg, Term::tuple(vec![tag.clone(), Term::Atom(node.name())]));
    node.send_from(Some(caller), rex, call("nomod", "nofun"));
    let RemoteSignal::Send { msg, .. } = next(&mut q).await else {
        panic!("expected a send");
    };
    let undef = Term::tuple(vec![
        Term::atom("badrpc"),
        Term::tuple(vec![
            Term::atom("EXIT"),
            Term::tuple(vec![
                Term::atom("undef"),
                Term::list(vec![Term::tuple(vec![
                    Term::atom("nomod"),
                    Term::atom("nofun"),
                    Term::Nil,
                    Term::Nil,
                ])]),
            ]),
        ]),
    ]);
    assert_eq!(msg, Term::tuple(vec![tag, undef]));
}

fn execute_call(req: u32, m: &str, f: &str, args: Vec<Term>) -> (SpawnRequest, Term) {
    let result_ref = Term::Ref(peer_ref(100 + req));
    let req = SpawnRequest {
        req_id: peer_ref(req),
        from: peer_pid(3),
        group_leader: peer_pid(4),
        module: Atom::new("erpc"),
        function: Atom::new("execute_call"),
        arity: 4,
        opts: Term::list(vec![Term::atom("monitor")]),
        args: Term::list(vec![
            result_ref.clone(),
            Term::atom(m),
            Term::atom(f),
            Term::list(args),
        ]),
    };
    (req, result_ref)
}

#[tokio::test]
async fn erpc_call_replies_then_exits_with_result() {
    let node = node();
    let (_, mut q) = node.peer_up(peer_node(), false);
    let (req, result_ref) = execute_call(1, "erlang", "node", vec![]);
    serve_spawn_request(&node, req.clone());
    let RemoteSignal::SpawnReply {
        req_id,
        to,
        flags,
        result: Ok(worker),
    } = next(&mut q).await
    else {
        panic!("expected SPAWN_REPLY");
    };
    assert_eq!((req_id, to, flags), (req.req_id, req.from, 2));
    match next(&mut q).await {
        RemoteSignal::MonitorExit {
            from,
            to,
            reference,
            reason,
        } => {
            assert_eq!(from, PidOrName::Pid(worker));
            assert_eq!((to, reference), (req.from, req.req_id));
            assert_eq!(
                reason,
                Term::tuple(vec![
                    result_ref,
                    Term::atom("return"),
                    Term::Atom(node.name())
                ])
            );
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn erpc_unknown_function_is_undef_with_args() {
    let node = node();
    let (_, mut q) = node.peer_up(peer_node(), false);
    let args = vec![Term::Int(1), Term::binary(b"x")];
    let (req, result_ref) = execute_call(2, "nomod", "nofun", args.clone());
    serve_spawn_request(&node, req);
    assert!(matches!(
        next(&mut q).await,
        RemoteSignal::SpawnReply { .. }
    ));
    let RemoteSignal::MonitorExit { reason, .. } = next(&mut q).await else {
        panic!("expected MONITOR_P_EXIT");
    };
    let stack = Term::list(vec![Term::tuple(vec![
        Term::atom("nomod"),
        Term::atom("nofun"),
        Term::list(args),
        Term::Nil,
    ])]);
    assert_eq!(
        reason,
        Term::tuple(vec![
            result_ref,
            Term::atom("error"),
            Term::atom("undef"),
            stack
        ])
    );
}

#[tokio::test]
async fn nodedown_fires_remote_monitors_and_node_monitors() {
    let node = node();
    let (id, _q) = node.peer_up(peer_node(), false);
    assert_eq!(node.nodes().0, vec![peer_node()]);
    let (tx, rx) = tokio::sync::oneshot::channel();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    node.spawn(move |mut p| async move {
        p.monitor_node(peer_node(), true);
        let r = p.monitor(MonitorTarget::Name(Atom::new("rex"), peer_node()));
        let _ = ready_tx.send(());
        let a = p.recv().await.unwrap();
        let b = p.recv().await.unwrap();
        let _ = tx.send((r, a, b));
        Term::atom("normal")
    });
    ready_rx.await.unwrap();
    node.peer_down(peer_node(), id);
    let (r, a, b) = rx.await.unwrap();
    let object = Term::tuple(vec![Term::atom("rex"), Term::Atom(peer_node())]);
    assert_eq!(
        a,
        Term::tuple(vec![
            Term::atom("DOWN"),
            Term::Ref(r),
            Term::atom("process"),
            object,
            Term::atom("noconnection")
        ])
    );
    assert_eq!(
        b,
        Term::tuple(vec![Term::atom("nodedown"), Term::Atom(peer_node())])
    );
    assert!(node.nodes().0.is_empty());
}

#[tokio::test]
async fn erpc_exception_shapes_match_beam() {
    use beamq::node::Exception;
    let node = node();
    node.functions().register_sync("t", "throw", 0, |_, _| {
        Err(Exception::Throw(Term::atom("oops")))
    });
    node.functions().register_sync("t", "exit", 0, |_, _| {
        Err(Exception::Exit(Term::atom("boom")))
    });
    node.functions().register_sync("t", "error", 0, |_, _| {
        Err(Exception::Error(Term::atom("badarith"), None))
    });
    let (_, mut q) = node.peer_up(peer_node(), false);
    let cases = [
        ("throw", vec![Term::atom("throw"), Term::atom("oops")]),
        ("exit", vec![Term::atom("exit"), Term::atom("boom")]),
        (
            "error",
            vec![
                Term::atom("error"),
                Term::atom("badarith"),
                Term::list(vec![Term::tuple(vec![
                    Term::atom("t"),
                    Term::atom("error"),
                    Term::Int(0),
                    Term::Nil,
                ])]),
            ],
        ),
    ];
    for (i, (f, tail)) in cases.into_iter().enumerate() {
        let (req, result_ref) = execute_call(10 + i as u32, "t", f, vec![]);
        serve_spawn_request(&node, req);
        assert!(matches!(
            next(&mut q).await,
            RemoteSignal::SpawnReply { .. }
        ));
        let RemoteSignal::MonitorExit { reason, .. } = next(&mut q).await else {
            panic!("expected MONITOR_P_EXIT");
        };
        let mut expected = vec![result_ref];
        expected.extend(tail);
        assert_eq!(reason, Term::tuple(expected), "{f}");
    }
    // rpc's shapes for the same outcomes.
    use beamq::node::rex::rpc_result;
    assert_eq!(
        rpc_result(Err(Exception::Throw(Term::atom("oops")))),
        Term::atom("oops")
    );
    assert_eq!(
        rpc_result(Err(Exception::Exit(Term::atom("boom")))),
        Term::tuple(vec![
            Term::atom("badrpc"),
            Term::tuple(vec![Term::atom("EXIT"), Term::atom("boom")])
        ])
    );
}

#[tokio::test]
async fn erpc_cast_replies_without_monitor_and_demonitor_silences_call() {
    let node = node();
    let (_, mut q) = node.peer_up(peer_node(), false);
    let cast = SpawnRequest {
        req_id: peer_ref(50),
        from: peer_pid(3),
        group_leader: peer_pid(4),
        module: Atom::new("erpc"),
        function: Atom::new("execute_cast"),
        arity: 3,
        opts: Term::Nil,
        args: Term::list(vec![Term::atom("erlang"), Term::atom("node"), Term::Nil]),
    };
    serve_spawn_request(&node, cast);
    let RemoteSignal::SpawnReply { flags, result, .. } = next(&mut q).await else {
        panic!("expected SPAWN_REPLY");
    };
    assert_eq!(flags, 0);
    assert!(result.is_ok());
    // A call whose caller gave up (DEMONITOR_P) sends nothing when it finishes.
    let (req, _) = execute_call(51, "timer", "sleep", vec![Term::Int(100)]);
    let (from, req_id) = (req.from, req.req_id);
    serve_spawn_request(&node, req);
    let RemoteSignal::SpawnReply {
        result: Ok(worker), ..
    } = next(&mut q).await
    else {
        panic!("expected SPAWN_REPLY");
    };
    node.receive_dist(
        peer_node(),
        beamq::dist::message::DistMessage::control(
            beamq::dist::control::ControlMessage::DemonitorP {
                from,
                to: beamq::dist::control::ProcRef::Pid(worker),
                reference: req_id,
            },
        ),
    );
    let quiet = tokio::time::timeout(Duration::from_millis(400), q.recv()).await;
    assert!(quiet.is_err(), "nothing after the demonitor: {quiet:?}");
}
