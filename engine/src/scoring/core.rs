//! [`ScoringCore`]: applies event batches to per-account state, answers health scores and the
//! health table, raises alerts, and snapshots itself. No I/O: time comes in as event times and
//! [`ScoringCore::advance_clock`].
//!
//! # Time
//!
//! Two times, kept apart. The watermark is event time only: the greatest applied event time
//! minus the allowed lateness (bounded out-of-orderness); an event older than the watermark is
//! late (counted in [`ApplyOutcome::late`] with its row in [`ApplyOutcome::late_rows`], and in
//! [`CoreStats::late_total`]) and not applied. The clock ([`ScoringCore::advance_clock`]) only
//! moves `now` = max(clock, greatest applied event time), at which windows, scores and quiet
//! timers are evaluated: a clock ahead of the events (the wall clock of a caught-up, idle
//! stream) fires timers but never makes an event late. Days before the watermark's day are
//! settled (folded into the cadence, then evicted once outside the long window at `now`).
//!
//! # Alerts
//!
//! Each account touched by a batch is evaluated once, at the batch's final `now`, right after
//! its last event of the batch (after the batch's last row when that event's redelivery was the
//! account's last row), or at the next `advance_clock` when `alerts_on_apply` is false:
//! recovered notices, quiet timer (re)scheduling, churn threshold crossing and complaint spikes.
//! `advance_clock` fires due quiet timers, and once per new day of `now` sweeps every account:
//! records the day's score in the history (for `trend_7d`) and re-checks churn and spikes, which
//! can move with time alone.
//!
//! An evaluation whose decisions the churn risk's bounds settle, with no alert in play, marks the
//! account settled for the day ([`Settled`]); until an event of a kind that could raise those
//! bounds arrives (or the day or the population model changes), the account's evaluation after
//! a batch is skipped, since it would raise and clear nothing. Skipping changes no alert and no
//! state (test `settling_by_bounds_changes_no_alert`).
//!
//! # What "same state" means
//!
//! The event-derived state ([`AccountView`]) does not depend on arrival order within the
//! lateness. Alert episode flags and the score history are observations at evaluation times and
//! so depend on when evaluations happen; for a given input sequence (and snapshot/restore in
//! between) everything, including alerts, is deterministic.

use arrow::array::{Array, AsArray, Float64Array, StringArray};
use arrow::datatypes::{DataType, Float64Type, TimeUnit, TimestampMillisecondType, UInt8Type};
use arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};

use super::account::{AccountInfo, AccountMeta};
use super::alert::{Alert, AlertKind};
use super::churn::{ChurnBreakdown, ChurnParts, Population, RecencyDecay, alert_thresholds, churn_risk};
use super::config::ScoringConfig;
use super::dedup::{DedupWindow, dedup_key};
use super::hash::event_id_hash;
use super::health::{Band, ComponentScore, combine, combined_score, component_values, engagement_ratio};
use super::intern::Interner;
use super::mem;
use super::state::{
    AccountState, DAY_MS, Ev, HotSums, Masks, Settled, ValueField, WindowSums, day_of, first_minute, value_field,
};
use super::table::{HealthBatchBuilder, HealthRow};
use super::timers::TimerQueue;
use crate::error::EngineError;
use crate::event::EventKind;
use crate::models::bgnbd::{BgNbdFit, Rfm};
use crate::models::{CustomerSummary, FitWindow, Fitted, fit_population};
use crate::schema;

/// Snapshot format version. 4: daily entry keys hold `kind ^ 14` (activity last within a day),
/// and the latest survey's time is stored after the daily entries, with a flag before them.
/// 3: event id hashes (de-duplication keys, survey tie-break) are XXH3-128; version 2 held
/// MurmurHash3 hashes, which would not match redeliveries.
const SNAPSHOT_VERSION: u32 = 4;

/// What one [`ScoringCore::apply_batch`] did.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ApplyOutcome {
    /// Events applied to state.
    pub applied: usize,
    /// Events dropped as duplicates of an event id already applied.
    pub duplicates: usize,
    /// Events older than the watermark: not applied.
    pub late: usize,
    /// Row indices of the late events in the batch, ascending.
    pub late_rows: Vec<usize>,
    /// Row indices of the duplicates in the batch, ascending.
    pub duplicate_rows: Vec<usize>,
    /// Accounts seen for the first time.
    pub new_accounts: usize,
    /// Alerts raised by the touched accounts (empty when `alerts_on_apply` is false).
    pub alerts: Vec<Alert>,
}

/// An account's health at a point in time, explained.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealthScore {
    pub account_id: String,
    /// The engine time it was computed at.
    pub as_of_ms: i64,
    /// 0-100.
    pub score: f64,
    pub band: Band,
    /// Present components with their normalised weights and contributions (sum = score − 50).
    pub components: Vec<ComponentScore>,
    /// Score now minus the recorded score 7 days before, when recorded.
    pub trend_7d: Option<f64>,
    /// Churn risk 0-1 (= `churn.risk`).
    pub churn_risk: f64,
    /// P(alive) from BG/NBD when fitted parameters and a transaction exist.
    pub p_alive: Option<f64>,
    pub churn: ChurnBreakdown,
}

impl HealthScore {
    /// Contribution of a component (`None` when it has no data).
    pub fn contribution(&self, c: super::health::Component) -> Option<f64> {
        self.components
            .iter()
            .find(|p| p.component == c)
            .map(|p| p.contribution)
    }

    /// Component score of a component (`None` when it has no data).
    pub fn component_score(&self, c: super::health::Component) -> Option<f64> {
        self.components.iter().find(|p| p.component == c).map(|p| p.score)
    }
}

/// The event-derived state of one account, evaluated at `now` (order independent).
#[derive(Debug, Clone, PartialEq)]
pub struct AccountView {
    pub account_id: String,
    pub first_seen_ms: Option<i64>,
    pub last_seen_ms: Option<i64>,
    pub last_interaction_ms: Option<i64>,
    /// Kinds seen, with their first and last event time (floored to the minute).
    pub kind_seen_ms: Vec<(EventKind, i64, i64)>,
    /// Window sums `[short, mid, long]`.
    pub windows: [WindowSums; 3],
    pub tickets_opened: u32,
    pub tickets_closed: u32,
    pub complaints: u32,
    pub complaints_resolved: u32,
    pub open_tickets: u32,
    pub open_complaints: u32,
    /// Latest scored survey `(ts, score)`.
    pub latest_survey: Option<(i64, f64)>,
    /// Distinct days with a transaction.
    pub transaction_days: u32,
    /// BG/NBD statistics in days.
    pub rfm: Option<Rfm>,
    /// Learned gap between interactions (days) and the number of gaps it was learned from.
    pub cadence_days: Option<f64>,
    pub cadence_gaps: u32,
    pub cancelled: bool,
    pub key: bool,
    pub meta: Option<AccountMeta>,
}

/// Sizes and counters of a core.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CoreStats {
    pub accounts: usize,
    pub applied_total: u64,
    pub duplicates_total: u64,
    pub late_total: u64,
    pub dedup_entries: usize,
    pub dedup_bytes: usize,
    /// `dedup_bytes / dedup_entries`.
    pub dedup_bytes_per_id: f64,
    /// Daily entries held over all accounts.
    pub day_entries: usize,
    /// Fixed per-account struct bytes (`size_of::<AccountState>()`).
    pub account_struct_bytes: usize,
    /// Account state bytes: structs + their heap (entries, dimension) + ids + interner table.
    pub state_bytes: usize,
    /// `state_bytes / accounts`.
    pub state_bytes_per_account: f64,
    pub timers: usize,
    pub clock_ms: Option<i64>,
    pub max_event_ms: Option<i64>,
    pub watermark_ms: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
struct Counters {
    applied: u64,
    duplicates: u64,
    late: u64,
}

/// Everything a snapshot holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct CoreState {
    version: u32,
    config: ScoringConfig,
    ids: Vec<Box<str>>,
    accounts: Vec<AccountState>,
    dedup: DedupWindow,
    timers: TimerQueue,
    dirty: Vec<u32>,
    clock_ms: i64,
    max_ts_ms: i64,
    swept_day: i32,
    population: Population,
    counters: Counters,
}

