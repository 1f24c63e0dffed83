//! The connecting side: `dist_util:handshake_we_started/1`.

use std::time::Instant;

use super::messages::{
    digest_eq, gen_digest, Challenge, ChallengeAck, ChallengeReply, SendName, Status,
};
use super::{Handshake, HandshakeError, HandshakeEvent, State};
use crate::dist::flags::{DistFlags, NAME_ME};

impl Handshake {
    fn is_dynamic_name(&self) -> bool {
        self.cfg.flags.0 & NAME_ME != 0
    }

    /// Queues `send_name`: `'N'`, flags, creation (0 for a dynamic name), name.
    pub(super) fn send_name(&mut self) {
        let creation = if self.is_dynamic_name() {
            0
        } else {
            self.cfg.creation
        };
        let msg = SendName {
            flags: self.cfg.flags.0,
            creation: Some(creation),
            name: self.cfg.name.clone(),
        }
        .encode();
        self.send(&msg);
    }

    pub(super) fn initiator_message(&mut self, msg: &[u8]) -> Result<(), HandshakeError> {
        match self.state {
            State::AwaitStatus => self.recv_status(msg),
            State::AwaitChallenge => self.recv_challenge(msg),
            State::AwaitAck { challenge_b } => self.recv_challenge_ack(msg, challenge_b),
            _ => Err(HandshakeError::Unexpected("message in a local-wait state")),
        }
    }

    /// `dist_util:recv_status/1`.
    fn recv_status(&mut self, msg: &[u8]) -> Result<(), HandshakeError> {
        let status = Status::parse(msg)?;
        let peer = self.peer.clone();
        if self.is_dynamic_name() {
            return match status {
                Status::Named { name, creation } => {
                    // The acceptor must keep the host we asked for (`Host = this_node`).
                    match name.split_once('@') {
                        Some((n, h))
                            if !n.is_empty()
                                && h == self.cfg.name
                                && !name[n.len() + 1..].contains('@') => {}
                        _ => return Err(HandshakeError::BadName(name)),
                    }
                    self.cfg.name = name;
                    self.cfg.creation = creation;
                    self.state = State::AwaitChallenge;
                    Ok(())
                }
                Status::NotAllowed => Err(HandshakeError::Refused {
                    peer,
                    status: "not_allowed",
                }),
                _ => Err(HandshakeError::Unexpected(
                    "status other than named: for a dynamic name",
                )),
            };
        }
        match status {
            Status::Ok | Status::OkSimultaneous => {
                self.state = State::AwaitChallenge;
                Ok(())
            }
            Status::Nok => Err(HandshakeError::Refused {
                peer,
                status: "nok",
            }),
            Status::NotAllowed => Err(HandshakeError::Refused {
                peer,
                status: "not_allowed",
            }),
            Status::Alive => {
                self.state = State::AwaitAliveAnswer;
                self.events.push_back(HandshakeEvent::AliveQuery);
                Ok(())
            }
            Status::Named { .. } => Err(HandshakeError::Unexpected("named: for a static name")),
            Status::True | Status::False => {
                Err(HandshakeError::Unexpected("true/false as a status"))
            }
        }
    }

    /// Answers the acceptor's `alive` status (`strue` / `sfalse`); `false` ends the handshake.
    pub fn answer_alive(&mut self, still_wanted: bool, now: Instant) -> Result<(), HandshakeError> {
        if self.state != State::AwaitAliveAnswer {
            return Err(HandshakeError::NotAsked);
        }
        self.deadline = now + self.cfg.setup_time;
        if still_wanted {
            self.send(&Status::True.encode());
            self.state = State::AwaitChallenge;
            let r = self.process(now);
            self.fail_on_err(r)
        } else {
            self.send(&Status::False.encode());
            self.state = State::Failed;
            Err(HandshakeError::RefusedByUs {
                peer: self.peer.clone(),
                status: "alive: false",
            })
        }
    }

    /// `dist_util:recv_challenge/1`, then `send_challenge_reply/3`.
    fn recv_challenge(&mut self, msg: &[u8]) -> Result<(), HandshakeError> {
        let ch = Challenge::parse(msg)?;
        if ch.name != self.peer {
            return Err(HandshakeError::WrongPeer {
                expected: self.peer.clone(),
                got: ch.name,
            });
        }
        self.peer_flags = DistFlags(ch.flags).expand_mandatory_25();
        self.peer_creation = Some(ch.creation);
        if let Err(missing) = self.peer_flags.check_required(self.cfg.required) {
            return Err(HandshakeError::MissingFlags {
                peer: self.peer.clone(),
                missing,
            });
        }
        let reply = ChallengeReply {
            challenge: self.our_challenge,
            digest: gen_digest(ch.challenge, self.cfg.cookie.as_bytes()),
        };
        self.send(&reply.encode());
        self.state = State::AwaitAck {
            challenge_b: self.our_challenge,
        };
        Ok(())
    }

    /// `dist_util:recv_challenge_ack/3`.
    fn recv_challenge_ack(&mut self, msg: &[u8], challenge_b: u32) -> Result<(), HandshakeError> {
        let ack = ChallengeAck::parse(msg)?;
        let expected = gen_digest(challenge_b, self.cfg.cookie.as_bytes());
        if !digest_eq(&ack.digest, &expected) {
            return Err(HandshakeError::BadCookie {
                peer: self.peer.clone(),
                step: "ack",
            });
        }
        self.establish();
        Ok(())
    }
}
