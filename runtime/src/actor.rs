//! [`PartitionActor`]: one input partition's scoring state and position, changed only by
//! [`PartitionActor::step`], a deterministic function from an [`Input`] to the [`Effects`] it
//! produced. The actor does no I/O: an executor ([`crate::partitions`]) performs the effects.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{AsArray, RecordBatch};
use vigil_connectors::kafka::BatchSpan;
use vigil_engine::models::ModelSet;
use vigil_engine::scoring::{AccountInfo, Alert, ApplyOutcome, DAY_MS, ScoringConfig, ScoringCore, ShardId};

use crate::checkpoint::PartitionProgress;
use crate::error::Result;
use crate::pipeline::Clock;

/// The accounts dimension (`accounts.csv`), shared by every partition: a partition joins an
/// account's record when the account first appears in it (or when it is restored). Accounts no
/// partition holds are answered from `core`, which holds only the dimension.
#[derive(Debug)]
pub struct Dimension {
    by_id: HashMap<Box<str>, AccountInfo>,
    /// The dimension's accounts with no events.
    pub core: ScoringCore,
}

impl Dimension {
    /// The dimension of `accounts`; fails when the scoring configuration is invalid.
    pub fn new(config: &ScoringConfig, accounts: &[AccountInfo]) -> Result<Dimension, vigil_engine::EngineError> {
        let mut core = ScoringCore::new(config.clone())?;
        let mut by_id = HashMap::with_capacity(accounts.len());
        for a in accounts {
            core.upsert_account(a.clone());
            by_id.insert(a.account_id.clone().into_boxed_str(), a.clone());
        }
        Ok(Dimension { by_id, core })
    }

    /// True when the dimension has no accounts.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// The record of an account.
    pub fn get(&self, account_id: &str) -> Option<&AccountInfo> {
        self.by_id.get(account_id)
    }

    /// Account ids of the dimension.
    pub fn account_ids(&self) -> impl Iterator<Item = &str> {
        self.by_id.keys().map(|k| &**k)
    }

    /// Joins the records of every account `core` holds (a restored partition: the dimension
    /// may have changed since its checkpoint).
    fn join_all(&self, core: &mut ScoringCore) {
        if self.is_empty() {
            return;
        }
        let ids: Vec<String> = core
            .account_ids()
            .filter(|id| self.by_id.contains_key(*id))
            .map(str::to_string)
            .collect();
        for id in ids {
            if let Some(info) = self.by_id.get(id.as_str()) {
                core.upsert_account(info.clone());
            }
        }
    }

    /// Joins the records of the accounts of `batch` that `core` holds without one.
    fn join_new(&self, core: &mut ScoringCore, batch: &RecordBatch) {
        if self.is_empty() {
            return;
        }
        let ids = batch.column(vigil_engine::schema::ACCOUNT_ID).as_string::<i32>();
        for id in ids.iter().flatten() {
            if core.lacks_dimension(id)
                && let Some(info) = self.by_id.get(id)
            {
                core.upsert_account(info.clone());
            }
        }
    }
}

/// The times outside the partition a clock tick may read, taken once per tick by the
/// coordinator so that the step itself reads no clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TickTime {
    /// Wall-clock time, epoch ms.
    pub wall_ms: i64,
}

/// What a partition's step takes.
#[derive(Debug)]
pub enum Input {
    /// Events read from the partition (`span`: where in the partition; `None` for sources
    /// without offsets).
    Batch {
        batch: RecordBatch,
        span: Option<BatchSpan>,
    },
    /// The source reached the partition's end and read nothing since.
    CaughtUp,
    /// The clock advanced.
    Tick(TickTime),
    /// New population models (fitted across every partition): the churn risk's base reads them
    /// from this step on.
    Models(Arc<ModelSet>),
    /// Copy the state for a checkpoint.
    Checkpoint,
}

/// What a step produced, for the executor to perform.
#[derive(Debug)]
pub enum Effects {
    /// A batch was applied: its rows (history keeps the applied ones, flags the late ones) and
    /// the outcome (counts, late and duplicate rows, alerts).
    Applied { batch: RecordBatch, outcome: ApplyOutcome },
    /// The clock advanced and raised these alerts (often none).
    Ticked { alerts: Vec<Alert> },
    /// The state as of this step, to be written as checkpoint number `progress.checkpoints`.
    Checkpoint {
        progress: PartitionProgress,
        state: Box<ScoringCore>,
    },
    /// Nothing to perform.
    None,
}

/// One partition: its scoring state, its position in the source and what its clock needs.
#[derive(Debug)]
pub struct PartitionActor {
    id: ShardId,
    core: ScoringCore,
    progress: PartitionProgress,
    clock: Clock,
    dims: Arc<Dimension>,
    /// A batch arrived since the last tick.
    busy: bool,
    /// The last batch (or marker) reached the partition's end.
    caught_up: bool,
}

