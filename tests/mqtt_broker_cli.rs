//! `beamq start` serves MQTT: Debian's `mosquitto_sub` / `mosquitto_pub` against the binary.

use std::io::{BufRead as _, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_beamq");

/// Kills the child by PID when the test ends, pass or fail.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn mosquitto_clients_against_beamq_start() {
    let n = loop {
        let n: u16 = 20000 + rand::random::<u16>() % 30000;
        if TcpListener::bind(("127.0.0.1", 4370 + n)).is_ok() {
            break n;
        }
    };
    let name = format!("bqmqtt{n}@127.0.0.1");
    let mut child = Command::new(BIN)
        .args([
            "start",
            "--name",
            &name,
            "--cookie",
            "mqtt_cli",
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
    let _guard = Guard(child);
    let mut lines = BufReader::new(stdout).lines();
    let _dist = lines.next().unwrap().unwrap();
    let mqtt = lines.next().unwrap().unwrap();
    let port = mqtt
        .strip_prefix("beamq mqtt listening on port ")
        .unwrap_or_else(|| panic!("unexpected line {mqtt:?}"))
        .to_owned();

    // A retained QoS 1 message, then a live QoS 2 one, to a subscriber with -C 2.
    let status = Command::new("mosquitto_pub")
        .args(["-p", &port, "-t", "cli/ret", "-m", "kept", "-q", "1", "-r"])
        .status()
        .unwrap();
    assert!(status.success());
    let sub = Command::new("mosquitto_sub")
        .args([
            "-p", &port, "-t", "cli/#", "-v", "-q", "2", "-C", "2", "-W", "10",
        ])
        .args(["-V", "mqttv5"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut sub = Guard(sub);
    let mut out = BufReader::new(sub.0.stdout.take().unwrap()).lines();
    assert_eq!(out.next().unwrap().unwrap(), "cli/ret kept");
    let status = Command::new("mosquitto_pub")
        .args(["-p", &port, "-t", "cli/live", "-m", "hello", "-q", "2"])
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(out.next().unwrap().unwrap(), "cli/live hello");
    assert!(sub.0.wait().unwrap().success());
}
