//! The route sync: the one task that writes the replicated table, fed by the `beamq_route`
//! scope's snapshot and then its changes in order (`pg:monitor_scope/1`, OTP 25.1
//! `lib/kernel/src/pg.erl`). pg itself turns peer joins, leaves, `sync` and `nodedown` into
//! these changes, so the table follows pg exactly (ROUTE-PROTOCOL rule 4).
//!
//! Changes that arrive together are applied under one write lock (the publish path stalls once
//! per batch, not once per route: a joining node's sync of 1 M routes is a few batches).
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::table::ClusterRoutes;
use crate::node::pg::{Membership, Subscription};
use crate::router::ReadMostly;

/// Most changes applied under one write lock.
const BATCH: usize = 4096;

/// Applies the snapshot, then every change; ends when the scope is gone.
pub(super) fn spawn(
    sub: Subscription,
    routes: Arc<ReadMostly<ClusterRoutes>>,
    remote: Arc<AtomicUsize>,
) {
    let Subscription {
        snapshot,
        mut events,
    } = sub;
    tokio::spawn(async move {
        for chunk in snapshot.chunks(BATCH) {
            let mut t = routes.write();
            for (group, pids) in chunk {
                t.join(group, pids);
            }
            remote.store(t.remote_members(), Ordering::Release);
        }
        let mut batch: Vec<Membership> = Vec::with_capacity(64);
        while let Some(first) = events.recv().await {
            batch.push(first);
            while batch.len() < BATCH {
                match events.try_recv() {
                    Ok(e) => batch.push(e),
                    Err(_) => break,
                }
            }
            let mut t = routes.write();
            for e in batch.drain(..) {
                t.apply(&e);
            }
            remote.store(t.remote_members(), Ordering::Release);
        }
        tracing::debug!("beamq_route scope gone; route sync stopped");
    });
}
