//! Per-account state: what the core remembers of an account's events, in a form where the order
//! of arrival does not matter.
//!
//! - First/last seen (overall, per kind) are minima/maxima.
//! - Rolling windows come from sparse daily entries, one per (day of event time, kind) that had
//!   events: `count` and `amount` (the kind's money or score field, fixed point, 1e-4 units) are
//!   integer sums, so they are exact and associative. Entries older than the long window are
//!   evicted; a non-late event can never land there (lateness < long window). The entries and
//!   their running sums (held activity, per-day activity and complaints of the recent days) are
//!   in [`super::entries`].
//! - Cumulative counters (tickets, complaints, distinct transaction days) are integer sums.
//! - The latest survey is the one with the greatest `(ts, event id hash)`.
//! - The interaction cadence is an EWMA over the log gaps between distinct interaction days,
//!   folded in day order: days are folded into the stored EWMA only once the watermark has passed
//!   them (no event can still land there), and readers continue the fold over the newer days
//!   without storing it. The result depends only on the set of interaction days.

use serde::{Deserialize, Serialize};

use crate::event::EventKind;
use crate::models::bgnbd::Rfm;

use super::account::{AccountMeta, AccountStatus};
use super::config::QuietConfig;
use super::entries::{DAY_BIAS, DayEntry, Entries, day_end_key, entry_key};

/// Milliseconds in a day.
pub const DAY_MS: i64 = 86_400_000;
const MINUTE_MS: i64 = 60_000;
/// Fixed-point scale of money and scores in daily entries: 1 unit = 1e-4.
pub const MONEY_SCALE: f64 = 10_000.0;
/// Kind code used for a survey without a score (counted as an event, not as an answer).
pub const KIND_SURVEY_NO_SCORE: u8 = 13;
/// Number of kind slots in window sums (the 13 kinds plus [`KIND_SURVEY_NO_SCORE`]).
pub const KIND_SLOTS: usize = 14;

/// Day number (days since 1970-01-01 UTC) of an epoch-millisecond time.
#[inline]
pub fn day_of(ts_ms: i64) -> i32 {
    ts_ms.div_euclid(DAY_MS).clamp(-DAY_BIAS, DAY_BIAS - 1) as i32
}

/// The first epoch minute of day `day`.
#[inline]
pub fn first_minute(day: i32) -> i64 {
    day as i64 * (DAY_MS / MINUTE_MS)
}

#[inline]
fn minute_of(ts_ms: i64) -> i32 {
    ts_ms
        .div_euclid(MINUTE_MS)
        .clamp(i32::MIN as i64 + 1, i32::MAX as i64 - 1) as i32
}

/// Money or score to fixed point (saturating; NaN gives 0).
#[inline]
pub fn to_fixed(v: f64) -> u64 {
    (v * MONEY_SCALE).round() as u64
}

/// Fixed point back to a number.
#[inline]
pub fn from_fixed(v: u64) -> f64 {
    v as f64 / MONEY_SCALE
}

/// An event reduced to what the state needs.
#[derive(Debug, Clone, Copy)]
pub struct Ev {
    pub ts_ms: i64,
    /// `day_of(ts_ms)` (the core computes it once per row; [`Ev::new`] fills it in).
    pub day: i32,
    pub kind: EventKind,
    /// The kind's value field (see [`value_field`]), if present.
    pub value: Option<f64>,
    /// Low 64 bits of the event id's 128-bit hash: the tie-break of the latest survey.
    pub tie: u64,
}

impl Ev {
    /// An event at `ts_ms` of `kind`, with its value field and id hash.
    pub fn new(ts_ms: i64, kind: EventKind, value: Option<f64>, id_hash: u128) -> Self {
        Ev {
            ts_ms,
            day: day_of(ts_ms),
            kind,
            value,
            tie: id_hash as u64,
        }
    }
}

/// Which field of an event is the value summed in its daily entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueField {
    None,
    Amount,
    Cost,
    Score,
}

/// The value field of each kind, as in contract v1's kinds table.
pub fn value_field(kind: EventKind) -> ValueField {
    match kind {
        EventKind::Purchase
        | EventKind::Renewal
        | EventKind::Downgrade
        | EventKind::Cancellation
        | EventKind::Referral => ValueField::Amount,
        EventKind::Signup | EventKind::TicketClosed | EventKind::Complaint | EventKind::ComplaintResolved => {
            ValueField::Cost
        }
        EventKind::Survey => ValueField::Score,
        EventKind::Activity | EventKind::TicketOpened | EventKind::Meeting => ValueField::None,
    }
}

/// The masks derived from the configuration, bit = kind code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Masks {
    pub transaction: u16,
    pub interaction: u16,
}

const NO_DAY: i32 = i32::MIN;
const HIST: usize = 8;
const HIST_NONE: u16 = u16::MAX;

/// `ln(days)` of a gap between interaction days: from a table for the common short gaps (the
/// same values as `f64::ln`, computed once), `f64::ln` beyond.
#[inline]
fn ln_days(days: i32) -> f64 {
    static LN: std::sync::LazyLock<[f64; 64]> = std::sync::LazyLock::new(|| std::array::from_fn(|i| (i as f64).ln()));
    match usize::try_from(days) {
        Ok(d) if d < 64 => LN[d],
        _ => (days as f64).ln(),
    }
}

/// Longest account id kept inline in [`AccountState`].
pub const INLINE_ID: usize = 16;

