//! The continuous pipeline: batches from a source → scoring core (one per partition) → sinks,
//! with the engine clock advanced on a tick so quiet accounts are detected without any event
//! arriving, and, in `vigil run`, per-partition checkpoints that the source's offsets follow.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;
use vigil_connectors::Ack;
use vigil_connectors::kafka::SourceBatch;
use vigil_engine::scoring::{Alert, ApplyOutcome, ScoringCore, ShardId, ShardedCore};

use crate::checkpoint::{CHECKPOINT_VERSION, Checkpoint, CheckpointStore, OwnerRequest, PartitionProgress};

/// Wall-clock time in epoch milliseconds.
pub fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Where the engine clock comes from.
#[derive(Debug, Clone)]
pub enum Clock {
    /// Event time while a partition has lag or a batch arrived since the last tick (catching
    /// up on a backlog is a replay); the wall clock once the partition is caught up (the source
    /// reached its end) and idle for a tick. A live stream's quiet accounts are detected from
    /// the wall clock; a backlog is never mistaken for silence. Lateness never depends on it:
    /// the engine's watermark follows event time only.
    Wall,
    /// A shared clock someone else advances (replay, the demo's accelerated time), held back
    /// to at most `max_ahead_ms` past the greatest event time applied so far: when the
    /// pipeline falls behind its source, time does not run on without the events, so a
    /// backlog is never mistaken for silence.
    Shared { time: Arc<AtomicI64>, max_ahead_ms: i64 },
    /// Event time only: each partition's time is its greatest event time. Deterministic for a
    /// given input (backfills, comparisons); quiet accounts are detected only as events of
    /// other accounts on the partition move time on.
    Event,
}

impl Clock {
    /// The clock's time in epoch milliseconds, given a partition's greatest applied event time,
    /// whether it is busy (a batch arrived since the last tick) and whether it is caught up (its
    /// last batch or marker reached the partition's end).
    pub fn now_ms(&self, max_event_ms: Option<i64>, busy: bool, caught_up: bool) -> i64 {
        match self {
            Clock::Event => max_event_ms.unwrap_or(i64::MIN),
            Clock::Wall if caught_up && !busy => wall_ms(),
            Clock::Wall => max_event_ms.unwrap_or(i64::MIN),
            Clock::Shared { time, max_ahead_ms } => {
                let t = time.load(Ordering::Relaxed);
                match max_event_ms {
                    Some(e) => t.min(e.saturating_add(*max_ahead_ms)),
                    None => t,
                }
            }
        }
    }
}

/// Counters of a pipeline run.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PipelineStats {
    pub batches: u64,
    pub events: u64,
    pub duplicates: u64,
    pub late: u64,
    pub alerts: u64,
    pub checkpoints: u64,
}

/// True when more than 1 % of `valid` events were late: a run warns then, since that many
/// events older than their partition's watermark points at unsorted input, input older than
/// the state, or a lateness set too small.
pub fn late_share_warrants_warning(late: u64, valid: u64) -> bool {
    late.saturating_mul(100) > valid
}

impl PipelineStats {
    /// A warning when more than 1 % of the valid events were late
    /// ([`late_share_warrants_warning`]).
    pub fn late_warning(&self) -> Option<String> {
        let valid = self.events + self.duplicates + self.late;
        late_share_warrants_warning(self.late, valid).then(|| {
            format!(
                "{} of {valid} events ({:.1} %) were late: older than their partition's watermark \
                 (the newest event time seen minus scoring.lateness_days). They are kept in the \
                 late_events table and not scored",
                self.late,
                100.0 * self.late as f64 / valid as f64
            )
        })
    }
}

/// The scoring state as shared with readers (SQL, the demo view).
pub type SharedCore = Arc<RwLock<ShardedCore>>;

/// The shard of batches from sources without partitions (files, replay).
pub fn unpartitioned_shard() -> ShardId {
    (Arc::from("_"), 0)
}

