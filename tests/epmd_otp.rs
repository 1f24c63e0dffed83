//! Acceptance against real OTP: stock `erl` nodes register with `beamq epmd`, find each other
//! through it, and OTP's own `epmd` client drives it. Every scenario runs against OTP's C epmd
//! too and the observable transcripts must be equal.
mod epmd_support;

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use epmd_support::*;

const COOKIE: &str = "beamq_epmd_test";

/// A stock Erlang node, killed by PID on drop.
struct ErlNode(Child);

impl Drop for ErlNode {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn erl(port: u16, name: &str, eval: &str) -> Command {
    let mut cmd = Command::new("erl");
    cmd.args([
        "-name",
        name,
        "-setcookie",
        COOKIE,
        "-noshell",
        "-noinput",
        "-start_epmd",
        "false",
    ])
    .args(["-eval", eval])
    .env("ERL_EPMD_PORT", port.to_string())
    .stdin(Stdio::null());
    cmd
}

fn start_node(port: u16, name: &str) -> ErlNode {
    let child = erl(port, name, "ok.")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start erl");
    ErlNode(child)
}

fn run_erl(port: u16, name: &str, eval: &str) -> Output {
    erl(port, name, eval).output().expect("run erl")
}

fn otp_epmd(port: u16, args: &[&str]) -> String {
    let p = port.to_string();
    let mut full = vec!["-port", p.as_str()];
    full.extend_from_slice(args);
    let out = run(Path::new(C_EPMD), &full);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Digits differ between runs (ports); replace them.
fn no_digits(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            if !out.ends_with('#') {
                out.push('#');
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn eventually(limit: Duration, mut pred: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if pred() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

fn scenario(daemon: &mut Daemon, relaxed: bool) -> Vec<String> {
    let p = daemon.port;
    let mut t = Vec::new();
    let node_a = start_node(p, "a@127.0.0.1");
    t.push(format!(
        "a registered: {}",
        eventually(Duration::from_secs(20), || otp_epmd(p, &["-names"])
            .contains("name a "))
    ));
    t.push(no_digits(&otp_epmd(p, &["-names"])));

    let ping = run_erl(
        p,
        "b@127.0.0.1",
        "io:format(\"~p~n\", [net_adm:ping('a@127.0.0.1')]), halt().",
    );
    t.push(format!(
        "ping: {}",
        String::from_utf8_lossy(&ping.stdout).trim()
    ));

    let names = run_erl(
        p,
        "c@127.0.0.1",
        "io:format(\"~p~n\", [net_adm:names()]), halt().",
    );
    t.push(no_digits(String::from_utf8_lossy(&names.stdout).trim()));

    let dup = run_erl(p, "a@127.0.0.1", "halt().");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&dup.stdout),
        String::from_utf8_lossy(&dup.stderr)
    );
    t.push(format!(
        "duplicate refused: {} ok={}",
        text.contains("the name a@127.0.0.1 seems to be in use by another Erlang node"),
        dup.status.success()
    ));

    t.push(format!("stop: {}", otp_epmd(p, &["-stop", "a"])));
    t.push(format!(
        "names after stop: {}",
        no_digits(&otp_epmd(p, &["-names"]))
    ));
    if relaxed {
        // erl_epmd re-registers 2 s after its epmd connection closes.
        t.push(format!(
            "a re-registered: {}",
            eventually(Duration::from_secs(10), || otp_epmd(p, &["-names"])
                .contains("name a "))
        ));
    }
    t.push(format!("kill with a live: {}", otp_epmd(p, &["-kill"])));

    if !relaxed {
        let mut node_a = node_a;
        let _ = node_a.0.kill();
        let _ = node_a.0.wait();
        t.push(format!(
            "killed node's name gone: {}",
            eventually(Duration::from_secs(10), || !otp_epmd(p, &["-names"])
                .contains("name a "))
        ));
        t.push(format!("kill when empty: {}", otp_epmd(p, &["-kill"])));
    } else {
        drop(node_a);
    }
    t.push(format!(
        "daemon exited: {}",
        daemon.exited_within(Duration::from_secs(5)).is_some()
    ));
    t
}

fn compare_with_c(relaxed: bool) {
    if !have_c_epmd() || Command::new("erl").arg("-version").output().is_err() {
        eprintln!("SKIP: erl or {C_EPMD} missing (scripts/test-all installs erlang-nox)");
        return;
    }
    let flags: &[&str] = if relaxed {
        &["-relaxed_command_check"]
    } else {
        &[]
    };
    let ours = scenario(&mut start_beamq(flags), relaxed);
    let theirs = scenario(&mut start_c(flags), relaxed);
    assert!(
        ours[0].ends_with("true"),
        "stock erl did not register with beamq epmd: {ours:#?}"
    );
    assert_eq!(ours[2], "ping: pong", "{ours:#?}");
    eprintln!("transcript: {ours:#?}");
    assert_eq!(ours, theirs, "beamq epmd vs C epmd");
}

#[test]
fn stock_nodes_with_strict_epmd_behave_as_with_c_epmd() {
    compare_with_c(false);
}

#[test]
fn stock_nodes_with_relaxed_epmd_behave_as_with_c_epmd() {
    compare_with_c(true);
}
