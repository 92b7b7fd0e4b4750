//! Configuration of the scoring core: windows, lateness, weights, bands, churn and alert rules.
//!
//! Every struct derives `Deserialize` with `#[serde(default)]`, so a TOML or JSON file only
//! names what it changes. [`ScoringConfig::validate`] rejects inconsistent values.

use serde::{Deserialize, Serialize};

use crate::error::EngineError;
use crate::event::EventKind;

/// Everything the scoring core can be told. Immutable for the life of a core (it is part of a
/// snapshot).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScoringConfig {
    /// Allowed lateness in days (default 7). The watermark is `max(max event time, clock) -
    /// lateness`; an event older than the watermark is late: counted and reported, not applied.
    pub lateness_days: u32,
    /// The three rolling windows, in days.
    pub windows: Windows,
    /// Kinds whose events are BG/NBD transactions (at most one per day counts). Default:
    /// purchase and renewal.
    #[serde(with = "kind_list")]
    pub transaction_kinds: Vec<EventKind>,
    /// Kinds that count as an interaction of the account (recency, cadence, quiet detection).
    /// Default: every kind except `ticket_closed` and `complaint_resolved` (our side's actions).
    #[serde(with = "kind_list")]
    pub interaction_kinds: Vec<EventKind>,
    /// Weights of the health components (any non-negative scale; normalised over the components
    /// that have data).
    pub weights: Weights,
    /// Health score bands.
    pub bands: Bands,
    /// Shape constants of the health components.
    pub health: HealthParams,
    /// Churn risk formula constants and its alert threshold.
    pub churn: ChurnConfig,
    /// Quiet key-account detection.
    pub quiet: QuietConfig,
    /// Complaint spike alert.
    pub complaint_spike: SpikeConfig,
    /// Evaluate churn / complaint-spike / recovered alerts (and quiet timer scheduling) for the
    /// accounts touched by an `apply_batch` within that call (default true). When false they are
    /// evaluated at the next `advance_clock`.
    pub alerts_on_apply: bool,
}

impl Default for ScoringConfig {
    fn default() -> Self {
        ScoringConfig {
            lateness_days: 7,
            windows: Windows::default(),
            transaction_kinds: vec![EventKind::Purchase, EventKind::Renewal],
            interaction_kinds: EventKind::ALL
                .iter()
                .copied()
                .filter(|k| !matches!(k, EventKind::TicketClosed | EventKind::ComplaintResolved))
                .collect(),
            weights: Weights::default(),
            bands: Bands::default(),
            health: HealthParams::default(),
            churn: ChurnConfig::default(),
            quiet: QuietConfig::default(),
            complaint_spike: SpikeConfig::default(),
            alerts_on_apply: true,
        }
    }
}

/// The three rolling windows (days, each including today): `short <= mid < long`, and `long`
/// must exceed the lateness so that no non-late event can fall out of the stored days.
/// `short` is the recent window of the engagement ratio (the last 30 days against the rest of
/// the long window: a week of product use is too few days to tell a slowdown from noise),
/// `mid` the window of recent complaints and `events_30d`, `long` every other window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Windows {
    pub short: u32,
    pub mid: u32,
    pub long: u32,
}

impl Default for Windows {
    fn default() -> Self {
        Windows {
            short: 30,
            mid: 30,
            long: 90,
        }
    }
}

impl Windows {
    /// The windows as an array `[short, mid, long]`.
    pub fn as_array(&self) -> [u32; 3] {
        [self.short, self.mid, self.long]
    }
}

/// Weights of the seven health components.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Weights {
    pub engagement: f64,
    pub recency: f64,
    pub support: f64,
    pub sentiment: f64,
    pub relationship: f64,
    pub commercial: f64,
    pub advocacy: f64,
}

impl Default for Weights {
    fn default() -> Self {
        Weights {
            engagement: 0.35,
            recency: 0.10,
            support: 0.20,
            sentiment: 0.15,
            relationship: 0.10,
            commercial: 0.05,
            advocacy: 0.05,
        }
    }
}

