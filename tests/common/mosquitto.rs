//! Starts Debian's mosquitto on a free loopback port with a config written to a temp dir, and
//! kills it by PID when dropped.

use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running mosquitto; killed on drop.
pub struct Mosquitto {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts mosquitto with `listener PORT 127.0.0.1` plus `extra` config lines; `files` are
/// written into the config's directory first (name, contents) and `$DIR` in `extra` is
/// replaced by that directory.
pub fn start(extra: &str, files: &[(&str, &[u8])]) -> Mosquitto {
    let bin = Path::new("/usr/sbin/mosquitto");
    assert!(
        bin.exists(),
        "mosquitto is not installed (apt-get install mosquitto)"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, body) in files {
        std::fs::write(dir.path().join(name), body).expect("write file");
    }
    let port = super::ports::free_listen_port();
    let conf = dir.path().join("mosquitto.conf");
    let extra = extra.replace("$DIR", &dir.path().to_string_lossy());
    std::fs::write(&conf, format!("listener {port} 127.0.0.1\n{extra}\n")).expect("write conf");
    let child = Command::new(bin)
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn mosquitto");
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let m = Mosquitto {
        child,
        addr,
        _dir: dir,
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(addr).is_err() {
        assert!(
            Instant::now() < deadline,
            "mosquitto did not start on {addr}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    m
}
