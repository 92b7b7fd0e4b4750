//! The continuous pipeline's coordinator: routes batches from a source to the partitions'
//! actors ([`crate::partitions`]), ticks their clocks so quiet accounts are detected without any
//! event arriving, and, in `vigil run`, checkpoints each partition (its state, position and the
//! history it produced) and acknowledges batches to the source only once a durable checkpoint
//! covers them.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arrow::array::RecordBatch;
use tokio::sync::{Semaphore, mpsc};
use vigil_connectors::Ack;
use vigil_connectors::kafka::SourceBatch;
use vigil_engine::scoring::{Alert, ApplyOutcome, ScoringCore, ShardId};

use crate::actor::{Input, PartitionActor, TickTime};
use crate::checkpoint::{CHECKPOINT_VERSION, Checkpoint, CheckpointStore, OwnerRequest};
use crate::error::{Result, RuntimeError};
use crate::partitions::{Partitions, Report, WorkerMsg};

/// Wall-clock time in epoch milliseconds.
pub fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Where the engine clock comes from. Under `Wall` and `Event`, a partition's clock also stops
/// at each UTC midnight its events cross, before the first event of the new day: the daily sweep
/// (the score of the day, behind `trend_7d`) then sees exactly the events before it, whatever
/// the batches.
#[derive(Debug, Clone)]
pub enum Clock {
    /// Event time while a partition has lag or a batch arrived since the last tick (catching
    /// up on a backlog is a replay); the wall clock once the partition is caught up (the source
    /// reached its end) and idle for a tick. A live stream's quiet accounts are detected from
    /// the wall clock; a backlog is never mistaken for silence. Lateness never depends on it:
    /// the engine's watermark follows event time only.
    Wall,
    /// Event time only: each partition's time is its greatest event time. Deterministic for a
    /// given input (backfills, comparisons); quiet accounts are detected only as events of
    /// other accounts on the partition move time on.
    Event,
    /// Event time in steps: a partition's clock moves to the last multiple of `step_ms` at or
    /// before each of its events that passes the next multiple, between the events before and
    /// after it; ticks do nothing. With `scoring.alerts_on_apply` off, a partition's alerts (and
    /// every other output) depend only on its sequence of events and the models handed to it
    /// between two of them, not on how the source cut them into batches or when the coordinator
    /// ticked: the demo's clock, where two runs with one seed print the same alerts. Quiet
    /// accounts are detected as events of other accounts move time on, as with `Event`.
    EventSteps { step_ms: i64 },
}

impl Clock {
    /// The outside times a tick reads, now.
    pub fn tick_time(&self) -> TickTime {
        TickTime { wall_ms: wall_ms() }
    }

