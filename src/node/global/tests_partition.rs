//! Node loss and "prevent overlapping partitions" (`global.erl` `inform_connection_loss/2`,
//! `handle_info({lost_connection, ...})`; reference/otp25-traces.md §1.6): a `lost_connection`
//! is passed on once to the other known nodes and answered with `remove_connection`, and an
//! unexpected `nodedown` is reported to the other known nodes as a `lost_connection`.
use crate::dist::etf::{Atom, Term};

use super::tests::{full_connect, gns_at, setup, Fake};

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
