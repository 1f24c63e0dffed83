//! The Erlang Port Mapper Daemon: wire codec, node table, server, async client and the
//! epmd-compatible command line. This layer depends on nothing else in beamq.
//!
//! Reference: `erts/epmd/src/epmd_srv.c`, `epmd_cli.c`, `epmd.c` (C epmd as it really behaves)
//! and `erts/doc/src/erl_dist_protocol.xml`.
mod accept;
pub mod cli;
pub mod client;
pub mod daemon;
pub mod fuzz;
pub mod listen;
pub mod registry;
pub mod request;
pub mod response;
pub mod server;
pub mod service;
pub mod wire;

pub use client::{ClientError, Registration};
pub use request::{Alive2Req, Request};
pub use response::NodeEntry;
pub use wire::DEFAULT_PORT;
