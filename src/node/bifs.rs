//! BEAM built-ins that act on processes, callable by peers through `rpc`/`erpc`/`spawn`: they
//! run in the worker process the spawn request created, exactly as they would on BEAM.
use std::time::Duration;

use super::functions::{Exception, Functions};
use super::process::Dest;
use crate::dist::etf::{Pid, Term};

/// A message destination as `erlang:send/2` takes it.
fn dest(t: &Term) -> Option<Dest> {
    match t {
        Term::Pid(p) => Some(Dest::Pid(*p)),
        Term::Atom(a) => Some(Dest::Name(*a)),
        Term::Ref(r) => Some(Dest::Alias(*r)),
        Term::Tuple(v) => match v.as_slice() {
            [Term::Atom(n), Term::Atom(node)] => Some(Dest::NameAt(*n, *node)),
            _ => None,
        },
        _ => None,
    }
}

fn pid(t: &Term) -> Result<Pid, Exception> {
    t.as_pid().ok_or_else(Exception::badarg)
}

/// Adds the process built-ins to `functions`.
pub fn register(functions: &Functions) {
    functions.register_sync("erlang", "is_process_alive", 1, |ctx, args| {
        let p = pid(&args[0])?;
        if !ctx.node.is_local(&p) && p.node != ctx.node.name() {
            return Err(Exception::badarg());
        }
        Ok(Term::atom(if ctx.node.is_alive(&p) {
            "true"
        } else {
            "false"
        }))
    });
    functions.register_sync("erlang", "send", 2, |ctx, args| {
        let to = dest(&args[0]).ok_or_else(Exception::badarg)?;
        if let Dest::Name(n) = to {
            if ctx.node.whereis(n).is_none() {
                return Err(Exception::badarg());
            }
        }
        ctx.node.send_from(Some(ctx.pid), to, args[1].clone());
        Ok(args[1].clone())
    });
    functions.register_sync("erlang", "exit", 2, |ctx, args| {
        let to = pid(&args[0])?;
        ctx.node.exit(&ctx.pid, &to, args[1].clone());
        Ok(Term::atom("true"))
    });
    functions.register_sync("erlang", "link", 1, |ctx, args| {
        let to = pid(&args[0])?;
        ctx.node.link(&ctx.pid, &to);
        Ok(Term::atom("true"))
    });
    functions.register_sync("erlang", "disconnect_node", 1, |ctx, args| {
        let peer = args[0].as_atom().ok_or_else(Exception::badarg)?;
        ctx.node.disconnect(peer);
        Ok(Term::atom("true"))
    });
    functions.register_sync("erlang", "iolist_to_binary", 1, |_, args| match &args[0] {
        Term::Binary(b) => Ok(Term::Binary(b.clone())),
        t => {
            let parts = t.as_list().ok_or_else(Exception::badarg)?;
            let mut out = Vec::new();
            for p in parts {
                match p {
                    Term::Binary(b) => out.extend_from_slice(b),
                    Term::Int(i) => out.push(u8::try_from(*i).map_err(|_| Exception::badarg())?),
                    _ => return Err(Exception::badarg()),
                }
            }
            Ok(Term::binary(out))
        }
    });
    functions.register("timer", "sleep", 1, |_, args| async move {
        match &args[0] {
            t if t.is_atom("infinity") => std::future::pending::<()>().await,
            t => {
                let ms = t
                    .as_u64()
                    .ok_or_else(|| Exception::Error(Term::atom("function_clause"), None))?;
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
        }
        Ok(Term::atom("ok"))
    });
}
