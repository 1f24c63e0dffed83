//! The test's (or bench's) own descriptor limit.

/// Raises this process's soft `RLIMIT_NOFILE` towards the hard limit, to at most `max` (no
/// privilege needed), never lowering it.
pub fn raise_soft_nofile(max: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit on this process with a valid local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max.min(max).max(lim.rlim_cur);
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}
