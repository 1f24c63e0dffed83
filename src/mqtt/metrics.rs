//! Broker-wide counters: messages and bytes in and out, drops, connections.
//!
//! Each counter is one relaxed atomic (a `prometheus-client` counter or gauge, which is an
//! `Arc<AtomicU64>`), so the publish path pays one uncontended-in-the-common-case `fetch_add`,
//! and the same cells are read by `$SYS` publishing ([`super::sys`]) and by the Prometheus
//! endpoint ([`Metrics::register`]) without a second copy. Names follow EMQX 4's
//! `emqx_metrics.erl` (`messages.received`, `bytes.sent`, ...) and `emqx_stats.erl`
//! (`connections.count`, `connections.max`).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// The broker's counters. Cheap to clone (every field is shared).
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    /// PUBLISH packets received from clients (EMQX `messages.received`).
    pub messages_received: Counter<u64, AtomicU64>,
    /// PUBLISH packets delivered to clients (`messages.sent`).
    pub messages_sent: Counter<u64, AtomicU64>,
    /// Messages dropped: no subscriber, queue full, expired, refused by ACL (`messages.dropped`).
    pub messages_dropped: Counter<u64, AtomicU64>,
    /// Messages retained (`messages.retained`).
    pub messages_retained: Counter<u64, AtomicU64>,
    /// Bytes read from client sockets (`bytes.received`).
    pub bytes_received: Counter<u64, AtomicU64>,
    /// Bytes written to client sockets (`bytes.sent`).
    pub bytes_sent: Counter<u64, AtomicU64>,
    /// Control packets received (`packets.received`).
    pub packets_received: Counter<u64, AtomicU64>,
    /// Control packets sent (`packets.sent`).
    pub packets_sent: Counter<u64, AtomicU64>,
    /// Connections accepted by a listener, whether or not CONNECT followed.
    pub connections_accepted: Counter<u64, AtomicU64>,
    /// CONNECTs refused (bad credentials, not authorized, bad client id, ...).
    pub connections_refused: Counter<u64, AtomicU64>,
    /// Clients connected now (EMQX `connections.count`).
    pub connections_current: Gauge<i64, AtomicI64>,
    /// Highest `connections_current` seen (`connections.max`).
    pub connections_max: Gauge<i64, AtomicI64>,
}

/// A point-in-time copy of the counters plus the figures only the broker knows (sessions,
/// subscriptions, retained messages, routes), for `$SYS` and the HTTP API.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetricsSnapshot {
    /// See [`Metrics::messages_received`].
    pub messages_received: u64,
    /// See [`Metrics::messages_sent`].
    pub messages_sent: u64,
    /// See [`Metrics::messages_dropped`].
    pub messages_dropped: u64,
    /// See [`Metrics::messages_retained`].
    pub messages_retained: u64,
    /// See [`Metrics::bytes_received`].
    pub bytes_received: u64,
    /// See [`Metrics::bytes_sent`].
    pub bytes_sent: u64,
    /// See [`Metrics::packets_received`].
    pub packets_received: u64,
    /// See [`Metrics::packets_sent`].
    pub packets_sent: u64,
    /// See [`Metrics::connections_accepted`].
    pub connections_accepted: u64,
    /// See [`Metrics::connections_refused`].
    pub connections_refused: u64,
    /// See [`Metrics::connections_current`].
    pub connections_count: u64,
    /// See [`Metrics::connections_max`].
    pub connections_max: u64,
    /// Sessions held, connected or not (filled by the broker).
    pub sessions_count: u64,
    /// Subscriptions held by all sessions (filled by the broker).
    pub subscriptions_count: u64,
    /// Distinct topic filters subscribed to (filled by the broker; EMQX `topics.count`).
    pub topics_count: u64,
    /// Retained messages held (filled by the broker from the retained store).
    pub retained_count: u64,
    /// Routes in the cluster route table (filled by the broker).
    pub routes_count: u64,
}

