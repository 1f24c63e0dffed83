//! The pg protocol against the shapes OTP 25 sends (reference/otp25-traces.md §3).
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::groups::{Groups, Membership};
use super::state::{Effects, ScopeState};
use super::Scope;
use crate::dist::etf::{Atom, Pid, Reference, Term};
use crate::node::{Dest, Node, PeerQueue, PidOrName, RemoteSignal};

fn pid(node: &str, id: u32) -> Pid {
    Pid {
        node: Atom::new(node),
        id,
        serial: 0,
        creation: 1,
    }
}

const ME: &str = "beamq@127.0.0.1";
const PEER: &str = "a@127.0.0.1";

#[derive(Default)]
struct Fake {
    next: u32,
    monitors: Vec<(Pid, Reference)>,
    demonitors: Vec<Reference>,
    sent: Vec<(Dest, Term)>,
}

impl Effects for Fake {
    fn monitor(&mut self, pid: Pid) -> Reference {
        self.next += 1;
        let r = Reference::new(Atom::new(ME), 1, &[self.next, 0, 0]).unwrap();
        self.monitors.push((pid, r));
        r
    }
    fn demonitor(&mut self, reference: Reference) {
        self.demonitors.push(reference);
    }
    fn send(&mut self, to: Dest, msg: Term) {
        self.sent.push((to, msg));
    }
}

fn scope() -> (ScopeState, Arc<Mutex<Groups>>) {
    let groups = Arc::new(Mutex::new(Groups::default()));
    let st = ScopeState::new(Atom::new("beamq_route"), pid(ME, 1), groups.clone());
    (st, groups)
}

fn members(g: &Arc<Mutex<Groups>>, group: &[u8]) -> Vec<Pid> {
    g.lock()
        .unwrap()
        .members(&super::TermKey::new(Term::binary(group)))
}

fn discover(from: Pid) -> Term {
    Term::tuple(vec![Term::atom("discover"), Term::Pid(from)])
}

fn sync(from: Pid, groups: Vec<(&[u8], Vec<Pid>)>) -> Term {
    let gs: Vec<Term> = groups
        .into_iter()
        .map(|(g, ps)| {
            Term::tuple(vec![
                Term::binary(g),
                Term::list(ps.into_iter().map(Term::Pid).collect::<Vec<_>>()),
            ])
        })
        .collect();
    Term::tuple(vec![
        Term::atom("$gen_cast"),
        Term::tuple(vec![Term::atom("sync"), Term::Pid(from), Term::list(gs)]),
    ])
}

#[test]
fn discover_from_a_new_peer_syncs_monitors_and_discovers_back_once() {
    let (mut st, _) = scope();
    let mut fx = Fake::default();
    let peer = pid(PEER, 9);
    let member = pid(ME, 5);
    st.join_local(Term::binary(b"t/#"), &[member], Term::Pid(member), &mut fx);
    fx.sent.clear();
    st.handle(&discover(peer), &mut fx).unwrap();
    assert_eq!(
        fx.sent,
        vec![
            (
                Dest::Pid(peer),
                sync(pid(ME, 1), vec![(b"t/#", vec![member])])
            ),
            (Dest::Pid(peer), discover(pid(ME, 1))),
        ]
    );
    assert_eq!(fx.monitors.iter().filter(|(p, _)| *p == peer).count(), 1);
    fx.sent.clear();
    st.handle(&discover(peer), &mut fx).unwrap();
    assert_eq!(fx.sent.len(), 1, "a known peer only gets a sync");
    assert_eq!(fx.monitors.iter().filter(|(p, _)| *p == peer).count(), 1);
}

