//! global_name_server against the message sequences OTP 25 produces
//! (reference/otp25-traces.md §1, §2), driven without I/O.
use std::sync::{Arc, Mutex};

use super::locks::LockTable;
use super::names::NameTable;
use super::server::{Effects, GlobalState};
use crate::dist::etf::{Atom, Pid, Reference, Term};
use crate::node::pg::TermKey;
use crate::node::Dest;

fn pid(node: &str, id: u32) -> Pid {
    Pid {
        node: Atom::new(node),
        id,
        serial: 0,
        creation: 1,
    }
}

#[derive(Default)]
struct Fake {
    next: u32,
    monitors: Vec<(Pid, Reference)>,
    demonitors: Vec<Reference>,
    sent: Vec<(Dest, Term)>,
    noconnect: Vec<(Dest, Term)>,
    replies: Vec<(Term, Term)>,
    exits: Vec<(Pid, Term)>,
    disconnects: Vec<Atom>,
    synced_others: Vec<Atom>,
}

impl Effects for Fake {
    fn monitor(&mut self, pid: Pid) -> Reference {
        self.next += 1;
        let r = Reference::new(Atom::new("me"), 1, &[self.next, 0, 0]).unwrap();
        self.monitors.push((pid, r));
        r
    }
    fn demonitor(&mut self, reference: Reference) {
        self.demonitors.push(reference);
    }
    fn send(&mut self, to: Dest, msg: Term) {
        self.sent.push((to, msg));
    }
    /// Casts (`{'$gen_cast', _}`) land in `sent` with the messages to the locker, global's
    /// plain messages (acks, lost/remove_connection, cancel_connect) in `noconnect`.
    fn send_noconnect(&mut self, to: Dest, msg: Term) {
        if msg.element(0) == Some(&Term::atom("$gen_cast")) {
            self.sent.push((to, msg));
        } else {
            self.noconnect.push((to, msg));
        }
    }
    fn reply(&mut self, from: &Term, reply: Term) {
        self.replies.push((from.clone(), reply));
    }
    fn exit(&mut self, pid: Pid, reason: Term) {
        self.exits.push((pid, reason));
    }
    fn disconnect(&mut self, node: Atom) {
        self.disconnects.push(node);
    }
    fn sync_others(&mut self, nodes: Vec<Atom>) {
        self.synced_others.extend(nodes);
    }
}

impl Fake {
    fn take_sent(&mut self) -> Vec<(Dest, Term)> {
        std::mem::take(&mut self.sent)
    }
}

struct Setup {
    st: GlobalState,
    names: Arc<Mutex<NameTable>>,
    locker: Pid,
    me: Atom,
}

fn setup(me: &str) -> Setup {
    let names = Arc::new(Mutex::new(NameTable::default()));
    let locks = Arc::new(Mutex::new(LockTable::default()));
    let locker = pid(me, 2);
    let st = GlobalState::new(Atom::new(me), locker, names.clone(), locks);
    Setup {
        st,
        names,
        locker,
        me: Atom::new(me),
    }
}

fn cast(body: Vec<Term>) -> Term {
    Term::tuple(vec![Term::atom("$gen_cast"), Term::tuple(body)])
}

fn gns_at(node: &str) -> Dest {
    Dest::NameAt(Atom::new("global_name_server"), Atom::new(node))
}

fn call(from: Pid, node: &str, req: Term) -> (Term, Term) {
    let r = Reference::new(from.node, 1, &[42, 0, 0]).unwrap();
    let tag = Term::tuple(vec![Term::Ref(r), Term::atom(node)]);
    let f = Term::tuple(vec![Term::Pid(from), tag]);
    (
        Term::tuple(vec![Term::atom("$gen_call"), f.clone(), req]),
        f,
    )
}

fn method() -> Term {
    Term::tuple(vec![Term::atom("fake_fun")])
}