/// The scoring core. See the module docs.
#[derive(Debug, Clone)]
pub struct ScoringCore {
    st: CoreState,
    interner: Interner,
    masks: Masks,
    /// Per-row scratch of `apply_batch`, kept to avoid an allocation per batch.
    scratch: Vec<Prep>,
    /// Batch-local table of account indices (`apply_batch`'s last-row pass).
    seen: Vec<u32>,
    /// The recency rule's table for the population's τ (derived, not in snapshots).
    decay: RecencyDecay,
    /// Evaluations skip the walk over the entries when the bounds settle the decisions (off
    /// only in a test that checks the shortcut changes nothing).
    settle_by_bounds: bool,
}

/// What an evaluation derives from `now` and the config, computed once per batch or sweep.
#[derive(Debug, Clone, Copy)]
struct EvalAt {
    now: i64,
    now_day: i32,
    /// Day of the event-time watermark: days before it are settled.
    wm_day: i32,
    /// First day of the long window.
    horizon_day: i32,
    /// First minute of the complaint-spike window.
    spike_start_min: i64,
}

impl EvalAt {
    /// At `now`, with `max_ts` the greatest applied event time (`i64::MIN`: none yet).
    fn new(now: i64, max_ts: i64, cfg: &ScoringConfig) -> Self {
        let now_day = day_of(now);
        let lateness_days = cfg.lateness_days as i32;
        let wm_day = if max_ts == i64::MIN {
            now_day.saturating_sub(lateness_days)
        } else {
            day_of(max_ts.min(now)).saturating_sub(lateness_days)
        };
        let (wm_day, horizon_day) = eviction_days(now_day, wm_day, lateness_days, cfg.windows.long as i32);
        EvalAt {
            now,
            now_day,
            wm_day,
            horizon_day,
            spike_start_min: first_minute(now_day.saturating_sub(cfg.complaint_spike.window_days as i32 - 1)),
        }
    }
}

/// The days that bound eviction: the watermark's day `wm_day` (days before it are settled)
/// and the first day kept, which is the first day of the long window at `now` (on the later of
/// `clock_day` and the watermark's event day) but never after `wm_day`: a day that can still
/// receive events stays until it is settled, also while the clock runs ahead of the events.
#[inline]
fn eviction_days(clock_day: i32, wm_day: i32, lateness_days: i32, long: i32) -> (i32, i32) {
    let now_day = clock_day.max(wm_day.saturating_add(lateness_days));
    (wm_day, now_day.saturating_sub(long - 1).min(wm_day))
}

/// Kinds whose events cannot raise what a settled evaluation bounded (see [`Settled`]), unless
/// configured as transactions: the churn risk's base (the recency rule only moves forward with
/// the last interaction or the last time seen; BG/NBD reads transactions; cancellation reads
/// signups, purchases and renewals), its hazards (complaints, surveys, downgrades) and the
/// complaint count. Activity, tickets, meetings and referrals.
const SETTLE_KEEPING: u16 = 1 << EventKind::Activity as u16
    | 1 << EventKind::TicketOpened as u16
    | 1 << EventKind::TicketClosed as u16
    | 1 << EventKind::Meeting as u16
    | 1 << EventKind::Referral as u16;

/// How many rows apart the lookup stages of `apply_batch`'s loop run (the de-duplication insert
/// runs twice as far behind its prefetch).
const LOOKUP_AHEAD: usize = 8;
/// How many accounts ahead the daily sweep prefetches an account's cold lines and heap entries.
const SWEEP_AHEAD: usize = 4;
/// How many rows ahead `apply_batch`'s update stage prefetches a state.
const PREFETCH_AHEAD: usize = 8;
/// How many rows the update stage of `apply_batch` runs behind the de-duplication insert.
const UPDATE_LAG: usize = 64;
/// Cache lines of an account's state that most updates and evaluations read: the ones up to the
/// end of the inline entries (the cold ones after are prefetched as needed:
/// `AccountState::prefetch_cold`).
const HOT_LINES: usize = std::mem::offset_of!(AccountState, survey_ts_ms) / 64;
const _: () = assert!(
    std::mem::offset_of!(AccountState, entries) + std::mem::size_of::<super::entries::Entries>() == HOT_LINES * 64
);

/// Pushes a new account's state. When the vector is full it moves to an allocation twice the
/// size, backed by huge pages where the host allows (advised before the pages are first
/// written; a `realloc` could move huge pages to an address where they must be split).
fn push_account(accounts: &mut Vec<AccountState>, st: AccountState) {
    if accounts.len() == accounts.capacity() {
        let mut v = Vec::with_capacity((accounts.capacity() * 2).max(64));
        mem::huge_pages(v.spare_capacity_mut());
        v.append(accounts);
        *accounts = v;
    }
    accounts.push(st);
}

/// Sets `last_pos` on each row to the position of the last row in `rows` with the same account
/// hash. Before the lookup (no account index yet): a row is its account's last non-duplicate
/// row when `last_pos` is its own position and it is not a duplicate; `apply_batch` checks the
/// other rows after its loop (see `Prep::last_pos`).
fn mark_last_rows(rows: &mut [Prep], seen: &mut Vec<u32>) {
    let slots = (2 * rows.len()).next_power_of_two().max(16);
    seen.clear();
    seen.resize(slots, u32::MAX);
    let shift = 64 - slots.trailing_zeros();
    for pos in (0..rows.len()).rev() {
        let h = rows[pos].acct_hash;
        let mut i = (h.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> shift) as usize;
        loop {
            let v = seen[i];
            if v == u32::MAX {
                seen[i] = pos as u32;
                rows[pos].last_pos = pos as u32;
                break;
            }
            if rows[v as usize].acct_hash == h {
                rows[pos].last_pos = v;
                break;
            }
            i = (i + 1) & (slots - 1);
        }
    }
}

/// After `apply_batch`'s loop (rows marked by [`mark_last_rows`], indices and duplicates known):
/// the accounts with a non-duplicate row whose hash group's last row is a duplicate or another
/// account's (a hash collision). None of their rows was evaluated: a row evaluates when it is its
/// group's last, and then no later row of its account (same hash) exists. Sorted, each once.
fn unevaluated_accounts(rows: &[Prep]) -> Vec<u32> {
    let mut pending = Vec::new();
    for (pos, p) in rows.iter().enumerate() {
        if p.dup || p.last_pos as usize == pos {
            continue;
        }
        let q = &rows[p.last_pos as usize];
        if q.dup || q.idx != p.idx {
            pending.push(p.idx);
        }
    }
    pending.sort_unstable();
    pending.dedup();
    pending
}

/// One non-late row of a batch between the passes of `apply_batch`.
#[derive(Debug, Clone, Copy)]
struct Prep {
    /// The event id's XXH3-128; from stage (c) of the loop on, the de-duplication key
    /// (`dedup_key`: the account index replaces the top 32 bits, the low 96 are kept).
    key: u128,
    acct_hash: u64,
    ts_ms: i64,
    /// The kind's value field (see `value_field`), when `has_value`.
    value: f64,
    row: u32,
    idx: u32,
    /// Position in the rows of the last row with the same account hash. When it is this row's
    /// own position (and the row is not a duplicate), the row is its account's last of the
    /// batch; when that last row turns out to be a duplicate or another account's (a hash
    /// collision), the account is evaluated after the loop instead.
    last_pos: u32,
    /// Day of the event's time.
    day: i32,
    /// Day of the event-time watermark as of this row (the greatest event time so far minus
    /// the lateness): with the clock's day, sets the days of eviction.
    wm_day: i32,
    kind: EventKind,
    has_value: bool,
    dup: bool,
}

/// The update stage reads a row's fields from its `Prep`, not from the batch's columns: one
/// line per row, read in order.
const _: () = assert!(std::mem::size_of::<Prep>() <= 64);

impl PartialEq for ScoringCore {
    /// Equal snapshot contents (the interner is derived from the ids).
    fn eq(&self, other: &Self) -> bool {
        self.st == other.st
    }
}

