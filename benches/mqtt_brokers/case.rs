//! The measured message cases (the axes of issue 5) and what one run of a case yields.

/// One message workload: `pubs` publishers on `pub_topic` (`%i` = client index), `subs`
/// subscribers on `sub_topic`, QoS, payload size, and the pause between one publisher's
/// messages (0 = as fast as it can).
#[derive(Debug, Clone)]
pub struct Case {
    pub name: &'static str,
    pub pubs: usize,
    pub subs: usize,
    pub pub_topic: &'static str,
    pub sub_topic: &'static str,
    pub qos: u8,
    pub size: usize,
    pub interval_ms: u64,
    /// Whether the figure of merit is latency (a fixed-rate case), not throughput.
    pub latency: bool,
}

/// What one run measured: deliveries per second at the subscribers, and latency percentiles
/// (send to receive, microseconds) when the generator reports them.
#[derive(Debug, Clone, Copy, Default)]
pub struct Outcome {
    pub rate: f64,
    pub p50_us: Option<f64>,
    pub p99_us: Option<f64>,
}

/// The cases, full size or `--quick`.
pub fn cases(quick: bool) -> Vec<Case> {
    let pairs = if quick { 2 } else { 4 };
    let fan = if quick { 20 } else { 100 };
    vec![
        Case {
            name: "qos0-1to1",
            pubs: pairs,
            subs: pairs,
            pub_topic: "b/p/%i",
            sub_topic: "b/p/%i",
            qos: 0,
            size: 64,
            interval_ms: 0,
            latency: false,
        },
        Case {
            name: "qos1-1to1",
            pubs: pairs,
            subs: pairs,
            pub_topic: "b/p/%i",
            sub_topic: "b/p/%i",
            qos: 1,
            size: 64,
            interval_ms: 0,
            latency: false,
        },
        Case {
            name: "fanout-1to100",
            pubs: 1,
            subs: fan,
            pub_topic: "b/fan",
            sub_topic: "b/fan",
            qos: 0,
            size: 64,
            interval_ms: 0,
            latency: false,
        },
        Case {
            name: "fanin-100to1",
            pubs: fan,
            subs: 1,
            pub_topic: "b/in/%i",
            sub_topic: "b/in/+",
            qos: 0,
            size: 64,
            interval_ms: 0,
            latency: false,
        },
        Case {
            name: "latency-qos1-10x500/s",
            pubs: 10,
            subs: 10,
            pub_topic: "b/l/%i",
            sub_topic: "b/l/%i",
            qos: 1,
            size: 64,
            interval_ms: 2,
            latency: true,
        },
    ]
}
