//! The top layer: assembles a running beamq server (node, cluster, router, MQTT listeners) and
//! will hold the HTTP API and Prometheus metrics. `main.rs` only parses arguments and calls in.
pub mod config;
pub mod local;
pub mod server;
