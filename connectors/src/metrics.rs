//! Counters a source keeps: messages read, valid, dead-lettered per reason, batches, commits.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use vigil_engine::InvalidReason;

use crate::stall::SourceView;

/// Counters of one source; cheap to update from the source thread, readable from anywhere.
#[derive(Debug, Default)]
pub struct SourceMetrics {
    pub messages: AtomicU64,
    pub bytes: AtomicU64,
    pub valid: AtomicU64,
    pub invalid: [AtomicU64; InvalidReason::CODES.len()],
    /// Valid events whose message key is not their account id (the partition then may not
    /// hold all of the account's events).
    pub key_mismatch: AtomicU64,
    /// Valid events whose message has no key.
    pub key_missing: AtomicU64,
    pub batches: AtomicU64,
    pub dead_lettered: AtomicU64,
    pub dead_letter_retries: AtomicU64,
    /// Dead letters sent as envelopes (too large for the dead-letter topic whole).
    pub dead_letters_truncated: AtomicU64,
    pub commits: AtomicU64,
    pub commit_errors: AtomicU64,
    pub rebalances: AtomicU64,
    /// Partitions assigned to the consumer now (set after each rebalance callback).
    pub assigned: AtomicU64,
    pub consume_errors: AtomicU64,
    /// Consumer lag per assigned (topic, partition), from librdkafka's statistics.
    pub lag: Mutex<BTreeMap<(String, i32), i64>>,
    /// The consumer group's state while it is not up, and since when (from the statistics).
    pub group_down: Mutex<Option<(String, Instant)>>,
    /// Why the source holds consumption on purpose (a dead-letter topic it cannot write).
    pub held: Mutex<Option<String>>,
    /// Times the watchdog replaced a stalled consumer with a new one.
    pub consumer_rebuilds: AtomicU64,
}

impl SourceMetrics {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn set(counter: &AtomicU64, n: u64) {
        counter.store(n, Ordering::Relaxed);
    }

    /// Invalid messages counted for a reason code (see [`InvalidReason::CODES`]).
    pub fn invalid_count(&self, code: &str) -> u64 {
        InvalidReason::CODES
            .iter()
            .position(|c| *c == code)
            .map_or(0, |i| self.invalid[i].load(Ordering::Relaxed))
    }

    /// All invalid messages, every reason.
    pub fn invalid_total(&self) -> u64 {
        self.invalid.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    /// The latest consumer lag per (topic, partition).
    pub fn lag(&self) -> BTreeMap<(String, i32), i64> {
        self.lag.lock().map(|m| m.clone()).unwrap_or_default()
    }

    /// What the source reports about itself now (for [`crate::stall::StallWatch`]).
    pub fn view(&self, now: Instant) -> SourceView {
        let lock = |m: &Mutex<Option<String>>| m.lock().map(|g| g.clone()).unwrap_or_default();
        SourceView {
            assigned: Self::get(&self.assigned),
            messages: Self::get(&self.messages),
            behind: self.lag().values().sum(),
            group_down: self
                .group_down
                .lock()
                .ok()
                .and_then(|g| g.clone())
                .map(|(state, since)| (state, now.saturating_duration_since(since))),
            held: lock(&self.held),
        }
    }

    /// Records why consumption is held (`None`: it is not).
    pub(crate) fn set_held(&self, why: Option<String>) {
        if let Ok(mut h) = self.held.lock() {
            *h = why;
        }
    }

    /// A counter's current value.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}