/// Everything the core keeps per account. Aligned to cache lines so that an account's state
/// starts a line (and a page, every 64 accounts) and the lines of one account are not shared.
/// Fields are laid out by hand (`repr(C)`), hot ones first; serialized in the same order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[repr(C, align(64))]
pub struct AccountState {
    // Line 0: what the interner's check and most updates and evaluations read.
    /// The account id when it is at most [`INLINE_ID`] bytes long (`id_len` ≤ 16; `u8::MAX`
    /// otherwise): the interner's check of a candidate index reads it here, in a line the
    /// update reads anyway, instead of in the id list. Not serialized (restored from the ids).
    #[serde(skip)]
    pub id_inline: [u8; INLINE_ID],
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
    pub last_interaction_ms: i64,
    /// Start (last interaction) of the current quiet episode (`i64::MIN` when not quiet).
    pub quiet_since_ms: i64,
    /// Distinct days with a transaction, and the first and last of them.
    pub tx_days: u32,
    pub first_tx_day: i32,
    pub last_tx_day: i32,
    #[serde(skip, default = "no_id")]
    pub id_len: u8,
    /// Key account (tier = key or ARR at/over the threshold), from the accounts dimension.
    pub key: bool,
    pub churn_alerted: bool,
    pub spike_active: bool,
    // Line 1.
    /// Per kind, minute (epoch minutes) of the last event; `i32::MIN` when none.
    pub kind_last_min: [i32; EventKind::COUNT],
    pub tickets_opened: u32,
    pub tickets_closed: u32,
    pub complaints: u32,
    // Line 2 on: counters, survey, then the daily entries.
    pub complaints_resolved: u32,
    /// Day of the first entry (`i32::MAX` when none): the eviction check without reading the
    /// entries.
    pub oldest_day: i32,
    /// Touched since the last alert evaluation.
    pub dirty: bool,
    /// A scored survey was answered (`survey_score` is the latest's).
    pub surveyed: bool,
    /// The scored surveys' count of the running long-window sums (see [`LongSums`]), in what
    /// was padding: the survey update writes this line anyway.
    #[serde(skip, default = "LongSurveys::unknown")]
    pub long_surveys: LongSurveys,
    /// The day of the last evaluation when it was settled by bounds with no alert in play (see
    /// [`Settled`]).
    #[serde(skip)]
    pub settled: Settled,
    /// Latest scored survey's score (see `surveyed`).
    pub survey_score: f64,
    /// Sparse daily entries, ascending by key (day, then kind). Ends the hot lines.
    pub entries: Entries,
    // Cold line 5: surveys, and key accounts' quiet timer and cadence (see
    // `AccountState::prefetch_cold`); the daily sweep's score history and the dimension.
    /// Latest scored survey: `(ts, id-hash tie-break)`.
    pub survey_ts_ms: i64,
    pub survey_tie: u64,
    /// Quiet timer currently scheduled (`i64::MAX` when none).
    pub timer_at: i64,
    /// Cadence fold: last folded interaction day, number of gaps folded, EWMA of ln(gap days).
    pub cad_ewma: f64,
    pub cad_last_day: i32,
    pub cad_n: u32,
    /// Daily score history (score × 100), ring indexed by day mod 8; `hist_day` is the newest.
    pub hist: [u16; HIST],
    /// Accounts-dimension attributes, when a record was upserted.
    pub meta: Option<Box<AccountMeta>>,
    // Cold line 6: read by an event that is its kind's first or before its kind's last.
    /// Per kind, minute (epoch minutes) of the first event; `i32::MAX` when none.
    pub kind_first_min: [i32; EventKind::COUNT],
    pub hist_day: i32,
    /// The running long-window sums but the surveys' count (see [`AccountState::long_surveys`]).
    #[serde(skip)]
    pub long_rest: LongRest,
}

/// Kinds whose held entries [`LongSums`] counts, in its order: the long window's scored surveys,
/// meetings, renewals, downgrades and referrals, which the health score reads.
const LONG_KINDS: [EventKind; 5] = [
    EventKind::Survey,
    EventKind::Meeting,
    EventKind::Renewal,
    EventKind::Downgrade,
    EventKind::Referral,
];

/// The position in [`LONG_KINDS`] of an entry's kind code.
#[inline]
fn long_slot(kind: u8) -> Option<usize> {
    LONG_KINDS.iter().position(|k| *k as u8 == kind)
}

/// Counts of the held entries of [`LONG_KINDS`] and the scored surveys' value sum, kept as
/// entries are added and evicted, so that the daily sweep's score reads no heap entries. Stored
/// packed in the state ([`LongSurveys`], [`LongRest`]); unknown once a sum does not fit there
/// (or for a state restored without a recount): then the next eviction recounts from the
/// entries, and readers walk the entries meanwhile.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct LongSums {
    counts: [u32; LONG_KINDS.len()],
    survey_amount: u64,
}

impl LongSums {
    /// The sums of `entries`.
    fn of<'a>(entries: impl Iterator<Item = &'a DayEntry>) -> LongSums {
        let mut l = LongSums::default();
        for e in entries {
            l.add(e.kind(), e.count, e.amount);
        }
        l
    }

    #[inline]
    fn add(&mut self, kind: u8, count: u32, amount: u64) {
        if let Some(i) = long_slot(kind) {
            self.counts[i] = self.counts[i].saturating_add(count);
            if i == 0 {
                self.survey_amount = self.survey_amount.saturating_add(amount);
            }
        }
    }

    /// Takes an evicted entry out (of sums that fit their packed form: exact, none short).
    #[inline]
    fn remove(&mut self, e: &DayEntry) {
        if let Some(i) = long_slot(e.kind()) {
            self.counts[i] -= e.count;
            if i == 0 {
                self.survey_amount -= e.amount;
            }
        }
    }
}

/// The scored surveys' count of [`LongSums`], in padding of a hot line; `u16::MAX`: the sums are
/// unknown. Derived: not serialized, ignored by `==`.
#[derive(Debug, Clone, Copy, Default)]
pub struct LongSurveys(u16);

impl LongSurveys {
    const UNKNOWN: LongSurveys = LongSurveys(u16::MAX);

    fn unknown() -> LongSurveys {
        LongSurveys::UNKNOWN
    }
}

impl PartialEq for LongSurveys {
    /// Derived from the entries, which `AccountState`'s `==` compares.
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// The other counts (one byte each) and the surveys' value sum of [`LongSums`], in the spare end
/// of a cold line. Derived: not serialized, ignored by `==`.
#[derive(Debug, Clone, Copy, Default)]
#[repr(C)]
pub struct LongRest {
    counts: [u8; LONG_KINDS.len() - 1],
    survey_amount: u32,
}

impl PartialEq for LongRest {
    /// Derived from the entries, which `AccountState`'s `==` compares.
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// The day (`now_day`) on which the account's last alert evaluation was settled by bounds: not a
/// key account, not quiet, no churn or spike alert active, no complaint in the spike window, and
/// the churn risk below the threshold whatever the engagement. Events that cannot raise that
/// bound (see `ScoringCore`'s `SETTLE_KEEPING`) keep it; every other event clears it. While it
/// equals the batch's day the evaluation of the account would change nothing, and is skipped.
/// Derived: not serialized (a restored core evaluates every account in full once), ignored by
/// `==`, cleared when the population model changes.
#[derive(Debug, Clone, Copy)]
pub struct Settled(pub i32);

impl Settled {
    /// Not settled.
    pub const NONE: Settled = Settled(NO_DAY);
}

impl Default for Settled {
    fn default() -> Self {
        Settled::NONE
    }
}

impl PartialEq for Settled {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

fn no_id() -> u8 {
    u8::MAX
}

impl Default for AccountState {
    fn default() -> Self {
        AccountState {
            first_seen_ms: i64::MAX,
            last_seen_ms: i64::MIN,
            last_interaction_ms: i64::MIN,
            kind_first_min: [i32::MAX; EventKind::COUNT],
            kind_last_min: [i32::MIN; EventKind::COUNT],
            tickets_opened: 0,
            tickets_closed: 0,
            complaints: 0,
            complaints_resolved: 0,
            tx_days: 0,
            first_tx_day: NO_DAY,
            last_tx_day: NO_DAY,
            survey_ts_ms: i64::MIN,
            survey_tie: 0,
            survey_score: 0.0,
            entries: Entries::default(),
            oldest_day: i32::MAX,
            cad_last_day: NO_DAY,
            cad_n: 0,
            cad_ewma: 0.0,
            hist_day: NO_DAY,
            hist: [HIST_NONE; HIST],
            long_surveys: LongSurveys(0),
            long_rest: LongRest::default(),
            key: false,
            meta: None,
            timer_at: i64::MAX,
            quiet_since_ms: i64::MIN,
            churn_alerted: false,
            spike_active: false,
            dirty: false,
            surveyed: false,
            settled: Settled::NONE,
            id_inline: [0; INLINE_ID],
            id_len: u8::MAX,
        }
    }
}

impl AccountState {
    /// A new state of the account `id`.
    pub fn with_id(id: &str) -> Self {
        let mut s = AccountState::default();
        s.set_id(id);
        s
    }

