//! `beamq bench pub|sub|conn`: an MQTT load generator in the spirit of emqtt-bench, on our
//! codec and tokio. Clients start every `-i` ms (or as fast as `--concurrency` allows), a
//! progress line is printed each second, a summary line at the end; latency percentiles come
//! from a log-linear histogram ([`histogram`]). Exit code 0 when every client connected and
//! finished and the requested counts were reached.

pub mod client;
mod conn;
pub mod histogram;
mod lifecycle;
pub mod opts;
mod publisher;
mod stats;
mod subscriber;

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Subcommand;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use client::ConnectSpec;
use opts::{client_id, parse_ifaddrs, CommonOpts, ConnOpts, PubOpts, SubOpts};
use stats::{Reporter, Shared};

/// `beamq bench` modes.
#[derive(Debug, Clone, Subcommand)]
pub enum BenchCommand {
    /// Publishers: `-c` clients each sending to `-t` (with `%i`) every `-I` ms.
    #[command(disable_help_flag = true)]
    Pub(PubOpts),
    /// Subscribers: `-c` clients subscribed to `-t`, counting and timing what arrives.
    #[command(disable_help_flag = true)]
    Sub(SubOpts),
    /// Connections: `-c` clients that connect and stay idle.
    #[command(disable_help_flag = true)]
    Conn(ConnOpts),
}

impl BenchCommand {
    fn common(&self) -> &CommonOpts {
        match self {
            BenchCommand::Pub(o) => &o.common,
            BenchCommand::Sub(o) => &o.common,
            BenchCommand::Conn(o) => &o.common,
        }
    }

    fn mode(&self) -> &'static str {
        match self {
            BenchCommand::Pub(_) => "pub",
            BenchCommand::Sub(_) => "sub",
            BenchCommand::Conn(_) => "conn",
        }
    }
}

/// Runs the bench on a fresh multi-threaded runtime; returns the exit code.
pub fn main(cmd: BenchCommand) -> i32 {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("beamq bench: {e}");
            return 1;
        }
    };
    rt.block_on(run(cmd))
}

async fn resolve(host: &str, port: u16) -> Result<SocketAddr, String> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| format!("{host}: {e}"))?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| format!("{host}: no address"))
}

/// Runs a bench to its end; returns the exit code.
pub async fn run(cmd: BenchCommand) -> i32 {
    let common = cmd.common().clone();
    let mode = cmd.mode();
    let broker = match resolve(&common.host, common.port).await {
        Ok(a) => a,
        Err(e) => {
            eprintln!("beamq bench: {e}");
            return 1;
        }
    };
    let sources = match common.ifaddr.as_deref().map(parse_ifaddrs).transpose() {
        Ok(s) => s.unwrap_or_default(),
        Err(e) => {
            eprintln!("beamq bench: --ifaddr: {e}");
            return 1;
        }
    };
    let clients = common.clients;
    let shared = Arc::new(Shared::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let launcher = tokio::spawn(launch(
        cmd.clone(),
        broker,
        sources,
        shared.clone(),
        stop_rx.clone(),
    ));
    let mut report = Reporter::new(mode, clients as u64);
    let started = Instant::now();
    let deadline = (common.duration > 0).then(|| started + Duration::from_secs(common.duration));
    let mut next_progress = started + Duration::from_secs(1);
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        tokio::select! {
            _ = &mut ctrl_c => break,
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
        let now = Instant::now();
        if now >= next_progress {
            println!("{}", report.progress(&shared));
            next_progress += Duration::from_secs(1);
        }
        if deadline.is_some_and(|d| now >= d)
            || done(&cmd, &shared, clients as u64, deadline.is_some())
        {
            break;
        }
    }
    let _ = stop_tx.send(true);
    if tokio::time::timeout(Duration::from_secs(10), launcher)
        .await
        .is_err()
    {
        eprintln!("beamq bench: some clients did not stop in 10 s");
    }
    println!("{}", report.summary(&shared));
    exit_code(&cmd, &shared, clients as u64)
}

/// Whether the work is complete (before any `--duration`).
fn done(cmd: &BenchCommand, s: &Shared, clients: u64, timed: bool) -> bool {
    if s.gone() >= clients {
        return true;
    }
    match cmd {
        BenchCommand::Sub(o) => o.count > 0 && s.received.load(Relaxed) >= o.count,
        BenchCommand::Conn(_) => {
            !timed && s.connected.load(Relaxed) + s.failed.load(Relaxed) >= clients
        }
        BenchCommand::Pub(_) => false,
    }
}

fn exit_code(cmd: &BenchCommand, s: &Shared, clients: u64) -> i32 {
    let healthy = s.failed.load(Relaxed) == 0
        && s.dropped.load(Relaxed) == 0
        && s.rejected.load(Relaxed) == 0;
    let counted = match cmd {
        BenchCommand::Sub(o) => o.count == 0 || s.received.load(Relaxed) >= o.count,
        BenchCommand::Pub(o) => o.count == 0 || s.sent.load(Relaxed) >= o.count * clients,
        BenchCommand::Conn(_) => s.connected.load(Relaxed) == clients,
    };
    i32::from(!(healthy && counted))
}

/// Starts the clients, paced by `-i` or bounded by `--concurrency`, and waits for them all.
async fn launch(
    cmd: BenchCommand,
    broker: SocketAddr,
    sources: Vec<std::net::IpAddr>,
    shared: Arc<Shared>,
    stop: watch::Receiver<bool>,
) {
    let common = cmd.common().clone();
    let mode = cmd.mode();
    let interval = common.connect_interval();
    let gate = Arc::new(Semaphore::new(common.concurrency.max(1)));
    let mut tasks = JoinSet::new();
    let (pub_opts, sub_opts) = match &cmd {
        BenchCommand::Pub(o) => (Some(Arc::new(o.clone())), None),
        BenchCommand::Sub(o) => (None, Some(Arc::new(o.clone()))),
        BenchCommand::Conn(_) => (None, None),
    };
    let mut pacer = tokio::time::interval(interval.max(Duration::from_micros(1)));
    for k in 0..common.clients {
        if *stop.borrow() {
            break;
        }
        let permit = if interval.is_zero() {
            let mut stop = stop.clone();
            tokio::select! {
                p = gate.clone().acquire_owned() => p.ok(),
                _ = stop.changed() => break,
            }
        } else {
            let mut stop = stop.clone();
            tokio::select! {
                _ = pacer.tick() => None,
                _ = stop.changed() => break,
            }
        };
        let index = common.start_number + k;
        let spec = ConnectSpec {
            broker,
            source: (!sources.is_empty()).then(|| sources[k % sources.len()]),
            version: common.protocol(),
            client_id: client_id(&common.prefix, mode, index),
            keepalive: common.keepalive,
            clean: common.clean,
            username: common.username.clone(),
            password: common.password.clone(),
        };
        let (shared, stop) = (shared.clone(), stop.clone());
        match (&pub_opts, &sub_opts) {
            (Some(o), _) => {
                tasks.spawn(publisher::run(index, spec, o.clone(), shared, permit, stop))
            }
            (_, Some(o)) => tasks.spawn(subscriber::run(
                index,
                spec,
                o.clone(),
                shared,
                permit,
                stop,
            )),
            _ => tasks.spawn(conn::run(spec, shared, permit, stop)),
        };
    }
    while tasks.join_next().await.is_some() {}
}
