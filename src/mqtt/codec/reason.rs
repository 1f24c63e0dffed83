//! MQTT 5 reason codes (MQTT 5.0 §2.4) and the MQTT 3.1.1 return codes they map to.
//!
//! One enum serves every packet, so the session speaks a single vocabulary; which codes a packet
//! may carry is checked by [`ReasonCode::allowed_in`] when decoding and encoding. On a 3.1.1
//! connection, CONNACK and SUBACK codes are translated as EMQX does (`emqx_reason_codes:compat/2`).

use super::error::{CodecError, Result};

/// Every reason code defined by MQTT 5.0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
#[allow(missing_docs)]
pub enum ReasonCode {
    /// Success, Normal disconnection, Granted QoS 0.
    #[default]
    Success = 0x00,
    GrantedQos1 = 0x01,
    GrantedQos2 = 0x02,
    DisconnectWithWillMessage = 0x04,
    NoMatchingSubscribers = 0x10,
    NoSubscriptionExisted = 0x11,
    ContinueAuthentication = 0x18,
    ReAuthenticate = 0x19,
    UnspecifiedError = 0x80,
    MalformedPacket = 0x81,
    ProtocolError = 0x82,
    ImplementationSpecificError = 0x83,
    UnsupportedProtocolVersion = 0x84,
    ClientIdentifierNotValid = 0x85,
    BadUserNameOrPassword = 0x86,
    NotAuthorized = 0x87,
    ServerUnavailable = 0x88,
    ServerBusy = 0x89,
    Banned = 0x8A,
    ServerShuttingDown = 0x8B,
    BadAuthenticationMethod = 0x8C,
    KeepAliveTimeout = 0x8D,
    SessionTakenOver = 0x8E,
    TopicFilterInvalid = 0x8F,
    TopicNameInvalid = 0x90,
    PacketIdentifierInUse = 0x91,
    PacketIdentifierNotFound = 0x92,
    ReceiveMaximumExceeded = 0x93,
    TopicAliasInvalid = 0x94,
    PacketTooLarge = 0x95,
    MessageRateTooHigh = 0x96,
    QuotaExceeded = 0x97,
    AdministrativeAction = 0x98,
    PayloadFormatInvalid = 0x99,
    RetainNotSupported = 0x9A,
    QosNotSupported = 0x9B,
    UseAnotherServer = 0x9C,
    ServerMoved = 0x9D,
    SharedSubscriptionsNotSupported = 0x9E,
    ConnectionRateExceeded = 0x9F,
    MaximumConnectTime = 0xA0,
    SubscriptionIdentifiersNotSupported = 0xA1,
    WildcardSubscriptionsNotSupported = 0xA2,
}

/// Packets that carry reason codes, for [`ReasonCode::allowed_in`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReasonContext {
    /// CONNACK (§3.2.2.2).
    ConnAck,
    /// PUBACK and PUBREC (§3.4.2.1, §3.5.2.1).
    PubAckPubRec,
    /// PUBREL and PUBCOMP (§3.6.2.1, §3.7.2.1).
    PubRelPubComp,
    /// SUBACK (§3.9.3).
    SubAck,
    /// UNSUBACK (§3.11.3).
    UnsubAck,
    /// DISCONNECT (§3.14.2.1).
    Disconnect,
    /// AUTH (§3.15.2.1).
    Auth,
}

impl ReasonContext {
    /// Packet name, for error messages.
    pub fn name(self) -> &'static str {
        match self {
            ReasonContext::ConnAck => "CONNACK",
            ReasonContext::PubAckPubRec => "PUBACK/PUBREC",
            ReasonContext::PubRelPubComp => "PUBREL/PUBCOMP",
            ReasonContext::SubAck => "SUBACK",
            ReasonContext::UnsubAck => "UNSUBACK",
            ReasonContext::Disconnect => "DISCONNECT",
            ReasonContext::Auth => "AUTH",
        }
    }
}

