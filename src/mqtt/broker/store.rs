//! The session store: client id → the live connection holding the session, or the session
//! kept offline until its expiry. Opening a session takes over a live holder (MQTT 5.0
//! §3.1.4 step 3; EMQX 4 `emqx_cm:open_session/3`), closing one stores or ends it.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{oneshot, Notify};
use tokio::task::AbortHandle;

use super::{lock, mailbox, Broker, SubKey, ToConn};
use crate::mqtt::session::{SessionExpiry, SessionState};

/// How long a new connection waits for the old holder of its client id to hand over.
const TAKEOVER_TIMEOUT: Duration = Duration::from_secs(5);

/// One client id's entry.
#[derive(Debug)]
pub enum SessionEntry {
    /// A connection holds the session.
    Live {
        /// Identifies the holding connection (a closing old holder must not evict a new one).
        conn_id: u64,
        /// Its delivery channel.
        tx: mailbox::Sender<ToConn>,
        /// Wakes it to close (slow consumer).
        kick: Arc<Notify>,
    },
    /// No connection: kept until `expiry` (messages queue into it).
    Stored {
        /// The session, boxed: every entry of the store is as large as its largest variant,
        /// and most entries are `Live` (an inline `SessionState` made each ~250 bytes).
        state: Box<SessionState>,
        /// Identifies this storing (an expiry timer of an older one must not remove it).
        conn_id: u64,
        /// The expiry timer, if it expires.
        expiry: Option<AbortHandle>,
    },
}

impl Broker {
    /// Registers `conn_id` as the holder of `client` and returns the session to resume:
    /// a live holder is taken over, a stored session is taken out of the store. With
    /// `clean_start` the old session is ended (routes removed) and `None` returned.
    pub(super) async fn open_session(
        &self,
        client: Arc<str>,
        clean_start: bool,
        conn_id: u64,
        tx: mailbox::Sender<ToConn>,
        kick: Arc<Notify>,
    ) -> Option<SessionState> {
        let old = lock(&self.inner.sessions).remove(&client);
        let old_state = match old {
            Some(SessionEntry::Live { tx: old_tx, .. }) => {
                let (reply, rx) = oneshot::channel();
                let handed = async {
                    old_tx.send(ToConn::Takeover(reply)).await.ok()?;
                    rx.await.ok()
                };
                match tokio::time::timeout(TAKEOVER_TIMEOUT, handed).await {
                    Ok(Some((Some(state), SessionExpiry::Now))) => {
                        // The old connection's session ended with it (Clean Session 1 or
                        // expiry 0): its routes go, nothing resumes.
                        self.remove_routes(&client, &state);
                        None
                    }
                    Ok(Some((state, _))) => state,
                    _ => None,
                }
            }
            Some(SessionEntry::Stored { state, expiry, .. }) => {
                if let Some(h) = expiry {
                    h.abort();
                }
                Some(*state)
            }
            None => None,
        };
        // After the takeover: the old connection's Will with a delay is cancelled by the resume.
        self.cancel_will(&client);
        let resumed = match old_state {
            Some(s) if clean_start => {
                self.remove_routes(&client, &s);
                None
            }
            other => other,
        };
        lock(&self.inner.sessions).insert(client, SessionEntry::Live { conn_id, tx, kick });
        self.inner.metrics.client_connected();
        resumed
    }

    /// The connection `conn_id` holding `client` closed: keep `session` for `expiry` or end it.
    pub(super) fn close_session(
        &self,
        client: Arc<str>,
        conn_id: u64,
        session: Option<SessionState>,
        expiry: SessionExpiry,
    ) {
        let mut sessions = lock(&self.inner.sessions);
        let ours = matches!(sessions.get(&client), Some(SessionEntry::Live { conn_id: c, .. }) if *c == conn_id);
        if !ours {
            return;
        }
        self.inner.metrics.client_disconnected();
        let Some(state) = session else {
            sessions.remove(&client);
            return;
        };
        let timer = match expiry {
            SessionExpiry::Now => {
                sessions.remove(&client);
                drop(sessions);
                self.remove_routes(&client, &state);
                return;
            }
            SessionExpiry::Never => None,
            SessionExpiry::After(d) => {
                let broker = self.clone();
                let key = client.clone();
                let task = tokio::spawn(async move {
                    tokio::time::sleep(d).await;
                    broker.expire(&key, conn_id);
                });
                Some(task.abort_handle())
            }
        };
        sessions.insert(
            client,
            SessionEntry::Stored {
                state: Box::new(state),
                conn_id,
                expiry: timer,
            },
        );
    }

    /// The stored session of `client` from connection `conn_id` reached its expiry.
    fn expire(&self, client: &Arc<str>, conn_id: u64) {
        let mut sessions = lock(&self.inner.sessions);
        let ours = matches!(sessions.get(client), Some(SessionEntry::Stored { conn_id: c, .. }) if *c == conn_id);
        if !ours {
            return;
        }
        if let Some(SessionEntry::Stored { state, .. }) = sessions.remove(client) {
            drop(sessions);
            self.remove_routes(client, &state);
        }
    }

    /// Removes every route of an ended session.
    pub(super) fn remove_routes(&self, client: &Arc<str>, state: &SessionState) {
        let mut subs = self.inner.subs.write();
        for (filter, entry) in state.subscriptions() {
            let key = SubKey::new(client.clone(), filter);
            self.unsubscribe_in(&mut subs, &entry.subscription, &key);
        }
    }
}