/// Typed columns of an event batch.
struct Columns<'a> {
    event_id: &'a StringArray,
    account_id: &'a StringArray,
    ts: &'a arrow::array::TimestampMillisecondArray,
    kind_keys: &'a arrow::array::UInt8Array,
    kind_map: [Option<EventKind>; 256],
    amount: &'a Float64Array,
    cost: &'a Float64Array,
    score: &'a Float64Array,
}

fn columns(batch: &RecordBatch) -> Result<Columns<'_>, EngineError> {
    let want = schema::event_schema();
    if batch.num_columns() < schema::SCORE + 1 {
        return Err(EngineError::Schema(format!("{} columns", batch.num_columns())));
    }
    for i in [
        schema::EVENT_ID,
        schema::ACCOUNT_ID,
        schema::TS,
        schema::KIND,
        schema::AMOUNT,
        schema::COST,
        schema::SCORE,
    ] {
        let (f, w) = (batch.schema_ref().field(i).clone(), want.field(i).clone());
        let type_ok = match w.data_type() {
            DataType::Timestamp(TimeUnit::Millisecond, _) => {
                matches!(f.data_type(), DataType::Timestamp(TimeUnit::Millisecond, _))
            }
            t => f.data_type() == t,
        };
        if f.name() != w.name() || !type_ok {
            return Err(EngineError::Schema(format!(
                "column {i} is `{}`: {}, expected `{}`: {}",
                f.name(),
                f.data_type(),
                w.name(),
                w.data_type()
            )));
        }
    }
    let c = |i: usize| batch.column(i);
    for i in [schema::EVENT_ID, schema::ACCOUNT_ID, schema::TS, schema::KIND] {
        if c(i).null_count() > 0 {
            return Err(EngineError::Schema(format!("column {i} has nulls")));
        }
    }
    let kind = c(schema::KIND).as_dictionary::<UInt8Type>();
    let names = kind
        .values()
        .as_string_opt::<i32>()
        .ok_or_else(|| EngineError::Schema("kind dictionary values are not Utf8".into()))?;
    let mut kind_map = [None; 256];
    for (i, slot) in kind_map.iter_mut().enumerate().take(names.len()) {
        if names.is_valid(i) {
            *slot = EventKind::parse(names.value(i));
        }
    }
    let keys = kind.keys();
    if let Some(bad) = keys.values().iter().find(|&&k| kind_map[k as usize].is_none()) {
        let name = if (*bad as usize) < names.len() {
            names.value(*bad as usize).to_string()
        } else {
            format!("key {bad} out of the dictionary")
        };
        return Err(EngineError::Schema(format!("unknown event kind `{name}`")));
    }
    Ok(Columns {
        event_id: c(schema::EVENT_ID).as_string::<i32>(),
        account_id: c(schema::ACCOUNT_ID).as_string::<i32>(),
        ts: c(schema::TS).as_primitive::<TimestampMillisecondType>(),
        kind_keys: keys,
        kind_map,
        amount: c(schema::AMOUNT).as_primitive::<Float64Type>(),
        cost: c(schema::COST).as_primitive::<Float64Type>(),
        score: c(schema::SCORE).as_primitive::<Float64Type>(),
    })
}

/// Reads one field in each hot cache line of an account's state, so that a loop of independent
/// touches overlaps the cache and TLB misses that the dependent work after it would otherwise
/// take one by one.
#[inline]
fn touch(st: &AccountState) -> i64 {
    st.first_seen_ms ^ st.kind_last_min[0] as i64 ^ st.oldest_day as i64 ^ st.entries.touch() as i64
}

#[inline]
fn opt(a: &Float64Array, row: usize) -> Option<f64> {
    // The null buffer directly: `Array::is_valid` is an out-of-line call here.
    a.nulls().is_none_or(|n| n.is_valid(row)).then(|| a.value(row))
}

