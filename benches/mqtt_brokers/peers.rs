//! The three brokers under test, each a child process on its own 127.0.0.1 port: Debian's
//! mosquitto 2, rumqttd 0.20 (installed with `cargo install rumqttd --version 0.20.0 --root
//! DIR`, a benchmark peer, never a dependency) and beamq's release binary (`beamq start`).
//! Every child is killed by PID when its guard drops.

use std::fmt::Write as _;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The outbound QoS 1/2 window every broker gets by default: rumqttd's shipped
/// `max_inflight_count` (mosquitto's `max_inflight_messages` defaults to 20, beamq's
/// `mqtt.max_inflight` to 32, as EMQX's), so that QoS 1 throughput compares brokers, not window
/// sizes. `--window default` leaves each broker at its own default instead.
pub const WINDOW: u16 = 100;

static WINDOW_SETTING: std::sync::OnceLock<Option<u16>> = std::sync::OnceLock::new();

/// Sets the window for every broker started from now on (`None`: each broker's default).
pub fn set_window(w: Option<u16>) {
    let _ = WINDOW_SETTING.set(w);
}

static ACCEPTORS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();

/// beamq's `listeners.tcp.default.acceptors` for every beamq started from now on.
pub fn set_acceptors(n: usize) {
    let _ = ACCEPTORS.set(n);
}

fn window() -> Option<u16> {
    *WINDOW_SETTING.get_or_init(|| Some(WINDOW))
}

/// Which broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Mosquitto,
    Rumqttd,
    Beamq,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Mosquitto => "mosquitto",
            Kind::Rumqttd => "rumqttd",
            Kind::Beamq => "beamq",
        }
    }
}

/// Where the binaries are.
#[derive(Debug, Clone)]
pub struct Binaries {
    pub mosquitto: PathBuf,
    pub rumqttd: PathBuf,
    pub beamq: PathBuf,
}

/// A running broker; killed on drop.
pub struct Broker {
    pub kind: Kind,
    pub port: u16,
    child: Child,
    dir: tempfile::TempDir,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nothing listens on right now, below the kernel's client port range: the idle
/// axis holds 19,000 client connections and leaves them in TIME_WAIT, and a port the kernel
/// hands out with bind(0) lies in that range ("address already in use" at the broker's bind).
pub fn free_port() -> std::io::Result<u16> {
    Ok(crate::ports::free_listen_port())
}

/// An ekka node number `N` (dist port 4370 + N) whose port is free.
fn free_ekka_number() -> u16 {
    (30..200)
        .find(|n| TcpListener::bind(("0.0.0.0", 4370 + n)).is_ok())
        .unwrap_or(199)
}

impl Broker {
    /// Starts `kind` and waits until its MQTT port accepts connections. Retried on a fresh
    /// port: beamq binds 0.0.0.0, which a client socket of an earlier run on 127.0.1.x (same
    /// port number, TIME_WAIT) can still block.
    pub fn start(kind: Kind, bins: &Binaries, max_conns: usize) -> Result<Broker, String> {
        let mut last = String::new();
        for _ in 0..4 {
            match Broker::start_once(kind, bins, max_conns) {
                Ok(b) => return Ok(b),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    fn start_once(kind: Kind, bins: &Binaries, max_conns: usize) -> Result<Broker, String> {
        let port = free_port().map_err(|e| e.to_string())?;
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let log = std::fs::File::create(dir.path().join("log")).map_err(|e| e.to_string())?;
        let mut cmd = match kind {
            Kind::Mosquitto => {
                let conf = dir.path().join("mosquitto.conf");
                let mut text = format!(
                    "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n\
                     max_connections -1\nlog_dest stderr\nlog_type error\n"
                );
                if let Some(w) = window() {
                    let _ = writeln!(text, "max_inflight_messages {w}");
                }
                std::fs::write(&conf, text).map_err(|e| e.to_string())?;
                let mut c = Command::new(&bins.mosquitto);
                c.arg("-c").arg(conf);
                c
            }
            Kind::Rumqttd => {
                let conf = dir.path().join("rumqttd.toml");
                std::fs::write(&conf, rumqttd_config(port, max_conns))
                    .map_err(|e| e.to_string())?;
                let mut c = Command::new(&bins.rumqttd);
                c.arg("-c").arg(conf);
                c
            }
            Kind::Beamq => {
                let n = free_ekka_number();
                let mut c = Command::new(&bins.beamq);
                c.args(["start", "--name", &format!("mqttbench{n}@127.0.0.1")])
                    .args(["--cookie", "mqttbench", "--mqtt-port", &port.to_string()])
                    .args(["--port-offset", &(20000 + n).to_string()])
                    .arg("--data-dir")
                    .arg(dir.path().join("data"));
                c.env("RUST_LOG", "warn").env(
                    "EMQX_LISTENERS__TCP__DEFAULT__ACCEPTORS",
                    ACCEPTORS.get().copied().unwrap_or(1).to_string(),
                );
                if let Some(w) = window() {
                    c.env("EMQX_MQTT__MAX_INFLIGHT", w.to_string());
                }
                c
            }
        };
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("{}: {e}", kind.name()))?;
        let mut broker = Broker {
            kind,
            port,
            child,
            dir,
        };
        broker.wait_listening()?;
        Ok(broker)
    }

    fn wait_listening(&mut self) -> Result<(), String> {
        let until = Instant::now() + Duration::from_secs(20);
        while Instant::now() < until {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!(
            "{} did not listen on {}: {}",
            self.kind.name(),
            self.port,
            std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
        ))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident set size in bytes (`VmRSS` of /proc/PID/status).
    pub fn rss(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    }
}

/// rumqttd 0.20's shipped `rumqttd.toml` values, with our port, no v5 or prometheus listener,
/// enough `max_connections` for the idle test, and no pause between accepts
/// (`next_connection_delay_ms = 0`; the shipped 1 ms caps it at ~1 k connections/s).
fn rumqttd_config(port: u16, max_conns: usize) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "id = 0\n\n[router]\nid = 0\nmax_connections = {max_conns}\n\
         max_outgoing_packet_count = 200\nmax_segment_size = 104857600\nmax_segment_count = 10\n\n\
         [v4.1]\nname = \"v4-1\"\nlisten = \"127.0.0.1:{port}\"\nnext_connection_delay_ms = 0\n\
         [v4.1.connections]\nconnection_timeout_ms = 60000\nmax_payload_size = 20480\n\
         max_inflight_count = {}\ndynamic_filters = true\n",
        window().unwrap_or(RUMQTTD_SHIPPED_WINDOW)
    );
    s
}

/// `max_inflight_count` in rumqttd 0.20's shipped `rumqttd.toml`.
const RUMQTTD_SHIPPED_WINDOW: u16 = 100;

/// Finds a binary: `env` if set, else the first existing candidate.
pub fn find(env: &str, candidates: &[&str]) -> Option<PathBuf> {
    if let Ok(p) = std::env::var(env) {
        return Some(PathBuf::from(p));
    }
    candidates
        .iter()
        .map(Path::new)
        .find(|p| p.exists())
        .map(Path::to_path_buf)
}
