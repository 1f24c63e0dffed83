//! The distribution wire: ETF codec, distribution header and atom cache, fragments, control
//! messages (`erts/doc/src/erl_dist_protocol.xml`, `erts/doc/src/erl_ext_dist.xml`); the
//! handshake, framing, ticks, node names, cookies and the connection driver
//! (`lib/kernel/src/dist_util.erl`).
pub mod connection;
pub mod control;
pub mod control_term;
pub mod cookie;
pub mod etf;
pub mod flags;
pub mod fragments;
pub mod frame;
pub mod fuzz;
pub mod handshake;
pub mod header;
pub mod listener;
pub mod message;
pub mod nodename;
pub mod pending;
pub mod setup;
pub mod tick;

#[cfg(test)]
mod capture_tests;
#[cfg(test)]
mod control_tests;
#[cfg(test)]
mod erl_dist_tests;
