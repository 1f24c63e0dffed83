//! A connection's bounded delivery queue: many senders (publishing connections), one receiver
//! (the connection's task), the same `try_send` / `send` / `send_timeout` contract and error
//! types as `tokio::sync::mpsc`, but built for 100 k mostly idle connections:
//!
//! - no memory until used: tokio's bounded channel allocates its first 32-slot block (32 ×
//!   48-byte deliveries, ~1.6 KiB) plus a cache-padded ~0.5 KiB header per channel up front;
//!   here a channel is one small `Arc` and the queue allocates on first send, and
//!   [`Receiver::recv_batch`] hands its buffer back so an idle connection can drop it;
//! - one lock per burst on the receiving side: the receiver swaps the whole queue out, so a
//!   fan-out burst costs the connection one wakeup and one lock, not one per message.
//!
//! The receiver's drop closes the queue: queued items are dropped and waiting senders fail.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::mpsc::error::{SendError, SendTimeoutError, TrySendError};
use tokio::sync::Notify;

struct Queue<T> {
    items: VecDeque<T>,
    closed: bool,
    /// A sender waited a whole grace for room and the receiver took nothing meanwhile (it is
    /// not reading); cleared when the receiver next takes items.
    congested: bool,
    /// How many times the receiver has taken items: a sender that timed out tells a receiver
    /// that is not reading (unchanged) from one whose room other senders won (changed).
    takes: u64,
}

struct Shared<T> {
    queue: Mutex<Queue<T>>,
    capacity: usize,
    /// Wakes the receiver (a stored permit covers a send between its check and its wait).
    /// Notified only when the queue goes from empty to non-empty: the receiver waits only after
    /// finding it empty under the lock, so that transition is the one wakeup it needs, and a
    /// burst to a busy receiver costs no further wakeups.
    ready: Notify,
    /// Wakes senders waiting for room.
    room: Notify,
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, Queue<T>> {
        // A panic while holding this lock leaves only a valid VecDeque behind.
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The receiver is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Closed;

/// The sending half; cheap to clone.
pub struct Sender<T>(Arc<Shared<T>>);

/// The receiving half; dropping it closes the queue.
pub struct Receiver<T>(Arc<Shared<T>>);

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        Sender(self.0.clone())
    }
}

impl<T> std::fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("mailbox::Sender")
    }
}

/// A queue holding at most `capacity` items (at least 1).
pub fn channel<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Shared {
        queue: Mutex::new(Queue {
            items: VecDeque::new(),
            closed: false,
            congested: false,
            takes: 0,
        }),
        capacity: capacity.max(1),
        ready: Notify::new(),
        room: Notify::new(),
    });
    (Sender(shared.clone()), Receiver(shared))
}

impl<T> Sender<T> {
    /// Whether a sender timed out waiting for room since the receiver last took items: later
    /// best-effort senders then drop at once instead of waiting again.
    pub fn is_congested(&self) -> bool {
        self.0.lock().congested
    }

    /// How many times the receiver has taken items so far (compare with
    /// [`Sender::mark_congested_unless_taken`]).
    pub fn takes(&self) -> u64 {
        self.0.lock().takes
    }

    /// Marks the queue congested if the receiver has taken nothing since [`Sender::takes`]
    /// returned `takes`; true if it did. A sender that timed out while the receiver kept
    /// taking lost the room to other senders: the receiver is reading, only slower than they
    /// send, and marking it would make every sender drop at once instead of waiting.
    pub fn mark_congested_unless_taken(&self, takes: u64) -> bool {
        let mut q = self.0.lock();
        if q.takes == takes {
            q.congested = true;
        }
        q.congested
    }

    /// Queues `item` if there is room.
    pub fn try_send(&self, item: T) -> Result<(), TrySendError<T>> {
        let mut q = self.0.lock();
        if q.closed {
            return Err(TrySendError::Closed(item));
        }
        if q.items.len() >= self.0.capacity {
            return Err(TrySendError::Full(item));
        }
        let was_empty = q.items.is_empty();
        q.items.push_back(item);
        drop(q);
        if was_empty {
            self.0.ready.notify_one();
        }
        Ok(())
    }

