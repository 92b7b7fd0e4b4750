//! Churn risk in `[0, 1]`: BG/NBD's probability of being alive combined with hazard signals.
//!
//! # Formula
//!
//! ```text
//! churn_risk = 1                                              if cancelled
//!            = 1 − (1 − base) · Π_i (1 − β_i · h_i)           otherwise
//! ```
//!
//! `base`, the model's risk:
//! - repeat buyers (`x ≥ 1`) once population parameters were fitted (`refit_bgnbd`):
//!   `base = 1 − P(alive | x, t_x, T)` (BG/NBD, time in days);
//! - one-time buyers (`x = 0`, where BG/NBD always says P(alive) = 1), accounts without a
//!   transaction, and everyone before the first fit: the recency rule
//!   `base = 1 − 2^(−d / (2τ))`, `d` = days since the last transaction (since the last
//!   interaction when there was none), `τ` = the population's typical inter-purchase time
//!   (median of `t_x / x` over repeat buyers at the last fit; `default_purchase_gap_days`
//!   before). Risk is 0.5 after two typical gaps of silence, 0.75 after four.
//!
//! Hazards `h_i ∈ [0, 1]` with weights `β_i` (config):
//! - complaints: `min(1, open complaints / complaint_saturation)`;
//! - falling engagement: `clamp(1 − q, 0, 1)`, `q` the engagement ratio (0 when unknown);
//! - detractor: 1 when the latest survey score ≤ `detractor_max_score` (6), else 0;
//! - downgrade: 1 when a downgrade happened within the long window, else 0.
//!
//! The product form is a noisy-OR: each hazard independently removes a share `β_i·h_i` of the
//! remaining survival, so the risk stays in `[0, 1]`, rises with every signal and equals `base`
//! when no hazard is present.
//!
//! Once a churn model was fitted on the history ([`crate::models::churn`]), it replaces the
//! noisy-OR: `churn_risk = σ(b₀ + w·[base, h_engagement, h_complaints, h_detractor, h_downgrade])`,
//! the probability of cancelling within the model's horizon, and its alert threshold replaces
//! the configured one ([`alert_thresholds`]).

use serde::Serialize;

use super::config::ScoringConfig;
use super::state::{AccountState, day_of, first_minute};
use crate::event::EventKind;
use crate::models::bgnbd::BgNbdParams;
use crate::models::churn::ChurnModel;

/// Which rule gave the base risk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BaseRule {
    /// `1 − P(alive)` from BG/NBD.
    BgNbd,
    /// The recency rule (one-time buyers, no transaction, or no fitted parameters).
    Recency,
    /// Cancelled: risk 1.
    Cancelled,
}

/// Churn risk and how it was reached.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ChurnBreakdown {
    pub risk: f64,
    pub base: f64,
    pub rule: BaseRule,
    /// P(alive) when population parameters and a transaction exist (1.0 for `x = 0`).
    pub p_alive: Option<f64>,
    /// Hazards `[complaints, engagement, detractor, downgrade]`, each in `[0, 1]`.
    pub hazards: [f64; 4],
}

impl ChurnBreakdown {
    /// The churn model's features, in [`crate::models::churn::FEATURES`] order.
    pub fn features(&self) -> [f64; 5] {
        features(self.base, &self.hazards)
    }
}

#[inline]
fn features(base: f64, h: &[f64; 4]) -> [f64; 5] {
    [base, h[1], h[0], h[2], h[3]]
}

/// The population model the core holds: fitted parameters and typical inter-purchase time.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, serde::Deserialize)]
pub struct Population {
    pub params: Option<BgNbdParams>,
    /// Typical inter-purchase time τ in days.
    pub typical_gap_days: f64,
    /// The fitted churn model, if any. Not in snapshots: a restored core gets it back with the
    /// newest model set, as every partition does after adopting its state.
    #[serde(skip)]
    pub churn: Option<ChurnModel>,
}

