//! Several acceptors for one listener (`listeners.*.default.acceptors`), each a thread with its
//! own tokio runtime and, on Linux, its own file descriptor table.
//!
//! Why a table of its own: `RLIMIT_NOFILE` caps the descriptor numbers of one table (the kernel's
//! `alloc_fd` in fs/file.c checks `rlimit(RLIMIT_NOFILE)`), and a thread that calls
//! `unshare(CLONE_FILES)` gets a private copy of the table (unshare(2)). In a container whose
//! hard limit cannot be raised (no `CAP_SYS_RESOURCE`), a listener with N acceptors then holds
//! up to N times the limit in connections. An acceptor's sockets exist only in its own table,
//! so everything that touches them (accept, read, write, close, the epoll registration) must run
//! on its thread: hence one current-thread runtime per acceptor, with the connection tasks
//! spawned there. They reach the broker through the same channels as on the node's runtime.
//!
//! All acceptors take from the one listening socket (`unshare` copies its descriptor into each
//! table). The kernel wakes every acceptor's epoll and one of them wins `accept`. An acceptor
//! that runs out of descriptors (EMFILE) pauses ([`super::transient`]) while the others keep
//! taking, so connections go to whoever has room. SO_REUSEPORT listeners would instead hash
//! connections into a full acceptor's queue, and would let a second process bind the same port
//! silently.

use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;

use tokio::net::TcpListener;

use super::Listener;

/// The most acceptors one listener may have (`listeners.*.default.acceptors`).
pub const MAX_ACCEPTORS: usize = 1024;

/// One acceptor's runtime, built on the node's descriptor table.
///
/// Why before any acceptor starts: a task on one runtime wakes a task on another by writing to
/// the other runtime's eventfd, by its descriptor number, in the waker's own table. Every
/// runtime's descriptors must therefore exist, at the same numbers, in every table: the node's
/// and each acceptor's copy. `unshare` copies the table as it is at that moment, so all
/// acceptor runtimes, of every listener, are built first ([`runtimes`]), then started
/// ([`spawn`]).
pub struct AcceptorRuntime(Option<tokio::runtime::Runtime>);

impl Drop for AcceptorRuntime {
    /// One that never started is dropped where it was built, on the node's runtime, where
    /// dropping a runtime the blocking way would panic.
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// Set once the first acceptor may have taken a table of its own: from then on a new runtime
/// would be missing from that table.
static STARTED: AtomicBool = AtomicBool::new(false);

/// `n` acceptor runtimes (at least one, at most [`MAX_ACCEPTORS`]). An error once any
/// acceptor has started: build the runtimes of every listener first.
pub fn runtimes(n: usize) -> io::Result<Vec<AcceptorRuntime>> {
    if STARTED.load(Ordering::SeqCst) {
        return Err(io::Error::other(
            "acceptor runtimes must all be built before the first acceptor starts",
        ));
    }
    build(n)
}

/// The runtimes for a listener configured with `acceptors`: none for 1 (it serves on the
/// node's runtime), else [`runtimes`].
pub fn runtimes_for(acceptors: usize) -> io::Result<Option<Vec<AcceptorRuntime>>> {
    match acceptors {
        0 | 1 => Ok(None),
        n => runtimes(n).map(Some),
    }
}

fn build(n: usize) -> io::Result<Vec<AcceptorRuntime>> {
    (0..n.clamp(1, MAX_ACCEPTORS))
        .map(|_| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map(|rt| AcceptorRuntime(Some(rt)))
        })
        .collect()
}

/// Moves `listener` onto one thread per runtime and runs `serve` on each, with a [`Listener`]
/// for the same socket. Returns once every acceptor is taking connections; an acceptor that
/// could not start is an error (the ones already started keep serving).
pub fn spawn<F, Fut>(listener: Listener, runtimes: Vec<AcceptorRuntime>, serve: F) -> io::Result<()>
where
    F: Fn(Listener) -> Fut + Send + Clone + 'static,
    Fut: Future<Output = io::Result<()>> + 'static,
{
    let addr = listener.local_addr()?;
    let Listener {
        tcp,
        handshake,
        timeout,
        ..
    } = listener;
    // Off the node's runtime: each acceptor registers its own descriptor with its own epoll.
    let socket = tcp.into_std()?;
    let fd = socket.as_raw_fd();
    STARTED.store(true, Ordering::SeqCst);
    for (i, mut acceptor) in runtimes.into_iter().enumerate() {
        let Some(rt) = acceptor.0.take() else {
            continue;
        };
        let (ready_tx, ready_rx) = mpsc::sync_channel(1);
        let serve = serve.clone();
        let handshake = handshake.clone();
        std::thread::Builder::new()
            .name(format!("mqtt-acceptor-{i}"))
            .spawn(move || {
                let started = start(fd).and_then(|(socket, private)| {
                    let _enter = rt.enter();
                    let tcp = TcpListener::from_std(std::net::TcpListener::from(socket))?;
                    Ok((tcp, private))
                });
                let (tcp, private) = match started {
                    Ok(s) => s,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(private));
                let listener = Listener {
                    tcp,
                    handshake,
                    timeout,
                    exhausted_logged: Default::default(),
                };
                if let Err(e) = rt.block_on(serve(listener)) {
                    tracing::error!(%addr, acceptor = i, "MQTT acceptor stopped: {e}");
                }
            })?;
        let private = ready_rx
            .recv()
            .map_err(|_| io::Error::other(format!("MQTT acceptor {i} on {addr} died")))??;
        if !private {
            tracing::warn!(
                %addr, acceptor = i,
                "no descriptor table of its own (unshare(CLONE_FILES) refused): the acceptors \
                 share the process's RLIMIT_NOFILE"
            );
        }
    }
    // Every acceptor holds the socket now (a copy in its table, or a duplicate); this closes
    // the node's own copy only.
    drop(socket);
    Ok(())
}

