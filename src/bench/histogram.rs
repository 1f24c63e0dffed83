//! A fixed-size log-linear latency histogram (HdrHistogram's layout, 64 sub-buckets per power of
//! two): values in microseconds, exact below 128 µs, within 1/64 (1.6 %) above, up to 2^40 µs.
//! 2,240 counters, no allocation per sample, mergeable across tasks.

const SUB: u64 = 64;
const BUCKETS: usize = 2240;
const MAX: u64 = (1 << 40) - 1;

/// Latency samples in microseconds.
#[derive(Clone)]
pub struct Histogram {
    counts: Box<[u64; BUCKETS]>,
    total: u64,
    max: u64,
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Histogram({} samples)", self.total)
    }
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: Box::new([0; BUCKETS]),
            total: 0,
            max: 0,
        }
    }
}

fn index(v: u64) -> usize {
    let v = v.min(MAX);
    if v < 2 * SUB {
        return v as usize;
    }
    let msb = 63 - u64::from(v.leading_zeros());
    let shift = msb - 6;
    ((shift + 1) * SUB + ((v >> shift) & (SUB - 1))) as usize
}

/// Highest value that lands in bucket `i`.
fn upper(i: usize) -> u64 {
    let i = i as u64;
    if i < 2 * SUB {
        return i;
    }
    let shift = i / SUB - 1;
    let lower = (SUB + i % SUB) << shift;
    lower + (1 << shift) - 1
}

impl Histogram {
    /// An empty histogram.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one sample.
    pub fn record(&mut self, micros: u64) {
        self.counts[index(micros)] += 1;
        self.total += 1;
        self.max = self.max.max(micros);
    }

    /// Adds every sample of `other`.
    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a += b;
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
    }

    /// Samples recorded.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// Largest sample.
    pub fn max(&self) -> u64 {
        self.max
    }

    /// The value at quantile `q` (0.0..=1.0), as its bucket's upper bound; 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return upper(i).min(self.max);
            }
        }
        self.max
    }

    /// Forgets every sample.
    pub fn clear(&mut self) {
        self.counts.fill(0);
        self.total = 0;
        self.max = 0;
    }

    /// `p50=1.2ms p90=... p99=... max=...`, or `-` when empty.
    pub fn summary(&self) -> String {
        if self.total == 0 {
            return "-".to_owned();
        }
        format!(
            "p50={} p90={} p99={} max={}",
            fmt_us(self.quantile(0.50)),
            fmt_us(self.quantile(0.90)),
            fmt_us(self.quantile(0.99)),
            fmt_us(self.max)
        )
    }
}

/// Microseconds as `850us`, `1.25ms` or `2.10s`.
pub fn fmt_us(us: u64) -> String {
    if us < 1000 {
        format!("{us}us")
    } else if us < 1_000_000 {
        format!("{:.2}ms", us as f64 / 1e3)
    } else {
        format!("{:.2}s", us as f64 / 1e6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_tight() {
        let mut last = 0;
        for v in [0u64, 1, 127, 128, 129, 255, 256, 1000, 65_535, 1 << 30, MAX] {
            let i = index(v);
            assert!(i >= last && i < BUCKETS, "{v} -> {i}");
            last = i;
            assert!(upper(i) >= v, "upper({i}) = {} < {v}", upper(i));
            assert!((upper(i) - v) as f64 <= v as f64 / 64.0 + 1.0, "{v}");
        }
        assert_eq!(index(MAX), BUCKETS - 1);
    }

    #[test]
    fn quantiles() {
        let mut h = Histogram::new();
        assert_eq!(h.quantile(0.5), 0);
        for v in 1..=1000 {
            h.record(v);
        }
        let p50 = h.quantile(0.5);
        let p99 = h.quantile(0.99);
        assert!((495..=510).contains(&p50), "{p50}");
        assert!((985..=1000).contains(&p99), "{p99}");
        assert_eq!(h.quantile(1.0), 1000);
        let mut g = Histogram::new();
        g.record(5_000_000);
        h.merge(&g);
        assert_eq!(h.count(), 1001);
        assert_eq!(h.max(), 5_000_000);
        assert!(h.summary().contains("max=5.00s"));
        h.clear();
        assert_eq!(h.count(), 0);
    }
}
