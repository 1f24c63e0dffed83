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
    fn create(tag: &str) -> Result<Self, String> {
        let name = format!("beamq-epmd-{tag}-{}", std::process::id());
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
    let ns = match Netns::create("path") {
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

/// Run `f` on a thread that has joined the namespace: sockets it creates live in the namespace.
fn in_netns<T: Send + 'static>(ns: &Netns, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/run/netns/{}", ns.0);
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).expect("open netns");
        // SAFETY: setns(2) on a namespace fd; it only changes this thread's network namespace.
        let rc = unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&file), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
        f()
    })
    .join()
    .expect("namespace thread")
}

fn connect_from(from: &str, port: u16) -> std::net::TcpStream {
    let socket =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    let src: std::net::SocketAddr = format!("{from}:0").parse().expect("addr");
    socket.bind(&src.into()).expect("bind source");
    let dst: std::net::SocketAddr = format!("10.99.0.1:{port}").parse().expect("addr");
    socket.connect(&dst.into()).expect("connect");
    let s: std::net::TcpStream = socket.into();
    s.set_read_timeout(Some(Duration::from_secs(3)))
        .expect("timeout");
    s
}

/// One request from `from` to 10.99.0.1:port; everything until the server closes.
fn exchange_from(from: &str, port: u16, request: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut s = connect_from(from, port);
    s.write_all(request).expect("write");
    read_to_close(&mut s)
}

/// ALIVE2_REQ from `from`: the answer's code and result (the creation is the clock's), with the
/// connection kept open so the registration lives; empty when the server closed instead.
fn register_from(from: &str, port: u16) -> (std::net::TcpStream, Vec<u8>) {
    use std::io::{Read, Write};
    let mut s = connect_from(from, port);
    s.write_all(&framed(&alive2_body(b"n1", 7001, 6, b"")))
        .expect("write");
    let mut answer = [0u8; 6];
    match s.read_exact(&mut answer) {
        Ok(()) => (s, answer[..2].to_vec()),
        Err(_) => (s, Vec::new()),
    }
}

fn remote_scenario(port: u16) -> Vec<(String, Vec<u8>)> {
    let mut t = Vec::new();
    for (from, label) in [("10.99.0.2", "remote"), ("10.99.0.1", "own address")] {
        let (_registration, alive) = register_from(from, port);
        t.push((format!("{label} ALIVE2"), alive));
        for (what, body) in [
            ("NAMES", &b"n"[..]),
            ("PORT2", b"zn1"),
            ("DUMP", b"d"),
            ("STOP", b"szz"),
            ("KILL", b"k"),
        ] {
            let answer = exchange_from(from, port, &framed(body));
            let answer = if what == "NAMES" || what == "DUMP" {
                mask_fds(answer.get(4..).unwrap_or_default())
            } else {
                answer
            };
            t.push((format!("{label} {what}"), answer));
        }
    }
    t
}

#[test]
fn only_local_peers_may_register_dump_kill_or_stop() {
    if !have_c_epmd() {
        eprintln!("SKIP: {C_EPMD} not installed (scripts/test-all installs erlang-nox)");
        return;
    }
    let ns = match Netns::create("remote") {
        Ok(ns) => ns,
        Err(e) => {
            eprintln!("SKIP: cannot create a network namespace with `ip netns` (needs root): {e}");
            return;
        }
    };
    // Two more addresses on the namespace's loopback: 10.99.0.2 -> 10.99.0.1 is a connection
    // from a peer that is neither 127.x nor the address it reached, i.e. not local for C epmd.
    for argv in [
        &["ip", "addr", "add", "10.99.0.1/32", "dev", "lo"][..],
        &["ip", "addr", "add", "10.99.0.2/32", "dev", "lo"],
    ] {
        assert!(ns.exec(argv).status().expect("ip").success(), "{argv:?}");
    }
    let mut transcripts = Vec::new();
    for (program, prefix) in [(PathBuf::from(C_EPMD), vec![]), (beamq_bin(), vec!["epmd"])] {
        let port = 4400 + transcripts.len() as u16;
        let mut argv: Vec<String> = vec![program.display().to_string()];
        argv.extend(prefix.iter().map(|s| s.to_string()));
        argv.extend([
            "-port".into(),
            port.to_string(),
            "-relaxed_command_check".into(),
        ]);
        let argv_ref: Vec<&str> = argv.iter().map(String::as_str).collect();
        let daemon = Killed(
            ns.exec(&argv_ref)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("daemon"),
        );
        let up = in_netns(&ns, move || {
            let begun = Instant::now();
            while std::net::TcpStream::connect(("10.99.0.1", port)).is_err() {
                if begun.elapsed() > Duration::from_secs(5) {
                    return false;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            true
        });
        assert!(up, "{} does not listen in the namespace", argv[0]);
        transcripts.push(in_netns(&ns, move || remote_scenario(port)));
        drop(daemon);
    }
    let (c, ours) = (&transcripts[0], &transcripts[1]);
    assert_eq!(c.len(), ours.len());
    for ((label, want), (_, got)) in c.iter().zip(ours) {
        assert_eq!(got, want, "{label}: beamq {got:?} vs C epmd {want:?}");
    }
    // And the rule itself, not only the agreement: a remote peer cannot register.
    assert_eq!(
        ours[0].1,
        Vec::<u8>::new(),
        "remote ALIVE2 must be closed silently"
    );
    assert_eq!(
        ours[6].1,
        vec![b'v', 0],
        "ALIVE2 from the host's own address is local"
    );
}
