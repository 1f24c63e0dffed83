//! `beamq ctl cluster ...`: a short-lived hidden node that calls a running node's
//! `beamq_cluster` functions and prints what `emqx_ctl cluster` of EMQX 4 prints
//! (`apps/emqx_management/src/emqx_mgmt_cli.erl` `cluster/1`).
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::service::MODULE;
use crate::dist::cookie::Cookie;
use crate::dist::etf::{Atom, Term};
use crate::dist::listener::{resolve_peer, PortMode};
use crate::dist::nodename::{NameKind, NodeName};
use crate::node::boot::{start, NodeConfig};

/// Everything a ctl command may take, connection included.
pub const CTL_TIMEOUT: Duration = Duration::from_secs(10);

/// A `cluster` subcommand.
#[derive(Debug, Clone, PartialEq)]
pub enum ClusterCmd {
    /// `cluster join NODE`.
    Join(String),
    /// `cluster leave`.
    Leave,
    /// `cluster force-leave NODE`.
    ForceLeave(String),
    /// `cluster status [--json]`.
    Status {
        /// Print JSON instead of the Erlang term.
        json: bool,
    },
}

/// Erlang-syntax printing of the terms the cluster functions return (atoms, integers, lists,
/// tuples; anything else in Rust debug form).
pub fn format_term(t: &Term) -> String {
    let seq = |v: &[Term]| v.iter().map(format_term).collect::<Vec<_>>().join(",");
    match t {
        Term::Atom(a) => a.to_string(),
        Term::Int(i) => i.to_string(),
        Term::Nil => "[]".into(),
        Term::Tuple(v) => format!("{{{}}}", seq(v)),
        Term::List(v, tail) if matches!(**tail, Term::Nil) => format!("[{}]", seq(v)),
        other => format!("{other:?}"),
    }
}

fn names(status: &Term, key: &str) -> Vec<String> {
    status
        .as_list()
        .unwrap_or(&[])
        .iter()
        .filter_map(|e| e.as_tuple_n::<2>())
        .filter(|[k, _]| k.is_atom(key))
        .flat_map(|[_, v]| v.as_list().unwrap_or(&[]).to_vec())
        .filter_map(|a| a.as_atom().map(|a| a.as_str().to_string()))
        .collect()
}

/// `status/0`'s term as JSON: `{"running_nodes": [...], "stopped_nodes": [...]}`.
pub fn status_json(status: &Term) -> String {
    serde_json::json!({
        "running_nodes": names(status, "running_nodes"),
        "stopped_nodes": names(status, "stopped_nodes"),
    })
    .to_string()
}

/// A free ekka-mode name for the ctl node on the target's host: `beamq_ctlN@HOST` with
/// 4370 + N free on 127.0.0.1 (ekka derives the listen port from the name).
fn ctl_name(target: &NodeName, kind: NameKind) -> Result<NodeName, String> {
    for _ in 0..64 {
        let n: u16 = 20000 + rand::random::<u16>() % 40000;
        let Some(port) = 4370u16.checked_add(n) else {
            continue;
        };
        if std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return NodeName::from_parts(&format!("beamq_ctl{n}"), target.host(), kind)
                .map_err(|e| e.to_string());
        }
    }
    Err("no free port for the ctl node".into())
}

/// Runs `cmd` against `target`; `Ok(output)` on success, `Err(message)` otherwise. The mode
/// is the one `beamq start` would use (`WITH_EPMD=1` for epmd mode).
pub async fn run(
    target: &str,
    cookie: Cookie,
    mode: PortMode,
    cmd: ClusterCmd,
) -> Result<String, String> {
    match tokio::time::timeout(CTL_TIMEOUT, run_inner(target, cookie, mode, cmd)).await {
        Ok(r) => r,
        Err(_) => Err(format!(
            "no answer from {target} within {} s",
            CTL_TIMEOUT.as_secs()
        )),
    }
}

async fn run_inner(
    target: &str,
    cookie: Cookie,
    mode: PortMode,
    cmd: ClusterCmd,
) -> Result<String, String> {
    let (function, args) = match &cmd {
        ClusterCmd::Join(n) => ("join", vec![atom_arg(n)?]),
        ClusterCmd::Leave => ("leave", vec![]),
        ClusterCmd::ForceLeave(n) => ("force_leave", vec![atom_arg(n)?]),
        ClusterCmd::Status { .. } => ("status", vec![]),
    };
    let reply = call(target, cookie, mode, MODULE, function, args).await?;
    let failed = |what: &str| {
        Err(format!(
            "Failed to {what}: {}",
            format_term(&error_reason(&reply))
        ))
    };
    match cmd {
        ClusterCmd::Join(_) if reply.is_atom("ok") => Ok("Join the cluster successfully.".into()),
        ClusterCmd::Join(_) => failed("join the cluster"),
        ClusterCmd::Leave if reply.is_atom("ok") => Ok("Leave the cluster successfully.".into()),
        ClusterCmd::Leave => failed("leave the cluster"),
        ClusterCmd::ForceLeave(_) if reply.is_atom("ok") => {
            Ok("Remove the node from cluster successfully.".into())
        }
        ClusterCmd::ForceLeave(_) => failed("remove the node from cluster"),
        ClusterCmd::Status { .. } if reply.as_list().is_none() => failed("get cluster status"),
        ClusterCmd::Status { json: true } => Ok(status_json(&reply)),
        ClusterCmd::Status { json: false } => {
            Ok(format!("Cluster status: {}", format_term(&reply)))
        }
    }
}