impl Population {
    /// Before any fit: no BG/NBD parameters, no churn model, the configured typical gap.
    pub fn unfitted(cfg: &ScoringConfig) -> Self {
        Population {
            params: None,
            typical_gap_days: cfg.churn.default_purchase_gap_days,
            churn: None,
        }
    }
}

/// The churn-risk alert's thresholds `(raise, clear)`: an alert is raised when the risk rises to
/// `raise` and the episode ends when it falls below `clear`. The configured threshold when one
/// is set (cleared at `threshold − hysteresis`); else the fitted churn model's (cleared at
/// `threshold − min(hysteresis, threshold / 2)`); `None` without either: no churn-risk alerts.
#[inline]
pub fn alert_thresholds(pop: &Population, cfg: &ScoringConfig) -> Option<(f64, f64)> {
    let c = &cfg.churn;
    match (c.threshold, pop.churn) {
        (Some(t), _) => Some((t, t - c.hysteresis)),
        (None, Some(m)) => Some((
            m.alert_threshold,
            m.alert_threshold - c.hysteresis.min(m.alert_threshold / 2.0),
        )),
        (None, None) => None,
    }
}

/// Days of silence for which [`RecencyDecay`] holds the recency rule's base risk.
const DECAY_DAYS: usize = 1024;

/// The recency rule's base risk `1 − 2^(−d / (2τ))` for whole days `d` below 1,024, computed
/// once per τ: the rule runs at every evaluation, and a table read replaces a `powf` there.
/// The values are those of the formula, computed the same way.
#[derive(Debug, Clone, PartialEq)]
pub struct RecencyDecay {
    tau: f64,
    table: Box<[f64]>,
}

impl RecencyDecay {
    /// The table for the typical inter-purchase time `tau_days`.
    pub fn new(tau_days: f64) -> Self {
        RecencyDecay {
            tau: tau_days,
            table: (0..DECAY_DAYS).map(|d| recency_base(d as i32, tau_days)).collect(),
        }
    }

    /// `1 − 2^(−days / (2τ))`: from the table when `tau_days` is the table's τ and `days` is in
    /// it, from the formula otherwise.
    #[inline]
    pub fn base(&self, days: i32, tau_days: f64) -> f64 {
        match self.table.get(days as usize) {
            Some(&v) if tau_days == self.tau => v,
            _ => recency_base(days, tau_days),
        }
    }
}

#[inline]
fn recency_base(days: i32, tau_days: f64) -> f64 {
    1.0 - 2f64.powf(-(days.max(0) as f64) / (2.0 * tau_days))
}

/// Churn risk of an account at `now_ms`, given its engagement ratio `q`; `decay` speeds up the
/// recency rule (any τ gives the same result, the table only when it matches `pop`).
pub fn churn_risk(
    st: &AccountState,
    now_ms: i64,
    q: Option<f64>,
    pop: &Population,
    decay: &RecencyDecay,
    cfg: &ScoringConfig,
) -> ChurnBreakdown {
    ChurnParts::of_day(st, day_of(now_ms), pop, decay, cfg).with_engagement(q)
}

/// Everything of an account's churn risk but the engagement hazard, which needs the sums of the
/// account's activity over the windows (a walk over its daily entries).
#[derive(Debug, Clone, Copy)]
pub struct ChurnParts {
    base: f64,
    rule: BaseRule,
    p_alive: Option<f64>,
    /// `[complaints, (engagement: unset), detractor, downgrade]`.
    hazards: [f64; 4],
    betas: [f64; 4],
    model: Option<ChurnModel>,
}

