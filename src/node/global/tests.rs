//! The harness for driving `global_name_server` ([`GlobalState`]) without I/O, against the
//! message sequences OTP 25 produces (reference/otp25-traces.md §1, §2): a fake [`Effects`] that
//! records every send, monitor, reply and exit; builders for the casts and calls a BEAM peer sends
//! (`lib/kernel/src/global.erl`); drivers that run the connect handshake up to a synced peer; and
//! the dispatcher's rejection of messages global does not know.
use std::sync::{Arc, Mutex};

use super::locks::LockTable;
use super::names::NameTable;
use super::server::{Effects, GlobalState};
use crate::dist::etf::{Atom, Pid, Reference, Term};
use crate::node::Dest;

pub(super) fn pid(node: &str, id: u32) -> Pid {
    Pid {
        node: Atom::new(node),
        id,
        serial: 0,
        creation: 1,
    }
}

#[derive(Default)]
pub(super) struct Fake {
    pub(super) next: u32,
    pub(super) monitors: Vec<(Pid, Reference)>,
    pub(super) demonitors: Vec<Reference>,
    pub(super) sent: Vec<(Dest, Term)>,
    pub(super) noconnect: Vec<(Dest, Term)>,
    pub(super) replies: Vec<(Term, Term)>,
    pub(super) exits: Vec<(Pid, Term)>,
    pub(super) disconnects: Vec<Atom>,
    pub(super) synced_others: Vec<Atom>,
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
    pub(super) fn take_sent(&mut self) -> Vec<(Dest, Term)> {
        std::mem::take(&mut self.sent)
    }
}

pub(super) struct Setup {
    pub(super) st: GlobalState,
    pub(super) names: Arc<Mutex<NameTable>>,
    pub(super) locker: Pid,
    pub(super) me: Atom,
}

pub(super) fn setup(me: &str) -> Setup {
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

pub(super) fn cast(body: Vec<Term>) -> Term {
    Term::tuple(vec![Term::atom("$gen_cast"), Term::tuple(body)])
}

pub(super) fn gns_at(node: &str) -> Dest {
    Dest::NameAt(Atom::new("global_name_server"), Atom::new(node))
}

pub(super) fn call(from: Pid, node: &str, req: Term) -> (Term, Term) {
    let r = Reference::new(from.node, 1, &[42, 0, 0]).unwrap();
    let tag = Term::tuple(vec![Term::Ref(r), Term::atom(node)]);
    let f = Term::tuple(vec![Term::Pid(from), tag]);
    (
        Term::tuple(vec![Term::atom("$gen_call"), f.clone(), req]),
        f,
    )
}

pub(super) fn method() -> Term {
    Term::tuple(vec![Term::atom("fake_fun")])
}

/// Runs nodeup + init_connect from `peer` and returns (my tag, his tag).
pub(super) fn connect(s: &mut Setup, fx: &mut Fake, peer: &str, his_locker: Pid) -> (Term, Term) {
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

/// A complete two-node session with `peer` (no names).
pub(super) fn full_connect(s: &mut Setup, fx: &mut Fake, peer: &str, id: u32) {
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
