//! `beamq cluster-local N`: a pseudo-distributed cluster on one machine, as EMQX 4 documents it
//! ("Pseudo-distributed cluster": `emqx1@127.0.0.1`, `emqx2@127.0.0.1`, every listener port of
//! node i shifted so the nodes do not collide).
//!
//! Node i (1-based) is a child process `beamq start --name beamqI@HOST --port-offset K_i` with
//! `K_i = port_offset + port_step * (i - 1)`, so MQTT listens on 1883, 2883, 3883, ... In ekka
//! mode the dist port follows from the name (4370 + I, `ekka_dist:port/1`); in epmd mode
//! (`--epmd` or `WITH_EPMD=1`) node i listens on 6369 + K_i and registers with the epmd at
//! `ERL_EPMD_PORT`, which is started here (as a child) when none answers. Nodes 2..N then join
//! node 1 through the `beamq_cluster` functions, exactly as `beamq ctl cluster join` does.
//!
//! No child outlives this process: SIGINT, SIGTERM and SIGHUP stop every child (SIGTERM, a
//! grace period, then SIGKILL), and each child asks the kernel for SIGKILL when its parent dies
//! (`prctl(PR_SET_PDEATHSIG)`), which covers a `kill -9` of this process too.
//!
//! The plan (names, ports, directories; no I/O) is in `local/plan.rs`, the children's spawning
//! and stopping in `local/children.rs`; this file runs the cluster.
mod children;
mod plan;

use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use children::{spawn_child, Children};
pub use plan::{plan, LocalArgs, PlannedNode};

use crate::cluster::ctl::{self, ClusterCmd};
use crate::dist::cookie::{Cookie, COOKIE_ENV};
use crate::dist::listener::PortMode;

/// How long a node may take from spawn to answering `cluster status`.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the cluster may take to become fully meshed after the joins.
const MESH_TIMEOUT: Duration = Duration::from_secs(20);

/// Why the cluster could not be started.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    /// The flags do not give a usable cluster.
    #[error("{0}")]
    Plan(String),
    /// No cookie could be had.
    #[error("cookie: {0}")]
    Cookie(#[from] crate::dist::cookie::CookieError),
    /// A child could not be spawned or its data directory made.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        source: std::io::Error,
    },
    /// No epmd answered after starting one.
    #[error("epmd on port {0} does not answer")]
    Epmd(u16),
    /// A node exited during start-up.
    #[error("{name} exited with {status} (see {log})")]
    Exited {
        /// The node.
        name: String,
        /// How it ended.
        status: ExitStatus,
        /// Its log file.
        log: String,
    },
    /// A node did not answer, or a cluster call failed.
    #[error("{name}: {reason}")]
    Node {
        /// The node.
        name: String,
        /// What went wrong.
        reason: String,
    },
    /// SIGINT, SIGTERM or SIGHUP during start-up.
    #[error("interrupted")]
    Interrupted,
}

/// Entry point of `beamq cluster-local`; returns the exit code.
pub fn main(args: LocalArgs) -> i32 {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("beamq cluster-local: {e}");
            return 1;
        }
    };
    // The runtime is current-thread on this (main) thread, which therefore spawns every child:
    // PR_SET_PDEATHSIG fires when the spawning *thread* exits, and this one lives to the end.
    let mut children = Children::default();
    let code = rt.block_on(run(&args, &mut children));
    children.stop_all(true);
    code
}

async fn run(args: &LocalArgs, children: &mut Children) -> i32 {
    use tokio::signal::unix::{signal, SignalKind};
    let (mut int, mut term, mut hup) = match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) {
        (Ok(a), Ok(b), Ok(c)) => (a, b, c),
        _ => {
            eprintln!("beamq cluster-local: cannot install signal handlers");
            return 1;
        }
    };
    let stop = async {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
            _ = hup.recv() => {}
        }
    };
    tokio::pin!(stop);
    let started = tokio::select! {
        r = start_cluster(args, children) => r,
        _ = &mut stop => Err(LocalError::Interrupted),
    };
    if let Err(e) = started {
        eprintln!("beamq cluster-local: {e}");
        return 1;
    }
    println!(
        "beamq cluster-local: {} nodes running; SIGINT or SIGTERM stops them",
        args.nodes
    );
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = &mut stop => return 0,
            _ = tick.tick() => report_exits(children),
        }
    }
}

/// Says once when a node exits on its own; the others keep running.
fn report_exits(children: &mut Children) {
    for p in children.nodes.iter_mut().filter(|p| p.exited.is_none()) {
        if let Ok(Some(s)) = p.child.try_wait() {
            eprintln!("{} exited: {s}", p.name);
            p.exited = Some(s);
        }
    }
}

