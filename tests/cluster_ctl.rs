//! `beamq ctl cluster ...` against three `beamq start` nodes on 127.0.0.1, in both port modes
//! (ekka: dist port from the name; epmd: `WITH_EPMD=1` with a private `beamq epmd`): join,
//! status on every member, leave, force-leave, restarts, and quick clear failures.
mod common;

use std::path::Path;
use std::time::Duration;

use common::cluster::{expected, wait_until, Ctl, DirGuard, Epmd, NodeProc};
use common::ports::free_suffixes;

const COOKIE: &str = "cluster_ctl_test";

#[test]
fn ekka_join_status_leave_force_leave_restart() {
    let s = free_suffixes(4);
    let names: Vec<String> = (0..3).map(|i| format!("c{}@127.0.0.1", s + i)).collect();
    let dead = format!("c{}@127.0.0.1", s + 3);
    let root = std::env::temp_dir().join(format!("beamq_cluster_ctl_{}", std::process::id()));
    let _dirs = DirGuard(root.clone());
    scenario(&Ctl::ekka(COOKIE), &names, &dead, &root);
}

#[test]
fn epmd_join_status_leave_force_leave_restart() {
    let epmd = Epmd::start();
    let tag = std::process::id();
    let names: Vec<String> = ["a", "b", "c"]
        .iter()
        .map(|n| format!("e{tag}{n}@127.0.0.1"))
        .collect();
    let dead = format!("e{tag}d@127.0.0.1");
    let root = std::env::temp_dir().join(format!("beamq_cluster_ctl_epmd_{tag}"));
    let _dirs = DirGuard(root.clone());
    scenario(&Ctl::epmd(&epmd, COOKIE), &names, &dead, &root);
}

/// What `beamq epmd -names` prints for the private epmd.
fn epmd_names(epmd_port: u16) -> String {
    let out = std::process::Command::new(common::cluster::BIN)
        .args(["epmd", "-port", &epmd_port.to_string(), "-names"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The membership scenario of issue 6; `dead` is a name no node runs under.
fn scenario(ctl: &Ctl, names: &[String], dead: &str, root: &Path) {
    let (a, b, c) = (names[0].as_str(), names[1].as_str(), names[2].as_str());
    let mut n1 = NodeProc::start(ctl, a, &root.join("1"));
    let mut n2 = NodeProc::start(ctl, b, &root.join("2"));
    let mut n3 = NodeProc::start(ctl, c, &root.join("3"));
    if let Some(port) = ctl.epmd {
        let listed = epmd_names(port);
        for n in names {
            let short = n.split('@').next().unwrap_or_default();
            assert!(
                listed.contains(&format!("name {short} at port")),
                "{listed}"
            );
        }
    }
    let ok = |node: &str, args: &[&str]| ctl.ok(node, args);
    let status = |node: &str| ctl.status(node);
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
    ctl.fails_fast(a, COOKIE, &["cluster", "join", a], "cannot_join_self");
    ctl.fails_fast(
        a,
        COOKIE,
        &["cluster", "force-leave", "nobody@127.0.0.1"],
        "node_not_in_cluster",
    );
    ctl.fails_fast(a, "wrong", &["cluster", "status"], "wrong cookie");
    ctl.fails_fast(dead, COOKIE, &["cluster", "status"], "not reachable");

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
