//! global's API as `rpc`/`erpc` functions, so a peer (or a test) asks a beamq node exactly as
//! it would ask a BEAM node: `rpc:call(N, global, whereis_name, [Name])`.
use std::time::Duration;

use super::Global;
use crate::dist::etf::Term;
use crate::node::{Exception, Functions};

fn global_of(ctx: &crate::node::CallContext) -> Result<Global, Exception> {
    Global::lookup(&ctx.node).ok_or_else(|| {
        Exception::Exit(Term::tuple(vec![
            Term::atom("noproc"),
            Term::tuple(vec![
                Term::atom("gen_server"),
                Term::atom("call"),
                Term::atom("global_name_server"),
            ]),
        ]))
    })
}

/// Registers `global:whereis_name/1`, `global:registered_names/0`, `global:sync/0`,
/// `global:register_name/2`, `global:unregister_name/1` and `global:resolve_it/4` (what a BEAM
/// node calls on the node of a conflicting pid; we cannot run the method fun, so it resolves
/// as `global:random_exit_name/3` does, see docs/decisions.md).
pub(super) fn register(functions: &Functions) {
    functions.register("global", "register_name", 2, |ctx, args| async move {
        let g = global_of(&ctx)?;
        let pid = args[1].as_pid().ok_or_else(Exception::badarg)?;
        match g.register_name(args[0].clone(), pid).await {
            Ok(true) => Ok(Term::atom("yes")),
            Ok(false) => Ok(Term::atom("no")),
            Err(e) => Err(Exception::Exit(Term::binary(e.to_string()))),
        }
    });
    functions.register("global", "unregister_name", 1, |ctx, args| async move {
        let g = global_of(&ctx)?;
        g.unregister_name(args[0].clone())
            .await
            .map_err(|e| Exception::Exit(Term::binary(e.to_string())))?;
        Ok(Term::atom("ok"))
    });
    functions.register_sync("global", "resolve_it", 4, |ctx, args| {
        let (Some(a), Some(b)) = (args[2].as_pid(), args[3].as_pid()) else {
            return Err(Exception::badarg());
        };
        let (min, max) = if a.node < b.node { (a, b) } else { (b, a) };
        tracing::info!(name = ?args[1], loser = ?max, "global: name conflict, terminating the loser");
        ctx.node.exit(&ctx.pid, &max, Term::atom("kill"));
        Ok(Term::Pid(min))
    });
    functions.register_sync("global", "whereis_name", 1, |ctx, args| {
        let g = global_of(ctx)?;
        Ok(g.whereis_name(&args[0])
            .map(Term::Pid)
            .unwrap_or_else(|| Term::atom("undefined")))
    });
    functions.register_sync("global", "registered_names", 0, |ctx, _| {
        Ok(Term::list(global_of(ctx)?.registered_names()))
    });
    functions.register("global", "sync", 0, |ctx, _| async move {
        let g = global_of(&ctx)?;
        match g.sync(Some(Duration::from_secs(60))).await {
            Ok(()) => Ok(Term::atom("ok")),
            Err(e) => Ok(Term::tuple(vec![
                Term::atom("error"),
                Term::binary(e.to_string()),
            ])),
        }
    });
}