async fn start_cluster(args: &LocalArgs, children: &mut Children) -> Result<(), LocalError> {
    let epmd = args.epmd || std::env::var("WITH_EPMD").is_ok_and(|v| v == "1");
    let args = LocalArgs {
        epmd,
        ..args.clone()
    };
    let plan = plan(&args)?;
    let cookie = Cookie::resolve(args.cookie.as_deref())?;
    let cookie_text = String::from_utf8_lossy(cookie.as_bytes()).into_owned();
    let exe = std::env::current_exe().map_err(|source| LocalError::Io {
        what: "locate the beamq binary".into(),
        source,
    })?;
    let epmd_port = crate::epmd::client::epmd_port();
    let mode = if epmd {
        start_epmd(&exe, epmd_port, children).await?;
        PortMode::Epmd {
            epmd_port,
            listen_min: 0,
            listen_max: 0,
        }
    } else {
        PortMode::Ekka
    };
    for node in &plan {
        std::fs::create_dir_all(&node.data_dir).map_err(|source| LocalError::Io {
            what: format!("create {}", node.data_dir.display()),
            source,
        })?;
        let log = node.data_dir.join("beamq.log");
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(|source| LocalError::Io {
                what: format!("open {}", log.display()),
                source,
            })?;
        let err = out.try_clone().map_err(|source| LocalError::Io {
            what: format!("open {}", log.display()),
            source,
        })?;
        let mut cmd = Command::new(&exe);
        cmd.arg("start")
            .args(["--name", &node.name])
            .arg("--data-dir")
            .arg(&node.data_dir)
            .args(["--port-offset", &node.port_offset.to_string()])
            .args(["--mqtt-port", &node.mqtt_port.to_string()])
            .env(COOKIE_ENV, &cookie_text)
            .env_remove("EMQX_NODE_NAME")
            .stdout(out)
            .stderr(err);
        if epmd {
            let p = node.dist_port.to_string();
            cmd.args(["--dist-listen-min", &p, "--dist-listen-max", &p])
                .env("WITH_EPMD", "1")
                .env("ERL_EPMD_PORT", epmd_port.to_string());
        } else {
            cmd.env_remove("WITH_EPMD");
        }
        children.nodes.push(spawn_child(cmd, &node.name)?);
    }
    for (i, node) in plan.iter().enumerate() {
        wait_ready(node, &cookie, &mode, children, i).await?;
        println!(
            "{} pid {} mqtt {} dist {} port-offset {} data {}",
            node.name,
            children.nodes[i].child.id(),
            node.mqtt_port,
            node.dist_port,
            node.port_offset,
            node.data_dir.display()
        );
    }
    let Some(seed) = plan.first() else {
        return Ok(());
    };
    for node in &plan[1..] {
        let joined = ctl::run(
            &node.name,
            cookie.clone(),
            mode.clone(),
            ClusterCmd::Join(seed.name.clone()),
        )
        .await;
        match joined {
            Ok(_) => {}
            Err(e) if e.contains("already_in_cluster") => {}
            Err(reason) => {
                return Err(LocalError::Node {
                    name: node.name.clone(),
                    reason,
                })
            }
        }
    }
    let status = wait_meshed(&plan, &cookie, &mode).await?;
    println!("{status}");
    Ok(())
}

/// Starts `beamq epmd -port P` as a child when no epmd answers on 127.0.0.1:P.
async fn start_epmd(
    exe: &std::path::Path,
    port: u16,
    children: &mut Children,
) -> Result<(), LocalError> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    if crate::epmd::client::is_running(addr).await {
        return Ok(());
    }
    let mut cmd = Command::new(exe);
    cmd.args(["epmd", "-port", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    children.epmd = Some(spawn_child(cmd, "epmd")?);
    for _ in 0..50 {
        if crate::epmd::client::is_running(addr).await {
            println!("epmd listening on port {port}");
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(LocalError::Epmd(port))
}

/// Polls `cluster status` on node `i` until it answers; fails at once if the child exits.
async fn wait_ready(
    node: &PlannedNode,
    cookie: &Cookie,
    mode: &PortMode,
    children: &mut Children,
    i: usize,
) -> Result<(), LocalError> {
    let t0 = Instant::now();
    let mut last = String::new();
    while t0.elapsed() < READY_TIMEOUT {
        if let Some(p) = children.nodes.get_mut(i) {
            if let Ok(Some(status)) = p.child.try_wait() {
                p.exited = Some(status);
                return Err(LocalError::Exited {
                    name: node.name.clone(),
                    status,
                    log: node.data_dir.join("beamq.log").display().to_string(),
                });
            }
        }
        let status = ClusterCmd::Status { json: true };
        match ctl::run(&node.name, cookie.clone(), mode.clone(), status).await {
            Ok(_) => return Ok(()),
            Err(e) => last = e,
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(LocalError::Node {
        name: node.name.clone(),
        reason: format!("not ready after {} s: {last}", READY_TIMEOUT.as_secs()),
    })
}

/// Waits until every node lists all nodes as running; returns node 1's `cluster status` line.
async fn wait_meshed(
    plan: &[PlannedNode],
    cookie: &Cookie,
    mode: &PortMode,
) -> Result<String, LocalError> {
    let want: Vec<&str> = plan.iter().map(|n| n.name.as_str()).collect();
    let t0 = Instant::now();
    for node in plan {
        loop {
            let json = ctl::run(
                &node.name,
                cookie.clone(),
                mode.clone(),
                ClusterCmd::Status { json: true },
            )
            .await;
            let running = json
                .ok()
                .and_then(|j| serde_json::from_str::<serde_json::Value>(&j).ok())
                .and_then(|v| {
                    v.get("running_nodes")?.as_array().map(|a| {
                        a.iter()
                            .filter_map(|n| n.as_str().map(str::to_owned))
                            .collect::<Vec<_>>()
                    })
                })
                .unwrap_or_default();
            if want.iter().all(|w| running.iter().any(|r| r == w)) {
                break;
            }
            if t0.elapsed() > MESH_TIMEOUT {
                return Err(LocalError::Node {
                    name: node.name.clone(),
                    reason: format!("running nodes {running:?} after the joins"),
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let seed = &plan[0];
    ctl::run(
        &seed.name,
        cookie.clone(),
        mode.clone(),
        ClusterCmd::Status { json: false },
    )
    .await
    .map_err(|reason| LocalError::Node {
        name: seed.name.clone(),
        reason,
    })
}
