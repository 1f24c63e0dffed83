//! Fuzzes the ETF decoder: no input may panic, hang or over-allocate, and every term decoded
//! must re-encode to bytes that decode to the same bytes (see `beamq::dist::fuzz::etf_decode`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    beamq::dist::fuzz::etf_decode(data);
});