/// Runs nodeup + init_connect from `peer` and returns (my tag, his tag).
fn connect(s: &mut Setup, fx: &mut Fake, peer: &str, his_locker: Pid) -> (Term, Term) {
    s.st.nodeup(Atom::new(peer), fx);
    let sent = fx.take_sent();
    let (to, init) = &sent[0];
    assert_eq!(*to, gns_at(peer));
    let body = init.element(1).unwrap();
    assert_eq!(body.element(0), Some(&Term::atom("init_connect")));
    let vsn_tag = body.element(1).unwrap();
    assert_eq!(vsn_tag.element(0), Some(&Term::Int(8)));
    let my_tag = vsn_tag.element(1).unwrap().clone();
    assert_eq!(body.element(2), Some(&Term::Atom(s.me)));
    let locker_info = body.element(3).unwrap();
    assert_eq!(locker_info.element(1), Some(&Term::atom("no_longer_a_pid")));
    assert!(
        matches!(locker_info.element(2), Some(Term::Map(_))),
        "known is a map"
    );
    assert_eq!(locker_info.element(3), Some(&Term::Pid(s.locker)));
    let his_tag = Term::int(-576_460_752_303_423_488);
    let his_init = cast(vec![
        Term::atom("init_connect"),
        Term::tuple(vec![Term::Int(8), his_tag.clone()]),
        Term::atom(peer),
        Term::tuple(vec![
            Term::atom("locker"),
            Term::atom("no_longer_a_pid"),
            Term::map(vec![]),
            Term::Pid(his_locker),
        ]),
    ]);
    s.st.handle(&his_init, fx).unwrap();
    let sent = fx.take_sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0, Dest::Pid(s.locker));
    assert_eq!(sent[0].1.element(0), Some(&Term::atom("his_the_locker")));
    let ack = fx.noconnect.pop().unwrap();
    assert_eq!(ack.0, gns_at(peer));
    assert_eq!(
        ack.1,
        Term::tuple(vec![
            Term::atom("init_connect_ack"),
            Term::Atom(s.me),
            his_tag.clone(),
            my_tag.clone()
        ])
    );
    (my_tag, his_tag)
}

