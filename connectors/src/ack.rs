//! At-least-once bookkeeping: which source offsets may be committed, given which batches
//! downstream has acknowledged.
//!
//! Batches are registered in emission order. A batch's offsets become committable only when it
//! and every batch emitted before it are acknowledged, so a committed offset never passes an
//! unacknowledged batch. Offsets carry the partition's assignment epoch: after a partition is
//! revoked, acknowledgements of batches read under the old assignment no longer commit it.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// A topic-partition.
pub type TopicPartition = (Arc<str>, i32);

/// The next offset to read for a partition, stamped with the assignment epoch it was read under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochOffset {
    pub next_offset: i64,
    pub epoch: u64,
}

#[derive(Debug)]
struct Pending {
    seq: u64,
    offsets: Vec<(TopicPartition, EpochOffset)>,
    acked: bool,
}

#[derive(Debug, Default)]
struct Inner {
    next_seq: u64,
    pending: VecDeque<Pending>,
    committable: HashMap<TopicPartition, i64>,
    assigned: HashMap<TopicPartition, u64>,
    next_epoch: u64,
}

impl Inner {
    fn settle(&mut self) {
        while self.pending.front().is_some_and(|p| p.acked) {
            let done = self.pending.pop_front().expect("front exists");
            for (tp, eo) in done.offsets {
                if self.assigned.get(&tp) == Some(&eo.epoch) {
                    let slot = self.committable.entry(tp).or_insert(eo.next_offset);
                    *slot = (*slot).max(eo.next_offset);
                }
            }
        }
    }
}

/// Tracks emitted batches and their acknowledgements; shared by the source, its acks and the
/// rebalance callback.
#[derive(Debug, Default)]
pub struct OffsetTracker {
    inner: Mutex<Inner>,
    settled: Condvar,
}

impl OffsetTracker {
    /// A new tracker with nothing assigned.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Marks partitions as assigned, each under a fresh epoch; returns the epochs.
    pub fn assign(&self, partitions: &[TopicPartition]) {
        let mut inner = self.lock();
        for tp in partitions {
            inner.next_epoch += 1;
            let epoch = inner.next_epoch;
            inner.assigned.insert(tp.clone(), epoch);
        }
    }

    /// Marks partitions as no longer assigned: acknowledgements of batches read under their
    /// old epoch will not commit them, and uncommitted progress on them is forgotten.
    pub fn revoke(&self, partitions: &[TopicPartition]) {
        let mut inner = self.lock();
        for tp in partitions {
            inner.assigned.remove(tp);
            inner.committable.remove(tp);
        }
    }

    /// The partitions assigned now.
    pub fn assigned(&self) -> Vec<TopicPartition> {
        self.lock().assigned.keys().cloned().collect()
    }

    /// Partitions assigned now.
    pub fn assigned_count(&self) -> usize {
        self.lock().assigned.len()
    }

    /// The epoch a partition is currently assigned under.
    pub fn epoch(&self, tp: &TopicPartition) -> Option<u64> {
        self.lock().assigned.get(tp).copied()
    }

    /// Registers an emitted batch; returns its acknowledgement handle.
    pub fn register(self: &Arc<Self>, offsets: Vec<(TopicPartition, EpochOffset)>) -> Ack {
        let mut inner = self.lock();
        let seq = inner.next_seq;
        inner.next_seq += 1;
        inner.pending.push_back(Pending {
            seq,
            offsets,
            acked: false,
        });
        Ack {
            seq,
            tracker: Some(self.clone()),
        }
    }

    /// Registers progress that needs no downstream acknowledgement (e.g. a span of messages
    /// that were all dead-lettered). It still waits behind earlier unacknowledged batches.
    pub fn register_acked(self: &Arc<Self>, offsets: Vec<(TopicPartition, EpochOffset)>) {
        self.register(offsets).ack();
    }

    fn ack_seq(&self, seq: u64) {
        let mut inner = self.lock();
        let Some(front) = inner.pending.front().map(|p| p.seq) else {
            return;
        };
        if seq < front {
            return;
        }
        if let Some(p) = inner.pending.get_mut((seq - front) as usize) {
            debug_assert_eq!(p.seq, seq);
            p.acked = true;
        }
        inner.settle();
        drop(inner);
        self.settled.notify_all();
    }

    /// Takes the offsets that may be committed now (next offset to read, per partition).
    pub fn take_committable(&self) -> Vec<(TopicPartition, i64)> {
        self.lock().committable.drain().collect()
    }

