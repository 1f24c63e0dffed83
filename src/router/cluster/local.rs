//! This node's own routes: the broker's first subscriber to a filter makes `beamq_broker`
//! join the filter's group, its last one leaves it (ROUTE-PROTOCOL rule 3; EMQX 4
//! `emqx_router:do_add_route/2`). One task applies the changes to pg in the order they were
//! asked, so a subscribe never waits on the network and a join is never overtaken by its leave.
use bytes::Bytes;
use tokio::sync::mpsc;

use super::LocalChange;
use crate::dist::etf::{Pid, Term};
use crate::node::pg::Scope;

/// Most consecutive adds joined in one request to the scope (which handles nothing else
/// meanwhile).
const JOIN_BATCH: usize = 1024;

/// Spawns the task; changes sent on the returned channel are applied in order. Adds queued
/// together go to pg as one request ([`Scope::join_groups`]).
pub(super) fn spawn(scope: Scope, broker: Pid) -> mpsc::UnboundedSender<LocalChange> {
    let (tx, mut rx) = mpsc::unbounded_channel::<LocalChange>();
    tokio::spawn(async move {
        let mut next = None;
        while let Some(change) = match next.take() {
            Some(c) => Some(c),
            None => rx.recv().await,
        } {
            let r = match &change {
                LocalChange::Add(f) => {
                    let mut groups = vec![group(f)];
                    while groups.len() < JOIN_BATCH {
                        match rx.try_recv() {
                            Ok(LocalChange::Add(f)) => groups.push(group(&f)),
                            Ok(other) => {
                                next = Some(other);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    scope.join_groups(groups, &[broker]).await.map(|_| true)
                }
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