impl Metrics {
    /// Fresh counters at zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// A client finished CONNECT: counts it and keeps the high-water mark.
    pub fn client_connected(&self) {
        let now = self.connections_current.inc() + 1;
        let max = &self.connections_max;
        // A lost race only under-reports the maximum by a moment; fetch_max on the inner atomic
        // keeps it monotonic.
        max.inner().fetch_max(now, Ordering::Relaxed);
    }

    /// A connected client went away.
    pub fn client_disconnected(&self) {
        self.connections_current.dec();
    }

    /// Copies the counters; broker-owned figures are left at zero for the caller to fill.
    pub fn snapshot(&self) -> MetricsSnapshot {
        let gauge = |g: &Gauge<i64, AtomicI64>| u64::try_from(g.get()).unwrap_or(0);
        MetricsSnapshot {
            messages_received: self.messages_received.get(),
            messages_sent: self.messages_sent.get(),
            messages_dropped: self.messages_dropped.get(),
            messages_retained: self.messages_retained.get(),
            bytes_received: self.bytes_received.get(),
            bytes_sent: self.bytes_sent.get(),
            packets_received: self.packets_received.get(),
            packets_sent: self.packets_sent.get(),
            connections_accepted: self.connections_accepted.get(),
            connections_refused: self.connections_refused.get(),
            connections_count: gauge(&self.connections_current),
            connections_max: gauge(&self.connections_max),
            ..MetricsSnapshot::default()
        }
    }

    /// Registers every counter under a `beamq_` prefix (`beamq_messages_received_total`, ...),
    /// sharing the cells: no copy, no second bookkeeping.
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("beamq");
        let counters: [(&str, &str, &Counter<u64, AtomicU64>); 10] = [
            (
                "messages_received",
                "PUBLISH packets received from clients",
                &self.messages_received,
            ),
            (
                "messages_sent",
                "PUBLISH packets delivered to clients",
                &self.messages_sent,
            ),
            (
                "messages_dropped",
                "Messages dropped",
                &self.messages_dropped,
            ),
            (
                "messages_retained",
                "Messages retained",
                &self.messages_retained,
            ),
            (
                "bytes_received",
                "Bytes read from clients",
                &self.bytes_received,
            ),
            ("bytes_sent", "Bytes written to clients", &self.bytes_sent),
            (
                "packets_received",
                "Control packets received",
                &self.packets_received,
            ),
            ("packets_sent", "Control packets sent", &self.packets_sent),
            (
                "connections_accepted",
                "Connections accepted",
                &self.connections_accepted,
            ),
            (
                "connections_refused",
                "CONNECTs refused",
                &self.connections_refused,
            ),
        ];
        for (name, help, c) in counters {
            r.register(name, help, c.clone());
        }
        r.register(
            "connections",
            "Clients connected now",
            self.connections_current.clone(),
        );
        r.register(
            "connections_max",
            "Most clients connected at once",
            self.connections_max.clone(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::encoding::text::encode;

    #[test]
    fn counters_and_high_water_mark() {
        let m = Metrics::new();
        m.messages_received.inc_by(3);
        m.bytes_sent.inc_by(100);
        m.client_connected();
        m.client_connected();
        m.client_disconnected();
        let s = m.snapshot();
        assert_eq!(s.messages_received, 3);
        assert_eq!(s.bytes_sent, 100);
        assert_eq!(s.connections_count, 1);
        assert_eq!(s.connections_max, 2);
    }

    #[test]
    fn clones_share_cells_and_prometheus_reads_them() {
        let m = Metrics::new();
        let mut reg = Registry::default();
        m.register(&mut reg);
        let other = m.clone();
        other.messages_sent.inc_by(7);
        let mut text = String::new();
        assert!(encode(&mut text, &reg).is_ok());
        assert!(
            text.contains("beamq_messages_sent_total 7"),
            "missing counter in:\n{text}"
        );
        assert!(text.contains("beamq_connections 0"));
    }
}
