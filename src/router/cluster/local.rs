//! This node's own routes: the broker's first subscriber to a filter makes `beamq_broker`
//! join the filter's group, its last one leaves it (ROUTE-PROTOCOL rule 3; EMQX 4
//! `emqx_router:do_add_route/2`). One task applies the changes to pg in the order they were
//! asked, so a subscribe never waits on the network and a join is never overtaken by its leave.
use bytes::Bytes;
use tokio::sync::mpsc;

use super::LocalChange;
use crate::dist::etf::{Pid, Term};
use crate::node::pg::Scope;

/// Spawns the task; changes sent on the returned channel are applied in order.
pub(super) fn spawn(scope: Scope, broker: Pid) -> mpsc::UnboundedSender<LocalChange> {
    let (tx, mut rx) = mpsc::unbounded_channel::<LocalChange>();
    tokio::spawn(async move {
        while let Some(change) = rx.recv().await {
            let r = match &change {
                LocalChange::Add(f) => scope.join(group(f), &[broker]).await.map(|_| true),
                LocalChange::Del(f) => scope.leave(group(f), &[broker]).await,
            };
            match r {
                Ok(true) => {}
                Ok(false) => tracing::warn!(?change, "route leave: not joined"),
                Err(e) => {
                    tracing::warn!(?change, "route change not applied: {e}");
                    return;
                }
            }
        }
    });
    tx
}

fn group(filter: &Bytes) -> Term {
    Term::Binary(filter.clone())
}
