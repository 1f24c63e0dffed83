//! Route sync benchmark, the beamq side (driven by `scripts/bench-cluster pg-sync`; the BEAM side
//! is `benches/pg_sync.erl`). Two roles, each a beamq node in ekka mode (127.0.0.1):
//!
//! - `holder NAME N`: the node's cluster router adds N local routes `bench/I/#` (what N
//!   first subscribers do: `beamq_broker` joins N `beamq_route` groups); prints
//!   `ready join_s=S rss_kb=K` once pg holds them all and waits until stdin closes.
//! - `joiner NAME PEER N`: a node with its cluster router running connects to PEER and waits
//!   until its pg table holds N groups (what pg's `discover` + `sync` carry over) and then until
//!   its route table (the trie the publish path matches) holds N filters; prints
//!   `result sync_s=S cpu_s=U pg_s=P connect_s=C rss_delta_kb=K` (U: CPU seconds the joiner
//!   used meanwhile, all threads), then waits until stdin closes so the
//!   driver can read the connection's byte counters first.
//!
//! - `stages N`: no network, one process: the same work cut into its steps, each timed on one
//!   thread (holder: N local joins, the sync list, encoding into fragments; joiner: reassembly
//!   and decoding, pg applying the sync, pg applying the identical second copy, the route
//!   table applying pg's changes). Prints `stage NAME cpu_s=C wall_s=W` lines (C: the
//!   thread's CPU time) and the joiner's RSS growth per route.
//!
//! Cookie: env `EMQX_NODE_COOKIE`. Build: `cargo bench --bench pg_sync --no-run`.
use std::io::{BufRead, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};

use beamq::dist::control::ControlMessage;
use beamq::dist::cookie::Cookie;
use beamq::dist::etf::{Atom, Pid, Reference, Term};
use beamq::dist::listener::PortMode;
use beamq::dist::message::{DistMessage, Inbound, Outbound, OutboundConfig};
use beamq::dist::nodename::{NameKind, NodeName};
use beamq::node::boot::{start, NodeConfig, RunningNode};
use beamq::node::pg::state::{Effects, ScopeState};
use beamq::node::pg::{Groups, Scope, ROUTE_SCOPE};
use beamq::node::Dest;
use beamq::router::cluster::{ClusterRouter, ClusterRoutes};

/// The filter of route `i`.
fn filter(i: usize) -> String {
    format!("bench/{i}/#")
}

/// The process's resident set in KiB (`VmRSS` of /proc/self/status).
fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// CPU time (user + system) of this process so far, in seconds (/proc/self/stat fields 14
/// and 15, in clock ticks of 1/100 s on Linux).
fn cpu_s() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let after = s.rsplit_once(')')?.1.split_whitespace().collect::<Vec<_>>();
            let utime: f64 = after.get(11)?.parse().ok()?;
            let stime: f64 = after.get(12)?.parse().ok()?;
            Some((utime + stime) / 100.0)
        })
        .unwrap_or(0.0)
}

async fn node(name: &str) -> RunningNode {
    let cookie = Cookie::resolve(None).expect("cookie (EMQX_NODE_COOKIE)");
    let name = NodeName::parse(name, NameKind::Long).expect("node name");
    start(NodeConfig {
        name,
        cookie,
        net_ticktime: Duration::from_secs(60),
        mode: PortMode::Ekka,
        bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
        hidden: false,
    })
    .await
    .expect("node start")
}

fn scope(n: &RunningNode) -> Scope {
    Scope::lookup(&n.node, Atom::new(ROUTE_SCOPE)).expect("beamq_route scope")
}

/// Blocks until stdin is closed.
async fn wait_stdin_eof() {
    let _ = tokio::task::spawn_blocking(|| {
        for line in std::io::stdin().lock().lines() {
            if line.is_err() {
                break;
            }
        }
    })
    .await;
}

