//! epmd requests: decoding as `do_request` in `erts/epmd/src/epmd_srv.c` validates them, and
//! encoding as `lib/kernel/src/erl_epmd.erl` and `erts/epmd/src/epmd_cli.c` send them.

use super::wire::{self, get_u16, MAX_NAME_CHARS, MAX_SYM_LEN};

/// A node's registration, the body of `ALIVE2_REQ`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alive2Req {
    /// The node's distribution listen port.
    pub port: u16,
    /// 77 ('M') for a normal Erlang node, 72 ('H') for a hidden one.
    pub node_type: u8,
    /// 0 for TCP/IPv4.
    pub protocol: u8,
    /// Highest distribution version the node speaks (6 for OTP 23+).
    pub highvsn: u16,
    /// Lowest distribution version the node speaks.
    pub lowvsn: u16,
    /// The name part of `name@host`.
    pub name: String,
    /// Opaque extra data, returned verbatim by `PORT2_RESP`.
    pub extra: Vec<u8>,
}

/// Why C epmd answers an otherwise well-formed `ALIVE2_REQ` with result 1 and creation 99.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Name longer than `MAXSYMLEN` bytes or than 255 characters.
    #[error("node name is too long")]
    NameTooLong,
    /// Name is not valid UTF-8.
    #[error("invalid node name encoding")]
    NameEncoding,
    /// Extra data longer than `MAXSYMLEN` bytes.
    #[error("extra data is too long")]
    ExtraTooLong,
    /// The name is registered by a live node.
    #[error("node name already occupied")]
    NameInUse,
}

/// A decoded request, one per connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `ALIVE2_REQ` that passes the name checks.
    Alive2(Alive2Req),
    /// `ALIVE2_REQ` that C epmd refuses with an answer (not a silent close).
    Alive2Refused {
        /// Decides between `ALIVE2_RESP` and `ALIVE2_X_RESP` for the refusal.
        highvsn: u16,
        /// Why it is refused.
        reason: Refusal,
    },
    /// `PORT_PLEASE2_REQ` for a name.
    PortPlease2(String),
    /// `NAMES_REQ`.
    Names,
    /// `DUMP_REQ`.
    Dump,
    /// `KILL_REQ`.
    Kill,
    /// `STOP_REQ`; the name is compared byte-wise, up to its first NUL, as C does.
    Stop(Vec<u8>),
}

/// Why a request gets no answer at all: C epmd logs and closes the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// Empty body (cannot happen after framing, kept for direct callers).
    #[error("empty request")]
    Empty,
    /// The first byte is no request code C epmd knows.
    #[error("got garbage (request code {0})")]
    Garbage(u8),
    /// `ALIVE2_REQ` body of 13 bytes or less.
    #[error("packet too small for request ALIVE2_REQ ({0})")]
    Alive2TooSmall(usize),
    /// Name length points past the packet.
    #[error("node name size error in ALIVE2_REQ")]
    Alive2NameSize,
    /// Extra length points past the packet.
    #[error("extra info size error in ALIVE2_REQ")]
    Alive2ExtraSize,
    /// A NUL inside the node name.
    #[error("node name contains ascii 0 in ALIVE2_REQ")]
    Alive2NameNul,
    /// `PORT_PLEASE2_REQ` without a name.
    #[error("packet too small for request PORT2_REQ")]
    Port2TooSmall,
    /// A NUL inside the looked-up name.
    #[error("node name contains ascii 0 in PORT2_REQ")]
    Port2NameNul,
    /// Looked-up name is not UTF-8 of 1..=254 characters.
    #[error("invalid node name in PORT2_REQ")]
    Port2InvalidName,
    /// `STOP_REQ` without a name.
    #[error("packet too small for request STOP_REQ")]
    StopTooSmall,
}

