//! `net_kernel` as peers see it (`lib/kernel/src/net_kernel.erl`): `net_adm:ping/1` is a
//! gen_server call `{is_auth, Node}` that must be answered `yes`, or the caller gets `pang`
//! (reference/otp25-traces.md §5). Connection management itself lives in the runtime
//! ([`Node::connect`], [`Node::nodes`], `Process::monitor_nodes`).
use super::process::Process;
use super::runtime::{Node, SpawnOpts};
use crate::dist::etf::{Atom, Term};

/// Starts `net_kernel` on `node`.
pub fn start(node: &Node) -> Result<(), super::table::RegisterError> {
    let opts = SpawnOpts {
        name: Some(Atom::new("net_kernel")),
        ..Default::default()
    };
    node.spawn_opt(opts, run).map(|_| ())
}

async fn run(mut p: Process) -> Term {
    while let Some(msg) = p.recv().await {
        let Some([tag, from, req]) = msg.as_tuple_n::<3>() else {
            continue;
        };
        if !tag.is_atom("$gen_call") {
            continue;
        }
        let reply = match req.as_tuple() {
            Some([op, _node]) if op.is_atom("is_auth") => Term::atom("yes"),
            _ => {
                tracing::debug!(?req, "net_kernel: unsupported call ignored");
                continue;
            }
        };
        p.node().reply(Some(p.pid()), from, reply);
    }
    Term::atom("normal")
}
