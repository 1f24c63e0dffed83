//! Helpers shared by the `tests/epmd_*.rs` end-to-end tests: daemons on ports the test picks,
//! killed by PID when dropped, and raw request/response exchanges.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The beamq binary cargo built for these tests.
pub fn beamq_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_beamq"))
}

/// OTP's C epmd, the reference implementation.
pub const C_EPMD: &str = "/usr/bin/epmd";

/// Whether the reference C epmd is installed (scripts/test-all installs erlang-nox).
pub fn have_c_epmd() -> bool {
    Path::new(C_EPMD).exists()
}

/// A port free on 127.0.0.1 and ::1 right now.
pub fn free_port() -> u16 {
    loop {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = l.local_addr().expect("local addr").port();
        if TcpListener::bind(("::1", port)).is_ok() {
            return port;
        }
    }
}

/// A running epmd (ours or C's) on loopback; killed by PID on drop.
pub struct Daemon {
    pub child: Child,
    pub port: u16,
    pub name: &'static str,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Daemon {
    /// 127.0.0.1:port.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Whether the process has exited (e.g. after KILL_REQ).
    pub fn exited_within(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

/// Start an epmd binary in the foreground on a fresh loopback port with extra flags.
pub fn start_with(program: &Path, prefix: &[&str], name: &'static str, extra: &[&str]) -> Daemon {
    start_on_free_port(name, |port| {
        let port_s = port.to_string();
        let mut args: Vec<&str> = prefix.to_vec();
        args.extend(["-port", &port_s, "-address", "127.0.0.1"]);
        args.extend(extra);
        let mut command = Command::new(program);
        command
            .args(&args)
            .env_remove("ERL_EPMD_PORT")
            .env_remove("ERL_EPMD_ADDRESS")
            .env_remove("ERL_EPMD_RELAXED_COMMAND_CHECK")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        command.spawn().expect("spawn epmd")
    })
}

/// Spawn a daemon (`spawn(port)`) on a port that was free when picked, and wait until that very
/// process listens on it. The port may be taken by anything else on the machine between the
/// pick and the daemon's bind (a kernel-chosen port is also every client socket's candidate
/// source port); then the daemon exits "already running" and something else may even answer on
/// the port. So only a listening socket owned by our child counts, and a child that exits
/// before listening is started again on a fresh port (5 tries).
pub fn start_on_free_port(name: &'static str, mut spawn: impl FnMut(u16) -> Child) -> Daemon {
    for _ in 0..5 {
        let port = free_port();
        let mut daemon = Daemon {
            child: spawn(port),
            port,
            name,
        };
        if wait_owned_listener(&mut daemon) {
            return daemon;
        }
    }
    panic!("{name}: could not start on a free port in 5 tries");
}

/// Until `daemon.child` listens on 127.0.0.1:`daemon.port` (true) or exits (false); 10 s at most.
fn wait_owned_listener(daemon: &mut Daemon) -> bool {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        if let Ok(Some(_)) = daemon.child.try_wait() {
            return false;
        }
        if listens_on(daemon.child.id(), daemon.port) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!(
        "{} never listened on 127.0.0.1:{}",
        daemon.name, daemon.port
    );
}

/// Whether process `pid` holds a TCP socket listening on `port` (Linux: the socket inodes in
/// /proc/PID/fd against the LISTEN rows of /proc/net/tcp{,6}).
pub fn listens_on(pid: u32, port: u16) -> bool {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    let inodes: Vec<String> = fds
        .flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .filter_map(|target| {
            let t = target.to_string_lossy().into_owned();
            t.strip_prefix("socket:[")
                .and_then(|rest| rest.strip_suffix(']'))
                .map(str::to_owned)
        })
        .collect();
    let want_port = format!(":{port:04X}");
    ["/proc/net/tcp", "/proc/net/tcp6"].iter().any(|table| {
        std::fs::read_to_string(table)
            .unwrap_or_default()
            .lines()
            .skip(1)
            .any(|row| {
                let cols: Vec<&str> = row.split_whitespace().collect();
                cols.len() > 9
                    && cols[1].ends_with(&want_port)
                    && cols[3] == "0A"
                    && inodes.iter().any(|i| i == cols[9])
            })
    })
}

/// Our epmd with extra flags.
pub fn start_beamq(extra: &[&str]) -> Daemon {
    start_with(&beamq_bin(), &["epmd"], "beamq", extra)
}

/// OTP's C epmd with extra flags.
pub fn start_c(extra: &[&str]) -> Daemon {
    start_with(Path::new(C_EPMD), &[], "c-epmd", extra)
}

/// Block until something accepts on 127.0.0.1:port (5 s at most).
pub fn wait_listening(port: u16) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(5) {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("nothing listens on 127.0.0.1:{port}");
}

/// Connect to 127.0.0.1:port with read timeouts set.
pub fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).expect("connect epmd");
    s.set_read_timeout(Some(Duration::from_secs(3)))
        .expect("timeout");
    s
}