#[test]
fn sync_replaces_what_a_peer_had_and_monitors_an_unknown_peer() {
    let (mut st, g) = scope();
    let mut fx = Fake::default();
    let peer = pid(PEER, 9);
    let (p1, p2) = (pid(PEER, 20), pid(PEER, 21));
    st.handle(
        &sync(peer, vec![(b"t/#", vec![p1]), (b"x", vec![p1])]),
        &mut fx,
    )
    .unwrap();
    assert_eq!(fx.monitors.len(), 1);
    assert_eq!(members(&g, b"t/#"), vec![p1]);
    st.handle(&sync(peer, vec![(b"t/#", vec![p2])]), &mut fx)
        .unwrap();
    assert_eq!(members(&g, b"t/#"), vec![p2]);
    assert_eq!(members(&g, b"x"), Vec::<Pid>::new());
    st.handle(&sync(peer, vec![]), &mut fx).unwrap();
    assert!(g.lock().unwrap().groups().is_empty());
    assert_eq!(fx.monitors.len(), 1, "one monitor per peer scope");
}

#[test]
fn remote_join_and_leave_take_a_pid_or_a_list_and_ignore_unknown_peers() {
    let (mut st, g) = scope();
    let mut fx = Fake::default();
    let peer = pid(PEER, 9);
    let (p2, p4) = (pid(PEER, 22), pid(PEER, 24));
    let join = |g: &[u8], w: Term| {
        Term::tuple(vec![
            Term::atom("join"),
            Term::Pid(peer),
            Term::binary(g),
            w,
        ])
    };
    st.handle(&join(b"t/#", Term::Pid(p2)), &mut fx).unwrap();
    assert!(
        members(&g, b"t/#").is_empty(),
        "join from an unknown scope is ignored"
    );
    st.handle(&sync(peer, vec![]), &mut fx).unwrap();
    st.handle(&join(b"t/#", Term::Pid(p2)), &mut fx).unwrap();
    st.handle(&join(b"t/#", Term::Pid(p4)), &mut fx).unwrap();
    st.handle(&join(b"other", Term::list(vec![Term::Pid(p4)])), &mut fx)
        .unwrap();
    assert_eq!(members(&g, b"t/#"), vec![p4, p2]);
    let leave = Term::tuple(vec![
        Term::atom("leave"),
        Term::Pid(peer),
        Term::Pid(p4),
        Term::list(vec![Term::binary(b"other"), Term::binary(b"t/#")]),
    ]);
    st.handle(&leave, &mut fx).unwrap();
    assert_eq!(members(&g, b"t/#"), vec![p2]);
    assert!(members(&g, b"other").is_empty());
    assert!(fx.sent.is_empty(), "remote changes are not echoed");
}

#[test]
fn local_join_and_leave_are_broadcast_to_peer_scopes_as_otp_sends_them() {
    let (mut st, g) = scope();
    let mut fx = Fake::default();
    let peer = pid(PEER, 9);
    st.handle(&sync(peer, vec![]), &mut fx).unwrap();
    let p = pid(ME, 7);
    let wire = Term::list(vec![Term::Pid(p)]);
    st.join_local(Term::binary(b"t/#"), &[p], wire.clone(), &mut fx);
    assert_eq!(
        fx.sent.last().unwrap(),
        &(
            Dest::Pid(peer),
            Term::tuple(vec![
                Term::atom("join"),
                Term::Pid(pid(ME, 1)),
                Term::binary(b"t/#"),
                wire.clone()
            ])
        )
    );
    assert_eq!(
        g.lock()
            .unwrap()
            .local_members(&super::TermKey::new(Term::binary(b"t/#"))),
        vec![p]
    );
    assert!(!st.leave_local(Term::binary(b"nope"), &[p], wire.clone(), &mut fx));
    let before = fx.sent.len();
    assert!(st.leave_local(Term::binary(b"t/#"), &[p], wire.clone(), &mut fx));
    assert_eq!(fx.sent.len(), before + 1);
    assert_eq!(
        fx.sent.last().unwrap().1,
        Term::tuple(vec![
            Term::atom("leave"),
            Term::Pid(pid(ME, 1)),
            wire,
            Term::list(vec![Term::binary(b"t/#")])
        ])
    );
    assert_eq!(
        fx.demonitors.len(),
        1,
        "the last leave drops the member monitor"
    );
    assert!(members(&g, b"t/#").is_empty());
}