#[test]
fn two_node_connect_follows_the_otp_25_sequence() {
    let mut s = setup("b@127.0.0.1");
    let mut fx = Fake::default();
    let la = pid("a@127.0.0.1", 50);
    let (my_tag, his_tag) = connect(&mut s, &mut fx, "a@127.0.0.1", la);
    let ack = Term::tuple(vec![
        Term::atom("init_connect_ack"),
        Term::atom("a@127.0.0.1"),
        my_tag.clone(),
        his_tag.clone(),
    ]);
    s.st.handle(&ack, &mut fx).unwrap();
    assert!(
        fx.sent.is_empty() && fx.noconnect.is_empty(),
        "a matching ack needs nothing"
    );

    let lock_id = Term::tuple(vec![
        Term::atom("global"),
        super::terms::sorted_pids(la, s.locker),
    ]);
    let set_lock = Term::tuple(vec![Term::atom("set_lock"), lock_id.clone()]);
    let (m, from) = call(la, "b@127.0.0.1", set_lock);
    s.st.handle(&m, &mut fx).unwrap();
    assert_eq!(fx.replies.pop(), Some((from, Term::atom("true"))));
    assert_eq!(
        fx.monitors.last().map(|(p, _)| *p),
        Some(la),
        "the lock holder is monitored"
    );

    let lock_set = cast(vec![
        Term::atom("lock_set"),
        Term::Pid(la),
        Term::atom("true"),
        Term::Nil,
        my_tag.clone(),
    ]);
    s.st.handle(&lock_set, &mut fx).unwrap();
    assert_eq!(
        fx.take_sent(),
        vec![(Dest::Pid(s.locker), lock_set.element(1).unwrap().clone())]
    );
    let stale = cast(vec![
        Term::atom("lock_set"),
        Term::Pid(la),
        Term::atom("true"),
        Term::Nil,
        Term::Int(12345),
    ]);
    s.st.handle(&stale, &mut fx).unwrap();
    assert!(fx.sent.is_empty(), "a lock_set with an old tag is dropped");

    let lock_is_set = cast(vec![
        Term::atom("lock_is_set"),
        Term::atom("a@127.0.0.1"),
        my_tag.clone(),
        lock_id.clone(),
    ]);
    s.st.handle(&lock_is_set, &mut fx).unwrap();
    assert_eq!(
        fx.take_sent(),
        vec![(
            gns_at("a@127.0.0.1"),
            cast(vec![
                Term::atom("exchange"),
                Term::atom("b@127.0.0.1"),
                Term::Nil,
                Term::Nil,
                his_tag.clone()
            ])
        )]
    );

    let pa = pid("a@127.0.0.1", 77);
    let exchange = cast(vec![
        Term::atom("exchange"),
        Term::atom("a@127.0.0.1"),
        Term::list(vec![Term::tuple(vec![
            Term::atom("foo"),
            Term::Pid(pa),
            method(),
        ])]),
        Term::Nil,
        my_tag.clone(),
    ]);
    s.st.handle(&exchange, &mut fx).unwrap();
    assert_eq!(
        fx.take_sent(),
        vec![(
            gns_at("a@127.0.0.1"),
            cast(vec![
                Term::atom("resolved"),
                Term::atom("b@127.0.0.1"),
                Term::Nil,
                Term::Nil,
                Term::atom("unused"),
                Term::Nil,
                his_tag.clone()
            ])
        )]
    );
    assert!(
        s.st.synced().is_empty(),
        "not synced before the peer's resolved"
    );

    let resolved = cast(vec![
        Term::atom("resolved"),
        Term::atom("a@127.0.0.1"),
        Term::Nil,
        Term::Nil,
        Term::atom("unused"),
        Term::Nil,
        my_tag.clone(),
    ]);
    s.st.handle(&resolved, &mut fx).unwrap();
    assert_eq!(s.st.synced(), &[Atom::new("a@127.0.0.1")]);
    assert_eq!(s.st.known(), vec![Atom::new("a@127.0.0.1")]);
    assert_eq!(
        s.names
            .lock()
            .unwrap()
            .get(&TermKey::new(Term::atom("foo")))
            .map(|e| e.pid),
        Some(pa),
        "the peer's name is inserted while the connect lock is held"
    );
    assert!(
        fx.monitors.iter().any(|(p, _)| *p == pa),
        "registered pids are monitored"
    );
    let to_locker: Vec<Term> = fx.take_sent().into_iter().map(|(_, m)| m).collect();
    assert_eq!(to_locker[0].element(0), Some(&Term::atom("cancel")));
    assert_eq!(to_locker[0].element(2), Some(&my_tag));
    assert_eq!(
        to_locker[0].element(3).and_then(|f| f.element(0)),
        Some(&Term::atom("new_nodes_to"))
    );
    assert_eq!(
        to_locker[1],
        Term::tuple(vec![
            Term::atom("add_to_known"),
            Term::list(vec![Term::atom("a@127.0.0.1")])
        ])
    );

    let (m, from) = call(
        la,
        "b@127.0.0.1",
        Term::tuple(vec![Term::atom("del_lock"), lock_id]),
    );
    s.st.handle(&m, &mut fx).unwrap();
    assert_eq!(fx.replies.pop(), Some((from, Term::atom("true"))));
    assert!(!fx.demonitors.is_empty());

    // A second nodeup for a known node starts nothing.
    s.st.nodeup(Atom::new("a@127.0.0.1"), &mut fx);
    assert!(fx.sent.is_empty());
}

