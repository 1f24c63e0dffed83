//! `bench pub`: each client publishes `--count` messages (or until stopped) to its topic, one
//! every `-I` ms or back to back, with at most `-F` QoS 1/2 messages unacknowledged. The first
//! 8 payload bytes are the send time (µs since the epoch, big endian) for subscriber latency;
//! QoS 1/2 acknowledgements give the publisher's own latency.

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut as _, Bytes, BytesMut};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::{watch, OwnedSemaphorePermit};
use tokio::time::{interval_at, Interval, MissedTickBehavior};

use super::client::{encode, now_micros, Client, ClientError, ConnectSpec};
use super::lifecycle::{connect_counted, finish};
use super::opts::{expand_topic, PubOpts};
use super::stats::{LocalLatency, Shared};
use crate::mqtt::codec::{Ack, MqttString, Packet, Publish, QoS};

/// Most publishes encoded per loop turn when sending back to back.
const BATCH: usize = 64;

/// Keep-alive pings every half keep-alive period.
pub fn ping_timer(keepalive: u16) -> Interval {
    let period = Duration::from_secs(u64::from(keepalive.max(2)) / 2);
    let mut t = interval_at(tokio::time::Instant::now() + period, period);
    t.set_missed_tick_behavior(MissedTickBehavior::Delay);
    t
}

async fn tick(t: &mut Option<Interval>) {
    if let Some(t) = t {
        t.tick().await;
    }
}

fn payload(template: &[u8]) -> Bytes {
    let mut p = BytesMut::with_capacity(template.len().max(8));
    p.put_u64(now_micros());
    if template.len() > 8 {
        p.put_slice(&template[8..]);
    }
    p.truncate(template.len().max(8));
    p.freeze()
}

/// Runs one publishing client until its count is done or `stop` fires.
pub async fn run(
    index: usize,
    spec: ConnectSpec,
    opts: Arc<PubOpts>,
    shared: Arc<Shared>,
    permit: Option<OwnedSemaphorePermit>,
    stop: watch::Receiver<bool>,
) {
    let Some(mut c) = connect_counted(&spec, &shared, permit).await else {
        return;
    };
    let mut lat = LocalLatency::new();
    let result = publish_loop(&mut c, index, &spec, &opts, &shared, &mut lat, stop).await;
    lat.maybe_fold(&shared, true);
    finish(&mut c, &spec, &shared, result, "publisher stopped").await;
}

async fn publish_loop(
    c: &mut Client,
    index: usize,
    spec: &ConnectSpec,
    opts: &PubOpts,
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
    let qos = opts.msg.qos();
    let template = vec![b'x'; opts.size];
    let window = opts
        .inflight
        .min(usize::from(c.receive_maximum))
        .clamp(1, 65_000);
    let mut ticker = (opts.msg_interval_ms > 0).then(|| {
        let mut t = tokio::time::interval(Duration::from_millis(opts.msg_interval_ms));
        t.set_missed_tick_behavior(MissedTickBehavior::Delay);
        t
    });
    let mut ping = ping_timer(spec.keepalive);
    let mut inflight: HashMap<u16, Instant> = HashMap::new();
    let mut next_id: u16 = 1;
    let mut sent: u64 = 0;
    let mut wbuf = BytesMut::with_capacity(16 * 1024);
    loop {
        let more = opts.count == 0 || sent < opts.count;
        if !more && inflight.is_empty() {
            return Ok(());
        }
        let can_send = more && (qos == QoS::AtMostOnce || inflight.len() < window);
        if c.rbuf.capacity() - c.rbuf.len() < 4096 {
            c.rbuf.reserve(16 * 1024);
        }
        let (mut new_sent, mut new_acked, mut new_rejected) = (0u64, 0u64, 0u64);
        tokio::select! {
            biased;
            _ = stop.changed() => return Ok(()),
            r = c.stream.read_buf(&mut c.rbuf) => {
                if r? == 0 {
                    return Err(ClientError::Closed);
                }
                while let Some(p) = c.buffered_packet()? {
                    match p {
                        Packet::PubAck(a) | Packet::PubComp(a) if !a.reason.is_error() => {
                            if let Some(t0) = inflight.remove(&a.packet_id) {
                                lat.record(u64::try_from(t0.elapsed().as_micros()).unwrap_or(u64::MAX));
                                new_acked += 1;
                            }
                        }
                        Packet::PubRec(a) if a.reason.is_error() => {
                            // Refused (v5, e.g. 0x97 quota exceeded): the exchange ends here.
                            if inflight.remove(&a.packet_id).is_some() {
                                new_rejected += 1;
                            }
                        }
                        Packet::PubRec(a) => {
                            encode(&Packet::PubRel(Ack::new(a.packet_id)), c.version, &mut wbuf);
                        }
                        Packet::PubAck(a) if a.reason.is_error() => {
                            if inflight.remove(&a.packet_id).is_some() {
                                new_rejected += 1;
                            }
                        }
                        Packet::Disconnect(_) => return Err(ClientError::Closed),
                        _ => {}
                    }
                }
            }
            _ = tick(&mut ticker), if can_send => {
                let room = if qos == QoS::AtMostOnce { BATCH } else { (window - inflight.len()).min(BATCH) };
                let batch = if ticker.is_some() { 1 } else { room };
                for _ in 0..batch {
                    if opts.count != 0 && sent >= opts.count {
                        break;
                    }
                    let packet_id = if qos == QoS::AtMostOnce {
                        0
                    } else {
                        let id = next_id;
                        next_id = next_id.checked_add(1).unwrap_or(1);
                        inflight.insert(id, Instant::now());
                        id
                    };
                    let p = Publish {
                        dup: false,
                        qos,
                        retain: opts.retain,
                        topic: topic.clone(),
                        packet_id,
                        properties: Default::default(),
                        payload: payload(&template),
                    };
                    encode(&Packet::Publish(p), c.version, &mut wbuf);
                    sent += 1;
                    new_sent += 1;
                }
            }
            _ = ping.tick() => encode(&Packet::PingReq, c.version, &mut wbuf),
        }
        if !wbuf.is_empty() {
            c.stream.write_all(&wbuf).await?;
            wbuf.clear();
        }
        if new_sent > 0 {
            shared.sent.fetch_add(new_sent, Relaxed);
        }
        if new_acked > 0 {
            shared.acked.fetch_add(new_acked, Relaxed);
        }
        if new_rejected > 0 {
            shared.rejected.fetch_add(new_rejected, Relaxed);
        }
        lat.maybe_fold(shared, false);
    }
}
