//! The handshake messages, byte for byte as `lib/kernel/src/dist_util.erl` (OTP 25) sends them,
//! plus the `'n'` name and `'c'` complement of OTP 23/24 initiators (OTP 24 dist_util
//! `send_name/1` sends `'n'` when epmd, or an epmd module such as ekka's, reports version 5).
//! Each message travels in one 2-byte-length frame (see [`crate::dist::frame`]).

use md5::{Digest as _, Md5};

/// `'N'` send_name, `'N'` challenge, `'n'` old send_name / challenge.
pub const TAG_NEW: u8 = b'N';
/// OTP 23/24 `'n'`.
pub const TAG_OLD: u8 = b'n';
/// Status.
pub const TAG_STATUS: u8 = b's';
/// OTP 23/24 complement to an `'n'` name.
pub const TAG_COMPLEMENT: u8 = b'c';
/// Challenge reply.
pub const TAG_REPLY: u8 = b'r';
/// Challenge ack.
pub const TAG_ACK: u8 = b'a';

/// A malformed handshake message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    /// Empty frame.
    #[error("empty handshake message")]
    Empty,
    /// Not the message expected at this step.
    #[error("expected handshake message {expected:?}, got tag {got}")]
    UnexpectedTag {
        /// What the step expects.
        expected: &'static str,
        /// The tag byte received.
        got: u8,
    },
    /// Too short, or a name length beyond the frame.
    #[error("truncated {0} message")]
    Truncated(&'static str),
    /// Bytes after the end of a fixed-size message.
    #[error("trailing bytes after {0} message")]
    Trailing(&'static str),
    /// A node name that is not UTF-8.
    #[error("node name is not valid UTF-8")]
    NameEncoding,
    /// A status string we do not know.
    #[error("unknown status {0:?}")]
    UnknownStatus(String),
}

/// The initiator's name: `'N'` (version 6) or `'n'` (version 5, OTP 23/24).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendName {
    /// Flags: 64 bits for `'N'`; for `'n'` only the low 32 (the high ones come in `'c'`).
    pub flags: u64,
    /// The initiator's creation; `None` for `'n'` (it comes in `'c'`).
    pub creation: Option<u32>,
    /// `name@host`, or only the host with NAME_ME.
    pub name: String,
}

impl SendName {
    /// Parses the first message of an accepted connection.
    pub fn parse(msg: &[u8]) -> Result<SendName, MessageError> {
        let mut r = Reader::new(msg, "send_name");
        match r.u8()? {
            TAG_NEW => {
                let flags = r.u64()?;
                let creation = r.u32()?;
                let len = usize::from(r.u16()?);
                let name = r.name(len)?;
                Ok(SendName {
                    flags,
                    creation: Some(creation),
                    name,
                })
            }
            TAG_OLD => {
                let _version = r.u16()?;
                let flags = u64::from(r.u32()?);
                let name = r.rest_name()?;
                Ok(SendName {
                    flags,
                    creation: None,
                    name,
                })
            }
            got => Err(MessageError::UnexpectedTag {
                expected: "send_name",
                got,
            }),
        }
    }

    /// Encodes a version 6 `'N'` name (`dist_util:send_name/1`).
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(15 + self.name.len());
        v.push(TAG_NEW);
        v.extend_from_slice(&self.flags.to_be_bytes());
        v.extend_from_slice(&self.creation.unwrap_or(0).to_be_bytes());
        v.extend_from_slice(&(self.name.len() as u16).to_be_bytes());
        v.extend_from_slice(self.name.as_bytes());
        v
    }
}

/// A status message (`'s'` + text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Go on.
    Ok,
    /// Go on; a simultaneous connect was resolved in favour of this one.
    OkSimultaneous,
    /// Refused: a simultaneous connect was resolved in favour of the other one.
    Nok,
    /// Refused by policy (or missing flags).
    NotAllowed,
    /// A connection to this node is already up: is the initiator's attempt still wanted?
    Alive,
    /// The acceptor named a NAME_ME initiator.
    Named {
        /// The full node name given.
        name: String,
        /// The creation given.
        creation: u32,
    },
    /// Answer to `Alive`: continue.
    True,
    /// Answer to `Alive`: give up.
    False,
}