#[test]
fn init_connect_before_nodeup_is_kept_and_replayed() {
    let mut s = setup("b@127.0.0.1");
    let mut fx = Fake::default();
    let la = pid("a@127.0.0.1", 50);
    let early = cast(vec![
        Term::atom("init_connect"),
        Term::tuple(vec![Term::Int(8), Term::Int(-99)]),
        Term::atom("a@127.0.0.1"),
        Term::tuple(vec![
            Term::atom("locker"),
            Term::atom("no_longer_a_pid"),
            Term::map(vec![]),
            Term::Pid(la),
        ]),
    ]);
    s.st.handle(&early, &mut fx).unwrap();
    assert!(fx.sent.is_empty() && fx.noconnect.is_empty());
    s.st.nodeup(Atom::new("a@127.0.0.1"), &mut fx);
    let sent = fx.take_sent();
    assert_eq!(sent.len(), 2, "init_connect, then his_the_locker");
    assert_eq!(fx.noconnect.len(), 1, "init_connect_ack");
    assert_eq!(fx.noconnect[0].1.element(2), Some(&Term::Int(-99)));
}

#[test]
fn out_of_sync_ack_cancels_and_restarts() {
    let mut s = setup("b@127.0.0.1");
    let mut fx = Fake::default();
    let (my_tag, _) = connect(&mut s, &mut fx, "a@127.0.0.1", pid("a@127.0.0.1", 50));
    let ack = Term::tuple(vec![
        Term::atom("init_connect_ack"),
        Term::atom("a@127.0.0.1"),
        my_tag.clone(),
        Term::Int(1),
    ]);
    s.st.handle(&ack, &mut fx).unwrap();
    let cancel = fx
        .noconnect
        .iter()
        .find(|(_, m)| m.element(0) == Some(&Term::atom("cancel_connect")));
    assert!(cancel.is_some(), "the peer is told to cancel");
    let restarted = fx.sent.iter().find(|(_, m)| {
        m.element(1).and_then(|b| b.element(0)) == Some(&Term::atom("init_connect"))
    });
    let new_tag = restarted.and_then(|(_, m)| m.element(1)?.element(1)?.element(1).cloned());
    assert!(
        new_tag.is_some_and(|t| t != my_tag),
        "a new session with a new tag"
    );
}

#[test]
fn registration_calls_answer_and_track_the_pid() {
    let mut s = setup("b@127.0.0.1");
    let mut fx = Fake::default();
    let registrar = pid("a@127.0.0.1", 60);
    let p3 = pid("a@127.0.0.1", 61);
    let lock = Term::tuple(vec![Term::atom("global"), Term::Pid(registrar)]);
    let (m, _) = call(
        registrar,
        "b@127.0.0.1",
        Term::tuple(vec![Term::atom("set_lock"), lock.clone()]),
    );
    s.st.handle(&m, &mut fx).unwrap();
    let reg = Term::tuple(vec![
        Term::atom("register"),
        Term::atom("foo"),
        Term::Pid(p3),
        method(),
    ]);
    let (m, from) = call(registrar, "b@127.0.0.1", reg);
    s.st.handle(&m, &mut fx).unwrap();
    assert_eq!(fx.replies.last(), Some(&(from, Term::atom("yes"))));
    assert_eq!(s.st.where_name(&TermKey::new(Term::atom("foo"))), Some(p3));
    let (_, r) = *fx.monitors.iter().find(|(p, _)| *p == p3).unwrap();

    // Another registrar holding a different global lock is refused.
    let other = Term::tuple(vec![Term::atom("global"), Term::Pid(pid("c@h", 1))]);
    let (m, from) = call(
        pid("c@h", 1),
        "b@127.0.0.1",
        Term::tuple(vec![Term::atom("set_lock"), other]),
    );
    s.st.handle(&m, &mut fx).unwrap();
    assert_eq!(fx.replies.last(), Some(&(from, Term::atom("false"))));

    let down = Term::tuple(vec![
        Term::atom("DOWN"),
        Term::Ref(r),
        Term::atom("process"),
        Term::Pid(p3),
        Term::atom("killed"),
    ]);
    s.st.handle(&down, &mut fx).unwrap();
    assert_eq!(s.st.where_name(&TermKey::new(Term::atom("foo"))), None);

    let (m, from) = call(
        registrar,
        "b@127.0.0.1",
        Term::tuple(vec![Term::atom("unregister"), Term::atom("foo")]),
    );
    s.st.handle(&m, &mut fx).unwrap();
    assert_eq!(fx.replies.last(), Some(&(from, Term::atom("ok"))));
}