impl Weights {
    /// The weights in [`crate::scoring::Component::ALL`] order.
    pub fn as_array(&self) -> [f64; 7] {
        [
            self.engagement,
            self.recency,
            self.support,
            self.sentiment,
            self.relationship,
            self.commercial,
            self.advocacy,
        ]
    }
}

/// Band thresholds: `score >= healthy` is healthy, `score >= watch` is watch, else at risk.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Bands {
    pub healthy: f64,
    pub watch: f64,
}

impl Default for Bands {
    fn default() -> Self {
        Bands {
            healthy: 70.0,
            watch: 40.0,
        }
    }
}

/// Constants of the health components (see [`crate::scoring::health`] for the formulas).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HealthParams {
    /// Cadence (days between interactions) assumed for recency before one is learned.
    pub default_cadence_days: f64,
    /// Support burden at which the support component is 50.
    pub support_half_burden: f64,
    /// Meetings in the long window that give relationship 100.
    pub meetings_target: f64,
    /// Referrals in the long window that give advocacy 100.
    pub referrals_target: f64,
}

impl Default for HealthParams {
    fn default() -> Self {
        HealthParams {
            default_cadence_days: 7.0,
            support_half_burden: 2.0,
            meetings_target: 3.0,
            referrals_target: 1.0,
        }
    }
}

/// Churn risk constants (see [`crate::scoring::churn`]) and the alert threshold.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChurnConfig {
    /// A `churn_risk` alert is raised when risk rises to at least this (once per episode).
    /// Unset (the default): the fitted churn model's threshold, chosen on the history's own
    /// cancellations; no churn-risk alert until a churn model is fitted (the unfitted risk is
    /// not a probability, and a fixed threshold on it alerts on far more accounts than leave).
    pub threshold: Option<f64>,
    /// The episode ends when risk falls below `threshold - hysteresis` (at most half the
    /// fitted model's threshold).
    pub hysteresis: f64,
    /// Weight of the unresolved-complaints hazard.
    pub complaint_weight: f64,
    /// Weight of the falling-engagement hazard.
    pub engagement_weight: f64,
    /// Weight of the detractor-survey hazard.
    pub detractor_weight: f64,
    /// Weight of the recent-downgrade hazard.
    pub downgrade_weight: f64,
    /// A latest survey score at or below this is a detractor.
    pub detractor_max_score: f64,
    /// Open complaints at which the complaint hazard saturates at 1.
    pub complaint_saturation: f64,
    /// Typical inter-purchase time (days) used by the recency rule before the first
    /// `refit_bgnbd`.
    pub default_purchase_gap_days: f64,
}

impl Default for ChurnConfig {
    fn default() -> Self {
        ChurnConfig {
            threshold: None,
            hysteresis: 0.1,
            complaint_weight: 0.3,
            engagement_weight: 0.3,
            detractor_weight: 0.25,
            downgrade_weight: 0.3,
            detractor_max_score: 6.0,
            complaint_saturation: 2.0,
            default_purchase_gap_days: 30.0,
        }
    }
}

/// Quiet key-account detection.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QuietConfig {
    /// Quiet when the time since the last interaction reaches `k` × the learned gap.
    pub k: f64,
    /// Accounts with ARR at or above this are key accounts (besides tier = key).
    pub key_arr_threshold: f64,
    /// Floor of the learned gap, days.
    pub min_gap_days: f64,
    /// Ceiling of the learned gap, days.
    pub max_gap_days: f64,
    /// Gaps needed before a cadence is considered learned.
    pub min_gaps: u32,
    /// EWMA smoothing of the log gaps (weight of the newest gap).
    pub ewma_alpha: f64,
}

impl Default for QuietConfig {
    fn default() -> Self {
        QuietConfig {
            k: 3.0,
            key_arr_threshold: 100_000.0,
            min_gap_days: 1.0,
            max_gap_days: 60.0,
            min_gaps: 3,
            ewma_alpha: 0.2,
        }
    }
}

/// Complaint spike: at least `count` complaints within the last `window_days` days.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SpikeConfig {
    pub count: u32,
    pub window_days: u32,
}

impl Default for SpikeConfig {
    fn default() -> Self {
        SpikeConfig {
            count: 3,
            window_days: 7,
        }
    }
}