impl Request {
    /// Decode a request body (after the length field), checking what C epmd checks, in its order.
    pub fn decode(body: &[u8]) -> Result<Request, RequestError> {
        let (&code, _) = body.split_first().ok_or(RequestError::Empty)?;
        match code {
            wire::ALIVE2_REQ => decode_alive2(body),
            wire::PORT_PLEASE2_REQ => decode_port_please2(body),
            wire::NAMES_REQ => Ok(Request::Names),
            wire::DUMP_REQ => Ok(Request::Dump),
            wire::KILL_REQ => Ok(Request::Kill),
            wire::STOP_REQ => {
                if body.len() <= 1 {
                    return Err(RequestError::StopTooSmall);
                }
                let name = &body[1..];
                let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
                Ok(Request::Stop(name[..end].to_vec()))
            }
            other => Err(RequestError::Garbage(other)),
        }
    }

    /// The framed bytes a client sends for this request.
    pub fn encode(&self) -> Vec<u8> {
        let mut body = Vec::new();
        match self {
            Request::Alive2(req) => encode_alive2(req, &mut body),
            Request::Alive2Refused { .. } => return Vec::new(),
            Request::PortPlease2(name) => {
                body.push(wire::PORT_PLEASE2_REQ);
                body.extend_from_slice(name.as_bytes());
            }
            Request::Names => body.push(wire::NAMES_REQ),
            Request::Dump => body.push(wire::DUMP_REQ),
            Request::Kill => body.push(wire::KILL_REQ),
            Request::Stop(name) => {
                body.push(wire::STOP_REQ);
                body.extend_from_slice(name);
            }
        }
        wire::frame(&body)
    }
}

fn encode_alive2(req: &Alive2Req, body: &mut Vec<u8>) {
    body.push(wire::ALIVE2_REQ);
    body.extend_from_slice(&req.port.to_be_bytes());
    body.push(req.node_type);
    body.push(req.protocol);
    body.extend_from_slice(&req.highvsn.to_be_bytes());
    body.extend_from_slice(&req.lowvsn.to_be_bytes());
    let name = &req.name.as_bytes()[..req.name.len().min(usize::from(u16::MAX))];
    body.extend_from_slice(&(name.len() as u16).to_be_bytes());
    body.extend_from_slice(name);
    let extra = &req.extra[..req.extra.len().min(usize::from(u16::MAX))];
    body.extend_from_slice(&(extra.len() as u16).to_be_bytes());
    body.extend_from_slice(extra);
}

/// `ALIVE2_REQ` layout: `x Port:16 Type:8 Proto:8 High:16 Low:16 NLen:16 Name ELen:16 Extra`.
fn decode_alive2(body: &[u8]) -> Result<Request, RequestError> {
    let bsize = body.len();
    if bsize <= 13 {
        return Err(RequestError::Alive2TooSmall(bsize));
    }
    // bsize > 13, so the fixed fields up to the name length are present.
    let field = |at| get_u16(body, at).unwrap_or(0);
    let port = field(1);
    let node_type = body[3];
    let protocol = body[4];
    let highvsn = field(5);
    let lowvsn = field(7);
    let namelen = usize::from(field(9));
    if namelen + 13 > bsize {
        return Err(RequestError::Alive2NameSize);
    }
    let extralen = usize::from(get_u16(body, 11 + namelen).ok_or(RequestError::Alive2NameSize)?);
    if extralen + namelen + 13 > bsize {
        return Err(RequestError::Alive2ExtraSize);
    }
    let name = &body[11..11 + namelen];
    if name.contains(&0) {
        return Err(RequestError::Alive2NameNul);
    }
    let extra = &body[13 + namelen..13 + namelen + extralen];
    let refuse = |reason| Ok(Request::Alive2Refused { highvsn, reason });
    if namelen > MAX_SYM_LEN {
        return refuse(Refusal::NameTooLong);
    }
    let Ok(name) = std::str::from_utf8(name) else {
        return refuse(Refusal::NameEncoding);
    };
    if name.chars().count() > MAX_NAME_CHARS {
        return refuse(Refusal::NameTooLong);
    }
    if extralen > MAX_SYM_LEN {
        return refuse(Refusal::ExtraTooLong);
    }
    Ok(Request::Alive2(Alive2Req {
        port,
        node_type,
        protocol,
        highvsn,
        lowvsn,
        name: name.to_owned(),
        extra: extra.to_vec(),
    }))
}

