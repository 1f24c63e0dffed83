//! `bench conn`: opens `-c` connections (CONNECT + CONNACK each) as fast as `-i` /
//! `--concurrency` allow, holds them with keep-alive pings until `--duration` ends (or returns
//! once all are up when there is no duration), and reports connections per second and connect
//! latency. Spread many connections over source addresses with `--ifaddr`.

use std::sync::Arc;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::{watch, OwnedSemaphorePermit};

use super::client::{encode, Client, ClientError, ConnectSpec};
use super::lifecycle::{connect_counted, finish};
use super::publisher::ping_timer;
use super::stats::Shared;
use crate::mqtt::codec::Packet;

/// Runs one idle client until `stop` fires.
pub async fn run(
    spec: ConnectSpec,
    shared: Arc<Shared>,
    permit: Option<OwnedSemaphorePermit>,
    stop: watch::Receiver<bool>,
) {
    let Some(mut c) = connect_counted(&spec, &shared, permit).await else {
        return;
    };
    let result = hold(&mut c, &spec, stop).await;
    finish(&mut c, &spec, &shared, result, "connection lost").await;
}

async fn hold(
    c: &mut Client,
    spec: &ConnectSpec,
    mut stop: watch::Receiver<bool>,
) -> Result<(), ClientError> {
    let mut ping = ping_timer(spec.keepalive);
    let mut wbuf = BytesMut::new();
    // An idle client only ever reads PINGRESP: keep its buffers tiny, so that 100 k of them fit
    // in little memory on the load-generating side too.
    if c.rbuf.is_empty() {
        c.rbuf = BytesMut::new();
    }
    loop {
        if c.rbuf.capacity() == c.rbuf.len() {
            c.rbuf.reserve(64);
        }
        tokio::select! {
            biased;
            _ = stop.changed() => return Ok(()),
            r = c.stream.read_buf(&mut c.rbuf) => {
                if r? == 0 {
                    return Err(ClientError::Closed);
                }
                while let Some(p) = c.buffered_packet()? {
                    if let Packet::Disconnect(_) = p {
                        return Err(ClientError::Closed);
                    }
                }
            }
            _ = ping.tick() => encode(&Packet::PingReq, c.version, &mut wbuf),
        }
        if !wbuf.is_empty() {
            c.stream.write_all(&wbuf).await?;
            wbuf.clear();
        }
    }
}
