//! MQTT codec throughput against rumqttc's `mqttbytes` (the codec rumqttd is built on):
//! decoding and encoding batches of PUBLISH packets, MQTT 3.1.1 and 5.0.
//! Run: `cargo bench --bench mqtt_codec`.

use beamq::mqtt::codec::{MqttString, Packet, ProtocolVersion, Publish, QoS};
use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

const BATCH: usize = 1000;
const TOPIC: &str = "bench/topic/0001";

fn publish(qos: QoS, payload: usize) -> Publish {
    Publish {
        qos,
        topic: MqttString::from_static(TOPIC).expect("static topic"),
        packet_id: if qos == QoS::AtMostOnce { 0 } else { 1 },
        payload: Bytes::from(vec![b'x'; payload]),
        ..Default::default()
    }
}

fn batch(v: ProtocolVersion, p: &Publish) -> BytesMut {
    let mut out = BytesMut::new();
    for _ in 0..BATCH {
        Packet::Publish(p.clone())
            .write(v, &mut out)
            .expect("encode");
    }
    out
}

fn decode(c: &mut Criterion) {
    for (name, qos, payload) in [
        ("qos0_16B", QoS::AtMostOnce, 16),
        ("qos1_1KiB", QoS::AtLeastOnce, 1024),
    ] {
        let p = publish(qos, payload);
        for v in [ProtocolVersion::V3_1_1, ProtocolVersion::V5] {
            let input = batch(v, &p);
            let mut g = c.benchmark_group(format!("decode_publish_{name}_v{}", v as u8));
            g.throughput(Throughput::Elements(BATCH as u64));
            g.bench_function("beamq", |b| {
                b.iter_batched(
                    || input.clone(),
                    |mut buf| {
                        let mut n = 0;
                        while let Ok(Some(p)) = Packet::decode(&mut buf, v, usize::MAX) {
                            n += usize::from(matches!(p, Packet::Publish(_)));
                        }
                        assert_eq!(n, BATCH);
                    },
                    BatchSize::LargeInput,
                )
            });
            g.bench_function("rumqttc", |b| {
                b.iter_batched(
                    || input.clone(),
                    |mut buf| {
                        let mut n = 0;
                        if v.is_v5() {
                            use rumqttc::v5::mqttbytes::v5 as r;
                            while let Ok(p) = r::Packet::read(&mut buf, None) {
                                n += usize::from(matches!(p, r::Packet::Publish(_)));
                            }
                        } else {
                            use rumqttc::mqttbytes::v4 as r;
                            while let Ok(p) = r::read(&mut buf, usize::MAX) {
                                n += usize::from(matches!(p, r::Packet::Publish(_)));
                            }
                        }
                        assert_eq!(n, BATCH);
                    },
                    BatchSize::LargeInput,
                )
            });
            g.finish();
        }
    }
}

fn encode(c: &mut Criterion) {
    let p = publish(QoS::AtLeastOnce, 16);
    let mut g = c.benchmark_group("encode_publish_qos1_16B_v4");
    g.throughput(Throughput::Elements(BATCH as u64));
    let mut out = BytesMut::with_capacity(64 * BATCH);
    g.bench_function("beamq", |b| {
        b.iter(|| {
            out.clear();
            for _ in 0..BATCH {
                let packet = Packet::Publish(p.clone());
                packet
                    .write(ProtocolVersion::V3_1_1, &mut out)
                    .expect("encode");
            }
        })
    });
    let mut r =
        rumqttc::mqttbytes::v4::Publish::new(TOPIC, rumqttc::QoS::AtLeastOnce, vec![b'x'; 16]);
    r.pkid = 1;
    g.bench_function("rumqttc", |b| {
        b.iter(|| {
            out.clear();
            for _ in 0..BATCH {
                let packet = r.clone();
                packet.write(&mut out).expect("encode");
            }
        })
    });
    g.finish();
}

criterion_group!(benches, decode, encode);
criterion_main!(benches);
