//! [`ControlMessage`] to and from its tuple term.
use crate::dist::control::{op, ControlError, ControlMessage, ProcRef, SpawnResult};
use crate::dist::etf::{Atom, Pid, Reference, Term};

/// The `''` OTP writes in unused fields (interned once: `to_term` is on the send hot path).
fn unused() -> Term {
    static EMPTY: std::sync::OnceLock<Atom> = std::sync::OnceLock::new();
    Term::Atom(*EMPTY.get_or_init(|| Atom::new("")))
}

/// Takes the fields of a control tuple in order, each checked for its type.
struct Fields {
    op: i64,
    it: std::vec::IntoIter<Term>,
}

impl Fields {
    fn bad(&self) -> ControlError {
        ControlError::Malformed(self.op)
    }
    fn next(&mut self) -> Result<Term, ControlError> {
        self.it.next().ok_or(ControlError::Malformed(self.op))
    }
    fn term(&mut self) -> Result<Term, ControlError> {
        self.next()
    }
    fn pid(&mut self) -> Result<Pid, ControlError> {
        self.next()?.as_pid().ok_or_else(|| self.bad())
    }
    fn atom(&mut self) -> Result<Atom, ControlError> {
        self.next()?.as_atom().ok_or_else(|| self.bad())
    }
    fn reference(&mut self) -> Result<Reference, ControlError> {
        self.next()?.as_ref().ok_or_else(|| self.bad())
    }
    fn proc_ref(&mut self) -> Result<ProcRef, ControlError> {
        match self.next()? {
            Term::Pid(p) => Ok(ProcRef::Pid(p)),
            Term::Atom(a) => Ok(ProcRef::Name(a)),
            _ => Err(self.bad()),
        }
    }
    fn u64(&mut self) -> Result<u64, ControlError> {
        self.next()?.as_u64().ok_or_else(|| self.bad())
    }
    fn u32(&mut self) -> Result<u32, ControlError> {
        self.next()?.as_u32().ok_or_else(|| self.bad())
    }
    fn mfa(&mut self) -> Result<(Atom, Atom, u32), ControlError> {
        let t = self.next()?;
        let [m, f, a] = t.as_tuple_n::<3>().ok_or_else(|| self.bad())?;
        match (m.as_atom(), f.as_atom(), a.as_u32()) {
            (Some(m), Some(f), Some(a)) => Ok((m, f, a)),
            _ => Err(self.bad()),
        }
    }
    fn spawn_result(&mut self) -> Result<SpawnResult, ControlError> {
        match self.next()? {
            Term::Pid(p) => Ok(SpawnResult::Pid(p)),
            Term::Atom(a) => Ok(SpawnResult::Error(a)),
            _ => Err(self.bad()),
        }
    }
}

/// Tuple size (operation code included) of every known operation.
fn arity(op: i64) -> Option<usize> {
    Some(match op {
        op::NODE_LINK => 1,
        op::LINK
        | op::UNLINK
        | op::GROUP_LEADER
        | op::SEND
        | op::SEND_SENDER
        | op::PAYLOAD_EXIT
        | op::PAYLOAD_EXIT2 => 3,
        op::ALIAS_SEND => 3,
        op::EXIT | op::EXIT2 | op::SEND_TT | op::REG_SEND | op::MONITOR_P | op::DEMONITOR_P => 4,
        op::SEND_SENDER_TT
        | op::PAYLOAD_EXIT_TT
        | op::PAYLOAD_EXIT2_TT
        | op::PAYLOAD_MONITOR_P_EXIT => 4,
        op::ALIAS_SEND_TT | op::UNLINK_ID | op::UNLINK_ID_ACK => 4,
        op::EXIT_TT | op::REG_SEND_TT | op::EXIT2_TT | op::MONITOR_P_EXIT | op::SPAWN_REPLY => 5,
        op::SPAWN_REQUEST | op::SPAWN_REPLY_TT => 6,
        op::SPAWN_REQUEST_TT => 7,
        _ => return None,
    })
}