    /// Keeps `id` inline when it is short enough.
    pub fn set_id(&mut self, id: &str) {
        let b = id.as_bytes();
        if b.len() <= INLINE_ID {
            self.id_inline = [0; INLINE_ID];
            self.id_inline[..b.len()].copy_from_slice(b);
            self.id_len = b.len() as u8;
        } else {
            self.id_len = u8::MAX;
        }
    }

    /// `Some(true/false)` when the id is inline and equals / differs from `id`; `None` when it is
    /// not inline (compare with the id list).
    #[inline]
    pub fn inline_id_is(&self, id: &str) -> Option<bool> {
        let n = self.id_len as usize;
        if n > INLINE_ID {
            return None;
        }
        let b = id.as_bytes();
        if n != b.len() {
            return Some(false);
        }
        if n < 8 {
            return Some(self.id_inline[..n] == *b);
        }
        // 8-16 bytes: two (overlapping) words cover them, compared without a `memcmp` call.
        let word = |s: &[u8], at: usize| u64::from_le_bytes(s[at..at + 8].try_into().expect("8 bytes"));
        Some(word(&self.id_inline, 0) == word(b, 0) && word(&self.id_inline, n - 8) == word(b, n - 8))
    }
}

/// Sums over a window of days, per kind slot.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct WindowSums {
    /// Events per kind code (index [`KIND_SURVEY_NO_SCORE`] = surveys without a score).
    pub counts: [u32; KIND_SLOTS],
    /// Fixed-point sums of the kinds' value fields.
    pub amounts: [u64; KIND_SLOTS],
}

impl WindowSums {
    #[inline]
    fn add(&mut self, e: &DayEntry) {
        let k = e.kind() as usize;
        self.counts[k] = self.counts[k].saturating_add(e.count);
        self.amounts[k] = self.amounts[k].saturating_add(e.amount);
    }

    /// Events of `kind`.
    pub fn count(&self, kind: EventKind) -> u32 {
        let n = self.counts[kind as usize];
        if kind == EventKind::Survey {
            n.saturating_add(self.counts[KIND_SURVEY_NO_SCORE as usize])
        } else {
            n
        }
    }

    /// Sum of `kind`'s value field.
    pub fn amount(&self, kind: EventKind) -> f64 {
        from_fixed(self.amounts[kind as usize])
    }

    /// All events.
    pub fn events(&self) -> u64 {
        self.counts.iter().map(|&c| c as u64).sum()
    }

    /// Revenue: amounts of purchases and renewals.
    pub fn revenue(&self) -> f64 {
        from_fixed(self.amounts[EventKind::Purchase as usize].saturating_add(self.amounts[EventKind::Renewal as usize]))
    }

    /// Handling cost of complaints: costs of `complaint` and `complaint_resolved`.
    pub fn complaint_cost(&self) -> f64 {
        from_fixed(
            self.amounts[EventKind::Complaint as usize]
                .saturating_add(self.amounts[EventKind::ComplaintResolved as usize]),
        )
    }

    /// Handling cost of tickets: costs of `ticket_closed`.
    pub fn ticket_cost(&self) -> f64 {
        from_fixed(self.amounts[EventKind::TicketClosed as usize])
    }

    /// Mean survey score of the scored surveys, if any.
    pub fn survey_mean(&self) -> Option<f64> {
        let n = self.counts[EventKind::Survey as usize];
        (n > 0).then(|| from_fixed(self.amounts[EventKind::Survey as usize]) / n as f64)
    }
}

/// The inputs of churn risk and the complaint spike that come from the daily entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HotSums {
    pub activity_short: u32,
    pub activity_long: u32,
    pub complaints_spike: u32,
    /// Earliest day with a complaint inside the spike window.
    pub first_spike_day: Option<i32>,
}

impl AccountState {
    /// Applies one non-late, non-duplicate event. Returns true when it is an interaction.
    pub fn apply(&mut self, ev: &Ev, masks: Masks) -> bool {
        let k = ev.kind as u8;
        let ki = k as usize;
        self.first_seen_ms = self.first_seen_ms.min(ev.ts_ms);
        self.last_seen_ms = self.last_seen_ms.max(ev.ts_ms);
        let minute = minute_of(ev.ts_ms);
        // first ≤ last: the first minute can only move when this event is not after the last
        // one (or is the kind's first), which spares the read of the cold line.
        if minute < self.kind_last_min[ki] || self.kind_last_min[ki] == i32::MIN {
            self.kind_first_min[ki] = self.kind_first_min[ki].min(minute);
        }
        self.kind_last_min[ki] = self.kind_last_min[ki].max(minute);
        let interaction = masks.interaction & (1 << k) != 0;
        if interaction {
            self.last_interaction_ms = self.last_interaction_ms.max(ev.ts_ms);
        }
        let day = ev.day;
        debug_assert_eq!(day, day_of(ev.ts_ms));
        match ev.kind {
            EventKind::TicketOpened => self.tickets_opened = self.tickets_opened.saturating_add(1),
            EventKind::TicketClosed => self.tickets_closed = self.tickets_closed.saturating_add(1),
            EventKind::Complaint => self.complaints = self.complaints.saturating_add(1),
            EventKind::ComplaintResolved => self.complaints_resolved = self.complaints_resolved.saturating_add(1),
            EventKind::Survey => {
                if let Some(score) = ev.value {
                    let tie = ev.tie;
                    if (ev.ts_ms, tie) > (self.survey_ts_ms, self.survey_tie) {
                        self.surveyed = true;
                        self.survey_ts_ms = ev.ts_ms;
                        self.survey_tie = tie;
                        self.survey_score = score;
                    }
                }
            }
            _ => {}
        }
        if masks.transaction & (1 << k) != 0 {
            if !self.has_transaction_on(day, masks.transaction) {
                self.tx_days = self.tx_days.saturating_add(1);
            }
            self.first_tx_day = if self.first_tx_day == NO_DAY {
                day
            } else {
                self.first_tx_day.min(day)
            };
            self.last_tx_day = self.last_tx_day.max(day);
        }
        let slot = if ev.kind == EventKind::Survey && ev.value.is_none() {
            KIND_SURVEY_NO_SCORE
        } else {
            k
        };
        self.add_entry(day, slot, ev.value.map_or(0, to_fixed));
        interaction
    }