impl PartitionActor {
    /// A partition with no state yet.
    pub fn new(id: ShardId, config: &ScoringConfig, clock: Clock, dims: Arc<Dimension>) -> Result<Self> {
        Ok(Self::restored(
            id,
            ScoringCore::new(config.clone())?,
            PartitionProgress::default(),
            clock,
            dims,
        ))
    }

    /// A partition restored from its checkpoint (state and progress).
    pub fn restored(
        id: ShardId,
        mut core: ScoringCore,
        progress: PartitionProgress,
        clock: Clock,
        dims: Arc<Dimension>,
    ) -> Self {
        dims.join_all(&mut core);
        PartitionActor {
            id,
            core,
            progress,
            clock,
            dims,
            busy: false,
            caught_up: false,
        }
    }

    /// The partition.
    pub fn id(&self) -> &ShardId {
        &self.id
    }

    /// The scoring state.
    pub fn core(&self) -> &ScoringCore {
        &self.core
    }

    /// The position and running counts.
    pub fn progress(&self) -> &PartitionProgress {
        &self.progress
    }

    /// Applies one input and returns what it produced.
    pub fn step(&mut self, input: Input) -> Result<Effects> {
        match input {
            Input::Batch { batch, span } => self.apply(batch, span),
            Input::CaughtUp => {
                self.caught_up = true;
                Ok(Effects::None)
            }
            // A stepped clock moves only with the partition's events.
            Input::Tick(_) if matches!(self.clock, Clock::EventSteps { .. }) => Ok(Effects::None),
            Input::Tick(time) => {
                let now = self
                    .clock
                    .now_ms(self.core.max_event_ms(), self.busy, self.caught_up, time);
                self.busy = false;
                Ok(Effects::Ticked {
                    alerts: self.core.advance_clock(now),
                })
            }
            Input::Models(set) => {
                // A model that failed to fit keeps the parameters in use.
                let population = set.population(self.core.population());
                self.core.set_population(population);
                Ok(Effects::None)
            }
            Input::Checkpoint => {
                self.progress.checkpoints += 1;
                Ok(Effects::Checkpoint {
                    progress: self.progress,
                    state: Box::new(self.core.clone()),
                })
            }
        }
    }

    fn apply(&mut self, batch: RecordBatch, span: Option<BatchSpan>) -> Result<Effects> {
        let outcome = match self.clock {
            _ if batch.num_rows() == 0 => ApplyOutcome::default(),
            Clock::EventSteps { step_ms } => self.apply_in_steps(&batch, step_ms)?,
            // The daily sweep (each account's score of the day, behind `trend_7d`) happens as
            // event time enters a new UTC day, before that day's first row: what it records
            // depends on the sequence of events, not on where batches or ticks fell.
            Clock::Event | Clock::Wall => self.apply_in_steps(&batch, DAY_MS)?,
        };
        let p = &mut self.progress;
        match &span {
            Some(span) => {
                p.next_offset = Some(span.next_offset);
                p.dead_lettered += span.dead_lettered;
                p.messages += span.messages;
                self.caught_up = span.caught_up;
            }
            None => p.messages += batch.num_rows() as u64,
        }
        p.valid += batch.num_rows() as u64;
        p.applied += outcome.applied as u64;
        p.duplicates += outcome.duplicates as u64;
        p.late += outcome.late as u64;
        self.busy = true;
        Ok(Effects::Applied { batch, outcome })
    }

    /// Applies `batch` to the state and joins the dimension's records of its new accounts.
    fn apply_rows(&mut self, batch: &RecordBatch) -> Result<ApplyOutcome> {
        let outcome = self.core.apply_batch(batch)?;
        if outcome.new_accounts > 0 {
            self.dims.join_new(&mut self.core, batch);
        }
        Ok(outcome)
    }

    /// [`Clock::EventSteps`]: applies `batch` in runs of rows that stay within one step of
    /// `step_ms`; before the first row at or past the next multiple of `step_ms`, the clock
    /// advances to the last multiple at or before that row. The runs, and so the alerts, depend
    /// only on the rows' sequence, never on where a batch began or ended.
    fn apply_in_steps(&mut self, batch: &RecordBatch, step_ms: i64) -> Result<ApplyOutcome> {
        let ts = batch
            .column(vigil_engine::schema::TS)
            .as_primitive_opt::<arrow::datatypes::TimestampMillisecondType>()
            .ok_or_else(|| {
                vigil_engine::EngineError::Schema(format!(
                    "column ts is {}, not Timestamp(ms)",
                    batch.column(vigil_engine::schema::TS).data_type()
                ))
            })?
            .values()
            .clone();
        let mut total = ApplyOutcome::default();
        let mut now = self.core.now_ms();
        let mut start = 0;
        for (row, &t) in ts.iter().enumerate() {
            let Some(n) = now else {
                now = Some(t);
                continue;
            };
            let next_step = (n.div_euclid(step_ms) + 1).saturating_mul(step_ms);
            if t >= next_step {
                self.apply_run(batch, start, row, &mut total)?;
                start = row;
                total.alerts.extend(self.core.advance_clock(t - t.rem_euclid(step_ms)));
            }
            now = Some(n.max(t));
        }
        self.apply_run(batch, start, batch.num_rows(), &mut total)?;
        Ok(total)
    }

