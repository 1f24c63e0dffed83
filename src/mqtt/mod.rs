//! MQTT: the packet codec and the sans-IO session state machine (listeners, auth/ACL and the
//! broker loop are built on these).

pub mod auth;
pub mod broker;
pub mod codec;
pub mod metrics;
pub mod retained;
pub mod session;
pub mod sys;
pub mod transport;
