//! What the running pipeline does with each applied batch and each clock tick: history for SQL
//! (`events`: the applied events, each event id once; `late_events`: events older than the
//! watermark, kept but not scored; `alerts`), alerts to stdout and to the hooks' durable outbox,
//! score updates to the scores topic.
//!
//! History of a partition is kept in the stores' tail under the partition's key until its next
//! checkpoint, which writes it as segments named `<topic>-<partition>-<checkpoint number>` before
//! the checkpoint itself: a crash between the two leaves segments numbered past the checkpoint,
//! which the restore deletes, and the re-read rows are written again under the next number.
//! `vigil replay` numbers its partition's segments the same way and writes its checkpoint at
//! the end. Without checkpoints (the demo) history is flushed by size as unkeyed segments.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow::array::{Array, AsArray, BooleanArray, RecordBatch};
use tokio::sync::{Notify, mpsc};
use vigil_connectors::kafka::KafkaScoresSink;
use vigil_connectors::outbox::{HookAlert, HookDispatcher};
use vigil_engine::scoring::{Alert, ApplyOutcome, HealthScore, ScoringCore, ShardId, Tier, alerts_to_batch};
use vigil_queries::SegmentStore;

use crate::error::{Result, RuntimeError};
use crate::metrics::RunMetrics;
use crate::pipeline::{HistoryWrite, PipelineSink};

/// The tail key of a partition's history.
fn history_key(shard: &ShardId) -> String {
    format!("{}-{}", shard.0, shard.1)
}

/// The segment name of a partition's history written with its checkpoint number `seq`.
pub fn segment_name(shard: &ShardId, seq: u64) -> String {
    format!("{}-{seq:012}", history_key(shard))
}

/// A partition's history segment name read back: (topic, partition, checkpoint number), for
/// `<topic>-<partition>-<number>` and for a compacted `<topic>-<partition>-<number>-m` (the
/// segments up to that number merged). Topic names cannot hold `/` but may hold `-`: the name
/// is read from the right.
fn parse_segment_name(stem: &str) -> Option<(&str, i32, u64)> {
    let stem = stem.strip_suffix("-m").unwrap_or(stem);
    let mut parts = stem.rsplitn(3, '-');
    let (n, p, topic) = (parts.next()?, parts.next()?, parts.next()?);
    if n.len() != 12 {
        return None;
    }
    Some((topic, p.parse().ok()?, n.parse().ok()?))
}

/// The checkpoint number of segment `stem` when it is `shard`'s history.
fn segment_number(stem: &str, shard: &ShardId) -> Option<u64> {
    parse_segment_name(stem).and_then(|(t, p, n)| (t == &*shard.0 && p == shard.1).then_some(n))
}

/// True when the segment stem `stem` is `shard`'s history written with a checkpoint numbered
/// after `seq`.
fn written_after(stem: &str, shard: &ShardId, seq: u64) -> bool {
    segment_number(stem, shard).is_some_and(|n| n > seq)
}

/// Small segments of one partition that trigger a compaction.
const COMPACT_AT: usize = 8;

/// Merges `shard`'s small segments (under `flush_rows` rows) numbered before `seq` into one,
/// once there are [`COMPACT_AT`] of them: a checkpoint every few seconds writes a small segment
/// each time, and a table of many small files is slow to scan. Segments numbered before `seq`
/// are covered by a durable checkpoint, so a merged one is never dropped as uncovered.
fn compact_small(store: &SegmentStore, shard: &ShardId, seq: u64, flush_rows: usize) -> Result<()> {
    let mut small: Vec<(u64, String)> = store
        .segments()
        .iter()
        .filter(|m| m.rows < flush_rows)
        .filter_map(|m| {
            let n = segment_number(m.stem(), shard)?;
            (n < seq).then(|| (n, m.stem().to_string()))
        })
        .collect();
    if small.len() < COMPACT_AT {
        return Ok(());
    }
    small.sort();
    let last = small.last().map_or(0, |(n, _)| *n);
    let stems: Vec<String> = small.into_iter().map(|(_, s)| s).collect();
    store.compact(&stems, &format!("{}-m", segment_name(shard, last)))?;
    Ok(())
}

/// The rows of `batch` the history keeps: (applied, late). Duplicates of an applied event id
/// are left out (the first copy is kept; they are counted in the outcome).
fn history_rows(batch: &RecordBatch, outcome: &ApplyOutcome) -> Result<(RecordBatch, Option<RecordBatch>)> {
    if outcome.late_rows.is_empty() && outcome.duplicate_rows.is_empty() {
        return Ok((batch.clone(), None));
    }
    let mut applied = vec![true; batch.num_rows()];
    let mut late = vec![false; batch.num_rows()];
    for &r in &outcome.duplicate_rows {
        applied[r] = false;
    }
    for &r in &outcome.late_rows {
        applied[r] = false;
        late[r] = true;
    }
    let keep = arrow::compute::filter_record_batch(batch, &BooleanArray::from(applied))?;
    let late = (!outcome.late_rows.is_empty())
        .then(|| arrow::compute::filter_record_batch(batch, &BooleanArray::from(late)))
        .transpose()?;
    Ok((keep, late))
}