    /// Prefetches the cold lines an update by an event of `kind` at `ts_ms` (on `day`) and the
    /// account's evaluation will read: the survey, timer and cadence line for a survey or a key
    /// account, or when eviction before `horizon_day` is due (its cadence fold), with the oldest
    /// heap entries it drops; the first-minutes line for an event that may move its kind's first
    /// minute (see [`AccountState::apply`]); the running long-window sums for a kind they count;
    /// and, for an event that makes a new entry, the heap slots it may write
    /// ([`Entries::prefetch_heap`]). Reads the hot lines, prefetched a little before.
    #[inline]
    pub fn prefetch_cold(&self, kind: EventKind, ts_ms: i64, day: i32, horizon_day: i32) {
        let evicts = self.needs_eviction(horizon_day);
        if self.key || kind == EventKind::Survey || evicts {
            super::mem::prefetch(&self.survey_ts_ms, 1);
        }
        if evicts {
            self.entries.prefetch_front();
        }
        // `minute_of(ts_ms) < last` without the division (a hint: exact but for clamped times).
        let last = self.kind_last_min[kind as usize];
        if ts_ms < last as i64 * MINUTE_MS || last == i32::MIN {
            super::mem::prefetch(&self.kind_first_min, 1);
        }
        if long_slot(kind as u8).is_some() {
            super::mem::prefetch(&self.long_rest, 1);
        }
        // A new entry unless the kind's last event was on `day` (then its entry exists): only a
        // new entry moves inline entries to the heap.
        let new_entry = last == i32::MIN || !(first_minute(day)..first_minute(day + 1)).contains(&(last as i64));
        if new_entry {
            self.entries.prefetch_heap();
        }
    }

    /// Prefetches what the daily sweep reads beyond the hot lines, which a sequential pass over
    /// the accounts brings in by itself: the cold lines and the heap entries it reads.
    /// `medium_start_min` is the first minute of the medium window (a complaint since then is
    /// summed from the entries).
    #[inline]
    pub fn prefetch_for_sweep(&self, medium_start_min: i64) {
        super::mem::prefetch(&self.survey_ts_ms, 2);
        if self.long().is_none() {
            self.entries.prefetch_older();
            return;
        }
        // The score reads the running sums; eviction the oldest entries; the cadence fold the
        // newest, and a complaint in the medium window a walk back from the newest (8 lines:
        // 32 entries).
        self.entries.prefetch_front();
        let walks = self.kind_last_min_at_least(EventKind::Complaint, medium_start_min);
        self.entries.prefetch_newest_older(if walks { 8 } else { 2 });
    }

    /// True when an entry of a transaction kind exists on `day`.
    fn has_transaction_on(&self, day: i32, tx_mask: u16) -> bool {
        self.entries
            .iter()
            .rev()
            .take_while(|e| e.day() >= day)
            .any(|e| e.day() == day && e.kind() < 13 && tx_mask & (1 << e.kind()) != 0)
    }

    #[inline]
    fn add_entry(&mut self, day: i32, kind: u8, amount: u64) {
        self.entries.add(entry_key(day, kind), amount);
        if long_slot(kind).is_some()
            && let Some(mut l) = self.long()
        {
            l.add(kind, 1, amount);
            self.set_long(Some(l));
        }
        self.oldest_day = self.oldest_day.min(day);
    }

    /// True when entries before `horizon_day` are held (then [`AccountState::maintain`] is due).
    #[inline]
    pub fn needs_eviction(&self, horizon_day: i32) -> bool {
        self.oldest_day < horizon_day
    }

    /// [`AccountState::maintain`] when entries before `horizon_day` are held.
    #[inline]
    pub fn maintain_if_due(&mut self, watermark_day: i32, horizon_day: i32, masks: Masks, q: &QuietConfig) {
        if self.needs_eviction(horizon_day) {
            self.maintain(watermark_day, horizon_day, masks, q);
        }
    }

    /// Folds settled interaction days (before `watermark_day`) into the stored cadence, then
    /// evicts entries before `horizon_day` (the first day of the long window).
    pub fn maintain(&mut self, watermark_day: i32, horizon_day: i32, masks: Masks, q: &QuietConfig) {
        let (last, n, ewma) = self.fold(watermark_day, masks, q);
        self.cad_last_day = last;
        self.cad_n = n;
        self.cad_ewma = ewma;
        if self.oldest_day < horizon_day {
            let cut = self.entries.count_before(horizon_day);
            if let Some(mut l) = self.long() {
                for e in self.entries.iter().take(cut) {
                    l.remove(e);
                }
                self.set_long(Some(l));
            }
            self.entries.drop_front(cut);
            if self.long().is_none() {
                self.recount_long();
            }
            self.oldest_day = self.entries.first().map_or(i32::MAX, |e| e.day());
        }
    }

    /// The cadence fold continued over the interaction days in the entries before `until_day`.
    fn fold(&self, until_day: i32, masks: Masks, q: &QuietConfig) -> (i32, u32, f64) {
        let last = self.cad_last_day;
        if last == NO_DAY {
            return self.fold_from(self.entries.iter(), until_day, masks, q);
        }
        // The days not folded yet are the newest few: from the back, in the inline entries alone
        // when they reach back to the last folded day (most calls).
        let after = day_end_key(last);
        let recent = self.entries.recent();
        match recent.iter().rposition(|e| e.key <= after) {
            Some(k) => self.fold_from(recent[k + 1..].iter(), until_day, masks, q),
            None => {
                let start = self.entries.len() - self.entries.iter().rev().take_while(|e| e.key > after).count();
                self.fold_from(self.entries.iter().skip(start), until_day, masks, q)
            }
        }
    }

    /// [`AccountState::fold`] over `entries`, the ones after the last folded day.
    #[inline]
    fn fold_from<'a>(
        &self,
        entries: impl Iterator<Item = &'a DayEntry>,
        until_day: i32,
        masks: Masks,
        q: &QuietConfig,
    ) -> (i32, u32, f64) {
        let (mut last, mut n, mut ewma) = (self.cad_last_day, self.cad_n, self.cad_ewma);
        let mut prev_day = NO_DAY;
        for e in entries {
            let d = e.day();
            if d >= until_day {
                break;
            }
            if d == prev_day || e.kind() >= 13 || masks.interaction & (1 << e.kind()) == 0 {
                continue;
            }
            prev_day = d;
            if last != NO_DAY {
                let lg = ln_days(d - last);
                ewma = if n == 0 {
                    lg
                } else {
                    (1.0 - q.ewma_alpha) * ewma + q.ewma_alpha * lg
                };
                n = n.saturating_add(1);
            }
            last = d;
        }
        (last, n, ewma)
    }

    /// The learned gap between interactions in days (clamped to the floor and ceiling) and the
    /// number of gaps it was learned from; `None` before `min_gaps` gaps.
    pub fn cadence(&self, masks: Masks, q: &QuietConfig) -> (Option<f64>, u32) {
        let (_, n, ewma) = self.fold(i32::MAX, masks, q);
        let gap = (n >= q.min_gaps.max(1)).then(|| ewma.exp().clamp(q.min_gap_days, q.max_gap_days));
        (gap, n)
    }