#[test]
fn a_dead_local_member_leaves_every_group_in_one_message() {
    let (mut st, g) = scope();
    let mut fx = Fake::default();
    let peer = pid(PEER, 9);
    st.handle(&sync(peer, vec![]), &mut fx).unwrap();
    let p = pid(ME, 4);
    st.join_local(Term::binary(b"t/#"), &[p], Term::Pid(p), &mut fx);
    st.join_local(Term::binary(b"other"), &[p], Term::Pid(p), &mut fx);
    let (_, r) = *fx.monitors.iter().find(|(x, _)| *x == p).unwrap();
    let stale = Reference::new(Atom::new(ME), 1, &[999, 0, 0]).unwrap();
    let down = |r: Reference| {
        Term::tuple(vec![
            Term::atom("DOWN"),
            Term::Ref(r),
            Term::atom("process"),
            Term::Pid(p),
            Term::atom("killed"),
        ])
    };
    fx.sent.clear();
    st.handle(&down(stale), &mut fx).unwrap();
    assert!(fx.sent.is_empty());
    st.handle(&down(r), &mut fx).unwrap();
    assert_eq!(
        fx.sent,
        vec![(
            Dest::Pid(peer),
            Term::tuple(vec![
                Term::atom("leave"),
                Term::Pid(pid(ME, 1)),
                Term::Pid(p),
                Term::list(vec![Term::binary(b"other"), Term::binary(b"t/#")])
            ])
        )]
    );
    assert!(g.lock().unwrap().groups().is_empty());
}

#[test]
fn a_peer_scope_going_down_drops_its_members_only() {
    let (mut st, g) = scope();
    let mut fx = Fake::default();
    let peer = pid(PEER, 9);
    let local = pid(ME, 3);
    st.join_local(Term::binary(b"t/#"), &[local], Term::Pid(local), &mut fx);
    st.handle(&sync(peer, vec![(b"t/#", vec![pid(PEER, 30)])]), &mut fx)
        .unwrap();
    assert_eq!(members(&g, b"t/#").len(), 2);
    let (_, r) = *fx.monitors.iter().find(|(x, _)| *x == peer).unwrap();
    let down = Term::tuple(vec![
        Term::atom("DOWN"),
        Term::Ref(r),
        Term::atom("process"),
        Term::Pid(peer),
        Term::atom("noconnection"),
    ]);
    st.handle(&down, &mut fx).unwrap();
    assert_eq!(members(&g, b"t/#"), vec![local]);
    assert!(st.peers().is_empty());
}

#[test]
fn unexpected_messages_are_errors_not_crashes() {
    let (mut st, _) = scope();
    let mut fx = Fake::default();
    for m in [
        Term::atom("hello"),
        Term::tuple(vec![Term::atom("$gen_cast"), Term::atom("x")]),
        Term::tuple(vec![Term::atom("join"), Term::Int(1), Term::Nil, Term::Nil]),
        Term::tuple(vec![
            Term::atom("join"),
            Term::Pid(pid(PEER, 1)),
            Term::Nil,
            Term::Int(3),
        ]),
        sync(pid(PEER, 1), vec![]).element(1).unwrap().clone(),
    ] {
        assert!(st.handle(&m, &mut fx).is_err(), "{m:?}");
    }
    assert!(fx.sent.is_empty());
}

#[test]
fn nodeup_discovers_the_scope_by_name() {
    let (mut st, _) = scope();
    let mut fx = Fake::default();
    st.handle(
        &Term::tuple(vec![Term::atom("nodeup"), Term::atom(PEER)]),
        &mut fx,
    )
    .unwrap();
    assert_eq!(
        fx.sent,
        vec![(
            Dest::NameAt(Atom::new("beamq_route"), Atom::new(PEER)),
            discover(pid(ME, 1))
        )]
    );
}

