//! The MQTT session as a sans-IO state machine (quinn-proto style): packets, time and broker
//! deliveries in; encoded bytes and broker actions out. No sockets, no clocks, no tasks.
//!
//! # Driving a connection
//!
//! ```text
//! let mut conn = Connection::new(config, auth, Some(peer), now);
//! loop {
//!     // 1. bytes from the socket: frame with codec::check, decode, feed
//!     while let Some((fh, len)) = codec::check(&rx, conn.max_incoming_packet_size())? {
//!         let frame = rx.split_to(len).freeze();
//!         match Packet::read(&fh, frame.slice(fh.header_len..), conn.protocol_version()) {
//!             Ok(p) => conn.handle_packet(p, now),
//!             Err(e) => conn.handle_decode_error(&e, now),
//!         }
//!     }
//!     // (a check() error goes to handle_decode_error too; EOF to handle_eof)
//!     // 2. actions for the broker
//!     while let Some(action) = conn.poll_action() { broker.handle(client_id, action) }
//!     // 3. bytes for the socket (take them when the previous write is done)
//!     if let Some(bytes) = conn.poll_transmit(now) { socket.write_all(&bytes).await? }
//!     // 4. timers
//!     sleep_until(conn.poll_timeout()); conn.handle_timeout(now);
//!     // 5. deliveries from the broker: conn.deliver(&delivery, now)
//!     if conn.is_closed() { break }          // after flushing the output
//! }
//! ```
//!
//! # The broker's side of the boundary
//!
//! - [`Action::OpenSession`]: find the session stored for the client id (and if a live
//!   connection holds it, call [`Connection::takeover`] on it and take the session from its
//!   [`Action::Closed`]), cancel a pending delayed Will of that client id, then call
//!   [`Connection::attach_session`]. With `clean_start` the old session is ended instead
//!   (its routes removed).
//! - [`Action::Subscribe`] / [`Action::Unsubscribe`]: add/remove the route `filter → this
//!   session` (shared ones by group); when `send_retained`, deliver matching retained messages
//!   with `from_retained = true`.
//! - [`Action::Publish`]: match the topic, and call [`Connection::deliver`] (online) or
//!   [`SessionState::deliver_offline`] (stored session) once per matching subscription, with
//!   the subscription's filter as written by the client. [`Action::Retain`]: set or clear
//!   (empty payload) the retained message of the topic.
//! - [`Action::Will`]: publish the message after `delay`, unless the client id reconnects first.
//! - [`Action::Closed`]: keep the [`SessionState`] for its [`SessionExpiry`] (or end it now,
//!   removing its routes: [`SessionState::subscriptions`]).
//!
//! Authentication and ACL are the [`AuthHook`] given to [`Connection::new`]. Packets a client
//! pipelines behind CONNECT are held (up to 64) and handled after CONNACK.

mod config;
mod connect;
mod connection;
mod hooks;
mod inbound;
mod message;
mod outbound;
mod state;

#[cfg(test)]
mod tests;

pub use config::SessionConfig;
pub use connection::{Action, Connection};
pub use hooks::{Access, AllowAll, AuthHook, ClientInfo};
pub use message::{Delivery, Message};
pub use state::{Inflight, InflightState, Queued, SessionExpiry, SessionState, SubscriptionEntry};