    /// The clock's time in epoch milliseconds, given a partition's greatest applied event time,
    /// whether it is busy (a batch arrived since the last tick), whether it is caught up (its
    /// last batch or marker reached the partition's end) and the outside times of the tick.
    pub fn now_ms(&self, max_event_ms: Option<i64>, busy: bool, caught_up: bool, time: TickTime) -> i64 {
        match self {
            Clock::Event => max_event_ms.unwrap_or(i64::MIN),
            Clock::Wall if caught_up && !busy => time.wall_ms,
            Clock::Wall => max_event_ms.unwrap_or(i64::MIN),
            Clock::EventSteps { step_ms } => max_event_ms.map_or(i64::MIN, |e| e - e.rem_euclid(*step_ms)),
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

/// The shard of batches from sources without partitions (files, replay).
pub fn unpartitioned_shard() -> ShardId {
    (Arc::from("_"), 0)
}

/// Performs the effects of partitions' steps. Each worker thread of [`crate::partitions`] has
/// its own copy (a clone of the one given to [`run`]) and calls it right after a step of one of
/// its partitions, with that partition's state (`core`) as the step left it: no lock is shared
/// with other partitions. History tails, alert lines and score updates are buffered in
/// `on_batch`/`on_tick`; `after_step` does the I/O. All run before the batch is acknowledged to
/// its source: an error stops the pipeline without acknowledging. The copy given to [`run`]
/// itself gets `on_restored` and `on_checkpoint`.
pub trait PipelineSink: Send {
    /// A batch of partition `shard` was applied; `outcome.alerts` are the alerts it raised.
    fn on_batch(
        &mut self,
        shard: &ShardId,
        batch: &RecordBatch,
        outcome: &ApplyOutcome,
        core: &ScoringCore,
    ) -> Result<()>;
    /// The clock of partition `shard` advanced and raised `alerts` (never empty).
    fn on_tick(&mut self, shard: &ShardId, alerts: &[Alert], core: &ScoringCore) -> Result<()>;
    /// A round of checkpoints was written: `written` partitions of the `held` ones.
    fn on_checkpoint(&mut self, _written: usize, _held: usize) -> Result<()> {
        Ok(())
    }
    /// A batch is done (applied and handed on) after `elapsed` in its worker.
    fn on_batch_done(&mut self, _outcome: &ApplyOutcome, _elapsed: Duration) {}
    /// After a step that produced something: the I/O of what was buffered.
    fn after_step(&mut self) -> Result<()> {
        Ok(())
    }
    /// Takes the history `shard` produced since its last checkpoint, at the moment its state is
    /// copied for checkpoint number `seq`; the returned write makes that history durable, and
    /// runs (off the partitions' threads) before the checkpoint itself is written.
    fn history_cut(&mut self, _shard: &ShardId, _seq: u64) -> Option<HistoryWrite> {
        None
    }
    /// `shard` was restored from its checkpoint number `seq` (0: it has none): history written
    /// after that checkpoint (by a process that crashed before its next one) is dropped.
    fn on_restored(&mut self, _shard: &ShardId, _seq: u64) -> Result<()> {
        Ok(())
    }
}

/// A partition's history up to a checkpoint, to be made durable before the checkpoint.
pub type HistoryWrite = Box<dyn FnOnce() -> Result<()> + Send>;

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

/// When partitions' clocks advance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ticking {
    /// Every partition, at this interval (and once at the end).
    Every(Duration),
    /// A partition right after each of its batches (and once at the end): deterministic for a
    /// given input (replay).
    AfterEachBatch,
}

/// Batches queued per worker thread before the source waits.
const QUEUED_PER_WORKER: usize = 8;

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
    task: tokio::task::JoinHandle<Result<()>>,
    acks: Vec<Ack>,
}

/// A partition's checkpoint ready to be written.
struct ReadyCheckpoint {
    job: Box<dyn FnOnce() -> Result<()> + Send>,
    acks: Vec<Ack>,
}

/// The coordinator's state between events.
struct Coordinator<'a, S: PipelineSink> {
    parts: Partitions,
    clock: Clock,
    ticking: Ticking,
    sink: &'a mut S,
    stats: PipelineStats,
    /// Batches that may still be queued, per worker.
    queued: Vec<Arc<Semaphore>>,
    reports: mpsc::UnboundedReceiver<Report>,
    synced: usize,
    store: Option<CheckpointStore>,
    /// With checkpoints: acknowledgements held until a checkpoint covers their batches, by
    /// partition.
    held: BTreeMap<ShardId, Vec<Ack>>,
    /// Partitions changed since their last checkpoint.
    changed: BTreeSet<ShardId>,
    /// Partitions revoked while stopping: still held for the final report, never checkpointed
    /// again (their new owner may already be writing their checkpoints).
    released: BTreeSet<ShardId>,
    since_checkpoint: u64,
    last_checkpoint: Instant,
    /// Checkpoints of the round asked of partitions, with the acknowledgements they cover.
    asked: BTreeMap<ShardId, Vec<Ack>>,
    /// Checkpoints ready, written one at a time.
    ready: VecDeque<ReadyCheckpoint>,
    writing: Option<CheckpointWrite>,
    round_written: usize,
    writes: u64,
    written: mpsc::UnboundedSender<u64>,
    written_rx: mpsc::UnboundedReceiver<u64>,
}

impl<S: PipelineSink> Drop for Coordinator<'_, S> {
    fn drop(&mut self) {
        // The workers' copies of the sink go (also when the pipeline failed).
        let _ = self.parts.broadcast(|| WorkerMsg::Detach);
    }
}

