//! The continuous pipeline: batches from a source → scoring core (one per partition) → sinks,
//! with the engine clock advanced on a tick so quiet accounts are detected without any event
//! arriving, and, in `vigil run`, per-partition checkpoints that the source's offsets follow.

use std::collections::{BTreeMap, BTreeSet};
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
    /// Event time while batches keep arriving (catching up on a backlog is a replay), wall-clock
    /// time once the stream is idle for a tick: a live stream's quiet accounts are detected
    /// from the wall clock, a backlog is never mistaken for silence.
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
    /// The clock's time in epoch milliseconds, given a partition's greatest applied event time
    /// and whether it is busy (a batch arrived since the last tick).
    pub fn now_ms(&self, max_event_ms: Option<i64>, busy: bool) -> i64 {
        match self {
            Clock::Event => max_event_ms.unwrap_or(i64::MIN),
            Clock::Wall => match (busy, max_event_ms) {
                (true, Some(e)) => e,
                _ => wall_ms(),
            },
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

/// The scoring state as shared with readers (SQL, the demo view).
pub type SharedCore = Arc<RwLock<ShardedCore>>;

/// The shard of batches from sources without partitions (files, replay).
pub fn unpartitioned_shard() -> ShardId {
    (Arc::from("_"), 0)
}

/// Where the pipeline's results go. Both calls run while the pipeline still holds the core's
/// write lock (so `core` is the state right after the change) and before the batch is
/// acknowledged to its source: an error stops the pipeline without acknowledging.
pub trait PipelineSink {
    /// A batch was applied; `outcome.alerts` are the alerts it raised.
    fn on_batch(&mut self, batch: &SourceBatch, outcome: &ApplyOutcome, core: &ShardedCore) -> anyhow::Result<()>;
    /// The clock advanced and raised `alerts` (often none).
    fn on_tick(&mut self, alerts: &[Alert], core: &ShardedCore) -> anyhow::Result<()>;
    /// Partitions were checkpointed (their state up to here is durable).
    fn on_checkpoint(&mut self, _written: usize, _core: &ShardedCore) -> anyhow::Result<()> {
        Ok(())
    }
    /// A batch is done (applied and handed on) after `elapsed` in the pipeline.
    fn on_batch_done(&mut self, _outcome: &ApplyOutcome, _elapsed: Duration) {}
}

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
    progress: BTreeMap<ShardId, PartitionProgress>,
    /// With checkpoints: acknowledgements held until a checkpoint covers their batches.
    held: Vec<Ack>,
    /// Partitions changed since their last checkpoint.
    changed: BTreeSet<ShardId>,
    since_checkpoint: u64,
    last_checkpoint: Instant,
    store: Option<CheckpointStore>,
}

fn lock_err() -> anyhow::Error {
    anyhow::anyhow!("scoring core lock poisoned")
}

impl<S: PipelineSink> Pipeline<'_, S> {
    fn apply(&mut self, batch: SourceBatch) -> anyhow::Result<()> {
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
        }
        p.messages += messages;
        p.valid += batch.batch.num_rows() as u64;
        p.applied += outcome.applied as u64;
        p.duplicates += outcome.duplicates as u64;
        p.late += outcome.late as u64;
        self.busy.insert(shard.clone());
        if self.store.is_some() {
            self.held.push(batch.ack);
            self.changed.insert(shard);
            self.since_checkpoint += messages;
        } else {
            batch.ack.ack();
        }
        Ok(())
    }

    /// Advances each partition's clock; returns how many alerts it raised.
    fn tick(&mut self) -> anyhow::Result<u64> {
        let mut core = self.core.write().map_err(|_| lock_err())?;
        let busy = std::mem::take(&mut self.busy);
        let clock = &self.clock;
        let alerts = core.advance_clock(|id, c| clock.now_ms(c.max_event_ms(), busy.contains(id)));
        self.sink.on_tick(&alerts, &core)?;
        Ok(alerts.len() as u64)
    }

    /// Writes a checkpoint of every changed partition, then releases the held acknowledgements
    /// (the source commits offsets only up to checkpointed batches).
    fn checkpoint(&mut self) -> anyhow::Result<()> {
        let Some(store) = &self.store else { return Ok(()) };
        let changed = std::mem::take(&mut self.changed);
        let snapshots: Vec<Checkpoint> = {
            let core = self.core.read().map_err(|_| lock_err())?;
            changed
                .iter()
                .filter_map(|id| {
                    let shard = core.shard(id)?;
                    Some(Checkpoint {
                        version: CHECKPOINT_VERSION,
                        topic: id.0.to_string(),
                        partition: id.1,
                        written_at_ms: wall_ms(),
                        progress: self.progress.get(id).copied().unwrap_or_default(),
                        state: shard.snapshot(),
                    })
                })
                .collect()
        };
        for c in &snapshots {
            store.save(c)?;
        }
        for ack in self.held.drain(..) {
            ack.ack();
        }
        self.since_checkpoint = 0;
        self.last_checkpoint = Instant::now();
        if !snapshots.is_empty() {
            self.stats.checkpoints += 1;
            let core = self.core.read().map_err(|_| lock_err())?;
            self.sink.on_checkpoint(snapshots.len(), &core)?;
            tracing::debug!(partitions = snapshots.len(), "checkpoint written");
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
            let restored = match store.load(id)? {
                Some(c) => {
                    let core = ScoringCore::restore(&c.state)
                        .map_err(|e| anyhow::anyhow!("checkpoint {}/{}: {e}", c.topic, c.partition))?;
                    Some((core, c.progress))
                }
                None => None,
            };
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
    /// restores them) and drops the revoked partitions.
    fn revoked(&mut self, parts: &[ShardId]) -> anyhow::Result<()> {
        self.checkpoint()?;
        let mut core = self.core.write().map_err(|_| lock_err())?;
        for id in parts {
            core.remove_shard(id);
            self.progress.remove(id);
            self.busy.remove(id);
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
    let mut p = Pipeline {
        core,
        clock,
        sink,
        stats: PipelineStats::default(),
        busy: BTreeSet::new(),
        progress: BTreeMap::new(),
        held: Vec::new(),
        changed: BTreeSet::new(),
        since_checkpoint: 0,
        last_checkpoint: Instant::now(),
        store,
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
                        p.revoked(&parts)?;
                        let _ = reply.send(());
                    }
                }
            }
            next = batches.recv() => {
                let Some(batch) = next else { break };
                p.apply(batch)?;
                if p.since_checkpoint >= max_messages {
                    p.checkpoint()?;
                }
            }
            _ = ticker.tick() => {
                p.stats.alerts += p.tick()?;
                if p.store.is_some()
                    && (p.since_checkpoint > 0 || !p.changed.is_empty())
                    && p.last_checkpoint.elapsed() >= interval
                {
                    p.checkpoint()?;
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
    p.checkpoint()?;
    Ok(p.stats)
}
