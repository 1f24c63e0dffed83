//! Codec robustness on random input: random packets round-trip, mutated or truncated packets
//! and random bytes never panic the decoder ([`fuzz_decode`]), every prefix of a frame asks for
//! more bytes, and the frame size limit is enforced from the fixed header alone.

use bytes::BytesMut;
use proptest::prelude::*;

use super::tests::{decode, encode, MAX};
use super::tests_arb::arb_versioned_packet;
use super::*;

#[test]
fn fuzz_entry_survives_random_bytes() {
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    for _ in 0..20_000 {
        let mut data = [0u8; 48];
        for b in data.iter_mut() {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            *b = rng as u8;
        }
        let len = (rng as usize >> 8) % data.len();
        // A plausible first byte half the time, so bodies get parsed too.
        if rng & 1 == 0 {
            data[0] = (data[0] & 0xF0).max(0x10) | [0, 2][usize::from(data[0] >> 4 == 6)];
            data[1] = (len.saturating_sub(2) as u8) & 0x7F;
        }
        fuzz_decode(&data[..len]);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_packets_round_trip((v, p) in arb_versioned_packet()) {
        let bytes = encode(&p, v);
        prop_assert_eq!(decode(&bytes, v).unwrap(), p);
    }

    /// Structured fuzzing: valid packets with a few bytes overwritten must never panic the
    /// decoder, and whatever still decodes must round-trip (see `fuzz_decode`).
    #[test]
    fn mutated_packets_never_panic(
        (v, p) in arb_versioned_packet(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut bytes = encode(&p, v);
        for (at, b) in edits {
            let i = at.index(bytes.len());
            bytes[i] = b;
        }
        fuzz_decode(&bytes);
    }

    #[test]
    fn every_prefix_of_a_packet_asks_for_more((v, p) in arb_versioned_packet()) {
        let bytes = encode(&p, v);
        for cut in 0..bytes.len() {
            let buf = BytesMut::from(&bytes[..cut]);
            prop_assert_eq!(check(&buf, MAX), Ok(None));
        }
    }

    #[test]
    fn a_frame_over_the_limit_is_rejected((v, p) in arb_versioned_packet()) {
        let bytes = encode(&p, v);
        let buf = BytesMut::from(&bytes[..2.min(bytes.len())]);
        let limited = check(&buf, bytes.len() - 1);
        let too_large = matches!(limited, Err(CodecError::PacketTooLarge { .. }));
        // With only 2 bytes in, the length is known when it fits in one varint byte.
        prop_assert!(too_large || bytes[1] & 0x80 != 0);
    }
}
