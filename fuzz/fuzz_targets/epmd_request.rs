//! Fuzzes epmd request framing, decoding and handling over a sequence of connections sharing one
//! node table: no panic, C epmd's buffer bounds, requests survive re-encoding
//! (see `beamq::epmd::fuzz::request_stream`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    beamq::epmd::fuzz::request_stream(data);
});