#[test]
fn subscribers_see_every_change_after_their_snapshot() {
    let (mut st, g) = scope();
    let mut fx = Fake::default();
    let peer = pid(PEER, 9);
    st.handle(&sync(peer, vec![(b"a", vec![pid(PEER, 2)])]), &mut fx)
        .unwrap();
    let (snapshot, mut rx) = g.lock().unwrap().subscribe();
    assert_eq!(snapshot, vec![(Term::binary(b"a"), vec![pid(PEER, 2)])]);
    st.handle(&sync(peer, vec![(b"b", vec![pid(PEER, 3)])]), &mut fx)
        .unwrap();
    let mut got = Vec::new();
    while let Ok(e) = rx.try_recv() {
        got.push(e);
    }
    assert_eq!(
        got,
        vec![
            Membership::Join {
                group: Term::binary(b"b"),
                pids: smallvec::smallvec![pid(PEER, 3)]
            },
            Membership::Leave {
                group: Term::binary(b"a"),
                pids: smallvec::smallvec![pid(PEER, 2)]
            },
        ]
    );
}

async fn next(q: &mut PeerQueue) -> RemoteSignal {
    tokio::time::timeout(Duration::from_secs(2), q.recv())
        .await
        .expect("signal in time")
        .expect("queue open")
}

#[tokio::test]
async fn the_scope_process_speaks_pg_to_a_peer_and_serves_rust_callers() {
    let node = Node::new(Atom::new("pgscope@127.0.0.1"), 5);
    let scope = Scope::start(&node, Atom::new("beamq_route")).unwrap();
    assert_eq!(
        Scope::lookup(&node, Atom::new("beamq_route")).map(|s| s.pid()),
        Some(scope.pid())
    );
    let peer = Atom::new("beam@127.0.0.1");
    let (_, mut q) = node.peer_up(peer, false);
    match next(&mut q).await {
        RemoteSignal::RegSend { from, name, msg } => {
            assert_eq!(from, scope.pid());
            assert_eq!(name, Atom::new("beamq_route"));
            assert_eq!(msg, discover(scope.pid()));
        }
        s => panic!("expected discover, got {s:?}"),
    }
    let peer_scope = Pid {
        node: peer,
        id: 77,
        serial: 0,
        creation: 2,
    };
    node.send_from(None, Dest::Pid(scope.pid()), discover(peer_scope));
    assert!(matches!(next(&mut q).await, RemoteSignal::Send { to, .. } if to == peer_scope));
    assert!(matches!(
        next(&mut q).await,
        RemoteSignal::Monitor { to: PidOrName::Pid(p), .. } if p == peer_scope
    ));
    assert!(
        matches!(next(&mut q).await, RemoteSignal::Send { to, msg, .. } if to == peer_scope && msg == discover(scope.pid()))
    );
    let member = node.spawn(|mut p| async move {
        p.recv().await;
        Term::atom("normal")
    });
    let mut sub = scope.subscribe();
    scope.join(Term::binary(b"t/#"), &[member]).await.unwrap();
    assert!(
        matches!(next(&mut q).await, RemoteSignal::Send { msg, .. } if msg.element(0) == Some(&Term::atom("join")))
    );
    assert_eq!(scope.get_members(&Term::binary(b"t/#")), vec![member]);
    assert_eq!(scope.which_local_groups(), vec![Term::binary(b"t/#")]);
    assert!(matches!(
        sub.events.recv().await,
        Some(Membership::Join { .. })
    ));
    node.exit(&member, &member, Term::atom("kill"));
    match next(&mut q).await {
        RemoteSignal::Send { msg, .. } => {
            assert_eq!(msg.element(0), Some(&Term::atom("leave")));
            assert_eq!(msg.element(2), Some(&Term::Pid(member)));
        }
        s => panic!("expected leave, got {s:?}"),
    }
    assert!(scope.get_members(&Term::binary(b"t/#")).is_empty());
    assert!(matches!(
        scope.join(Term::binary(b"x"), &[peer_scope]).await,
        Err(super::PgError::NotLocal(_))
    ));
}

