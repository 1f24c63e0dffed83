//! Free loopback ports for tests that start beamq nodes: ekka name suffixes (dist port 4370 + N)
//! and `--port-offset` values whose listener ports are all free.
use std::net::TcpListener;

/// Whether 127.0.0.1:`port` can be bound now.
pub fn is_free(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// A free port picked by the kernel.
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr").port()
}

/// `n` consecutive name suffixes S.. with every ekka dist port 4370 + S + i free.
pub fn free_suffixes(n: u16) -> u16 {
    loop {
        let s = 20000 + rand::random::<u16>() % 40000;
        if (0..n).all(|i| is_free(4370 + s + i)) {
            return s;
        }
    }
}

/// A base port offset K such that, for every node i < `n` with offset K + `step` * i, the MQTT
/// (1883), WebSocket (8083), TLS (8883), HTTP (18083) and epmd-mode dist (6369) ports are free.
pub fn free_port_offset(n: u16, step: u16) -> u16 {
    let top = 65535 - 18083 - step * n;
    loop {
        let k = 1 + rand::random::<u16>() % top;
        let ports =
            (0..n).flat_map(|i| [1883u16, 8083, 8883, 18083, 6369].map(|base| base + k + step * i));
        if ports.into_iter().all(is_free) {
            return k;
        }
    }
}
