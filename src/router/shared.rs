//! Read-mostly sharing of a routing table between the publish path (many concurrent readers)
//! and subscribe/unsubscribe/route changes (rare writers).
//!
//! Why a reader-writer lock around one table (docs/decisions.md, "Router tables are shared
//! behind one RwLock"): a snapshot per write batch (`arc-swap`) would copy a 1 M-filter table
//! for every batch, and two copies kept in step (`left-right`) double the memory of the largest
//! structure on the node, while a match holds the lock for well under a microsecond. Readers
//! should take one guard per batch of publishes (as rumqttd's router drains its channels in
//! batches), and writers apply their changes in batches ([`ReadMostly::write_batch`]) so the
//! publish path stalls once per batch, not once per subscription.

use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// A table shared by concurrent matchers and rare writers.
#[derive(Debug, Default)]
pub struct ReadMostly<T> {
    lock: RwLock<T>,
}

impl<T> ReadMostly<T> {
    /// Wraps `table`.
    pub fn new(table: T) -> Self {
        ReadMostly {
            lock: RwLock::new(table),
        }
    }

    /// A shared view for matching. A writer that panicked leaves the table as it was at the
    /// panic (every table operation here keeps its own invariants between calls), so a
    /// poisoned lock is still read.
    pub fn read(&self) -> RwLockReadGuard<'_, T> {
        self.lock.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Exclusive access for one change.
    pub fn write(&self) -> RwLockWriteGuard<'_, T> {
        self.lock.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Applies every change of `batch` under one write lock: readers wait once per batch.
    pub fn write_batch<C>(
        &self,
        batch: impl IntoIterator<Item = C>,
        mut apply: impl FnMut(&mut T, C),
    ) {
        let mut table = self.write();
        for change in batch {
            apply(&mut table, change);
        }
    }

    /// The table, when no one else can hold it.
    pub fn into_inner(self) -> T {
        self.lock
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::router::{TopicFilter, TopicTrie};
    use std::sync::Arc;

    #[test]
    fn readers_see_batches_whole() {
        let shared = Arc::new(ReadMostly::new(TopicTrie::<u32>::new()));
        let filters: Vec<TopicFilter> = (0..200)
            .map(|i| TopicFilter::new(&format!("a/{i}/+")).unwrap())
            .collect();
        let reader = {
            let shared = Arc::clone(&shared);
            std::thread::spawn(move || {
                let mut seen = Vec::new();
                for _ in 0..200 {
                    // One guard at a time: std's RwLock queues a second read behind a waiting
                    // writer, so a reader holding one guard while taking another deadlocks.
                    let t = shared.read();
                    let n = t.match_vec("a/7/x").len() + t.len();
                    seen.push(t.len());
                    assert!(n <= 201);
                }
                seen
            })
        };
        for chunk in filters.chunks(50) {
            shared.write_batch(chunk, |t, f| {
                t.insert(f, 1).unwrap();
            });
        }
        let seen = reader.join().unwrap();
        assert!(
            seen.iter().all(|n| n % 50 == 0),
            "a batch was seen half applied"
        );
        assert_eq!(shared.read().match_vec("a/7/x").len(), 1);
        let t = Arc::try_unwrap(shared).unwrap().into_inner();
        assert_eq!(t.len(), 200);
    }
}
