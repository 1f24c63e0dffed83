//! Every control message: typed → tuple → typed, and through whole frames; malformed tuples
//! and payload mismatches are errors; unknown operations are kept as `Unknown`.
use bytes::BytesMut;

use crate::dist::control::{op, ControlError, ControlMessage as C, ProcRef, SpawnResult};
use crate::dist::etf::{Atom, Pid, Reference, Term};
use crate::dist::message::{DistError, DistMessage, Inbound, Outbound};

fn pid(id: u32) -> Pid {
    Pid {
        node: Atom::new("ctl@host"),
        id,
        serial: 0,
        creation: 7,
    }
}

fn rf(n: u32) -> Reference {
    Reference::new(Atom::new("ctl@host"), 7, &[n, 2, 3]).unwrap()
}

/// One of each operation, with the payload it takes.
pub(crate) fn all_messages() -> Vec<DistMessage> {
    let (a, b) = (pid(1), pid(2));
    let tt = Term::tuple([Term::Int(0), Term::atom("label"), Term::Int(1)]);
    let reason = Term::tuple([Term::atom("shutdown"), Term::binary(b"why")]);
    let msg = Term::tuple([Term::atom("hello"), Term::Int(1)]);
    let mfa = (Atom::new("erpc"), Atom::new("execute_call"), 4);
    let opts = Term::list([Term::atom("monitor")]);
    let args = Term::list([
        Term::Ref(rf(9)),
        Term::atom("erlang"),
        Term::atom("node"),
        Term::Nil,
    ]);
    let name = Atom::new("rex");
    let p = |c| DistMessage::with_payload(c, msg.clone());
    let c = DistMessage::control;
    vec![
        c(C::Link { from: a, to: b }),
        p(C::Send { to: b }),
        c(C::Exit {
            from: a,
            to: b,
            reason: reason.clone(),
        }),
        c(C::Unlink { from: a, to: b }),
        c(C::NodeLink),
        p(C::RegSend {
            from: a,
            to_name: name,
        }),
        c(C::GroupLeader { from: a, to: b }),
        c(C::Exit2 {
            from: a,
            to: b,
            reason: reason.clone(),
        }),
        p(C::SendTt {
            to: b,
            trace_token: tt.clone(),
        }),
        c(C::ExitTt {
            from: a,
            to: b,
            trace_token: tt.clone(),
            reason: reason.clone(),
        }),
        p(C::RegSendTt {
            from: a,
            to_name: name,
            trace_token: tt.clone(),
        }),
        c(C::Exit2Tt {
            from: a,
            to: b,
            trace_token: tt.clone(),
            reason: reason.clone(),
        }),
        c(C::MonitorP {
            from: a,
            to: ProcRef::Name(name),
            reference: rf(1),
        }),
        c(C::MonitorP {
            from: a,
            to: ProcRef::Pid(b),
            reference: rf(1),
        }),
        c(C::DemonitorP {
            from: a,
            to: ProcRef::Pid(b),
            reference: rf(1),
        }),
        c(C::MonitorPExit {
            from: ProcRef::Name(name),
            to: a,
            reference: rf(1),
            reason: Term::atom("noproc"),
        }),
        p(C::SendSender { from: a, to: b }),
        p(C::SendSenderTt {
            from: a,
            to: b,
            trace_token: tt.clone(),
        }),
        DistMessage::with_payload(C::PayloadExit { from: a, to: b }, reason.clone()),
        DistMessage::with_payload(
            C::PayloadExitTt {
                from: a,
                to: b,
                trace_token: tt.clone(),
            },
            reason.clone(),
        ),
        DistMessage::with_payload(C::PayloadExit2 { from: a, to: b }, Term::atom("kill")),
        DistMessage::with_payload(
            C::PayloadExit2Tt {
                from: a,
                to: b,
                trace_token: tt.clone(),
            },
            reason.clone(),
        ),
        DistMessage::with_payload(
            C::PayloadMonitorPExit {
                from: ProcRef::Pid(b),
                to: a,
                reference: rf(3),
            },
            Term::tuple([Term::Ref(rf(9)), Term::atom("return"), Term::atom("n@h")]),
        ),
        DistMessage::with_payload(
            C::SpawnRequest {
                req_id: rf(4),
                from: a,
                group_leader: b,
                mfa,
                opts: opts.clone(),
            },
            args.clone(),
        ),
        DistMessage::with_payload(
            C::SpawnRequestTt {
                req_id: rf(4),
                from: a,
                group_leader: b,
                mfa,
                opts,
                trace_token: tt.clone(),
            },
            args,
        ),
        c(C::SpawnReply {
            req_id: rf(4),
            to: a,
            flags: 2,
            result: SpawnResult::Pid(b),
        }),
        c(C::SpawnReplyTt {
            req_id: rf(4),
            to: a,
            flags: 3,
            result: SpawnResult::Error(Atom::new("system_limit")),
            trace_token: tt.clone(),
        }),
        p(C::AliasSend {
            from: a,
            alias: rf(5),
        }),
        p(C::AliasSendTt {
            from: a,
            alias: rf(5),
            trace_token: tt,
        }),
        c(C::UnlinkId {
            id: u64::MAX,
            from: a,
            to: b,
        }),
        c(C::UnlinkIdAck {
            id: 4,
            from: a,
            to: b,
        }),
    ]
}

