//! Accepting connections, and answering a query that arrived together with its connection
//! without a task, a timer or an epoll registration.
//!
//! erl asks epmd one question per connection and usually sends it right after `connect`, so by
//! the time the daemon accepts, the request is often already in the socket. Then one
//! non-blocking `read`, one `write` and `close` answer it, which is less work per connection than
//! C epmd's `select` loop does (`do_accept`/`do_read` in `erts/epmd/src/epmd_srv.c`). Anything
//! else (partial packets, registrations, KILL, full socket buffers) goes to a task in
//! [`server::serve`], with exactly the same semantics.

use std::io::{self, Read, Write};
use std::mem::MaybeUninit;
use std::net::{SocketAddr, TcpListener as StdListener, TcpStream as StdStream};
use std::os::fd::{AsRawFd, FromRawFd};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::net::TcpStream;

use super::listen::is_local_peer;
use super::request::Request;
use super::server::{self, Resume, Shared};
use super::service::{After, Peer};
use super::wire::{Framing, PacketReader};

/// Accept connections on `listener` for ever (several of these may share one listener).
pub(super) async fn accept_loop(listener: Arc<AsyncFd<StdListener>>, shared: Arc<Shared>) {
    loop {
        if !shared.config.delay_accept.is_zero() {
            tokio::time::sleep(shared.config.delay_accept).await;
        }
        let accepted = match listener.readable().await {
            Ok(mut guard) => match guard.try_io(|l| accept_raw(l.get_ref())) {
                Ok(result) => result,
                Err(_would_block) => continue,
            },
            Err(e) => Err(e),
        };
        let (stream, peer_addr) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning; the connection stays queued.
                tracing::warn!("error in accept: {e}");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let Ok(permit) = shared.budget.clone().try_acquire_owned() else {
            tracing::warn!("failed opening connection from {peer_addr}: connection limit reached");
            continue;
        };
        // Like C, ask for our own address only when the peer is not on loopback.
        let local =
            is_local_peer(peer_addr, None) || is_local_peer(peer_addr, stream.local_addr().ok());
        let peer = Peer {
            local,
            fd: stream.as_raw_fd(),
            conn: shared.next_conn.fetch_add(1, Ordering::Relaxed),
        };
        let Some(resume) = fast_path(&stream, &peer, peer_addr, &shared) else {
            continue;
        };
        match TcpStream::from_std(stream) {
            Ok(stream) => {
                tokio::spawn(server::serve(
                    stream,
                    peer_addr,
                    peer,
                    shared.clone(),
                    permit,
                    resume,
                ));
            }
            Err(e) => tracing::warn!("cannot register connection from {peer_addr}: {e}"),
        }
    }
}

/// `accept4` with `SOCK_NONBLOCK | SOCK_CLOEXEC`: one syscall, and the peer address with it.
fn accept_raw(listener: &StdListener) -> io::Result<(StdStream, SocketAddr)> {
    let mut storage = MaybeUninit::<libc::sockaddr_storage>::zeroed();
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: accept4 writes at most `len` bytes of address into `storage`.
    let fd = unsafe {
        libc::accept4(
            listener.as_raw_fd(),
            storage.as_mut_ptr().cast(),
            &mut len,
            libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a freshly accepted socket that nothing else owns.
    let stream = unsafe { StdStream::from_raw_fd(fd) };
    // SAFETY: the kernel initialised `len` bytes of a sockaddr_storage.
    let addr = unsafe { socket2::SockAddr::new(storage.assume_init(), len) };
    let peer = addr
        .as_socket()
        .ok_or_else(|| io::Error::other("accepted a non-IP connection"))?;
    Ok((stream, peer))
}

/// Try to finish the connection right here; `None` when it is done (answered or closed).
fn fast_path(
    stream: &StdStream,
    peer: &Peer,
    peer_addr: SocketAddr,
    shared: &Shared,
) -> Option<Resume> {
    let mut reader = PacketReader::new();
    let n = match (&*stream).read(reader.read_buf()) {
        Ok(0) => return None,
        Ok(n) => n,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Some(Resume::Read(reader)),
        Err(e) => {
            tracing::warn!("error in read: {e}");
            return None;
        }
    };
    match reader.advance(n) {
        Ok(Framing::Complete) => {}
        Ok(Framing::NeedMore) => return Some(Resume::Read(reader)),
        Err(e) => {
            tracing::warn!("{e}");
            return None;
        }
    }
    let req = match Request::decode(reader.body()) {
        Ok(req) => req,
        Err(e) => {
            tracing::warn!("{e}");
            return None;
        }
    };
    if !shared.config.delay_write.is_zero()
        || matches!(
            req,
            Request::Alive2(_) | Request::Alive2Refused { .. } | Request::Kill
        )
    {
        return Some(Resume::Answer(req));
    }
    let outcome = server::answer(shared, peer, req);
    debug_assert_eq!(outcome.after, After::Close);
    server::side_effects(shared, &outcome, peer_addr);
    match (&*stream).write(&outcome.reply) {
        Ok(n) if n == outcome.reply.len() => None,
        Ok(n) => Some(Resume::Flush(outcome.reply[n..].to_vec())),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Some(Resume::Flush(outcome.reply)),
        Err(e) => {
            tracing::warn!("failed to send answer to {peer_addr}: {e}");
            None
        }
    }
}