impl ChurnParts {
    /// The parts of the churn risk of `st` on day `now_day` (the risk depends on `now` only
    /// through its day).
    #[inline]
    pub fn of_day(
        st: &AccountState,
        now_day: i32,
        pop: &Population,
        decay: &RecencyDecay,
        cfg: &ScoringConfig,
    ) -> Self {
        let c = &cfg.churn;
        let rfm = pop.params.and_then(|_| st.rfm(now_day));
        let p_alive = match (pop.params, rfm) {
            (Some(p), Some(r)) => Some(p.p_alive(&r)),
            _ => None,
        };
        let hazards = [
            (st.open_complaints() as f64 / c.complaint_saturation).min(1.0),
            0.0,
            match st.latest_survey() {
                Some((_, s)) if s <= c.detractor_max_score => 1.0,
                _ => 0.0,
            },
            // A downgrade on a day after `now_day − long`.
            if st.kind_last_min_at_least(
                EventKind::Downgrade,
                first_minute(now_day.saturating_sub(cfg.windows.long as i32 - 1)),
            ) {
                1.0
            } else {
                0.0
            },
        ];
        let betas = [
            c.complaint_weight,
            c.engagement_weight,
            c.detractor_weight,
            c.downgrade_weight,
        ];
        if st.cancelled() {
            return ChurnParts {
                base: 1.0,
                rule: BaseRule::Cancelled,
                p_alive,
                hazards,
                betas,
                model: pop.churn,
            };
        }
        let (base, rule) = match (p_alive, rfm) {
            (Some(p), Some(r)) if r.x >= 1.0 => ((1.0 - p).clamp(0.0, 1.0), BaseRule::BgNbd),
            _ => {
                let since_day = if st.tx_days > 0 {
                    Some(st.last_tx_day)
                } else if st.last_interaction_ms != i64::MIN {
                    Some(day_of(st.last_interaction_ms))
                } else if st.last_seen_ms != i64::MIN {
                    Some(day_of(st.last_seen_ms))
                } else {
                    None
                };
                let base = since_day.map_or(0.0, |d| decay.base((now_day - d).max(0), pop.typical_gap_days));
                (base, BaseRule::Recency)
            }
        };
        ChurnParts {
            base,
            rule,
            p_alive,
            hazards,
            betas,
            model: pop.churn,
        }
    }

    /// The risk with engagement hazard `h` (`clamp(1 − q, 0, 1)`). Rising in `h` (the noisy-OR's
    /// weights are within `0..=1`, the churn model's at least 0, and IEEE rounding keeps sums,
    /// products, differences and the exponential monotone), so `risk_with(0.0)` and
    /// `risk_with(1.0)` bound the risk whatever the engagement.
    #[inline]
    pub fn risk_with(&self, h: f64) -> f64 {
        if self.rule == BaseRule::Cancelled {
            return 1.0;
        }
        let mut hazards = self.hazards;
        hazards[1] = h;
        if let Some(m) = &self.model {
            return m.risk(&features(self.base, &hazards));
        }
        let survival: f64 = hazards.iter().zip(self.betas).map(|(h, b)| 1.0 - b * h).product();
        (1.0 - (1.0 - self.base) * survival).clamp(0.0, 1.0)
    }

    /// The full breakdown for engagement ratio `q` (`None`: no hazard).
    pub fn with_engagement(&self, q: Option<f64>) -> ChurnBreakdown {
        let h = q.map_or(0.0, |q| (1.0 - q).clamp(0.0, 1.0));
        let mut hazards = self.hazards;
        hazards[1] = h;
        ChurnBreakdown {
            risk: self.risk_with(h),
            base: self.base,
            rule: self.rule,
            p_alive: self.p_alive,
            hazards,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_decay_table_gives_the_formula() {
        let tau = 17.5;
        let t = RecencyDecay::new(tau);
        for d in [0, 1, 2, 35, 70, 1023, 1024, 5000] {
            let want = 1.0 - 2f64.powf(-(d as f64) / (2.0 * tau));
            assert_eq!(t.base(d, tau), want, "day {d}");
        }
        // Two typical gaps: 0.5; four: 0.75 (the module docs).
        assert!((t.base(35, tau) - 0.5).abs() < 1e-15);
        assert!((t.base(70, tau) - 0.75).abs() < 1e-15);
        // Another τ than the table's: the formula.
        assert_eq!(t.base(10, 5.0), 1.0 - 2f64.powf(-10.0 / 10.0));
        assert_eq!(t.base(10, 5.0), 0.5);
    }
}
