//! The table of connections being set up or up, per peer node: what net_kernel's `sys_dist`
//! table and its `accept_pending` / `is_pending` / `wait_pending` handling do for
//! `dist_util` (`lib/kernel/src/net_kernel.erl`), reduced to what the handshake needs.
//!
//! Each attempt or connection has an id. An outgoing attempt registers as `Pending`; an
//! incoming handshake asks [`PendingTable::accept_pending`], which applies OTP's rules:
//! no entry -> `Ok`; a pending attempt -> the greater node name keeps its own attempt
//! ([`crate::dist::handshake::resolve_simultaneous`]), and when the incoming one wins, the
//! outgoing attempt is cancelled; an up connection -> `Alive` (the peer probably restarted).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use crate::dist::handshake::{resolve_simultaneous, AcceptPending};

/// Identifies one attempt or connection.
pub type AttemptId = u64;

#[derive(Debug)]
struct Entry {
    id: AttemptId,
    up: bool,
    /// Fired to cancel a pending attempt or close an up connection.
    cancel: Arc<Notify>,
    /// Fired when this entry is removed.
    gone: Arc<Notify>,
}

/// Why an outgoing attempt cannot start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BeginError {
    /// A connection to that node is already up.
    #[error("already connected")]
    AlreadyUp,
    /// Another attempt to that node is in progress.
    #[error("connection attempt already in progress")]
    AlreadyPending,
}

/// A registered attempt: its id and the signal that cancels it.
#[derive(Debug, Clone)]
pub struct Ticket {
    /// The attempt's id.
    pub id: AttemptId,
    /// Notified when the attempt must stop (lost a simultaneous connect, or disconnect).
    pub cancel: Arc<Notify>,
}

/// Peer node name -> pending attempt or up connection.
#[derive(Debug, Default)]
pub struct PendingTable {
    inner: Mutex<(AttemptId, HashMap<String, Entry>)>,
}

