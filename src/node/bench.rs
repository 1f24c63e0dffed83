//! Load helpers callable by peers (`beamq_bench:sink/2`, `beamq_bench:source/3`), so the dist
//! throughput benchmark (scripts/bench-dist, BENCHMARKS.md) can drive beamq from Erlang the way
//! it drives a BEAM node: a sink that counts messages, a source that sends them.
use super::functions::{Exception, Functions};
use super::process::Dest;
use crate::dist::etf::Term;

/// Adds `beamq_bench:sink/2` and `beamq_bench:source/3`.
pub fn register(functions: &Functions) {
    // sink(N, ReplyTo): receive N messages, then send {done, self()} to ReplyTo.
    functions.register("beamq_bench", "sink", 2, |ctx, args| async move {
        let n = args[0].as_u64().ok_or_else(Exception::badarg)?;
        let reply_to = args[1].as_pid().ok_or_else(Exception::badarg)?;
        let Some(mut p) = ctx.process else {
            return Err(Exception::badarg());
        };
        for _ in 0..n {
            if p.recv().await.is_none() {
                break;
            }
        }
        let me = p.pid();
        p.send(
            reply_to,
            Term::tuple(vec![Term::atom("done"), Term::Pid(me)]),
        );
        Ok(Term::atom("ok"))
    });
    // source(N, Dest, Msg): send Msg to Dest N times (connecting first, as a BEAM sender is
    // suspended until the connection is up).
    functions.register("beamq_bench", "source", 3, |ctx, args| async move {
        let n = args[0].as_u64().ok_or_else(Exception::badarg)?;
        let to = match &args[1] {
            Term::Pid(p) => Dest::Pid(*p),
            Term::Tuple(v) => match v.as_slice() {
                [Term::Atom(name), Term::Atom(node)] => Dest::NameAt(*name, *node),
                _ => return Err(Exception::badarg()),
            },
            _ => return Err(Exception::badarg()),
        };
        let node = match to {
            Dest::Pid(p) => p.node,
            Dest::NameAt(_, n) => n,
            _ => ctx.node.name(),
        };
        if !ctx.node.connect(node).await {
            return Err(Exception::Error(Term::atom("noconnection"), None));
        }
        for _ in 0..n {
            ctx.node.send_from(Some(ctx.pid), to, args[2].clone());
        }
        Ok(Term::atom("ok"))
    });
}