impl ControlMessage {
    /// Types a received control tuple.
    pub fn from_term(t: Term) -> Result<ControlMessage, ControlError> {
        use ControlMessage as C;
        let Term::Tuple(elems) = t else {
            return Err(ControlError::NotAControlTuple(Box::new(t)));
        };
        let Some(code) = elems.first().and_then(Term::as_int) else {
            return Err(ControlError::NotAControlTuple(Box::new(Term::Tuple(elems))));
        };
        let Some(n) = arity(code) else {
            return Ok(C::Unknown {
                op: code,
                control: Term::Tuple(elems),
            });
        };
        if elems.len() != n {
            return Err(ControlError::Malformed(code));
        }
        let mut it = elems.into_iter();
        it.next();
        let mut f = Fields { op: code, it };
        Ok(match code {
            op::LINK => C::Link {
                from: f.pid()?,
                to: f.pid()?,
            },
            op::SEND => {
                f.term()?;
                C::Send { to: f.pid()? }
            }
            op::EXIT => C::Exit {
                from: f.pid()?,
                to: f.pid()?,
                reason: f.term()?,
            },
            op::UNLINK => C::Unlink {
                from: f.pid()?,
                to: f.pid()?,
            },
            op::NODE_LINK => C::NodeLink,
            op::REG_SEND => {
                let from = f.pid()?;
                f.term()?;
                C::RegSend {
                    from,
                    to_name: f.atom()?,
                }
            }
            op::GROUP_LEADER => C::GroupLeader {
                from: f.pid()?,
                to: f.pid()?,
            },
            op::EXIT2 => C::Exit2 {
                from: f.pid()?,
                to: f.pid()?,
                reason: f.term()?,
            },
            op::SEND_TT => {
                f.term()?;
                C::SendTt {
                    to: f.pid()?,
                    trace_token: f.term()?,
                }
            }
            op::EXIT_TT => C::ExitTt {
                from: f.pid()?,
                to: f.pid()?,
                trace_token: f.term()?,
                reason: f.term()?,
            },
            op::REG_SEND_TT => {
                let from = f.pid()?;
                f.term()?;
                C::RegSendTt {
                    from,
                    to_name: f.atom()?,
                    trace_token: f.term()?,
                }
            }
            op::EXIT2_TT => C::Exit2Tt {
                from: f.pid()?,
                to: f.pid()?,
                trace_token: f.term()?,
                reason: f.term()?,
            },
            op::MONITOR_P => C::MonitorP {
                from: f.pid()?,
                to: f.proc_ref()?,
                reference: f.reference()?,
            },
            op::DEMONITOR_P => C::DemonitorP {
                from: f.pid()?,
                to: f.proc_ref()?,
                reference: f.reference()?,
            },
            op::MONITOR_P_EXIT => C::MonitorPExit {
                from: f.proc_ref()?,
                to: f.pid()?,
                reference: f.reference()?,
                reason: f.term()?,
            },
            op::SEND_SENDER => C::SendSender {
                from: f.pid()?,
                to: f.pid()?,
            },
            op::SEND_SENDER_TT => C::SendSenderTt {
                from: f.pid()?,
                to: f.pid()?,
                trace_token: f.term()?,
            },
            op::PAYLOAD_EXIT => C::PayloadExit {
                from: f.pid()?,
                to: f.pid()?,
            },
            op::PAYLOAD_EXIT_TT => C::PayloadExitTt {
                from: f.pid()?,
                to: f.pid()?,
                trace_token: f.term()?,
            },
            op::PAYLOAD_EXIT2 => C::PayloadExit2 {
                from: f.pid()?,
                to: f.pid()?,
            },
            op::PAYLOAD_EXIT2_TT => C::PayloadExit2Tt {
                from: f.pid()?,
                to: f.pid()?,
                trace_token: f.term()?,
            },
            op::PAYLOAD_MONITOR_P_EXIT => C::PayloadMonitorPExit {
                from: f.proc_ref()?,
                to: f.pid()?,
                reference: f.reference()?,
            },
            op::SPAWN_REQUEST => C::SpawnRequest {
                req_id: f.reference()?,
                from: f.pid()?,
                group_leader: f.pid()?,
                mfa: f.mfa()?,
                opts: f.term()?,
            },
            op::SPAWN_REQUEST_TT => C::SpawnRequestTt {
                req_id: f.reference()?,
                from: f.pid()?,
                group_leader: f.pid()?,
                mfa: f.mfa()?,
                opts: f.term()?,
                trace_token: f.term()?,
            },
            op::SPAWN_REPLY => C::SpawnReply {
                req_id: f.reference()?,
                to: f.pid()?,
                flags: f.u32()?,
                result: f.spawn_result()?,
            },
            op::SPAWN_REPLY_TT => C::SpawnReplyTt {
                req_id: f.reference()?,
                to: f.pid()?,
                flags: f.u32()?,
                result: f.spawn_result()?,
                trace_token: f.term()?,
            },
            op::ALIAS_SEND => C::AliasSend {
                from: f.pid()?,
                alias: f.reference()?,
            },
            op::ALIAS_SEND_TT => C::AliasSendTt {
                from: f.pid()?,
                alias: f.reference()?,
                trace_token: f.term()?,
            },
            op::UNLINK_ID => C::UnlinkId {
                id: f.u64()?,
                from: f.pid()?,
                to: f.pid()?,
            },
            op::UNLINK_ID_ACK => C::UnlinkIdAck {
                id: f.u64()?,
                from: f.pid()?,
                to: f.pid()?,
            },
            _ => return Err(ControlError::Malformed(code)),
        })
    }