impl PendingTable {
    /// An empty table.
    pub fn new() -> Arc<PendingTable> {
        Arc::new(PendingTable::default())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (AttemptId, HashMap<String, Entry>)> {
        // A poisoned lock only means another thread panicked mid-update of a plain map; the
        // map itself is still consistent, so keep using it.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn insert(map: &mut (AttemptId, HashMap<String, Entry>), peer: &str, up: bool) -> Ticket {
        map.0 += 1;
        let id = map.0;
        let cancel = Arc::new(Notify::new());
        let gone = Arc::new(Notify::new());
        map.1.insert(
            peer.to_string(),
            Entry {
                id,
                up,
                cancel: cancel.clone(),
                gone,
            },
        );
        Ticket { id, cancel }
    }

    /// Registers an outgoing attempt to `peer`.
    pub fn begin_connect(&self, peer: &str) -> Result<Ticket, BeginError> {
        let mut g = self.lock();
        match g.1.get(peer) {
            Some(e) if e.up => Err(BeginError::AlreadyUp),
            Some(_) => Err(BeginError::AlreadyPending),
            None => Ok(Self::insert(&mut g, peer, false)),
        }
    }

    /// net_kernel's `accept_pending` for an incoming handshake from `peer` to `my_node`.
    /// Returns the decision and, unless refused, the ticket of the incoming attempt.
    pub fn accept_pending(&self, my_node: &str, peer: &str) -> (AcceptPending, Option<Ticket>) {
        let mut g = self.lock();
        if !peer.contains('@') {
            // A NAME_ME peer sent only its host: name it (`net_kernel:generate_node_name/2`,
            // a random 64-bit number in base 36), retrying on the unlikely clash.
            loop {
                let name = format!("{}@{peer}", base36(rand::random::<u64>()));
                if !g.1.contains_key(&name) {
                    let ticket = Self::insert(&mut g, &name, false);
                    let creation = crate::dist::listener::random_creation();
                    return (AcceptPending::Named { name, creation }, Some(ticket));
                }
            }
        }
        match g.1.get(peer) {
            None => (AcceptPending::Ok, Some(Self::insert(&mut g, peer, false))),
            Some(e) if e.up => {
                // up_pending: the incoming attempt waits; the up entry stays until it goes.
                g.0 += 1;
                let id = g.0;
                (
                    AcceptPending::Alive,
                    Some(Ticket {
                        id,
                        cancel: Arc::new(Notify::new()),
                    }),
                )
            }
            Some(e) => match resolve_simultaneous(my_node, peer) {
                AcceptPending::Nok => (AcceptPending::Nok, None),
                decision => {
                    // Our own attempt loses: cancel it and take its place ("remarked").
                    e.cancel.notify_one();
                    e.gone.notify_waiters();
                    (decision, Some(Self::insert(&mut g, peer, false)))
                }
            },
        }
    }

    /// net_kernel's `is_pending`: is `id` still the attempt registered for `peer`?
    pub fn is_pending(&self, peer: &str, id: AttemptId) -> bool {
        matches!(self.lock().1.get(peer), Some(e) if e.id == id && !e.up)
    }

    /// For an incoming attempt answered `Alive`: closes the up connection to `peer` (the peer
    /// proved with the cookie that it is a new incarnation), waits until it is removed, and
    /// registers the attempt `ticket` in its place.
    pub async fn replace_up(&self, peer: &str, ticket: &Ticket) {
        loop {
            let gone = {
                let mut g = self.lock();
                match g.1.get(peer) {
                    Some(e) if e.id != ticket.id => {
                        e.cancel.notify_one();
                        e.gone.clone()
                    }
                    _ => {
                        let gone = Arc::new(Notify::new());
                        g.1.insert(
                            peer.to_string(),
                            Entry {
                                id: ticket.id,
                                up: false,
                                cancel: ticket.cancel.clone(),
                                gone,
                            },
                        );
                        return;
                    }
                }
            };
            let notified = gone.notified();
            // The entry may have gone between unlocking and waiting: re-check with a bound.
            let _ = tokio::time::timeout(std::time::Duration::from_millis(100), notified).await;
        }
    }

    /// Marks attempt `id` to `peer` as an up connection. False if it was superseded.
    pub fn mark_up(&self, peer: &str, id: AttemptId) -> bool {
        match self.lock().1.get_mut(peer) {
            Some(e) if e.id == id => {
                e.up = true;
                true
            }
            _ => false,
        }
    }

    /// The cancel signal of the up connection or attempt to `peer` (to disconnect it).
    pub fn cancel_signal(&self, peer: &str) -> Option<Arc<Notify>> {
        self.lock().1.get(peer).map(|e| e.cancel.clone())
    }

    /// Removes `id`'s entry for `peer` (connection down or attempt failed).
    pub fn remove(&self, peer: &str, id: AttemptId) {
        let mut g = self.lock();
        if matches!(g.1.get(peer), Some(e) if e.id == id) {
            if let Some(e) = g.1.remove(peer) {
                e.gone.notify_waiters();
            }
        }
    }

    /// Removes the entry of attempt `id`, whatever its peer (a failed incoming handshake).
    pub fn remove_id(&self, id: AttemptId) {
        let mut g = self.lock();
        let peer = g.1.iter().find(|(_, e)| e.id == id).map(|(p, _)| p.clone());
        if let Some(e) = peer.and_then(|p| g.1.remove(&p)) {
            e.gone.notify_waiters();
        }
    }

    /// Whether a connection to `peer` is up.
    pub fn is_up(&self, peer: &str) -> bool {
        matches!(self.lock().1.get(peer), Some(e) if e.up)
    }
}

/// `integer_to_list(N, 36)`: digits and upper-case letters.
fn base36(mut n: u64) -> String {
    const DIGITS: &[u8; 36] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    out.into_iter().map(char::from).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn dynamic_peers_get_a_generated_name() {
        let t = PendingTable::new();
        let (d, ticket) = t.accept_pending("a@h", "127.0.0.1");
        let AcceptPending::Named { name, creation } = d else {
            panic!("expected named, got {d:?}")
        };
        assert!(name.ends_with("@127.0.0.1") && name.len() > "@127.0.0.1".len());
        assert!(creation >= 4);
        assert!(ticket.is_some_and(|tk| t.is_pending(&name, tk.id)));
        assert_eq!(base36(0), "0");
        assert_eq!(base36(36 * 36 + 35), "10Z");
    }

    use super::*;

    #[test]
    fn simultaneous_connect_greater_name_keeps_its_attempt() {
        let t = PendingTable::new();
        let ours = t.begin_connect("a@h");
        assert!(ours.is_ok());
        // We are b@h > a@h: our attempt wins, theirs gets nok.
        assert_eq!(t.accept_pending("b@h", "a@h").0, AcceptPending::Nok);
        // We are 0@h < a@h: theirs wins, ours is cancelled and replaced.
        let (d, ticket) = t.accept_pending("0@h", "a@h");
        assert_eq!(d, AcceptPending::OkSimultaneous);
        let ours = ours.ok().map(|t| t.id).unwrap_or(0);
        assert!(!t.is_pending("a@h", ours));
        assert!(ticket.is_some_and(|tk| t.is_pending("a@h", tk.id)));
    }

    #[test]
    fn up_connection_answers_alive_and_second_attempt_is_refused() {
        let t = PendingTable::new();
        let Ok(tk) = t.begin_connect("a@h") else {
            panic!("begin")
        };
        assert_eq!(
            t.begin_connect("a@h").err(),
            Some(BeginError::AlreadyPending)
        );
        assert!(t.mark_up("a@h", tk.id));
        assert_eq!(t.begin_connect("a@h").err(), Some(BeginError::AlreadyUp));
        assert_eq!(t.accept_pending("z@h", "a@h").0, AcceptPending::Alive);
        t.remove("a@h", tk.id);
        assert!(!t.is_up("a@h"));
        assert_eq!(t.accept_pending("z@h", "a@h").0, AcceptPending::Ok);
    }

    #[tokio::test]
    async fn replace_up_closes_the_old_connection() {
        let t = PendingTable::new();
        let Ok(old) = t.begin_connect("a@h") else {
            panic!("begin")
        };
        t.mark_up("a@h", old.id);
        let (d, new) = t.accept_pending("z@h", "a@h");
        assert_eq!(d, AcceptPending::Alive);
        let Some(new) = new else { panic!("ticket") };
        let t2 = t.clone();
        let old_cancel = old.cancel.clone();
        let closer = tokio::spawn(async move {
            old_cancel.notified().await;
            t2.remove("a@h", old.id);
        });
        tokio::time::timeout(std::time::Duration::from_secs(2), t.replace_up("a@h", &new))
            .await
            .ok();
        assert!(t.is_pending("a@h", new.id));
        let _ = closer.await;
    }
}