/// Starts the hidden ctl node, connects to `target` and calls `module:function(args)` there
/// (the caller bounds the time).
pub async fn call(
    target: &str,
    cookie: Cookie,
    mode: PortMode,
    module: &str,
    function: &str,
    args: Vec<Term>,
) -> Result<Term, String> {
    let kind = if target
        .split('@')
        .nth(1)
        .is_some_and(|h| h.contains('.') || h.parse::<IpAddr>().is_ok())
    {
        NameKind::Long
    } else {
        NameKind::Short
    };
    let target_name = NodeName::parse(target, kind).map_err(|e| e.to_string())?;
    let target_atom = Atom::try_new(target).map_err(|_| format!("bad node name {target}"))?;
    let (name, mode) = match mode {
        PortMode::Ekka => (ctl_name(&target_name, kind)?, PortMode::Ekka),
        PortMode::Epmd { epmd_port, .. } => (
            NodeName::from_parts(
                &format!("beamq_ctl_{}_{}", std::process::id(), next_ctl_serial()),
                target_name.host(),
                kind,
            )
            .map_err(|e| e.to_string())?,
            PortMode::Epmd {
                epmd_port,
                listen_min: 0,
                listen_max: 0,
            },
        ),
    };
    let running = start(NodeConfig {
        name,
        cookie,
        net_ticktime: Duration::from_secs(60),
        mode: mode.clone(),
        bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
        hidden: true,
    })
    .await
    .map_err(|e| format!("cannot start the ctl node: {e}"))?;
    let node = running.node.clone();
    if !node.connect(target_atom).await {
        return Err(diagnose(&target_name, &mode).await);
    }
    let reply = node
        .rpc_call(target_atom, module, function, args, Some(CTL_TIMEOUT))
        .await;
    node.disconnect(target_atom);
    drop(running);
    Ok(reply)
}

/// `{error, R}` gives `R`; anything else (`{badrpc, R}`) is shown whole.
fn error_reason(reply: &Term) -> Term {
    match reply.as_tuple_n::<2>() {
        Some([tag, r]) if tag.is_atom("error") => r.clone(),
        _ => reply.clone(),
    }
}

fn atom_arg(n: &str) -> Result<Term, String> {
    Atom::try_new(n)
        .map(Term::Atom)
        .map_err(|_| format!("bad node name {n}"))
}

/// Why the connection failed: nothing listening, or the handshake refused (usually a cookie
/// mismatch: `dist_util` closes the connection without telling why).
async fn diagnose(target: &NodeName, mode: &PortMode) -> String {
    let addr = match resolve_peer(target, mode).await {
        Ok(a) => a,
        Err(e) => return format!("Node {target} is not reachable: {e}"),
    };
    let tcp =
        tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(addr)).await;
    match tcp {
        Ok(Ok(_)) => format!("Cannot connect to node {target}: handshake refused (wrong cookie?)"),
        Ok(Err(e)) => format!("Node {target} is not reachable at {addr}: {e}"),
        Err(_) => format!("Node {target} is not reachable at {addr}: timeout"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_prints_as_emqx4() {
        let s = Term::list(vec![
            Term::tuple(vec![
                Term::atom("running_nodes"),
                Term::list(vec![Term::atom("c1@127.0.0.1"), Term::atom("c2@127.0.0.1")]),
            ]),
            Term::tuple(vec![
                Term::atom("stopped_nodes"),
                Term::list(vec![Term::atom("c3@127.0.0.1")]),
            ]),
        ]);
        assert_eq!(
            format_term(&s),
            "[{running_nodes,['c1@127.0.0.1','c2@127.0.0.1']},{stopped_nodes,['c3@127.0.0.1']}]"
        );
        assert_eq!(
            status_json(&s),
            r#"{"running_nodes":["c1@127.0.0.1","c2@127.0.0.1"],"stopped_nodes":["c3@127.0.0.1"]}"#
        );
    }
}

/// A serial for epmd-mode ctl node names: one process (`cluster-local`) may start ctl nodes
/// back to back, and epmd refuses a name whose previous registration has not yet been
/// dropped (its connection closes asynchronously).
fn next_ctl_serial() -> u32 {
    static SERIAL: AtomicU32 = AtomicU32::new(0);
    SERIAL.fetch_add(1, Ordering::Relaxed)
}
