//! MQTT: the packet codec and the sans-IO session state machine (listeners, auth/ACL and the
//! broker loop are built on these).

pub mod codec;
pub mod session;