/// On the acceptor's thread: takes a table of its own if the system allows, and returns the
/// acceptor's own descriptor of the listening socket `fd`, and whether the table is private.
fn start(fd: RawFd) -> io::Result<(OwnedFd, bool)> {
    if private_table(fd) {
        // SAFETY: `unshare` copied the table, so `fd` is open in this thread's private table,
        // and nothing else in this table owns it.
        return Ok((unsafe { OwnedFd::from_raw_fd(fd) }, true));
    }
    // Still the shared table, where the node's copy closes once every acceptor started: a
    // duplicate of our own.
    // SAFETY: `fd` stays open until `spawn` has heard from this thread.
    let dup = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
    if dup < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `dup` is a new descriptor that nothing else owns.
    Ok((unsafe { OwnedFd::from_raw_fd(dup) }, false))
}

/// Gives this thread a descriptor table of its own (a copy of the node's), without the node's
/// TCP sockets other than `keep`. False where the system refuses.
#[cfg(target_os = "linux")]
fn private_table(keep: RawFd) -> bool {
    // SAFETY: unshare(CLONE_FILES) only changes which descriptor table this thread uses.
    if unsafe { libc::unshare(libc::CLONE_FILES) } != 0 {
        return false;
    }
    close_inet_sockets(keep);
    true
}

#[cfg(not(target_os = "linux"))]
fn private_table(_keep: RawFd) -> bool {
    false
}

/// Closes, in this thread's private table, the copies of the node's TCP sockets other than
/// `keep`. A copy holds its socket open: a distribution or epmd connection the node closes
/// later would otherwise stay up (no FIN) for as long as the acceptor runs. Everything else is
/// kept, because tasks on this thread may use it by number: eventfds and epolls of the
/// runtimes (wake-ups), tokio's signal socketpair (Unix domain), stdout and stderr (logs).
#[cfg(target_os = "linux")]
fn close_inet_sockets(keep: RawFd) {
    let Ok(dir) = std::fs::read_dir("/proc/thread-self/fd") else {
        return;
    };
    let fds: Vec<RawFd> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    for fd in fds {
        if fd > 2 && fd != keep && is_inet_socket(fd) {
            // SAFETY: a copy in this thread's private table that nothing on this thread owns
            // (no task has run here yet).
            unsafe { libc::close(fd) };
        }
    }
}

#[cfg(target_os = "linux")]
fn is_inet_socket(fd: RawFd) -> bool {
    let mut domain: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: SO_DOMAIN writes one c_int into `domain`; a descriptor that is no socket fails
    // with ENOTSOCK and writes nothing.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_DOMAIN,
            (&mut domain as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    rc == 0 && (domain == libc::AF_INET || domain == libc::AF_INET6)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mqtt::transport::{ListenerConfig, ListenerKind};
    use std::collections::HashSet;
    use std::io::Read as _;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    /// Each acceptor takes connections on its own thread, and they all serve one port.
    #[tokio::test]
    async fn acceptors_share_one_port() {
        let cfg = ListenerConfig::new("127.0.0.1:0".parse().unwrap(), ListenerKind::Tcp);
        let listener = Listener::bind(&cfg).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let threads = Arc::new(Mutex::new(HashSet::new()));
        let seen = threads.clone();
        spawn(listener, runtimes(3).unwrap(), move |l: Listener| {
            let seen = seen.clone();
            async move {
                loop {
                    let incoming = l.accept().await?;
                    let name = std::thread::current().name().unwrap_or("").to_owned();
                    seen.lock().unwrap().insert(name);
                    drop(incoming);
                }
            }
        })
        .unwrap();
        for _ in 0..200 {
            let mut c = std::net::TcpStream::connect(addr).unwrap();
            c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            // The acceptor drops the connection: EOF.
            let _ = c.read(&mut [0u8; 1]);
        }
        let names = threads.lock().unwrap().clone();
        assert!(!names.is_empty());
        assert!(
            names.iter().all(|n| n.starts_with("mqtt-acceptor-")),
            "{names:?}"
        );
    }

    /// Runtimes that never start are dropped on the node's runtime without a panic (a later
    /// listener failed to bind, say).
    #[tokio::test]
    async fn unstarted_runtimes_drop_in_async_context() {
        let rts = build(2).unwrap();
        drop(rts);
    }
}