async fn holder(name: &str, n: usize) {
    let running = node(name).await;
    let scope = scope(&running);
    let router = ClusterRouter::start(&running.node).expect("cluster router");
    let t0 = Instant::now();
    for i in 0..n {
        router.add_local(&filter(i));
    }
    while scope.group_count() < n {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    println!(
        "ready join_s={:.3} rss_kb={}",
        t0.elapsed().as_secs_f64(),
        rss_kb()
    );
    let _ = std::io::stdout().flush();
    wait_stdin_eof().await;
}

async fn joiner(name: &str, peer: &str, n: usize) {
    let running = node(name).await;
    let scope = scope(&running);
    let router = ClusterRouter::start(&running.node).expect("cluster router");
    let peer = Atom::try_new(peer).expect("peer name");
    let rss0 = rss_kb();
    let cpu0 = cpu_s();
    let t0 = Instant::now();
    assert!(
        running.node.connect(peer).await,
        "cannot connect to {peer:?}"
    );
    let connected = t0.elapsed();
    let limit = Duration::from_secs(300);
    while scope.group_count() < n {
        assert!(t0.elapsed() < limit, "only {} groups", scope.group_count());
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let in_pg = t0.elapsed();
    while router.routes().read().len() < n {
        assert!(
            t0.elapsed() < limit,
            "only {} routes",
            router.routes().read().len()
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let synced = t0.elapsed();
    println!(
        "result sync_s={:.3} cpu_s={:.2} pg_s={:.3} connect_s={:.3} rss_delta_kb={}",
        synced.as_secs_f64(),
        cpu_s() - cpu0,
        in_pg.as_secs_f64(),
        connected.as_secs_f64(),
        rss_kb().saturating_sub(rss0)
    );
    let _ = std::io::stdout().flush();
    wait_stdin_eof().await;
}

/// Effects that keep what pg sends (the discover's answer) and number monitors.
#[derive(Default)]
struct Captured {
    sent: Vec<Term>,
    refs: u32,
}

impl Effects for Captured {
    fn monitor(&mut self, pid: Pid) -> Reference {
        self.refs += 1;
        Reference::new(pid.node, 1, &[self.refs, 0, 0]).expect("3 words")
    }
    fn demonitor(&mut self, _: Reference) {}
    fn send(&mut self, _: Dest, msg: Term) {
        self.sent.push(msg);
    }
}

/// CPU seconds this thread has used (`CLOCK_THREAD_CPUTIME_ID`): what a step costs, whatever
/// else the machine's cores are busy with.
fn thread_cpu_s() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec for the call to write.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

fn stage<R>(name: &str, f: impl FnOnce() -> R) -> R {
    let (t0, c0) = (Instant::now(), thread_cpu_s());
    let r = f();
    println!(
        "stage {name} cpu_s={:.3} wall_s={:.3}",
        thread_cpu_s() - c0,
        t0.elapsed().as_secs_f64()
    );
    r
}

fn stages(n: usize) {
    let pid = |node: &str, id| Pid {
        node: Atom::new(node),
        id,
        serial: 0,
        creation: 1,
    };
    let (hscope, broker, jscope) = (pid("h@b", 1), pid("h@b", 2), pid("j@b", 1));
    let scope = Atom::new(ROUTE_SCOPE);
    let mut fx = Captured::default();
    let mut holder = ScopeState::new(scope, hscope, Arc::new(Mutex::new(Groups::default())));
    let wire = Term::list(vec![Term::Pid(broker)]);
    stage("holder_joins", || {
        for i in 0..n {
            let g = Term::Binary(Bytes::from(filter(i)));
            holder.join_local(g, &[broker], wire.clone(), &mut fx);
        }
    });
    let discover = Term::tuple(vec![Term::atom("discover"), Term::Pid(jscope)]);
    let sync = stage("holder_sync_list", || {
        holder.handle(&discover, &mut fx).expect("discover");
        fx.sent.remove(0)
    });
    let mut out = Outbound::new(OutboundConfig::default());
    let frames = stage("holder_encode", || {
        let mut buf = BytesMut::new();
        out.encode(
            &DistMessage::with_payload(ControlMessage::Send { to: jscope }, sync),
            &mut buf,
        );
        buf.freeze()
    });
    let decode = |frames: &Bytes| {
        let mut inbound = Inbound::default();
        let mut rest = frames.clone();
        let mut msg = None;
        while rest.len() >= 4 {
            let len = rest.get_u32() as usize;
            let frame = rest.split_to(len);
            if let Some(m) = inbound.receive(frame).expect("frame") {
                msg = m.payload;
            }
        }
        msg.expect("a whole message")
    };
    let groups = Arc::new(Mutex::new(Groups::default()));
    let mut joiner = ScopeState::new(scope, jscope, groups.clone());
    let (_, mut events) = groups.lock().expect("table").subscribe();
    let rss0 = rss_kb();
    let first = stage("joiner_decode", || decode(&frames));
    stage("joiner_pg_sync", || {
        joiner.handle_owned(first, &mut fx).expect("sync")
    });
    let mut routes = ClusterRoutes::new(Atom::new("j@b"));
    stage("joiner_routes", || {
        while let Ok(e) = events.try_recv() {
            routes.apply(&e);
        }
    });
    let second = stage("joiner_decode_again", || decode(&frames));
    stage("joiner_pg_same_sync", || {
        joiner.handle_owned(second, &mut fx).expect("sync")
    });
    assert_eq!(routes.len(), n);
    println!(
        "groups={} routes={} joiner_rss_b_per_route={}",
        groups.lock().expect("table").len(),
        routes.len(),
        rss_kb().saturating_sub(rss0) * 1024 / n as u64
    );
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let count = |s: &String| s.parse::<usize>().expect("N");
    match args.as_slice() {
        [role, name, n] if role == "holder" => rt.block_on(holder(name, count(n))),
        [role, name, peer, n] if role == "joiner" => rt.block_on(joiner(name, peer, count(n))),
        [role, n] if role == "stages" => stages(count(n)),
        // `cargo bench` with no arguments runs every bench binary: nothing to do alone.
        [] => eprintln!("pg_sync: driven by scripts/bench-cluster pg-sync"),
        _ => {
            eprintln!("usage: pg_sync holder NAME N | joiner NAME PEER N");
            std::process::exit(2);
        }
    }
}
