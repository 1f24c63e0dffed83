//! MQTT 3.1, 3.1.1 and 5.0 packet codec, zero-copy over `bytes`.
//!
//! One file per packet family (as rumqttd's `mqttbytes`): each type has
//! `read(&FixedHeader, Bytes, ProtocolVersion)` over exactly the packet body and
//! `write_body(&self, ProtocolVersion, &mut BytesMut)`, and [`Packet`] dispatches. The connection
//! loop runs [`check`] on its read buffer (fixed header only: completeness, size limit, flags),
//! splits the frame off, and calls [`Packet::read`]; strings, binary data and PUBLISH payloads
//! stay slices of that frame. Specs: OASIS MQTT 3.1.1 (§2–3) and MQTT 5.0 (§1.5, §2, §3).

mod ack;
mod auth;
mod connack;
mod connect;
mod disconnect;
mod error;
mod header;
pub mod properties;
mod property_writer;
mod publish;
mod reason;
mod suback;
mod subscribe;
mod unsuback;
mod unsubscribe;
pub mod wire;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_arb;
#[cfg(test)]
mod tests_properties;
#[cfg(test)]
mod tests_random;
#[cfg(test)]
mod tests_rumqttc;

use bytes::{BufMut, Bytes, BytesMut};

pub use ack::Ack;
pub use auth::Auth;
pub use connack::ConnAck;
pub use connect::{Connect, LastWill};
pub use disconnect::Disconnect;
pub use error::{CodecError, Result};
pub use header::{check, FixedHeader, PacketType};
pub use properties::{Properties, PropertyContext, PropertyValues};
pub use publish::Publish;
pub use reason::{ReasonCode, ReasonContext};
pub use suback::SubAck;
pub use subscribe::{RetainHandling, Subscribe, SubscriptionOptions};
pub use unsuback::UnsubAck;
pub use unsubscribe::Unsubscribe;
pub use wire::MqttString;

/// Protocol level from CONNECT (§3.1.2.2); fixed for the rest of the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ProtocolVersion {
    /// MQTT 3.1 ("MQIsdp", level 3).
    V3_1 = 3,
    /// MQTT 3.1.1 ("MQTT", level 4).
    V3_1_1 = 4,
    /// MQTT 5.0 ("MQTT", level 5).
    V5 = 5,
}

impl ProtocolVersion {
    /// True for MQTT 5, where properties and reason codes exist.
    pub fn is_v5(self) -> bool {
        self == ProtocolVersion::V5
    }
}

/// Quality of service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum QoS {
    /// At most once.
    #[default]
    AtMostOnce = 0,
    /// At least once.
    AtLeastOnce = 1,
    /// Exactly once.
    ExactlyOnce = 2,
}

impl QoS {
    /// From the two QoS bits; 3 is malformed.
    pub fn from_u8(b: u8) -> Result<QoS> {
        match b {
            0 => Ok(QoS::AtMostOnce),
            1 => Ok(QoS::AtLeastOnce),
            2 => Ok(QoS::ExactlyOnce),
            _ => Err(CodecError::InvalidQos),
        }
    }
}

/// Any MQTT control packet.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Packet {
    /// Boxed: by far the largest packet, and one per connection.
    Connect(Box<Connect>),
    ConnAck(ConnAck),
    Publish(Publish),
    PubAck(Ack),
    PubRec(Ack),
    PubRel(Ack),
    PubComp(Ack),
    Subscribe(Subscribe),
    SubAck(SubAck),
    Unsubscribe(Unsubscribe),
    UnsubAck(UnsubAck),
    PingReq,
    PingResp,
    Disconnect(Disconnect),
    Auth(Auth),
}

fn expect_empty(fh: &FixedHeader) -> Result<()> {
    if fh.remaining_len != 0 {
        return Err(CodecError::TrailingBytes(fh.remaining_len));
    }
    Ok(())
}

