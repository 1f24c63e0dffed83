//! beamq: a drop-in epmd, an Erlang distribution node and a clustered MQTT broker.
//!
//! Layers, lowest first; a lower layer never imports a higher one (see ARCHITECTURE.md).
pub mod api;
pub mod bench;
pub mod cluster;
pub mod dist;
pub mod epmd;
pub mod mqtt;
pub mod node;
pub mod router;