    /// Takes the committable offsets of the given partitions only.
    pub fn take_committable_of(&self, partitions: &[TopicPartition]) -> Vec<(TopicPartition, i64)> {
        let mut inner = self.lock();
        partitions
            .iter()
            .filter_map(|tp| inner.committable.remove(tp).map(|o| (tp.clone(), o)))
            .collect()
    }

    /// Number of emitted batches not yet settled.
    pub fn in_flight(&self) -> usize {
        self.lock().pending.len()
    }

    /// Waits until no unsettled batch holds offsets of `partitions` (all when `None`), or the
    /// timeout passes. Returns true when settled.
    pub fn wait_settled(&self, partitions: Option<&[TopicPartition]>, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut inner = self.lock();
        loop {
            let busy = inner.pending.iter().any(|p| match partitions {
                None => true,
                Some(parts) => p.offsets.iter().any(|(tp, _)| parts.contains(tp)),
            });
            if !busy {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            inner = self
                .settled
                .wait_timeout(inner, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

/// Downstream's acknowledgement of one batch. Call [`Ack::ack`] once the batch's effects are
/// durable; dropping it unacknowledged abandons the batch (its offsets are never committed and
/// the messages are read again after a restart or rebalance).
#[derive(Debug)]
pub struct Ack {
    seq: u64,
    tracker: Option<Arc<OffsetTracker>>,
}

impl Ack {
    /// Acknowledges the batch.
    pub fn ack(mut self) {
        if let Some(t) = self.tracker.take() {
            t.ack_seq(self.seq);
        }
    }

    /// An acknowledgement that tracks nothing (file sources, tests).
    pub fn none() -> Ack {
        Ack { seq: 0, tracker: None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(p: i32) -> TopicPartition {
        (Arc::from("t"), p)
    }

    fn at(t: &OffsetTracker, p: i32, next: i64) -> (TopicPartition, EpochOffset) {
        let epoch = t.epoch(&tp(p)).expect("assigned");
        (
            tp(p),
            EpochOffset {
                next_offset: next,
                epoch,
            },
        )
    }

    #[test]
    fn commits_only_contiguous_acked_prefix() {
        let t = OffsetTracker::new();
        t.assign(&[tp(0), tp(1)]);
        let a = t.register(vec![at(&t, 0, 10)]);
        let b = t.register(vec![at(&t, 0, 20), at(&t, 1, 5)]);
        let c = t.register(vec![at(&t, 0, 30)]);
        c.ack();
        assert!(t.take_committable().is_empty(), "c waits behind a and b");
        a.ack();
        assert_eq!(t.take_committable(), vec![(tp(0), 10)]);
        b.ack();
        let mut got = t.take_committable();
        got.sort();
        assert_eq!(got, vec![(tp(0), 30), (tp(1), 5)]);
        assert_eq!(t.in_flight(), 0);
    }

    #[test]
    fn dropped_ack_blocks_later_commits() {
        let t = OffsetTracker::new();
        t.assign(&[tp(0)]);
        let a = t.register(vec![at(&t, 0, 10)]);
        let b = t.register(vec![at(&t, 0, 20)]);
        drop(a);
        b.ack();
        assert!(t.take_committable().is_empty());
        assert_eq!(t.in_flight(), 2);
    }

    #[test]
    fn revoked_partition_is_not_committed_by_late_ack() {
        let t = OffsetTracker::new();
        t.assign(&[tp(0), tp(1)]);
        let a = t.register(vec![at(&t, 0, 10), at(&t, 1, 7)]);
        t.revoke(&[tp(0)]);
        t.assign(&[tp(0)]);
        a.ack();
        assert_eq!(t.take_committable(), vec![(tp(1), 7)]);
    }

    #[test]
    fn wait_settled_sees_acks_from_other_threads() {
        let t = OffsetTracker::new();
        t.assign(&[tp(0)]);
        let a = t.register(vec![at(&t, 0, 10)]);
        assert!(!t.wait_settled(Some(&[tp(0)]), Duration::from_millis(10)));
        let h = std::thread::spawn(move || a.ack());
        assert!(t.wait_settled(Some(&[tp(0)]), Duration::from_secs(5)));
        h.join().expect("ack thread");
        assert_eq!(t.take_committable_of(&[tp(0)]), vec![(tp(0), 10)]);
    }

    #[test]
    fn all_dead_lettered_span_commits_in_order() {
        let t = OffsetTracker::new();
        t.assign(&[tp(0)]);
        let a = t.register(vec![at(&t, 0, 10)]);
        t.register_acked(vec![at(&t, 0, 12)]);
        assert!(t.take_committable().is_empty());
        a.ack();
        assert_eq!(t.take_committable(), vec![(tp(0), 12)]);
    }
}
