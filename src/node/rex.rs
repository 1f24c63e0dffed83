//! `rex`, the rpc server (`lib/kernel/src/rpc.erl`). OTP 25 peers call through erpc's spawn
//! requests (`erpc.rs`), but still ask `rex` for its features after every nodeup and older
//! callers use the gen_server forms `{call, M, F, A, GroupLeader}` and `{block_call, ...}`.
use super::functions::{apply, CallContext, Exception};
use super::process::{Dest, Process};
use super::runtime::Node;
use crate::dist::etf::{Atom, Term};

/// Starts `rex` on `node`.
pub fn start(node: &Node) -> Result<(), super::table::RegisterError> {
    let opts = super::runtime::SpawnOpts {
        name: Some(Atom::new("rex")),
        ..Default::default()
    };
    node.spawn_opt(opts, run).map(|_| ())
}

async fn run(mut p: Process) -> Term {
    while let Some(msg) = p.recv().await {
        handle(&p, msg);
    }
    Term::atom("normal")
}

fn handle(p: &Process, msg: Term) {
    let Some(t) = msg.as_tuple() else {
        return;
    };
    match t {
        [Term::Pid(from), req] if req.is_atom("features_request") => {
            let reply = Term::tuple(vec![
                Term::atom("features_reply"),
                Term::Atom(p.node().name()),
                Term::list(vec![Term::atom("erpc")]),
            ]);
            p.send(*from, reply);
        }
        [tag, from, req] if tag.is_atom("$gen_call") => {
            if let Some((m, f, a)) = call_mfa(req) {
                spawn_call(p, m, f, a, Reply::Gen(from.clone()));
            }
        }
        [tag, req] if tag.is_atom("$gen_cast") => {
            if let Some((m, f, a)) = cast_mfa(req) {
                spawn_call(p, m, f, a, Reply::None);
            }
        }
        [Term::Pid(from), req] => {
            if let Some((m, f, a)) = call_mfa(req) {
                spawn_call(p, m, f, a, Reply::Rex(*from));
            }
        }
        _ => {}
    }
}

/// `{call | block_call, M, F, A, GroupLeader}`.
fn call_mfa(req: &Term) -> Option<(Atom, Atom, Vec<Term>)> {
    let [kind, m, f, a, _gl] = req.as_tuple_n::<5>()?;
    if !(kind.is_atom("call") || kind.is_atom("block_call")) {
        return None;
    }
    Some((m.as_atom()?, f.as_atom()?, a.as_list()?.to_vec()))
}

/// `{cast, M, F, A, GroupLeader}`.
fn cast_mfa(req: &Term) -> Option<(Atom, Atom, Vec<Term>)> {
    let [kind, m, f, a, _gl] = req.as_tuple_n::<5>()?;
    if !kind.is_atom("cast") {
        return None;
    }
    Some((m.as_atom()?, f.as_atom()?, a.as_list()?.to_vec()))
}

enum Reply {
    Gen(Term),
    Rex(crate::dist::etf::Pid),
    None,
}

/// Runs the call in its own process so `rex` never blocks (as `rpc.erl` spawns).
fn spawn_call(p: &Process, m: Atom, f: Atom, args: Vec<Term>, reply: Reply) {
    let rex = p.pid();
    p.node().spawn(move |w| async move {
        let node = w.node().clone();
        let pid = w.pid();
        let ctx = CallContext {
            node: node.clone(),
            pid,
            caller: None,
            process: Some(w),
        };
        let result = rpc_result(apply(ctx, m, f, args).await);
        match reply {
            Reply::Gen(from) => node.reply(Some(rex), &from, result),
            Reply::Rex(to) => node.send_from(
                Some(pid),
                Dest::Pid(to),
                Term::tuple(vec![Term::atom("rex"), result]),
            ),
            Reply::None => {}
        }
        Term::atom("normal")
    });
}

/// What `rpc:call` returns for each outcome (`rpc.erl` `execute_call/3`).
pub fn rpc_result(r: Result<Term, Exception>) -> Term {
    let badrpc = |x| {
        Term::tuple(vec![
            Term::atom("badrpc"),
            Term::tuple(vec![Term::atom("EXIT"), x]),
        ])
    };
    match r {
        Ok(v) => v,
        Err(Exception::Throw(t)) => t,
        Err(Exception::Exit(r)) => badrpc(r),
        Err(Exception::Error(r, stack)) => badrpc(Term::tuple(vec![r, stack.unwrap_or(Term::Nil)])),
    }
}
