//! PORT_PLEASE2 lookups/s and NAMES/s: `beamq epmd` against OTP's C epmd (`/usr/bin/epmd`),
//! side by side in one run, each on its own loopback port, with the same registered nodes.
//!
//! `cargo bench --bench epmd_lookup -- [--threads N] [--seconds S] [--rounds R] [--nodes K]`
//!
//! Each request is what erl does: connect, send, read until epmd closes. Rounds alternate which
//! daemon goes first; the table reports the median round of each, and the median of the per-round
//! ratios beamq / C (adjacent slices share the machine's load, so that ratio is the steadier one
//! on a shared machine).
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Daemon {
    child: Child,
    port: u16,
    label: &'static str,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(45_000)
}

fn start(program: &Path, prefix: &[&str], label: &'static str) -> Daemon {
    let port = free_port();
    let child = Command::new(program)
        .args(prefix)
        .args(["-port", &port.to_string(), "-address", "127.0.0.1"])
        .env_remove("ERL_EPMD_PORT")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("start {}: {e}", program.display()));
    let daemon = Daemon { child, port, label };
    let begun = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            begun.elapsed() < Duration::from_secs(5),
            "{label} does not listen"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    daemon
}

fn framed(body: &[u8]) -> Vec<u8> {
    let mut v = (body.len() as u16).to_be_bytes().to_vec();
    v.extend_from_slice(body);
    v
}

fn register(port: u16, name: &str, dist_port: u16) -> TcpStream {
    let mut b = vec![b'x'];
    b.extend_from_slice(&dist_port.to_be_bytes());
    b.extend_from_slice(&[77, 0, 0, 6, 0, 6]);
    b.extend_from_slice(&(name.len() as u16).to_be_bytes());
    b.extend_from_slice(name.as_bytes());
    b.extend_from_slice(&[0, 0]);
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.write_all(&framed(&b)).expect("ALIVE2_REQ");
    let mut resp = [0u8; 6];
    s.read_exact(&mut resp).expect("ALIVE2_X_RESP");
    assert_eq!(&resp[..2], &[b'v', 0], "registration refused");
    s
}

/// One request the way erl_epmd makes it; returns the answer's length.
fn one_request(port: u16, request: &[u8], buf: &mut [u8]) -> usize {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return 0;
    };
    let _ = s.set_nodelay(true);
    if s.write_all(request).is_err() {
        return 0;
    }
    let mut got = 0;
    loop {
        match s.read(&mut buf[got..]) {
            Ok(0) | Err(_) => return got,
            Ok(n) => got += n,
        }
    }
}

/// Requests per second over `seconds` with `threads` clients; every answer is checked.
fn measure(port: u16, request: &[u8], expect_len: usize, threads: usize, seconds: f64) -> f64 {
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let bad = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let (stop, done, bad, request) =
                (stop.clone(), done.clone(), bad.clone(), request.to_vec());
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 64 * 1024];
                while !stop.load(Ordering::Relaxed) {
                    if one_request(port, &request, &mut buf) == expect_len {
                        done.fetch_add(1, Ordering::Relaxed);
                    } else {
                        bad.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    let begun = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(seconds));
    stop.store(true, Ordering::Relaxed);
    let elapsed = begun.elapsed().as_secs_f64();
    for w in workers {
        let _ = w.join();
    }
    let bad = bad.load(Ordering::Relaxed);
    assert!(bad == 0, "{bad} wrong or failed answers");
    done.load(Ordering::Relaxed) as f64 / elapsed
}

/// CPU time (ns) all threads of `pid` have run, from `/proc/<pid>/task/*/schedstat`: the server's
/// cost per request independent of how busy the shared machine is.
fn cpu_ns(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| {
            s.split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
        })
        .sum()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn arg(args: &[String], flag: &str, default: f64) -> f64 {
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        return;
    }
    let threads = arg(&args, "--threads", 4.0) as usize;
    let seconds = arg(&args, "--seconds", 1.0);
    let rounds = arg(&args, "--rounds", 9.0) as usize;
    let nodes = arg(&args, "--nodes", 10.0) as usize;
    let c_epmd = Path::new("/usr/bin/epmd");
    if !c_epmd.exists() {
        eprintln!("SKIP: /usr/bin/epmd (OTP's C epmd) is not installed");
        return;
    }
    let daemons = [
        start(c_epmd, &[], "C epmd"),
        start(
            Path::new(env!("CARGO_BIN_EXE_beamq")),
            &["epmd"],
            "beamq epmd",
        ),
    ];
    let mut held = Vec::new();
    for d in &daemons {
        for i in 0..nodes {
            held.push(register(d.port, &format!("bench{i}"), 20_000 + i as u16));
        }
    }
    let target = format!("bench{}", nodes / 2);
    let mut port_please = vec![b'z'];
    port_please.extend_from_slice(target.as_bytes());
    // PORT2_RESP: 12 fixed bytes + name + 2-byte extra length (extra is empty).
    let port2_len = 14 + target.len();
    let names_len = 4
        + (0..nodes)
            .map(|i| format!("name bench{i} at port {}\n", 20_000 + i).len())
            .sum::<usize>();
    let ops: [(&str, Vec<u8>, usize); 2] = [
        ("PORT_PLEASE2", framed(&port_please), port2_len),
        ("NAMES", framed(b"n"), names_len),
    ];

    println!(
        "epmd_lookup: {threads} client threads, {rounds} alternated rounds of {seconds} s, {nodes} nodes registered"
    );
    println!("| request | C epmd (req/s, median) | beamq epmd (req/s, median) | ratio of medians | median of round ratios | server CPU per request, C / beamq |");
    println!("| --- | --- | --- | --- | --- | --- |");
    for (name, request, expect_len) in &ops {
        let mut results: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
        let mut cpu_per_req: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
        for round in 0..rounds {
            let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
            for i in order {
                let cpu_before = cpu_ns(daemons[i].child.id());
                let rate = measure(daemons[i].port, request, *expect_len, threads, seconds);
                let cpu = (cpu_ns(daemons[i].child.id()) - cpu_before) as f64;
                let per_req_us = cpu / 1000.0 / (rate * seconds).max(1.0);
                eprintln!(
                    "  {name} round {round} {}: {rate:.0}/s, {per_req_us:.1} us CPU/request",
                    daemons[i].label
                );
                results[i].push(rate);
                cpu_per_req[i].push(per_req_us);
            }
        }
        let (c, ours) = (median(results[0].clone()), median(results[1].clone()));
        let ratios = results[1]
            .iter()
            .zip(&results[0])
            .map(|(o, c)| o / c)
            .collect();
        println!(
            "| {name} | {c:.0} | {ours:.0} | {:.2}x | {:.2}x |",
            ours / c,
            median(ratios)
        );
    }
    drop(held);
}
