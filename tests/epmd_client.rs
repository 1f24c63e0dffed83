//! The async client (`beamq::epmd::client`) as the distribution layer uses it, against an
//! in-process server on 127.0.0.1:0, and `ensure_running` starting `beamq epmd -daemon`.
mod epmd_support;

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use beamq::epmd::client::{self, Alive2Req, ClientError};
use beamq::epmd::server::{Config, Server};
use epmd_support::*;
use tokio::sync::oneshot;

/// An in-process epmd; shut down on drop.
struct Local {
    addr: SocketAddr,
    _stop: oneshot::Sender<()>,
}

fn local(relaxed: bool) -> Local {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = oneshot::channel::<()>();
    let server = Server::new(
        vec![listener],
        Config {
            relaxed,
            ..Config::default()
        },
    );
    tokio::spawn(async move {
        let _ = server
            .run_until(async {
                let _ = stopped.await;
            })
            .await;
    });
    Local { addr, _stop: stop }
}

fn req(name: &str, port: u16) -> Alive2Req {
    Alive2Req {
        port,
        node_type: 77,
        protocol: 0,
        highvsn: 6,
        lowvsn: 6,
        name: name.into(),
        extra: b"ext".to_vec(),
    }
}

#[tokio::test]
async fn register_lookup_list_and_unregister_on_drop() {
    let epmd = local(false);
    let reg = client::register(epmd.addr, req("alpha", 6369))
        .await
        .expect("register");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(
        (i64::from(reg.creation()) - now as i64).abs() < 10,
        "creation {}",
        reg.creation()
    );

    let entry = client::port_please(epmd.addr, "alpha")
        .await
        .expect("port_please")
        .expect("found");
    assert_eq!(
        (entry.port, entry.node_type, entry.highvsn, entry.lowvsn),
        (6369, 77, 6, 6)
    );
    assert_eq!(
        (entry.name.as_str(), entry.extra.as_slice()),
        ("alpha", &b"ext"[..])
    );
    assert_eq!(
        client::port_please(epmd.addr, "nobody")
            .await
            .expect("port_please"),
        None
    );

    let (port, names) = client::names(epmd.addr).await.expect("names");
    assert_eq!(port, epmd.addr.port());
    assert_eq!(names, vec![("alpha".to_string(), 6369)]);

    match client::register(epmd.addr, req("alpha", 1)).await {
        Err(ClientError::Refused { name, result: 1 }) => assert_eq!(name, "alpha"),
        other => panic!("duplicate registration: {other:?}"),
    }

    drop(reg);
    for _ in 0..100 {
        if client::port_please(epmd.addr, "alpha")
            .await
            .expect("port_please")
            .is_none()
        {
            let again = client::register(epmd.addr, req("alpha", 6369))
                .await
                .expect("re-register");
            assert!(again.creation() > 3);
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("alpha still registered after its Registration was dropped");
}

#[tokio::test]
async fn registration_sees_stop() {
    let epmd = local(true);
    let mut reg = client::register(epmd.addr, req("beta", 6370))
        .await
        .expect("register");
    assert_eq!(
        client::stop(epmd.addr, "beta").await.expect("stop"),
        b"STOPPED".to_vec()
    );
    tokio::time::timeout(Duration::from_secs(5), reg.closed())
        .await
        .expect("closed() resolves after -stop");
}

#[tokio::test]
async fn nothing_listening_is_an_io_error() {
    let port = free_port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    assert!(matches!(
        client::names(addr).await,
        Err(ClientError::Io { .. })
    ));
    assert!(!client::is_running(addr).await);
}

/// Kills, by PID, the daemon `ensure_running` detached (found by its command line).
struct DaemonByCmdline(String);

impl Drop for DaemonByCmdline {
    fn drop(&mut self) {
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline)
                .replace('\0', " ")
                .trim_end()
                == self.0
            {
                // SAFETY: kill(2) on the daemon this test started.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
        }
    }
}

#[tokio::test]
async fn ensure_running_starts_a_daemon_once() {
    let port = free_port();
    let bin = beamq_bin();
    let _guard = DaemonByCmdline(format!("{} epmd -daemon -port {port}", bin.display()));
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    assert!(!client::is_running(addr).await);
    client::ensure_running(port, &bin)
        .await
        .expect("start epmd");
    assert!(
        client::is_running(addr).await,
        "epmd answers once ensure_running returns"
    );
    let reg = client::register(addr, req("gamma", 6371))
        .await
        .expect("register with started epmd");
    // A second call finds it running and starts nothing.
    client::ensure_running(port, &bin)
        .await
        .expect("already running");
    assert_eq!(
        client::names(addr).await.expect("names").1,
        vec![("gamma".to_string(), 6371)]
    );
    drop(reg);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(client::kill(addr).await.expect("kill"), b"OK".to_vec());
}
