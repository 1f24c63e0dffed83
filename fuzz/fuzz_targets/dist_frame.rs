//! Fuzzes received distribution frames (header, atom cache, fragments, control messages) on one
//! connection's state: no panic, bounded buffers, and every message decoded survives our encoder
//! (see `beamq::dist::fuzz::dist_frames`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    beamq::dist::fuzz::dist_frames(data);
});