impl ScoringCore {
    /// A core with no state. Fails when the configuration is invalid.
    pub fn new(config: ScoringConfig) -> Result<Self, EngineError> {
        config.validate()?;
        let masks = Masks {
            transaction: config.transaction_mask(),
            interaction: config.interaction_mask(),
        };
        let population = Population::unfitted(&config);
        Ok(ScoringCore {
            st: CoreState {
                version: SNAPSHOT_VERSION,
                config,
                ids: Vec::new(),
                accounts: Vec::new(),
                dedup: DedupWindow::default(),
                timers: TimerQueue::default(),
                dirty: Vec::new(),
                clock_ms: i64::MIN,
                max_ts_ms: i64::MIN,
                swept_day: i32::MIN,
                population,
                counters: Counters::default(),
            },
            interner: Interner::default(),
            masks,
            scratch: Vec::new(),
            seen: Vec::new(),
            decay: RecencyDecay::new(population.typical_gap_days),
            settle_by_bounds: true,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &ScoringConfig {
        &self.st.config
    }

    /// Number of accounts.
    pub fn len(&self) -> usize {
        self.st.ids.len()
    }

    /// True when no account is known.
    pub fn is_empty(&self) -> bool {
        self.st.ids.is_empty()
    }

    /// Account ids, in index order.
    pub fn account_ids(&self) -> impl Iterator<Item = &str> {
        self.st.ids.iter().map(|s| &**s)
    }

    /// The engine's `now`: max(clock, greatest applied event time); `None` before either.
    pub fn now_ms(&self) -> Option<i64> {
        let n = self.st.clock_ms.max(self.st.max_ts_ms);
        (n != i64::MIN).then_some(n)
    }

    fn now_or_zero(&self) -> i64 {
        self.now_ms().unwrap_or(0)
    }

    fn lateness_ms(&self) -> i64 {
        self.st.config.lateness_days as i64 * DAY_MS
    }

    /// The event-time watermark: the greatest applied event time minus the lateness; events
    /// older than it are late. The clock never moves it.
    pub fn watermark_ms(&self) -> Option<i64> {
        (self.st.max_ts_ms != i64::MIN).then(|| self.st.max_ts_ms.saturating_sub(self.lateness_ms()))
    }

    /// Population BG/NBD parameters and typical inter-purchase time in use.
    pub fn population(&self) -> Population {
        self.st.population
    }

    fn index(&self, account_id: &str) -> Option<u32> {
        self.interner
            .get(self.interner.hash(account_id), account_id, &self.st.ids)
    }

    fn intern(&mut self, account_id: &str) -> (u32, bool) {
        let h = self.interner.hash(account_id);
        let (i, new) = self.interner.intern(h, account_id, &mut self.st.ids);
        if new {
            push_account(&mut self.st.accounts, AccountState::with_id(account_id));
        }
        (i, new)
    }

    fn mark_dirty(&mut self, idx: u32) {
        let s = &mut self.st.accounts[idx as usize];
        if !s.dirty {
            s.dirty = true;
            self.st.dirty.push(idx);
        }
    }

    /// Applies a batch of contract-v1 events ([`crate::schema::event_schema`]; extra trailing
    /// columns are ignored). Fails without changing anything when the batch does not follow the
    /// schema or names an unknown kind.
    ///
    /// Rows are processed in arrival order; a row is late when its time is older than the
    /// watermark as of that row (the greatest time of the applied rows before it, in this batch
    /// or earlier, minus the lateness; the clock plays no part). The work is two passes over the batch: lateness and hashes, then one
    /// software-pipelined loop whose stages (interning, de-duplication, state update) run a fixed
    /// number of rows apart, so that the cache misses of independent rows overlap.
    pub fn apply_batch(&mut self, batch: &RecordBatch) -> Result<ApplyOutcome, EngineError> {
        let cols = columns(batch)?;
        let mut out = ApplyOutcome::default();
        let lateness = self.lateness_ms();
        let mut max_ts = self.st.max_ts_ms;
        let mut watermark = max_ts.saturating_sub(lateness);
        let mut wm_day = day_of(watermark);
        let ts_values = cols.ts.values();
        let keys = cols.kind_keys.values();
        let mut rows = std::mem::take(&mut self.scratch);
        rows.clear();
        rows.reserve(batch.num_rows());
        // Pass 1: lateness, days, hashes and the fields the update reads, reading the batch's
        // columns sequentially.
        for (row, &ts) in ts_values.iter().enumerate() {
            if ts < watermark {
                out.late += 1;
                out.late_rows.push(row);
                continue;
            }
            if ts > max_ts {
                max_ts = ts;
                watermark = ts.saturating_sub(lateness);
                wm_day = day_of(watermark);
            }
            let kind = cols.kind_map[keys[row] as usize].expect("kinds checked in columns()");
            let value = match value_field(kind) {
                ValueField::None => None,
                ValueField::Amount => opt(cols.amount, row),
                ValueField::Cost => opt(cols.cost, row),
                ValueField::Score => opt(cols.score, row),
            };
            rows.push(Prep {
                key: event_id_hash(cols.event_id.value(row)),
                acct_hash: self.interner.hash(cols.account_id.value(row)),
                ts_ms: ts,
                value: value.unwrap_or(0.0),
                row: row as u32,
                idx: 0,
                last_pos: u32::MAX,
                day: day_of(ts),
                wm_day,
                kind,
                has_value: value.is_some(),
                dup: false,
            });
        }
        self.st.max_ts_ms = max_ts;
        let now = self.st.clock_ms.max(max_ts);
        let clock_day = day_of(self.st.clock_ms);
        let inline_eval = self.st.config.alerts_on_apply;
        if inline_eval {
            mark_last_rows(&mut rows, &mut self.seen);
        }
        // Pass 2: account indices, de-duplication and the state updates, software-pipelined over
        // the rows; the loads of a stage were prefetched by an earlier stage: (a) prefetch the
        // row's interner slot; (b) `LOOKUP_AHEAD` rows later, read the candidate index from it
        // and prefetch the candidate's first state line; (c) check the candidate's id in that
        // line (interning when it differs) and prefetch the row's de-duplication slot; (d) two
        // steps later, insert the de-duplication key; (e) `UPDATE_LAG` rows after (d), apply the
        // row to its state, whose hot lines were prefetched `PREFETCH_AHEAD` rows before (the
        // first, read by (c) not long before, is still in the cache), and the cold lines and heap
        // entries the row needs half as many rows before (they depend on what the hot lines
        // hold). Stages (c), (d) and (e)
        // each run in row order, as plain loops would. With `alerts_on_apply`, an account is
        // evaluated right after its last event of the batch, at the batch's final `now` (while
        // its state is in cache).
        let (masks, long) = (self.masks, self.st.config.windows.long as i32);
        let lateness_days = self.st.config.lateness_days as i32;
        let keeps_settled = if self.settle_by_bounds {
            SETTLE_KEEPING & !masks.transaction
        } else {
            0
        };
        let quiet = self.st.config.quiet;
        let batch_at = EvalAt::new(now, max_ts, &self.st.config);
        let n = rows.len();
        const UPDATE_AT: usize = 4 * LOOKUP_AHEAD + UPDATE_LAG;
        let mut unchecked_last = false;
        // The position `i + plus - minus` when it is a row; while ramping (the first and last
        // `UPDATE_AT` steps) some stages have no row, in between every stage has one and the
        // checks are compiled out.
        macro_rules! row_at {
            ($ramp:expr, $i:expr, $plus:expr, $minus:expr) => {
                if $ramp {
                    ($i + $plus).checked_sub($minus).filter(|&j| j < n)
                } else {
                    Some($i + $plus - $minus)
                }
            };
        }
        macro_rules! step {
            ($ramp:expr, $i:expr) => {{
                let i: usize = $i;
                if let Some(j) = row_at!($ramp, i, 0, 0) {
                    self.interner.prefetch(rows[j].acct_hash);
                }
                if let Some(j) = row_at!($ramp, i, 0, LOOKUP_AHEAD) {
                    let p = &mut rows[j];
                    p.idx = self.interner.candidate(p.acct_hash).unwrap_or(u32::MAX);
                    if let Some(st) = self.st.accounts.get(p.idx as usize) {
                        mem::prefetch(st, 1);
                    }
                }
                if let Some(j) = row_at!($ramp, i, 0, 2 * LOOKUP_AHEAD) {
                    let p = &mut rows[j];
                    let id = cols.account_id.value(p.row as usize);
                    let same = self.st.accounts.get(p.idx as usize).is_some_and(|st| {
                        st.inline_id_is(id)
                            .unwrap_or_else(|| *self.st.ids[p.idx as usize] == *id)
                    });
                    if !same {
                        let (i, new) = self.interner.intern(p.acct_hash, id, &mut self.st.ids);
                        if new {
                            push_account(&mut self.st.accounts, AccountState::with_id(id));
                            out.new_accounts += 1;
                        }
                        p.idx = i;
                    }
                    p.key = dedup_key(p.idx, p.key);
                    self.st.dedup.prefetch(p.day, p.key);
                }
                if let Some(j) = row_at!($ramp, i, 0, 4 * LOOKUP_AHEAD) {
                    let p = &mut rows[j];
                    p.dup = !self.st.dedup.insert(p.day, p.key, p.wm_day);
                    if p.dup {
                        out.duplicates += 1;
                        out.duplicate_rows.push(p.row as usize);
                    }
                }
                if let Some(j) = row_at!($ramp, i, PREFETCH_AHEAD, UPDATE_AT)
                    && !rows[j].dup
                {
                    mem::prefetch(&self.st.accounts[rows[j].idx as usize], HOT_LINES);
                }
                if let Some(j) = row_at!($ramp, i, PREFETCH_AHEAD / 2, UPDATE_AT)
                    && !rows[j].dup
                {
                    let p = &rows[j];
                    let (_, horizon_day) = eviction_days(clock_day, p.wm_day, lateness_days, long);
                    self.st.accounts[p.idx as usize].prefetch_cold(p.kind, p.ts_ms, p.day, horizon_day);
                }
                if let Some(pos) = row_at!($ramp, i, 0, UPDATE_AT)
                    && !rows[pos].dup
                {
                    let p = rows[pos];
                    let ev = Ev {
                        ts_ms: p.ts_ms,
                        day: p.day,
                        kind: p.kind,
                        value: p.has_value.then_some(p.value),
                        // The low 64 bits of the id hash (kept in the key).
                        tie: p.key as u64,
                    };
                    let st = &mut self.st.accounts[p.idx as usize];
                    let (wm_day, horizon_day) = eviction_days(clock_day, p.wm_day, lateness_days, long);
                    st.maintain_if_due(wm_day, horizon_day, masks, &quiet);
                    // The recency rule's day moves back when the first interaction is older than
                    // the last time seen: that event does not keep a settled evaluation either.
                    if keeps_settled & (1 << p.kind as u16) == 0 || st.last_interaction_ms == i64::MIN {
                        st.settled = Settled::NONE;
                    }
                    st.apply(&ev, masks);
                    out.applied += 1;
                    if inline_eval {
                        if p.last_pos as usize == pos {
                            if st.settled.0 == batch_at.now_day && !st.dirty && !st.key {
                                // Still settled: the evaluation would change nothing but eviction.
                                st.maintain_if_due(batch_at.wm_day, batch_at.horizon_day, masks, &quiet);
                            } else {
                                st.dirty = false;
                                self.evaluate_account(p.idx, &batch_at, &mut out.alerts);
                            }
                        } else {
                            unchecked_last = true;
                        }
                    } else if !st.dirty {
                        st.dirty = true;
                        self.st.dirty.push(p.idx);
                    }
                }
            }};
        }
        for i in 0..UPDATE_AT {
            step!(true, i);
        }
        for i in UPDATE_AT..n {
            step!(false, i);
        }
        for i in n.max(UPDATE_AT)..n + UPDATE_AT {
            step!(true, i);
        }
        // Rows whose hash group's last row was a duplicate or another account's: their
        // accounts were not evaluated in the loop (each account once, after all its rows).
        if inline_eval && unchecked_last {
            for idx in unevaluated_accounts(&rows) {
                self.st.accounts[idx as usize].dirty = false;
                self.evaluate_account(idx, &batch_at, &mut out.alerts);
            }
        }
        self.scratch = rows;
        self.st.counters.applied += out.applied as u64;
        self.st.counters.duplicates += out.duplicates as u64;
        self.st.counters.late += out.late as u64;
        if watermark != i64::MIN {
            self.st.dedup.drop_before(day_of(watermark));
        }
        if inline_eval {
            // Accounts made dirty before this batch (e.g. by an upsert) and not touched by it.
            let more = self.evaluate_dirty();
            out.alerts.extend(more);
        }
        Ok(out)
    }

    /// Evaluates the accounts touched since the last evaluation.
    fn evaluate_dirty(&mut self) -> Vec<Alert> {
        let mut alerts = Vec::new();
        if self.st.dirty.is_empty() {
            return alerts;
        }
        let now = self.now_or_zero();
        let dirty = std::mem::take(&mut self.st.dirty);
        // Independent reads first (overlapping misses), then the evaluation.
        let mut sink = 0i64;
        for &idx in &dirty {
            sink ^= touch(&self.st.accounts[idx as usize]);
        }
        std::hint::black_box(sink);
        let at = EvalAt::new(now, self.st.max_ts_ms, &self.st.config);
        for &idx in &dirty {
            let st = &mut self.st.accounts[idx as usize];
            if !st.dirty {
                continue; // evaluated since (inline in apply_batch)
            }
            st.dirty = false;
            self.evaluate_account(idx, &at, &mut alerts);
        }
        let mut dirty = dirty;
        dirty.clear();
        self.st.dirty = dirty;
        alerts
    }

    /// Maintenance and every alert check of one account at `at.now`.
    fn evaluate_account(&mut self, idx: u32, at: &EvalAt, alerts: &mut Vec<Alert>) {
        let cfg = &self.st.config;
        let now = at.now;
        // The id is read only when an alert is raised: the id list is another random place.
        let ids = &self.st.ids;
        let id = || &*ids[idx as usize];
        let st = &mut self.st.accounts[idx as usize];
        st.maintain_if_due(at.wm_day, at.horizon_day, self.masks, &cfg.quiet);
        // Recovered: an interaction after the quiet episode started.
        if st.quiet_since_ms != i64::MIN && st.last_interaction_ms > st.quiet_since_ms {
            let id = id();
            let silent = (st.last_interaction_ms - st.quiet_since_ms) as f64 / DAY_MS as f64;
            let (gap, _) = st.cadence(self.masks, &cfg.quiet);
            let thr = gap.map_or(f64::NAN, |g| g * cfg.quiet.k);
            alerts.push(Alert::new(
                id,
                AlertKind::Recovered,
                st.last_interaction_ms,
                st.quiet_since_ms,
                silent,
                thr,
                format!("{id} interacted again after {silent:.1} days of silence"),
            ));
            st.quiet_since_ms = i64::MIN;
        }
        // Quiet timer: schedule when the deadline moved earlier than the scheduled one.
        if st.key && st.quiet_since_ms == i64::MIN && st.last_interaction_ms != i64::MIN {
            let (gap, _) = st.cadence(self.masks, &cfg.quiet);
            if let Some(g) = gap {
                let deadline = st
                    .last_interaction_ms
                    .saturating_add((cfg.quiet.k * g * DAY_MS as f64).round() as i64);
                if deadline < st.timer_at {
                    st.timer_at = deadline;
                    self.st.timers.push(deadline, idx);
                }
            }
        }
        // Churn threshold crossing and complaint spike. The engagement hazard and the spike count
        // need a walk over the daily entries; it is skipped when the decisions cannot depend on
        // it: the risk's bounds over every engagement hazard are on one side of the threshold in
        // play, and no complaint falls in the spike window (then the count is 0).
        let spike = &cfg.complaint_spike;
        let now_day = at.now_day;
        // The churn decision in play: the risk's parts and the thresholds `(raise, clear)`; none
        // without a threshold or for a cancelled account (then no churn-risk alert to decide,
        // and an episode in course ends).
        // A cancelled account is lost, not at risk: the cancellation is the news, and churn-risk
        // alerts are for the accounts still to be saved.
        let in_play = match alert_thresholds(&self.st.population, cfg).filter(|_| !st.cancelled()) {
            Some((raise, clear)) => Some((
                ChurnParts::of_day(st, now_day, &self.st.population, &self.decay, cfg),
                raise,
                clear,
            )),
            None => {
                st.churn_alerted = false;
                None
            }
        };
        let engagement_matters = in_play.as_ref().is_some_and(|(parts, raise, clear)| {
            !self.settle_by_bounds
                || if st.churn_alerted {
                    parts.risk_with(0.0) < *clear
                } else {
                    parts.risk_with(1.0) >= *raise
                }
        });
        let complaints_in_window = st.kind_last_min_at_least(EventKind::Complaint, at.spike_start_min);
        let h = if engagement_matters || complaints_in_window {
            st.hot_sums(now_day, cfg.windows.short, cfg.windows.long, spike.window_days)
        } else {
            HotSums::default()
        };
        // When the bounds settled it (or there is no threshold), neither branch below is taken:
        // no churn to compute.
        let churn = in_play.filter(|_| engagement_matters).map(|(parts, raise, clear)| {
            let q = engagement_ratio(st, now_day, h.activity_short, h.activity_long, cfg);
            (parts.with_engagement(q), raise, clear)
        });
        if let Some((churn, raise, _)) = churn.filter(|(ch, raise, _)| !st.churn_alerted && ch.risk >= *raise) {
            let id = id();
            st.churn_alerted = true;
            let start = now_day as i64 * DAY_MS;
            alerts.push(Alert::new(
                id,
                AlertKind::ChurnRisk,
                now,
                start,
                churn.risk,
                raise,
                format!(
                    "{id} churn risk {:.2} reached the threshold {:.2} (base {:.2}, rule {:?})",
                    churn.risk, raise, churn.base, churn.rule
                ),
            ));
        } else if st.churn_alerted && churn.is_some_and(|(ch, _, clear)| ch.risk < clear) {
            st.churn_alerted = false;
        }
        if h.complaints_spike >= spike.count {
            if !st.spike_active {
                let id = id();
                st.spike_active = true;
                let start = h.first_spike_day.unwrap_or(now_day) as i64 * DAY_MS;
                alerts.push(Alert::new(
                    id,
                    AlertKind::ComplaintSpike,
                    now,
                    start,
                    h.complaints_spike as f64,
                    spike.count as f64,
                    format!(
                        "{id} had {} complaints within {} days (threshold {})",
                        h.complaints_spike, spike.window_days, spike.count
                    ),
                ));
            }
        } else if st.spike_active {
            st.spike_active = false;
        }
        let settled = !engagement_matters
            && !complaints_in_window
            && !st.key
            && st.quiet_since_ms == i64::MIN
            && !st.churn_alerted
            && !st.spike_active;
        st.settled = if settled { Settled(now_day) } else { Settled::NONE };
    }

    /// Advances the engine clock to `now_ms` (event-time watermark in replay, wall clock when
    /// idle; a smaller value than before is ignored) and returns the alerts due: first the
    /// evaluation of accounts touched since the last evaluation, then due quiet timers in
    /// deadline order, then, on a new day, the daily sweep (score history, churn, spikes).
    pub fn advance_clock(&mut self, now_ms: i64) -> Vec<Alert> {
        self.st.clock_ms = self.st.clock_ms.max(now_ms);
        let now = self.now_or_zero();
        let mut alerts = self.evaluate_dirty();
        let cfg = &self.st.config;
        while let Some((at, idx)) = self.st.timers.pop_due(now) {
            let st = &mut self.st.accounts[idx as usize];
            if st.timer_at != at {
                continue;
            }
            st.timer_at = i64::MAX;
            if !st.key || st.quiet_since_ms != i64::MIN || st.last_interaction_ms == i64::MIN {
                continue;
            }
            let Some(gap) = st.cadence(self.masks, &cfg.quiet).0 else {
                continue;
            };
            let threshold = cfg.quiet.k * gap;
            let deadline = st
                .last_interaction_ms
                .saturating_add((threshold * DAY_MS as f64).round() as i64);
            if deadline <= now {
                let id = &self.st.ids[idx as usize];
                st.quiet_since_ms = st.last_interaction_ms;
                let silent = (deadline - st.last_interaction_ms) as f64 / DAY_MS as f64;
                alerts.push(Alert::new(
                    id,
                    AlertKind::Quiet,
                    deadline,
                    st.last_interaction_ms,
                    silent,
                    threshold,
                    format!(
                        "key account {id} has been silent for {silent:.1} days ({} × its usual gap of {gap:.1} days)",
                        cfg.quiet.k
                    ),
                ));
            } else {
                st.timer_at = deadline;
                self.st.timers.push(deadline, idx);
            }
        }
        let today = day_of(now);
        if today > self.st.swept_day && self.now_ms().is_some() {
            self.st.swept_day = today;
            let at = EvalAt::new(now, self.st.max_ts_ms, &self.st.config);
            let medium_start_min = first_minute(today.saturating_sub(self.st.config.windows.mid as i32 - 1));
            for idx in 0..self.st.accounts.len() as u32 {
                if let Some(ahead) = self.st.accounts.get(idx as usize + SWEEP_AHEAD) {
                    ahead.prefetch_for_sweep(medium_start_min);
                }
                self.evaluate_account(idx, &at, &mut alerts);
                let score = self.score_now(idx as usize, now);
                self.st.accounts[idx as usize].record_history(today, score);
            }
        }
        alerts
    }

    /// The score of [`ScoringCore::compute`] alone: no parts list, no churn.
    fn score_now(&self, idx: usize, now: i64) -> f64 {
        let cfg = &self.st.config;
        let st = &self.st.accounts[idx];
        let sums = st.score_sums(day_of(now), cfg.windows.as_array());
        let (cadence, _) = st.cadence(self.masks, &cfg.quiet);
        combined_score(&component_values(st, now, &sums, cadence, cfg), cfg)
    }

    /// Score, components, churn and window sums of account `idx` at `now`.
    fn compute(
        &self,
        idx: usize,
        now: i64,
    ) -> (f64, Vec<ComponentScore>, ChurnBreakdown, [WindowSums; 3], Option<f64>) {
        let cfg = &self.st.config;
        let st = &self.st.accounts[idx];
        let now_day = day_of(now);
        let sums = st.window_sums(now_day, cfg.windows.as_array());
        let (cadence, _) = st.cadence(self.masks, &cfg.quiet);
        let values = component_values(st, now, &sums, cadence, cfg);
        let (score, parts) = combine(&values, cfg);
        let q = engagement_ratio(
            st,
            now_day,
            sums[0].count(EventKind::Activity),
            sums[2].count(EventKind::Activity),
            cfg,
        );
        let churn = churn_risk(st, now, q, &self.st.population, &self.decay, cfg);
        (score, parts, churn, sums, cadence)
    }

    fn trend(&self, idx: usize, now: i64, score: f64) -> Option<f64> {
        let h = self.st.accounts[idx].history(day_of(now) - 7)?;
        Some(score - h)
    }

    /// The health of an account now (reflecting every applied event), or `None` if unknown.
    pub fn score(&self, account_id: &str) -> Option<HealthScore> {
        let idx = self.index(account_id)? as usize;
        let now = self.now_or_zero();
        let (score, components, churn, _, _) = self.compute(idx, now);
        Some(HealthScore {
            account_id: account_id.to_string(),
            as_of_ms: now,
            score,
            band: Band::of(score, &self.st.config),
            components,
            trend_7d: self.trend(idx, now, score),
            churn_risk: churn.risk,
            p_alive: churn.p_alive,
            churn,
        })
    }

    /// The event-derived state of an account now.
    pub fn account_view(&self, account_id: &str) -> Option<AccountView> {
        let idx = self.index(account_id)? as usize;
        let st = &self.st.accounts[idx];
        let cfg = &self.st.config;
        let now = self.now_or_zero();
        let some = |v: i64, none: i64| (v != none).then_some(v);
        let (cadence_days, cadence_gaps) = st.cadence(self.masks, &cfg.quiet);
        Some(AccountView {
            account_id: account_id.to_string(),
            first_seen_ms: some(st.first_seen_ms, i64::MAX),
            last_seen_ms: some(st.last_seen_ms, i64::MIN),
            last_interaction_ms: some(st.last_interaction_ms, i64::MIN),
            kind_seen_ms: EventKind::ALL
                .iter()
                .filter_map(|&k| st.kind_seen_ms(k).map(|(a, b)| (k, a, b)))
                .collect(),
            windows: st.window_sums(day_of(now), cfg.windows.as_array()),
            tickets_opened: st.tickets_opened,
            tickets_closed: st.tickets_closed,
            complaints: st.complaints,
            complaints_resolved: st.complaints_resolved,
            open_tickets: st.open_tickets(),
            open_complaints: st.open_complaints(),
            latest_survey: st.latest_survey(),
            transaction_days: st.tx_days,
            rfm: st.rfm(day_of(now)),
            cadence_days,
            cadence_gaps,
            cancelled: st.cancelled(),
            key: st.key,
            meta: st.meta.as_deref().cloned(),
        })
    }

    /// True when the account is known (has events or a dimension record).
    pub fn contains(&self, account_id: &str) -> bool {
        self.index(account_id).is_some()
    }

    /// True when the account is known but has no dimension record yet.
    pub fn lacks_dimension(&self, account_id: &str) -> bool {
        self.index(account_id)
            .is_some_and(|i| self.st.accounts[i as usize].meta.is_none())
    }

    /// True when the account is a key account (tier key or ARR over the threshold).
    pub fn is_key(&self, account_id: &str) -> bool {
        self.index(account_id).is_some_and(|i| self.st.accounts[i as usize].key)
    }

    /// Greatest applied event time (`None` before any).
    pub fn max_event_ms(&self) -> Option<i64> {
        (self.st.max_ts_ms != i64::MIN).then_some(self.st.max_ts_ms)
    }

    /// The account's status (active, churned, won back), or `None` if unknown.
    pub fn status(&self, account_id: &str) -> Option<super::AccountStatus> {
        let idx = self.index(account_id)? as usize;
        Some(self.st.accounts[idx].status())
    }

    /// True when the account is in a quiet episode.
    pub fn is_quiet(&self, account_id: &str) -> Option<bool> {
        let idx = self.index(account_id)? as usize;
        Some(self.st.accounts[idx].quiet_since_ms != i64::MIN)
    }

    /// The health table: one row per account ([`super::health_schema`]), in index order.
    pub fn health_batch(&self) -> RecordBatch {
        self.health_batch_where(|_| true)
    }

    /// The health table restricted to accounts whose id passes `keep`.
    pub fn health_batch_where(&self, keep: impl Fn(&str) -> bool) -> RecordBatch {
        let now = self.now_or_zero();
        let cfg = &self.st.config;
        let mut b = HealthBatchBuilder::with_capacity(self.st.ids.len());
        for (idx, id) in self.st.ids.iter().enumerate() {
            if !keep(id) {
                continue;
            }
            let st = &self.st.accounts[idx];
            let (score, parts, churn, sums, cadence) = self.compute(idx, now);
            let mut contributions = [None; 7];
            for p in &parts {
                contributions[p.component as usize] = Some(p.contribution);
            }
            let meta = st.meta.as_deref();
            let rfm = st.rfm(day_of(now));
            b.append(&HealthRow {
                account_id: id,
                key: st.key,
                arr: meta.and_then(|m| m.arr),
                owner: meta.and_then(|m| m.owner.as_deref()),
                segment: meta.and_then(|m| m.segment.as_deref()),
                score,
                band: Band::of(score, cfg).as_str(),
                churn_risk: churn.risk,
                p_alive: churn.p_alive,
                rfm: rfm.map(|r| (r.x, r.t_x, r.t)),
                last_seen_ms: (st.last_seen_ms != i64::MIN).then_some(st.last_seen_ms),
                cadence_days: cadence,
                open_tickets: st.open_tickets() as i64,
                open_complaints: st.open_complaints() as i64,
                contributions,
                trend_7d: self.trend(idx, now, score),
                events_30d: sums[1].events() as i64,
                revenue_90d: sums[2].revenue(),
                complaint_cost_90d: sums[2].complaint_cost(),
                cancelled: st.cancelled(),
                quiet: st.quiet_since_ms != i64::MIN,
                status: st.status(),
            });
        }
        b.finish()
    }

    /// Inserts or replaces an account's dimension record (accounts topic). A key account with a
    /// learned cadence gets its quiet timer at the next evaluation.
    pub fn upsert_account(&mut self, info: AccountInfo) {
        let (idx, _) = self.intern(&info.account_id);
        let meta = info.meta();
        let key = meta.is_key(self.st.config.quiet.key_arr_threshold);
        let st = &mut self.st.accounts[idx as usize];
        st.key = key;
        st.meta = Some(Box::new(meta));
        self.mark_dirty(idx);
    }

    /// Removes an account's dimension record (a tombstone). The event-derived state stays: the
    /// events happened. Returns false when the account is unknown.
    pub fn remove_account(&mut self, account_id: &str) -> bool {
        let Some(idx) = self.index(account_id) else {
            return false;
        };
        let st = &mut self.st.accounts[idx as usize];
        st.meta = None;
        st.key = false;
        true
    }

    /// Fits the population BG/NBD parameters over every account with a transaction (statistics
    /// in days at `now`) and uses them from now on. The typical inter-purchase time τ of the
    /// recency rule becomes the median of `t_x / x` over repeat buyers.
    pub fn refit_bgnbd(&mut self) -> Result<BgNbdFit, EngineError> {
        let now = self.now_or_zero();
        let now_day = day_of(now);
        let rows: Vec<CustomerSummary> = self
            .st
            .accounts
            .iter()
            .filter_map(|s| s.rfm(now_day))
            .map(|rfm| CustomerSummary {
                rfm: Some(rfm),
                repeat_value: None,
                contract: None,
            })
            .collect();
        let set = fit_population(
            &rows,
            FitWindow {
                fitted_at_ms: now,
                start_ms: now,
                end_ms: now,
                time_unit_days: 1.0,
            },
        );
        let fit = match &set.bgnbd {
            Fitted::Ok(fit) => *fit,
            Fitted::Failed(why) => return Err(EngineError::FitFailed(why.clone())),
        };
        self.set_population(set.population(self.st.population));
        Ok(fit)
    }

    /// Sets the population model directly (e.g. parameters fitted elsewhere).
    pub fn set_population(&mut self, population: Population) {
        self.st.population = population;
        self.decay = RecencyDecay::new(population.typical_gap_days);
        self.unsettle_all();
    }

    /// Forgets every settled evaluation (the churn risk's base depends on the population).
    fn unsettle_all(&mut self) {
        for st in &mut self.st.accounts {
            st.settled = Settled::NONE;
        }
    }

    /// Sizes and counters.
    pub fn stats(&self) -> CoreStats {
        let accounts = self.st.ids.len();
        let day_entries = self.st.accounts.iter().map(|s| s.entries.len()).sum();
        let struct_bytes = std::mem::size_of::<AccountState>();
        let state_bytes = self.st.accounts.capacity() * struct_bytes
            + self.st.accounts.iter().map(|s| s.heap_bytes()).sum::<usize>()
            + self.st.ids.capacity() * std::mem::size_of::<Box<str>>()
            + self.st.ids.iter().map(|s| s.len()).sum::<usize>()
            + self.interner.bytes();
        let dedup_entries = self.st.dedup.len();
        let dedup_bytes = self.st.dedup.bytes();
        CoreStats {
            accounts,
            applied_total: self.st.counters.applied,
            duplicates_total: self.st.counters.duplicates,
            late_total: self.st.counters.late,
            dedup_entries,
            dedup_bytes,
            dedup_bytes_per_id: if dedup_entries > 0 {
                dedup_bytes as f64 / dedup_entries as f64
            } else {
                0.0
            },
            day_entries,
            account_struct_bytes: struct_bytes,
            state_bytes,
            state_bytes_per_account: if accounts > 0 {
                state_bytes as f64 / accounts as f64
            } else {
                0.0
            },
            timers: self.st.timers.len(),
            clock_ms: (self.st.clock_ms != i64::MIN).then_some(self.st.clock_ms),
            max_event_ms: (self.st.max_ts_ms != i64::MIN).then_some(self.st.max_ts_ms),
            watermark_ms: self.watermark_ms(),
        }
    }

    /// The whole state as bytes (postcard).
    pub fn snapshot(&self) -> Vec<u8> {
        postcard::to_allocvec(&self.st).expect("the core state always serializes")
    }

    /// The state of the accounts whose id passes `keep` (with their de-duplication keys and
    /// timers; clock, watermark, population and counters are copied as they are), as bytes that
    /// [`ScoringCore::restore`] reads. For per-partition checkpoints.
    pub fn snapshot_where(&self, keep: impl Fn(&str) -> bool) -> Vec<u8> {
        let mut remap = vec![u32::MAX; self.st.ids.len()];
        let mut ids = Vec::new();
        let mut accounts = Vec::new();
        for (i, id) in self.st.ids.iter().enumerate() {
            if keep(id) {
                remap[i] = ids.len() as u32;
                ids.push(id.clone());
                accounts.push(self.st.accounts[i].clone());
            }
        }
        let map = |i: u32| Some(remap[i as usize]).filter(|&j| j != u32::MAX);
        let sub = CoreState {
            version: SNAPSHOT_VERSION,
            config: self.st.config.clone(),
            ids,
            accounts,
            dedup: self.st.dedup.filtered(map),
            timers: TimerQueue::from_entries(
                self.st
                    .timers
                    .sorted()
                    .into_iter()
                    .filter_map(|(at, i)| map(i).map(|j| (at, j))),
            ),
            dirty: self.st.dirty.iter().filter_map(|&i| map(i)).collect(),
            clock_ms: self.st.clock_ms,
            max_ts_ms: self.st.max_ts_ms,
            swept_day: self.st.swept_day,
            population: self.st.population,
            counters: self.st.counters,
        };
        postcard::to_allocvec(&sub).expect("the core state always serializes")
    }

    /// A core from [`ScoringCore::snapshot`] or [`ScoringCore::snapshot_where`] bytes.
    pub fn restore(bytes: &[u8]) -> Result<ScoringCore, EngineError> {
        let st: CoreState = postcard::from_bytes(bytes).map_err(|e| EngineError::Snapshot(e.to_string()))?;
        if st.version != SNAPSHOT_VERSION {
            return Err(EngineError::Snapshot(format!(
                "version {} (this build reads {SNAPSHOT_VERSION})",
                st.version
            )));
        }
        if st.ids.len() != st.accounts.len() {
            return Err(EngineError::Snapshot("ids and accounts differ in length".into()));
        }
        st.config.validate()?;
        let n = st.ids.len() as u32;
        if st.dirty.iter().any(|&i| i >= n) || st.timers.sorted().iter().any(|&(_, i)| i >= n) {
            return Err(EngineError::Snapshot("account index out of range".into()));
        }
        let masks = Masks {
            transaction: st.config.transaction_mask(),
            interaction: st.config.interaction_mask(),
        };
        let interner = Interner::from_ids(&st.ids);
        let mut st = st;
        // The states are already written: the advice lets the kernel's background scan
        // (khugepaged) collapse them into huge pages over time. Copying them into a fresh advised
        // allocation instead doubled the restore time on the benchmark VM (faulting in fresh
        // memory).
        mem::huge_pages(&st.accounts);
        for (a, id) in st.accounts.iter_mut().zip(&st.ids) {
            a.set_id(id);
            a.recount_long();
        }
        let decay = RecencyDecay::new(st.population.typical_gap_days);
        Ok(ScoringCore {
            st,
            interner,
            masks,
            scratch: Vec::new(),
            seen: Vec::new(),
            decay,
            settle_by_bounds: true,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(acct_hash: u64, idx: u32, dup: bool) -> Prep {
        Prep {
            row: 0,
            idx,
            dup,
            last_pos: u32::MAX,
            day: 0,
            wm_day: 0,
            acct_hash,
            key: 0,
            ts_ms: 0,
            value: 0.0,
            kind: EventKind::Activity,
            has_value: false,
        }
    }

    #[test]
    fn last_rows_by_hash_and_the_accounts_left_unevaluated() {
        // Accounts 1 and 2 share hash 7 (a collision); account 3's last row is a duplicate;
        // account 4 has two rows, the last one its own.
        let mut rows = vec![
            row(7, 1, false), // 0
            row(9, 3, false), // 1
            row(5, 4, false), // 2
            row(7, 2, false), // 3: hash group 7's last row, account 2's
            row(5, 4, false), // 4: account 4's last
            row(9, 3, true),  // 5: account 3's redelivery
        ];
        let mut seen = Vec::new();
        mark_last_rows(&mut rows, &mut seen);
        let last: Vec<u32> = rows.iter().map(|p| p.last_pos).collect();
        assert_eq!(last, [3, 5, 4, 3, 4, 5]);
        // Evaluated in the loop: rows 3 (account 2) and 4 (account 4); left: 1 and 3.
        assert_eq!(unevaluated_accounts(&rows), [1, 3]);
    }

    #[test]
    fn a_new_day_drops_the_day_leaving_the_window_only_for_later_rows() {
        use crate::event::Event;
        use crate::scoring::testing::events_to_batch;
        // Lateness 7 days. A (day 0, 12:00) is applied while `now` is day 7, 11:00. The next
        // batch: A again (still within the lateness: a duplicate, found in day 0's set), C at
        // day 8, 00:00 (a new day: the watermark moves to day 1, day 0's set leaves the window
        // and its table goes to day 8), then A once more (now late, counted as such).
        let mut core = ScoringCore::new(ScoringConfig::default()).expect("config");
        let ev = |id: &str, ts_ms: i64| Event::new(id, "a", ts_ms, EventKind::Activity);
        let (a, b, c) = (12 * 3_600_000, 7 * DAY_MS + 11 * 3_600_000, 8 * DAY_MS);
        let out = core
            .apply_batch(&events_to_batch(&[ev("A", a), ev("B", b)]))
            .expect("batch");
        assert_eq!((out.applied, out.duplicates, out.late), (2, 0, 0));
        let out = core
            .apply_batch(&events_to_batch(&[ev("A", a), ev("C", c), ev("A", a)]))
            .expect("batch");
        assert_eq!((out.applied, out.duplicates, out.late), (1, 1, 1));
        assert_eq!(out.late_rows, vec![2]);
        assert_eq!(core.st.dedup.day_count(), 2, "days 7 and 8");
    }

    #[test]
    fn a_first_interaction_older_than_the_last_time_seen_unsettles() {
        use crate::event::Event;
        use crate::scoring::testing::events_to_batch;
        // Recency rule with τ = 1 day: base = 1 − 2^(−d/2). A closed ticket (not an interaction)
        // on day 20, evaluated on day 21: d = 1, base 0.293, risk at most
        // 1 − 0.707 · (1 − 0.3) = 0.505 < 0.7 whatever the engagement: settled. Then a late
        // activity of day 14 (within the 7-day lateness) is the first interaction: d = 7,
        // base = 1 − 2^(−3.5) = 0.912 ≥ 0.7, a churn alert, although activity keeps a settled
        // evaluation otherwise. With the engagement hazard (no activity in the last 7 days
        // against one the day before: ratio 0, hazard 1) the risk is 1 − 2^(−3.5) · (1 − 0.3).
        let mut cfg = ScoringConfig::default();
        cfg.churn.default_purchase_gap_days = 1.0;
        cfg.churn.threshold = Some(0.7);
        cfg.windows.short = 7;
        let mut core = ScoringCore::new(cfg).expect("config");
        let ev = |id: &str, day: i64, kind| Event {
            event_id: id.into(),
            account_id: "a".into(),
            ts_ms: day * DAY_MS + 3_600_000,
            kind,
            user_id: None,
            amount: None,
            cost: Some(1.0),
            score: None,
            category: None,
            attrs: None,
        };
        let out = core
            .apply_batch(&events_to_batch(&[ev("t", 20, EventKind::TicketClosed)]))
            .expect("valid");
        assert!(out.alerts.is_empty());
        assert!(core.advance_clock(21 * DAY_MS).is_empty(), "day 21's sweep: settled");
        assert_eq!(core.st.accounts[0].settled.0, 21);
        let out = core
            .apply_batch(&events_to_batch(&[ev("x", 14, EventKind::Activity)]))
            .expect("valid");
        assert_eq!(out.alerts.len(), 1, "{:?}", out.alerts);
        assert_eq!(out.alerts[0].kind, AlertKind::ChurnRisk);
        assert!(
            (out.alerts[0].value - (1.0 - 2f64.powf(-3.5) * 0.7)).abs() < 1e-12,
            "{}",
            out.alerts[0].value
        );
    }

    #[test]
    fn settling_by_bounds_changes_no_alert() {
        use crate::event::Event;
        use crate::scoring::testing::events_to_batch;
        // A random stream (fixed seed) with every kind that moves churn risk or the spike:
        // complaints and resolutions, surveys (detractors too), downgrades, cancellations,
        // purchases and activity, over 150 days for 300 accounts, the clock advanced daily.
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut rnd = move |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        let kinds = [
            EventKind::Activity,
            EventKind::Activity,
            EventKind::Activity,
            EventKind::Purchase,
            EventKind::Complaint,
            EventKind::ComplaintResolved,
            EventKind::Survey,
            EventKind::Downgrade,
            EventKind::Renewal,
            EventKind::Cancellation,
            EventKind::TicketOpened,
        ];
        let mut cfg = ScoringConfig::default();
        cfg.churn.threshold = Some(0.7);
        let mut fast = ScoringCore::new(cfg.clone()).expect("config");
        let mut full = ScoringCore::new(cfg).expect("config");
        full.settle_by_bounds = false;
        let (mut a_fast, mut a_full) = (Vec::new(), Vec::new());
        let mut n = 0;
        for day in 0..150i64 {
            let mut events = Vec::new();
            for _ in 0..120 {
                // Accounts 0-99 busy, 100-299 occasional.
                let acct = if rnd(2) == 0 { rnd(100) } else { 100 + rnd(200) };
                let kind = kinds[rnd(kinds.len() as u64) as usize];
                if acct >= 100 && kind == EventKind::Cancellation && rnd(4) != 0 {
                    continue;
                }
                n += 1;
                events.push(Event {
                    event_id: format!("e{n}"),
                    account_id: format!("a{acct}"),
                    ts_ms: day * DAY_MS + rnd(DAY_MS as u64) as i64,
                    kind,
                    user_id: None,
                    amount: Some(10.0),
                    cost: Some(5.0),
                    score: Some(rnd(11) as f64),
                    category: None,
                    attrs: None,
                });
            }
            let batch = events_to_batch(&events);
            a_fast.extend(fast.apply_batch(&batch).expect("valid").alerts);
            a_full.extend(full.apply_batch(&batch).expect("valid").alerts);
            a_fast.extend(fast.advance_clock((day + 1) * DAY_MS));
            a_full.extend(full.advance_clock((day + 1) * DAY_MS));
            if day == 60 {
                // BG/NBD parameters for the rest: P(alive) in the base from then on.
                let f = fast.refit_bgnbd().map(|f| f.params);
                let g = full.refit_bgnbd().map(|f| f.params);
                assert_eq!(f.ok(), g.ok());
            }
        }
        let ids = |a: &[Alert]| a.iter().map(|a| a.id.clone()).collect::<Vec<_>>();
        assert!(
            a_full.iter().filter(|a| a.kind == AlertKind::ChurnRisk).count() > 20
                && a_full.iter().filter(|a| a.kind == AlertKind::ComplaintSpike).count() > 5,
            "the stream crosses both thresholds"
        );
        assert_eq!(ids(&a_fast), ids(&a_full));
        assert_eq!(a_fast, a_full);
        assert!(fast == full, "same state");
        // The sweep's score alone is the full computation's score, bit for bit.
        let now = fast.now_or_zero();
        for idx in 0..fast.st.accounts.len() {
            assert_eq!(
                fast.score_now(idx, now).to_bits(),
                fast.compute(idx, now).0.to_bits(),
                "{idx}"
            );
        }
    }
}