impl<S: PipelineSink> Coordinator<'_, S> {
    /// The worker of `shard`, a fresh partition adopted when new.
    fn route(&mut self, shard: &ShardId) -> Result<usize> {
        if let Some(w) = self.parts.worker_of(shard) {
            return Ok(w);
        }
        let actor = PartitionActor::new(
            shard.clone(),
            self.parts.config(),
            self.clock.clone(),
            self.parts.dims().clone(),
        )?;
        self.parts.adopt(actor)?;
        self.parts
            .worker_of(shard)
            .ok_or_else(|| RuntimeError::Worker(format!("partition {}/{} was not adopted", shard.0, shard.1)))
    }

    /// Hands a batch to its partition's worker (waiting while that worker has
    /// [`QUEUED_PER_WORKER`] batches queued).
    async fn forward(&mut self, batch: SourceBatch) -> Result<()> {
        let SourceBatch { batch, ack, span } = batch;
        let shard = span.as_ref().map_or_else(unpartitioned_shard, |s| s.partition.clone());
        let w = self.route(&shard)?;
        if span.as_ref().is_some_and(|s| s.is_marker()) {
            // Nothing read: the partition is caught up and idle.
            self.parts.send(
                w,
                WorkerMsg::Step {
                    shard,
                    input: Input::CaughtUp,
                    ack: None,
                    then_tick: None,
                    permit: None,
                },
            )?;
            ack.ack();
            return Ok(());
        }
        let messages = span.as_ref().map_or(batch.num_rows() as u64, |s| s.messages);
        let ack = if self.store.is_some() {
            self.held.entry(shard.clone()).or_default().push(ack);
            self.changed.insert(shard.clone());
            self.since_checkpoint += messages;
            None
        } else {
            Some(ack)
        };
        let permit = self.queued[w]
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| RuntimeError::Stopped(format!("partition worker {w}")))?;
        let then_tick = (self.ticking == Ticking::AfterEachBatch).then(|| self.clock.tick_time());
        self.parts.send(
            w,
            WorkerMsg::Step {
                shard,
                input: Input::Batch { batch, span },
                ack,
                then_tick,
                permit: Some(permit),
            },
        )?;
        self.stats.batches += 1;
        Ok(())
    }

    /// Advances every partition's clock.
    fn tick(&mut self) -> Result<()> {
        let time = self.clock.tick_time();
        self.parts.broadcast(|| WorkerMsg::Tick(time))
    }

    /// Takes in a worker's report.
    fn on_report(&mut self, report: Report) -> Result<()> {
        match report {
            Report::Applied {
                applied,
                duplicates,
                late,
                alerts,
            } => {
                self.stats.events += applied;
                self.stats.duplicates += duplicates;
                self.stats.late += late;
                self.stats.alerts += alerts;
            }
            Report::Ticked { alerts } => self.stats.alerts += alerts,
            Report::CheckpointReady {
                shard,
                progress,
                state,
                history,
            } => {
                let acks = self.asked.remove(&shard).unwrap_or_default();
                let Some(store) = self.store.clone() else {
                    return Ok(());
                };
                let job = move || -> Result<()> {
                    if let Some(history) = history {
                        history()?;
                    }
                    store.save(&Checkpoint {
                        version: CHECKPOINT_VERSION,
                        topic: shard.0.to_string(),
                        partition: shard.1,
                        written_at_ms: wall_ms(),
                        progress,
                        state: state.snapshot(),
                        inputs: Vec::new(),
                    })
                };
                self.ready.push_back(ReadyCheckpoint {
                    job: Box::new(job),
                    acks,
                });
                self.write_next();
            }
            Report::Synced => self.synced += 1,
            Report::Failed(e) => return Err(RuntimeError::Worker(e)),
        }
        Ok(())
    }

    /// Starts writing the next ready checkpoint unless one is being written.
    fn write_next(&mut self) {
        if self.writing.is_some() {
            return;
        }
        let Some(ReadyCheckpoint { job, acks }) = self.ready.pop_front() else {
            return;
        };
        self.writes += 1;
        let seq = self.writes;
        let written = self.written.clone();
        let task = tokio::task::spawn_blocking(move || {
            let _done = SendOnDrop(written, seq);
            job()
        });
        self.writing = Some(CheckpointWrite { seq, task, acks });
    }

    /// A checkpoint write is over: its acknowledgements are released when it succeeded.
    async fn on_written(&mut self, seq: u64) -> Result<()> {
        if self.writing.as_ref().is_none_or(|w| w.seq != seq) {
            return Ok(());
        }
        let Some(CheckpointWrite { task, acks, .. }) = self.writing.take() else {
            return Ok(());
        };
        task.await
            .map_err(|e| RuntimeError::Worker(format!("a checkpoint write panicked: {e}")))??;
        for ack in acks {
            ack.ack();
        }
        self.round_written += 1;
        self.write_next();
        if self.round_done() {
            self.stats.checkpoints += 1;
            self.sink.on_checkpoint(self.round_written, self.parts.held())?;
            tracing::debug!(partitions = self.round_written, "checkpoint written");
        }
        Ok(())
    }

    /// True when no checkpoint of the round is asked for, ready or being written.
    fn round_done(&self) -> bool {
        self.asked.is_empty() && self.ready.is_empty() && self.writing.is_none()
    }

    /// Asks every changed partition for its checkpoint (none when a round is in flight). Each
    /// partition copies its state (and cuts its history) at its next step, between batches;
    /// the copies are encoded and written one at a time off the partitions' threads while
    /// batches keep flowing; a partition's held acknowledgements are released when its write
    /// completes (the source commits offsets only up to checkpointed batches).
    fn begin_checkpoint(&mut self) -> Result<()> {
        if self.store.is_none() || !self.round_done() {
            return Ok(());
        }
        self.round_written = 0;
        self.since_checkpoint = 0;
        self.last_checkpoint = Instant::now();
        for id in std::mem::take(&mut self.changed) {
            if self.released.contains(&id) {
                continue;
            }
            let Some(w) = self.parts.worker_of(&id) else { continue };
            let acks = self.held.remove(&id).unwrap_or_default();
            self.asked.insert(id.clone(), acks);
            self.parts.send(
                w,
                WorkerMsg::Step {
                    shard: id,
                    input: Input::Checkpoint,
                    ack: None,
                    then_tick: None,
                    permit: None,
                },
            )?;
        }
        Ok(())
    }

    /// The next report or finished write, while waiting for something.
    async fn next_event(&mut self) -> Result<()> {
        tokio::select! {
            Some(r) = self.reports.recv() => self.on_report(r),
            Some(seq) = self.written_rx.recv() => self.on_written(seq).await,
        }
    }

    /// Waits until the round in flight (if any) is written.
    async fn finish_round(&mut self) -> Result<()> {
        while !self.round_done() {
            self.next_event().await?;
        }
        Ok(())
    }

    /// Checkpoints every changed partition now, after the round in flight, and waits for it.
    async fn checkpoint_now(&mut self) -> Result<()> {
        self.finish_round().await?;
        self.begin_checkpoint()?;
        self.finish_round().await
    }

    /// Waits until every worker has done everything sent to it so far.
    async fn settle(&mut self) -> Result<()> {
        self.synced = 0;
        self.parts.broadcast(|| WorkerMsg::Sync)?;
        while self.synced < self.parts.workers() {
            self.next_event().await?;
        }
        Ok(())
    }

    /// Starts a checkpoint when one is due (every `interval` or `max_messages`) and none is
    /// being written.
    fn checkpoint_if_due(&mut self, interval: Duration, max_messages: u64) -> Result<()> {
        if self.store.is_none() || !self.round_done() {
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
    fn assigned(&mut self, parts: &[ShardId]) -> Result<Vec<Option<i64>>> {
        let Some(store) = self.store.clone() else {
            return Ok(vec![None; parts.len()]);
        };
        let mut starts = Vec::with_capacity(parts.len());
        for id in parts {
            self.released.remove(id);
            let restored = match store.load(id)? {
                Some(c) => {
                    let core = ScoringCore::restore(&c.state).map_err(|e| RuntimeError::Checkpoint {
                        path: store.dir().join(&c.topic).join(format!("{}.ckpt", c.partition)),
                        detail: e.to_string(),
                    })?;
                    Some((core, c.progress))
                }
                None => None,
            };
            let seq = restored.as_ref().map_or(0, |(_, p)| p.checkpoints);
            self.sink.on_restored(id, seq)?;
            let (clock, dims) = (self.clock.clone(), self.parts.dims().clone());
            let actor = match restored {
                Some((core, progress)) => {
                    tracing::info!(topic = %id.0, partition = id.1, accounts = core.len(), next_offset = ?progress.next_offset, "partition restored from its checkpoint");
                    starts.push(progress.next_offset);
                    PartitionActor::restored(id.clone(), core, progress, clock, dims)
                }
                None => {
                    starts.push(None);
                    PartitionActor::new(id.clone(), self.parts.config(), clock, dims)?
                }
            };
            self.parts.adopt(actor)?;
        }
        Ok(starts)
    }

    /// Checkpoints everything (revoked partitions must be durable before their new owner
    /// restores them), the revoked partitions whether or not a batch changed them since their
    /// last checkpoint (clock ticks change state too), and drops the revoked partitions unless
    /// `keep`: a revocation while stopping leaves them held, so what the process reports last
    /// (the health table, SQL until exit) is still the state of every partition it held.
    async fn revoked(&mut self, parts: &[ShardId], keep: bool) -> Result<()> {
        // A partition not held is skipped by the round.
        self.changed.extend(parts.iter().cloned());
        self.checkpoint_now().await?;
        if keep {
            self.released.extend(parts.iter().cloned());
            return Ok(());
        }
        for id in parts {
            self.parts.release(id)?;
        }
        Ok(())
    }
}

/// Runs until the source closes its channel. Every batch goes to its partition's actor, whose
/// worker applies it and hands the effects to its copy of `sink`; clock ticks go to every
/// partition as `ticking` says. Without `checkpoints` a batch is acknowledged once its effects
/// are performed; with them, after the next checkpoint covers it (every `interval` or
/// `max_messages`, on revocation and at the end), and partitions are restored from their
/// checkpoints when assigned. When `shutdown` completes, `stop_source` is called and the
/// batches still in flight are drained until the source closes the channel; then a last clock
/// advance and a final checkpoint. The partitions stay in `parts` for readers after the return.
#[allow(clippy::too_many_arguments)]
pub async fn run<S: PipelineSink + Clone + 'static>(
    mut batches: mpsc::Receiver<SourceBatch>,
    parts: Partitions,
    clock: Clock,
    ticking: Ticking,
    sink: &mut S,
    checkpoints: Option<Checkpointing>,
    shutdown: impl Future<Output = ()>,
    stop_source: impl FnOnce(),
) -> Result<PipelineStats> {
    let (store, interval, max_messages, mut requests) = match checkpoints {
        Some(c) => (Some(c.store), c.interval, c.max_messages.max(1), Some(c.requests)),
        None => (None, Duration::MAX, u64::MAX, None),
    };
    let (report_tx, reports) = mpsc::unbounded_channel();
    for w in 0..parts.workers() {
        parts.send(w, WorkerMsg::Attach(Box::new(sink.clone()), report_tx.clone()))?;
    }
    drop(report_tx);
    let (written, written_rx) = mpsc::unbounded_channel();
    let workers = parts.workers();
    let mut p = Coordinator {
        parts,
        clock,
        ticking,
        sink,
        stats: PipelineStats::default(),
        queued: (0..workers)
            .map(|_| Arc::new(Semaphore::new(QUEUED_PER_WORKER)))
            .collect(),
        reports,
        synced: 0,
        store,
        held: BTreeMap::new(),
        changed: BTreeSet::new(),
        released: BTreeSet::new(),
        since_checkpoint: 0,
        last_checkpoint: Instant::now(),
        asked: BTreeMap::new(),
        ready: VecDeque::new(),
        writing: None,
        round_written: 0,
        writes: 0,
        written,
        written_rx,
    };
    let period = match ticking {
        Ticking::Every(d) => d,
        Ticking::AfterEachBatch => Duration::from_secs(3600),
    };
    let mut ticker = tokio::time::interval(period);
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
                        let failed = result.as_ref().err().map(|e| e.to_string());
                        let _ = reply.send(result.map_err(|e| e.to_string()));
                        if let Some(e) = failed {
                            return Err(RuntimeError::Source(format!("restoring partitions: {e}")));
                        }
                    }
                    OwnerRequest::Revoked(parts, reply) => {
                        // The source is blocked in its rebalance callback: everything it read
                        // before is already in the channel. Apply it, then checkpoint.
                        while let Ok(b) = batches.try_recv() {
                            p.forward(b).await?;
                        }
                        p.revoked(&parts, stop_source.is_none()).await?;
                        let _ = reply.send(());
                    }
                }
            }
            next = batches.recv() => {
                let Some(batch) = next else { break };
                p.forward(batch).await?;
                p.checkpoint_if_due(interval, max_messages)?;
            }
            _ = ticker.tick(), if ticking != Ticking::AfterEachBatch => {
                p.tick()?;
                p.checkpoint_if_due(interval, max_messages)?;
            }
            Some(r) = p.reports.recv() => {
                p.on_report(r)?;
            }
            Some(seq) = p.written_rx.recv() => {
                p.on_written(seq).await?;
                p.checkpoint_if_due(interval, max_messages)?;
            }
        }
    }
    // The source has stopped: requests it makes while closing (revocation) are not answered;
    // dropping the receiver lets them return at once.
    drop(requests);
    // A last clock advance: what is due by now (e.g. a quiet deadline passed while the final
    // batches drained) is raised before the pipeline reports done; then the final checkpoint.
    p.tick()?;
    p.settle().await?;
    p.checkpoint_now().await?;
    p.settle().await?;
    Ok(p.stats)
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc::sync_channel;

    use vigil_connectors::kafka::BatchSpan;
    use vigil_engine::scoring::ScoringConfig;
    use vigil_engine::{DecodeLimits, Event, EventBatchBuilder, EventKind, SourceMeta};

    use super::*;

    #[derive(Clone)]
    struct NoSink;
    impl PipelineSink for NoSink {
        fn on_batch(&mut self, _: &ShardId, _: &RecordBatch, _: &ApplyOutcome, _: &ScoringCore) -> Result<()> {
            Ok(())
        }
        fn on_tick(&mut self, _: &ShardId, _: &[Alert], _: &ScoringCore) -> Result<()> {
            Ok(())
        }
    }

    /// The partitions held, in order.
    fn held(parts: &Partitions) -> Vec<ShardId> {
        parts
            .each(|_, _| ())
            .expect("partitions")
            .into_iter()
            .map(|(id, _)| id)
            .collect()
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
    /// partition 0 either in the middle of the run or as the source stops; returns the
    /// partitions at the end and the store.
    async fn revoke_run(while_stopping: bool) -> (Partitions, CheckpointStore, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = CheckpointStore::open(dir.path()).expect("store");
        let parts = Partitions::new(ScoringConfig::default(), &[], 2).expect("partitions");
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
                // Stop once both batches are applied.
                while parts.accounts().expect("partitions") < 2 {
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
            parts.clone(),
            Clock::Event,
            Ticking::Every(Duration::from_millis(10)),
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
        (parts, store, dir)
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
        let (parts, store, _dir) = revoke_run(false).await;
        assert_eq!(held(&parts), vec![shard(1)], "partition 0 was given up");
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
        let (parts, store, _dir) = revoke_run(true).await;
        assert_eq!(
            held(&parts),
            vec![shard(0), shard(1)],
            "the health table still covers partition 0"
        );
        assert_eq!(parts.accounts().expect("partitions"), 2);
        assert_eq!(parts.health_batch().expect("health").num_rows(), 2);
        let c = store.load(&shard(0)).expect("load").expect("checkpoint");
        assert_eq!(
            c.progress.messages, 1_000,
            "the new owner's checkpoint is not overwritten"
        );
        assert!(store.load(&shard(1)).expect("load").is_some(), "the final checkpoint");
    }
}