/// The tier hooks route on: `key` for key accounts (tier = key or ARR over the threshold), else
/// `standard`.
pub fn tier_of(is_key: bool) -> Tier {
    if is_key { Tier::Key } else { Tier::Standard }
}

/// Latest score per account not yet sent: a newer score replaces an unsent older one (the
/// scores topic is compacted by key, so only the latest matters).
#[derive(Debug, Default)]
pub struct PendingScores {
    latest: Mutex<HashMap<String, HealthScore>>,
    wake: Notify,
    /// Since when sending has failed, and the last error (`None` while it works).
    failing: Mutex<Option<(std::time::Instant, String)>>,
}

impl PendingScores {
    fn put(&self, scores: impl IntoIterator<Item = HealthScore>) {
        if let Ok(mut m) = self.latest.lock() {
            for s in scores {
                m.insert(s.account_id.clone(), s);
            }
        }
        self.wake.notify_one();
    }

    fn take(&self) -> Vec<HealthScore> {
        self.latest
            .lock()
            .map(|mut m| m.drain().map(|(_, s)| s).collect())
            .unwrap_or_default()
    }

    /// How long sending has been failing and why, if it is (for `/healthz`).
    pub fn failing_for(&self) -> Option<(Duration, String)> {
        let failing = self.failing.lock().ok()?;
        failing.as_ref().map(|(since, why)| (since.elapsed(), why.clone()))
    }

    fn set_failing(&self, error: Option<String>) {
        if let Ok(mut f) = self.failing.lock() {
            match error {
                None => *f = None,
                Some(e) => {
                    let since = f.as_ref().map_or_else(std::time::Instant::now, |(s, _)| *s);
                    *f = Some((since, e));
                }
            }
        }
    }

