//! The accepting side: `dist_util:handshake_other_started/1`.

use std::time::Instant;

use super::messages::{
    digest_eq, gen_digest, Challenge, ChallengeAck, ChallengeReply, Complement, SendName, Status,
};
use super::{AcceptPending, Handshake, HandshakeError, HandshakeEvent, State};
use crate::dist::flags::{DistFlags, NAME_ME, PUBLISHED};
use crate::dist::nodename::{NodeName, MAX_NODE_NAME_LEN};

impl Handshake {
    pub(super) fn acceptor_message(&mut self, msg: &[u8]) -> Result<(), HandshakeError> {
        match self.state {
            State::AwaitName => self.recv_name(msg),
            State::AwaitAliveReply => self.recv_alive_reply(msg),
            State::AwaitComplement => self.recv_complement(msg),
            State::AwaitReply => self.recv_challenge_reply(msg),
            _ => Err(HandshakeError::Unexpected("message in a local-wait state")),
        }
    }

    fn peer_is_dynamic(&self) -> bool {
        self.peer_flags.0 & NAME_ME != 0
    }

    /// `dist_util:recv_name/1` and `check_dflags/2`.
    fn recv_name(&mut self, msg: &[u8]) -> Result<(), HandshakeError> {
        let name = SendName::parse(msg)?;
        self.peer_flags = DistFlags(name.flags).expand_mandatory_25();
        self.peer_creation = name.creation;
        self.peer_sent_old_name = name.creation.is_none();
        // is_name_ok/2: a static name is NAME@HOST, a dynamic one only a host.
        let name_ok = if self.peer_is_dynamic() {
            !name.name.is_empty()
                && !name.name.contains('@')
                && name.name.chars().count() <= MAX_NODE_NAME_LEN
        } else {
            NodeName::from_wire(&name.name).is_ok()
        };
        if !name_ok {
            return Err(HandshakeError::BadName(name.name));
        }
        self.peer = name.name;
        if let Err(missing) = self.peer_flags.check_required(self.cfg.required) {
            self.send(&Status::NotAllowed.encode());
            return Err(HandshakeError::MissingFlags {
                peer: self.peer.clone(),
                missing,
            });
        }
        // publish_flag/3: toward a NAME_ME peer we send NAME_ME instead of PUBLISHED.
        if self.peer_is_dynamic() {
            self.our_flags = DistFlags((self.cfg.flags.0 & !PUBLISHED) | NAME_ME);
        }
        self.state = State::AwaitDecision;
        self.events.push_back(HandshakeEvent::PeerName {
            name: self.peer.clone(),
            flags: self.peer_flags,
            creation: self.peer_creation,
        });
        Ok(())
    }

    /// Applies net_kernel's decision about the peer that introduced itself
    /// (`dist_util:mark_pending/1`).
    pub fn accept_pending(
        &mut self,
        decision: AcceptPending,
        now: Instant,
    ) -> Result<(), HandshakeError> {
        if self.state != State::AwaitDecision {
            return Err(HandshakeError::NotAsked);
        }
        self.deadline = now + self.cfg.setup_time;
        let peer = self.peer.clone();
        let dynamic = self.peer_is_dynamic();
        let r = match decision {
            AcceptPending::Ok | AcceptPending::OkSimultaneous | AcceptPending::Alive if dynamic => {
                Err(HandshakeError::Unexpected(
                    "a dynamic-name peer must be named",
                ))
            }
            AcceptPending::Named { .. } if !dynamic => {
                Err(HandshakeError::Unexpected("named: for a static peer"))
            }
            AcceptPending::Ok => {
                self.send(&Status::Ok.encode());
                self.send_challenge();
                Ok(())
            }
            AcceptPending::OkSimultaneous => {
                self.send(&Status::OkSimultaneous.encode());
                self.send_challenge();
                Ok(())
            }
            AcceptPending::Nok => {
                self.send(&Status::Nok.encode());
                Err(HandshakeError::RefusedByUs {
                    peer,
                    status: "nok",
                })
            }
            AcceptPending::NotAllowed => {
                self.send(&Status::NotAllowed.encode());
                Err(HandshakeError::RefusedByUs {
                    peer,
                    status: "not_allowed",
                })
            }
            AcceptPending::Alive => {
                self.send(&Status::Alive.encode());
                self.replacing_up_connection = true;
                self.state = State::AwaitAliveReply;
                Ok(())
            }
            AcceptPending::Named { name, creation } => match NodeName::from_wire(&name) {
                Ok(n) if n.host() == self.peer => {
                    self.send(
                        &Status::Named {
                            name: name.clone(),
                            creation,
                        }
                        .encode(),
                    );
                    self.peer = name;
                    self.peer_creation = Some(creation);
                    self.send_challenge();
                    Ok(())
                }
                _ => Err(HandshakeError::BadName(name)),
            },
        };
        let r = r.and_then(|()| self.process(now));
        self.fail_on_err(r)
    }