/// Everything the server sends until it closes (a reset counts as a close).
pub fn read_to_close(s: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return out,
            Err(e) => panic!("epmd neither answered nor closed: {e} (got {out:?})"),
        }
    }
}

/// Send raw bytes on a fresh connection; return all bytes until the server closes.
pub fn exchange(port: u16, bytes: &[u8]) -> Vec<u8> {
    let mut s = connect(port);
    s.write_all(bytes).expect("write request");
    read_to_close(&mut s)
}

/// Frame a request body with its 16-bit length.
pub fn framed(body: &[u8]) -> Vec<u8> {
    let mut v = (body.len() as u16).to_be_bytes().to_vec();
    v.extend_from_slice(body);
    v
}

/// An ALIVE2_REQ body.
pub fn alive2_body(name: &[u8], port: u16, highvsn: u16, extra: &[u8]) -> Vec<u8> {
    let mut b = vec![b'x'];
    b.extend_from_slice(&port.to_be_bytes());
    b.extend_from_slice(&[77, 0]);
    b.extend_from_slice(&highvsn.to_be_bytes());
    b.extend_from_slice(&5u16.to_be_bytes());
    b.extend_from_slice(&(name.len() as u16).to_be_bytes());
    b.extend_from_slice(name);
    b.extend_from_slice(&(extra.len() as u16).to_be_bytes());
    b.extend_from_slice(extra);
    b
}

/// Register and keep the connection: returns it with the answer (4 or 6 bytes).
pub fn register(port: u16, body: &[u8]) -> (TcpStream, Vec<u8>) {
    let mut s = connect(port);
    s.write_all(&framed(body)).expect("write ALIVE2_REQ");
    let want = if u16::from_be_bytes([body[5], body[6]]) >= 6 {
        6
    } else {
        4
    };
    let mut resp = vec![0u8; want];
    s.read_exact(&mut resp).expect("ALIVE2 answer");
    (s, resp)
}

/// NAMES_REQ answer.
pub fn names(port: u16) -> Vec<u8> {
    exchange(port, &framed(b"n"))
}

/// Poll NAMES until `pred` holds on its text (3 s at most): unregistration is asynchronous.
pub fn wait_names(port: u16, pred: impl Fn(&str) -> bool) -> String {
    let start = Instant::now();
    loop {
        let raw = names(port);
        let text = String::from_utf8_lossy(&raw[4.min(raw.len())..]).into_owned();
        if pred(&text) || start.elapsed() > Duration::from_secs(3) {
            return text;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Run a program to completion, capturing output.
pub fn run(program: &Path, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .env_remove("ERL_EPMD_PORT")
        .env_remove("ERL_EPMD_ADDRESS")
        .output()
        .expect("run program")
}

/// Resident memory of a process in KiB (from /proc).
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Replace the digits after every `fd = ` (descriptor numbers differ between daemons).
pub fn mask_fds(dump: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(dump.len());
    let mut i = 0;
    while i < dump.len() {
        if dump[i..].starts_with(b"fd = ") {
            out.extend_from_slice(b"fd = #");
            i += 5;
            while i < dump.len() && dump[i].is_ascii_digit() {
                i += 1;
            }
        } else {
            out.push(dump[i]);
            i += 1;
        }
    }
    out
}
