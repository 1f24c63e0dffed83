//! The body of the `epmd_request` fuzz target (`fuzz/fuzz_targets/epmd_request.rs`), kept in the
//! library so a smoke test runs it under `cargo test` too.
//!
//! The input is a sequence of connections. Each starts with a byte that sets the read size and
//! whether the peer is local; then bytes are fed through [`PacketReader`] as C epmd's reads would
//! deliver them, the body is decoded and answered against one shared [`Registry`]. Nothing may
//! panic, every buffer stays within C epmd's bounds, and decoded requests survive re-encoding.

use super::registry::Registry;
use super::request::{Request, RequestError};
use super::service::{self, After, Peer, Settings};
use super::wire::{Framing, PacketReader, INBUF_SIZE, MAX_SYM_LEN};

/// Largest reply one request can produce with `live` nodes registered.
fn reply_bound(live: usize) -> usize {
    // DUMP: per node "old/unused name <" + name + ">, port = 65535, fd = -2147483648 \n\0".
    let per_node = 64 + MAX_SYM_LEN;
    4 + per_node * (live + super::registry::MAX_UNREG_COUNT + 2)
}

/// Run one fuzz input.
pub fn request_stream(data: &[u8]) {
    let mut registry = Registry::new(data.first().is_some_and(|b| b & 1 == 1));
    let settings = Settings {
        port: 4369,
        relaxed: data.get(1).is_some_and(|b| b & 1 == 1),
    };
    let mut rest = data.get(2..).unwrap_or_default();
    let mut conn = 0u64;
    while let Some((&control, tail)) = rest.split_first() {
        conn += 1;
        let chunk = usize::from(control >> 1).max(1);
        let peer = Peer {
            local: control & 1 == 0,
            fd: conn as i32,
            conn,
        };
        let mut reader = PacketReader::new();
        let mut input = tail;
        let mut complete = false;
        while !input.is_empty() {
            let dst = reader.read_buf();
            assert!(
                !dst.is_empty() && dst.len() < INBUF_SIZE,
                "read size out of C's bounds"
            );
            let n = dst.len().min(chunk).min(input.len());
            dst[..n].copy_from_slice(&input[..n]);
            input = &input[n..];
            match reader.advance(n) {
                Ok(Framing::NeedMore) => {}
                Ok(Framing::Complete) => {
                    complete = true;
                    break;
                }
                Err(_) => break,
            }
        }
        rest = input;
        if !complete {
            continue;
        }
        let body = reader.body();
        assert!(!body.is_empty() && body.len() + 2 < INBUF_SIZE);
        let Ok(req) = Request::decode(body) else {
            continue;
        };
        // A request whose name is empty (NULs only, or a zero length padded out to the
        // minimum size) decodes, but its canonical encoding is under C's minimum size, so C's
        // own client cannot send it either: a round trip that ends "too small" is not a
        // mismatch (`request.rs`, `stop_name_ends_at_first_nul`).
        if !matches!(req, Request::Alive2Refused { .. }) {
            let again = req.encode();
            let normalised = Request::decode(&again[2..]);
            if !matches!(
                normalised,
                Err(RequestError::StopTooSmall
                    | RequestError::Alive2TooSmall(_)
                    | RequestError::Port2TooSmall)
            ) {
                assert_eq!(
                    normalised.as_ref(),
                    Ok(&req),
                    "request does not survive re-encoding"
                );
            }
        }
        let outcome = service::handle(&mut registry, &settings, &peer, req, 1_700_000_000);
        assert!(outcome.reply.len() <= reply_bound(registry.live_count()));
        assert_eq!(registry.live().count(), registry.live_count());
        if outcome.after == After::Keep && conn % 3 == 0 {
            registry.unregister_conn(conn);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::epmd::wire::frame;

    fn alive2(name: &[u8]) -> Vec<u8> {
        let mut b = vec![b'x', 0, 1, 77, 0, 0, 6, 0, 5];
        b.extend_from_slice(&(name.len() as u16).to_be_bytes());
        b.extend_from_slice(name);
        b.extend_from_slice(&[0, 0]);
        frame(&b)
    }

    /// The fuzzer's finds: a STOP whose name is all NULs, and an ALIVE2 with a name of length
    /// 0 padded past C's minimum size (both the empty name).
    #[test]
    fn requests_with_an_empty_name() {
        let stop = b"s\0\0\0\0\0\0\0\0\0".to_vec();
        let alive2 = vec![b'x', 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        assert_eq!(Request::decode(&stop), Ok(Request::Stop(Vec::new())));
        assert!(matches!(Request::decode(&alive2), Ok(Request::Alive2(r)) if r.name.is_empty()));
        let mut input = vec![0u8, 0];
        for body in [stop, alive2] {
            input.push(0x00);
            input.extend_from_slice(&frame(&body));
        }
        request_stream(&input);
    }

    /// A seed corpus of well-formed requests, then deterministic mutations of it: the same
    /// checks the fuzzer makes, on every `cargo test`.
    #[test]
    fn smoke_mutations_of_valid_requests() {
        let mut seed = vec![0u8, 1];
        for (control, req) in [
            (0x08, alive2(b"a")),
            (0x02, alive2(b"b")),
            (0xfe, frame(b"za")),
            (0x10, frame(b"n")),
            (0x10, frame(b"d")),
            (0x10, frame(b"sa")),
            (0x10, frame(b"k")),
            (0x03, alive2("é".repeat(300).as_bytes())),
        ] {
            seed.push(control);
            seed.extend_from_slice(&req);
        }
        request_stream(&seed);
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..3000 {
            let mut input = seed.clone();
            for _ in 0..(state % 6 + 1) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let at = (state as usize) % input.len();
                match state % 3 {
                    0 => input[at] = (state >> 24) as u8,
                    1 => input.insert(at, (state >> 32) as u8),
                    _ => {
                        input.remove(at);
                    }
                }
                if input.is_empty() {
                    input.push(0);
                }
            }
            request_stream(&input);
        }
    }
}
