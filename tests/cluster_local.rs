//! `beamq cluster-local N`: N nodes started as children, joined, listed with their ports; a
//! signal stops them all, and a `kill -9` of the parent leaves no orphan either.
mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::ports::{free_listen_port, free_port, free_port_offset, free_suffixes};

const BIN: &str = env!("CARGO_BIN_EXE_beamq");
const COOKIE: &str = "cluster_local_test";

/// A running `beamq cluster-local`; on drop the parent and every child pid it printed are
/// SIGKILLed and the data directory removed.
struct LocalCluster {
    parent: Child,
    pids: Vec<i32>,
    dir: PathBuf,
    /// Node lines, then the status line, as printed.
    lines: Vec<String>,
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        for &pid in &self.pids {
            // SAFETY: kill(2) by pid; a stale pid only gets ESRCH.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        let _ = self.parent.kill();
        let _ = self.parent.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn tag() -> String {
    format!("{}_{}", std::process::id(), free_port())
}

/// Starts `beamq cluster-local` with `args` and reads its stdout until the "running" line.
fn start(args: &[String], envs: &[(&str, String)]) -> LocalCluster {
    let dir = std::env::temp_dir().join(format!("beamq_cluster_local_{}", tag()));
    let mut cmd = Command::new(BIN);
    cmd.arg("cluster-local")
        .args(args)
        .arg("--data-dir")
        .arg(&dir)
        .args(["--cookie", COOKIE])
        .env_remove("WITH_EPMD")
        .env_remove("EMQX_NODE_NAME")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut parent = cmd.spawn().unwrap();
    let stdout = parent.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lc = LocalCluster {
        parent,
        pids: Vec::new(),
        dir,
        lines: Vec::new(),
    };
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no running line; got {:?}", lc.lines));
        if let Some(pid) = line
            .split_whitespace()
            .skip_while(|w| *w != "pid")
            .nth(1)
            .and_then(|p| p.parse().ok())
        {
            lc.pids.push(pid);
        }
        if line.starts_with("beamq cluster-local:") {
            break;
        }
        lc.lines.push(line);
    }
    lc
}

fn ctl(node: &str, args: &[&str], envs: &[(&str, String)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(["ctl", "--node", node, "--cookie", COOKIE])
        .args(args)
        .env_remove("WITH_EPMD");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// Whether `pid` exists and is not a zombie (a killed orphan waits for init to reap it).
fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, r)| r.split_whitespace().next())
            .is_some_and(|state| state != "Z"),
        Err(_) => false,
    }
}

fn wait_all_gone(pids: &[i32], limit: Duration) {
    let t0 = Instant::now();
    while pids.iter().any(|&p| alive(p)) {
        assert!(t0.elapsed() < limit, "children still alive: {pids:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn expected_status(names: &[String]) -> String {
    let list: Vec<String> = names.iter().map(|n| format!("'{n}'")).collect();
    format!("Cluster status: [{{running_nodes,[{}]}}]", list.join(","))
}

#[test]
fn three_nodes_start_join_and_stop_on_sigterm() {
    let s = free_suffixes(3);
    let k = free_port_offset(3, 1000);
    let args: Vec<String> = [
        "3",
        "--prefix",
        "cl",
        "--first",
        &s.to_string(),
        "--port-offset",
        &k.to_string(),
    ]
    .iter()
    .map(|a| a.to_string())
    .collect();
    let mut lc = start(&args, &[]);
    let names: Vec<String> = (0..3).map(|i| format!("cl{}@127.0.0.1", s + i)).collect();
    assert_eq!(lc.pids.len(), 3, "{:?}", lc.lines);
    for (i, name) in names.iter().enumerate() {
        let line = &lc.lines[i];
        let want = format!(
            "{name} pid {} mqtt {} dist {} port-offset {}",
            lc.pids[i],
            1883 + k + 1000 * i as u16,
            4370 + s + i as u16,
            k + 1000 * i as u16
        );
        assert!(line.starts_with(&want), "{line} / {want}");
    }
    assert_eq!(lc.lines[3], expected_status(&names));
    // Every member agrees, and node 3's MQTT listener is where the line says.
    let out = ctl(&names[2], &["cluster", "status"], &[]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        expected_status(&names)
    );
    std::net::TcpStream::connect(("127.0.0.1", 1883 + k + 2000)).unwrap();

    // SIGTERM: every node stops, then the parent exits 0.
    // SAFETY: kill(2) on the child this test spawned.
    unsafe { libc::kill(lc.parent.id() as i32, libc::SIGTERM) };
    let t0 = Instant::now();
    let status = loop {
        if let Some(st) = lc.parent.try_wait().unwrap() {
            break st;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "parent did not exit"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
    wait_all_gone(&lc.pids, Duration::from_secs(1));
}

#[test]
fn kill_9_of_the_parent_leaves_no_orphan_in_epmd_mode() {
    let epmd_port = free_listen_port();
    let s = free_suffixes(2);
    let k = free_port_offset(2, 1000);
    let args: Vec<String> = [
        "2",
        "--epmd",
        "--prefix",
        "cle",
        "--first",
        &s.to_string(),
        "--port-offset",
        &k.to_string(),
    ]
    .iter()
    .map(|a| a.to_string())
    .collect();
    let envs = [("ERL_EPMD_PORT", epmd_port.to_string())];
    let mut lc = start(&args, &envs);
    let names: Vec<String> = (0..2).map(|i| format!("cle{}@127.0.0.1", s + i)).collect();
    assert_eq!(lc.lines[0], format!("epmd listening on port {epmd_port}"));
    assert!(
        lc.lines[1].contains(&format!("dist {}", 6369 + k)),
        "{:?}",
        lc.lines
    );
    assert_eq!(lc.lines[3], expected_status(&names));
    let mut with_epmd = envs.to_vec();
    with_epmd.push(("WITH_EPMD", "1".to_string()));
    let out = ctl(&names[1], &["cluster", "status"], &with_epmd);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        expected_status(&names)
    );
    // The epmd child's pid is not printed: take every process whose parent is cluster-local.
    let parent = lc.parent.id() as i32;
    let kids = children_of(parent);
    assert_eq!(kids.len(), 3, "two nodes and the epmd: {kids:?}");
    lc.pids = kids.clone();
    lc.parent.kill().unwrap();
    lc.parent.wait().unwrap();
    wait_all_gone(&kids, Duration::from_secs(5));
    // The epmd's listening socket goes with its process; give the kernel a moment to tear it
    // down, but it must go.
    let t0 = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", epmd_port)).is_ok() {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "epmd on {epmd_port} still answers"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Pids whose parent is `ppid`, from /proc.
fn children_of(ppid: i32) -> Vec<i32> {
    let mut kids = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // "pid (comm) state ppid ...": comm may hold spaces, so split after the last ')'.
        let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
        if after.split_whitespace().nth(1) == Some(&ppid.to_string()) {
            kids.push(pid);
        }
    }
    kids
}