    /// Sums of the three windows `[short, mid, long]` ending at `now_day` (inclusive).
    pub fn window_sums(&self, now_day: i32, windows: [u32; 3]) -> [WindowSums; 3] {
        // One running sum from the newest entry back, copied out as it passes each window's
        // start: the sums are saturating sums of non-negative values, so a window's sum is the
        // running sum at its start whatever the order.
        let mut out = [WindowSums::default(); 3];
        let starts = windows.map(|w| now_day - w as i32 + 1);
        let first = starts[0].min(starts[1]).min(starts[2]);
        let mut open = [true; 3];
        let mut acc = WindowSums::default();
        for e in self.entries.iter().rev() {
            let d = e.day();
            if d > now_day {
                continue;
            }
            if d < first {
                break;
            }
            for i in 0..3 {
                if open[i] && d < starts[i] {
                    out[i] = acc;
                    open[i] = false;
                }
            }
            acc.add(e);
        }
        for i in 0..3 {
            if open[i] {
                out[i] = acc;
            }
        }
        out
    }

    /// True when every entry held is in the days `[from, now_day]` (eviction is current): then
    /// the running sums over the held entries are that window's sums.
    #[inline]
    fn holds_only(&self, from: i32, now_day: i32) -> bool {
        self.oldest_day >= from && self.entries.last().is_none_or(|e| e.day() <= now_day)
    }

    /// Recounts [`AccountState::long`] from the entries (after a restore or a saturation).
    pub fn recount_long(&mut self) {
        self.set_long(Some(LongSums::of(self.entries.iter())));
    }

    /// The running long-window sums, when known.
    #[inline]
    fn long(&self) -> Option<LongSums> {
        let LongSurveys(surveys) = self.long_surveys;
        (surveys != u16::MAX).then(|| {
            let r = self.long_rest;
            let mut counts = [surveys as u32; LONG_KINDS.len()];
            for (c, &v) in counts[1..].iter_mut().zip(&r.counts) {
                *c = v as u32;
            }
            LongSums {
                counts,
                survey_amount: r.survey_amount as u64,
            }
        })
    }

    /// Stores the running sums packed; unknown when `None` or when a sum does not fit.
    #[inline]
    fn set_long(&mut self, l: Option<LongSums>) {
        let packed = l.and_then(|l| {
            let surveys = u16::try_from(l.counts[0]).ok().filter(|&n| n != u16::MAX)?;
            let mut counts = [0u8; LONG_KINDS.len() - 1];
            for (c, &v) in counts.iter_mut().zip(&l.counts[1..]) {
                *c = u8::try_from(v).ok()?;
            }
            let survey_amount = u32::try_from(l.survey_amount).ok()?;
            Some((surveys, LongRest { counts, survey_amount }))
        });
        match packed {
            Some((surveys, rest)) => {
                self.long_surveys = LongSurveys(surveys);
                self.long_rest = rest;
            }
            None => self.long_surveys = LongSurveys::UNKNOWN,
        }
    }

    /// The window sums the health score reads (`health::component_values`): short and long
    /// activity, medium complaints, and the long window's scored surveys (count and sum),
    /// meetings, renewals, downgrades and referrals; every other field is 0. Read without a walk
    /// over the heap entries when the running sums answer: eviction is current (every entry held
    /// is in the long window, none after `now_day`) and [`LongSums`] is known. The short
    /// window's activity then comes from the ring when it answers (windows up to
    /// [`RING_DAYS`](super::entries::RING_DAYS) days), the medium window's complaints are 0
    /// without a look when the last complaint is before it; what remains is walked from the
    /// newest entry back to the start of the windows it needs. Otherwise
    /// [`AccountState::window_sums`].
    pub fn score_sums(&self, now_day: i32, windows: [u32; 3]) -> [WindowSums; 3] {
        let [short, medium, long] = windows;
        let start = |w: u32| now_day - w as i32 + 1;
        let (Some(sums), Some(activity_long)) = (
            self.long().filter(|_| self.holds_only(start(long), now_day)),
            self.entries.activity(),
        ) else {
            return self.window_sums(now_day, windows);
        };
        let (s_start, m_start) = (start(short), start(medium));
        let ring = self.entries.ring_activity(s_start, now_day);
        let complaints_in_m = self.kind_last_min_at_least(EventKind::Complaint, first_minute(m_start));
        // A walk from the newest entry back over the days the ring did not answer.
        let stop = [ring.is_none().then_some(s_start), complaints_in_m.then_some(m_start)]
            .into_iter()
            .flatten()
            .min();
        let (mut activity_short, mut complaints) = (ring.unwrap_or(0), 0u32);
        if let Some(stop) = stop {
            for e in self.entries.iter().rev().take_while(|e| e.day() >= stop) {
                if e.kind() == EventKind::Activity as u8 && ring.is_none() && e.day() >= s_start {
                    activity_short = activity_short.saturating_add(e.count);
                } else if e.kind() == EventKind::Complaint as u8 && e.day() >= m_start {
                    complaints = complaints.saturating_add(e.count);
                }
            }
        }
        let mut out = [WindowSums::default(); 3];
        out[0].counts[EventKind::Activity as usize] = activity_short;
        out[1].counts[EventKind::Complaint as usize] = complaints;
        let wl = &mut out[2];
        wl.counts[EventKind::Activity as usize] = activity_long;
        for (k, c) in LONG_KINDS.iter().zip(sums.counts) {
            wl.counts[*k as usize] = c;
        }
        wl.amounts[EventKind::Survey as usize] = sums.survey_amount;
        out
    }

    /// The entry sums churn risk and the complaint spike need, read with as few entries as
    /// possible. When every entry held is within the long window (eviction is current, nothing
    /// after `now_day`), the long window's activity is the running sum [`Entries::activity`]; the
    /// short window's activity and the spike window's complaints come from the ring of recent
    /// days when it answers ([`Entries::ring_activity`], [`Entries::ring_complaints`]), and the
    /// complaints are 0 without a look when the last complaint is before the spike window.
    /// Whatever none of these answers is summed in one walk from the newest entry back.
    pub fn hot_sums(&self, now_day: i32, short: u32, long: u32, spike_days: u32) -> HotSums {
        let (s_start, l_start, c_start) = (
            now_day - short as i32 + 1,
            now_day - long as i32 + 1,
            now_day - spike_days as i32 + 1,
        );
        let held = self
            .holds_only(l_start, now_day)
            .then(|| self.entries.activity())
            .flatten();
        let recent = self.entries.ring_activity(s_start, now_day);
        let spike = if self.kind_last_min_at_least(EventKind::Complaint, first_minute(c_start)) {
            self.entries.ring_complaints(c_start, now_day)
        } else {
            Some((0, None))
        };
        let mut h = HotSums::default();
        let stop = [
            held.is_none().then_some(l_start),
            recent.is_none().then_some(s_start),
            spike.is_none().then_some(c_start),
        ]
        .into_iter()
        .flatten()
        .min();
        if let Some(stop) = stop {
            for e in self.entries.iter().rev() {
                let d = e.day();
                if d > now_day {
                    continue;
                }
                if d < stop {
                    break;
                }
                if e.kind() == EventKind::Activity as u8 {
                    h.activity_long = h.activity_long.saturating_add(e.count);
                    if d >= s_start {
                        h.activity_short = h.activity_short.saturating_add(e.count);
                    }
                } else if e.kind() == EventKind::Complaint as u8 && d >= c_start {
                    h.complaints_spike = h.complaints_spike.saturating_add(e.count);
                    h.first_spike_day = Some(d);
                }
            }
        }
        if let Some(a) = held {
            h.activity_long = a;
        }
        if let Some(a) = recent {
            h.activity_short = a;
        }
        if let Some((n, first)) = spike {
            h.complaints_spike = n;
            h.first_spike_day = first;
        }
        h
    }

