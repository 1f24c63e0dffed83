//! `beamq bench` against a real broker (Debian's mosquitto on a free loopback port): publishers
//! and subscribers at QoS 0/1/2 over MQTT 3.1.1 and 5 deliver exactly the counts asked for,
//! progress and summary lines are printed, `conn` spreads source addresses, and refused
//! connections make the run fail.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

fn beamq() -> Command {
    Command::new(env!("CARGO_BIN_EXE_beamq"))
}

/// Kills a bench process left running by a failed assertion.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn field(line: &str, key: &str) -> Option<u64> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
        .and_then(|v| v.split('/').next()?.parse().ok())
}

fn run_pair(port: u16, version: &str, qos: &str, pairs: usize, per_client: u64) {
    let total = pairs as u64 * per_client;
    let common = |c: &mut Command| {
        c.args(["-h", "127.0.0.1", "-p", &port.to_string()]).args([
            "-c",
            &pairs.to_string(),
            "-i",
            "0",
            "-V",
            version,
            "-q",
            qos,
        ]);
    };
    let mut sub = beamq();
    sub.args([
        "bench",
        "sub",
        "-t",
        "bench/%i",
        "--count",
        &total.to_string(),
    ])
    .args(["--duration", "30"]);
    common(&mut sub);
    let mut sub = Guard(sub.stdout(Stdio::piped()).spawn().expect("spawn sub"));
    let stdout = sub.0.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // Wait for a progress line saying every subscription was granted.
    let mut lines = Vec::new();
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("sub progress line");
        lines.push(line.clone());
        if line.starts_with("[sub] ") && field(&line, "subscribed") == Some(pairs as u64) {
            break;
        }
    }
    let mut publ = beamq();
    publ.args(["bench", "pub", "-t", "bench/%i", "-I", "0", "-s", "100"])
        .args(["--count", &per_client.to_string()]);
    common(&mut publ);
    let out: Output = publ.output().expect("run pub");
    let pub_text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "pub failed:\n{pub_text}");
    let summary = pub_text
        .lines()
        .find(|l| l.starts_with("[pub] summary:"))
        .expect("pub summary");
    assert_eq!(field(summary, "sent"), Some(total), "{summary}");
    if qos != "0" {
        assert_eq!(field(summary, "acked"), Some(total), "{summary}");
        assert!(summary.contains("p99="), "{summary}");
    }
    let status = sub.0.wait().expect("wait sub");
    lines.extend(rx.iter());
    let text = lines.join("\n");
    assert!(status.success(), "sub failed:\n{text}");
    let summary = lines
        .iter()
        .find(|l| l.starts_with("[sub] summary:"))
        .expect("sub summary");
    assert_eq!(field(summary, "recv"), Some(total), "{summary}");
    assert!(summary.contains("latency p50="), "{summary}");
}

#[test]
fn pub_sub_qos1_v311() {
    let m = common::mosquitto::start("allow_anonymous true", &[]);
    run_pair(m.addr.port(), "4", "1", 2, 500);
}

#[test]
fn pub_sub_qos2_and_qos0_v5() {
    let m = common::mosquitto::start("allow_anonymous true", &[]);
    run_pair(m.addr.port(), "5", "2", 1, 300);
    run_pair(m.addr.port(), "5", "0", 2, 200);
}

#[test]
fn conn_over_two_source_addresses_with_progress() {
    let m = common::mosquitto::start("allow_anonymous true", &[]);
    let out = beamq()
        .args([
            "bench",
            "conn",
            "-h",
            "127.0.0.1",
            "-p",
            &m.addr.port().to_string(),
        ])
        .args(["-c", "40", "-i", "0", "--ifaddr", "127.0.0.1,127.0.0.2"])
        .args(["--duration", "1"])
        .output()
        .expect("run conn");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.lines().any(|l| l.starts_with("[conn] 1s conns=")),
        "no progress line:\n{text}"
    );
    let summary = text
        .lines()
        .find(|l| l.starts_with("[conn] summary:"))
        .expect("summary");
    assert_eq!(field(summary, "connected"), Some(40), "{summary}");
    assert_eq!(field(summary, "failed"), Some(0), "{summary}");
}

#[test]
fn refused_connections_fail_the_run() {
    let m = common::mosquitto::start("allow_anonymous false", &[]);
    let out = beamq()
        .args([
            "bench",
            "conn",
            "-h",
            "127.0.0.1",
            "-p",
            &m.addr.port().to_string(),
        ])
        .args(["-c", "3", "-i", "0"])
        .output()
        .expect("run conn");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    let summary = text
        .lines()
        .find(|l| l.starts_with("[conn] summary:"))
        .expect("summary");
    assert_eq!(field(summary, "failed"), Some(3), "{summary}");
}
