//! MQTT brokers side by side (issue 5): Debian's mosquitto 2, rumqttd 0.20 and beamq, all
//! running at once on 127.0.0.1, driven by two generators (`beamq bench` as a child process,
//! and an independent rumqttc driver), in alternated rounds (round r starts at broker r mod 3),
//! medians per broker. Axes: QoS 0 / QoS 1 1→1 throughput with several pairs, 1→100 fan-out,
//! 100→1 fan-in, p50/p99 latency at a fixed rate, connections per second, and RSS per idle
//! connection. Run it with `bash scripts/bench-mqtt` (`--quick` for a smoke run).

mod beamq_gen;
mod case;
mod peers;
#[path = "../../tests/common/ports.rs"]
#[allow(dead_code)]
mod ports;
mod report;
mod rumqttc_gen;

use std::path::PathBuf;
use std::time::Duration;

use case::{cases, Outcome};
use peers::{Binaries, Broker, Kind};
use report::{load_average, Table};

const KINDS: [Kind; 3] = [Kind::Mosquitto, Kind::Rumqttd, Kind::Beamq];
const GENERATORS: [&str; 2] = ["beamq-bench", "rumqttc"];

struct Opts {
    quick: bool,
    rounds: usize,
    seconds: u64,
    axes: Vec<String>,
    idle: Vec<usize>,
    connect_n: usize,
    /// Only cases whose name contains one of these.
    cases: Vec<String>,
    /// Only these brokers (idle axis).
    brokers: Vec<String>,
}