    /// Bytes held on the heap by this account's entries.
    pub fn heap_bytes(&self) -> usize {
        self.entries.heap_bytes()
            + self
                .meta
                .as_ref()
                .map_or(0, |m| std::mem::size_of::<AccountMeta>() + m.heap_bytes())
    }

    /// Open tickets: opened minus closed, not below 0.
    pub fn open_tickets(&self) -> u32 {
        self.tickets_opened.saturating_sub(self.tickets_closed)
    }

    /// Unresolved complaints: complaints minus resolutions, not below 0.
    pub fn open_complaints(&self) -> u32 {
        self.complaints.saturating_sub(self.complaints_resolved)
    }

    /// True when a kind was ever seen.
    pub fn has_kind(&self, kind: EventKind) -> bool {
        self.kind_last_min[kind as usize] != i32::MIN
    }

    /// True when the last event of a kind is at or after minute `min` (epoch minutes; false when
    /// none). "On day `d` or later" is `min` = [`first_minute`]`(d)`, with no division.
    #[inline]
    pub fn kind_last_min_at_least(&self, kind: EventKind, min: i64) -> bool {
        let m = self.kind_last_min[kind as usize];
        m != i32::MIN && m as i64 >= min
    }

    /// First and last event time of a kind, floored to the minute.
    pub fn kind_seen_ms(&self, kind: EventKind) -> Option<(i64, i64)> {
        let i = kind as usize;
        self.has_kind(kind).then(|| {
            (
                self.kind_first_min[i] as i64 * MINUTE_MS,
                self.kind_last_min[i] as i64 * MINUTE_MS,
            )
        })
    }

    /// Cancelled: the last cancellation is not older than the last signup, purchase or renewal
    /// (minute resolution; a tie counts as cancelled).
    pub fn cancelled(&self) -> bool {
        let c = self.kind_last_min[EventKind::Cancellation as usize];
        c != i32::MIN
            && [EventKind::Signup, EventKind::Purchase, EventKind::Renewal]
                .iter()
                .all(|k| self.kind_last_min[*k as usize] <= c)
    }

    /// Active, churned or won back (see [`AccountStatus`]).
    pub fn status(&self) -> AccountStatus {
        if self.cancelled() {
            AccountStatus::Churned
        } else if self.kind_last_min[EventKind::Cancellation as usize] != i32::MIN {
            AccountStatus::WonBack
        } else {
            AccountStatus::Active
        }
    }

    /// The latest scored survey `(ts, score)`.
    pub fn latest_survey(&self) -> Option<(i64, f64)> {
        self.surveyed.then_some((self.survey_ts_ms, self.survey_score))
    }

    /// BG/NBD statistics in days at `now_day`: `x` = distinct transaction days − 1, `t_x` =
    /// last − first transaction day, `T` = now − first transaction day.
    pub fn rfm(&self, now_day: i32) -> Option<Rfm> {
        (self.tx_days > 0).then(|| Rfm {
            x: (self.tx_days - 1) as f64,
            t_x: (self.last_tx_day - self.first_tx_day) as f64,
            t: (now_day.max(self.last_tx_day) - self.first_tx_day) as f64,
        })
    }

    /// Records `score` as the score of `day` in the history.
    pub fn record_history(&mut self, day: i32, score: f64) {
        let v = (score * 100.0).round().clamp(0.0, 10_000.0) as u16;
        if self.hist_day == NO_DAY || day - self.hist_day >= HIST as i32 {
            self.hist = [HIST_NONE; HIST];
        } else if day > self.hist_day {
            for d in self.hist_day + 1..day {
                self.hist[d.rem_euclid(HIST as i32) as usize] = HIST_NONE;
            }
        } else if day < self.hist_day {
            return;
        }
        self.hist[day.rem_euclid(HIST as i32) as usize] = v;
        self.hist_day = day;
    }

    /// The recorded score of `day`, if kept.
    pub fn history(&self, day: i32) -> Option<f64> {
        if self.hist_day == NO_DAY || day > self.hist_day || self.hist_day - day >= HIST as i32 {
            return None;
        }
        let v = self.hist[day.rem_euclid(HIST as i32) as usize];
        (v != HIST_NONE).then(|| v as f64 / 100.0)
    }
}

#[cfg(test)]
mod tests {
    use super::super::entries::INLINE_ENTRIES;
    use super::*;

    #[test]
    fn ln_days_is_ln_bit_for_bit() {
        for d in [0, 1, 2, 3, 7, 30, 63, 64, 65, 90, 1000, i32::MAX] {
            assert_eq!(ln_days(d).to_bits(), (d as f64).ln().to_bits(), "{d}");
        }
        assert!(ln_days(-1).is_nan());
    }

    fn masks() -> Masks {
        let c = super::super::ScoringConfig::default();
        Masks {
            transaction: c.transaction_mask(),
            interaction: c.interaction_mask(),
        }
    }

    #[test]
    fn history_ring() {
        let mut s = AccountState::default();
        s.record_history(100, 55.5);
        s.record_history(103, 60.0);
        assert_eq!(s.history(100), Some(55.5));
        assert_eq!(s.history(101), None);
        assert_eq!(s.history(103), Some(60.0));
        s.record_history(108, 70.0);
        assert_eq!(s.history(100), None, "older than 8 days");
        assert_eq!(s.history(103), Some(60.0));
        s.record_history(200, 1.0);
        assert_eq!(s.history(103), None);
    }

