//! The connect handshake of global protocol vsn 8 (`global.erl`: `init_connect`,
//! `init_connect_ack`, `lock_is_set`, `exchange`, `resolved`), as OTP 25 runs it between two
//! nodes: the full sequence up to a synced peer, an `init_connect` that overtakes `nodeup`, and
//! an ack with a stale tag that restarts the session.
use crate::dist::etf::{Atom, Term};
use crate::node::pg::TermKey;
use crate::node::Dest;

use super::tests::{call, cast, connect, gns_at, method, pid, setup, Fake};

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
