//! Server-side limits a session enforces and advertises in CONNACK (MQTT 5.0 §3.2.2.3).
//! Defaults follow EMQX 4's zone defaults where the spec leaves a choice.

use std::time::Duration;

use crate::mqtt::codec::QoS;

/// Limits and options for every session of a listener.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Largest packet accepted from a client, fixed header included (sent as Maximum Packet
    /// Size to v5 clients).
    pub max_packet_size: u32,
    /// Inbound QoS 2 messages a client may have unreleased at once (Receive Maximum sent to
    /// v5 clients; 3.1.1 clients are held to it too).
    pub receive_maximum: u16,
    /// Outbound inflight window for clients that do not send Receive Maximum (3.1.1 clients).
    pub max_inflight: u16,
    /// Topic Alias Maximum offered to v5 clients (0: aliases refused).
    pub topic_alias_maximum: u16,
    /// Highest QoS accepted and granted.
    pub maximum_qos: QoS,
    /// Whether retained messages are supported.
    pub retain_available: bool,
    /// Overrides the client's keep alive (v5 Server Keep Alive); `None` keeps the client's.
    pub server_keep_alive: Option<u16>,
    /// Cap on the Session Expiry Interval a client may ask for, in seconds.
    pub max_session_expiry: u32,
    /// Messages kept for a session while its window is full or it is offline.
    pub max_queue_len: usize,
    /// Whether QoS 0 messages are queued for an offline session (EMQX `mqueue_store_qos0`).
    pub queue_qos0: bool,
    /// Bytes of encoded output a connection may hold before QoS 0 deliveries are dropped and
    /// QoS 1/2 deliveries wait in the queue (slow reader backpressure).
    pub max_output_buffer: usize,
    /// Longest client identifier accepted (3.1 is always held to 23, its spec limit).
    pub max_client_id_len: usize,
    /// How long a connection may stay open without sending CONNECT.
    pub connect_timeout: Duration,
    /// Response Information for clients that ask for it (v5 request/response).
    pub response_information: Option<String>,
    /// Prefix of identifiers assigned to v5 clients that connect with an empty one.
    pub assigned_id_prefix: String,
}

impl Default for SessionConfig {
    fn default() -> SessionConfig {
        SessionConfig {
            max_packet_size: 1024 * 1024,
            receive_maximum: 32,
            max_inflight: 32,
            topic_alias_maximum: 65_535,
            maximum_qos: QoS::ExactlyOnce,
            retain_available: true,
            server_keep_alive: None,
            max_session_expiry: u32::MAX,
            max_queue_len: 1000,
            queue_qos0: true,
            max_output_buffer: 1024 * 1024,
            max_client_id_len: 65_535,
            connect_timeout: Duration::from_secs(15),
            response_information: None,
            assigned_id_prefix: "beamq-".to_owned(),
        }
    }
}
