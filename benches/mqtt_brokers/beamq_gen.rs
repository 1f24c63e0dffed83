//! Generator 1: `beamq bench pub|sub|conn`, run as a user would run it (a child process per
//! side), its progress lines read as they come. A rate is the difference of two progress lines'
//! `recv=` totals over the time between them, inside the measurement window, so connect and
//! subscribe phases never count.

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::case::{Case, Outcome};

/// A running `beamq bench` child; killed on drop.
struct Gen {
    child: Child,
    lines: mpsc::Receiver<(Instant, String)>,
}

impl Drop for Gen {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Gen {
    fn spawn(beamq: &Path, args: &[String]) -> Result<Gen, String> {
        let mut child = Command::new(beamq)
            .arg("bench")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("beamq bench: {e}"))?;
        let out = child.stdout.take().ok_or("no stdout")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send((Instant::now(), line)).is_err() {
                    break;
                }
            }
        });
        Ok(Gen { child, lines: rx })
    }

    /// Waits for a line containing `needle`; returns it.
    fn wait_for(&self, until: Instant, pred: impl Fn(&str) -> bool) -> Option<(Instant, String)> {
        loop {
            let left = until.checked_duration_since(Instant::now())?;
            match self.lines.recv_timeout(left) {
                Ok((t, l)) if pred(&l) => return Some((t, l)),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    }

    /// Waits for the child to exit and returns its last summary line.
    fn summary(&mut self, until: Instant) -> Option<String> {
        self.wait_for(until, |l| l.contains("summary:"))
            .map(|(_, l)| l)
    }
}

/// The number after `key=` in `line`.
pub fn field(line: &str, key: &str) -> Option<u64> {
    let at = line.find(&format!(" {key}="))? + key.len() + 2;
    let digits: String = line[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// A duration such as `850us`, `1.25ms`, `2.10s` after `key=`, in microseconds.
pub fn duration_field(line: &str, key: &str) -> Option<f64> {
    let at = line.find(&format!("{key}="))? + key.len() + 1;
    let word = line[at..].split_whitespace().next()?;
    let (num, scale) = if let Some(n) = word.strip_suffix("us") {
        (n, 1.0)
    } else if let Some(n) = word.strip_suffix("ms") {
        (n, 1e3)
    } else if let Some(n) = word.strip_suffix('s') {
        (n, 1e6)
    } else {
        return None;
    };
    num.parse::<f64>().ok().map(|v| v * scale)
}

fn common(mode: &str, port: u16, clients: usize, prefix: &str) -> Vec<String> {
    vec![
        mode.into(),
        "-h".into(),
        "127.0.0.1".into(),
        "-p".into(),
        port.to_string(),
        "-c".into(),
        clients.to_string(),
        "-i".into(),
        "0".into(),
        "--prefix".into(),
        prefix.into(),
    ]
}

/// Runs a message case: subscribers first (until all are subscribed), then publishers for
/// `warmup + seconds`; the rate is measured by the subscriber side over the last `seconds`.
pub fn run_messages(beamq: &Path, port: u16, case: &Case, seconds: u64) -> Result<Outcome, String> {
    let total = seconds + 2;
    let mut sub_args = common("sub", port, case.subs, "bs");
    sub_args.extend([
        "-t".into(),
        case.sub_topic.into(),
        "-q".into(),
        case.qos.to_string(),
        "--duration".into(),
        (total + 4).to_string(),
    ]);
    let mut sub = Gen::spawn(beamq, &sub_args)?;
    let subs = case.subs as u64;
    sub.wait_for(Instant::now() + Duration::from_secs(20), |l| {
        field(l, "subscribed") == Some(subs)
    })
    .ok_or("subscribers did not all subscribe")?;
    let mut pub_args = common("pub", port, case.pubs, "bp");
    pub_args.extend([
        "-t".into(),
        case.pub_topic.into(),
        "-q".into(),
        case.qos.to_string(),
        "-s".into(),
        case.size.to_string(),
        "-I".into(),
        case.interval_ms.to_string(),
        "-F".into(),
        "100".into(),
        "--duration".into(),
        total.to_string(),
    ]);
    let mut publ = Gen::spawn(beamq, &pub_args)?;
    let start = Instant::now();
    let from = start + Duration::from_secs(1) + Duration::from_millis(500);
    let to = from + Duration::from_secs(seconds);
    let mut first: Option<(Instant, u64)> = None;
    let mut last: Option<(Instant, u64)> = None;
    while let Some((t, l)) = sub.wait_for(to + Duration::from_secs(2), |l| l.contains(" recv=")) {
        if l.contains("summary:") {
            break;
        }
        let Some(n) = field(&l, "recv") else { continue };
        if t >= from && first.is_none() {
            first = Some((t, n));
        } else if t >= from && t <= to + Duration::from_millis(600) {
            last = Some((t, n));
        }
        if t > to {
            break;
        }
    }
    let _ = publ.summary(Instant::now() + Duration::from_secs(total + 15));
    let summary = sub.summary(Instant::now() + Duration::from_secs(20));
    let (Some((t0, n0)), Some((t1, n1))) = (first, last) else {
        return Err("no progress lines in the window".into());
    };
    let rate = (n1 - n0) as f64 / t1.duration_since(t0).as_secs_f64().max(1e-3);
    let summary = summary.unwrap_or_default();
    Ok(Outcome {
        rate,
        p50_us: duration_field(&summary, "p50"),
        p99_us: duration_field(&summary, "p99"),
    })
}

/// Opens `n` connections as fast as 64 at a time allow; connections per second.
pub fn run_connect(beamq: &Path, port: u16, n: usize) -> Result<f64, String> {
    let mut args = common("conn", port, n, "bc");
    args.extend(["--concurrency".into(), "64".into()]);
    let mut g = Gen::spawn(beamq, &args)?;
    let s = g
        .summary(Instant::now() + Duration::from_secs(120))
        .ok_or("conn: no summary")?;
    if field(&s, "connected") != Some(n as u64) {
        return Err(format!("conn: {s}"));
    }
    field(&s, "rate")
        .map(|r| r as f64)
        .ok_or_else(|| format!("conn: {s}"))
}

/// Holds `n` idle connections from source addresses 127.0.1.0/24, runs `measure` once all are
/// up, then closes them.
pub fn hold_idle<T>(
    beamq: &Path,
    port: u16,
    n: usize,
    measure: impl FnOnce() -> T,
) -> Result<T, String> {
    // One generator holds at most this many: each process has its own RLIMIT_NOFILE (20,000
    // in an unprivileged container), so 100 k connections take several.
    const PER_GENERATOR: usize = 15_000;
    let mut gens = Vec::new();
    let mut left = n;
    while left > 0 {
        let i = gens.len();
        let take = left.min(PER_GENERATOR);
        left -= take;
        let mut args = common("conn", port, take, &format!("bi{i}-"));
        args.extend([
            "--concurrency".into(),
            "64".into(),
            "--ifaddr".into(),
            format!("127.0.{}.0/24", 1 + i % 250),
            "--duration".into(),
            "600".into(),
        ]);
        gens.push((Gen::spawn(beamq, &args)?, take as u64));
    }
    let until = Instant::now() + Duration::from_secs(300);
    for (g, want) in &gens {
        g.wait_for(until, |l| {
            l.split_once("conns=")
                .and_then(|(_, r)| r.split('/').next()?.parse::<u64>().ok())
                == Some(*want)
        })
        .ok_or_else(|| format!("idle: {n} connections did not come up"))?;
    }
    std::thread::sleep(Duration::from_secs(2));
    Ok(measure())
}
