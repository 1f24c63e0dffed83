//! Collects every round's figures and renders the BENCHMARKS.md tables: medians per broker and
//! generator, the ratio of medians, and the median of the per-round ratios (beamq's figure over
//! a peer's of the same round, which shared the machine's load).

use std::fmt::Write as _;

use crate::case::Outcome;
use crate::peers::Kind;

struct Row {
    case: &'static str,
    latency: bool,
    gen: &'static str,
    kind: Kind,
    round: usize,
    out: Outcome,
}

/// Every figure of a run.
#[derive(Default)]
pub struct Table {
    rows: Vec<Row>,
    idle: Vec<(usize, Kind, u64, u64)>,
    machine: Vec<String>,
}

/// 1- and 5-minute load averages.
pub fn load_average() -> (f64, f64) {
    let s = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut it = s.split_whitespace().map(|x| x.parse().unwrap_or(0.0));
    (it.next().unwrap_or(0.0), it.next().unwrap_or(0.0))
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

fn fmt_rate(v: Option<f64>) -> String {
    match v {
        Some(v) if v >= 1e6 => format!("{:.2} M", v / 1e6),
        Some(v) if v >= 1e3 => format!("{:.1} k", v / 1e3),
        Some(v) => format!("{v:.0}"),
        None => "-".into(),
    }
}

fn fmt_us(v: Option<f64>) -> String {
    match v {
        Some(v) if v >= 1e3 => format!("{:.2} ms", v / 1e3),
        Some(v) => format!("{v:.0} µs"),
        None => "-".into(),
    }
}

fn fmt_ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}×", a / b),
        _ => "-".into(),
    }
}

impl Table {
    /// Records the machine: `nproc`, CPU model, load average now.
    pub fn note_machine(&mut self) {
        if self.machine.is_empty() {
            let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
            let model = std::fs::read_to_string("/proc/cpuinfo")
                .unwrap_or_default()
                .lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
                .unwrap_or_default();
            self.machine.push(format!("nproc {cpus}, CPU \"{model}\""));
        }
        let (l1, l5) = load_average();
        self.machine
            .push(format!("load average {l1:.1} (1 min) / {l5:.1} (5 min)"));
    }

    pub fn add(
        &mut self,
        case: &'static str,
        latency: bool,
        gen: &'static str,
        kind: Kind,
        round: usize,
        out: Outcome,
    ) {
        self.rows.push(Row {
            case,
            latency,
            gen,
            kind,
            round,
            out,
        });
    }

    pub fn add_idle(&mut self, n: usize, kind: Kind, before: u64, with: u64) {
        self.idle.push((n, kind, before, with));
    }

    fn values(
        &self,
        case: &str,
        gen: &str,
        kind: Kind,
        f: fn(&Outcome) -> Option<f64>,
    ) -> Vec<f64> {
        self.rows
            .iter()
            .filter(|r| r.case == case && r.gen == gen && r.kind == kind)
            .filter_map(|r| f(&r.out))
            .collect()
    }

    /// Median over rounds of beamq's value divided by `peer`'s value of the same round.
    fn round_ratio(
        &self,
        case: &str,
        gen: &str,
        peer: Kind,
        f: fn(&Outcome) -> Option<f64>,
    ) -> Option<f64> {
        let of = |kind: Kind, round: usize| {
            self.rows
                .iter()
                .find(|r| r.case == case && r.gen == gen && r.kind == kind && r.round == round)
                .and_then(|r| f(&r.out))
        };
        let rounds = self.rows.iter().map(|r| r.round).max().unwrap_or(0);
        median(
            (0..=rounds)
                .filter_map(|r| Some(of(Kind::Beamq, r)? / of(peer, r)?))
                .filter(|x| x.is_finite())
                .collect(),
        )
    }

    fn cases(&self, latency: bool) -> Vec<(&'static str, &'static str)> {
        let mut out: Vec<(&'static str, &'static str)> = Vec::new();
        for r in self.rows.iter().filter(|r| r.latency == latency) {
            if !out.contains(&(r.case, r.gen)) {
                out.push((r.case, r.gen));
            }
        }
        out
    }

    /// The markdown tables.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "\nMachine: {}\n", self.machine.join("; "));
        let rate = |o: &Outcome| Some(o.rate);
        let p50 = |o: &Outcome| o.p50_us;
        let p99 = |o: &Outcome| o.p99_us;
        let _ = writeln!(
            s,
            "| axis | generator | mosquitto | rumqttd | beamq | beamq / mosquitto | beamq / rumqttd |\n| --- | --- | ---: | ---: | ---: | ---: | ---: |"
        );
        for (case, gen) in self.cases(false) {
            let m = |k| median(self.values(case, gen, k, rate));
            let (mo, ru, be) = (m(Kind::Mosquitto), m(Kind::Rumqttd), m(Kind::Beamq));
            let rr = |k| fmt_ratio(self.round_ratio(case, gen, k, rate), Some(1.0));
            let _ = writeln!(
                s,
                "| {case} | {gen} | {} | {} | {} | {} ({}) | {} ({}) |",
                fmt_rate(mo),
                fmt_rate(ru),
                fmt_rate(be),
                fmt_ratio(be, mo),
                rr(Kind::Mosquitto),
                fmt_ratio(be, ru),
                rr(Kind::Rumqttd),
            );
        }
        let lat = self.cases(true);
        if !lat.is_empty() {
            let _ = writeln!(
                s,
                "\n| latency case | generator | rate (beamq) | p50 mosquitto / rumqttd / beamq | p99 mosquitto / rumqttd / beamq | p99 beamq / mosquitto | p99 beamq / rumqttd |\n| --- | --- | ---: | --- | --- | ---: | ---: |"
            );
            for (case, gen) in lat {
                let m = |k, f| median(self.values(case, gen, k, f));
                let trio = |f: fn(&Outcome) -> Option<f64>| {
                    format!(
                        "{} / {} / {}",
                        fmt_us(m(Kind::Mosquitto, f)),
                        fmt_us(m(Kind::Rumqttd, f)),
                        fmt_us(m(Kind::Beamq, f))
                    )
                };
                let _ = writeln!(
                    s,
                    "| {case} | {gen} | {}/s | {} | {} | {} | {} |",
                    fmt_rate(m(Kind::Beamq, rate)),
                    trio(p50),
                    trio(p99),
                    fmt_ratio(m(Kind::Beamq, p99), m(Kind::Mosquitto, p99)),
                    fmt_ratio(m(Kind::Beamq, p99), m(Kind::Rumqttd, p99)),
                );
            }
        }
        if !self.idle.is_empty() {
            let _ = writeln!(
                s,
                "\n| idle connections | broker | RSS before | RSS with them | bytes per connection |\n| ---: | --- | ---: | ---: | ---: |"
            );
            for &(n, kind, before, with) in &self.idle {
                let _ = writeln!(
                    s,
                    "| {n} | {} | {:.1} MiB | {:.1} MiB | {:.0} |",
                    kind.name(),
                    before as f64 / 1048576.0,
                    with as f64 / 1048576.0,
                    with.saturating_sub(before) as f64 / n as f64
                );
            }
        }
        s
    }
}
