//! Counters shared by all bench clients, and the progress and summary lines printed from them.
//! Clients add to the atomics once per loop turn (not per message) and fold their latency
//! samples into the shared window every 100 ms, so the hot loops stay uncontended.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::histogram::Histogram;

/// What the clients report.
#[derive(Debug, Default)]
pub struct Shared {
    /// Clients through CONNACK.
    pub connected: AtomicU64,
    /// Clients that could not connect.
    pub failed: AtomicU64,
    /// Connected clients that ended with an error (closed by the broker, bad packet ...).
    pub dropped: AtomicU64,
    /// Subscribers whose SUBACK granted the subscription.
    pub subscribed: AtomicU64,
    /// Clients that finished their work.
    pub finished: AtomicU64,
    /// PUBLISH packets sent.
    pub sent: AtomicU64,
    /// QoS 1/2 publishes acknowledged (PUBACK / PUBCOMP).
    pub acked: AtomicU64,
    /// QoS 1/2 publishes the broker refused (PUBACK/PUBREC with an error reason).
    pub rejected: AtomicU64,
    /// PUBLISH packets received.
    pub received: AtomicU64,
    /// Latency samples since the last progress line.
    pub window: Mutex<Histogram>,
    /// Connect latency samples (TCP + CONNECT/CONNACK).
    pub connect: Mutex<Histogram>,
}

impl Shared {
    /// Adds `h` to the window and clears it.
    pub fn fold(&self, h: &mut Histogram) {
        if h.count() == 0 {
            return;
        }
        if let Ok(mut w) = self.window.lock() {
            w.merge(h);
        }
        h.clear();
    }

    /// Records one connect time.
    pub fn connect_time(&self, d: Duration) {
        if let Ok(mut h) = self.connect.lock() {
            h.record(u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
        }
    }

    /// Clients no longer running (done, failed or dropped).
    pub fn gone(&self) -> u64 {
        self.failed.load(Relaxed) + self.dropped.load(Relaxed) + self.finished.load(Relaxed)
    }
}

/// A local latency buffer a client folds into [`Shared`] now and then.
#[derive(Debug)]
pub struct LocalLatency {
    hist: Histogram,
    last_fold: Instant,
}

impl LocalLatency {
    /// Empty.
    pub fn new() -> Self {
        LocalLatency {
            hist: Histogram::new(),
            last_fold: Instant::now(),
        }
    }

    /// Records a sample in microseconds.
    pub fn record(&mut self, us: u64) {
        self.hist.record(us);
    }

    /// Folds into `shared` when 100 ms have passed (or `force`).
    pub fn maybe_fold(&mut self, shared: &Shared, force: bool) {
        if force || self.last_fold.elapsed() >= Duration::from_millis(100) {
            shared.fold(&mut self.hist);
            self.last_fold = Instant::now();
        }
    }
}

impl Default for LocalLatency {
    fn default() -> Self {
        Self::new()
    }
}

/// Keeps totals between progress lines.
#[derive(Debug)]
pub struct Reporter {
    mode: &'static str,
    clients: u64,
    start: Instant,
    last: Instant,
    last_count: u64,
    last_conns: u64,
    total: Histogram,
}

impl Reporter {
    /// Starts the clock.
    pub fn new(mode: &'static str, clients: u64) -> Self {
        let now = Instant::now();
        Reporter {
            mode,
            clients,
            start: now,
            last: now,
            last_count: 0,
            last_conns: 0,
            total: Histogram::new(),
        }
    }

    fn count(&self, s: &Shared) -> u64 {
        match self.mode {
            "sub" => s.received.load(Relaxed),
            "conn" => s.connected.load(Relaxed),
            _ => s.sent.load(Relaxed),
        }
    }

    /// The line printed every second: totals and rates over the last interval, latency of the
    /// last interval.
    pub fn progress(&mut self, s: &Shared) -> String {
        let now = Instant::now();
        let secs = now.duration_since(self.last).as_secs_f64().max(1e-3);
        let count = self.count(s);
        let conns = s.connected.load(Relaxed);
        let rate = (count - self.last_count.min(count)) as f64 / secs;
        let conn_rate = (conns - self.last_conns.min(conns)) as f64 / secs;
        let mut window = match s.window.lock() {
            Ok(mut w) => std::mem::take(&mut *w),
            Err(_) => Histogram::new(),
        };
        self.total.merge(&window);
        let lat = window.summary();
        window.clear();
        self.last = now;
        self.last_count = count;
        self.last_conns = conns;
        let elapsed = now.duration_since(self.start).as_secs();
        let failed = s.failed.load(Relaxed) + s.dropped.load(Relaxed);
        match self.mode {
            "conn" => format!(
                "[conn] {elapsed}s conns={conns}/{} ({conn_rate:.0}/s) failed={failed}",
                self.clients
            ),
            "sub" => format!(
                "[sub] {elapsed}s conns={conns}/{} subscribed={} recv={count} ({rate:.0}/s) failed={failed} latency {lat}",
                self.clients,
                s.subscribed.load(Relaxed)
            ),
            _ => format!(
                "[pub] {elapsed}s conns={conns}/{} sent={count} ({rate:.0}/s) acked={} failed={failed} ack-latency {lat}",
                self.clients,
                s.acked.load(Relaxed)
            ),
        }
    }

    /// The final line: totals, average rates over the whole run, latency percentiles.
    pub fn summary(&mut self, s: &Shared) -> String {
        if let Ok(mut w) = s.window.lock() {
            self.total.merge(&w);
            w.clear();
        }
        let secs = self.start.elapsed().as_secs_f64().max(1e-3);
        let count = self.count(s);
        let conns = s.connected.load(Relaxed);
        let failed = s.failed.load(Relaxed);
        let dropped = s.dropped.load(Relaxed);
        let connect = s
            .connect
            .lock()
            .map(|h| h.summary())
            .unwrap_or_else(|_| "-".into());
        match self.mode {
            "conn" => format!(
                "[conn] summary: {secs:.2}s clients={} connected={conns} failed={failed} dropped={dropped} rate={:.0}/s connect-latency {connect}",
                self.clients,
                conns as f64 / secs
            ),
            "sub" => format!(
                "[sub] summary: {secs:.2}s clients={} connected={conns} failed={failed} dropped={dropped} recv={count} rate={:.0}/s latency {}",
                self.clients,
                count as f64 / secs,
                self.total.summary()
            ),
            _ => format!(
                "[pub] summary: {secs:.2}s clients={} connected={conns} failed={failed} dropped={dropped} sent={count} rate={:.0}/s acked={} rejected={} ack-latency {}",
                self.clients,
                count as f64 / secs,
                s.acked.load(Relaxed),
                s.rejected.load(Relaxed),
                self.total.summary()
            ),
        }
    }
}