impl ReasonCode {
    /// Alias used in DISCONNECT.
    pub const NORMAL_DISCONNECTION: ReasonCode = ReasonCode::Success;
    /// Alias used in SUBACK.
    pub const GRANTED_QOS0: ReasonCode = ReasonCode::Success;

    /// Parses a byte; `None` for an undefined code.
    pub fn from_u8(b: u8) -> Option<ReasonCode> {
        use ReasonCode::*;
        Some(match b {
            0x00 => Success,
            0x01 => GrantedQos1,
            0x02 => GrantedQos2,
            0x04 => DisconnectWithWillMessage,
            0x10 => NoMatchingSubscribers,
            0x11 => NoSubscriptionExisted,
            0x18 => ContinueAuthentication,
            0x19 => ReAuthenticate,
            0x80 => UnspecifiedError,
            0x81 => MalformedPacket,
            0x82 => ProtocolError,
            0x83 => ImplementationSpecificError,
            0x84 => UnsupportedProtocolVersion,
            0x85 => ClientIdentifierNotValid,
            0x86 => BadUserNameOrPassword,
            0x87 => NotAuthorized,
            0x88 => ServerUnavailable,
            0x89 => ServerBusy,
            0x8A => Banned,
            0x8B => ServerShuttingDown,
            0x8C => BadAuthenticationMethod,
            0x8D => KeepAliveTimeout,
            0x8E => SessionTakenOver,
            0x8F => TopicFilterInvalid,
            0x90 => TopicNameInvalid,
            0x91 => PacketIdentifierInUse,
            0x92 => PacketIdentifierNotFound,
            0x93 => ReceiveMaximumExceeded,
            0x94 => TopicAliasInvalid,
            0x95 => PacketTooLarge,
            0x96 => MessageRateTooHigh,
            0x97 => QuotaExceeded,
            0x98 => AdministrativeAction,
            0x99 => PayloadFormatInvalid,
            0x9A => RetainNotSupported,
            0x9B => QosNotSupported,
            0x9C => UseAnotherServer,
            0x9D => ServerMoved,
            0x9E => SharedSubscriptionsNotSupported,
            0x9F => ConnectionRateExceeded,
            0xA0 => MaximumConnectTime,
            0xA1 => SubscriptionIdentifiersNotSupported,
            0xA2 => WildcardSubscriptionsNotSupported,
            _ => return None,
        })
    }

    /// The wire byte.
    pub fn as_u8(self) -> u8 {
        self as u8
    }

    /// True for codes 0x80 and above, which mean failure.
    pub fn is_error(self) -> bool {
        self.as_u8() >= 0x80
    }

    /// Whether the spec allows this code in the given packet (MQTT 5.0 §2.4 table 2-6).
    pub fn allowed_in(self, ctx: ReasonContext) -> bool {
        let b = self.as_u8();
        match ctx {
            ReasonContext::ConnAck => matches!(
                b,
                0x00 | 0x80..=0x8A | 0x8C | 0x90 | 0x95 | 0x97 | 0x99..=0x9D | 0x9F
            ),
            ReasonContext::PubAckPubRec => {
                matches!(
                    b,
                    0x00 | 0x10 | 0x80 | 0x83 | 0x87 | 0x90 | 0x91 | 0x97 | 0x99
                )
            }
            ReasonContext::PubRelPubComp => matches!(b, 0x00 | 0x92),
            ReasonContext::SubAck => matches!(
                b,
                0x00..=0x02 | 0x80 | 0x83 | 0x87 | 0x8F | 0x91 | 0x97 | 0x9E | 0xA1 | 0xA2
            ),
            ReasonContext::UnsubAck => {
                matches!(b, 0x00 | 0x11 | 0x80 | 0x83 | 0x87 | 0x8F | 0x91)
            }
            ReasonContext::Disconnect => matches!(
                b,
                0x00 | 0x04 | 0x80..=0x83 | 0x87 | 0x89 | 0x8B | 0x8D..=0x90 | 0x93..=0xA2
            ),
            ReasonContext::Auth => matches!(b, 0x00 | 0x18 | 0x19),
        }
    }