fn parse_opts() -> Result<Opts, String> {
    let mut o = Opts {
        quick: false,
        rounds: 5,
        seconds: 5,
        axes: vec!["messages".into(), "connect".into(), "idle".into()],
        idle: vec![10_000],
        connect_n: 5_000,
        cases: Vec::new(),
        brokers: Vec::new(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--quick" => {
                o.quick = true;
                o.rounds = 1;
                o.seconds = 2;
                o.idle = vec![2_000];
                o.connect_n = 1_000;
            }
            "--rounds" => o.rounds = val()?.parse().map_err(|_| "bad --rounds")?,
            "--seconds" => o.seconds = val()?.parse().map_err(|_| "bad --seconds")?,
            "--axes" => o.axes = val()?.split(',').map(str::to_owned).collect(),
            "--idle" => {
                o.idle = val()?
                    .split(',')
                    .map(|n| n.parse().map_err(|_| "bad --idle"))
                    .collect::<Result<_, _>>()?
            }
            "--brokers" => o.brokers = val()?.split(',').map(str::to_owned).collect(),
            "--cases" => o.cases = val()?.split(',').map(str::to_owned).collect(),
            "--acceptors" => peers::set_acceptors(val()?.parse().map_err(|_| "bad --acceptors")?),
            "--window" => peers::set_window(match val()?.as_str() {
                "default" => None,
                n => Some(
                    n.parse()
                        .map_err(|_| "bad --window (a number or default)")?,
                ),
            }),
            "--connect" => o.connect_n = val()?.parse().map_err(|_| "bad --connect")?,
            // `cargo bench` passes `--bench`; criterion-style filters are not used.
            "--bench" => {}
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(o)
}

fn binaries() -> Result<Binaries, String> {
    // Cargo builds the `beamq` binary with the bench, in the same profile.
    let beamq = PathBuf::from(env!("CARGO_BIN_EXE_beamq"));
    Ok(Binaries {
        mosquitto: peers::find("MOSQUITTO", &["/usr/sbin/mosquitto"]).ok_or("no mosquitto")?,
        rumqttd: peers::find("RUMQTTD", &["/work/tools/rumqttd/bin/rumqttd"])
            .ok_or("no rumqttd: cargo install rumqttd --version 0.20.0 --root /work/tools/rumqttd, or RUMQTTD=path")?,
        beamq: peers::find("BEAMQ", &[beamq.to_str().unwrap_or_default()])
            .ok_or("no beamq binary")?,
    })
}

/// Broker order of round `r`: rotated so each broker goes first equally often.
fn order(r: usize) -> Vec<Kind> {
    (0..KINDS.len())
        .map(|k| KINDS[(k + r) % KINDS.len()])
        .collect()
}

/// A fresh broker for one run: nothing left over from an earlier run (rumqttd, for one,
/// stopped completing SUBSCRIBEs after a 1→100 or 100→1 flood when reused).
fn fresh(kind: Kind, bins: &Binaries) -> Option<Broker> {
    match Broker::start(kind, bins, 20_000) {
        Ok(b) => Some(b),
        Err(e) => {
            eprintln!("{}: {e}", kind.name());
            None
        }
    }
}

fn run_messages(o: &Opts, bins: &Binaries, rt: &tokio::runtime::Runtime, table: &mut Table) {
    let wanted =
        |name: &str| o.cases.is_empty() || o.cases.iter().any(|c| name.contains(c.as_str()));
    for case in cases(o.quick).into_iter().filter(|c| wanted(c.name)) {
        for r in 0..o.rounds {
            for kind in order(r) {
                for gen in GENERATORS {
                    let Some(b) = fresh(kind, bins) else {
                        continue;
                    };
                    let res = if gen == "rumqttc" {
                        rt.block_on(rumqttc_gen::run_messages(b.port, &case, o.seconds))
                    } else {
                        beamq_gen::run_messages(&bins.beamq, b.port, &case, o.seconds)
                    };
                    log_round(case.name, gen, kind, r, &res);
                    if let Ok(out) = res {
                        table.add(case.name, case.latency, gen, kind, r, out);
                    }
                    std::thread::sleep(Duration::from_millis(300));
                }
            }
        }
    }
}

fn log_round(case: &str, gen: &str, kind: Kind, r: usize, res: &Result<Outcome, String>) {
    let (l1, _) = load_average();
    match res {
        Ok(out) => eprintln!(
            "{case:<22} {gen:<12} {:<10} round {r}: {:>10.0}/s p50 {:?} p99 {:?} (load {l1:.1})",
            kind.name(),
            out.rate,
            out.p50_us.map(|v| v as u64),
            out.p99_us.map(|v| v as u64),
        ),
        Err(e) => eprintln!(
            "{case:<22} {gen:<12} {:<10} round {r}: FAILED {e}",
            kind.name()
        ),
    }
}

fn run_connect(o: &Opts, bins: &Binaries, rt: &tokio::runtime::Runtime, table: &mut Table) {
    let name = "connections/s";
    for r in 0..o.rounds.min(3) {
        for kind in order(r) {
            let Some(b) = fresh(kind, bins) else {
                continue;
            };
            for gen in GENERATORS {
                let res = if gen == "rumqttc" {
                    rt.block_on(rumqttc_gen::run_connect(b.port, o.connect_n))
                } else {
                    beamq_gen::run_connect(&bins.beamq, b.port, o.connect_n)
                };
                let res = res.map(|rate| Outcome {
                    rate,
                    ..Outcome::default()
                });
                log_round(name, gen, kind, r, &res);
                if let Ok(out) = res {
                    table.add(name, false, gen, kind, r, out);
                }
                std::thread::sleep(Duration::from_millis(500));
            }
        }
    }
}

/// RSS per idle connection: a fresh broker per size, RSS before and with N connections held
/// by `beamq bench conn` (sources spread over 127.0.1.0/24).
fn run_idle(o: &Opts, bins: &Binaries, table: &mut Table) {
    for &n in &o.idle {
        for kind in KINDS
            .into_iter()
            .filter(|k| o.brokers.is_empty() || o.brokers.iter().any(|b| b == k.name()))
        {
            let b = match Broker::start(kind, bins, n + 1000) {
                Ok(b) => b,
                Err(e) => {
                    eprintln!("idle {n} {}: {e}", kind.name());
                    continue;
                }
            };
            std::thread::sleep(Duration::from_millis(500));
            let base = b.rss();
            match beamq_gen::hold_idle(&bins.beamq, b.port, n, || b.rss()) {
                Ok(rss) => {
                    let per = rss.saturating_sub(base) as f64 / n as f64;
                    eprintln!(
                        "idle {n} {:<10}: RSS {:.1} MiB -> {:.1} MiB, {per:.0} B/connection (load {:.1})",
                        kind.name(),
                        base as f64 / 1048576.0,
                        rss as f64 / 1048576.0,
                        load_average().0
                    );
                    table.add_idle(n, kind, base, rss);
                }
                Err(e) => eprintln!("idle {n} {}: {e}", kind.name()),
            }
        }
    }
}

fn main() {
    let o = match parse_opts() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("mqtt_brokers: {e}");
            std::process::exit(2);
        }
    };
    let bins = match binaries() {
        Ok(b) => b,
        Err(e) => {
            eprintln!("mqtt_brokers: {e}");
            std::process::exit(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mqtt_brokers: {e}");
            std::process::exit(2);
        }
    };
    let mut table = Table::default();
    table.note_machine();
    let wants = |a: &str| o.axes.iter().any(|x| x == a);
    if wants("messages") {
        run_messages(&o, &bins, &rt, &mut table);
    }
    if wants("connect") {
        run_connect(&o, &bins, &rt, &mut table);
    }
    if wants("idle") {
        run_idle(&o, &bins, &mut table);
    }
    table.note_machine();
    print!("{}", table.render());
}
