//! Entry points for the fuzz targets (`fuzz/fuzz_targets/etf_decode.rs`, `dist_frame.rs`), also
//! run by a unit test over mutated OTP bytes so `cargo test` exercises them without libFuzzer.
//! Each must never panic, hang or allocate beyond its limits, and checks that whatever decodes
//! re-encodes to bytes that decode to the same bytes again.
use bytes::{Bytes, BytesMut};

use crate::dist::etf::{self, Atom, DecodeLimits, TermReader};
use crate::dist::fragments::FragmentLimits;
use crate::dist::message::{DistMessage, Inbound, InboundLimits, Outbound};

const LIMITS: DecodeLimits = DecodeLimits {
    max_depth: 256,
    max_uncompressed: 1 << 20,
};

/// Decodes `data` as a `131` term and, without version byte, as a term after a distribution
/// header with a 3-atom reference table; anything decoded must round-trip.
pub fn etf_decode(data: &[u8]) {
    let buf = Bytes::copy_from_slice(data);
    if let Ok(t) = etf::decode_with(&buf, &[], &LIMITS) {
        let once = etf::term_to_binary(&t);
        let again = etf::decode_with(
            &once,
            &[],
            &DecodeLimits {
                max_uncompressed: usize::MAX,
                ..LIMITS
            },
        );
        let again = again.map(|t| etf::term_to_binary(&t));
        assert_eq!(again.as_ref(), Ok(&once), "decode(encode(t)) differs");
    }
    let atoms = [Atom::new("fuzz_a"), Atom::new(""), Atom::new("fuzz@host")];
    let mut r = TermReader::new(&buf, 0, &atoms, &LIMITS);
    while r.remaining() > 0 {
        if r.read_term().is_err() {
            break;
        }
    }
}

/// Feeds `data`, cut into frames by 2-byte big-endian lengths, to one connection's [`Inbound`]
/// (header, atom cache, fragments, control messages); every message decoded must survive our
/// encoder and a fresh decoder.
pub fn dist_frames(data: &[u8]) {
    let limits = InboundLimits {
        decode: LIMITS,
        fragments: FragmentLimits {
            max_sequences: 8,
            max_bytes: 1 << 20,
        },
    };
    let mut rx = Inbound::new(limits);
    let mut tx = Outbound::default();
    let mut echo = Inbound::default();
    let mut rest = data;
    while rest.len() >= 2 {
        let n = usize::from(u16::from_be_bytes([rest[0], rest[1]])).min(rest.len() - 2);
        let frame = Bytes::copy_from_slice(&rest[2..2 + n]);
        rest = &rest[2 + n..];
        match rx.receive(frame) {
            Err(_) => return,
            Ok(None) => {}
            Ok(Some(m)) => check_round_trip(&m, &mut tx, &mut echo),
        }
    }
}

fn check_round_trip(m: &DistMessage, tx: &mut Outbound, echo: &mut Inbound) {
    let mut out = BytesMut::new();
    tx.encode(m, &mut out);
    let mut out = out.freeze();
    let mut got = None;
    while out.len() >= 4 {
        let n = u32::from_be_bytes([out[0], out[1], out[2], out[3]]) as usize;
        let _ = out.split_to(4);
        got = echo
            .receive(out.split_to(n))
            .unwrap_or_else(|e| panic!("our own frame: {e}"));
    }
    let got = got.unwrap_or_else(|| panic!("no message from our own frames"));
    // Compare encodings, not values: a NaN float from the wire is not equal to itself.
    let enc = |m: &DistMessage| {
        let mut b = BytesMut::new();
        Outbound::encode_pass_through(m, &mut b);
        b
    };
    assert_eq!(enc(&got), enc(m), "message changed through our encoder");
}

#[cfg(test)]
mod tests {
    use rand::{rngs::StdRng, Rng, SeedableRng};

    use super::*;

    fn mutate(rng: &mut StdRng, seed: &[u8]) -> Vec<u8> {
        let mut v = seed.to_vec();
        for _ in 0..rng.gen_range(1..4) {
            if v.is_empty() {
                v.push(rng.gen());
                continue;
            }
            let i = rng.gen_range(0..v.len());
            match rng.gen_range(0..4) {
                0 => v[i] = rng.gen(),
                1 => v[i] ^= 1 << rng.gen_range(0..8),
                2 => v.truncate(i),
                _ => v.insert(i, [0, 255, 131, 104, 108, 82, 80][rng.gen_range(0..7)]),
            }
        }
        v
    }

    /// A cheap stand-in for the fuzzer: thousands of mutations of OTP-made bytes. Longer runs:
    /// `BEAMQ_FUZZ_ROUNDS=100 BEAMQ_FUZZ_SEED=7 cargo test --lib dist::fuzz`.
    #[test]
    fn mutated_otp_bytes_never_panic() {
        let env = |k: &str, d: u64| {
            std::env::var(k)
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(d)
        };
        let mut rng = StdRng::seed_from_u64(env("BEAMQ_FUZZ_SEED", 0x5eed));
        for _ in 0..env("BEAMQ_FUZZ_ROUNDS", 1) {
            mutation_round(&mut rng);
        }
    }

    fn mutation_round(rng: &mut StdRng) {
        let terms: Vec<Vec<u8>> = include_str!("etf/golden_otp25.txt")
            .lines()
            .filter_map(|l| l.split_once(" <<")?.1.strip_suffix(">>").map(str::to_owned))
            .map(|s| s.split(',').filter_map(|b| b.parse().ok()).collect())
            .filter(|v: &Vec<u8>| v.len() < 400)
            .collect();
        for _ in 0..20_000 {
            let seed = &terms[rng.gen_range(0..terms.len())];
            etf_decode(&mutate(rng, seed));
        }
        // Whole captured streams, re-framed with 2-byte lengths as the fuzz target reads them.
        let frames: Vec<Bytes> = crate::dist::capture_tests::a2b()
            .into_iter()
            .chain(crate::dist::capture_tests::b2a())
            .filter(|f| f.len() < 1000)
            .collect();
        let mut stream = Vec::new();
        for f in &frames {
            stream.extend_from_slice(&(f.len() as u16).to_be_bytes());
            stream.extend_from_slice(f);
        }
        dist_frames(&stream);
        for _ in 0..5000 {
            let start = rng.gen_range(0..frames.len());
            let mut s = Vec::new();
            for f in frames.iter().skip(start).take(4) {
                let f = mutate(rng, f);
                s.extend_from_slice(&(f.len() as u16).to_be_bytes());
                s.extend_from_slice(&f);
            }
            dist_frames(&s);
        }
    }
}
