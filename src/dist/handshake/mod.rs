//! The distribution handshake as a sans-IO state machine (bytes and time in, bytes and events
//! out), for both sides, following `lib/kernel/src/dist_util.erl` of OTP 25 and the version 5
//! `'n'`/`'c'` variant OTP 23/24 initiators still send.
//!
//! ```text
//! initiator                         acceptor
//!   send_name 'N' flags creation name  ->
//!                                   <- status 'sok' | 'sok_simultaneous' | 'snok' | 'snot_allowed'
//!                                      | 'salive' (-> 'strue'/'sfalse') | 'snamed:' name creation
//!                                   <- challenge 'N' flags challenge creation name
//!   ('c' flags_high creation, only after an old 'n' name) ->
//!   challenge_reply 'r' challenge digest ->
//!                                   <- challenge_ack 'a' digest
//! ```
//!
//! Use: build a [`Handshake`] with [`Handshake::initiator`] or [`Handshake::acceptor`], feed it
//! every byte read with [`Handshake::handle_input`], write out whatever
//! [`Handshake::take_output`] returns, drain [`Handshake::poll_event`], and call
//! [`Handshake::handle_timeout`] at [`Handshake::poll_timeout`]. The acceptor stops after the
//! peer's name until the caller answers [`HandshakeEvent::PeerName`] with
//! [`Handshake::accept_pending`] (this is net_kernel's `accept_pending` decision, which resolves
//! simultaneous connects: see [`resolve_simultaneous`]). An error ends the handshake; any status
//! message queued before it (`not_allowed`, `nok`) should still be flushed to the peer.
//!
//! The cookie is only ever used inside the digest; errors name the peer, never the cookie.

mod acceptor;
mod initiator;
pub mod messages;

use std::time::{Duration, Instant};

use bytes::BytesMut;

use crate::dist::cookie::Cookie;
use crate::dist::flags::{DistFlags, MissingFlags};
use crate::dist::frame::{self, FrameTooLarge, MAX_HANDSHAKE_FRAME};
use messages::MessageError;

/// `net_setuptime` default of OTP: 7 seconds per handshake step.
pub const DEFAULT_SETUP_TIME: Duration = Duration::from_secs(7);

/// Who we are in a handshake.
#[derive(Debug, Clone)]
pub struct HandshakeConfig {
    /// Our full node name `name@host`; for a dynamic-name initiator (NAME_ME), only the host.
    pub name: String,
    /// Our creation (0 for a dynamic-name initiator until the acceptor names it).
    pub creation: u32,
    /// The flags we advertise (PUBLISHED set unless the node is hidden).
    pub flags: DistFlags,
    /// The flags a peer must have ([`crate::dist::flags::REQUIRED`]).
    pub required: u64,
    /// The cookie for both directions.
    pub cookie: Cookie,
    /// Time allowed for each step (`net_setuptime`).
    pub setup_time: Duration,
}

/// net_kernel's answer to an accepted name (`{accept_pending, Ret}` in `net_kernel.erl`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AcceptPending {
    /// No other connection to that node: go on (`ok`).
    Ok,
    /// We were connecting to it too and it wins: go on, our own attempt is dropped
    /// (`ok_pending` -> status `ok_simultaneous`).
    OkSimultaneous,
    /// We were connecting to it too and we win: refuse (`nok_pending` -> status `nok`).
    Nok,
    /// Refused by policy (status `not_allowed`).
    NotAllowed,
    /// A connection to that node is up: ask the initiator whether it still wants this one
    /// (`up_pending` -> status `alive`). If it says `true`, the handshake goes on, and before
    /// the final ack the caller must confirm the old connection is gone
    /// ([`HandshakeEvent::AwaitOldConnection`]).
    Alive,
    /// A NAME_ME initiator: give it this name and creation (status `named:`).
    Named {
        /// Full node name for the initiator.
        name: String,
        /// Its creation.
        creation: u32,
    },
}

/// What the handshake tells its driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandshakeEvent {
    /// Acceptor: the initiator introduced itself. Answer with [`Handshake::accept_pending`].
    PeerName {
        /// `name@host`, or only a host with NAME_ME.
        name: String,
        /// The peer's flags (MANDATORY_25_DIGEST expanded).
        flags: DistFlags,
        /// The peer's creation, unknown (`None`) until `'c'` for an old `'n'` name.
        creation: Option<u32>,
    },
    /// Initiator: the acceptor already has a connection to us (`alive`). Answer with
    /// [`Handshake::answer_alive`]: `true` when this attempt is still wanted (net_kernel's
    /// `is_pending`).
    AliveQuery,
    /// Acceptor after `Alive`: the cookie checked out; call [`Handshake::old_connection_gone`]
    /// once the previous connection to that node is down.
    AwaitOldConnection,
    /// The handshake succeeded.
    Established(Established),
}

