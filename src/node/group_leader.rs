//! `user`: the group leader of this node's processes as remote code sees it. A BEAM process
//! running on a peer for us (rpc with our group leader) sends its io here
//! (reference/otp25-traces.md §4: `{io_request, From, ReplyAs, Req}` → `{io_reply, ReplyAs,
//! ok}`); the text is logged. Follows the io protocol of `lib/stdlib/src/io.erl`.
use super::process::Process;
use super::runtime::{Node, SpawnOpts};
use crate::dist::etf::{Atom, Term};

/// Starts `user` on `node`.
pub fn start(node: &Node) -> Result<(), super::table::RegisterError> {
    let opts = SpawnOpts {
        name: Some(Atom::new("user")),
        ..Default::default()
    };
    node.spawn_opt(opts, run).map(|_| ())
}

async fn run(mut p: Process) -> Term {
    while let Some(msg) = p.recv().await {
        let Some([tag, Term::Pid(from), reply_as, req]) = msg.as_tuple_n::<4>() else {
            continue;
        };
        if !tag.is_atom("io_request") {
            continue;
        }
        let reply = match io_text(req) {
            Some(text) => {
                tracing::info!(from = ?from, "{}", text.trim_end());
                Term::atom("ok")
            }
            None => Term::tuple(vec![Term::atom("error"), Term::atom("enotsup")]),
        };
        p.send(
            *from,
            Term::tuple(vec![Term::atom("io_reply"), reply_as.clone(), reply]),
        );
    }
    Term::atom("normal")
}

/// The text of a `put_chars` request, formatted roughly (`io_lib:format` is Erlang code we do
/// not run: the format string and arguments are shown as received).
fn io_text(req: &Term) -> Option<String> {
    let t = req.as_tuple()?;
    match t {
        [op, _enc, chars] if op.is_atom("put_chars") => chars_text(chars),
        [op, chars] if op.is_atom("put_chars") => chars_text(chars),
        [op, _enc, m, f, args] if op.is_atom("put_chars") => Some(format!("{m:?}:{f:?}{args:?}")),
        [op, reqs] if op.is_atom("requests") => {
            let parts: Option<Vec<String>> = reqs.as_list()?.iter().map(io_text).collect();
            Some(parts?.concat())
        }
        _ => None,
    }
}

fn chars_text(t: &Term) -> Option<String> {
    match t {
        Term::Binary(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Term::Nil => Some(String::new()),
        _ => {
            let mut s = String::new();
            for c in t.as_list()? {
                match c {
                    Term::Int(i) => s.push(char::from_u32(u32::try_from(*i).ok()?)?),
                    other => s.push_str(&chars_text(other)?),
                }
            }
            Some(s)
        }
    }
}
