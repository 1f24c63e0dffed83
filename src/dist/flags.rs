//! Distribution capability flags (`DFLAG_*`), as `lib/kernel/include/dist.hrl` defines them.
//!
//! Both sides advertise a 64-bit flag word in the handshake; the connection then uses the
//! intersection (`dist_util:adjust_flags/2` is a plain `band`). A peer that lacks one of the
//! flags we cannot work without is refused, as `dist_util:check_dflags/2` refuses it.

/// A set of `DFLAG_*` bits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct DistFlags(pub u64);

/// The node is visible (not hidden): it appears in `nodes()` of its peer.
pub const PUBLISHED: u64 = 0x01;
/// Old atom cache (never used by OTP 25; not advertised).
pub const ATOM_CACHE: u64 = 0x02;
/// Extended references (mandatory).
pub const EXTENDED_REFERENCES: u64 = 0x04;
/// Process monitors across the connection.
pub const DIST_MONITOR: u64 = 0x08;
/// FUN_EXT (mandatory).
pub const FUN_TAGS: u64 = 0x10;
/// Monitors by registered name.
pub const DIST_MONITOR_NAME: u64 = 0x20;
/// Atom cache on hidden connections (unused).
pub const HIDDEN_ATOM_CACHE: u64 = 0x40;
/// NEW_FUN_EXT (mandatory).
pub const NEW_FUN_TAGS: u64 = 0x80;
/// Extended pids and ports (mandatory).
pub const EXTENDED_PIDS_PORTS: u64 = 0x100;
/// EXPORT_EXT (mandatory).
pub const EXPORT_PTR_TAG: u64 = 0x200;
/// BIT_BINARY_EXT (mandatory).
pub const BIT_BINARIES: u64 = 0x400;
/// NEW_FLOAT_EXT (mandatory).
pub const NEW_FLOATS: u64 = 0x800;
/// Unicode io lists.
pub const UNICODE_IO: u64 = 0x1000;
/// Distribution header with atom cache (`131,68`) instead of the `112` pass-through byte.
pub const DIST_HDR_ATOM_CACHE: u64 = 0x2000;
/// SMALL_ATOM_EXT.
pub const SMALL_ATOM_TAGS: u64 = 0x4000;
/// UTF-8 atoms (mandatory).
pub const UTF8_ATOMS: u64 = 0x10000;
/// MAP_EXT (mandatory).
pub const MAP_TAG: u64 = 0x20000;
/// 32-bit creations: NEW_PID_EXT, NEWER_REFERENCE_EXT (mandatory).
pub const BIG_CREATION: u64 = 0x40000;
/// SEND_SENDER control message.
pub const SEND_SENDER: u64 = 0x80000;
/// Sequential trace labels of any term.
pub const BIG_SEQTRACE_LABELS: u64 = 0x100000;
/// The PAYLOAD_* control messages (exit reason after the control tuple).
pub const EXIT_PAYLOAD: u64 = 0x400000;
/// Fragmented messages (`131,69` / `131,70`).
pub const FRAGMENTS: u64 = 0x0080_0000;
/// Handshake version 6 (`'N'` messages) (mandatory).
pub const HANDSHAKE_23: u64 = 0x0100_0000;
/// UNLINK_ID / UNLINK_ID_ACK (mandatory from OTP 26).
pub const UNLINK_ID: u64 = 0x0200_0000;
/// One bit standing for every flag of [`MANDATORY_25`]. dist.hrl says `16#04000000` (bit 26);
/// the protocol documentation's `1 bsl 36` is wrong.
pub const MANDATORY_25_DIGEST: u64 = 0x0400_0000;
/// Reserved bits (`DFLAG_RESERVED`).
pub const RESERVED: u64 = 0xf800_0000;
/// SPAWN_REQUEST / SPAWN_REPLY (needed by `erpc` and `rpc:call` from OTP 25).
pub const SPAWN: u64 = 1 << 32;
/// Dynamic node names: the acceptor names the initiator (`named:` status).
pub const NAME_ME: u64 = 2 << 32;
/// 64-bit pid/port numbers, V4_PORT_EXT (mandatory from OTP 26).
pub const V4_NC: u64 = 4 << 32;
/// ALIAS_SEND and process aliases.
pub const ALIAS: u64 = 8 << 32;

