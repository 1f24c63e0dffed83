//! Cluster membership (issue 6): who the members are, joining and leaving, and keeping the
//! members fully meshed. The operations are functions in the node's erpc registry under the
//! module `beamq_cluster`, so `beamq ctl` and any `erl` shell (`rpc:call`) drive them alike.
//! Semantics follow EMQX 4 (`emqx_mgmt_cli:cluster/1`, `ekka_cluster`): see docs/cluster.md.
pub mod ctl;
pub mod mesh;
pub mod service;
pub mod state;

pub use service::{start, Cluster, MODULE};
