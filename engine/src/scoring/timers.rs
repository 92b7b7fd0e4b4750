//! Quiet timers: a binary min-heap of `(deadline, account)` with lazy deletion.
//!
//! Each account records the deadline it currently relies on (`timer_at`); a popped entry whose
//! deadline differs from the account's `timer_at` is stale and skipped. An account pushes a new
//! entry only when its deadline moves earlier than the scheduled one; a later deadline is handled
//! when the earlier entry pops (it is pushed again then), so the heap holds about one entry per
//! key account.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The timer heap.
#[derive(Debug, Clone, Default)]
pub struct TimerQueue {
    heap: BinaryHeap<Reverse<(i64, u32)>>,
}

impl TimerQueue {
    /// Schedules `account` at `at_ms`.
    pub fn push(&mut self, at_ms: i64, account: u32) {
        self.heap.push(Reverse((at_ms, account)));
    }

    /// Removes and returns the earliest entry due at or before `now_ms`.
    pub fn pop_due(&mut self, now_ms: i64) -> Option<(i64, u32)> {
        match self.heap.peek() {
            Some(Reverse((at, _))) if *at <= now_ms => self.heap.pop().map(|Reverse(e)| e),
            _ => None,
        }
    }

    /// Entries held (live and stale).
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// All entries, sorted.
    pub fn sorted(&self) -> Vec<(i64, u32)> {
        let mut v: Vec<(i64, u32)> = self.heap.iter().map(|Reverse(e)| *e).collect();
        v.sort_unstable();
        v
    }

    /// A queue of the given entries.
    pub fn from_entries(entries: impl IntoIterator<Item = (i64, u32)>) -> Self {
        TimerQueue {
            heap: entries.into_iter().map(Reverse).collect(),
        }
    }
}

impl PartialEq for TimerQueue {
    fn eq(&self, other: &Self) -> bool {
        self.sorted() == other.sorted()
    }
}

impl Serialize for TimerQueue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.sorted().serialize(s)
    }
}

impl<'de> Deserialize<'de> for TimerQueue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(TimerQueue::from_entries(Vec::<(i64, u32)>::deserialize(d)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pops_in_deadline_order_only_when_due() {
        let mut q = TimerQueue::default();
        q.push(30, 1);
        q.push(10, 2);
        q.push(20, 3);
        assert_eq!(q.pop_due(5), None);
        assert_eq!(q.pop_due(25), Some((10, 2)));
        assert_eq!(q.pop_due(25), Some((20, 3)));
        assert_eq!(q.pop_due(25), None);
        assert_eq!(q.len(), 1);
        let back: TimerQueue = postcard::from_bytes(&postcard::to_allocvec(&q).expect("ser")).expect("de");
        assert_eq!(back, q);
    }
}
