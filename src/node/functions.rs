//! Functions peers may call with `rpc`/`erpc` (and `spawn` by MFA): beamq runs no Erlang code,
//! so every callable `Module:Function/Arity` is a Rust closure registered here.
//!
//! A function returns `Ok(Value)` or an [`Exception`] shaped as Erlang's three classes, so the
//! caller sees exactly what BEAM would show (`lib/kernel/src/erpc.erl` `execute_call/4`).
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, RwLock};

use futures_util::future::BoxFuture;
use futures_util::FutureExt;

use super::runtime::Node;
use crate::dist::etf::{Atom, Pid, Term};

/// An Erlang exception raised by a function.
#[derive(Debug, Clone, PartialEq)]
pub enum Exception {
    /// `throw(Term)`.
    Throw(Term),
    /// `exit(Reason)`.
    Exit(Term),
    /// `error(Reason)`; the stack is filled in by the caller when left `None`.
    Error(Term, Option<Term>),
}

impl Exception {
    /// `error(badarg)`, the usual answer to arguments of the wrong shape.
    pub fn badarg() -> Exception {
        Exception::Error(Term::atom("badarg"), None)
    }
}

/// What a called function sees: its node, the worker process running it, its caller.
#[derive(Debug)]
pub struct CallContext {
    /// The node the function runs on.
    pub node: Node,
    /// The process running the call on this node.
    pub pid: Pid,
    /// The calling process (on the peer, or local).
    pub caller: Option<Pid>,
    /// The worker process itself (its mailbox), for functions that receive messages.
    pub process: Option<super::process::Process>,
}

/// A registered function: arguments in, value or exception out.
pub type Function = Arc<
    dyn Fn(CallContext, Vec<Term>) -> BoxFuture<'static, Result<Term, Exception>> + Send + Sync,
>;

/// The node's table of callable functions.
#[derive(Default)]
pub struct Functions {
    map: RwLock<HashMap<(Atom, Atom, usize), Function>>,
}

impl Functions {
    /// Registers an async `Module:Function/Arity`, replacing any earlier one.
    pub fn register<F, Fut>(&self, module: &str, function: &str, arity: usize, f: F)
    where
        F: Fn(CallContext, Vec<Term>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Term, Exception>> + Send + 'static,
    {
        let f: Function = Arc::new(move |ctx, args| f(ctx, args).boxed());
        self.map
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert((Atom::new(module), Atom::new(function), arity), f);
    }

    /// Registers a synchronous `Module:Function/Arity` (most built-ins).
    pub fn register_sync<F>(&self, module: &str, function: &str, arity: usize, f: F)
    where
        F: Fn(&CallContext, &[Term]) -> Result<Term, Exception> + Send + Sync + 'static,
    {
        let f = Arc::new(f);
        self.register(module, function, arity, move |ctx, args| {
            let f = f.clone();
            async move { f(&ctx, &args) }
        });
    }

    /// The function for `Module:Function/Arity`, if registered.
    pub fn get(&self, module: Atom, function: Atom, arity: usize) -> Option<Function> {
        self.map
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(module, function, arity))
            .cloned()
    }
}

/// Runs `M:F(Args)`: the registered function, or `error:undef` with BEAM's stack
/// `[{M, F, Args, []}]`; an error without a stack gets `[{M, F, Arity, []}]`.
pub async fn apply(ctx: CallContext, m: Atom, f: Atom, args: Vec<Term>) -> Result<Term, Exception> {
    let arity = args.len();
    let Some(fun) = ctx.node.functions().get(m, f, arity) else {
        let stack = Term::list(vec![Term::tuple(vec![
            Term::Atom(m),
            Term::Atom(f),
            Term::list(args),
            Term::Nil,
        ])]);
        return Err(Exception::Error(Term::atom("undef"), Some(stack)));
    };
    match fun(ctx, args).await {
        Err(Exception::Error(reason, None)) => {
            let stack = Term::list(vec![Term::tuple(vec![
                Term::Atom(m),
                Term::Atom(f),
                Term::Int(arity as i64),
                Term::Nil,
            ])]);
            Err(Exception::Error(reason, Some(stack)))
        }
        other => other,
    }
}

/// The functions every beamq node serves, each with its BEAM meaning: `erlang:node/0`,
/// `erlang:nodes/0,1`, `erlang:system_info(otp_release)`, `erlang:whereis/1`,
/// `erlang:registered/0`, `erlang:is_process_alive/1`, `erlang:send/2`, `erlang:exit/2`,
/// `erlang:disconnect_node/1`, `erlang:link/1`, `erlang:iolist_to_binary/1` (binaries and flat
/// lists of bytes and binaries), `timer:sleep/1`, and the benchmark's `beamq_bench:sink/2`,
/// `source/3`. The calling process is the spawned worker, as under `erpc`.
pub fn register_builtins(functions: &Functions) {
    super::bifs::register(functions);
    super::bench::register(functions);
    functions.register_sync("erlang", "node", 0, |ctx, _| {
        Ok(Term::Atom(ctx.node.name()))
    });
    functions.register_sync("erlang", "nodes", 0, |ctx, _| {
        let (visible, _) = ctx.node.nodes();
        Ok(atoms(visible))
    });
    functions.register_sync("erlang", "nodes", 1, |ctx, args| {
        let (visible, hidden) = ctx.node.nodes();
        let kinds: Vec<Atom> = match &args[0] {
            Term::Atom(a) => vec![*a],
            t => t
                .as_list()
                .ok_or_else(Exception::badarg)?
                .iter()
                .map(|k| k.as_atom().ok_or_else(Exception::badarg))
                .collect::<Result<_, _>>()?,
        };
        let mut out = Vec::new();
        for k in kinds {
            match k.as_str() {
                "visible" | "connected" => out.extend(visible.iter().copied()),
                "hidden" => out.extend(hidden.iter().copied()),
                "this" => out.push(ctx.node.name()),
                "known" => {
                    out.push(ctx.node.name());
                    out.extend(visible.iter().chain(hidden.iter()).copied());
                }
                _ => return Err(Exception::badarg()),
            }
        }
        out.dedup();
        Ok(atoms(out))
    });
    functions.register_sync("erlang", "system_info", 1, |_, args| {
        if args[0].is_atom("otp_release") {
            Ok(Term::list(
                b"25"
                    .iter()
                    .map(|&c| Term::Int(i64::from(c)))
                    .collect::<Vec<_>>(),
            ))
        } else {
            Err(Exception::badarg())
        }
    });
    functions.register_sync("erlang", "whereis", 1, |ctx, args| {
        let name = args[0].as_atom().ok_or_else(Exception::badarg)?;
        Ok(ctx
            .node
            .whereis(name)
            .map(Term::Pid)
            .unwrap_or(Term::atom("undefined")))
    });
    functions.register_sync("erlang", "registered", 0, |ctx, _| {
        Ok(atoms(ctx.node.registered()))
    });
}

fn atoms(v: Vec<Atom>) -> Term {
    Term::list(v.into_iter().map(Term::Atom).collect::<Vec<_>>())
}
