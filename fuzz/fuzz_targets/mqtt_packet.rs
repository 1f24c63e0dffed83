//! Fuzzes the MQTT packet decoder: no input may panic, hang or over-allocate, and every packet
//! decoded must re-encode to itself (see `beamq::mqtt::codec::fuzz_decode`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    beamq::mqtt::codec::fuzz_decode(data);
});