impl Status {
    /// Parses `'s'` + status text.
    pub fn parse(msg: &[u8]) -> Result<Status, MessageError> {
        let mut r = Reader::new(msg, "status");
        match r.u8()? {
            TAG_STATUS => {}
            got => {
                return Err(MessageError::UnexpectedTag {
                    expected: "status",
                    got,
                })
            }
        }
        let text = r.rest();
        Ok(match text {
            b"ok" => Status::Ok,
            b"ok_simultaneous" => Status::OkSimultaneous,
            b"nok" => Status::Nok,
            b"not_allowed" => Status::NotAllowed,
            b"alive" => Status::Alive,
            b"true" => Status::True,
            b"false" => Status::False,
            t if t.starts_with(b"named:") => {
                let mut r = Reader::new(&t[6..], "status named");
                let len = usize::from(r.u16()?);
                let name = r.name(len)?;
                let creation = r.u32()?;
                Status::Named { name, creation }
            }
            other => {
                return Err(MessageError::UnknownStatus(
                    String::from_utf8_lossy(other).into(),
                ))
            }
        })
    }

    /// Encodes the status (`dist_util:send_status/2`).
    pub fn encode(&self) -> Vec<u8> {
        let text: &[u8] = match self {
            Status::Ok => b"ok",
            Status::OkSimultaneous => b"ok_simultaneous",
            Status::Nok => b"nok",
            Status::NotAllowed => b"not_allowed",
            Status::Alive => b"alive",
            Status::True => b"true",
            Status::False => b"false",
            Status::Named { name, creation } => {
                let mut v = Vec::with_capacity(13 + name.len());
                v.push(TAG_STATUS);
                v.extend_from_slice(b"named:");
                v.extend_from_slice(&(name.len() as u16).to_be_bytes());
                v.extend_from_slice(name.as_bytes());
                v.extend_from_slice(&creation.to_be_bytes());
                return v;
            }
        };
        let mut v = Vec::with_capacity(1 + text.len());
        v.push(TAG_STATUS);
        v.extend_from_slice(text);
        v
    }
}

/// The acceptor's challenge, version 6 `'N'` (`dist_util:send_challenge/2`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// The acceptor's flags.
    pub flags: u64,
    /// The random challenge the initiator must digest with the cookie.
    pub challenge: u32,
    /// The acceptor's creation.
    pub creation: u32,
    /// The acceptor's node name.
    pub name: String,
}

impl Challenge {
    /// Parses a challenge. An old `'n'` challenge comes from a peer without HANDSHAKE_23, which
    /// we refuse (it cannot be an OTP 23+ node); it is reported as an unexpected tag.
    pub fn parse(msg: &[u8]) -> Result<Challenge, MessageError> {
        let mut r = Reader::new(msg, "challenge");
        match r.u8()? {
            TAG_NEW => {}
            got => {
                return Err(MessageError::UnexpectedTag {
                    expected: "challenge 'N'",
                    got,
                })
            }
        }
        let flags = r.u64()?;
        let challenge = r.u32()?;
        let creation = r.u32()?;
        let len = usize::from(r.u16()?);
        let name = r.name(len)?;
        Ok(Challenge {
            flags,
            challenge,
            creation,
            name,
        })
    }

    /// Encodes the challenge.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(19 + self.name.len());
        v.push(TAG_NEW);
        v.extend_from_slice(&self.flags.to_be_bytes());
        v.extend_from_slice(&self.challenge.to_be_bytes());
        v.extend_from_slice(&self.creation.to_be_bytes());
        v.extend_from_slice(&(self.name.len() as u16).to_be_bytes());
        v.extend_from_slice(self.name.as_bytes());
        v
    }
}

/// OTP 23/24's `'c'` complement after an `'n'` name: high flag bits and creation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Complement {
    /// Flags bits 32..63.
    pub flags_high: u32,
    /// The initiator's creation.
    pub creation: u32,
}