/// The outcome of a successful handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Established {
    /// The peer's node name.
    pub peer: String,
    /// The peer's creation.
    pub peer_creation: u32,
    /// The peer's advertised flags (MANDATORY_25_DIGEST expanded).
    pub peer_flags: DistFlags,
    /// The flags in use on this connection: ours AND the peer's (`dist_util:adjust_flags/2`).
    pub flags: DistFlags,
    /// Our node name (as the acceptor gave it for a dynamic name).
    pub our_name: String,
    /// Our creation (as the acceptor gave it for a dynamic name).
    pub our_creation: u32,
    /// Bytes received after the handshake: the start of the 4-byte framed stream.
    pub rest: BytesMut,
}

/// Why a handshake failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// A frame above the handshake limit.
    #[error(transparent)]
    Frame(#[from] FrameTooLarge),
    /// A malformed message.
    #[error(transparent)]
    Message(#[from] MessageError),
    /// An invalid node name.
    #[error("invalid node name {0:?}")]
    BadName(String),
    /// The peer lacks flags we need.
    #[error("node {peer} refused: {missing}")]
    MissingFlags {
        /// Peer node name.
        peer: String,
        /// What it lacks.
        missing: MissingFlags,
    },
    /// The acceptor answered with another name than the one we dialled.
    #[error("connected to {got}, expected {expected}")]
    WrongPeer {
        /// The node we wanted.
        expected: String,
        /// The node that answered.
        got: String,
    },
    /// The digest did not match: the two nodes have different cookies.
    #[error("invalid challenge {step} from {peer}: cookies differ")]
    BadCookie {
        /// The peer node name.
        peer: String,
        /// `reply` (acceptor side) or `ack` (initiator side).
        step: &'static str,
    },
    /// The acceptor refused with this status (`nok`, `not_allowed`, `alive` + `false`).
    #[error("refused by {peer} with status {status}")]
    Refused {
        /// The peer node name.
        peer: String,
        /// The status text.
        status: &'static str,
    },
    /// We refused the peer (our decision was `Nok`/`NotAllowed`, or `alive` was answered
    /// `false`).
    #[error("refused {peer}: {status}")]
    RefusedByUs {
        /// The peer node name.
        peer: String,
        /// The status we sent.
        status: &'static str,
    },
    /// A message not expected at this step (e.g. `named:` without NAME_ME).
    #[error("unexpected handshake message: {0}")]
    Unexpected(&'static str),
    /// A step took longer than the setup time.
    #[error("handshake timed out waiting for {0}")]
    Timeout(&'static str),
    /// The peer sent more than a handshake message while we waited on a local decision.
    #[error("peer sent data out of turn")]
    OutOfTurn,
    /// The caller answered a question that was not asked.
    #[error("no such question pending")]
    NotAsked,
}

/// Which side of the handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// We connected (`handshake_we_started`).
    Initiator,
    /// We accepted (`handshake_other_started`).
    Acceptor,
}

/// Where a handshake is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    // initiator
    AwaitStatus,
    AwaitAliveAnswer,
    AwaitChallenge,
    AwaitAck { challenge_b: u32 },
    // acceptor
    AwaitName,
    AwaitDecision,
    AwaitAliveReply,
    AwaitComplement,
    AwaitReply,
    AwaitOldConnection { challenge_b: u32 },
    // both
    Done,
    Failed,
}

impl State {
    fn waiting_for(&self) -> &'static str {
        match self {
            State::AwaitStatus => "status",
            State::AwaitAliveAnswer => "local alive answer",
            State::AwaitChallenge => "challenge",
            State::AwaitAck { .. } => "challenge_ack",
            State::AwaitName => "send_name",
            State::AwaitDecision => "local accept decision",
            State::AwaitAliveReply => "alive reply",
            State::AwaitComplement => "complement",
            State::AwaitReply => "challenge_reply",
            State::AwaitOldConnection { .. } => "old connection to go down",
            State::Done => "nothing",
            State::Failed => "nothing",
        }
    }

    /// States in which the next input comes from the peer.
    fn expects_peer(&self) -> bool {
        matches!(
            self,
            State::AwaitStatus
                | State::AwaitChallenge
                | State::AwaitAck { .. }
                | State::AwaitName
                | State::AwaitAliveReply
                | State::AwaitComplement
                | State::AwaitReply
        )
    }
}

/// A handshake in progress (see the module docs).
#[derive(Debug)]
pub struct Handshake {
    role: Role,
    cfg: HandshakeConfig,
    state: State,
    /// Initiator: the node we dialled. Acceptor: the node that introduced itself.
    peer: String,
    peer_flags: DistFlags,
    peer_creation: Option<u32>,
    /// Acceptor: whether the peer opened with an old `'n'` (then `'c'` follows the challenge).
    peer_sent_old_name: bool,
    /// Acceptor: we answered `alive`, so the ack waits for the old connection to go.
    replacing_up_connection: bool,
    /// Our challenge (acceptor: A in dist_util; initiator: B).
    our_challenge: u32,
    our_flags: DistFlags,
    inbuf: BytesMut,
    out: BytesMut,
    events: std::collections::VecDeque<HandshakeEvent>,
    deadline: Instant,
}

