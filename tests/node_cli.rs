//! `beamq start` as a program: bad names fail clearly, a good one starts and answers a peer.
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use beamq::dist::etf::{Atom, Term};

const BIN: &str = env!("CARGO_BIN_EXE_beamq");

/// Kills the child by pid when the test ends, however it ends.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_fails(args: &[&str], expect: &str) {
    let out = Command::new(BIN)
        .arg("start")
        .args(args)
        .args(["--cookie", "x"])
        .env_remove("EMQX_NODE_NAME")
        .env_remove("WITH_EPMD")
        .output()
        .unwrap();
    assert!(!out.status.success(), "{args:?} should fail");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(expect), "{args:?}: {err}");
}

#[test]
fn bad_names_are_clear_errors() {
    start_fails(&["--name", "bad name@127.0.0.1"], "may only hold letters");
    start_fails(
        &["--name", "node@localhost"],
        "IP address or a fully qualified",
    );
    start_fails(&["--name", "a@b@c"], "exactly one '@'");
    start_fails(&["--sname", "s@host.example.com"], "cannot have a dot");
    start_fails(
        &["--net-ticktime", "0", "--name", "n@127.0.0.1"],
        "net-ticktime",
    );
}

#[test]
fn env_node_name_is_used_and_validated() {
    let out = Command::new(BIN)
        .args(["start", "--cookie", "x"])
        .env("EMQX_NODE_NAME", "bad!name@127.0.0.1")
        .env_remove("WITH_EPMD")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad!name@127.0.0.1"));
}

#[tokio::test]
async fn started_node_answers_rpc() {
    let n = loop {
        let n: u16 = 20000 + rand::random::<u16>() % 30000;
        if TcpListener::bind(("127.0.0.1", 4370 + n)).is_ok() {
            break n;
        }
    };
    let name = format!("bqcli{n}@127.0.0.1");
    let mut child = Command::new(BIN)
        .args([
            "start",
            "--name",
            &name,
            "--cookie",
            "cli_test",
            "--mqtt-port",
            "0",
            "--ws-port",
            "off",
        ])
        .env_remove("WITH_EPMD")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let guard = Guard(child);
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).map(|_| line)
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(
        line.trim(),
        format!("beamq node {name} started, dist port {}", 4370 + n)
    );

    // A second, in-process node reaches it by the ekka rule and calls it.
    let peer = loop {
        let m: u16 = 20000 + rand::random::<u16>() % 30000;
        if m != n && TcpListener::bind(("127.0.0.1", 4370 + m)).is_ok() {
            break m;
        }
    };
    let cfg = beamq::node::boot::NodeConfig {
        name: beamq::dist::nodename::NodeName::parse(
            &format!("bqclipeer{peer}@127.0.0.1"),
            beamq::dist::nodename::NameKind::Long,
        )
        .unwrap(),
        cookie: beamq::dist::cookie::Cookie::new("cli_test").unwrap(),
        net_ticktime: Duration::from_secs(60),
        mode: beamq::dist::listener::PortMode::Ekka,
        bind: std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
        hidden: false,
    };
    let me = beamq::node::boot::start(cfg).await.unwrap();
    let target = Atom::new(&name);
    let got = me
        .node
        .rpc_call(
            target,
            "erlang",
            "node",
            vec![],
            Some(Duration::from_secs(10)),
        )
        .await;
    assert_eq!(got, Term::Atom(target));
    drop(guard);
}