/// Where the pipeline's results go. `on_batch` and `on_tick` run while the pipeline still holds
/// the core's write lock (so `core` is the state right after the change): they only buffer
/// (history tails, alert lines, score updates), no I/O; `after_step` follows once the lock is
/// released and does the sink's I/O. All run before the batch is acknowledged to its source:
/// an error stops the pipeline without acknowledging.
pub trait PipelineSink {
    /// A batch was applied; `outcome.alerts` are the alerts it raised.
    fn on_batch(&mut self, batch: &SourceBatch, outcome: &ApplyOutcome, core: &ShardedCore) -> anyhow::Result<()>;
    /// The clock advanced and raised `alerts`, by partition (often none).
    fn on_tick(&mut self, alerts: &[(ShardId, Vec<Alert>)], core: &ShardedCore) -> anyhow::Result<()>;
    /// Partitions were checkpointed (their state up to here is durable).
    fn on_checkpoint(&mut self, _written: usize, _core: &ShardedCore) -> anyhow::Result<()> {
        Ok(())
    }
    /// A batch is done (applied and handed on) after `elapsed` in the pipeline.
    fn on_batch_done(&mut self, _outcome: &ApplyOutcome, _elapsed: Duration) {}
    /// After a batch or a tick, with the core's lock released: the I/O of what was buffered.
    fn after_step(&mut self) -> anyhow::Result<()> {
        Ok(())
    }
    /// Takes the history `shard` produced since its last checkpoint, at the moment its state is
    /// copied for checkpoint number `seq`; the returned write makes that history durable, and
    /// runs (off the pipeline's task) before the checkpoint itself is written.
    fn history_cut(&mut self, _shard: &ShardId, _seq: u64) -> Option<HistoryWrite> {
        None
    }
    /// `shard` was restored from its checkpoint number `seq` (0: it has none): history written
    /// after that checkpoint (by a process that crashed before its next one) is dropped.
    fn on_restored(&mut self, _shard: &ShardId, _seq: u64) -> anyhow::Result<()> {
        Ok(())
    }
}

/// A partition's history up to a checkpoint, to be made durable before the checkpoint.
pub type HistoryWrite = Box<dyn FnOnce() -> anyhow::Result<()> + Send>;

/// Checkpointing of `vigil run`: where, how often, and the source's ownership requests.
#[derive(Debug)]
pub struct Checkpointing {
    pub store: CheckpointStore,
    /// Longest time between checkpoints of a changed partition.
    pub interval: Duration,
    /// Messages read since the last checkpoint that trigger one.
    pub max_messages: u64,
    /// Assignment and revocation requests from the source.
    pub requests: mpsc::UnboundedReceiver<OwnerRequest>,
}

/// The pipeline's state between events.
struct Pipeline<'a, S: PipelineSink> {
    core: SharedCore,
    clock: Clock,
    sink: &'a mut S,
    stats: PipelineStats,
    /// Partitions that received a batch since the last tick.
    busy: BTreeSet<ShardId>,
    /// Partitions whose last batch (or marker) reached the partition's end.
    caught_up: BTreeSet<ShardId>,
    progress: BTreeMap<ShardId, PartitionProgress>,
    /// With checkpoints: acknowledgements held until a checkpoint covers their batches, by
    /// partition.
    held: BTreeMap<ShardId, Vec<Ack>>,
    /// Partitions changed since their last checkpoint.
    changed: BTreeSet<ShardId>,
    /// Partitions revoked while stopping: still in the core for the final report, never
    /// checkpointed again (their new owner may already be writing their checkpoints).
    released: BTreeSet<ShardId>,
    since_checkpoint: u64,
    last_checkpoint: Instant,
    store: Option<CheckpointStore>,
    /// The partition checkpoint being written, if any, and the rest of its round.
    writing: Option<CheckpointWrite>,
    round: VecDeque<ShardId>,
    round_written: usize,
    writes: u64,
    written: mpsc::UnboundedSender<u64>,
}

/// Tells the pipeline a checkpoint write is over, also when it failed or panicked.
struct SendOnDrop(mpsc::UnboundedSender<u64>, u64);

impl Drop for SendOnDrop {
    fn drop(&mut self) {
        let _ = self.0.send(self.1);
    }
}