impl Handshake {
    /// Starts connecting to `peer`: queues our `'N'` name. `challenge` is our random challenge
    /// (tests pass a fixed one to reproduce recorded bytes).
    pub fn initiator(cfg: HandshakeConfig, peer: &str, challenge: u32, now: Instant) -> Handshake {
        let mut hs = Handshake::new(Role::Initiator, cfg, peer.to_string(), challenge, now);
        hs.state = State::AwaitStatus;
        hs.send_name();
        hs
    }

    /// Starts accepting a connection: waits for the peer's name.
    pub fn acceptor(cfg: HandshakeConfig, challenge: u32, now: Instant) -> Handshake {
        let mut hs = Handshake::new(Role::Acceptor, cfg, String::new(), challenge, now);
        hs.state = State::AwaitName;
        hs
    }

    fn new(role: Role, cfg: HandshakeConfig, peer: String, challenge: u32, now: Instant) -> Self {
        let deadline = now + cfg.setup_time;
        let our_flags = cfg.flags;
        Handshake {
            role,
            cfg,
            state: State::AwaitName,
            peer,
            peer_flags: DistFlags(0),
            peer_creation: None,
            peer_sent_old_name: false,
            replacing_up_connection: false,
            our_challenge: challenge,
            our_flags,
            inbuf: BytesMut::new(),
            out: BytesMut::new(),
            events: Default::default(),
            deadline,
        }
    }

    /// Which side this is.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The peer's node name as far as known (empty before an acceptor got the name).
    pub fn peer(&self) -> &str {
        &self.peer
    }

    /// True once [`HandshakeEvent::Established`] was emitted.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Feeds bytes read from the peer.
    pub fn handle_input(&mut self, data: &[u8], now: Instant) -> Result<(), HandshakeError> {
        if matches!(self.state, State::Done | State::Failed) {
            self.inbuf.extend_from_slice(data);
            return Ok(());
        }
        self.inbuf.extend_from_slice(data);
        let r = self.process(now);
        self.fail_on_err(r)
    }

    fn process(&mut self, now: Instant) -> Result<(), HandshakeError> {
        while self.state.expects_peer() {
            let Some(msg) = frame::decode_handshake(&mut self.inbuf)? else {
                break;
            };
            self.deadline = now + self.cfg.setup_time;
            match self.role {
                Role::Initiator => self.initiator_message(&msg)?,
                Role::Acceptor => self.acceptor_message(&msg)?,
            }
        }
        if !matches!(self.state, State::Done) && self.inbuf.len() > MAX_HANDSHAKE_FRAME + 2 {
            return Err(HandshakeError::OutOfTurn);
        }
        Ok(())
    }

    fn fail_on_err(&mut self, r: Result<(), HandshakeError>) -> Result<(), HandshakeError> {
        if r.is_err() {
            self.state = State::Failed;
        }
        r
    }

    /// Takes the bytes to write to the peer (already framed).
    pub fn take_output(&mut self) -> Option<BytesMut> {
        if self.out.is_empty() {
            None
        } else {
            Some(self.out.split())
        }
    }

    /// Next event, if any.
    pub fn poll_event(&mut self) -> Option<HandshakeEvent> {
        self.events.pop_front()
    }

    /// When [`Self::handle_timeout`] must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Done | State::Failed => None,
            _ => Some(self.deadline),
        }
    }

    /// Fails the handshake once the current step's deadline has passed.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), HandshakeError> {
        match self.state {
            State::Done | State::Failed => Ok(()),
            ref s if now >= self.deadline => {
                let what = s.waiting_for();
                self.state = State::Failed;
                Err(HandshakeError::Timeout(what))
            }
            _ => Ok(()),
        }
    }

    fn send(&mut self, msg: &[u8]) {
        frame::encode_handshake(msg, &mut self.out);
    }

    fn establish(&mut self) {
        self.state = State::Done;
        let agreed = self.our_flags.agree(self.peer_flags);
        self.events
            .push_back(HandshakeEvent::Established(Established {
                peer: self.peer.clone(),
                peer_creation: self.peer_creation.unwrap_or(0),
                peer_flags: self.peer_flags,
                flags: agreed,
                our_name: self.cfg.name.clone(),
                our_creation: self.cfg.creation,
                rest: self.inbuf.split(),
            }));
    }
}

/// net_kernel's rule for a simultaneous connect (`handle_info({AcceptPid, {accept_pending,
/// MyNode, Node, Type}}, ...)` when a connection to `Node` is `pending`): the node whose name
/// compares greater keeps its own outgoing attempt. Atoms compare by their text, which for
/// UTF-8 equals byte order.
pub fn resolve_simultaneous(my_node: &str, peer: &str) -> AcceptPending {
    if my_node.as_bytes() > peer.as_bytes() {
        AcceptPending::Nok
    } else {
        AcceptPending::OkSimultaneous
    }
}

#[cfg(test)]
mod tests;