    #[test]
    fn window_sums_are_the_entries_in_each_window() {
        let m = masks();
        let mut s = AccountState::default();
        let mut t = 0;
        let kinds = [
            EventKind::Activity,
            EventKind::Purchase,
            EventKind::Complaint,
            EventKind::Survey,
        ];
        for day in 0..130i64 {
            for (j, k) in kinds.into_iter().enumerate() {
                if (day * 5 + j as i64) % 4 != 0 {
                    t += 1;
                    s.apply(
                        &Ev::new(day * DAY_MS + 1000 + j as i64, k, Some((day % 9) as f64 + 0.5), t),
                        m,
                    );
                }
            }
        }
        for (now_day, windows) in [
            (120, [7u32, 30, 90]),
            (120, [90, 7, 30]),
            (100, [30, 30, 1]),
            (129, [200, 3, 60]),
            (5, [7, 30, 90]),
        ] {
            let got = s.window_sums(now_day, windows);
            for (w, sums) in windows.iter().zip(got) {
                let start = now_day - *w as i32 + 1;
                let mut want = WindowSums::default();
                for e in s.entries.iter().filter(|e| e.day() >= start && e.day() <= now_day) {
                    want.add(e);
                }
                assert_eq!(sums, want, "day {now_day}, window {w}");
                assert!(want.events() > 0);
            }
        }
    }

    #[test]
    fn score_sums_give_the_score_of_window_sums() {
        use super::super::health::component_values;
        let cfg = super::super::ScoringConfig::default();
        let m = masks();
        let windows = cfg.windows.as_array();
        let long = windows[2] as i32;
        let mut s = AccountState::default();
        let mut t = 0;
        let kinds = [
            EventKind::Activity,
            EventKind::Survey,
            EventKind::Meeting,
            EventKind::Renewal,
            EventKind::Downgrade,
            EventKind::Referral,
            EventKind::Complaint,
            EventKind::Purchase,
        ];
        let mut fast = 0;
        for day in 0..260i64 {
            for (j, k) in kinds.into_iter().enumerate() {
                if (day + j as i64) % (j as i64 + 1) == 0 {
                    t += 1;
                    let value = (k == EventKind::Survey && day % 4 != 0).then_some((day % 11) as f64);
                    s.apply(&Ev::new(day * DAY_MS + 1000 + j as i64, k, value, t), m);
                }
            }
            // Every fifth day a second survey and meeting (entries with a count of 2).
            if day % 5 == 0 {
                for k in [EventKind::Survey, EventKind::Meeting] {
                    t += 1;
                    s.apply(&Ev::new(day * DAY_MS + 9000, k, Some(7.0), t), m);
                }
            }
            // Now and then an event a week late (into the heap part).
            if day % 9 == 0 && day > 10 {
                t += 1;
                s.apply(&Ev::new((day - 7) * DAY_MS + 5, EventKind::Meeting, None, t), m);
            }
            let now_day = day as i32;
            s.maintain(now_day - 2, now_day - long + 1, m, &cfg.quiet);
            assert_eq!(s.long(), Some(LongSums::of(s.entries.iter())), "day {day}");
            let now = day * DAY_MS + DAY_MS - 1;
            let quick = s.score_sums(now_day, windows);
            let full = s.window_sums(now_day, windows);
            let cadence = s.cadence(m, &cfg.quiet).0;
            let a = component_values(&s, now, &quick, cadence, &cfg);
            let b = component_values(&s, now, &full, cadence, &cfg);
            assert_eq!(
                a.map(|v| v.map(f64::to_bits)),
                b.map(|v| v.map(f64::to_bits)),
                "day {day}"
            );
            // The running sums answered (the walk would have filled the purchases too).
            if quick[2].count(EventKind::Purchase) == 0 && full[2].count(EventKind::Purchase) > 0 {
                fast += 1;
            }
        }
        assert!(fast > 200, "{fast}");
        // A state restored without a recount walks the entries until it is recounted.
        let mut back: AccountState = serde_json::from_str(&serde_json::to_string(&s).expect("ser")).expect("de");
        assert!(back.long().is_none());
        let now_day = 259;
        assert_eq!(back.score_sums(now_day, windows), back.window_sums(now_day, windows));
        back.recount_long();
        assert_eq!(back.long(), s.long());
        assert!(s.long().is_some());
    }

    #[test]
    fn long_sums_that_do_not_fit_are_recounted_after_eviction() {
        use super::super::health::component_values;
        let cfg = super::super::ScoringConfig::default();
        let m = masks();
        let windows = cfg.windows.as_array();
        let mut s = AccountState::default();
        // 300 meetings on day 0 (over a byte), 10 on day 50.
        for t in 0..310u128 {
            let day: i64 = if t < 300 { 0 } else { 50 };
            s.apply(&Ev::new(day * DAY_MS + 1000, EventKind::Meeting, None, t), m);
        }
        assert!(s.long().is_none());
        let now = 60 * DAY_MS;
        let values = |s: &AccountState, sums: &[WindowSums; 3]| {
            component_values(s, now, sums, None, &cfg).map(|v| v.map(f64::to_bits))
        };
        assert_eq!(
            values(&s, &s.score_sums(60, windows)),
            values(&s, &s.window_sums(60, windows))
        );
        // Evicting day 0 leaves 10: known again.
        s.maintain(58, 1, m, &cfg.quiet);
        assert_eq!(s.long().map(|l| l.counts[1]), Some(10));
        assert_eq!(s.score_sums(60, windows)[2].count(EventKind::Meeting), 10);
    }

    #[test]
    fn hot_sums_agree_with_window_sums() {
        let m = masks();
        let mut s = AccountState::default();
        let mut t = 0;
        for day in 0..120i64 {
            for k in [EventKind::Activity, EventKind::Complaint, EventKind::Activity] {
                if (day * 7 + k as i64) % 3 != 0 {
                    t += 1;
                    s.apply(&Ev::new(day * DAY_MS + 1000, k, Some(1.0), t), m);
                }
            }
        }
        let w = s.window_sums(110, [7, 30, 90]);
        let h = s.hot_sums(110, 7, 90, 30);
        assert_eq!(h.activity_short, w[0].count(EventKind::Activity));
        assert_eq!(h.activity_long, w[2].count(EventKind::Activity));
        assert_eq!(h.complaints_spike, w[1].count(EventKind::Complaint));
    }

    #[test]
    fn the_running_activity_sum_follows_inserts_bumps_and_evictions() {
        let m = masks();
        let q = super::super::ScoringConfig::default().quiet;
        let mut s = AccountState::default();
        let mut t = 0;
        let check = |s: &AccountState, now_day: i32| {
            let walked = s
                .entries
                .iter()
                .filter(|e| e.kind() == EventKind::Activity as u8)
                .map(|e| e.count)
                .sum();
            assert_eq!(s.entries.activity(), Some(walked));
            let w = s.window_sums(now_day, [7, 30, 90]);
            let h = s.hot_sums(now_day, 7, 90, 30);
            assert_eq!(h.activity_short, w[0].count(EventKind::Activity));
            assert_eq!(h.activity_long, w[2].count(EventKind::Activity));
            assert_eq!(h.complaints_spike, w[1].count(EventKind::Complaint));
            // A spike window the ring answers (7 days), against the entries.
            let h = s.hot_sums(now_day, 7, 90, 7);
            assert_eq!(h.complaints_spike, w[0].count(EventKind::Complaint));
            let first = s
                .entries
                .iter()
                .find(|e| e.kind() == EventKind::Complaint as u8 && e.day() > now_day - 7 && e.day() <= now_day)
                .map(|e| e.day());
            assert_eq!(h.first_spike_day, first);
        };
        for day in 0..200i64 {
            // 1-3 activity events a day (several on one entry), a complaint every third day.
            for _ in 0..1 + day % 3 {
                t += 1;
                s.apply(&Ev::new(day * DAY_MS + t as i64, EventKind::Activity, None, t), m);
            }
            if day % 3 == 0 {
                t += 1;
                s.apply(&Ev::new(day * DAY_MS + 7, EventKind::Complaint, Some(1.0), t), m);
            }
            let now_day = day as i32;
            if day % 10 == 0 {
                // Eviction current: the running sum is used for the long window.
                s.maintain(now_day - 7, now_day - 89, m, &q);
                assert!(s.oldest_day >= now_day - 89);
            }
            check(&s, now_day);
        }
        assert!(s.entries.heap_bytes() > 0, "spilled");
        // Evicting all but the last 3 days takes the entries back inline.
        s.maintain(190, 197, m, &q);
        assert_eq!(s.entries.heap_bytes(), 0);
        check(&s, 199);
        let back: AccountState = serde_json::from_str(&serde_json::to_string(&s).expect("ser")).expect("de");
        assert_eq!(back.entries.activity(), s.entries.activity());
    }

