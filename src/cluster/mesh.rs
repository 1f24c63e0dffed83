//! Keeping the members fully meshed: connect to every member, retry a member that is down
//! with a doubling backoff, never connect to a non-member (`ekka_autoheal`/`ekka_node_monitor`
//! keep an EMQX 4 cluster meshed the same way).
//!
//! A member listed in the file at boot is asked once, on its first connection, whether it
//! still lists this node (`is_member/1`): if it left or removed this node while this node was
//! down, it answers `false` and is dropped, so a force-left node stays out after a restart.
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::service::{Cluster, MODULE, PEER_TIMEOUT};
use crate::dist::etf::{Atom, Term};

/// How often the keeper looks at the members.
const TICK: Duration = Duration::from_millis(500);
/// First retry delay after a failed connect.
const BACKOFF_MIN: Duration = Duration::from_secs(1);
/// Longest retry delay.
const BACKOFF_MAX: Duration = Duration::from_secs(16);
/// Longest single connect attempt.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Retry schedule of one member that is down.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// Do not try before this instant.
    pub next: Instant,
    /// Delay after the next failure.
    pub delay: Duration,
}

impl Backoff {
    /// The schedule after a failed attempt at `now`.
    pub fn failed(prev: Option<Backoff>, now: Instant) -> Backoff {
        let delay = prev.map_or(BACKOFF_MIN, |b| b.delay);
        Backoff {
            next: now + delay,
            delay: (delay * 2).min(BACKOFF_MAX),
        }
    }
}

/// Starts the keeper task for `cluster`.
pub fn spawn(cluster: Arc<Cluster>) {
    let unverified: HashSet<Atom> = cluster.others().into_iter().collect();
    tokio::spawn(run(cluster, unverified));
}

async fn run(cluster: Arc<Cluster>, mut unverified: HashSet<Atom>) {
    let node = cluster.node().clone();
    let me = Term::Atom(node.name());
    let mut backoff: HashMap<Atom, Backoff> = HashMap::new();
    loop {
        let others = cluster.others();
        backoff.retain(|p, _| others.contains(p));
        unverified.retain(|p| others.contains(p));
        for peer in others {
            if !node.is_connected(peer) {
                let now = Instant::now();
                if backoff.get(&peer).is_some_and(|b| b.next > now) {
                    continue;
                }
                let ok = tokio::time::timeout(CONNECT_TIMEOUT, node.connect(peer))
                    .await
                    .unwrap_or(false);
                if !ok {
                    let b = Backoff::failed(backoff.get(&peer).copied(), Instant::now());
                    tracing::debug!(peer = peer.as_str(), retry_in = ?b.delay, "member unreachable");
                    backoff.insert(peer, b);
                    continue;
                }
                backoff.remove(&peer);
                tracing::info!(peer = peer.as_str(), "connected to cluster member");
            }
            if unverified.contains(&peer) {
                let r = node
                    .rpc_call(
                        peer,
                        MODULE,
                        "is_member",
                        vec![me.clone()],
                        Some(PEER_TIMEOUT),
                    )
                    .await;
                if r.is_atom("false") {
                    cluster.forget(peer);
                }
                if r.is_atom("false") || r.is_atom("true") {
                    unverified.remove(&peer);
                }
            }
        }
        tokio::time::sleep(TICK).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let t0 = Instant::now();
        let b = Backoff::failed(None, t0);
        assert_eq!(b.next, t0 + BACKOFF_MIN);
        let mut cur = b;
        for _ in 0..10 {
            cur = Backoff::failed(Some(cur), t0);
        }
        assert_eq!(cur.delay, BACKOFF_MAX);
        assert_eq!(Backoff::failed(Some(b), t0).next, t0 + BACKOFF_MIN * 2);
    }
}