/// A partition's checkpoint write in flight and the acknowledgements it releases when durable.
struct CheckpointWrite {
    /// Sent on the pipeline's `written` channel when the write is done.
    seq: u64,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    acks: Vec<Ack>,
}

fn lock_err() -> anyhow::Error {
    anyhow::anyhow!("scoring core lock poisoned")
}

impl<S: PipelineSink> Pipeline<'_, S> {
    fn apply(&mut self, batch: SourceBatch) -> anyhow::Result<()> {
        if let Some(span) = batch.span.as_ref().filter(|s| s.is_marker()) {
            // Nothing read: the partition is caught up and idle.
            self.caught_up.insert(span.partition.clone());
            batch.ack.ack();
            return Ok(());
        }
        let started = Instant::now();
        let shard = batch
            .span
            .as_ref()
            .map_or_else(unpartitioned_shard, |s| s.partition.clone());
        let outcome = {
            let mut core = self.core.write().map_err(|_| lock_err())?;
            let outcome = if batch.batch.num_rows() > 0 {
                core.apply_batch(&shard, &batch.batch)?
            } else {
                core.shard_mut(&shard)?;
                ApplyOutcome::default()
            };
            self.sink.on_batch(&batch, &outcome, &core)?;
            outcome
        };
        self.sink.after_step()?;
        self.sink.on_batch_done(&outcome, started.elapsed());
        self.stats.batches += 1;
        self.stats.events += outcome.applied as u64;
        self.stats.duplicates += outcome.duplicates as u64;
        self.stats.late += outcome.late as u64;
        self.stats.alerts += outcome.alerts.len() as u64;
        let p = self.progress.entry(shard.clone()).or_default();
        let messages = batch
            .span
            .as_ref()
            .map_or(batch.batch.num_rows() as u64, |s| s.messages);
        if let Some(span) = &batch.span {
            p.next_offset = Some(span.next_offset);
            p.dead_lettered += span.dead_lettered;
            if span.caught_up {
                self.caught_up.insert(shard.clone());
            } else {
                self.caught_up.remove(&shard);
            }
        }
        p.messages += messages;
        p.valid += batch.batch.num_rows() as u64;
        p.applied += outcome.applied as u64;
        p.duplicates += outcome.duplicates as u64;
        p.late += outcome.late as u64;
        self.busy.insert(shard.clone());
        if self.store.is_some() {
            self.held.entry(shard.clone()).or_default().push(batch.ack);
            self.changed.insert(shard);
            self.since_checkpoint += messages;
        } else {
            batch.ack.ack();
        }
        Ok(())
    }

    /// Advances each partition's clock; returns how many alerts it raised.
    fn tick(&mut self) -> anyhow::Result<u64> {
        let raised = {
            let mut core = self.core.write().map_err(|_| lock_err())?;
            let busy = std::mem::take(&mut self.busy);
            let clock = &self.clock;
            let caught_up = &self.caught_up;
            let alerts =
                core.advance_clock(|id, c| clock.now_ms(c.max_event_ms(), busy.contains(id), caught_up.contains(id)));
            self.sink.on_tick(&alerts, &core)?;
            alerts.iter().map(|(_, a)| a.len() as u64).sum()
        };
        self.sink.after_step()?;
        Ok(raised)
    }

    /// Starts a checkpoint round over every changed partition. Partitions are written one at a
    /// time: each one's core is copied under the lock when its turn comes (a memory copy of one
    /// partition, not of all), then encoded and written on a blocking thread while batches keep
    /// flowing; its held acknowledgements are released when its write completes (the source
    /// commits offsets only up to checkpointed batches). Callers wait for the round in flight
    /// first (see [`Pipeline::checkpoint_now`]) or skip.
    fn begin_checkpoint(&mut self) -> anyhow::Result<()> {
        if self.store.is_none() {
            return Ok(());
        }
        debug_assert!(self.writing.is_none(), "one checkpoint round at a time");
        let changed = std::mem::take(&mut self.changed);
        self.round = changed.into_iter().filter(|id| !self.released.contains(id)).collect();
        self.round_written = 0;
        self.since_checkpoint = 0;
        self.last_checkpoint = Instant::now();
        self.write_next()
    }

    /// Starts the write of the round's next partition, or ends the round.
    fn write_next(&mut self) -> anyhow::Result<()> {
        let Some(store) = &self.store else { return Ok(()) };
        while let Some(id) = self.round.pop_front() {
            let copy = {
                let core = self.core.read().map_err(|_| lock_err())?;
                core.shard(&id).cloned()
            };
            let Some(shard) = copy else { continue };
            let progress = {
                let p = self.progress.entry(id.clone()).or_default();
                p.checkpoints += 1;
                *p
            };
            // Cut with the state copy: nothing was applied in between.
            let history = self.sink.history_cut(&id, progress.checkpoints);
            let acks = self.held.remove(&id).unwrap_or_default();
            let store = store.clone();
            self.writes += 1;
            let seq = self.writes;
            let written = self.written.clone();
            let task = tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
                let _done = SendOnDrop(written, seq);
                if let Some(history) = history {
                    history()?;
                }
                store.save(&Checkpoint {
                    version: CHECKPOINT_VERSION,
                    topic: id.0.to_string(),
                    partition: id.1,
                    written_at_ms: wall_ms(),
                    progress,
                    state: shard.snapshot(),
                    inputs: Vec::new(),
                })
            });
            self.writing = Some(CheckpointWrite { seq, task, acks });
            return Ok(());
        }
        if self.round_written > 0 {
            self.stats.checkpoints += 1;
            let core = self.core.read().map_err(|_| lock_err())?;
            self.sink.on_checkpoint(self.round_written, &core)?;
            tracing::debug!(partitions = self.round_written, "checkpoint written");
            self.round_written = 0;
        }
        Ok(())
    }

    /// Completes the partition write in flight (if any): releases its acknowledgements, then
    /// starts the round's next write.
    async fn finish_checkpoint(&mut self) -> anyhow::Result<()> {
        let Some(w) = self.writing.as_mut() else { return Ok(()) };
        let result = (&mut w.task).await;
        let w = self.writing.take().expect("a write in flight");
        result.map_err(|e| anyhow::anyhow!("checkpoint writer: {e}"))??;
        for ack in w.acks {
            ack.ack();
        }
        self.round_written += 1;
        self.write_next()
    }

    /// Checkpoints every changed partition and returns once it is durable.
    async fn checkpoint_now(&mut self) -> anyhow::Result<()> {
        self.finish_round().await?;
        self.begin_checkpoint()?;
        self.finish_round().await
    }

    /// Waits until the round in flight (if any) is written.
    async fn finish_round(&mut self) -> anyhow::Result<()> {
        while self.writing.is_some() {
            self.finish_checkpoint().await?;
        }
        Ok(())
    }

    /// Starts a checkpoint when one is due (every `interval` or `max_messages`) and none is
    /// being written.
    fn checkpoint_if_due(&mut self, interval: Duration, max_messages: u64) -> anyhow::Result<()> {
        if self.store.is_none() || self.writing.is_some() {
            return Ok(());
        }
        let due = self.since_checkpoint >= max_messages
            || ((self.since_checkpoint > 0 || !self.changed.is_empty()) && self.last_checkpoint.elapsed() >= interval);
        if due {
            self.begin_checkpoint()?;
        }
        Ok(())
    }

    /// Restores assigned partitions from their checkpoints; returns where to start each.
    fn assigned(&mut self, parts: &[ShardId]) -> anyhow::Result<Vec<Option<i64>>> {
        let Some(store) = self.store.clone() else {
            return Ok(vec![None; parts.len()]);
        };
        let mut starts = Vec::with_capacity(parts.len());
        for id in parts {
            self.released.remove(id);
            let restored = match store.load(id)? {
                Some(c) => {
                    let core = ScoringCore::restore(&c.state)
                        .map_err(|e| anyhow::anyhow!("checkpoint {}/{}: {e}", c.topic, c.partition))?;
                    Some((core, c.progress))
                }
                None => None,
            };
            let seq = restored.as_ref().map_or(0, |(_, p)| p.checkpoints);
            self.sink.on_restored(id, seq)?;
            let mut core = self.core.write().map_err(|_| lock_err())?;
            match restored {
                Some((shard, progress)) => {
                    tracing::info!(topic = %id.0, partition = id.1, accounts = shard.len(), next_offset = ?progress.next_offset, "partition restored from its checkpoint");
                    core.insert_shard(id.clone(), shard);
                    self.progress.insert(id.clone(), progress);
                    starts.push(progress.next_offset);
                }
                None => {
                    let fresh = ScoringCore::new(core.config().clone())?;
                    core.insert_shard(id.clone(), fresh);
                    self.progress.insert(id.clone(), PartitionProgress::default());
                    starts.push(None);
                }
            }
        }
        Ok(starts)
    }

    /// Checkpoints everything (revoked partitions must be durable before their new owner
    /// restores them), the revoked partitions whether or not a batch changed them since their
    /// last checkpoint (clock ticks change state too), and drops the revoked partitions unless
    /// `keep`: a revocation while stopping leaves them in the core, so what the process
    /// reports last (the health table, SQL until exit) is still the state of every partition
    /// it held.
    async fn revoked(&mut self, parts: &[ShardId], keep: bool) -> anyhow::Result<()> {
        // A partition the core does not hold is skipped by the round.
        self.changed.extend(parts.iter().cloned());
        self.checkpoint_now().await?;
        if keep {
            self.released.extend(parts.iter().cloned());
            return Ok(());
        }
        let mut core = self.core.write().map_err(|_| lock_err())?;
        for id in parts {
            core.remove_shard(id);
            self.progress.remove(id);
            self.busy.remove(id);
            self.caught_up.remove(id);
        }
        Ok(())
    }
}

