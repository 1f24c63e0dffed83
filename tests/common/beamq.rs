//! `beamq start` as a child process on ports it picks: a free ekka dist port (from the node
//! name), MQTT listeners on port 0 unless the test says otherwise; killed by PID on drop.

use std::collections::HashMap;
use std::io::{BufRead as _, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

pub const BIN: &str = env!("CARGO_BIN_EXE_beamq");

/// A running `beamq start`.
pub struct Beamq {
    child: Child,
    /// Node name.
    pub name: String,
    /// Listener ports by kind: `tcp`, `tls`, `ws`.
    pub ports: HashMap<String, u16>,
    /// Working directory (data dir, config files); removed on drop.
    pub dir: tempfile::TempDir,
}

impl Drop for Beamq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A node name whose ekka dist port (4370 + suffix) is free now, below the kernel's client port
/// range (see `ports::ephemeral_low`) so no client socket takes it before the node binds it.
pub fn free_node_name(prefix: &str) -> String {
    loop {
        let n: u16 = 1000 + rand::random::<u16>() % 27000;
        if TcpListener::bind(("127.0.0.1", 4370 + n)).is_ok() {
            return format!("{prefix}{n}@127.0.0.1");
        }
    }
}

fn command(dir: &Path, name: &str, args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.args(["start", "--name", name, "--cookie", "beamq_test"])
        .arg("--data-dir")
        .arg(dir.join("data"))
        .args(args)
        .current_dir(dir)
        .env_remove("WITH_EPMD")
        .env_remove("EMQX_NODE_NAME")
        .env_remove("EMQX_NODE_COOKIE")
        .env("RUST_LOG", "warn");
    // The kernel kills the node if the test process dies first (a killed `cargo test` leaves
    // no broker behind); Drop covers every other end.
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut c, || {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    c
}

impl Beamq {
    /// Starts with `args` after `start --name N --cookie C --data-dir D`; `config` (when
    /// given) is written to `beamq.conf` in the node's directory and passed as `--config`.
    /// Waits for the node line and `listeners` listener lines.
    pub fn start(args: &[&str], config: Option<&str>, listeners: usize) -> Beamq {
        Beamq::start_in(tempfile::tempdir().unwrap(), args, config, listeners)
    }

    /// As [`Beamq::start`], in a directory the test prepared (certificates, password file).
    pub fn start_in(
        dir: tempfile::TempDir,
        args: &[&str],
        config: Option<&str>,
        listeners: usize,
    ) -> Beamq {
        Beamq::start_limited(dir, args, config, listeners, None)
    }

    /// As [`Beamq::start_in`], with the node's `RLIMIT_NOFILE` (soft and hard) set to `nofile`
    /// when given.
    pub fn start_limited(
        dir: tempfile::TempDir,
        args: &[&str],
        config: Option<&str>,
        listeners: usize,
        nofile: Option<u64>,
    ) -> Beamq {
        let name = free_node_name("bqt");
        let mut cmd = configured_command(dir.path(), &name, args, config);
        if let Some(n) = nofile {
            // SAFETY: setrlimit is async-signal-safe and touches no memory of the parent.
            unsafe {
                std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
                    let lim = libc::rlimit {
                        rlim_cur: n,
                        rlim_max: n,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut node = Beamq {
            child,
            name,
            ports: HashMap::new(),
            dir,
        };
        let mut lines = BufReader::new(stdout).lines();
        let first = lines.next().unwrap().unwrap();
        assert!(first.contains(" started, dist port "), "{first:?}");
        for _ in 0..listeners {
            let l = lines.next().unwrap().unwrap();
            let rest = l
                .strip_prefix("beamq mqtt ")
                .unwrap_or_else(|| panic!("{l:?}"));
            let (kind, port) = rest.split_once("listening on port ").unwrap();
            let kind = match kind.trim() {
                "" => "tcp",
                k => k,
            };
            node.ports.insert(kind.to_owned(), port.parse().unwrap());
        }
        node
    }

    /// Sends a signal to the node.
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on the pid of a child this value owns and has not reaped.
        let rc = unsafe { libc::kill(self.child.id() as i32, sig) };
        assert_eq!(rc, 0);
    }

    /// The port of listener `kind`.
    pub fn port(&self, kind: &str) -> u16 {
        *self
            .ports
            .get(kind)
            .unwrap_or_else(|| panic!("no {kind} listener: {:?}", self.ports))
    }

    /// The node's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A path in the node's directory.
    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }
}

/// [`command`], plus `--config` pointing at `config` written into `dir` when given.
fn configured_command(dir: &Path, name: &str, args: &[&str], config: Option<&str>) -> Command {
    let mut cmd = command(dir, name, args);
    if let Some(text) = config {
        let path = dir.join("beamq.conf");
        std::fs::write(&path, text).unwrap();
        cmd.arg("--config").arg(path);
    }
    cmd
}

/// Runs `beamq start` expecting it to exit (a configuration error): its output.
pub fn start_output(args: &[&str], config: Option<&str>) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let name = free_node_name("bqf");
    let mut child = configured_command(dir.path(), &name, args, config)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "beamq start {args:?} kept running: {}",
                String::from_utf8_lossy(&out.stdout)
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// A self-signed CA and a server certificate for `localhost` / 127.0.0.1 it signed, written
/// as `ca.pem`, `cert.pem`, `key.pem` into `dir`.
pub fn write_test_certs(dir: &Path) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "beamq test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let params =
        CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
    let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
}