    /// The control tuple to send.
    pub fn to_term(&self) -> Term {
        use ControlMessage as C;
        let op = Term::Int(self.op());
        let pid = |p: &Pid| Term::Pid(*p);
        let rf = |r: &Reference| Term::Ref(*r);
        let proc = |p: &ProcRef| match p {
            ProcRef::Pid(p) => Term::Pid(*p),
            ProcRef::Name(a) => Term::Atom(*a),
        };
        let mfa = |(m, f, a): &(Atom, Atom, u32)| {
            Term::Tuple(vec![
                Term::Atom(*m),
                Term::Atom(*f),
                Term::Int(i64::from(*a)),
            ])
        };
        let result = |r: &SpawnResult| match r {
            SpawnResult::Pid(p) => Term::Pid(*p),
            SpawnResult::Error(a) => Term::Atom(*a),
        };
        let id = |i: &u64| Term::int(i128::from(*i));
        Term::Tuple(match self {
            C::Link { from, to } => vec![op, pid(from), pid(to)],
            C::Send { to } => vec![op, unused(), pid(to)],
            C::Exit { from, to, reason } => vec![op, pid(from), pid(to), reason.clone()],
            C::Unlink { from, to } => vec![op, pid(from), pid(to)],
            C::NodeLink => vec![op],
            C::RegSend { from, to_name } => vec![op, pid(from), unused(), Term::Atom(*to_name)],
            C::GroupLeader { from, to } => vec![op, pid(from), pid(to)],
            C::Exit2 { from, to, reason } => vec![op, pid(from), pid(to), reason.clone()],
            C::SendTt { to, trace_token } => vec![op, unused(), pid(to), trace_token.clone()],
            C::ExitTt {
                from,
                to,
                trace_token,
                reason,
            } => {
                vec![op, pid(from), pid(to), trace_token.clone(), reason.clone()]
            }
            C::RegSendTt {
                from,
                to_name,
                trace_token,
            } => {
                vec![
                    op,
                    pid(from),
                    unused(),
                    Term::Atom(*to_name),
                    trace_token.clone(),
                ]
            }
            C::Exit2Tt {
                from,
                to,
                trace_token,
                reason,
            } => {
                vec![op, pid(from), pid(to), trace_token.clone(), reason.clone()]
            }
            C::MonitorP {
                from,
                to,
                reference,
            } => vec![op, pid(from), proc(to), rf(reference)],
            C::DemonitorP {
                from,
                to,
                reference,
            } => vec![op, pid(from), proc(to), rf(reference)],
            C::MonitorPExit {
                from,
                to,
                reference,
                reason,
            } => {
                vec![op, proc(from), pid(to), rf(reference), reason.clone()]
            }
            C::SendSender { from, to } => vec![op, pid(from), pid(to)],
            C::SendSenderTt {
                from,
                to,
                trace_token,
            } => vec![op, pid(from), pid(to), trace_token.clone()],
            C::PayloadExit { from, to } => vec![op, pid(from), pid(to)],
            C::PayloadExitTt {
                from,
                to,
                trace_token,
            } => vec![op, pid(from), pid(to), trace_token.clone()],
            C::PayloadExit2 { from, to } => vec![op, pid(from), pid(to)],
            C::PayloadExit2Tt {
                from,
                to,
                trace_token,
            } => vec![op, pid(from), pid(to), trace_token.clone()],
            C::PayloadMonitorPExit {
                from,
                to,
                reference,
            } => vec![op, proc(from), pid(to), rf(reference)],
            C::SpawnRequest {
                req_id,
                from,
                group_leader,
                mfa: m,
                opts,
            } => {
                vec![
                    op,
                    rf(req_id),
                    pid(from),
                    pid(group_leader),
                    mfa(m),
                    opts.clone(),
                ]
            }
            C::SpawnRequestTt {
                req_id,
                from,
                group_leader,
                mfa: m,
                opts,
                trace_token,
            } => {
                vec![
                    op,
                    rf(req_id),
                    pid(from),
                    pid(group_leader),
                    mfa(m),
                    opts.clone(),
                    trace_token.clone(),
                ]
            }
            C::SpawnReply {
                req_id,
                to,
                flags,
                result: r,
            } => {
                vec![
                    op,
                    rf(req_id),
                    pid(to),
                    Term::Int(i64::from(*flags)),
                    result(r),
                ]
            }
            C::SpawnReplyTt {
                req_id,
                to,
                flags,
                result: r,
                trace_token,
            } => {
                vec![
                    op,
                    rf(req_id),
                    pid(to),
                    Term::Int(i64::from(*flags)),
                    result(r),
                    trace_token.clone(),
                ]
            }
            C::AliasSend { from, alias } => vec![op, pid(from), rf(alias)],
            C::AliasSendTt {
                from,
                alias,
                trace_token,
            } => vec![op, pid(from), rf(alias), trace_token.clone()],
            C::UnlinkId { id: i, from, to } => vec![op, id(i), pid(from), pid(to)],
            C::UnlinkIdAck { id: i, from, to } => vec![op, id(i), pid(from), pid(to)],
            C::Unknown { control, .. } => return control.clone(),
        })
    }
}