impl ScoringConfig {
    /// Checks the configuration for values the core cannot work with.
    pub fn validate(&self) -> Result<(), EngineError> {
        let fail = |m: String| Err(EngineError::Config(m));
        let w = self.windows;
        if !(w.short >= 1 && w.short <= w.mid && w.mid < w.long) {
            return fail(format!("windows must satisfy 1 <= short <= mid < long, got {w:?}"));
        }
        if w.long > 3650 {
            return fail(format!("long window {} days is over the limit of 3650", w.long));
        }
        if self.lateness_days >= w.long {
            return fail(format!(
                "lateness ({} days) must be below the long window ({} days)",
                self.lateness_days, w.long
            ));
        }
        if self.complaint_spike.window_days == 0 || self.complaint_spike.window_days > w.long {
            return fail("complaint_spike.window_days must be within 1..=windows.long".into());
        }
        if self.complaint_spike.count == 0 {
            return fail("complaint_spike.count must be at least 1".into());
        }
        if self.weights.as_array().iter().any(|x| !x.is_finite() || *x < 0.0) {
            return fail("weights must be finite and >= 0".into());
        }
        let b = self.bands;
        if !(b.watch.is_finite() && b.healthy.is_finite() && b.watch <= b.healthy) {
            return fail("bands must satisfy watch <= healthy".into());
        }
        let h = self.health;
        for (name, v) in [
            ("health.default_cadence_days", h.default_cadence_days),
            ("health.support_half_burden", h.support_half_burden),
            ("health.meetings_target", h.meetings_target),
            ("health.referrals_target", h.referrals_target),
            ("churn.complaint_saturation", self.churn.complaint_saturation),
            ("churn.default_purchase_gap_days", self.churn.default_purchase_gap_days),
            ("quiet.k", self.quiet.k),
            ("quiet.min_gap_days", self.quiet.min_gap_days),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return fail(format!("{name} must be finite and > 0, got {v}"));
            }
        }
        let c = self.churn;
        for (name, v) in [
            ("churn.threshold", c.threshold.unwrap_or(1.0)),
            ("churn.complaint_weight", c.complaint_weight),
            ("churn.engagement_weight", c.engagement_weight),
            ("churn.detractor_weight", c.detractor_weight),
            ("churn.downgrade_weight", c.downgrade_weight),
            ("quiet.ewma_alpha", self.quiet.ewma_alpha),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return fail(format!("{name} must be within 0..=1, got {v}"));
            }
        }
        if !(c.hysteresis >= 0.0 && c.hysteresis <= c.threshold.unwrap_or(1.0)) {
            return fail("churn.hysteresis must be within 0..=threshold (0..=1 without one)".into());
        }
        let q = self.quiet;
        if !(q.max_gap_days.is_finite() && q.max_gap_days >= q.min_gap_days) {
            return fail("quiet.max_gap_days must be >= quiet.min_gap_days".into());
        }
        if q.key_arr_threshold.is_nan() {
            return fail("quiet.key_arr_threshold must be a number".into());
        }
        if self.quiet.ewma_alpha == 0.0 {
            return fail("quiet.ewma_alpha must be > 0".into());
        }
        Ok(())
    }

    /// Bit mask (bit = kind code) of the transaction kinds.
    pub(crate) fn transaction_mask(&self) -> u16 {
        mask(&self.transaction_kinds)
    }

    /// Bit mask (bit = kind code) of the interaction kinds.
    pub(crate) fn interaction_mask(&self) -> u16 {
        mask(&self.interaction_kinds)
    }
}

fn mask(kinds: &[EventKind]) -> u16 {
    kinds.iter().fold(0u16, |m, k| m | (1 << *k as u8))
}

/// Serde of a list of kinds as their contract names.
mod kind_list {
    use serde::de::Error;
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::event::EventKind;

    pub fn serialize<S: Serializer>(kinds: &[EventKind], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(kinds.iter().map(|k| k.as_str()))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<EventKind>, D::Error> {
        let names = Vec::<String>::deserialize(d)?;
        names
            .iter()
            .map(|n| EventKind::parse(n).ok_or_else(|| D::Error::custom(format!("unknown event kind `{n}`"))))
            .collect()
    }
}