fn drain(rx: &mut tokio::sync::mpsc::UnboundedReceiver<Membership>) -> Vec<Membership> {
    let mut got = Vec::new();
    while let Ok(e) = rx.try_recv() {
        got.push(e);
    }
    got
}

#[test]
fn a_repeated_sync_changes_nothing_and_a_changed_one_only_what_changed() {
    let (mut st, g) = scope();
    let mut fx = Fake::default();
    let peer = pid(PEER, 9);
    let (p2, p3) = (pid(PEER, 2), pid(PEER, 3));
    let first = sync(peer, vec![(b"a", vec![p2]), (b"b", vec![p2, p3])]);
    st.handle_owned(first.clone(), &mut fx).unwrap();
    let (_, mut rx) = g.lock().unwrap().subscribe();
    // pg.erl answers each discover with a full sync: the second copy is a no-op.
    st.handle_owned(first, &mut fx).unwrap();
    assert_eq!(drain(&mut rx), vec![]);
    assert_eq!(members(&g, b"b"), vec![p2, p3]);
    st.handle_owned(
        sync(peer, vec![(b"b", vec![p3]), (b"c", vec![p2])]),
        &mut fx,
    )
    .unwrap();
    let b = Term::binary(b"b");
    assert_eq!(
        drain(&mut rx),
        vec![
            Membership::Leave {
                group: b.clone(),
                pids: smallvec::smallvec![p2, p3]
            },
            Membership::Join {
                group: b,
                pids: smallvec::smallvec![p3]
            },
            Membership::Join {
                group: Term::binary(b"c"),
                pids: smallvec::smallvec![p2]
            },
            Membership::Leave {
                group: Term::binary(b"a"),
                pids: smallvec::smallvec![p2]
            },
        ]
    );
    assert_eq!(members(&g, b"a"), vec![]);
    assert_eq!(members(&g, b"b"), vec![p3]);
    assert_eq!(fx.monitors.len(), 1, "the peer is monitored once");
}

#[test]
fn a_group_listed_twice_joins_twice_as_in_pg_erl() {
    let (mut st, g) = scope();
    let mut fx = Fake::default();
    let peer = pid(PEER, 9);
    let (p2, p3) = (pid(PEER, 2), pid(PEER, 3));
    st.handle_owned(sync(peer, vec![(b"a", vec![p2])]), &mut fx)
        .unwrap();
    // sync_groups/5: the first {a, _} takes the old entry, the second joins again.
    st.handle_owned(
        sync(peer, vec![(b"a", vec![p2]), (b"a", vec![p3])]),
        &mut fx,
    )
    .unwrap();
    assert_eq!(members(&g, b"a"), vec![p3, p2]);
    // The peer's map keeps the last pids: a sync without `a` removes those.
    st.handle_owned(sync(peer, vec![]), &mut fx).unwrap();
    assert_eq!(members(&g, b"a"), vec![p2]);
}

#[test]
fn a_malformed_sync_is_ignored_whole() {
    let (mut st, g) = scope();
    let mut fx = Fake::default();
    let peer = pid(PEER, 9);
    st.handle_owned(sync(peer, vec![(b"a", vec![pid(PEER, 2)])]), &mut fx)
        .unwrap();
    let bad = Term::tuple(vec![
        Term::atom("$gen_cast"),
        Term::tuple(vec![
            Term::atom("sync"),
            Term::Pid(peer),
            Term::list(vec![
                Term::tuple(vec![Term::binary(b"b"), Term::Pid(pid(PEER, 3))]),
                Term::tuple(vec![Term::binary(b"c"), Term::list(vec![Term::Int(1)])]),
            ]),
        ]),
    ]);
    assert!(st.handle_owned(bad, &mut fx).is_err());
    assert_eq!(members(&g, b"a"), vec![pid(PEER, 2)]);
    assert_eq!(members(&g, b"b"), vec![]);
}

