//! Process-level chores of C epmd (`erts/epmd/src/epmd.c`): detaching as a daemon, and the
//! descriptor budget (C's `max_conn`), plus systemd socket activation (`-systemd`).

use std::io;
use std::net::TcpListener;
use std::os::fd::FromRawFd;

/// Descriptors kept for stdio, listeners and the runtime itself.
const RESERVED_FDS: u64 = 32;

/// Raise the soft `RLIMIT_NOFILE` to the hard limit and return how many connections may be open
/// at once. C caps this at `FD_SETSIZE` (1024) because of `select`; we need no such cap.
pub fn raise_fd_limit() -> usize {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
    }
    let cur = if lim.rlim_cur == libc::RLIM_INFINITY {
        1 << 20
    } else {
        lim.rlim_cur
    };
    usize::try_from(cur.saturating_sub(RESERVED_FDS).max(16)).unwrap_or(1 << 20)
}

/// Use one malloc arena. With glibc's default of one arena per thread, the holes left by
/// thousands of short connections interleaved with long-lived registrations make the resident
/// size climb by megabytes from one identical burst to the next; a single arena keeps it flat
/// (see docs/decisions.md). Call before the runtime's threads start.
pub fn single_malloc_arena() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tuning; called before other threads exist.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// Detach as C's `run_daemon` does: fork, `setsid`, ignore SIGHUP, fork again, `chdir /`,
/// `umask 0`, stdio to `/dev/null`. Parents exit 0. Call before any thread exists (before the
/// tokio runtime is built).
pub fn detach() -> io::Result<()> {
    // SAFETY: called while the process is single-threaded; the children only continue with
    // plain Rust code, and the parents leave through `_exit` without running destructors.
    unsafe {
        match libc::fork() {
            -1 => return Err(io::Error::last_os_error()),
            0 => {}
            _ => libc::_exit(0),
        }
        if libc::setsid() < 0 {
            return Err(io::Error::last_os_error());
        }
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
        match libc::fork() {
            -1 => return Err(io::Error::last_os_error()),
            0 => {}
            _ => libc::_exit(0),
        }
        if libc::chdir(c"/".as_ptr()) < 0 {
            return Err(io::Error::last_os_error());
        }
        libc::umask(0);
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        if null >= 0 {
            for fd in 0..3 {
                libc::dup2(null, fd);
            }
            if null > 2 {
                libc::close(null);
            }
        }
    }
    Ok(())
}

/// `SD_LISTEN_FDS_START`.
const LISTEN_FDS_START: i32 = 3;

/// Listening sockets passed by systemd (`sd_listen_fds`): `LISTEN_PID` must be us and
/// `LISTEN_FDS` says how many start at fd 3.
pub fn systemd_listeners() -> io::Result<Vec<TcpListener>> {
    let for_us = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
        == Some(std::process::id());
    let count = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|n| n.parse::<i32>().ok())
        .unwrap_or(0);
    if !for_us || count <= 0 {
        return Err(io::Error::other("systemd provides no sockets"));
    }
    if count as usize > super::listen::MAX_LISTEN_SOCKETS {
        return Err(io::Error::other(
            "cannot listen on more than 16 IP addresses",
        ));
    }
    // SAFETY: systemd hands these descriptors to us for our exclusive use.
    Ok((0..count)
        .map(|i| unsafe { TcpListener::from_raw_fd(LISTEN_FDS_START + i) })
        .collect())
}

/// `sd_notify` readiness, as C epmd sends it with `-systemd`; silent without `NOTIFY_SOCKET`.
pub fn systemd_notify_ready() {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let msg = format!(
        "READY=1\nSTATUS=Processing port mapping requests...\nMAINPID={}",
        std::process::id()
    );
    let Ok(sock) = std::os::unix::net::UnixDatagram::unbound() else {
        return;
    };
    let bytes = std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str());
    let sent = if let Some(abstract_name) = bytes.strip_prefix(b"@") {
        <std::os::unix::net::SocketAddr as std::os::linux::net::SocketAddrExt>::from_abstract_name(
            abstract_name,
        )
        .and_then(|addr| sock.send_to_addr(msg.as_bytes(), &addr))
    } else {
        sock.send_to(msg.as_bytes(), &path)
    };
    if let Err(e) = sent {
        tracing::warn!("sd_notify failed: {e}");
    }
}
