use super::*;
use crate::node::mailbox::{mailbox, Mailbox};
use crate::node::signal::{PidOrName, RemoteSignal};

fn me() -> Atom {
    Atom::new("me@127.0.0.1")
}
fn peer() -> Atom {
    Atom::new("peer@127.0.0.1")
}
fn pid(node: Atom, id: u32) -> Pid {
    Pid {
        node,
        id,
        serial: 0,
        creation: 1,
    }
}
fn reference(node: Atom, n: u32) -> Reference {
    Reference::new(node, 1, &[n, 0, 0]).unwrap()
}

struct Proc {
    pid: Pid,
    mbox: Mailbox,
    kill: oneshot::Receiver<Term>,
}

fn spawn(t: &mut Table, id: u32) -> Proc {
    let p = pid(me(), id);
    let (tx, mbox) = mailbox(16);
    let (ktx, kill) = oneshot::channel();
    t.insert(p, tx, ktx);
    Proc { pid: p, mbox, kill }
}

fn next(m: &mut Mailbox) -> Option<Term> {
    m.try_recv()
}

#[test]
fn register_and_names() {
    let mut t = Table::new(me());
    let a = spawn(&mut t, 1);
    let b = spawn(&mut t, 2);
    let n = Atom::new("srv");
    assert_eq!(t.register(n, &a.pid), Ok(()));
    assert_eq!(t.register(n, &b.pid), Err(RegisterError::NameTaken));
    assert_eq!(
        t.register(Atom::new("x"), &a.pid),
        Err(RegisterError::AlreadyNamed)
    );
    assert_eq!(t.whereis(n), Some(a.pid));
    t.exited(&a.pid, &Term::atom("normal"));
    assert_eq!(t.whereis(n), None);
}

#[test]
fn linked_exit_kills_or_is_trapped() {
    let mut t = Table::new(me());
    let a = spawn(&mut t, 1);
    let mut b = spawn(&mut t, 2);
    let mut c = spawn(&mut t, 3);
    t.link(&a.pid, &b.pid).unwrap();
    t.link(&a.pid, &c.pid).unwrap();
    t.set_trap_exit(&c.pid, true);
    assert!(t.exited(&a.pid, &Term::atom("boom")).is_empty());
    assert_eq!(b.kill.try_recv().ok(), Some(Term::atom("boom")));
    let msg = next(&mut c.mbox).unwrap();
    assert_eq!(
        msg,
        Term::tuple(vec![
            Term::atom("EXIT"),
            Term::Pid(a.pid),
            Term::atom("boom")
        ])
    );
    assert!(c.kill.try_recv().is_err());
}

#[test]
fn normal_exit_does_not_kill_and_kill_is_untrappable() {
    let mut t = Table::new(me());
    let a = spawn(&mut t, 1);
    let mut b = spawn(&mut t, 2);
    t.link(&a.pid, &b.pid).unwrap();
    t.exited(&a.pid, &Term::atom("normal"));
    assert!(b.kill.try_recv().is_err());
    t.set_trap_exit(&b.pid, true);
    t.exit_signal(&a.pid, &b.pid, Term::atom("kill"), false);
    assert_eq!(b.kill.try_recv().ok(), Some(Term::atom("killed")));
}

#[test]
fn monitor_unknown_name_is_immediate_noproc() {
    let mut t = Table::new(me());
    let mut w = spawn(&mut t, 1);
    let r = reference(me(), 7);
    t.monitor(&w.pid, MonitorTarget::Name(Atom::new("nosuch"), me()), r);
    let down = next(&mut w.mbox).unwrap();
    let object = Term::tuple(vec![Term::atom("nosuch"), Term::Atom(me())]);
    assert_eq!(
        down,
        Term::tuple(vec![
            Term::atom("DOWN"),
            Term::Ref(r),
            Term::atom("process"),
            object,
            Term::atom("noproc")
        ])
    );
}