/// Fails unless every byte of the body was consumed.
pub(crate) fn expect_end(body: &Bytes) -> Result<()> {
    if !body.is_empty() {
        return Err(CodecError::TrailingBytes(body.len()));
    }
    Ok(())
}

impl Packet {
    /// Decodes one packet from its body (the `remaining_len` bytes after the fixed header).
    /// CONNECT carries its own version; every other packet is read as `version`.
    pub fn read(fh: &FixedHeader, body: Bytes, version: ProtocolVersion) -> Result<Packet> {
        if body.len() != fh.remaining_len {
            return Err(CodecError::Truncated);
        }
        Ok(match fh.packet_type {
            PacketType::Connect => Packet::Connect(Box::new(Connect::read(fh, body)?)),
            PacketType::ConnAck => Packet::ConnAck(ConnAck::read(fh, body, version)?),
            PacketType::Publish => Packet::Publish(Publish::read(fh, body, version)?),
            PacketType::PubAck => Packet::PubAck(Ack::read(fh, body, version)?),
            PacketType::PubRec => Packet::PubRec(Ack::read(fh, body, version)?),
            PacketType::PubRel => Packet::PubRel(Ack::read(fh, body, version)?),
            PacketType::PubComp => Packet::PubComp(Ack::read(fh, body, version)?),
            PacketType::Subscribe => Packet::Subscribe(Subscribe::read(fh, body, version)?),
            PacketType::SubAck => Packet::SubAck(SubAck::read(fh, body, version)?),
            PacketType::Unsubscribe => Packet::Unsubscribe(Unsubscribe::read(fh, body, version)?),
            PacketType::UnsubAck => Packet::UnsubAck(UnsubAck::read(fh, body, version)?),
            PacketType::PingReq => {
                expect_empty(fh)?;
                Packet::PingReq
            }
            PacketType::PingResp => {
                expect_empty(fh)?;
                Packet::PingResp
            }
            PacketType::Disconnect => Packet::Disconnect(Disconnect::read(fh, body, version)?),
            PacketType::Auth => {
                if !version.is_v5() {
                    return Err(CodecError::InvalidPacketType(15));
                }
                Packet::Auth(Auth::read(fh, body)?)
            }
        })
    }

    /// Check-then-parse from a read buffer: `Ok(None)` until a whole frame is in, then the
    /// frame is split off `buf` (no copy) and decoded.
    pub fn decode(
        buf: &mut BytesMut,
        version: ProtocolVersion,
        max_packet_size: usize,
    ) -> Result<Option<Packet>> {
        let Some((fh, frame_len)) = check(buf, max_packet_size)? else {
            return Ok(None);
        };
        let mut frame = buf.split_to(frame_len).freeze();
        let body = frame.split_off(fh.header_len);
        Packet::read(&fh, body, version).map(Some)
    }

    /// The packet type.
    pub fn packet_type(&self) -> PacketType {
        match self {
            Packet::Connect(_) => PacketType::Connect,
            Packet::ConnAck(_) => PacketType::ConnAck,
            Packet::Publish(_) => PacketType::Publish,
            Packet::PubAck(_) => PacketType::PubAck,
            Packet::PubRec(_) => PacketType::PubRec,
            Packet::PubRel(_) => PacketType::PubRel,
            Packet::PubComp(_) => PacketType::PubComp,
            Packet::Subscribe(_) => PacketType::Subscribe,
            Packet::SubAck(_) => PacketType::SubAck,
            Packet::Unsubscribe(_) => PacketType::Unsubscribe,
            Packet::UnsubAck(_) => PacketType::UnsubAck,
            Packet::PingReq => PacketType::PingReq,
            Packet::PingResp => PacketType::PingResp,
            Packet::Disconnect(_) => PacketType::Disconnect,
            Packet::Auth(_) => PacketType::Auth,
        }
    }

