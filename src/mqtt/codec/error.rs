//! Decode and encode errors, each mapped to the MQTT 5 reason code the server sends before
//! closing (MQTT 5.0 §4.13: "the receiver closes the connection, and SHOULD send a DISCONNECT or
//! CONNACK with the reason code first").

use super::reason::ReasonCode;

/// Why a packet could not be decoded or encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// The frame's total length exceeds the negotiated Maximum Packet Size.
    #[error("packet of {size} bytes exceeds the maximum of {max}")]
    PacketTooLarge {
        /// Total frame length (fixed header included) announced by the header.
        size: usize,
        /// The limit it was checked against.
        max: usize,
    },
    /// A Variable Byte Integer longer than 4 bytes (MQTT 5.0 §1.5.5).
    #[error("variable byte integer longer than 4 bytes")]
    MalformedVarint,
    /// Control packet type 0 (reserved), or AUTH on a pre-5 connection.
    #[error("invalid control packet type {0}")]
    InvalidPacketType(u8),
    /// Fixed-header flags other than the ones the spec fixes for this type (§2.1.3).
    #[error("reserved flags {flags:#06b} in packet type {packet_type}")]
    ReservedFlags {
        /// The packet type nibble.
        packet_type: u8,
        /// The low nibble of the first byte.
        flags: u8,
    },
    /// QoS bits with value 3.
    #[error("invalid QoS 3")]
    InvalidQos,
    /// A field runs past the end of the packet.
    #[error("packet truncated")]
    Truncated,
    /// Bytes left over after the last field.
    #[error("{0} unexpected trailing bytes")]
    TrailingBytes(usize),
    /// A string that is not well-formed UTF-8 or contains U+0000 (§1.5.4).
    #[error("string is not valid MQTT UTF-8")]
    BadUtf8,
    /// CONNECT with a protocol name other than "MQTT" / "MQIsdp".
    #[error("unknown protocol name")]
    InvalidProtocolName,
    /// CONNECT with a protocol level this broker does not speak.
    #[error("unsupported protocol level {0}")]
    UnsupportedProtocolVersion(u8),
    /// A property identifier that does not exist.
    #[error("unknown property identifier {0:#04x}")]
    UnknownProperty(u8),
    /// A property that exists but is not allowed in this packet (§2.2.2.2: malformed).
    #[error("property {id:#04x} not allowed in {context}")]
    PropertyNotAllowed {
        /// Property identifier.
        id: u8,
        /// Where it appeared.
        context: &'static str,
    },
    /// A single-valued property given twice (protocol error).
    #[error("property {0:#04x} given more than once")]
    DuplicateProperty(u8),
    /// A property value outside its allowed range (e.g. Receive Maximum 0).
    #[error("invalid value for property {0:#04x}")]
    InvalidPropertyValue(u8),
    /// A reason code that is not defined, or not allowed in this packet.
    #[error("reason code {code:#04x} not allowed in {context}")]
    InvalidReasonCode {
        /// The byte received.
        code: u8,
        /// Packet it appeared in.
        context: &'static str,
    },
    /// Any other violation of a MUST in the spec that the spec calls a protocol error.
    #[error("protocol error: {0}")]
    Protocol(&'static str),
    /// Any other violation that the spec calls a malformed packet.
    #[error("malformed packet: {0}")]
    Malformed(&'static str),
    /// Encoding: a field or the whole packet does not fit its length prefix.
    #[error("field too long to encode: {0}")]
    TooLongToEncode(&'static str),
}

impl CodecError {
    /// The reason code to put in the CONNACK/DISCONNECT the server sends before closing.
    pub fn reason_code(&self) -> ReasonCode {
        match self {
            CodecError::PacketTooLarge { .. } => ReasonCode::PacketTooLarge,
            CodecError::UnsupportedProtocolVersion(_) => ReasonCode::UnsupportedProtocolVersion,
            CodecError::DuplicateProperty(_)
            | CodecError::InvalidPropertyValue(_)
            | CodecError::Protocol(_)
            | CodecError::InvalidProtocolName => ReasonCode::ProtocolError,
            CodecError::TooLongToEncode(_) => ReasonCode::ImplementationSpecificError,
            CodecError::MalformedVarint
            | CodecError::InvalidPacketType(_)
            | CodecError::ReservedFlags { .. }
            | CodecError::InvalidQos
            | CodecError::Truncated
            | CodecError::TrailingBytes(_)
            | CodecError::BadUtf8
            | CodecError::UnknownProperty(_)
            | CodecError::PropertyNotAllowed { .. }
            | CodecError::InvalidReasonCode { .. }
            | CodecError::Malformed(_) => ReasonCode::MalformedPacket,
        }
    }
}

/// Result alias for the codec.
pub type Result<T> = std::result::Result<T, CodecError>;