/// `PORT_PLEASE2_REQ`: `z Name`, an optional trailing NUL dropped.
///
/// C runs `verify_utf8` over the name plus the NUL it writes behind it, so the NUL counts as one
/// more character: a 255-character name is rejected (silently), only 1..=254 are looked up.
fn decode_port_please2(body: &[u8]) -> Result<Request, RequestError> {
    let mut bsize = body.len();
    if body[bsize - 1] == 0 {
        bsize -= 1;
    }
    if bsize <= 1 {
        return Err(RequestError::Port2TooSmall);
    }
    let name = &body[1..bsize];
    if name.contains(&0) {
        return Err(RequestError::Port2NameNul);
    }
    let name = std::str::from_utf8(name).map_err(|_| RequestError::Port2InvalidName)?;
    if name.chars().count() + 1 > MAX_NAME_CHARS {
        return Err(RequestError::Port2InvalidName);
    }
    Ok(Request::PortPlease2(name.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alive2_body(name: &[u8], extra: &[u8], highvsn: u16) -> Vec<u8> {
        let mut b = vec![wire::ALIVE2_REQ, 0x1a, 0x0b, 77, 0];
        b.extend_from_slice(&highvsn.to_be_bytes());
        b.extend_from_slice(&5u16.to_be_bytes());
        b.extend_from_slice(&(name.len() as u16).to_be_bytes());
        b.extend_from_slice(name);
        b.extend_from_slice(&(extra.len() as u16).to_be_bytes());
        b.extend_from_slice(extra);
        b
    }

    #[test]
    fn alive2_decodes_every_field() {
        let req = Request::decode(&alive2_body(b"foo", b"ex", 6)).unwrap();
        assert_eq!(
            req,
            Request::Alive2(Alive2Req {
                port: 0x1a0b,
                node_type: 77,
                protocol: 0,
                highvsn: 6,
                lowvsn: 5,
                name: "foo".into(),
                extra: b"ex".to_vec(),
            })
        );
    }

    #[test]
    fn alive2_encode_decode_round_trip() {
        let req = Alive2Req {
            port: 6369,
            node_type: 72,
            protocol: 0,
            highvsn: 6,
            lowvsn: 6,
            name: "näme".into(),
            extra: vec![1, 2, 3],
        };
        let framed = Request::Alive2(req.clone()).encode();
        assert_eq!(Request::decode(&framed[2..]), Ok(Request::Alive2(req)));
    }

    #[test]
    fn alive2_of_13_bytes_is_too_small() {
        let b = alive2_body(b"", b"", 6);
        assert_eq!(b.len(), 13);
        assert_eq!(Request::decode(&b), Err(RequestError::Alive2TooSmall(13)));
    }

    #[test]
    fn alive2_empty_name_with_trailing_byte_registers_as_in_c() {
        let mut b = alive2_body(b"", b"", 6);
        b.push(0);
        assert!(matches!(Request::decode(&b), Ok(Request::Alive2(r)) if r.name.is_empty()));
    }

    #[test]
    fn alive2_name_length_past_end() {
        let mut b = alive2_body(b"abc", b"", 6);
        b[10] = 20;
        assert_eq!(Request::decode(&b), Err(RequestError::Alive2NameSize));
    }

    #[test]
    fn alive2_extra_length_past_end() {
        let mut b = alive2_body(b"abc", b"xy", 6);
        b[15] = 9;
        assert_eq!(Request::decode(&b), Err(RequestError::Alive2ExtraSize));
    }

    #[test]
    fn alive2_nul_in_name_is_silent() {
        assert_eq!(
            Request::decode(&alive2_body(b"a\0b", b"", 6)),
            Err(RequestError::Alive2NameNul)
        );
    }

    #[test]
    fn alive2_bad_utf8_is_refused_with_answer() {
        assert_eq!(
            Request::decode(&alive2_body(b"a\xffb", b"", 5)),
            Ok(Request::Alive2Refused {
                highvsn: 5,
                reason: Refusal::NameEncoding
            })
        );
    }

    #[test]
    fn alive2_256_chars_refused_255_accepted() {
        let long = "é".repeat(256);
        assert_eq!(
            Request::decode(&alive2_body(long.as_bytes(), b"", 6)),
            Ok(Request::Alive2Refused {
                highvsn: 6,
                reason: Refusal::NameTooLong
            })
        );
        let ok = "é".repeat(255);
        assert!(matches!(
            Request::decode(&alive2_body(ok.as_bytes(), b"", 6)),
            Ok(Request::Alive2(_))
        ));
    }

    #[test]
    fn alive2_name_over_1020_bytes_refused() {
        let long = "a".repeat(1021);
        assert_eq!(
            Request::decode(&alive2_body(long.as_bytes(), b"", 6)),
            Ok(Request::Alive2Refused {
                highvsn: 6,
                reason: Refusal::NameTooLong
            })
        );
    }

    #[test]
    fn alive2_extra_over_1020_bytes_refused() {
        let extra = vec![7u8; 1021];
        assert_eq!(
            Request::decode(&alive2_body(b"n", &extra, 6)),
            Ok(Request::Alive2Refused {
                highvsn: 6,
                reason: Refusal::ExtraTooLong
            })
        );
        let extra = vec![7u8; 1020];
        assert!(matches!(
            Request::decode(&alive2_body(b"n", &extra, 6)),
            Ok(Request::Alive2(_))
        ));
    }

    #[test]
    fn port_please2_with_and_without_nul() {
        assert_eq!(
            Request::decode(b"zfoo"),
            Ok(Request::PortPlease2("foo".into()))
        );
        assert_eq!(
            Request::decode(b"zfoo\0"),
            Ok(Request::PortPlease2("foo".into()))
        );
    }

    #[test]
    fn port_please2_rejections() {
        assert_eq!(Request::decode(b"z"), Err(RequestError::Port2TooSmall));
        assert_eq!(Request::decode(b"z\0"), Err(RequestError::Port2TooSmall));
        assert_eq!(Request::decode(b"za\0b"), Err(RequestError::Port2NameNul));
        assert_eq!(
            Request::decode(b"z\xc3"),
            Err(RequestError::Port2InvalidName)
        );
    }

    #[test]
    fn port_please2_accepts_254_chars_not_255() {
        let mut b = vec![wire::PORT_PLEASE2_REQ];
        b.extend_from_slice("a".repeat(254).as_bytes());
        assert!(matches!(Request::decode(&b), Ok(Request::PortPlease2(_))));
        b.push(b'a');
        assert_eq!(Request::decode(&b), Err(RequestError::Port2InvalidName));
    }

    #[test]
    fn simple_requests_ignore_trailing_bytes() {
        assert_eq!(Request::decode(b"n"), Ok(Request::Names));
        assert_eq!(Request::decode(b"nxyz"), Ok(Request::Names));
        assert_eq!(Request::decode(b"d"), Ok(Request::Dump));
        assert_eq!(Request::decode(b"k"), Ok(Request::Kill));
    }

    #[test]
    fn stop_name_ends_at_first_nul() {
        assert_eq!(Request::decode(b"sfoo"), Ok(Request::Stop(b"foo".to_vec())));
        assert_eq!(
            Request::decode(b"sfoo\0bar"),
            Ok(Request::Stop(b"foo".to_vec()))
        );
        assert_eq!(Request::decode(b"s"), Err(RequestError::StopTooSmall));
        // A name of NULs only is the empty name. C's `epmd -stop ""` sends a bare `s`, which
        // the daemon refuses as too small, so that name has no encoding of its own (found by
        // the `epmd_request` fuzz target, whose round trip skips it).
        assert_eq!(Request::decode(b"s\0\0\0"), Ok(Request::Stop(Vec::new())));
        assert_eq!(Request::Stop(Vec::new()).encode(), vec![0, 1, 115]);
    }

    #[test]
    fn unknown_code_is_garbage() {
        assert_eq!(Request::decode(b"Q"), Err(RequestError::Garbage(b'Q')));
    }

    #[test]
    fn client_encodings_match_epmd_cli() {
        assert_eq!(Request::Names.encode(), vec![0, 1, 110]);
        assert_eq!(Request::Kill.encode(), vec![0, 1, 107]);
        assert_eq!(
            Request::Stop(b"ab".to_vec()).encode(),
            vec![0, 3, 115, b'a', b'b']
        );
        assert_eq!(
            Request::PortPlease2("ab".into()).encode(),
            vec![0, 3, 122, b'a', b'b']
        );
    }
}
