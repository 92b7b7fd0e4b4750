//! The continuous pipeline: batches from a source → scoring core → alerts, with the engine
//! clock advanced on a tick so quiet accounts are detected without any event arriving.

use std::future::Future;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;
use vigil_connectors::kafka::SourceBatch;
use vigil_engine::scoring::{Alert, ApplyOutcome, ScoringCore};

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
}

impl Clock {
    /// The clock's time in epoch milliseconds, given the greatest applied event time and
    /// whether the stream is busy (a batch arrived since the last tick).
    pub fn now_ms(&self, max_event_ms: Option<i64>, busy: bool) -> i64 {
        match self {
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

/// Greatest `ts` in an event batch.
fn max_event_time(batch: &arrow::record_batch::RecordBatch) -> Option<i64> {
    use arrow::array::AsArray;
    use arrow::datatypes::TimestampMillisecondType;
    let ts = batch
        .column(vigil_engine::schema::TS)
        .as_primitive_opt::<TimestampMillisecondType>()?;
    arrow::compute::max(ts)
}

/// Counters of a pipeline run.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PipelineStats {
    pub batches: u64,
    pub events: u64,
    pub duplicates: u64,
    pub late: u64,
    pub alerts: u64,
}

/// The scoring core as shared with readers (SQL, the demo view).
pub type SharedCore = Arc<RwLock<ScoringCore>>;

/// Where the pipeline's results go. Both calls run while the pipeline still holds the core's
/// write lock (so `core` is the state right after the change) and before the batch is
/// acknowledged to its source: an error stops the pipeline without acknowledging.
pub trait PipelineSink {
    /// A batch was applied; `outcome.alerts` are the alerts it raised.
    fn on_batch(&mut self, batch: &SourceBatch, outcome: &ApplyOutcome, core: &ScoringCore) -> anyhow::Result<()>;
    /// The clock advanced and raised `alerts` (often none).
    fn on_tick(&mut self, alerts: &[Alert], core: &ScoringCore) -> anyhow::Result<()>;
}

/// Runs until the source closes its channel. Every batch is applied to the core, handed to
/// `sink` and then acknowledged; alerts from clock ticks go to `sink` too. When `shutdown`
/// completes, `stop_source` is called and the batches still in flight are drained (applied and
/// acknowledged) until the source, having committed, closes the channel.
pub async fn run(
    mut batches: mpsc::Receiver<SourceBatch>,
    core: SharedCore,
    clock: Clock,
    tick: Duration,
    sink: &mut impl PipelineSink,
    shutdown: impl Future<Output = ()>,
    stop_source: impl FnOnce(),
) -> anyhow::Result<PipelineStats> {
    let mut stats = PipelineStats::default();
    let mut max_event_ms: Option<i64> = None;
    let mut busy = false;
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
            next = batches.recv() => {
                let Some(batch) = next else { break };
                if let Some(t) = max_event_time(&batch.batch) {
                    max_event_ms = Some(max_event_ms.map_or(t, |m| m.max(t)));
                }
                let outcome = {
                    let mut core = core.write().map_err(|_| anyhow::anyhow!("scoring core lock poisoned"))?;
                    let outcome = core.apply_batch(&batch.batch)?;
                    sink.on_batch(&batch, &outcome, &core)?;
                    outcome
                };
                stats.batches += 1;
                busy = true;
                stats.events += outcome.applied as u64;
                stats.duplicates += outcome.duplicates as u64;
                stats.late += outcome.late as u64;
                stats.alerts += outcome.alerts.len() as u64;
                batch.ack.ack();
            }
            _ = ticker.tick() => {
                let now = clock.now_ms(max_event_ms, busy);
                busy = false;
                stats.alerts += advance(&core, now, sink)?;
            }
        }
    }
    // A last clock advance: what is due by now (e.g. a quiet deadline passed while the final
    // batches drained) is raised before the pipeline reports done.
    stats.alerts += advance(&core, clock.now_ms(max_event_ms, busy), sink)?;
    Ok(stats)
}

/// Advances the engine clock to `now` and hands what it raised to `sink`; returns how many
/// alerts it raised.
fn advance(core: &SharedCore, now: i64, sink: &mut impl PipelineSink) -> anyhow::Result<u64> {
    let mut core = core
        .write()
        .map_err(|_| anyhow::anyhow!("scoring core lock poisoned"))?;
    let alerts = core.advance_clock(now);
    sink.on_tick(&alerts, &core)?;
    Ok(alerts.len() as u64)
}
