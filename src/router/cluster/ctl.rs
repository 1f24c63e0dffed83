//! `beamq ctl routes list [FILTER]` and `routes show TOPIC`: the `beamq_routes` functions
//! called through the ctl node, printed as EMQX 4's `emqx_ctl routes` prints
//! (`apps/emqx_management/src/emqx_mgmt_cli.erl` `routes/1`), one line per filter with its
//! nodes: `t/# -> n1@h,n2@h`.
use super::MODULE;
use crate::cluster::ctl::{call, format_term, CTL_TIMEOUT};
use crate::dist::cookie::Cookie;
use crate::dist::etf::Term;
use crate::dist::listener::PortMode;

/// A `routes` subcommand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoutesCmd {
    /// `routes list [FILTER]`.
    List(Option<String>),
    /// `routes show TOPIC`: every filter matching the topic.
    Show(String),
}

/// `[{FilterBin, [Node]}]` as lines `Filter -> Node1,Node2`; `None` when the term has another
/// shape.
pub fn format_routes(reply: &Term) -> Option<String> {
    let list = match reply {
        Term::Nil => &[][..],
        _ => reply.as_list()?,
    };
    let mut lines = Vec::with_capacity(list.len());
    for e in list {
        let [filter, nodes] = e.as_tuple_n::<2>()?;
        let filter = String::from_utf8_lossy(filter.as_binary()?);
        let nodes = match nodes {
            Term::Nil => &[][..],
            _ => nodes.as_list()?,
        };
        let nodes: Option<Vec<&str>> = nodes
            .iter()
            .map(|n| n.as_atom().map(|a| a.as_str()))
            .collect();
        lines.push(format!("{filter} -> {}", nodes?.join(",")));
    }
    Some(lines.join("\n"))
}

/// Runs `cmd` against `target`: the lines to print (empty when there is no route), or why
/// it failed.
pub async fn run(
    target: &str,
    cookie: Cookie,
    mode: PortMode,
    cmd: RoutesCmd,
) -> Result<String, String> {
    let arg = |s: &str| Term::binary(s.as_bytes());
    let (function, args) = match &cmd {
        RoutesCmd::List(None) => ("list", vec![]),
        RoutesCmd::List(Some(f)) => ("list", vec![arg(f)]),
        RoutesCmd::Show(t) => ("show", vec![arg(t)]),
    };
    let reply = tokio::time::timeout(
        CTL_TIMEOUT,
        call(target, cookie, mode, MODULE, function, args),
    )
    .await
    .map_err(|_| format!("no answer from {target} within {} s", CTL_TIMEOUT.as_secs()))??;
    format_routes(&reply).ok_or_else(|| format!("Failed to get routes: {}", format_term(&reply)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_as_emqx_ctl_routes() {
        let reply = Term::list(vec![
            Term::tuple(vec![
                Term::binary(b"t/#"),
                Term::list(vec![Term::atom("a@h"), Term::atom("b@h")]),
            ]),
            Term::tuple(vec![
                Term::binary(b"u"),
                Term::list(vec![Term::atom("c@h")]),
            ]),
        ]);
        assert_eq!(
            format_routes(&reply).as_deref(),
            Some("t/# -> a@h,b@h\nu -> c@h")
        );
        assert_eq!(format_routes(&Term::Nil).as_deref(), Some(""));
        let badrpc = Term::tuple(vec![Term::atom("badrpc"), Term::atom("nodedown")]);
        assert_eq!(format_routes(&badrpc), None);
    }
}