#[test]
fn every_operation_is_covered() {
    let mut ops: Vec<i64> = all_messages().iter().map(|m| m.control.op()).collect();
    ops.sort();
    ops.dedup();
    let expected = [
        1, 2, 3, 4, 5, 6, 7, 8, 12, 13, 16, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31,
        32, 33, 34, 35, 36,
    ];
    assert_eq!(ops, expected);
}

#[test]
fn tuples_round_trip() {
    for m in all_messages() {
        let t = m.control.to_term();
        let tuple = t.as_tuple().unwrap();
        assert_eq!(tuple[0], Term::Int(m.control.op()));
        assert_eq!(C::from_term(t.clone()), Ok(m.control.clone()), "{t:?}");
    }
}

#[test]
fn frames_round_trip() {
    let mut tx = Outbound::default();
    let mut rx = Inbound::default();
    for m in all_messages() {
        let mut out = BytesMut::new();
        tx.encode(&m, &mut out);
        for f in crate::dist::capture_tests::frames_of(out.freeze()) {
            assert_eq!(rx.receive(f), Ok(Some(m.clone())));
        }
        let mut pt = BytesMut::new();
        Outbound::encode_pass_through(&m, &mut pt);
        assert_eq!(Inbound::default().receive(pt.freeze()), Ok(Some(m.clone())));
    }
}

#[test]
fn unused_fields_are_empty_atoms_and_ignored() {
    let t = C::RegSend {
        from: pid(1),
        to_name: Atom::new("rex"),
    }
    .to_term();
    assert_eq!(t.element(2), Some(&Term::atom("")));
    let odd = Term::tuple([Term::Int(op::SEND), Term::Int(99), Term::Pid(pid(2))]);
    assert_eq!(C::from_term(odd), Ok(C::Send { to: pid(2) }));
}

#[test]
fn unknown_operations_are_kept() {
    let t = Term::tuple([Term::Int(99), Term::atom("future")]);
    assert_eq!(
        C::from_term(t.clone()),
        Ok(C::Unknown {
            op: 99,
            control: t.clone()
        })
    );
    let u = C::Unknown {
        op: 99,
        control: t.clone(),
    };
    assert_eq!(u.has_payload(), None);
    assert_eq!(u.to_term(), t);
}

#[test]
fn malformed_control_tuples_are_errors() {
    let bad = [
        (Term::atom("link"), None),
        (Term::tuple(vec![]), None),
        (Term::tuple([Term::atom("x"), Term::Pid(pid(1))]), None),
        (
            Term::tuple([Term::Int(op::LINK), Term::Pid(pid(1))]),
            Some(op::LINK),
        ),
        (
            Term::tuple([Term::Int(op::LINK), Term::Pid(pid(1)), Term::atom("no")]),
            Some(op::LINK),
        ),
        (
            Term::tuple([
                Term::Int(op::REG_SEND),
                Term::Pid(pid(1)),
                Term::atom(""),
                Term::Int(1),
            ]),
            Some(op::REG_SEND),
        ),
        (
            Term::tuple([
                Term::Int(op::MONITOR_P),
                Term::Pid(pid(1)),
                Term::Int(5),
                Term::Ref(rf(1)),
            ]),
            Some(op::MONITOR_P),
        ),
        (
            Term::tuple([
                Term::Int(op::UNLINK_ID),
                Term::Int(-1),
                Term::Pid(pid(1)),
                Term::Pid(pid(2)),
            ]),
            Some(op::UNLINK_ID),
        ),
        (
            Term::tuple([
                Term::Int(op::SPAWN_REQUEST),
                Term::Ref(rf(1)),
                Term::Pid(pid(1)),
                Term::Pid(pid(2)),
                Term::tuple([Term::atom("m"), Term::atom("f")]),
                Term::Nil,
            ]),
            Some(op::SPAWN_REQUEST),
        ),
    ];
    for (t, code) in bad {
        let r = C::from_term(t.clone());
        match code {
            Some(c) => assert_eq!(r, Err(ControlError::Malformed(c)), "{t:?}"),
            None => assert!(matches!(r, Err(ControlError::NotAControlTuple(_))), "{t:?}"),
        }
    }
}

#[test]
fn payload_must_match_the_operation() {
    let mut out = BytesMut::new();
    Outbound::encode_pass_through(&DistMessage::control(C::Send { to: pid(1) }), &mut out);
    assert_eq!(
        Inbound::default().receive(out.freeze()),
        Err(DistError::MissingPayload(op::SEND))
    );
    let mut out = BytesMut::new();
    let link = DistMessage::with_payload(
        C::Link {
            from: pid(1),
            to: pid(2),
        },
        Term::Nil,
    );
    Outbound::encode_pass_through(&link, &mut out);
    assert_eq!(
        Inbound::default().receive(out.freeze()),
        Err(DistError::UnexpectedPayload(op::LINK))
    );
}