    /// Applies rows `from..to` of `batch`, adding what they did to `total` (row indices as in
    /// `batch`).
    fn apply_run(&mut self, batch: &RecordBatch, from: usize, to: usize, total: &mut ApplyOutcome) -> Result<()> {
        if from == to {
            return Ok(());
        }
        let run = self.apply_rows(&batch.slice(from, to - from))?;
        total.applied += run.applied;
        total.duplicates += run.duplicates;
        total.late += run.late;
        total.late_rows.extend(run.late_rows.iter().map(|r| r + from));
        total.duplicate_rows.extend(run.duplicate_rows.iter().map(|r| r + from));
        total.new_accounts += run.new_accounts;
        total.alerts.extend(run.alerts);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use vigil_engine::scoring::{AlertKind, Tier};
    use vigil_engine::{Event, EventKind};

    use super::*;

    const HOUR: i64 = 3_600_000;
    const DAY: i64 = 24 * HOUR;

    fn events() -> Vec<Event> {
        let mut evs = Vec::new();
        // A key account active daily for 20 days, then silent until day 30; another account's
        // events every 3 hours move time on; three complaints in three days make a spike.
        for d in 0..20 {
            evs.push(Event::new(
                format!("k{d}"),
                "k",
                d * DAY + 9 * HOUR,
                EventKind::Activity,
            ));
        }
        evs.push(Event::new("k-back", "k", 30 * DAY + 2 * HOUR, EventKind::Activity));
        for h in 0..(40 * 8) {
            evs.push(Event::new(format!("o{h}"), "o", h * 3 * HOUR + 17, EventKind::Activity));
        }
        for d in [2, 3, 4] {
            evs.push(Event::new(
                format!("s{d}"),
                "s",
                d * DAY + 5 * HOUR,
                EventKind::Complaint,
            ));
        }
        evs.sort_by_key(|e| e.ts_ms);
        evs
    }

    fn to_batch(evs: &[Event]) -> RecordBatch {
        let mut b = vigil_engine::EventBatchBuilder::with_capacity(evs.len());
        for e in evs {
            b.decode_append(
                e.to_json().as_bytes(),
                &vigil_engine::SourceMeta::default(),
                &vigil_engine::DecodeLimits::default(),
                100 * DAY,
            )
            .expect("valid event");
        }
        b.finish()
    }

    /// The alerts of the events fed in batches of the given sizes (cycled), with a tick after
    /// each batch, and the key account's score at the end.
    fn run(sizes: &[usize]) -> (Vec<Alert>, f64) {
        let config = ScoringConfig {
            alerts_on_apply: false,
            ..ScoringConfig::default()
        };
        let mut key = AccountInfo::new("k");
        key.tier = Tier::Key;
        let dims = Arc::new(Dimension::new(&config, &[key]).expect("dimension"));
        let clock = Clock::EventSteps { step_ms: HOUR };
        let mut actor = PartitionActor::new((Arc::from("t"), 0), &config, clock, dims).expect("actor");
        let evs = events();
        let mut alerts = Vec::new();
        let (mut at, mut i) = (0, 0);
        while at < evs.len() {
            let n = sizes[i % sizes.len()].min(evs.len() - at);
            let input = Input::Batch {
                batch: to_batch(&evs[at..at + n]),
                span: None,
            };
            match actor.step(input).expect("step") {
                Effects::Applied { outcome, .. } => alerts.extend(outcome.alerts),
                other => panic!("a batch gave {other:?}"),
            }
            match actor
                .step(Input::Tick(TickTime { wall_ms: 1_000 * DAY }))
                .expect("tick")
            {
                Effects::None => {}
                other => panic!("a tick of a stepped clock gave {other:?}"),
            }
            at += n;
            i += 1;
        }
        let score = actor.core().score("k").expect("k").score;
        (alerts, score)
    }

    #[test]
    fn a_stepped_clock_gives_the_same_alerts_whatever_the_batches() {
        let (alerts, score) = run(&[usize::MAX]);
        let kinds: Vec<(AlertKind, &str)> = alerts.iter().map(|a| (a.kind, a.account_id.as_str())).collect();
        assert!(kinds.contains(&(AlertKind::Quiet, "k")), "{alerts:?}");
        assert!(kinds.contains(&(AlertKind::Recovered, "k")), "{alerts:?}");
        assert!(kinds.contains(&(AlertKind::ComplaintSpike, "s")), "{alerts:?}");
        // Evaluated at clock steps: whole hours.
        for a in alerts.iter().filter(|a| a.kind != AlertKind::Quiet) {
            assert_eq!(a.at_ms % HOUR, 0, "{a:?}");
        }
        for sizes in [&[1][..], &[2, 7, 1, 30], &[64]] {
            assert_eq!(run(sizes), (alerts.clone(), score), "batches of {sizes:?}");
        }
    }
}
