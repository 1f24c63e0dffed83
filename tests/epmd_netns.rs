//! `epmd` as a symlink to beamq, first on PATH, no `ERL_EPMD_PORT`: the default port 4369 in a
//! private network namespace (created and deleted here), so the machine's 4369 is never touched.
//! Stock `erl` then registers with it and a second node pings the first.
mod epmd_support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use epmd_support::*;

/// A network namespace; on drop every process in it is killed by PID and it is deleted.
struct Netns(String);

impl Netns {
    fn create() -> Result<Self, String> {
        let name = format!("beamq-epmd-{}", std::process::id());
        let out = Command::new("ip")
            .args(["netns", "add", &name])
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        let ns = Netns(name);
        let up = ns
            .exec(&["ip", "link", "set", "lo", "up"])
            .output()
            .map_err(|e| e.to_string())?;
        if !up.status.success() {
            return Err(String::from_utf8_lossy(&up.stderr).into_owned());
        }
        Ok(ns)
    }

    /// A command run inside the namespace with `path_dir` first on PATH and no ERL_EPMD_PORT.
    fn exec(&self, argv: &[&str]) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.0])
            .args(argv)
            .env_remove("ERL_EPMD_PORT")
            .env_remove("ERL_EPMD_ADDRESS");
        cmd
    }

    fn pids(&self) -> Vec<u32> {
        let out = Command::new("ip").args(["netns", "pids", &self.0]).output();
        out.map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for pid in self.pids() {
            // SAFETY: plain kill(2) on processes this test started inside its own namespace.
            unsafe {
                libc::kill(pid as i32, libc::SIGKILL);
            }
        }
        std::thread::sleep(Duration::from_millis(100));
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.0])
            .status();
    }
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn with_path(cmd: &mut Command, dir: &Path) {
    let path = std::env::var("PATH").unwrap_or_default();
    cmd.env("PATH", format!("{}:{path}", dir.display()));
}

fn names_via(ns: &Netns, dir: &Path, epmd: &str) -> Output {
    let mut cmd = ns.exec(&[epmd, "-names"]);
    with_path(&mut cmd, dir);
    cmd.output().expect("epmd -names")
}

fn exe_of(pid: u32) -> Option<PathBuf> {
    std::fs::read_link(format!("/proc/{pid}/exe")).ok()
}

#[test]
fn symlinked_epmd_on_path_serves_default_port_in_private_namespace() {
    if Command::new("erl").arg("-version").output().is_err() {
        eprintln!("SKIP: erl missing (scripts/test-all installs erlang-nox)");
        return;
    }
    let ns = match Netns::create() {
        Ok(ns) => ns,
        Err(e) => {
            eprintln!("SKIP: cannot create a network namespace with `ip netns` (needs root): {e}");
            return;
        }
    };
    let dir = tempfile::tempdir().expect("tempdir");
    std::os::unix::fs::symlink(beamq_bin(), dir.path().join("epmd")).expect("symlink");

    let mut start = ns.exec(&["epmd", "-daemon"]);
    with_path(&mut start, dir.path());
    let status = start.status().expect("epmd -daemon");
    assert!(status.success(), "epmd -daemon exited with {status}");
    let up = names_via(&ns, dir.path(), "epmd");
    assert_eq!(
        String::from_utf8_lossy(&up.stdout),
        "epmd: up and running on port 4369 with data:\n"
    );

    // erl tries to start its own epmd -daemon too; it finds 4369 taken and leaves.
    let mut node = ns.exec(&[
        "erl",
        "-name",
        "a@127.0.0.1",
        "-setcookie",
        "nscookie",
        "-noshell",
        "-noinput",
    ]);
    with_path(&mut node, dir.path());
    let _node = Killed(
        node.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("erl"),
    );
    let begun = Instant::now();
    let listed = loop {
        let text = String::from_utf8_lossy(&names_via(&ns, dir.path(), C_EPMD).stdout).into_owned();
        if text.contains("name a at port") || begun.elapsed() > Duration::from_secs(20) {
            break text;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        listed.contains("name a at port"),
        "OTP's epmd -names: {listed}"
    );

    let mut ping = ns.exec(&[
        "erl",
        "-name",
        "b@127.0.0.1",
        "-setcookie",
        "nscookie",
        "-noshell",
        "-noinput",
        "-eval",
        "io:format(\"~p~n\", [net_adm:ping('a@127.0.0.1')]), halt().",
    ]);
    with_path(&mut ping, dir.path());
    let ping = ping.output().expect("erl ping");
    assert_eq!(String::from_utf8_lossy(&ping.stdout).trim(), "pong");

    let beamq = std::fs::canonicalize(beamq_bin()).expect("canonical beamq");
    let exes: Vec<PathBuf> = ns.pids().into_iter().filter_map(exe_of).collect();
    assert!(
        exes.contains(&beamq),
        "no beamq process in the namespace: {exes:?}"
    );
    assert!(
        !exes
            .iter()
            .any(|e| e.file_name().is_some_and(|n| n == "epmd")),
        "a C epmd runs in the namespace: {exes:?}"
    );
    // Through the symlink, -kill is refused while a lives, as C epmd refuses it.
    let mut kill = ns.exec(&["epmd", "-kill"]);
    with_path(&mut kill, dir.path());
    let kill = kill.output().expect("epmd -kill");
    assert_eq!(
        String::from_utf8_lossy(&kill.stdout),
        "Killing not allowed - living nodes in database.\n"
    );
    assert_eq!(kill.status.code(), Some(1));
}
