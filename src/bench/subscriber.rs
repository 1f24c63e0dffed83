//! `bench sub`: each client subscribes to its topic and counts what arrives, acknowledging
//! QoS 1 and 2 as a client must, and measures latency from the send time publishers put in the
//! first 8 payload bytes.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::{watch, OwnedSemaphorePermit};

use super::client::{encode, now_micros, payload_latency, Client, ClientError, ConnectSpec};
use super::lifecycle::{connect_counted, finish};
use super::opts::{expand_topic, SubOpts};
use super::publisher::ping_timer;
use super::stats::{LocalLatency, Shared};
use crate::mqtt::codec::{Ack, MqttString, Packet, QoS, Subscribe, SubscriptionOptions};

/// Runs one subscribing client until `stop` fires.
pub async fn run(
    index: usize,
    spec: ConnectSpec,
    opts: Arc<SubOpts>,
    shared: Arc<Shared>,
    permit: Option<OwnedSemaphorePermit>,
    stop: watch::Receiver<bool>,
) {
    let Some(mut c) = connect_counted(&spec, &shared, permit).await else {
        return;
    };
    let mut lat = LocalLatency::new();
    let result = receive_loop(&mut c, index, &spec, &opts, &shared, &mut lat, stop).await;
    lat.maybe_fold(&shared, true);
    finish(&mut c, &spec, &shared, result, "subscriber stopped").await;
}

async fn receive_loop(
    c: &mut Client,
    index: usize,
    spec: &ConnectSpec,
    opts: &SubOpts,
    shared: &Shared,
    lat: &mut LocalLatency,
    mut stop: watch::Receiver<bool>,
) -> Result<(), ClientError> {
    let topic = expand_topic(
        &opts.msg.topic,
        index,
        &spec.client_id,
        spec.username.as_deref(),
    );
    let topic = MqttString::try_from(topic).map_err(|_| ClientError::BadString)?;
    let sub = Subscribe {
        packet_id: 1,
        properties: Default::default(),
        filters: vec![(
            topic,
            SubscriptionOptions {
                qos: opts.msg.qos(),
                ..Default::default()
            },
        )],
    };
    let mut wbuf = BytesMut::with_capacity(16 * 1024);
    encode(&Packet::Subscribe(sub), c.version, &mut wbuf);
    c.stream.write_all(&wbuf).await?;
    wbuf.clear();
    let mut ping = ping_timer(spec.keepalive);
    loop {
        if c.rbuf.capacity() - c.rbuf.len() < 4096 {
            c.rbuf.reserve(64 * 1024);
        }
        let mut received = 0u64;
        tokio::select! {
            biased;
            _ = stop.changed() => return Ok(()),
            r = c.stream.read_buf(&mut c.rbuf) => {
                if r? == 0 {
                    return Err(ClientError::Closed);
                }
                let now = now_micros();
                while let Some(p) = c.buffered_packet()? {
                    match p {
                        Packet::Publish(p) => {
                            received += 1;
                            if let Some(us) = payload_latency(&p.payload, now) {
                                lat.record(us);
                            }
                            match p.qos {
                                QoS::AtMostOnce => {}
                                QoS::AtLeastOnce => encode(&Packet::PubAck(Ack::new(p.packet_id)), c.version, &mut wbuf),
                                QoS::ExactlyOnce => encode(&Packet::PubRec(Ack::new(p.packet_id)), c.version, &mut wbuf),
                            }
                        }
                        Packet::PubRel(a) => encode(&Packet::PubComp(Ack::new(a.packet_id)), c.version, &mut wbuf),
                        Packet::SubAck(s) => {
                            if let Some(r) = s.reasons.iter().find(|r| r.is_error()) {
                                return Err(ClientError::Refused(*r));
                            }
                            shared.subscribed.fetch_add(1, Relaxed);
                        }
                        Packet::Disconnect(_) => return Err(ClientError::Closed),
                        _ => {}
                    }
                }
            }
            _ = ping.tick() => encode(&Packet::PingReq, c.version, &mut wbuf),
        }
        if !wbuf.is_empty() {
            c.stream.write_all(&wbuf).await?;
            wbuf.clear();
        }
        if received > 0 {
            shared.received.fetch_add(received, Relaxed);
        }
        lat.maybe_fold(shared, false);
    }
}
