//! `beamq_routes`: route inspection as erpc functions (ROUTE-PROTOCOL rules 8 and 9), what
//! `beamq ctl routes` calls and what any `erl` shell may call with `rpc:call/4`:
//! `list/0`, `list/1`, `show/1` give `[{FilterBin, [Node]}]` sorted; `stats/0` gives
//! `#{forward => N, forward_received => N, forward_dropped => N}`; `busy/0` (beamq only) gives
//! `#{forward_busy => N, forward_busy_timeout => N}`.
use super::{ClusterRouter, MODULE};
use crate::dist::etf::{Atom, Term};
use crate::node::{Exception, Node};

fn routes_term(v: Vec<(String, Vec<Atom>)>) -> Term {
    Term::list(
        v.into_iter()
            .map(|(f, nodes)| {
                Term::tuple(vec![
                    Term::binary(f.as_bytes()),
                    Term::list(nodes.into_iter().map(Term::Atom).collect::<Vec<_>>()),
                ])
            })
            .collect::<Vec<_>>(),
    )
}

/// A binary argument as text (Erlang strings as lists of bytes are accepted too).
fn text_arg(args: &[Term]) -> Result<String, Exception> {
    let t = args.first().ok_or_else(Exception::badarg)?;
    let bytes: Vec<u8> = match t {
        Term::Binary(b) => b.to_vec(),
        _ => t
            .as_list()
            .ok_or_else(Exception::badarg)?
            .iter()
            .map(|c| c.as_int().and_then(|c| u8::try_from(c).ok()))
            .collect::<Option<Vec<u8>>>()
            .ok_or_else(Exception::badarg)?,
    };
    String::from_utf8(bytes).map_err(|_| Exception::badarg())
}

pub(super) fn register(node: &Node, router: &ClusterRouter) {
    let f = node.functions();
    let r = router.clone();
    f.register_sync(MODULE, "list", 0, move |_, _| {
        Ok(routes_term(r.routes().read().list()))
    });
    let r = router.clone();
    f.register_sync(MODULE, "list", 1, move |_, args| {
        let filter = text_arg(args)?;
        Ok(routes_term(r.routes().read().list_filter(&filter)))
    });
    let r = router.clone();
    f.register_sync(MODULE, "show", 1, move |_, args| {
        let topic = text_arg(args)?;
        Ok(routes_term(r.routes().read().show(&topic)))
    });
    let r = router.clone();
    f.register_sync(MODULE, "stats", 0, move |_, _| {
        let s = r.stats();
        let n = |v: u64| Term::int(i128::from(v));
        Ok(Term::map(vec![
            (Term::atom("forward"), n(s.forward)),
            (Term::atom("forward_received"), n(s.forward_received)),
            (Term::atom("forward_dropped"), n(s.forward_dropped)),
        ]))
    });
    let r = router.clone();
    f.register_sync(MODULE, "busy", 0, move |_, _| {
        let s = r.stats();
        let n = |v: u64| Term::int(i128::from(v));
        Ok(Term::map(vec![
            (Term::atom("forward_busy"), n(s.forward_busy)),
            (
                Term::atom("forward_busy_timeout"),
                n(s.forward_busy_timeout),
            ),
        ]))
    });
}
