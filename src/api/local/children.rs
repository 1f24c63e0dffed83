//! The child processes of `beamq cluster-local`, none of which may outlive it: each child runs
//! in its own process group and asks the kernel for SIGKILL when its parent dies
//! (`prctl(PR_SET_PDEATHSIG)`, prctl(2)), and [`Children`] stops them in order (nodes, then the
//! epmd; SIGTERM, a grace period, SIGKILL) and reaps every one, also on drop.
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::LocalError;

/// How long children get between SIGTERM and SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// A child process, stopped (SIGTERM, grace, SIGKILL) and reaped by [`Children::stop_all`] or
/// on drop.
pub(super) struct Proc {
    pub(super) name: String,
    pub(super) child: Child,
    pub(super) exited: Option<ExitStatus>,
}

/// Every child this process started: nodes first, then (if started here) the epmd.
#[derive(Default)]
pub(super) struct Children {
    pub(super) nodes: Vec<Proc>,
    pub(super) epmd: Option<Proc>,
}

impl Children {
    /// Stops the nodes, then the epmd.
    pub(super) fn stop_all(&mut self, verbose: bool) {
        stop_group(&mut self.nodes, verbose);
        if let Some(e) = self.epmd.take() {
            stop_group(&mut [e], verbose);
        }
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        self.stop_all(false);
    }
}

/// SIGTERM to every live process of `group`, wait up to [`STOP_GRACE`] for all, SIGKILL the
/// rest; every child is reaped.
fn stop_group(group: &mut [Proc], verbose: bool) {
    for p in group.iter_mut() {
        if p.exited.is_some() {
            continue;
        }
        if let Ok(Some(s)) = p.child.try_wait() {
            p.exited = Some(s);
            continue;
        }
        if verbose {
            eprintln!("stopping {} (pid {})", p.name, p.child.id());
        }
        if let Ok(pid) = i32::try_from(p.child.id()) {
            // SAFETY: kill(2) on a pid this process spawned and has not reaped yet.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
    }
    let deadline = Instant::now() + STOP_GRACE;
    while Instant::now() < deadline {
        let mut running = false;
        for p in group.iter_mut().filter(|p| p.exited.is_none()) {
            match p.child.try_wait() {
                Ok(Some(s)) => p.exited = Some(s),
                Ok(None) => running = true,
                Err(_) => p.exited = Some(ExitStatus::default()),
            }
        }
        if !running {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    for p in group.iter_mut().filter(|p| p.exited.is_none()) {
        if verbose {
            eprintln!("{} did not stop in time: SIGKILL", p.name);
        }
        let _ = p.child.kill();
        p.exited = p.child.wait().ok();
    }
}

/// Spawns `cmd` as a child that dies with this process: own process group (a terminal's
/// Ctrl-C reaches only this process, which stops the children in order) and
/// `PR_SET_PDEATHSIG = SIGKILL`.
pub(super) fn spawn_child(mut cmd: Command, name: &str) -> Result<Proc, LocalError> {
    // SAFETY: getpid(2) has no preconditions.
    let parent = unsafe { libc::getpid() };
    cmd.process_group(0).stdin(Stdio::null());
    // SAFETY: the closure runs between fork and exec and calls only async-signal-safe functions
    // (prctl, getppid) without allocating.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died before prctl: then nobody would stop this child.
            if libc::getppid() != parent {
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        })
    };
    let child = cmd.spawn().map_err(|source| LocalError::Io {
        what: format!("spawn {name}"),
        source,
    })?;
    Ok(Proc {
        name: name.to_string(),
        child,
        exited: None,
    })
}