/// Runs until the source closes its channel. Every batch is applied to its partition's core and
/// handed to `sink`; alerts from clock ticks go to `sink` too. Without `checkpoints` a batch is
/// acknowledged right after; with them, after the next checkpoint covers it (every
/// `interval` or `max_messages`, on revocation and at the end), and partitions are restored
/// from their checkpoints when assigned. When `shutdown` completes, `stop_source` is called
/// and the batches still in flight are drained until the source closes the channel; then a
/// last clock advance and a final checkpoint.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    mut batches: mpsc::Receiver<SourceBatch>,
    core: SharedCore,
    clock: Clock,
    tick: Duration,
    sink: &mut impl PipelineSink,
    checkpoints: Option<Checkpointing>,
    shutdown: impl Future<Output = ()>,
    stop_source: impl FnOnce(),
) -> anyhow::Result<PipelineStats> {
    let (store, interval, max_messages, mut requests) = match checkpoints {
        Some(c) => (Some(c.store), c.interval, c.max_messages.max(1), Some(c.requests)),
        None => (None, Duration::MAX, u64::MAX, None),
    };
    let (written_tx, mut written_rx) = mpsc::unbounded_channel();
    let mut p = Pipeline {
        core,
        clock,
        sink,
        stats: PipelineStats::default(),
        busy: BTreeSet::new(),
        caught_up: BTreeSet::new(),
        progress: BTreeMap::new(),
        held: BTreeMap::new(),
        changed: BTreeSet::new(),
        released: BTreeSet::new(),
        since_checkpoint: 0,
        last_checkpoint: Instant::now(),
        store,
        writing: None,
        round: VecDeque::new(),
        round_written: 0,
        writes: 0,
        written: written_tx,
    };
    let mut ticker = tokio::time::interval(tick);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    tokio::pin!(shutdown);
    let mut stop_source = Some(stop_source);
    loop {
        tokio::select! {
            _ = &mut shutdown, if stop_source.is_some() => {
                if let Some(stop) = stop_source.take() {
                    stop();
                }
            }
            Some(req) = async { match requests.as_mut() { Some(r) => r.recv().await, None => None } }, if requests.is_some() => {
                match req {
                    OwnerRequest::Assigned(parts, reply) => {
                        let result = p.assigned(&parts);
                        let failed = result.as_ref().err().map(|e| format!("{e:#}"));
                        let _ = reply.send(result.map_err(|e| format!("{e:#}")));
                        if let Some(e) = failed {
                            anyhow::bail!("restoring partitions: {e}");
                        }
                    }
                    OwnerRequest::Revoked(parts, reply) => {
                        // The source is blocked in its rebalance callback: everything it read
                        // before is already in the channel. Apply it, then checkpoint.
                        while let Ok(b) = batches.try_recv() {
                            p.apply(b)?;
                        }
                        p.revoked(&parts, stop_source.is_none()).await?;
                        let _ = reply.send(());
                    }
                }
            }
            next = batches.recv() => {
                let Some(batch) = next else { break };
                p.apply(batch)?;
                p.checkpoint_if_due(interval, max_messages)?;
            }
            _ = ticker.tick() => {
                p.stats.alerts += p.tick()?;
                p.checkpoint_if_due(interval, max_messages)?;
            }
            Some(seq) = written_rx.recv() => {
                if p.writing.as_ref().is_some_and(|w| w.seq == seq) {
                    p.finish_checkpoint().await?;
                    p.checkpoint_if_due(interval, max_messages)?;
                }
            }
        }
    }
    // The source has stopped: requests it makes while closing (revocation) are not answered;
    // dropping the receiver lets them return at once.
    drop(requests);
    // A last clock advance: what is due by now (e.g. a quiet deadline passed while the final
    // batches drained) is raised before the pipeline reports done; then the final checkpoint.
    p.stats.alerts += p.tick()?;
    p.checkpoint_now().await?;
    Ok(p.stats)
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc::sync_channel;

    use vigil_connectors::kafka::BatchSpan;
    use vigil_engine::scoring::ScoringConfig;
    use vigil_engine::{DecodeLimits, Event, EventBatchBuilder, EventKind, SourceMeta};

    use super::*;

    struct NoSink;
    impl PipelineSink for NoSink {
        fn on_batch(&mut self, _: &SourceBatch, _: &ApplyOutcome, _: &ShardedCore) -> anyhow::Result<()> {
            Ok(())
        }
        fn on_tick(&mut self, _: &[(ShardId, Vec<Alert>)], _: &ShardedCore) -> anyhow::Result<()> {
            Ok(())
        }
    }

    fn shard(p: i32) -> ShardId {
        (Arc::from("events"), p)
    }

    /// Three activity events of `acct-<p>` on partition `p`, offsets 0..3.
    fn batch_of(p: i32) -> SourceBatch {
        let mut b = EventBatchBuilder::with_capacity(3);
        for i in 0..3 {
            let e = Event::new(
                format!("e-{p}-{i}"),
                format!("acct-{p}"),
                1_780_000_000_000 + i * 60_000,
                EventKind::Activity,
            );
            let meta = SourceMeta {
                topic: Some("events"),
                partition: Some(p),
                offset: Some(i),
                timestamp_ms: None,
            };
            b.decode_append(
                e.to_json().as_bytes(),
                &meta,
                &DecodeLimits::default(),
                1_780_000_000_000,
            )
            .expect("valid event");
        }
        SourceBatch {
            batch: b.finish(),
            ack: Ack::none(),
            span: Some(BatchSpan {
                partition: shard(p),
                first_offset: 0,
                next_offset: 3,
                messages: 3,
                dead_lettered: 0,
                caught_up: false,
            }),
        }
    }

    /// Runs the pipeline over partitions 0 and 1 (assigned, one batch each), then revokes
    /// partition 0 either in the middle of the run or as the source stops; returns the core at
    /// the end and the store.
    async fn revoke_run(while_stopping: bool) -> (SharedCore, CheckpointStore, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = CheckpointStore::open(dir.path()).expect("store");
        let core: SharedCore = Arc::new(RwLock::new(ShardedCore::new(ScoringConfig::default()).expect("core")));
        let (req_tx, requests) = mpsc::unbounded_channel();
        let (tx, rx) = mpsc::channel(16);
        let (assigned, assigned_rx) = sync_channel(1);
        req_tx
            .send(OwnerRequest::Assigned(vec![shard(0), shard(1)], assigned))
            .expect("send");
        let (go, go_rx) = tokio::sync::oneshot::channel::<()>();
        // The source's side: wait for the assignment, send a batch per partition, then revoke
        // partition 0 (now or when told to stop), and close only once the revocation is
        // confirmed, so the pipeline must answer it while still running.
        let new_owner = store.clone();
        let source = std::thread::spawn(move || {
            assert_eq!(assigned_rx.recv().expect("assigned"), Ok(vec![None, None]));
            tx.blocking_send(batch_of(0)).expect("batch");
            tx.blocking_send(batch_of(1)).expect("batch");
            if while_stopping {
                go_rx.blocking_recv().expect("stop");
            }
            let (revoked, revoked_rx) = sync_channel(1);
            req_tx
                .send(OwnerRequest::Revoked(vec![shard(0)], revoked))
                .expect("send");
            revoked_rx.recv().expect("revocation confirmed");
            // The partition's new owner moves on and checkpoints it.
            let mut c = new_owner.load(&shard(0)).expect("load").expect("revocation checkpoint");
            c.progress.messages = 1_000;
            new_owner.save(&c).expect("save");
            drop(tx);
        });
        let shutdown = async {
            if while_stopping {
                // Stop once both batches are in the core.
                while core.read().expect("lock").len() < 2 {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            } else {
                std::future::pending::<()>().await;
            }
        };
        let checkpoints = Checkpointing {
            store: store.clone(),
            interval: Duration::from_secs(3600),
            max_messages: u64::MAX,
            requests,
        };
        let stats = run(
            rx,
            core.clone(),
            Clock::Event,
            Duration::from_millis(10),
            &mut NoSink,
            Some(checkpoints),
            shutdown,
            move || {
                let _ = go.send(());
            },
        )
        .await
        .expect("run");
        source.join().expect("source thread");
        assert_eq!(stats.events, 6);
        (core, store, dir)
    }

    #[test]
    fn more_than_one_percent_late_is_warned_about() {
        let stats = |events, late| PipelineStats {
            events,
            late,
            ..PipelineStats::default()
        };
        assert_eq!(stats(0, 0).late_warning(), None);
        assert_eq!(stats(990, 10).late_warning(), None, "exactly 1 %");
        let w = stats(989, 11).late_warning().expect("over 1 %");
        assert!(w.starts_with("11 of 1000 events (1.1 %) were late"), "{w}");
    }

    #[tokio::test]
    async fn a_revoked_partition_is_checkpointed_and_dropped() {
        let (core, store, _dir) = revoke_run(false).await;
        let core = core.read().expect("lock");
        assert!(core.shard(&shard(0)).is_none(), "partition 0 was given up");
        assert!(core.shard(&shard(1)).is_some());
        let c = store
            .load(&shard(0))
            .expect("load")
            .expect("checkpoint of the revoked partition");
        assert_eq!(
            c.progress.messages, 1_000,
            "written before the revocation was confirmed"
        );
        assert_eq!(c.progress.next_offset, Some(3));
        assert_eq!(c.progress.applied, 3);
        assert_eq!(ScoringCore::restore(&c.state).expect("restore").len(), 1);
    }

    #[tokio::test]
    async fn a_revocation_while_stopping_keeps_the_partition_for_the_final_report() {
        let (core, store, _dir) = revoke_run(true).await;
        let core = core.read().expect("lock");
        assert!(
            core.shard(&shard(0)).is_some(),
            "the health table still covers partition 0"
        );
        assert_eq!(core.len(), 2);
        let c = store.load(&shard(0)).expect("load").expect("checkpoint");
        assert_eq!(
            c.progress.messages, 1_000,
            "the new owner's checkpoint is not overwritten"
        );
        assert!(store.load(&shard(1)).expect("load").is_some(), "the final checkpoint");
    }
}