impl Complement {
    /// Parses `'c'`.
    pub fn parse(msg: &[u8]) -> Result<Complement, MessageError> {
        let mut r = Reader::new(msg, "complement");
        match r.u8()? {
            TAG_COMPLEMENT => {}
            got => {
                return Err(MessageError::UnexpectedTag {
                    expected: "complement",
                    got,
                })
            }
        }
        let c = Complement {
            flags_high: r.u32()?,
            creation: r.u32()?,
        };
        r.end()?;
        Ok(c)
    }

    /// Encodes `'c'` (OTP 24 `dist_util:send_complement/2`).
    pub fn encode(&self) -> Vec<u8> {
        let mut v = vec![TAG_COMPLEMENT];
        v.extend_from_slice(&self.flags_high.to_be_bytes());
        v.extend_from_slice(&self.creation.to_be_bytes());
        v
    }
}

/// The initiator's `'r'`: its own challenge and the digest of the acceptor's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChallengeReply {
    /// The challenge the acceptor must digest.
    pub challenge: u32,
    /// md5 of cookie ++ the acceptor's challenge in decimal.
    pub digest: [u8; 16],
}

impl ChallengeReply {
    /// Parses `'r'` (exactly 21 bytes, as `dist_util:recv_challenge_reply/3` requires).
    pub fn parse(msg: &[u8]) -> Result<ChallengeReply, MessageError> {
        let mut r = Reader::new(msg, "challenge_reply");
        match r.u8()? {
            TAG_REPLY => {}
            got => {
                return Err(MessageError::UnexpectedTag {
                    expected: "challenge_reply",
                    got,
                })
            }
        }
        let challenge = r.u32()?;
        let digest = r.digest()?;
        r.end()?;
        Ok(ChallengeReply { challenge, digest })
    }

    /// Encodes `'r'`.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = vec![TAG_REPLY];
        v.extend_from_slice(&self.challenge.to_be_bytes());
        v.extend_from_slice(&self.digest);
        v
    }
}

/// The acceptor's `'a'`: digest of the initiator's challenge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChallengeAck {
    /// md5 of cookie ++ the initiator's challenge in decimal.
    pub digest: [u8; 16],
}

impl ChallengeAck {
    /// Parses `'a'` (exactly 17 bytes).
    pub fn parse(msg: &[u8]) -> Result<ChallengeAck, MessageError> {
        let mut r = Reader::new(msg, "challenge_ack");
        match r.u8()? {
            TAG_ACK => {}
            got => {
                return Err(MessageError::UnexpectedTag {
                    expected: "challenge_ack",
                    got,
                })
            }
        }
        let digest = r.digest()?;
        r.end()?;
        Ok(ChallengeAck { digest })
    }

    /// Encodes `'a'`.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = vec![TAG_ACK];
        v.extend_from_slice(&self.digest);
        v
    }
}

/// `dist_util:gen_digest/2`: `md5(Cookie ++ integer_to_list(Challenge))`.
pub fn gen_digest(challenge: u32, cookie: &[u8]) -> [u8; 16] {
    let mut h = Md5::new();
    h.update(cookie);
    h.update(challenge.to_string().as_bytes());
    h.finalize().into()
}

/// Compares digests in constant time (no early exit on the first differing byte).
pub fn digest_eq(a: &[u8; 16], b: &[u8; 16]) -> bool {
    let diff = a
        .iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y));
    // black_box keeps the optimiser from turning the fold into an early-exit compare.
    std::hint::black_box(diff) == 0
}

