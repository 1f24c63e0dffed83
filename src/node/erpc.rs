//! Serving a peer's `SPAWN_REQUEST`: how OTP 25's `rpc:call/4` and `erpc:call/4` reach us.
//!
//! From reference/otp25-traces.md §4: the caller asks to spawn `erpc:execute_call/4` with
//! `[Ref, M, F, A]` and options `[monitor]`; we answer `SPAWN_REPLY` (flags 2 = monitor made)
//! with a real pid, run `M:F(A)`, and the process exits with `{Ref, return, V}`,
//! `{Ref, throw, T}`, `{Ref, exit, R}` or `{Ref, error, R, Stack}`; that exit reason travels back
//! as the monitor's `MONITOR_P_EXIT`. Casts (`erpc:execute_cast/3`, `[M, F, A]`) get flags 0
//! and exit `normal`. Any other MFA runs from the function registry like a plain `spawn/4`.
use super::functions::{apply, CallContext, Exception};
use super::runtime::{Node, SpawnOpts};
use super::signal::{Outgoing, RemoteSignal};
use crate::dist::etf::{Atom, Pid, Reference, Term};

/// A decoded `SPAWN_REQUEST` (`{29, ReqId, From, GroupLeader, {M, F, Arity}, OptList}` +
/// argument list payload).
#[derive(Debug, Clone)]
pub struct SpawnRequest {
    /// Request id; also the monitor reference when `monitor` is asked.
    pub req_id: Reference,
    /// The requesting process.
    pub from: Pid,
    /// Its group leader (io goes there).
    pub group_leader: Pid,
    /// Module.
    pub module: Atom,
    /// Function.
    pub function: Atom,
    /// Arity announced in the MFA.
    pub arity: u64,
    /// Spawn options as sent.
    pub opts: Term,
    /// The argument list.
    pub args: Term,
}

const SPAWN_FLAG_LINK: u64 = 1;
const SPAWN_FLAG_MONITOR: u64 = 2;

/// The job a spawn request describes.
enum Job {
    Call {
        result_ref: Term,
        m: Atom,
        f: Atom,
        args: Vec<Term>,
    },
    Cast {
        m: Atom,
        f: Atom,
        args: Vec<Term>,
    },
    Spawn {
        m: Atom,
        f: Atom,
        args: Vec<Term>,
    },
}

fn parse_job(req: &SpawnRequest) -> Option<Job> {
    let args = req.args.as_list()?;
    if args.len() as u64 != req.arity {
        return None;
    }
    let erpc = req.module.as_str() == "erpc";
    match (erpc, req.function.as_str(), args) {
        (true, "execute_call", [r, m, f, a]) => Some(Job::Call {
            result_ref: r.clone(),
            m: m.as_atom()?,
            f: f.as_atom()?,
            args: a.as_list()?.to_vec(),
        }),
        (true, "execute_cast", [m, f, a]) => Some(Job::Cast {
            m: m.as_atom()?,
            f: f.as_atom()?,
            args: a.as_list()?.to_vec(),
        }),
        _ => Some(Job::Spawn {
            m: req.module,
            f: req.function,
            args: args.to_vec(),
        }),
    }
}

/// Link and monitor flags from the option list; `None` for an option list we cannot read.
fn parse_opts(opts: &Term) -> Option<(bool, bool)> {
    let mut link = false;
    let mut monitor = false;
    for o in opts.as_list()? {
        if o.is_atom("link") {
            link = true;
        } else if o.is_atom("monitor") {
            monitor = true;
        } else if let Some([k, _]) = o.as_tuple_n::<2>() {
            if k.is_atom("monitor") {
                monitor = true;
            }
        }
    }
    Some((link, monitor))
}

/// Answers a spawn request: replies, spawns the process, and lets its exit carry the result.
pub fn serve_spawn_request(node: &Node, req: SpawnRequest) {
    let reply = |flags, result| Outgoing {
        node: req.from.node,
        signal: RemoteSignal::SpawnReply {
            req_id: req.req_id,
            to: req.from,
            flags,
            result,
        },
    };
    let (Some((link, monitor)), Some(job)) = (parse_opts(&req.opts), parse_job(&req)) else {
        tracing::info!(from = ?req.from, "bad spawn request");
        node.route(reply(0, Err(Atom::new("badopt"))));
        return;
    };
    let opts = SpawnOpts {
        link: link.then_some(req.from),
        monitor: monitor.then_some((req.from, req.req_id)),
        ..SpawnOpts::default()
    };
    let caller = req.from;
    let body = move |p: super::process::Process| async move {
        let ctx = CallContext {
            node: p.node().clone(),
            pid: p.pid(),
            caller: Some(caller),
            process: Some(p),
        };
        run_job(ctx, job).await
    };
    let mut flags = 0;
    if link {
        flags |= SPAWN_FLAG_LINK;
    }
    if monitor {
        flags |= SPAWN_FLAG_MONITOR;
    }
    match node.prepare_spawn(opts, body) {
        Ok((go, pid)) => {
            node.route(reply(flags, Ok(pid)));
            let _ = go.send(());
        }
        Err(_) => node.route(reply(0, Err(Atom::new("system_limit")))),
    }
}

async fn run_job(ctx: CallContext, job: Job) -> Term {
    match job {
        Job::Call {
            result_ref,
            m,
            f,
            args,
        } => match apply(ctx, m, f, args).await {
            Ok(v) => Term::tuple(vec![result_ref, Term::atom("return"), v]),
            Err(Exception::Throw(t)) => Term::tuple(vec![result_ref, Term::atom("throw"), t]),
            Err(Exception::Exit(r)) => Term::tuple(vec![result_ref, Term::atom("exit"), r]),
            Err(Exception::Error(r, stack)) => Term::tuple(vec![
                result_ref,
                Term::atom("error"),
                r,
                stack.unwrap_or(Term::Nil),
            ]),
        },
        Job::Cast { m, f, args } => match apply(ctx, m, f, args).await {
            Ok(_) => Term::atom("normal"),
            Err(e) => {
                tracing::warn!(
                    module = m.as_str(),
                    function = f.as_str(),
                    ?e,
                    "erpc cast failed"
                );
                exit_reason(e)
            }
        },
        Job::Spawn { m, f, args } => match apply(ctx, m, f, args).await {
            Ok(_) => Term::atom("normal"),
            Err(e) => exit_reason(e),
        },
    }
}

/// The exit reason of a process that raised `e` (`{Reason, Stack}` for errors, as BEAM).
fn exit_reason(e: Exception) -> Term {
    match e {
        Exception::Throw(t) => {
            Term::tuple(vec![Term::tuple(vec![Term::atom("nocatch"), t]), Term::Nil])
        }
        Exception::Exit(r) => r,
        Exception::Error(r, stack) => Term::tuple(vec![r, stack.unwrap_or(Term::Nil)]),
    }
}
