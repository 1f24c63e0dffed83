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

/// Registers `global:whereis_name/1`, `global:registered_names/0` and `global:sync/0`.
pub(super) fn register(functions: &Functions) {
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