#[test]
fn a_registration_without_the_lock_does_not_stick() {
    let mut s = setup("b@127.0.0.1");
    let mut fx = Fake::default();
    let registrar = pid("a@127.0.0.1", 60);
    let holder = pid("a@127.0.0.1", 70);
    let lock = Term::tuple(vec![Term::atom("global"), Term::Pid(holder)]);
    let (m, _) = call(
        holder,
        "b@127.0.0.1",
        Term::tuple(vec![Term::atom("set_lock"), lock]),
    );
    s.st.handle(&m, &mut fx).unwrap();
    let reg = Term::tuple(vec![
        Term::atom("register"),
        Term::atom("foo"),
        Term::Pid(pid("a@127.0.0.1", 5)),
        method(),
    ]);
    let (m, _) = call(registrar, "b@127.0.0.1", reg);
    s.st.handle(&m, &mut fx).unwrap();
    assert_eq!(s.st.where_name(&TermKey::new(Term::atom("foo"))), None);
}

#[test]
fn the_smaller_node_resolves_a_conflict_by_killing_the_pid_on_the_larger_node() {
    let mut s = setup("a@127.0.0.1");
    let mut fx = Fake::default();
    let pa = pid("a@127.0.0.1", 10);
    let pb = pid("b@127.0.0.1", 20);
    let (m, _) = call(
        pa,
        "a@127.0.0.1",
        Term::tuple(vec![
            Term::atom("register"),
            Term::atom("foo"),
            Term::Pid(pa),
            method(),
        ]),
    );
    s.st.handle(&m, &mut fx).unwrap();
    let lb = pid("b@127.0.0.1", 2);
    let (my_tag, his_tag) = connect(&mut s, &mut fx, "b@127.0.0.1", lb);
    let lock_id = Term::tuple(vec![
        Term::atom("global"),
        super::terms::sorted_pids(lb, s.locker),
    ]);
    s.st.handle(
        &cast(vec![
            Term::atom("lock_is_set"),
            Term::atom("b@127.0.0.1"),
            my_tag.clone(),
            lock_id,
        ]),
        &mut fx,
    )
    .unwrap();
    fx.take_sent();
    let exchange = cast(vec![
        Term::atom("exchange"),
        Term::atom("b@127.0.0.1"),
        Term::list(vec![
            Term::tuple(vec![Term::atom("foo"), Term::Pid(pb), method()]),
            Term::tuple(vec![Term::atom("bar"), Term::Pid(pb), method()]),
        ]),
        Term::Nil,
        my_tag,
    ]);
    s.st.handle(&exchange, &mut fx).unwrap();
    assert_eq!(fx.exits, vec![(pb, Term::atom("kill"))]);
    let resolved = &fx.take_sent()[0].1;
    let body = resolved.element(1).unwrap();
    assert_eq!(body.element(0), Some(&Term::atom("resolved")));
    assert_eq!(
        body.element(2),
        Some(&Term::list(vec![Term::tuple(vec![
            Term::atom("insert"),
            Term::tuple(vec![Term::atom("foo"), Term::Pid(pa), method()])
        ])])),
        "the peer is told to keep our pid"
    );
    assert_eq!(body.element(6), Some(&his_tag));
}

/// A complete two-node session with `peer` (no names).
fn full_connect(s: &mut Setup, fx: &mut Fake, peer: &str, id: u32) {
    let (my_tag, _) = connect(s, fx, peer, pid(peer, id));
    let lock_id = Term::tuple(vec![Term::atom("global"), Term::Nil]);
    s.st.handle(
        &cast(vec![
            Term::atom("lock_is_set"),
            Term::atom(peer),
            my_tag.clone(),
            lock_id,
        ]),
        fx,
    )
    .unwrap();
    s.st.handle(
        &cast(vec![
            Term::atom("exchange"),
            Term::atom(peer),
            Term::Nil,
            Term::Nil,
            my_tag.clone(),
        ]),
        fx,
    )
    .unwrap();
    s.st.handle(
        &cast(vec![
            Term::atom("resolved"),
            Term::atom(peer),
            Term::Nil,
            Term::Nil,
            Term::atom("unused"),
            Term::Nil,
            my_tag,
        ]),
        fx,
    )
    .unwrap();
    fx.take_sent();
}

