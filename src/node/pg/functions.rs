//! pg's API as `rpc`/`erpc` functions (`lib/kernel/src/pg.erl` exports with a scope
//! argument), so a peer queries or joins a beamq scope as it would a BEAM one:
//! `erpc:call(N, pg, get_members, [beamq_route, Group])`.
use super::{PgError, Scope};
use crate::dist::etf::{Pid, Term};
use crate::node::{CallContext, Exception, Functions};

fn scope_of(ctx: &CallContext, t: &Term) -> Result<Scope, Exception> {
    let name = t.as_atom().ok_or_else(Exception::badarg)?;
    Scope::lookup(&ctx.node, name).ok_or_else(Exception::badarg)
}

/// `PidOrPids`: a pid or a list of pids.
fn pids(t: &Term) -> Result<Vec<Pid>, Exception> {
    match t {
        Term::Pid(p) => Ok(vec![*p]),
        Term::Nil => Ok(Vec::new()),
        _ => t
            .as_list()
            .ok_or_else(Exception::badarg)?
            .iter()
            .map(|p| p.as_pid().ok_or_else(Exception::badarg))
            .collect(),
    }
}

fn pg_error(e: PgError) -> Exception {
    match e {
        PgError::NotLocal(p) => {
            Exception::Error(Term::tuple(vec![Term::atom("nolocal"), Term::Pid(p)]), None)
        }
        _ => Exception::badarg(),
    }
}

fn pid_list(v: Vec<Pid>) -> Term {
    Term::list(v.into_iter().map(Term::Pid).collect::<Vec<_>>())
}

/// Registers `pg:join/3`, `pg:leave/3`, `pg:get_members/2`, `pg:get_local_members/2`,
/// `pg:which_groups/1` and `pg:which_local_groups/1`.
pub(super) fn register(functions: &Functions) {
    functions.register("pg", "join", 3, |ctx, args| async move {
        let scope = scope_of(&ctx, &args[0])?;
        let pids = pids(&args[2])?;
        scope.join(args[1].clone(), &pids).await.map_err(pg_error)?;
        Ok(Term::atom("ok"))
    });
    functions.register("pg", "leave", 3, |ctx, args| async move {
        let scope = scope_of(&ctx, &args[0])?;
        let pids = pids(&args[2])?;
        let left = scope
            .leave(args[1].clone(), &pids)
            .await
            .map_err(pg_error)?;
        Ok(Term::atom(if left { "ok" } else { "not_joined" }))
    });
    // pg.erl catches the badarg of a missing table here: an unknown scope has no members.
    functions.register_sync("pg", "get_members", 2, |ctx, args| {
        let members = scope_of(ctx, &args[0]).map(|s| s.get_members(&args[1]));
        Ok(pid_list(members.unwrap_or_default()))
    });
    functions.register_sync("pg", "get_local_members", 2, |ctx, args| {
        let members = scope_of(ctx, &args[0]).map(|s| s.get_local_members(&args[1]));
        Ok(pid_list(members.unwrap_or_default()))
    });
    functions.register_sync("pg", "which_groups", 1, |ctx, args| {
        Ok(Term::list(scope_of(ctx, &args[0])?.which_groups()))
    });
    functions.register_sync("pg", "which_local_groups", 1, |ctx, args| {
        Ok(Term::list(scope_of(ctx, &args[0])?.which_local_groups()))
    });
}
