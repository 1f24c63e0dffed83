//! Cross-check against an independent implementation: rumqttc's `mqttbytes` (v4 and v5) must
//! decode what we write, and we must decode what it writes back to the packet we started from.

use bytes::BytesMut;
use proptest::prelude::*;

use super::tests_arb::arb_packet;
use super::*;

fn via_rumqttc(p: &Packet, v: ProtocolVersion) -> std::result::Result<Packet, String> {
    let mut ours = BytesMut::new();
    p.write(v, &mut ours).map_err(|e| e.to_string())?;
    let mut theirs = BytesMut::new();
    if v.is_v5() {
        use rumqttc::v5::mqttbytes::v5 as r;
        let rp = r::Packet::read(&mut ours, None).map_err(|e| format!("rumqttc read: {e:?}"))?;
        rp.write(&mut theirs)
            .map_err(|e| format!("rumqttc write: {e:?}"))?;
    } else {
        use rumqttc::mqttbytes::v4 as r;
        let rp = r::read(&mut ours, usize::MAX).map_err(|e| format!("rumqttc read: {e:?}"))?;
        write_v4(&rp, &mut theirs)?;
    }
    match Packet::decode(&mut theirs, v, usize::MAX) {
        Ok(Some(back)) => Ok(back),
        other => Err(format!("our decode of rumqttc's bytes: {other:?}")),
    }
}

fn write_v4(
    p: &rumqttc::mqttbytes::v4::Packet,
    out: &mut BytesMut,
) -> std::result::Result<(), String> {
    use rumqttc::mqttbytes::v4::Packet as P;
    let r = match p {
        P::Connect(x) => x.write(out),
        P::ConnAck(x) => x.write(out),
        P::Publish(x) => x.write(out),
        P::PubAck(x) => x.write(out),
        P::PubRec(x) => x.write(out),
        P::PubRel(x) => x.write(out),
        P::PubComp(x) => x.write(out),
        P::Subscribe(x) => x.write(out),
        P::SubAck(x) => x.write(out),
        P::Unsubscribe(x) => x.write(out),
        P::UnsubAck(x) => x.write(out),
        P::PingReq => rumqttc::mqttbytes::v4::PingReq.write(out),
        P::PingResp => rumqttc::mqttbytes::v4::PingResp.write(out),
        P::Disconnect => rumqttc::mqttbytes::v4::Disconnect.write(out),
    };
    r.map(|_| ()).map_err(|e| format!("rumqttc write: {e:?}"))
}

/// Packets outside what rumqttc 0.24 represents or reads correctly; each is a rumqttc limitation,
/// not a disagreement about the spec.
fn rumqttc_supports(p: &Packet, v: ProtocolVersion) -> bool {
    match p {
        // `Login` holds two Strings and treats an empty one as absent.
        Packet::Connect(c) => {
            c.username.as_ref().is_none_or(|u| !u.is_empty())
                && c.password
                    .as_ref()
                    .is_none_or(|pw| !pw.is_empty() && std::str::from_utf8(pw).is_ok())
        }
        // rumqttc reads a v5 DISCONNECT only when it carries properties: Remaining Length 0
        // gives `PayloadRequired` and 1 (reason only) `InsufficientBytes`, though §3.14.2.1
        // and §3.14.2.2.1 allow both.
        Packet::Disconnect(d) => !v.is_v5() || !d.properties.is_empty(),
        // rumqttc 0.24 has no AUTH packet.
        Packet::Auth(_) => false,
        _ => true,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn rumqttc_v4_agrees(p in arb_packet(ProtocolVersion::V3_1_1)
        .prop_filter("rumqttc limitation", |p| rumqttc_supports(p, ProtocolVersion::V3_1_1))) {
        prop_assert_eq!(via_rumqttc(&p, ProtocolVersion::V3_1_1), Ok(p));
    }

    #[test]
    fn rumqttc_v5_agrees(p in arb_packet(ProtocolVersion::V5)
        .prop_filter("rumqttc limitation", |p| rumqttc_supports(p, ProtocolVersion::V5))) {
        prop_assert_eq!(via_rumqttc(&p, ProtocolVersion::V5), Ok(p));
    }
}