    /// Queues items from the front of `items` while there is room, under one lock and with at
    /// most one wakeup (a publish batch's deliveries to one connection). What did not fit stays
    /// in `items`, in order; `Err` when the receiver is gone (nothing queued).
    pub fn try_send_many(&self, items: &mut VecDeque<T>) -> Result<(), Closed> {
        let mut q = self.0.lock();
        if q.closed {
            return Err(Closed);
        }
        let was_empty = q.items.is_empty();
        if was_empty && items.len() <= self.0.capacity {
            // Everything fits an empty queue: hand over the buffer instead of copying.
            std::mem::swap(&mut q.items, items);
        } else {
            let room = self.0.capacity.saturating_sub(q.items.len());
            let n = room.min(items.len());
            q.items.extend(items.drain(..n));
        }
        let woke = was_empty && !q.items.is_empty();
        drop(q);
        if woke {
            self.0.ready.notify_one();
        }
        Ok(())
    }

    /// Queues `item`, waiting for room as long as it takes.
    pub async fn send(&self, item: T) -> Result<(), SendError<T>> {
        self.send_until(item, None).await.map_err(|e| match e {
            SendTimeoutError::Closed(i) | SendTimeoutError::Timeout(i) => SendError(i),
        })
    }

    /// [`Sender::send`] that gives up after `timeout`, handing the item back.
    pub async fn send_timeout(
        &self,
        item: T,
        timeout: Duration,
    ) -> Result<(), SendTimeoutError<T>> {
        let deadline = tokio::time::Instant::now() + timeout;
        self.send_until(item, Some(deadline)).await
    }

    /// Waits for room until `deadline` (`None`: for as long as it takes).
    async fn send_until(
        &self,
        mut item: T,
        deadline: Option<tokio::time::Instant>,
    ) -> Result<(), SendTimeoutError<T>> {
        loop {
            let room = self.0.room.notified();
            tokio::pin!(room);
            // Registered before the check: a receiver taking items after it wakes us.
            room.as_mut().enable();
            match self.try_send(item) {
                Ok(()) => return Ok(()),
                Err(TrySendError::Closed(i)) => return Err(SendTimeoutError::Closed(i)),
                Err(TrySendError::Full(i)) => item = i,
            }
            match deadline {
                None => room.await,
                Some(d) => {
                    if tokio::time::timeout_at(d, room).await.is_err() {
                        return Err(SendTimeoutError::Timeout(item));
                    }
                }
            }
        }
    }
}

impl<T> Receiver<T> {
    /// Waits until items are queued, then moves all of them into `batch` (which must be empty;
    /// its allocation becomes the queue's, so two buffers alternate under load).
    pub async fn recv_batch(&mut self, batch: &mut VecDeque<T>) {
        loop {
            {
                let mut q = self.0.lock();
                if !q.items.is_empty() {
                    q.congested = false;
                    q.takes = q.takes.wrapping_add(1);
                    std::mem::swap(&mut q.items, batch);
                    drop(q);
                    self.0.room.notify_waiters();
                    return;
                }
            }
            self.0.ready.notified().await;
        }
    }

