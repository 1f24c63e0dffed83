//! Control messages (`erts/doc/src/erl_dist_protocol.xml`, "Protocol between Connected Nodes";
//! `erts/emulator/beam/dist.h` `DOP_*`): the tuple that starts every distribution message, typed.
//!
//! Field order and operation codes follow the protocol document for OTP 25-27. `Unused` fields
//! (SEND, REG_SEND and their _TT forms) are written as `''` as OTP writes them and ignored on
//! receipt. An operation we do not know decodes to [`ControlMessage::Unknown`]; a known one with
//! wrong fields is an error.
use crate::dist::etf::{Atom, Pid, Reference, Term};

/// Operation codes (`DOP_*`).
pub mod op {
    pub const LINK: i64 = 1;
    pub const SEND: i64 = 2;
    pub const EXIT: i64 = 3;
    pub const UNLINK: i64 = 4;
    pub const NODE_LINK: i64 = 5;
    pub const REG_SEND: i64 = 6;
    pub const GROUP_LEADER: i64 = 7;
    pub const EXIT2: i64 = 8;
    pub const SEND_TT: i64 = 12;
    pub const EXIT_TT: i64 = 13;
    pub const REG_SEND_TT: i64 = 16;
    pub const EXIT2_TT: i64 = 18;
    pub const MONITOR_P: i64 = 19;
    pub const DEMONITOR_P: i64 = 20;
    pub const MONITOR_P_EXIT: i64 = 21;
    pub const SEND_SENDER: i64 = 22;
    pub const SEND_SENDER_TT: i64 = 23;
    pub const PAYLOAD_EXIT: i64 = 24;
    pub const PAYLOAD_EXIT_TT: i64 = 25;
    pub const PAYLOAD_EXIT2: i64 = 26;
    pub const PAYLOAD_EXIT2_TT: i64 = 27;
    pub const PAYLOAD_MONITOR_P_EXIT: i64 = 28;
    pub const SPAWN_REQUEST: i64 = 29;
    pub const SPAWN_REQUEST_TT: i64 = 30;
    pub const SPAWN_REPLY: i64 = 31;
    pub const SPAWN_REPLY_TT: i64 = 32;
    pub const ALIAS_SEND: i64 = 33;
    pub const ALIAS_SEND_TT: i64 = 34;
    pub const UNLINK_ID: i64 = 35;
    pub const UNLINK_ID_ACK: i64 = 36;
}

/// A monitored or monitoring process: by pid, or by registered name (MONITOR_P, DEMONITOR_P,
/// MONITOR_P_EXIT carry the atom when the monitor was set up by name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProcRef {
    /// A process.
    Pid(Pid),
    /// A name registered on the receiving (MONITOR_P) or sending (MONITOR_P_EXIT) node.
    Name(Atom),
}

/// What SPAWN_REPLY reports: the new process, or an error atom (`badarg`, `system_limit` ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpawnResult {
    /// The spawned process.
    Pid(Pid),
    /// Why the spawn failed.
    Error(Atom),
}

/// A control message, one variant per operation.
#[derive(Debug, Clone, PartialEq)]
pub enum ControlMessage {
    /// `{1, From, To}`
    Link { from: Pid, to: Pid },
    /// `{2, Unused, To}` + message
    Send { to: Pid },
    /// `{3, From, To, Reason}`
    Exit { from: Pid, to: Pid, reason: Term },
    /// `{4, From, To}` (before UNLINK_ID)
    Unlink { from: Pid, to: Pid },
    /// `{5}`
    NodeLink,
    /// `{6, From, Unused, ToName}` + message
    RegSend { from: Pid, to_name: Atom },
    /// `{7, From, To}`
    GroupLeader { from: Pid, to: Pid },
    /// `{8, From, To, Reason}`
    Exit2 { from: Pid, to: Pid, reason: Term },
    /// `{12, Unused, To, TraceToken}` + message
    SendTt { to: Pid, trace_token: Term },
    /// `{13, From, To, TraceToken, Reason}`
    ExitTt {
        from: Pid,
        to: Pid,
        trace_token: Term,
        reason: Term,
    },
    /// `{16, From, Unused, ToName, TraceToken}` + message
    RegSendTt {
        from: Pid,
        to_name: Atom,
        trace_token: Term,
    },
    /// `{18, From, To, TraceToken, Reason}`
    Exit2Tt {
        from: Pid,
        to: Pid,
        trace_token: Term,
        reason: Term,
    },
    /// `{19, From, ToProc, Ref}`
    MonitorP {
        from: Pid,
        to: ProcRef,
        reference: Reference,
    },
    /// `{20, From, ToProc, Ref}`
    DemonitorP {
        from: Pid,
        to: ProcRef,
        reference: Reference,
    },
    /// `{21, FromProc, To, Ref, Reason}`
    MonitorPExit {
        from: ProcRef,
        to: Pid,
        reference: Reference,
        reason: Term,
    },
    /// `{22, From, To}` + message
    SendSender { from: Pid, to: Pid },
    /// `{23, From, To, TraceToken}` + message
    SendSenderTt {
        from: Pid,
        to: Pid,
        trace_token: Term,
    },
    /// `{24, From, To}` + reason
    PayloadExit { from: Pid, to: Pid },
    /// `{25, From, To, TraceToken}` + reason
    PayloadExitTt {
        from: Pid,
        to: Pid,
        trace_token: Term,
    },
    /// `{26, From, To}` + reason
    PayloadExit2 { from: Pid, to: Pid },
    /// `{27, From, To, TraceToken}` + reason
    PayloadExit2Tt {
        from: Pid,
        to: Pid,
        trace_token: Term,
    },
    /// `{28, FromProc, To, Ref}` + reason
    PayloadMonitorPExit {
        from: ProcRef,
        to: Pid,
        reference: Reference,
    },
    /// `{29, ReqId, From, GroupLeader, {M, F, Arity}, OptList}` + argument list
    SpawnRequest {
        req_id: Reference,
        from: Pid,
        group_leader: Pid,
        mfa: (Atom, Atom, u32),
        opts: Term,
    },
    /// `{30, ReqId, From, GroupLeader, {M, F, Arity}, OptList, Token}` + argument list
    SpawnRequestTt {
        req_id: Reference,
        from: Pid,
        group_leader: Pid,
        mfa: (Atom, Atom, u32),
        opts: Term,
        trace_token: Term,
    },
    /// `{31, ReqId, To, Flags, Result}`; flags bit 0 link, bit 1 monitor
    SpawnReply {
        req_id: Reference,
        to: Pid,
        flags: u32,
        result: SpawnResult,
    },
    /// `{32, ReqId, To, Flags, Result, Token}`
    SpawnReplyTt {
        req_id: Reference,
        to: Pid,
        flags: u32,
        result: SpawnResult,
        trace_token: Term,
    },
    /// `{33, From, Alias}` + message
    AliasSend { from: Pid, alias: Reference },
    /// `{34, From, Alias, Token}` + message
    AliasSendTt {
        from: Pid,
        alias: Reference,
        trace_token: Term,
    },
    /// `{35, Id, From, To}`
    UnlinkId { id: u64, from: Pid, to: Pid },
    /// `{36, Id, From, To}`
    UnlinkIdAck { id: u64, from: Pid, to: Pid },
    /// An operation we do not know: the whole control tuple, logged and ignored by the node.
    Unknown { op: i64, control: Term },
}