    #[test]
    fn status_follows_cancellations_and_comebacks() {
        let m = masks();
        let mut s = AccountState::default();
        s.apply(&Ev::new(DAY_MS, EventKind::Signup, None, 1), m);
        assert_eq!(s.status(), AccountStatus::Active);
        s.apply(&Ev::new(10 * DAY_MS, EventKind::Cancellation, None, 2), m);
        assert_eq!(s.status(), AccountStatus::Churned);
        // Activity is no commitment: still churned.
        s.apply(&Ev::new(12 * DAY_MS, EventKind::Activity, None, 3), m);
        assert_eq!(s.status(), AccountStatus::Churned);
        s.apply(&Ev::new(20 * DAY_MS, EventKind::Purchase, Some(10.0), 4), m);
        assert_eq!(s.status(), AccountStatus::WonBack);
        // A later cancellation, arriving out of order, ends it again.
        s.apply(&Ev::new(30 * DAY_MS, EventKind::Cancellation, None, 5), m);
        assert_eq!(s.status(), AccountStatus::Churned);
    }

    #[test]
    fn hot_fields_sit_in_the_first_lines() {
        use std::mem::{offset_of, size_of};
        assert_eq!(size_of::<AccountState>() % 64, 0);
        // Line 0: the interner's check and the fields most updates and evaluations read.
        for off in [
            offset_of!(AccountState, id_inline),
            offset_of!(AccountState, id_len),
            offset_of!(AccountState, first_seen_ms),
            offset_of!(AccountState, last_interaction_ms),
            offset_of!(AccountState, quiet_since_ms),
            offset_of!(AccountState, last_tx_day),
            offset_of!(AccountState, spike_active),
        ] {
            assert!(off < 64, "offset {off}");
        }
        assert!(offset_of!(AccountState, kind_last_min) >= 64 && offset_of!(AccountState, complaints) < 128);
        // Line 2 on: the entries end the hot lines, the cold fields start a line.
        let hot_end = offset_of!(AccountState, entries) + size_of::<Entries>();
        assert_eq!(hot_end % 64, 0);
        assert_eq!(offset_of!(AccountState, survey_ts_ms), hot_end);
        assert!(offset_of!(AccountState, survey_score) < hot_end);
        // The two cold lines, each prefetched on its own condition.
        for off in [
            offset_of!(AccountState, survey_tie),
            offset_of!(AccountState, timer_at),
            offset_of!(AccountState, cad_n),
        ] {
            assert!(off >= hot_end && off < hot_end + 64, "offset {off}");
        }
        assert_eq!(offset_of!(AccountState, kind_first_min), hot_end + 64);
        // The running long-window sums in what was spare: no line more.
        assert!(offset_of!(AccountState, long_surveys) < hot_end);
        assert!(offset_of!(AccountState, long_rest) >= hot_end + 64);
        assert_eq!(size_of::<AccountState>(), hot_end + 128);
    }

    #[test]
    fn entries_spill_to_the_heap_and_come_back() {
        let m = masks();
        let mut s = AccountState::default();
        let n = INLINE_ENTRIES as i64 + 5;
        // Days in descending order: every entry is inserted at the front.
        for (i, day) in (0..n).rev().enumerate() {
            s.apply(&Ev::new(day * DAY_MS, EventKind::Activity, None, i as u128), m);
        }
        assert_eq!(s.entries.len(), n as usize);
        assert!(s.entries.heap_bytes() > 0, "spilled");
        let all: Vec<DayEntry> = s.entries.iter().copied().collect();
        assert!(all.windows(2).all(|w| w[0].key < w[1].key));
        assert_eq!(s.oldest_day, 0);
        let q = super::super::ScoringConfig::default().quiet;
        // Evict all but the last 3 days: back inline.
        s.maintain(0, (n - 3) as i32, m, &q);
        assert_eq!(s.entries.len(), 3);
        assert_eq!(s.entries.heap_bytes(), 0);
        assert_eq!(s.oldest_day, (n - 3) as i32);
        let back: AccountState = postcard::from_bytes(&postcard::to_allocvec(&s).expect("ser")).expect("de");
        assert_eq!(back.entries, s.entries);
        // Inline eviction.
        s.maintain(0, (n - 1) as i32, m, &q);
        assert_eq!(s.entries.len(), 1);
        assert_eq!(s.entries.first().map(|e| e.day()), Some((n - 1) as i32));
    }

    #[test]
    fn inline_id() {
        let s = AccountState::with_id("acct-0000001");
        assert_eq!(s.inline_id_is("acct-0000001"), Some(true));
        assert_eq!(s.inline_id_is("acct-0000002"), Some(false));
        assert_eq!(s.inline_id_is("acct-00000011"), Some(false));
        assert_eq!(s.inline_id_is(""), Some(false));
        let long = AccountState::with_id("an-account-id-longer-than-16-bytes");
        assert_eq!(long.inline_id_is("an-account-id-longer-than-16-bytes"), None);
        assert_eq!(AccountState::with_id("").inline_id_is(""), Some(true));
        // Every inline length, and a difference at every position (the compare reads 8-16 byte
        // ids as two overlapping words).
        let base = "abcdefghijklmnop";
        for n in 0..=INLINE_ID {
            let id = &base[..n];
            let s = AccountState::with_id(id);
            assert_eq!(s.inline_id_is(id), Some(true), "length {n}");
            for at in 0..n {
                let mut other = id.as_bytes().to_vec();
                other[at] = b'X';
                let other = String::from_utf8(other).expect("ascii");
                assert_eq!(s.inline_id_is(&other), Some(false), "length {n}, byte {at}");
            }
            if n < INLINE_ID {
                assert_eq!(s.inline_id_is(&base[..n + 1]), Some(false), "length {n} + 1");
            }
        }
    }
}
