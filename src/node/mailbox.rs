//! A process mailbox: an accounted queue of terms with BEAM-style selective receive.
//!
//! BEAM mailboxes are unbounded; a Rust node cannot let a slow process eat all memory, and it
//! cannot block the sender either (the sender may be the connection reader serving every
//! process on that peer, and blocking it stalls ticks and unrelated traffic). So the queue is
//! *accounted*: each mailbox has a message cap, a delivery past the cap is refused (the caller
//! logs it and counts it), and the current length is readable at any time
//! (`erlang:process_info(P, message_queue_len)` on BEAM). See docs/decisions.md.
//!
//! Selective receive works as in `erts/emulator/beam/erl_message.c`'s save queue: messages that
//! do not match are kept, in order, for later receives.
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::dist::etf::Term;

/// Default cap on queued messages per process.
pub const DEFAULT_MAILBOX_CAP: usize = 1_000_000;

/// Why a delivery was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DeliveryError {
    /// The mailbox holds `cap` messages already.
    #[error("mailbox full ({0} messages)")]
    Full(usize),
    /// The process has exited.
    #[error("process gone")]
    Gone,
}

#[derive(Debug)]
struct Counters {
    len: AtomicUsize,
    dropped: AtomicU64,
    cap: usize,
}

/// The sending half, held by the process table.
#[derive(Debug, Clone)]
pub struct MailboxSender {
    tx: mpsc::UnboundedSender<Term>,
    counters: Arc<Counters>,
}

impl MailboxSender {
    /// Queues `msg`, or refuses it when the mailbox is full or closed.
    pub fn deliver(&self, msg: Term) -> Result<(), DeliveryError> {
        let c = &self.counters;
        if c.len.fetch_add(1, Ordering::AcqRel) >= c.cap {
            c.len.fetch_sub(1, Ordering::AcqRel);
            c.dropped.fetch_add(1, Ordering::Relaxed);
            return Err(DeliveryError::Full(c.cap));
        }
        if self.tx.send(msg).is_err() {
            c.len.fetch_sub(1, Ordering::AcqRel);
            return Err(DeliveryError::Gone);
        }
        Ok(())
    }

    /// Messages queued and not yet taken by a receive.
    pub fn len(&self) -> usize {
        self.counters.len.load(Ordering::Acquire)
    }

    /// True when nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Messages refused because the mailbox was full.
    pub fn dropped(&self) -> u64 {
        self.counters.dropped.load(Ordering::Relaxed)
    }
}

/// The receiving half, owned by the process task.
#[derive(Debug)]
pub struct Mailbox {
    rx: mpsc::UnboundedReceiver<Term>,
    saved: VecDeque<Term>,
    counters: Arc<Counters>,
}

/// Creates a mailbox holding at most `cap` messages.
pub fn mailbox(cap: usize) -> (MailboxSender, Mailbox) {
    let (tx, rx) = mpsc::unbounded_channel();
    let counters = Arc::new(Counters {
        len: AtomicUsize::new(0),
        dropped: AtomicU64::new(0),
        cap,
    });
    (
        MailboxSender {
            tx,
            counters: counters.clone(),
        },
        Mailbox {
            rx,
            saved: VecDeque::new(),
            counters,
        },
    )
}

impl Mailbox {
    fn taken(&self, msg: Term) -> Term {
        self.counters.len.fetch_sub(1, Ordering::AcqRel);
        msg
    }

    /// The oldest message; `None` once the node dropped the sending half.
    pub async fn recv(&mut self) -> Option<Term> {
        if let Some(m) = self.saved.pop_front() {
            return Some(self.taken(m));
        }
        let m = self.rx.recv().await?;
        Some(self.taken(m))
    }

    /// The oldest message if one is queued now (`receive M -> M after 0 -> none end`).
    pub fn try_recv(&mut self) -> Option<Term> {
        let m = match self.saved.pop_front() {
            Some(m) => m,
            None => self.rx.try_recv().ok()?,
        };
        Some(self.taken(m))
    }

    /// The oldest message within `timeout` (`receive ... after T`).
    pub async fn recv_timeout(&mut self, timeout: Duration) -> Option<Term> {
        self.recv_match(|_| true, Some(timeout)).await
    }

    /// The oldest message for which `pred` holds, leaving the others queued in order;
    /// `None` after `timeout` (when given) or when the node dropped the sending half.
    pub async fn recv_match<F>(&mut self, mut pred: F, timeout: Option<Duration>) -> Option<Term>
    where
        F: FnMut(&Term) -> bool,
    {
        if let Some(i) = self.saved.iter().position(&mut pred) {
            let m = self.saved.remove(i)?;
            return Some(self.taken(m));
        }
        let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
        loop {
            let next = match deadline {
                Some(d) => match tokio::time::timeout_at(d, self.rx.recv()).await {
                    Ok(m) => m,
                    Err(_) => return None,
                },
                None => self.rx.recv().await,
            };
            let m = next?;
            if pred(&m) {
                return Some(self.taken(m));
            }
            self.saved.push_back(m);
        }
    }

    /// Messages queued (saved and in flight).
    pub fn len(&self) -> usize {
        self.counters.len.load(Ordering::Acquire)
    }

    /// True when nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