/// A control tuple that does not match its operation.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ControlError {
    /// Not a tuple starting with an integer.
    #[error("control message is not a tuple with an operation code: {0:?}")]
    NotAControlTuple(Box<Term>),
    /// A known operation with wrong arity or field types.
    #[error("malformed control message for operation {0}")]
    Malformed(i64),
}

impl ControlMessage {
    /// The operation code.
    pub fn op(&self) -> i64 {
        use ControlMessage::*;
        match self {
            Link { .. } => op::LINK,
            Send { .. } => op::SEND,
            Exit { .. } => op::EXIT,
            Unlink { .. } => op::UNLINK,
            NodeLink => op::NODE_LINK,
            RegSend { .. } => op::REG_SEND,
            GroupLeader { .. } => op::GROUP_LEADER,
            Exit2 { .. } => op::EXIT2,
            SendTt { .. } => op::SEND_TT,
            ExitTt { .. } => op::EXIT_TT,
            RegSendTt { .. } => op::REG_SEND_TT,
            Exit2Tt { .. } => op::EXIT2_TT,
            MonitorP { .. } => op::MONITOR_P,
            DemonitorP { .. } => op::DEMONITOR_P,
            MonitorPExit { .. } => op::MONITOR_P_EXIT,
            SendSender { .. } => op::SEND_SENDER,
            SendSenderTt { .. } => op::SEND_SENDER_TT,
            PayloadExit { .. } => op::PAYLOAD_EXIT,
            PayloadExitTt { .. } => op::PAYLOAD_EXIT_TT,
            PayloadExit2 { .. } => op::PAYLOAD_EXIT2,
            PayloadExit2Tt { .. } => op::PAYLOAD_EXIT2_TT,
            PayloadMonitorPExit { .. } => op::PAYLOAD_MONITOR_P_EXIT,
            SpawnRequest { .. } => op::SPAWN_REQUEST,
            SpawnRequestTt { .. } => op::SPAWN_REQUEST_TT,
            SpawnReply { .. } => op::SPAWN_REPLY,
            SpawnReplyTt { .. } => op::SPAWN_REPLY_TT,
            AliasSend { .. } => op::ALIAS_SEND,
            AliasSendTt { .. } => op::ALIAS_SEND_TT,
            UnlinkId { .. } => op::UNLINK_ID,
            UnlinkIdAck { .. } => op::UNLINK_ID_ACK,
            Unknown { op, .. } => *op,
        }
    }

    /// Whether a payload term follows the control term on the wire. `None` for [`Unknown`]
    /// (we cannot know; whatever follows is kept).
    ///
    /// [`Unknown`]: ControlMessage::Unknown
    pub fn has_payload(&self) -> Option<bool> {
        if matches!(self, ControlMessage::Unknown { .. }) {
            return None;
        }
        match self.op() {
            op::SEND
            | op::REG_SEND
            | op::SEND_TT
            | op::REG_SEND_TT
            | op::SEND_SENDER
            | op::SEND_SENDER_TT => Some(true),
            op::PAYLOAD_EXIT..=op::SPAWN_REQUEST_TT | op::ALIAS_SEND | op::ALIAS_SEND_TT => {
                Some(true)
            }
            _ => Some(false),
        }
    }
}