#[test]
fn a_sync_carries_every_local_join() {
    let (mut st, _) = scope();
    let mut fx = Fake::default();
    let (m1, m2) = (pid(ME, 5), pid(ME, 6));
    let wire = |p: Pid| Term::list(vec![Term::Pid(p)]);
    st.join_local(Term::binary(b"a"), &[m1], wire(m1), &mut fx);
    st.join_local(Term::binary(b"a"), &[m1], wire(m1), &mut fx);
    st.join_local(Term::binary(b"b"), &[m2], wire(m2), &mut fx);
    st.handle(&discover(pid(PEER, 9)), &mut fx).unwrap();
    let (_, msg) = &fx.sent[0];
    let list = msg.element(1).and_then(|b| b.element(2)).unwrap();
    let mut got: Vec<(Term, Vec<Term>)> = list
        .as_list()
        .unwrap()
        .iter()
        .map(|e| {
            let [g, ps] = e.as_tuple_n::<2>().unwrap();
            (g.clone(), ps.as_list().unwrap().to_vec())
        })
        .collect();
    got.sort_by_key(|(g, _)| g.as_binary().map(|b| b.to_vec()));
    assert_eq!(
        got,
        vec![
            (Term::binary(b"a"), vec![Term::Pid(m1), Term::Pid(m1)]),
            (Term::binary(b"b"), vec![Term::Pid(m2)]),
        ]
    );
}

#[test]
fn a_repeated_sync_is_applied_again_after_the_peer_changed_in_between() {
    let (mut st, g) = scope();
    let mut fx = Fake::default();
    let peer = pid(PEER, 9);
    let (p2, p3) = (pid(PEER, 2), pid(PEER, 3));
    let first = sync(peer, vec![(b"a", vec![p2]), (b"b", vec![p3])]);
    st.handle_owned(first.clone(), &mut fx).unwrap();
    // A join the same sync does not list: the repeated sync must take it away again.
    let join = Term::tuple(vec![
        Term::atom("join"),
        Term::Pid(peer),
        Term::binary(b"c"),
        Term::Pid(p2),
    ]);
    st.handle(&join, &mut fx).unwrap();
    assert_eq!(members(&g, b"c"), vec![p2]);
    st.handle_owned(first.clone(), &mut fx).unwrap();
    assert_eq!(members(&g, b"c"), vec![]);
    // A leave of a listed group: the repeated sync must put it back.
    let leave = Term::tuple(vec![
        Term::atom("leave"),
        Term::Pid(peer),
        Term::Pid(p3),
        Term::list(vec![Term::binary(b"b")]),
    ]);
    st.handle(&leave, &mut fx).unwrap();
    assert_eq!(members(&g, b"b"), vec![]);
    st.handle_owned(first, &mut fx).unwrap();
    assert_eq!(members(&g, b"b"), vec![p3]);
    assert_eq!(members(&g, b"a"), vec![p2]);
}

#[test]
fn a_repeated_sync_listing_a_group_twice_is_applied_as_pg_erl_applies_it() {
    let (mut st, g) = scope();
    let mut fx = Fake::default();
    let peer = pid(PEER, 9);
    let (p2, p3) = (pid(PEER, 2), pid(PEER, 3));
    let twice = sync(peer, vec![(b"a", vec![p2]), (b"a", vec![p3])]);
    st.handle_owned(twice.clone(), &mut fx).unwrap();
    assert_eq!(members(&g, b"a"), vec![p3, p2]);
    // The second copy is not a no-op here: the first {a, _} replaces the peer's last pids
    // ([p3]) with [p2], and the second joins p3 again.
    st.handle_owned(twice, &mut fx).unwrap();
    assert_eq!(members(&g, b"a"), vec![p3, p2, p2]);
}
