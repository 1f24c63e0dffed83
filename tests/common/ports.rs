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

/// The first port the kernel hands out to client sockets (`ip_local_port_range`, 32768 by
/// default). Ports a test picks itself stay below it: every `connect` on the machine takes a
/// port from that range (and keeps it for 60 s in TIME_WAIT), so a port found free there is
/// often taken by the time the node binds it.
pub fn ephemeral_low() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next().and_then(|p| p.parse().ok()))
        .unwrap_or(32768)
}

/// A port for a test's own listener (epmd), free now and below [`ephemeral_low`], so no
/// `connect` on the machine takes it before the listener binds it (a port picked by the kernel
/// with bind(0) lies in that range and was once taken meanwhile: "address in use").
pub fn free_listen_port() -> u16 {
    let span = ephemeral_low().saturating_sub(10_000).max(1);
    loop {
        let p = 10_000 + rand::random::<u16>() % span;
        if is_free(p) {
            return p;
        }
    }
}

/// `n` consecutive name suffixes S.. with every ekka dist port 4370 + S + i free, all below
/// [`ephemeral_low`].
pub fn free_suffixes(n: u16) -> u16 {
    let span = ephemeral_low().saturating_sub(4370 + 1000 + n).max(1);
    loop {
        let s = 1000 + rand::random::<u16>() % span;
        if (0..n).all(|i| is_free(4370 + s + i)) {
            return s;
        }
    }
}

/// A base port offset K such that, for every node i < `n` with offset K + `step` * i, the MQTT
/// (1883), WebSocket (8083), TLS (8883), HTTP (18083) and epmd-mode dist (6369) ports are free,
/// all below [`ephemeral_low`].
pub fn free_port_offset(n: u16, step: u16) -> u16 {
    let top = ephemeral_low().saturating_sub(18083 + step * n).max(2);
    loop {
        let k = 1 + rand::random::<u16>() % top;
        let ports =
            (0..n).flat_map(|i| [1883u16, 8083, 8883, 18083, 6369].map(|base| base + k + step * i));
        if ports.into_iter().all(is_free) {
            return k;
        }
    }
}