/// `MANDATORY_DFLAGS_25` of dist.hrl: what OTP 25 refuses to connect without.
pub const MANDATORY_25: u64 = EXTENDED_REFERENCES
    | FUN_TAGS
    | EXTENDED_PIDS_PORTS
    | NEW_FUN_TAGS
    | EXPORT_PTR_TAG
    | BIT_BINARIES
    | NEW_FLOATS
    | UTF8_ATOMS
    | MAP_TAG
    | BIG_CREATION
    | HANDSHAKE_23;

/// What we need from a peer: OTP 25's mandatory set. V4_NC and UNLINK_ID (mandatory in OTP 26)
/// are advertised but not required, so OTP 23-25 peers still connect.
pub const REQUIRED: u64 = MANDATORY_25;

/// What we advertise: exactly the set a stock OTP 25 node sends (`16#d07df7fbd`, see
/// `otp25-traces.md` 0.1) so that peers behave towards us as they do towards BEAM, without
/// PUBLISHED (added per connection unless the node is hidden). See docs/decisions.md.
pub const ADVERTISED: u64 = MANDATORY_25
    | MANDATORY_25_DIGEST
    | DIST_MONITOR
    | DIST_MONITOR_NAME
    | UNICODE_IO
    | DIST_HDR_ATOM_CACHE
    | SMALL_ATOM_TAGS
    | SEND_SENDER
    | BIG_SEQTRACE_LABELS
    | EXIT_PAYLOAD
    | FRAGMENTS
    | UNLINK_ID
    | SPAWN
    | V4_NC
    | ALIAS;

const NAMES: &[(u64, &str)] = &[
    (PUBLISHED, "PUBLISHED"),
    (ATOM_CACHE, "ATOM_CACHE"),
    (EXTENDED_REFERENCES, "EXTENDED_REFERENCES"),
    (DIST_MONITOR, "DIST_MONITOR"),
    (FUN_TAGS, "FUN_TAGS"),
    (DIST_MONITOR_NAME, "DIST_MONITOR_NAME"),
    (HIDDEN_ATOM_CACHE, "HIDDEN_ATOM_CACHE"),
    (NEW_FUN_TAGS, "NEW_FUN_TAGS"),
    (EXTENDED_PIDS_PORTS, "EXTENDED_PIDS_PORTS"),
    (EXPORT_PTR_TAG, "EXPORT_PTR_TAG"),
    (BIT_BINARIES, "BIT_BINARIES"),
    (NEW_FLOATS, "NEW_FLOATS"),
    (UNICODE_IO, "UNICODE_IO"),
    (DIST_HDR_ATOM_CACHE, "DIST_HDR_ATOM_CACHE"),
    (SMALL_ATOM_TAGS, "SMALL_ATOM_TAGS"),
    (UTF8_ATOMS, "UTF8_ATOMS"),
    (MAP_TAG, "MAP_TAG"),
    (BIG_CREATION, "BIG_CREATION"),
    (SEND_SENDER, "SEND_SENDER"),
    (BIG_SEQTRACE_LABELS, "BIG_SEQTRACE_LABELS"),
    (EXIT_PAYLOAD, "EXIT_PAYLOAD"),
    (FRAGMENTS, "FRAGMENTS"),
    (HANDSHAKE_23, "HANDSHAKE_23"),
    (UNLINK_ID, "UNLINK_ID"),
    (MANDATORY_25_DIGEST, "MANDATORY_25_DIGEST"),
    (SPAWN, "SPAWN"),
    (NAME_ME, "NAME_ME"),
    (V4_NC, "V4_NC"),
    (ALIAS, "ALIAS"),
];

