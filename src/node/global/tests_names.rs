//! Name registration through `global_name_server`: `register` / `unregister` calls under the
//! registrar's global lock, the registered pid's monitor removing the name on `DOWN`, and the
//! name conflict resolution of `exchange` (`global.erl` `exchange_names/4`; resolved on the
//! smaller node as the default `global:random_exit_name/3` does: the other pid is killed).
use crate::dist::etf::Term;
use crate::node::pg::TermKey;

use super::tests::{call, cast, connect, method, pid, setup, Fake};

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