    /// Frees the queue's spare allocation when nothing is queued (an idle connection).
    pub fn shrink(&mut self) {
        let mut q = self.0.lock();
        if q.items.is_empty() && q.items.capacity() > 0 {
            q.items = VecDeque::new();
        }
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let items = {
            let mut q = self.0.lock();
            q.closed = true;
            std::mem::take(&mut q.items)
        };
        drop(items);
        self.0.room.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bounded_fifo_batches_and_close() {
        let (tx, mut rx) = channel::<u32>(3);
        for i in 0..3 {
            assert!(tx.try_send(i).is_ok());
        }
        assert!(matches!(tx.try_send(9), Err(TrySendError::Full(9))));
        let mut batch = VecDeque::new();
        rx.recv_batch(&mut batch).await;
        assert_eq!(batch.drain(..).collect::<Vec<_>>(), vec![0, 1, 2]);
        assert!(tx.try_send(3).is_ok());
        rx.recv_batch(&mut batch).await;
        assert_eq!(batch.pop_front(), Some(3));
        tx.mark_congested_unless_taken(tx.takes());
        assert!(tx.is_congested());
        assert!(tx.try_send(4).is_ok());
        rx.recv_batch(&mut batch).await;
        assert!(!tx.is_congested(), "taking items clears congestion");
        batch.clear();
        drop(rx);
        assert!(matches!(tx.try_send(4), Err(TrySendError::Closed(4))));
        assert!(tx.send(5).await.is_err());
    }

    #[tokio::test]
    async fn congested_only_when_the_receiver_took_nothing() {
        let (tx, mut rx) = channel::<u32>(1);
        assert!(tx.try_send(1).is_ok());
        let before = tx.takes();
        let mut batch = VecDeque::new();
        rx.recv_batch(&mut batch).await;
        assert!(tx.try_send(2).is_ok(), "another sender won the room");
        assert!(
            !tx.mark_congested_unless_taken(before),
            "the receiver took items since: not congested"
        );
        assert!(tx.mark_congested_unless_taken(tx.takes()));
        assert!(tx.is_congested());
        rx.recv_batch(&mut batch).await;
        assert!(!tx.is_congested());
    }

    #[tokio::test]
    async fn senders_wait_for_room_or_time_out() {
        let (tx, mut rx) = channel::<u32>(1);
        assert!(tx.try_send(1).is_ok());
        let r = tx.send_timeout(2, Duration::from_millis(20)).await;
        assert!(matches!(r, Err(SendTimeoutError::Timeout(2))));
        let tx2 = tx.clone();
        let waiting = tokio::spawn(async move { tx2.send(2).await.is_ok() });
        tokio::time::sleep(Duration::from_millis(10)).await;
        let mut batch = VecDeque::new();
        rx.recv_batch(&mut batch).await;
        assert_eq!(batch.pop_front(), Some(1));
        assert_eq!(waiting.await.ok(), Some(true));
        rx.recv_batch(&mut batch).await;
        assert_eq!(batch.pop_front(), Some(2));
    }

    #[tokio::test]
    async fn send_many_queues_what_fits_in_order() {
        let (tx, mut rx) = channel::<u32>(4);
        assert!(tx.try_send(0).is_ok());
        let mut items: VecDeque<u32> = (1..7).collect();
        assert_eq!(tx.try_send_many(&mut items), Ok(()));
        assert_eq!(
            items,
            VecDeque::from(vec![4, 5, 6]),
            "the rest stays, in order"
        );
        let mut batch = VecDeque::new();
        rx.recv_batch(&mut batch).await;
        assert_eq!(batch.drain(..).collect::<Vec<_>>(), vec![0, 1, 2, 3]);
        assert_eq!(tx.try_send_many(&mut items), Ok(()));
        assert!(items.is_empty());
        // A burst into a non-empty queue: the one wakeup of the first item covers it all.
        let waiter = tokio::spawn(async move {
            let mut batch = VecDeque::new();
            rx.recv_batch(&mut batch).await;
            let first: Vec<_> = batch.drain(..).collect();
            rx.recv_batch(&mut batch).await;
            (first, batch.drain(..).collect::<Vec<_>>(), rx)
        });
        let (first, second, rx) = tokio::time::timeout(Duration::from_secs(5), async {
            tokio::time::sleep(Duration::from_millis(10)).await;
            let mut more: VecDeque<u32> = VecDeque::from(vec![7]);
            assert_eq!(tx.try_send_many(&mut more), Ok(()));
            waiter.await
        })
        .await
        .unwrap_or_else(|_| panic!("receiver not woken"))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(first, vec![4, 5, 6]);
        assert_eq!(second, vec![7]);
        drop(rx);
        let mut late = VecDeque::from(vec![8]);
        assert_eq!(tx.try_send_many(&mut late), Err(Closed));
        assert_eq!(late, VecDeque::from(vec![8]));
    }

    #[tokio::test]
    async fn receiver_wakes_on_a_send_from_another_task() {
        let (tx, mut rx) = channel::<u32>(8);
        let sender = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(10)).await;
            tx.try_send(7).is_ok()
        });
        let mut batch = VecDeque::new();
        tokio::time::timeout(Duration::from_secs(5), rx.recv_batch(&mut batch))
            .await
            .unwrap_or_else(|_| panic!("receiver not woken"));
        assert_eq!(batch.pop_front(), Some(7));
        assert_eq!(sender.await.ok(), Some(true));
        rx.shrink();
    }
}