impl DistFlags {
    /// The flags we advertise on a connection (PUBLISHED unless `hidden`).
    pub fn ours(hidden: bool) -> Self {
        DistFlags(if hidden {
            ADVERTISED
        } else {
            ADVERTISED | PUBLISHED
        })
    }

    /// True when every bit of `bits` is set.
    pub fn contains(self, bits: u64) -> bool {
        self.0 & bits == bits
    }

    /// From OTP 25 the single MANDATORY_25_DIGEST bit stands for all of MANDATORY_25
    /// (`dist_util:expand_mandatory_25_flag/1`).
    pub fn expand_mandatory_25(self) -> Self {
        if self.0 & MANDATORY_25_DIGEST != 0 {
            DistFlags(self.0 | MANDATORY_25)
        } else {
            self
        }
    }

    /// The flags a connection uses: the intersection (`dist_util:adjust_flags/2`).
    pub fn agree(self, other: DistFlags) -> DistFlags {
        DistFlags(self.0 & other.0)
    }

    /// Checks that a peer (after [`Self::expand_mandatory_25`]) has every flag in `required`;
    /// returns the names of the missing ones otherwise, as `dist_util:check_dflags/2` reports.
    pub fn check_required(self, required: u64) -> Result<(), MissingFlags> {
        let missing = required & !self.0;
        if missing == 0 {
            Ok(())
        } else {
            Err(MissingFlags(DistFlags(missing)))
        }
    }

    /// Whether the connection makes the peer visible (`dist_util:publish_type/1`).
    pub fn is_published(self) -> bool {
        self.0 & PUBLISHED != 0
    }

    /// Names of the set bits, lowest first; unknown bits as hex.
    pub fn names(self) -> Vec<String> {
        let mut out = Vec::new();
        let mut rest = self.0;
        for &(bit, name) in NAMES {
            if rest & bit != 0 {
                out.push(name.to_string());
                rest &= !bit;
            }
        }
        if rest != 0 {
            out.push(format!("UNKNOWN<{rest:#x}>"));
        }
        out
    }
}

impl std::fmt::Debug for DistFlags {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DistFlags({:#x}: {})", self.0, self.names().join("|"))
    }
}

/// Flags a peer lacks; the handshake is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("peer cannot handle {:?}", .0.names())]
pub struct MissingFlags(pub DistFlags);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advertised_matches_stock_otp25_send_name() {
        // otp25-traces.md 0.1: a stock OTP 25 node sends 16#d07df7fbd (PUBLISHED included).
        assert_eq!(DistFlags::ours(false).0, 0xd_07df_7fbd);
        assert_eq!(DistFlags::ours(true).0, 0xd_07df_7fbc);
    }

    #[test]
    fn digest_bit_expands_to_mandatory_set() {
        let f = DistFlags(MANDATORY_25_DIGEST).expand_mandatory_25();
        assert!(f.contains(MANDATORY_25));
        assert!(f.check_required(REQUIRED).is_ok());
        assert!(DistFlags(MANDATORY_25_DIGEST)
            .check_required(REQUIRED)
            .is_err());
    }

    #[test]
    fn missing_flags_are_named() {
        let peer = DistFlags(MANDATORY_25 & !HANDSHAKE_23 & !MAP_TAG);
        let err = peer.check_required(REQUIRED).unwrap_err();
        assert_eq!(err.0.names(), vec!["MAP_TAG", "HANDSHAKE_23"]);
    }

    #[test]
    fn agreement_is_intersection() {
        let a = DistFlags(PUBLISHED | SPAWN | MAP_TAG);
        let b = DistFlags(SPAWN | MAP_TAG | ALIAS);
        assert_eq!(a.agree(b), DistFlags(SPAWN | MAP_TAG));
        assert!(!a.agree(b).is_published());
    }
}
