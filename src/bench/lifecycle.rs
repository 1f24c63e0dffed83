//! The start and end every bench client shares, so `pub`, `sub` and `conn` count connects,
//! failures and drops the same way in the summary line.

use std::sync::atomic::Ordering::Relaxed;

use bytes::BytesMut;
use tokio::io::AsyncWriteExt as _;
use tokio::sync::OwnedSemaphorePermit;

use super::client::{encode, Client, ClientError, ConnectSpec};
use super::stats::Shared;
use crate::mqtt::codec::{Disconnect, Packet, ReasonCode};

/// Connects one client and counts the outcome. The permit (the `--concurrency` bound on
/// connects in flight) is released as soon as the CONNACK is in, not when the client ends.
pub async fn connect_counted(
    spec: &ConnectSpec,
    shared: &Shared,
    permit: Option<OwnedSemaphorePermit>,
) -> Option<Client> {
    let (c, took) = match Client::connect(spec).await {
        Ok(x) => x,
        Err(e) => {
            tracing::warn!(client = spec.client_id, "connect failed: {e}");
            shared.failed.fetch_add(1, Relaxed);
            return None;
        }
    };
    drop(permit);
    shared.connected.fetch_add(1, Relaxed);
    shared.connect_time(took);
    Some(c)
}

/// Counts how a client's run ended: a clean end says goodbye with DISCONNECT (so a broker
/// fires no Will), an error is counted as dropped and logged with `what` stopped.
pub async fn finish(
    c: &mut Client,
    spec: &ConnectSpec,
    shared: &Shared,
    result: Result<(), ClientError>,
    what: &str,
) {
    match result {
        Ok(()) => {
            shared.finished.fetch_add(1, Relaxed);
            let mut out = BytesMut::new();
            encode(
                &Packet::Disconnect(Disconnect::new(ReasonCode::Success)),
                c.version,
                &mut out,
            );
            let _ = c.stream.write_all(&out).await;
        }
        Err(e) => {
            tracing::warn!(client = spec.client_id, "{what}: {e}");
            shared.dropped.fetch_add(1, Relaxed);
        }
    }
}
