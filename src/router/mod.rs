//! The `router` layer's core: topic names and filters, the topic trie, the cluster route table
//! ("filter → nodes") and the local subscription table.
//!
//! Semantics follow MQTT 5.0 section 4.7 and EMQX 4 (`emqx_topic.erl`, `emqx_trie.erl`,
//! `emqx_router.erl`); the route table is the `beamq_route` pg scope of DESIGN.md section 5.
//! Nothing here does I/O except [`cluster`], the replication over pg and the forwarding, which
//! runs on the node (`node`, `dist`) below it.

pub mod cluster;
mod filter_batch;
mod filter_text;
mod filter_trie;
mod filter_walk;
mod levels;
mod open_table;
pub mod route_table;
pub mod share;
pub mod shared;
pub mod subscriptions;
pub mod topic;
pub mod trie;
mod trie_slots;

pub use filter_trie::FilterTrie;
pub use route_table::{NodeId, NodeNames, RouteTable};
pub use share::{ShareGroup, ShareStrategy};
pub use shared::ReadMostly;
pub use subscriptions::{Delivery, SubOptions, Subscribed, SubscriptionTable, Unsubscribed};
pub use topic::{FilterLevel, Subscription, TopicError, TopicFilter, TopicName};
pub use trie::{TopicTrie, TrieFull, ValueSet};
