//! The cluster plan of `beamq cluster-local N`: each node's name, port offset, MQTT and dist
//! ports and data directory, laid out as EMQX 4's "Pseudo-distributed cluster" (node i shifted
//! by `port_offset + port_step * (i - 1)`; dist port 4370 + I in ekka mode, `ekka_dist:port/1`,
//! or 6369 + the offset in epmd mode). Computed from the flags alone, without I/O, so every
//! layout and every impossible one is checked by unit tests.
use std::path::PathBuf;

use super::LocalError;
use crate::dist::nodename::{NameKind, NodeName};
use crate::mqtt::transport::DEFAULT_TCP_PORT;
use crate::node::config::DEFAULT_DIST_LISTEN_PORT;

/// Upper bound on N: every node is a process with its own listeners.
const MAX_NODES: u16 = 50;

/// `beamq cluster-local` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct LocalArgs {
    /// Number of nodes.
    pub nodes: u16,
    /// Name part of the node names before the number (`beamq` gives beamq1@HOST, beamq2@HOST).
    #[arg(long, default_value = "beamq")]
    pub prefix: String,
    /// Number of the first node (its ekka dist port is 4370 + this).
    #[arg(long, default_value_t = 1)]
    pub first: u16,
    /// Host part of the node names.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port offset of the first node (MQTT 1883 + this).
    #[arg(long, default_value_t = 0)]
    pub port_offset: u16,
    /// Port offset added per further node.
    #[arg(long, default_value_t = 1000)]
    pub port_step: u16,
    /// Parent of the nodes' data directories (DIR/beamq1, DIR/beamq2, ...).
    #[arg(long, default_value = "data")]
    pub data_dir: PathBuf,
    /// epmd port mode (as WITH_EPMD=1): register with the epmd at ERL_EPMD_PORT.
    #[arg(long)]
    pub epmd: bool,
    /// Magic cookie of all nodes; env EMQX_NODE_COOKIE; default ~/.erlang.cookie.
    #[arg(long)]
    pub cookie: Option<String>,
}

/// One node of the planned cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedNode {
    /// Full node name, `beamq1@127.0.0.1`.
    pub name: String,
    /// Its `--port-offset`.
    pub port_offset: u16,
    /// Its MQTT TCP port.
    pub mqtt_port: u16,
    /// Its distribution port.
    pub dist_port: u16,
    /// Its data directory.
    pub data_dir: PathBuf,
}

/// Node names, ports and directories for `args` (no I/O).
pub fn plan(args: &LocalArgs) -> Result<Vec<PlannedNode>, LocalError> {
    if args.nodes == 0 || args.nodes > MAX_NODES {
        return Err(LocalError::Plan(format!(
            "the number of nodes must be 1..={MAX_NODES}"
        )));
    }
    let mut nodes = Vec::with_capacity(usize::from(args.nodes));
    for i in 0..args.nodes {
        let too_large = || LocalError::Plan(format!("ports of node {} exceed 65535", i + 1));
        let number = args
            .first
            .checked_add(i)
            .ok_or_else(|| LocalError::Plan("--first too large".into()))?;
        let part = format!("{}{number}", args.prefix);
        let name = NodeName::from_parts(&part, &args.host, NameKind::Long)
            .map_err(|e| LocalError::Plan(e.to_string()))?;
        let offset = args
            .port_step
            .checked_mul(i)
            .and_then(|o| o.checked_add(args.port_offset))
            .ok_or_else(too_large)?;
        let mqtt_port = DEFAULT_TCP_PORT.checked_add(offset).ok_or_else(too_large)?;
        let dist_port = if args.epmd {
            DEFAULT_DIST_LISTEN_PORT
                .checked_add(offset)
                .ok_or_else(too_large)?
        } else {
            name.ekka_dist_port()
                .ok_or_else(|| LocalError::Plan(format!("{part}: no ekka dist port")))?
        };
        nodes.push(PlannedNode {
            name: name.to_string(),
            port_offset: offset,
            mqtt_port,
            dist_port,
            data_dir: args.data_dir.join(&part),
        });
    }
    Ok(nodes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(n: u16) -> LocalArgs {
        LocalArgs {
            nodes: n,
            prefix: "beamq".into(),
            first: 1,
            host: "127.0.0.1".into(),
            port_offset: 0,
            port_step: 1000,
            data_dir: "data".into(),
            epmd: false,
            cookie: None,
        }
    }

    #[test]
    fn ekka_plan_is_emqx_pseudo_distributed() {
        let p = plan(&args(3)).unwrap();
        let names: Vec<_> = p.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(
            names,
            ["beamq1@127.0.0.1", "beamq2@127.0.0.1", "beamq3@127.0.0.1"]
        );
        let mqtt: Vec<_> = p.iter().map(|n| n.mqtt_port).collect();
        assert_eq!(mqtt, [1883, 2883, 3883]);
        let dist: Vec<_> = p.iter().map(|n| n.dist_port).collect();
        assert_eq!(dist, [4371, 4372, 4373]);
        assert_eq!(p[2].data_dir, PathBuf::from("data/beamq3"));
        assert_eq!(p[1].port_offset, 1000);
    }

    #[test]
    fn epmd_plan_shifts_the_dist_port_by_the_offset() {
        let mut a = args(2);
        a.epmd = true;
        a.port_offset = 7;
        a.first = 5;
        let p = plan(&a).unwrap();
        assert_eq!(p[0].name, "beamq5@127.0.0.1");
        assert_eq!(
            p.iter().map(|n| n.dist_port).collect::<Vec<_>>(),
            [6376, 7376]
        );
        assert_eq!(
            p.iter().map(|n| n.mqtt_port).collect::<Vec<_>>(),
            [1890, 2890]
        );
    }

    #[test]
    fn impossible_plans_are_errors() {
        assert!(plan(&args(0)).is_err());
        assert!(plan(&args(MAX_NODES + 1)).is_err());
        let mut a = args(3);
        a.port_offset = 63000;
        assert!(plan(&a).is_err());
        let mut a = args(1);
        a.host = "bad host".into();
        assert!(plan(&a).is_err());
    }
}
