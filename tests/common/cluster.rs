//! `beamq start` nodes and `beamq ctl` calls for end-to-end cluster tests, in either port mode:
//! ekka (dist port from the name) or epmd (`WITH_EPMD=1`, a private `beamq epmd` on a free
//! port, never 4369). Every process is killed by pid when its guard drops.
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::ports::{free_listen_port, free_port_offset};

pub const BIN: &str = env!("CARGO_BIN_EXE_beamq");

/// A private `beamq epmd -port P` (foreground), killed on drop.
pub struct Epmd {
    child: Child,
    pub port: u16,
}

impl Epmd {
    pub fn start() -> Epmd {
        let port = free_listen_port();
        let child = Command::new(BIN)
            .args(["epmd", "-port", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let epmd = Epmd { child, port };
        wait_until(Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        epmd
    }
}

impl Drop for Epmd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How nodes and ctl find each other, and the cookie they share.
#[derive(Clone, Debug)]
pub struct Ctl {
    /// `Some(port)`: epmd mode with the epmd at that port.
    pub epmd: Option<u16>,
    pub cookie: String,
}

impl Ctl {
    pub fn ekka(cookie: &str) -> Ctl {
        Ctl {
            epmd: None,
            cookie: cookie.into(),
        }
    }

    pub fn epmd(epmd: &Epmd, cookie: &str) -> Ctl {
        Ctl {
            epmd: Some(epmd.port),
            cookie: cookie.into(),
        }
    }

    /// Sets the port-mode environment of a `beamq` command.
    pub fn apply(&self, cmd: &mut Command) {
        cmd.env_remove("EMQX_NODE_NAME")
            .env_remove("EMQX_NODE_COOKIE");
        match self.epmd {
            Some(p) => cmd
                .env("WITH_EPMD", "1")
                .env("ERL_EPMD_PORT", p.to_string()),
            None => cmd.env_remove("WITH_EPMD").env_remove("ERL_EPMD_PORT"),
        };
    }

    pub fn run_with_cookie(&self, node: &str, cookie: &str, args: &[&str]) -> Output {
        let mut cmd = Command::new(BIN);
        cmd.args(["ctl", "--node", node, "--cookie", cookie])
            .args(args);
        self.apply(&mut cmd);
        cmd.output().unwrap()
    }

    pub fn run(&self, node: &str, args: &[&str]) -> Output {
        self.run_with_cookie(node, &self.cookie, args)
    }

    /// Runs a command that must succeed; its trimmed stdout.
    pub fn ok(&self, node: &str, args: &[&str]) -> String {
        let out = self.run(node, args);
        let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert!(
            out.status.success(),
            "{node} {args:?}: {text} / {}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    }

    pub fn status(&self, node: &str) -> String {
        self.ok(node, &["cluster", "status"])
    }

    /// A command that must fail with `expect` in its stderr, within ctl's 10 s bound.
    pub fn fails_fast(&self, node: &str, cookie: &str, args: &[&str], expect: &str) {
        let t0 = Instant::now();
        let out = self.run_with_cookie(node, cookie, args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} should fail");
        assert!(err.contains(expect), "{args:?}: {err}");
        assert!(t0.elapsed() < Duration::from_secs(11), "{args:?} too slow");
    }
}

/// A running `beamq start`, killed by pid when dropped. Every listener port not derived from
/// the name is moved to a free one (`--port-offset`, MQTT on an ephemeral port); in epmd mode
/// the dist port is ephemeral too.
pub struct NodeProc {
    pub name: String,
    dir: PathBuf,
    ctl: Ctl,
    child: Option<Child>,
}

impl NodeProc {
    pub fn start(ctl: &Ctl, name: &str, dir: &Path) -> NodeProc {
        let offset = free_port_offset(1, 0).to_string();
        let mut cmd = Command::new(BIN);
        cmd.args(["start", "--name", name, "--cookie", &ctl.cookie])
            .args([
                "--mqtt-port",
                "0",
                "--ws-port",
                "off",
                "--port-offset",
                &offset,
            ])
            .arg("--data-dir")
            .arg(dir)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if ctl.epmd.is_some() {
            cmd.args(["--dist-listen-min", "0", "--dist-listen-max", "0"]);
        }
        ctl.apply(&mut cmd);
        let child = cmd.spawn().unwrap();
        let n = NodeProc {
            name: name.to_string(),
            dir: dir.to_path_buf(),
            ctl: ctl.clone(),
            child: Some(child),
        };
        wait_until(Duration::from_secs(10), || {
            ctl.run(name, &["cluster", "status"]).status.success()
        });
        n
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn restart(&mut self) {
        self.stop();
        let n = NodeProc::start(&self.ctl, &self.name, &self.dir);
        *self = n;
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Removes a test's data directories.
pub struct DirGuard(pub PathBuf);

impl Drop for DirGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < limit, "condition not met within {limit:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `Cluster status: ...` as emqx_ctl prints it.
pub fn expected(running: &[&str], stopped: &[&str]) -> String {
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