    /// `dist_util:recv_status_reply/1` after we sent `alive`.
    fn recv_alive_reply(&mut self, msg: &[u8]) -> Result<(), HandshakeError> {
        match Status::parse(msg)? {
            Status::True => {
                self.send_challenge();
                Ok(())
            }
            Status::False => Err(HandshakeError::Refused {
                peer: self.peer.clone(),
                status: "false",
            }),
            _ => Err(HandshakeError::Unexpected(
                "status reply other than true/false",
            )),
        }
    }

    /// `dist_util:send_challenge/2`; the next message is `'c'` after an old `'n'` name.
    fn send_challenge(&mut self) {
        let ch = Challenge {
            flags: self.our_flags.0,
            challenge: self.our_challenge,
            creation: self.cfg.creation,
            name: self.cfg.name.clone(),
        };
        self.send(&ch.encode());
        self.state = if self.peer_sent_old_name {
            State::AwaitComplement
        } else {
            State::AwaitReply
        };
    }

    /// OTP 23/24 `dist_util:recv_complement/2`.
    fn recv_complement(&mut self, msg: &[u8]) -> Result<(), HandshakeError> {
        let c = Complement::parse(msg)?;
        self.peer_flags =
            DistFlags(self.peer_flags.0 | (u64::from(c.flags_high) << 32)).expand_mandatory_25();
        self.peer_creation = Some(c.creation);
        if let Err(missing) = self.peer_flags.check_required(self.cfg.required) {
            return Err(HandshakeError::MissingFlags {
                peer: self.peer.clone(),
                missing,
            });
        }
        self.state = State::AwaitReply;
        Ok(())
    }

    /// `dist_util:recv_challenge_reply/3`, then `send_challenge_ack/2`.
    fn recv_challenge_reply(&mut self, msg: &[u8]) -> Result<(), HandshakeError> {
        let reply = ChallengeReply::parse(msg)?;
        let expected = gen_digest(self.our_challenge, self.cfg.cookie.as_bytes());
        if !digest_eq(&reply.digest, &expected) {
            return Err(HandshakeError::BadCookie {
                peer: self.peer.clone(),
                step: "reply",
            });
        }
        if self.replacing_up_connection {
            self.state = State::AwaitOldConnection {
                challenge_b: reply.challenge,
            };
            self.events.push_back(HandshakeEvent::AwaitOldConnection);
        } else {
            self.send_ack(reply.challenge);
        }
        Ok(())
    }

    /// After [`HandshakeEvent::AwaitOldConnection`]: the previous connection is down, finish.
    pub fn old_connection_gone(&mut self, now: Instant) -> Result<(), HandshakeError> {
        let State::AwaitOldConnection { challenge_b } = self.state else {
            return Err(HandshakeError::NotAsked);
        };
        self.deadline = now + self.cfg.setup_time;
        self.send_ack(challenge_b);
        Ok(())
    }

    fn send_ack(&mut self, challenge_b: u32) {
        let ack = ChallengeAck {
            digest: gen_digest(challenge_b, self.cfg.cookie.as_bytes()),
        };
        self.send(&ack.encode());
        self.establish();
    }
}