/// A bounds-checked cursor over one message.
struct Reader<'a> {
    buf: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8], what: &'static str) -> Self {
        Reader { buf, what }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], MessageError> {
        if self.buf.len() < n {
            return Err(
                if self.what == "send_name" && n == 1 && self.buf.is_empty() {
                    MessageError::Empty
                } else {
                    MessageError::Truncated(self.what)
                },
            );
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, MessageError> {
        if self.buf.is_empty() {
            return Err(MessageError::Empty);
        }
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, MessageError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, MessageError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Result<u64, MessageError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }

    fn digest(&mut self) -> Result<[u8; 16], MessageError> {
        let b = self.take(16)?;
        let mut a = [0u8; 16];
        a.copy_from_slice(b);
        Ok(a)
    }

    fn name(&mut self, len: usize) -> Result<String, MessageError> {
        let b = self.take(len)?;
        String::from_utf8(b.to_vec()).map_err(|_| MessageError::NameEncoding)
    }

    fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.buf)
    }

    fn rest_name(&mut self) -> Result<String, MessageError> {
        let b = self.rest();
        String::from_utf8(b.to_vec()).map_err(|_| MessageError::NameEncoding)
    }

    fn end(&self) -> Result<(), MessageError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(MessageError::Trailing(self.what))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_is_md5_of_cookie_and_decimal_challenge() {
        // Computed on OTP 25:
        // binary_to_list(erlang:md5([atom_to_list(t) | integer_to_list(1234567890)])).
        let direct = [
            22, 14, 123, 172, 77, 23, 196, 19, 68, 58, 136, 7, 174, 45, 60, 187,
        ];
        let want = gen_digest(1234567890, b"t");
        assert_eq!(want, direct);
        assert!(digest_eq(&want, &direct));
        let mut other = want;
        other[15] ^= 1;
        assert!(!digest_eq(&want, &other));
    }

    #[test]
    fn roundtrip_each_message() {
        let n = SendName {
            flags: 0xd07df7fbd,
            creation: Some(7),
            name: "a@h".into(),
        };
        assert_eq!(SendName::parse(&n.encode()), Ok(n));
        for s in [
            Status::Ok,
            Status::OkSimultaneous,
            Status::Nok,
            Status::NotAllowed,
            Status::Alive,
            Status::True,
            Status::False,
            Status::Named {
                name: "x@y".into(),
                creation: 9,
            },
        ] {
            assert_eq!(Status::parse(&s.encode()), Ok(s));
        }
        let c = Challenge {
            flags: 1,
            challenge: 2,
            creation: 3,
            name: "b@h".into(),
        };
        assert_eq!(Challenge::parse(&c.encode()), Ok(c));
        let r = ChallengeReply {
            challenge: 5,
            digest: [7; 16],
        };
        assert_eq!(ChallengeReply::parse(&r.encode()), Ok(r));
        let a = ChallengeAck { digest: [8; 16] };
        assert_eq!(ChallengeAck::parse(&a.encode()), Ok(a));
        let k = Complement {
            flags_high: 0xd,
            creation: 42,
        };
        assert_eq!(Complement::parse(&k.encode()), Ok(k));
    }

    #[test]
    fn old_n_name_is_parsed_without_creation() {
        let mut m = vec![b'n', 0, 5];
        m.extend_from_slice(&0x0100_0000u32.to_be_bytes());
        m.extend_from_slice(b"old@host");
        let n = SendName::parse(&m);
        assert_eq!(
            n,
            Ok(SendName {
                flags: 0x0100_0000,
                creation: None,
                name: "old@host".into()
            })
        );
    }

    #[test]
    fn malformed_messages_are_errors() {
        assert_eq!(SendName::parse(b""), Err(MessageError::Empty));
        assert_eq!(
            SendName::parse(b"N\x00"),
            Err(MessageError::Truncated("send_name"))
        );
        let mut long_name = SendName {
            flags: 0,
            creation: Some(0),
            name: "a@b".into(),
        }
        .encode();
        long_name[13] = 0xff; // name length beyond the frame
        assert_eq!(
            SendName::parse(&long_name),
            Err(MessageError::Truncated("send_name"))
        );
        assert!(matches!(
            Status::parse(b"sweird"),
            Err(MessageError::UnknownStatus(_))
        ));
        assert!(matches!(
            ChallengeAck::parse(&[b'a'; 18]),
            Err(MessageError::Trailing(_))
        ));
        assert!(matches!(
            ChallengeReply::parse(b"a"),
            Err(MessageError::UnexpectedTag { .. })
        ));
        assert!(matches!(
            Challenge::parse(b"n\x00\x05"),
            Err(MessageError::UnexpectedTag { .. })
        ));
    }
}
