//! `beamq ctl cluster ...` against three `beamq start` nodes (ekka mode, 127.0.0.1): join,
//! status on every member, leave, force-leave, restarts, and quick clear failures.
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_beamq");
const COOKIE: &str = "cluster_ctl_test";

/// A running `beamq start`, killed by pid when dropped.
struct NodeProc {
    name: String,
    dir: PathBuf,
    child: Option<Child>,
}

impl NodeProc {
    fn start(name: &str, dir: &PathBuf) -> NodeProc {
        let child = Command::new(BIN)
            .args([
                "start",
                "--name",
                name,
                "--cookie",
                COOKIE,
                "--mqtt-port",
                "0",
                "--ws-port",
                "off",
            ])
            .arg("--data-dir")
            .arg(dir)
            .env_remove("WITH_EPMD")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let n = NodeProc {
            name: name.to_string(),
            dir: dir.clone(),
            child: Some(child),
        };
        wait_until(Duration::from_secs(10), || {
            ctl(name, &["cluster", "status"]).status.success()
        });
        n
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn restart(&mut self) {
        self.stop();
        let n = NodeProc::start(&self.name, &self.dir);
        *self = n;
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Removes the test's data directories.
struct DirGuard(PathBuf);

impl Drop for DirGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn ctl_with(node: &str, cookie: &str, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(["ctl", "--node", node, "--cookie", cookie])
        .args(args)
        .env_remove("WITH_EPMD")
        .output()
        .unwrap()
}

fn ctl(node: &str, args: &[&str]) -> Output {
    ctl_with(node, COOKIE, args)
}

fn ok(node: &str, args: &[&str]) -> String {
    let out = ctl(node, args);
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        out.status.success(),
        "{node} {args:?}: {text} / {}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

fn status(node: &str) -> String {
    ok(node, &["cluster", "status"])
}

fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < limit, "condition not met within {limit:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn expected(running: &[&str], stopped: &[&str]) -> String {
    let list = |v: &[&str]| {
        v.iter()
            .map(|n| format!("'{n}'"))
            .collect::<Vec<_>>()
            .join(",")
    };
    let mut s = format!("Cluster status: [{{running_nodes,[{}]}}", list(running));
    if !stopped.is_empty() {
        s.push_str(&format!(",{{stopped_nodes,[{}]}}", list(stopped)));
    }
    s.push(']');
    s
}

/// Three free name suffixes N (ekka dist port 4370 + N), derived from the pid.
fn suffixes() -> [u16; 3] {
    let mut base = 20000 + (std::process::id() % 4000) as u16 * 10;
    loop {
        let s = [base, base + 1, base + 2];
        if s.iter()
            .all(|n| TcpListener::bind(("127.0.0.1", 4370 + n)).is_ok())
        {
            return s;
        }
        base = 20000 + rand::random::<u16>() % 40000;
    }
}

fn fails_fast(node: &str, cookie: &str, args: &[&str], expect: &str) {
    let t0 = Instant::now();
    let out = ctl_with(node, cookie, args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{args:?} should fail");
    assert!(err.contains(expect), "{args:?}: {err}");
    assert!(t0.elapsed() < Duration::from_secs(10), "{args:?} too slow");
}

#[test]
fn join_status_leave_force_leave_restart() {
    let s = suffixes();
    let names: Vec<String> = s.iter().map(|n| format!("c{n}@127.0.0.1")).collect();
    let (a, b, c) = (names[0].as_str(), names[1].as_str(), names[2].as_str());
    let root = std::env::temp_dir().join(format!("beamq_cluster_ctl_{}", std::process::id()));
    let _dirs = DirGuard(root.clone());
    let mut n1 = NodeProc::start(a, &root.join("1"));
    let mut n2 = NodeProc::start(b, &root.join("2"));
    let mut n3 = NodeProc::start(c, &root.join("3"));

    assert_eq!(status(a), expected(&[a], &[]));
    assert_eq!(
        ok(b, &["cluster", "join", a]),
        "Join the cluster successfully."
    );
    assert_eq!(
        ok(c, &["cluster", "join", a]),
        "Join the cluster successfully."
    );
    let all = expected(&[a, b, c], &[]);
    for n in [a, b, c] {
        wait_until(Duration::from_secs(10), || status(n) == all);
    }
    assert_eq!(
        ok(b, &["cluster", "status", "--json"]),
        format!(r#"{{"running_nodes":["{a}","{b}","{c}"],"stopped_nodes":[]}}"#)
    );

    // Failures: self-join, unknown node for force-leave, dead node, wrong cookie.
    fails_fast(a, COOKIE, &["cluster", "join", a], "cannot_join_self");
    fails_fast(
        a,
        COOKIE,
        &["cluster", "force-leave", "nobody@127.0.0.1"],
        "node_not_in_cluster",
    );
    fails_fast(a, "wrong", &["cluster", "status"], "wrong cookie");
    let dead = format!("c{}@127.0.0.1", s[2] + 1);
    fails_fast(&dead, COOKIE, &["cluster", "status"], "not reachable");

    // A restarted member returns to the cluster by itself; while down it is a stopped node.
    n2.stop();
    wait_until(Duration::from_secs(10), || {
        status(a) == expected(&[a, c], &[b])
    });
    n2.restart();
    for n in [a, b, c] {
        wait_until(Duration::from_secs(20), || status(n) == all);
    }

    // Leave: b stands alone, the others no longer list it.
    assert_eq!(
        ok(b, &["cluster", "leave"]),
        "Leave the cluster successfully."
    );
    assert_eq!(status(b), expected(&[b], &[]));
    wait_until(Duration::from_secs(10), || {
        status(a) == expected(&[a, c], &[])
    });
    assert_eq!(status(c), expected(&[a, c], &[]));

    // Force-leave of a running node: it stands alone and stays out after a restart.
    assert_eq!(
        ok(a, &["cluster", "force-leave", c]),
        "Remove the node from cluster successfully."
    );
    assert_eq!(status(a), expected(&[a], &[]));
    wait_until(Duration::from_secs(5), || status(c) == expected(&[c], &[]));
    n3.restart();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(status(c), expected(&[c], &[]));
    assert_eq!(status(a), expected(&[a], &[]));

    // Force-leave of a stopped node: after its restart it finds it is no longer listed.
    assert_eq!(
        ok(b, &["cluster", "join", a]),
        "Join the cluster successfully."
    );
    n2.stop();
    assert_eq!(
        ok(a, &["cluster", "force-leave", b]),
        "Remove the node from cluster successfully."
    );
    n2.restart();
    wait_until(Duration::from_secs(10), || status(b) == expected(&[b], &[]));
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(status(a), expected(&[a], &[]));
    n1.stop();
}