    fn first_byte(&self) -> u8 {
        let t = self.packet_type();
        let flags = match self {
            Packet::Publish(p) => p.flags(),
            _ => t.required_flags().unwrap_or(0),
        };
        ((t as u8) << 4) | flags
    }

    /// Remaining Length of the encoded packet.
    pub fn body_len(&self, version: ProtocolVersion) -> Result<usize> {
        match self {
            Packet::Connect(p) => p.body_len(),
            Packet::ConnAck(p) => p.body_len(version),
            Packet::Publish(p) => p.body_len(version),
            Packet::PubAck(p) | Packet::PubRec(p) | Packet::PubRel(p) | Packet::PubComp(p) => {
                p.body_len(version, self.packet_type())
            }
            Packet::Subscribe(p) => p.body_len(version),
            Packet::SubAck(p) => p.body_len(version),
            Packet::Unsubscribe(p) => p.body_len(version),
            Packet::UnsubAck(p) => p.body_len(version),
            Packet::PingReq | Packet::PingResp => Ok(0),
            Packet::Disconnect(p) => p.body_len(version),
            Packet::Auth(p) => p.body_len(),
        }
    }

    /// Total encoded size, fixed header included (what Maximum Packet Size limits).
    pub fn encoded_len(&self, version: ProtocolVersion) -> Result<usize> {
        let n = self.body_len(version)?;
        if n > wire::VARINT_MAX as usize {
            return Err(CodecError::TooLongToEncode("packet"));
        }
        Ok(1 + wire::varint_len(n) + n)
    }

    /// Appends the encoded packet to `out`; returns the bytes written.
    pub fn write(&self, version: ProtocolVersion, out: &mut BytesMut) -> Result<usize> {
        let n = self.body_len(version)?;
        let total = 1 + wire::varint_len(n) + n;
        if n > wire::VARINT_MAX as usize {
            return Err(CodecError::TooLongToEncode("packet"));
        }
        out.reserve(total);
        out.put_u8(self.first_byte());
        wire::write_varint(out, n)?;
        let start = out.len();
        match self {
            Packet::Connect(p) => p.write_body(out)?,
            Packet::ConnAck(p) => p.write_body(version, out)?,
            Packet::Publish(p) => p.write_body(version, out)?,
            Packet::PubAck(p) | Packet::PubRec(p) | Packet::PubRel(p) | Packet::PubComp(p) => {
                p.write_body(version, out)?
            }
            Packet::Subscribe(p) => p.write_body(version, out)?,
            Packet::SubAck(p) => p.write_body(version, out)?,
            Packet::Unsubscribe(p) => p.write_body(version, out)?,
            Packet::UnsubAck(p) => p.write_body(version, out)?,
            Packet::PingReq | Packet::PingResp => {}
            Packet::Disconnect(p) => p.write_body(version, out)?,
            Packet::Auth(p) => p.write_body(out)?,
        }
        debug_assert_eq!(out.len() - start, n, "body_len disagrees with write_body");
        Ok(total)
    }
}

/// Fuzzing entry point (also run over random bytes by the unit tests): decodes `data` as a
/// stream of packets for each protocol version and, for each packet decoded, checks that it
/// re-encodes and decodes to itself. Panics only if that round trip breaks, which is a codec bug.
pub fn fuzz_decode(data: &[u8]) {
    for version in [ProtocolVersion::V3_1_1, ProtocolVersion::V5] {
        let mut buf = BytesMut::from(data);
        while let Ok(Some(packet)) = Packet::decode(&mut buf, version, 1 << 16) {
            let mut out = BytesMut::new();
            let written = packet.write(version, &mut out);
            assert!(
                written.is_ok(),
                "re-encoding {packet:?} failed: {written:?}"
            );
            let again = Packet::decode(&mut out, version, usize::MAX);
            assert_eq!(again, Ok(Some(packet)), "round trip changed the packet");
        }
    }
}