    /// Decodes a reason byte and checks it belongs in `ctx`.
    pub fn read(b: u8, ctx: ReasonContext) -> Result<ReasonCode> {
        match ReasonCode::from_u8(b) {
            Some(rc) if rc.allowed_in(ctx) => Ok(rc),
            _ => Err(CodecError::InvalidReasonCode {
                code: b,
                context: ctx.name(),
            }),
        }
    }

    /// The MQTT 3.1.1 CONNACK return code (§3.2.2.3) closest to this reason.
    pub fn to_v3_connack(self) -> u8 {
        use ReasonCode::*;
        match self {
            Success => 0,
            UnsupportedProtocolVersion => 1,
            ClientIdentifierNotValid => 2,
            BadUserNameOrPassword => 4,
            NotAuthorized | Banned | BadAuthenticationMethod => 5,
            _ => 3,
        }
    }

    /// Reads a 3.1.1 CONNACK return code.
    pub fn from_v3_connack(b: u8) -> Result<ReasonCode> {
        use ReasonCode::*;
        Ok(match b {
            0 => Success,
            1 => UnsupportedProtocolVersion,
            2 => ClientIdentifierNotValid,
            3 => ServerUnavailable,
            4 => BadUserNameOrPassword,
            5 => NotAuthorized,
            _ => {
                return Err(CodecError::InvalidReasonCode {
                    code: b,
                    context: "CONNACK (3.1.1)",
                })
            }
        })
    }

    /// The MQTT 3.1.1 SUBACK return code (§3.9.3): granted QoS, or 0x80 for any failure.
    pub fn to_v3_suback(self) -> u8 {
        match self.as_u8() {
            b @ 0..=2 => b,
            _ => 0x80,
        }
    }

    /// Reads a 3.1.1 SUBACK return code.
    pub fn from_v3_suback(b: u8) -> Result<ReasonCode> {
        match b {
            0 => Ok(ReasonCode::Success),
            1 => Ok(ReasonCode::GrantedQos1),
            2 => Ok(ReasonCode::GrantedQos2),
            0x80 => Ok(ReasonCode::UnspecifiedError),
            _ => Err(CodecError::InvalidReasonCode {
                code: b,
                context: "SUBACK (3.1.1)",
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_defined_byte_round_trips_and_undefined_bytes_are_none() {
        let mut defined = 0;
        for b in 0..=255u8 {
            if let Some(rc) = ReasonCode::from_u8(b) {
                assert_eq!(rc.as_u8(), b);
                defined += 1;
            }
        }
        assert_eq!(defined, 43);
    }

    #[test]
    fn per_packet_tables_match_the_spec_samples() {
        assert!(ReasonCode::PacketTooLarge.allowed_in(ReasonContext::ConnAck));
        assert!(!ReasonCode::KeepAliveTimeout.allowed_in(ReasonContext::ConnAck));
        assert!(ReasonCode::KeepAliveTimeout.allowed_in(ReasonContext::Disconnect));
        assert!(!ReasonCode::GrantedQos1.allowed_in(ReasonContext::PubAckPubRec));
        assert!(ReasonCode::PacketIdentifierNotFound.allowed_in(ReasonContext::PubRelPubComp));
        assert!(!ReasonCode::ProtocolError.allowed_in(ReasonContext::Auth));
        assert!(ReasonCode::read(0x03, ReasonContext::SubAck).is_err());
    }

    #[test]
    fn v3_mappings() {
        assert_eq!(ReasonCode::BadUserNameOrPassword.to_v3_connack(), 4);
        assert_eq!(ReasonCode::ServerBusy.to_v3_connack(), 3);
        assert_eq!(ReasonCode::TopicFilterInvalid.to_v3_suback(), 0x80);
        assert_eq!(ReasonCode::GrantedQos2.to_v3_suback(), 2);
        assert!(ReasonCode::from_v3_connack(6).is_err());
    }
}