#[test]
fn remote_monitor_by_name_and_exit() {
    let mut t = Table::new(me());
    let a = spawn(&mut t, 1);
    t.register(Atom::new("rex"), &a.pid).unwrap();
    let watcher = pid(peer(), 9);
    let r = reference(peer(), 1);
    assert!(t
        .remote_monitor(&watcher, PidOrName::Name(Atom::new("rex")), r)
        .is_empty());
    let r2 = reference(peer(), 2);
    let out = t.remote_monitor(&watcher, PidOrName::Name(Atom::new("nosuch")), r2);
    assert_eq!(
        out,
        vec![Outgoing {
            node: peer(),
            signal: RemoteSignal::MonitorExit {
                from: PidOrName::Name(Atom::new("nosuch")),
                to: watcher,
                reference: r2,
                reason: Term::atom("noproc"),
            }
        }]
    );
    let out = t.exited(&a.pid, &Term::atom("shutdown"));
    assert_eq!(
        out,
        vec![Outgoing {
            node: peer(),
            signal: RemoteSignal::MonitorExit {
                from: PidOrName::Name(Atom::new("rex")),
                to: watcher,
                reference: r,
                reason: Term::atom("shutdown"),
            }
        }]
    );
    assert!(t.monitors.is_empty());
}

#[test]
fn demonitor_by_peer_silences_the_exit() {
    let mut t = Table::new(me());
    let a = spawn(&mut t, 1);
    let watcher = pid(peer(), 9);
    let r = reference(peer(), 1);
    t.remote_monitor(&watcher, PidOrName::Pid(a.pid), r);
    t.remote_demonitor(&watcher, &r);
    assert!(t.exited(&a.pid, &Term::atom("normal")).is_empty());
}

#[test]
fn nodedown_fires_noconnection() {
    let mut t = Table::new(me());
    let mut a = spawn(&mut t, 1);
    let b = spawn(&mut t, 2);
    let remote = pid(peer(), 5);
    let r = reference(me(), 3);
    let out = t.monitor(&a.pid, MonitorTarget::Pid(remote), r);
    assert!(matches!(out[0].signal, RemoteSignal::Monitor { .. }));
    let out = t.link(&b.pid, &remote).unwrap();
    assert!(matches!(out[0].signal, RemoteSignal::Link { .. }));
    t.monitor_node(&a.pid, peer());
    t.remote_monitor(&remote, PidOrName::Pid(a.pid), reference(peer(), 4));
    t.nodedown(peer());
    let down = next(&mut a.mbox).unwrap();
    assert_eq!(down.element(4), Some(&Term::atom("noconnection")));
    let nd = next(&mut a.mbox).unwrap();
    assert_eq!(
        nd,
        Term::tuple(vec![Term::atom("nodedown"), Term::Atom(peer())])
    );
    let mut b = b;
    assert_eq!(b.kill.try_recv().ok(), Some(Term::atom("noconnection")));
    assert!(t.monitors.is_empty());
    assert!(t.exited(&a.pid, &Term::atom("x")).is_empty());
}

#[test]
fn remote_link_to_dead_pid_answers_noproc() {
    let mut t = Table::new(me());
    let remote = pid(peer(), 5);
    let out = t.remote_link(&remote, &pid(me(), 99));
    assert_eq!(
        out[0].signal,
        RemoteSignal::LinkExit {
            from: pid(me(), 99),
            to: remote,
            reason: Term::atom("noproc")
        }
    );
}

#[test]
fn exit_of_linked_process_signals_remote_end() {
    let mut t = Table::new(me());
    let a = spawn(&mut t, 1);
    let remote = pid(peer(), 5);
    assert!(t.remote_link(&remote, &a.pid).is_empty());
    let out = t.exited(&a.pid, &Term::atom("bye"));
    assert_eq!(
        out[0].signal,
        RemoteSignal::LinkExit {
            from: a.pid,
            to: remote,
            reason: Term::atom("bye")
        }
    );
}

#[test]
fn mailbox_cap_refuses_and_counts() {
    let (tx, _rx) = mailbox(2);
    tx.deliver(Term::Int(1)).unwrap();
    tx.deliver(Term::Int(2)).unwrap();
    assert_eq!(tx.deliver(Term::Int(3)), Err(DeliveryError::Full(2)));
    assert_eq!(tx.dropped(), 1);
    assert_eq!(tx.len(), 2);
}

#[tokio::test]
async fn selective_receive_keeps_order() {
    let (tx, mut rx) = mailbox(8);
    for i in 1..=4 {
        tx.deliver(Term::Int(i)).unwrap();
    }
    let three = rx
        .recv_match(|m| m.as_int() == Some(3), None)
        .await
        .unwrap();
    assert_eq!(three, Term::Int(3));
    assert_eq!(rx.recv().await, Some(Term::Int(1)));
    assert_eq!(rx.recv().await, Some(Term::Int(2)));
    assert_eq!(rx.recv().await, Some(Term::Int(4)));
    let none = rx.recv_timeout(std::time::Duration::from_millis(10)).await;
    assert_eq!(none, None);
    assert_eq!(rx.len(), 0);
}