#[test]
fn lost_connection_is_rebroadcast_once_and_removes_the_lost_node() {
    let mut s = setup("b@127.0.0.1");
    let mut fx = Fake::default();
    full_connect(&mut s, &mut fx, "a@127.0.0.1", 50);
    full_connect(&mut s, &mut fx, "c@127.0.0.1", 51);
    assert_eq!(s.st.known().len(), 2);
    fx.noconnect.clear();
    let lost = Term::tuple(vec![
        Term::atom("lost_connection"),
        Term::atom("a@127.0.0.1"),
        Term::int(1_257_697_521_351_191_828),
        Term::int(-576_460_752_303_423_487),
        Term::atom("c@127.0.0.1"),
    ]);
    s.st.handle(&lost, &mut fx).unwrap();
    assert_eq!(
        fx.noconnect,
        vec![
            (gns_at("c@127.0.0.1"), lost.clone()),
            (
                gns_at("c@127.0.0.1"),
                Term::tuple(vec![
                    Term::atom("remove_connection"),
                    Term::atom("b@127.0.0.1")
                ])
            )
        ]
    );
    assert_eq!(s.st.known(), vec![Atom::new("a@127.0.0.1")]);
    fx.noconnect.clear();
    s.st.handle(&lost, &mut fx).unwrap();
    assert!(fx.noconnect.is_empty(), "a duplicate is ignored");
    s.st.nodedown(Atom::new("c@127.0.0.1"), &mut fx);
    assert!(
        fx.noconnect.is_empty(),
        "the removal's nodedown is not reported"
    );

    s.st.handle(
        &Term::tuple(vec![
            Term::atom("remove_connection"),
            Term::atom("a@127.0.0.1"),
        ]),
        &mut fx,
    )
    .unwrap();
    assert_eq!(fx.disconnects, vec![Atom::new("a@127.0.0.1")]);
    assert!(s.st.known().is_empty());
}

#[test]
fn an_unexpected_nodedown_is_reported_to_the_other_known_nodes() {
    let mut s = setup("b@127.0.0.1");
    let mut fx = Fake::default();
    full_connect(&mut s, &mut fx, "a@127.0.0.1", 50);
    full_connect(&mut s, &mut fx, "c@127.0.0.1", 51);
    fx.noconnect.clear();
    s.st.nodedown(Atom::new("c@127.0.0.1"), &mut fx);
    assert_eq!(fx.noconnect.len(), 1);
    let (to, m) = &fx.noconnect[0];
    assert_eq!(*to, gns_at("a@127.0.0.1"));
    assert_eq!(m.element(0), Some(&Term::atom("lost_connection")));
    assert_eq!(m.element(1), Some(&Term::atom("b@127.0.0.1")));
    let xcre = m.element(2).and_then(super::terms::int_of);
    assert!(
        xcre.is_some_and(|x| x > 0),
        "extended creation is a positive integer"
    );
    assert_eq!(m.element(4), Some(&Term::atom("c@127.0.0.1")));
    assert_eq!(s.st.known(), vec![Atom::new("a@127.0.0.1")]);
}

#[test]
fn unknown_messages_are_errors() {
    let mut s = setup("b@127.0.0.1");
    let mut fx = Fake::default();
    for m in [
        Term::atom("x"),
        cast(vec![Term::atom("nope")]),
        Term::tuple(vec![Term::atom("lost_connection")]),
    ] {
        assert!(s.st.handle(&m, &mut fx).is_err());
    }
}