    /// Sends pending scores until `stop` turns true, then sends what is left. Failed sends
    /// (after the sink's own retries) go back into the pending set, unless a newer score came.
    pub async fn run(self: Arc<Self>, sink: KafkaScoresSink, mut stop: tokio::sync::watch::Receiver<bool>) {
        loop {
            let stopping = *stop.borrow();
            let batch = self.take();
            if !batch.is_empty() {
                match sink.send_all(&batch).await {
                    Ok(_) => self.set_failing(None),
                    Err(e) => {
                        tracing::warn!(error = %e, n = batch.len(), "scores topic: sending failed, will retry");
                        self.set_failing(Some(e.to_string()));
                        if let Ok(mut m) = self.latest.lock() {
                            for s in batch {
                                m.entry(s.account_id.clone()).or_insert(s);
                            }
                        }
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
            }
            if stopping {
                let left = self.take();
                if !left.is_empty()
                    && let Err(e) = sink.send_all(&left).await
                {
                    tracing::warn!(error = %e, n = left.len(), "scores topic: score updates not sent at shutdown");
                }
                return;
            }
            tokio::select! {
                _ = self.wake.notified() => tokio::time::sleep(Duration::from_millis(50)).await,
                _ = stop.changed() => {}
            }
        }
    }
}

/// The pipeline's outputs in `vigil run`. Each partition worker has a copy: the history stores,
/// channels and counters inside are shared.
#[derive(Clone)]
pub struct RunOutputs {
    /// `events` history (None: history off).
    pub events: Option<SegmentStore>,
    /// `late_events` history (with `events`).
    pub late_events: Option<SegmentStore>,
    /// `alerts` history.
    pub alerts: SegmentStore,
    /// Partitions' history is written by their checkpoints ([`PipelineSink::history_cut`]);
    /// otherwise (no checkpoints: the demo) it is written when the tail reaches `flush_rows` and
    /// at the end.
    pub tied_to_checkpoints: bool,
    /// Tail rows that trigger writing a segment, when not tied to checkpoints.
    pub flush_rows: usize,
    /// Alerts to the hooks' outbox writer.
    pub hooks: Option<mpsc::UnboundedSender<Vec<HookAlert>>>,
    /// Score updates for the scores topic.
    pub scores: Option<Arc<PendingScores>>,
    /// Print alerts as JSON lines on stdout.
    pub print_alerts: bool,
    /// Counters for `/metrics`.
    pub metrics: Option<Arc<RunMetrics>>,
    /// Alert lines to print after the step (stdout is I/O: not under the core's lock).
    pub lines: Vec<String>,
}

impl RunOutputs {
    /// The tail key of `shard`'s history: its own when history is written with checkpoints,
    /// the unkeyed tail otherwise.
    fn key_of(&self, shard: &ShardId) -> String {
        if self.tied_to_checkpoints {
            history_key(shard)
        } else {
            String::new()
        }
    }

    /// Alerts raised by partition `shard` (by a batch or a clock tick).
    fn alerts(&mut self, shard: &ShardId, alerts: &[Alert], core: &ScoringCore) -> Result<()> {
        if alerts.is_empty() {
            return Ok(());
        }
        self.alerts.append_to(&self.key_of(shard), alerts_to_batch(alerts))?;
        if let Some(m) = &self.metrics {
            for a in alerts {
                m.alert_raised(a.kind.as_str());
            }
        }
        if !self.print_alerts && self.hooks.is_none() {
            return Ok(());
        }
        // One JSON shape for every alert on stdout and to the hooks: rule alerts (printed by
        // `run.rs`) use it too.
        let hook_alerts: Vec<HookAlert> = alerts
            .iter()
            .map(|a| HookAlert::from_engine(a, tier_of(core.is_key(&a.account_id))))
            .collect();
        if self.print_alerts {
            for a in &hook_alerts {
                self.lines.push(serde_json::to_string(a)?);
            }
        }
        if let Some(tx) = &self.hooks {
            tx.send(hook_alerts)
                .map_err(|_| RuntimeError::Stopped("the hooks' outbox writer".into()))?;
        }
        Ok(())
    }

    /// The history stores in use.
    fn stores(&self) -> impl Iterator<Item = &SegmentStore> {
        self.events
            .iter()
            .chain(self.late_events.iter())
            .chain(std::iter::once(&self.alerts))
    }

    /// Writes the unkeyed history tails as segments (without checkpoints). Partitions' history
    /// is written by their checkpoints only.
    pub fn flush(&self) -> Result<()> {
        for s in self.stores() {
            s.flush_segment()?;
        }
        Ok(())
    }
}

impl PipelineSink for RunOutputs {
    fn on_batch(
        &mut self,
        shard: &ShardId,
        batch: &RecordBatch,
        outcome: &ApplyOutcome,
        core: &ScoringCore,
    ) -> Result<()> {
        let key = self.key_of(shard);
        if let Some(events) = &self.events {
            let (applied, late) = history_rows(batch, outcome)?;
            events.append_to(&key, applied)?;
            if let (Some(late), Some(store)) = (late, &self.late_events) {
                store.append_to(&key, late)?;
            }
        }
        if let Some(scores) = &self.scores {
            let ids = batch.column(vigil_engine::schema::ACCOUNT_ID).as_string::<i32>();
            let mut seen = std::collections::HashSet::with_capacity(ids.len().min(4096));
            let updates: Vec<HealthScore> = ids
                .iter()
                .flatten()
                .filter(|id| seen.insert(*id))
                .filter_map(|id| core.score(id))
                .collect();
            scores.put(updates);
        }
        self.alerts(shard, &outcome.alerts, core)
    }

    fn on_tick(&mut self, shard: &ShardId, alerts: &[Alert], core: &ScoringCore) -> Result<()> {
        self.alerts(shard, alerts, core)
    }

    fn after_step(&mut self) -> Result<()> {
        if !self.lines.is_empty() {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            for line in self.lines.drain(..) {
                writeln!(out, "{line}").map_err(|e| RuntimeError::io("printing alerts", e))?;
            }
            out.flush().map_err(|e| RuntimeError::io("printing alerts", e))?;
        }
        // Without checkpoints, the unkeyed tails become segments by size.
        if !self.tied_to_checkpoints && self.events.as_ref().is_some_and(|e| e.tail_rows() >= self.flush_rows) {
            self.flush()?;
        }
        Ok(())
    }

    fn history_cut(&mut self, shard: &ShardId, seq: u64) -> Option<HistoryWrite> {
        let key = history_key(shard);
        let cuts: Vec<_> = self.stores().map(|s| (s.clone(), s.cut(&key))).collect();
        if cuts.iter().all(|(_, c)| c.rows() == 0) {
            return None;
        }
        let name = segment_name(shard, seq);
        let (shard, flush_rows) = (shard.clone(), self.flush_rows);
        Some(Box::new(move || {
            for (store, cut) in cuts {
                store.commit(cut, &name)?;
                // Optional: a failed compaction leaves the small segments as they are.
                if let Err(e) = compact_small(&store, &shard, seq, flush_rows) {
                    tracing::warn!(error = %e, topic = %shard.0, partition = shard.1, "compacting history segments failed");
                }
            }
            Ok(())
        }))
    }

    fn on_restored(&mut self, shard: &ShardId, seq: u64) -> Result<()> {
        let key = history_key(shard);
        for s in self.stores() {
            let n = s.discard(&key, |stem| written_after(stem, shard, seq))?;
            if n > 0 {
                tracing::info!(topic = %shard.0, partition = shard.1, checkpoint = seq, segments = n, "dropped history written after the restored checkpoint");
            }
        }
        Ok(())
    }

    fn on_checkpoint(&mut self, _written: usize, held: usize) -> Result<()> {
        if let Some(m) = &self.metrics {
            m.checkpoint_written(std::time::Instant::now());
            m.set_partitions(held as i64);
        }
        Ok(())
    }

    fn on_batch_done(&mut self, outcome: &ApplyOutcome, elapsed: Duration) {
        if let Some(m) = &self.metrics {
            m.batch_applied(
                outcome.applied as u64,
                outcome.late as u64,
                outcome.duplicates as u64,
                elapsed,
            );
        }
    }
}

/// Writes alerts to the outbox (durably, before delivery) as they come; runs until the
/// sender side is dropped.
pub async fn write_outbox(dispatcher: Arc<HookDispatcher>, mut rx: mpsc::UnboundedReceiver<Vec<HookAlert>>) {
    while let Some(mut alerts) = rx.recv().await {
        while let Ok(more) = rx.try_recv() {
            alerts.extend(more);
        }
        // The outbox write is retried: an alert must not be lost to a transient disk error.
        let mut delay = Duration::from_millis(50);
        loop {
            match dispatcher.submit_async(alerts.clone()).await {
                Ok(_) => break,
                Err(e) => {
                    tracing::error!(error = %e, n = alerts.len(), "writing alerts to the outbox failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_read_back_with_dashes_in_the_topic_and_compacted_ones() {
        let shard: ShardId = (Arc::from("events-v1"), 3);
        let name = segment_name(&shard, 42);
        assert_eq!(name, "events-v1-3-000000000042");
        assert_eq!(parse_segment_name(&name), Some(("events-v1", 3, 42)));
        assert_eq!(parse_segment_name(&format!("{name}-m")), Some(("events-v1", 3, 42)));
        assert!(written_after(&name, &shard, 41));
        assert!(!written_after(&name, &shard, 42));
        assert!(!written_after(&name, &(Arc::from("events"), 3), 0), "another topic");
        assert!(
            !written_after(&name, &(Arc::from("events-v1"), 4), 0),
            "another partition"
        );
        assert_eq!(parse_segment_name("seg-000001"), None);
        assert_eq!(parse_segment_name("t-0-42"), None);
    }

    #[test]
    fn eight_small_segments_covered_by_a_checkpoint_are_merged() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SegmentStore::open(
            "alerts",
            dir.path(),
            vigil_engine::scoring::alert_schema(),
            vigil_queries::live::ALERT_TIME_COLUMN,
        )
        .expect("store");
        let shard: ShardId = (Arc::from("t"), 0);
        let other: ShardId = (Arc::from("t"), 1);
        let alert = |n: i64| {
            vigil_engine::scoring::Alert::new(
                "acct",
                vigil_engine::scoring::AlertKind::Quiet,
                n,
                n,
                1.0,
                1.0,
                String::new(),
            )
        };
        for seq in 1..=8u64 {
            for s in [&shard, &other] {
                store
                    .append_to(&history_key(s), alerts_to_batch(&[alert(seq as i64)]))
                    .expect("append");
                store
                    .commit(store.cut(&history_key(s)), &segment_name(s, seq))
                    .expect("commit");
            }
        }
        // At checkpoint 8, segment 8 is not yet covered: seven candidates, no merge.
        compact_small(&store, &shard, 8, 1000).expect("compact");
        assert_eq!(store.segments().len(), 16);
        // Rows at or over `flush_rows` are not small.
        compact_small(&store, &shard, 9, 1).expect("compact");
        assert_eq!(store.segments().len(), 16);
        compact_small(&store, &shard, 9, 1000).expect("compact");
        let stems: Vec<String> = store.segments().iter().map(|m| m.stem().to_string()).collect();
        assert_eq!(stems.len(), 9, "{stems:?}");
        assert!(stems.contains(&"t-0-000000000008-m".to_string()), "{stems:?}");
        assert_eq!(
            stems.iter().filter(|s| s.starts_with("t-1-")).count(),
            8,
            "the other partition's stay"
        );
        let merged = store
            .segments()
            .into_iter()
            .find(|m| m.stem().ends_with("-m"))
            .expect("merged");
        assert_eq!(merged.rows, 8);
        // A merged segment is never taken for history written after a restored checkpoint.
        assert!(!written_after(merged.stem(), &shard, 8));
    }
}
