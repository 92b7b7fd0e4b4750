//! The health score: seven components, each 0-100, combined by normalised weights into a score
//! 0-100 with a band, and decomposed into signed contributions.
//!
//! # Components
//!
//! Windows are `S` (short, 30 d by default), `M` (mid, 30 d) and `L` (long, 90 d), each ending
//! today (inclusive); `S` is the engagement's recent window, compared with the rest of `L`. A component whose "data" condition fails is absent: it drops out and the weights
//! of the others are renormalised.
//!
//! | component | data when | score |
//! |---|---|---|
//! | engagement | an `activity` was ever seen and the account is older than `S` days | `q` = (activity in S / S) ÷ (activity in L but not S / (min(L, age) − S)), `100·(1 − 4^−q)`: at the baseline rate 75, half of it 50, none 0 (no baseline but recent activity: 100) |
//! | recency | an interaction was ever seen | `d` = days since the last interaction, `c` = learned cadence (or `default_cadence_days`): 100 while `d ≤ c`, then `100·2^−(d−c)/c` (halves every further cadence) |
//! | support | a ticket or complaint was ever opened | burden `B` = open tickets + 2·open complaints + 0.5·complaints in M; `100·h/(h + B)`, `h` = `support_half_burden` (2) |
//! | sentiment | a scored survey was ever seen | `10·(latest + mean of L)/2`, or `10·latest` when no survey in L |
//! | relationship | a meeting was ever seen | `100·min(1, meetings in L / meetings_target)` |
//! | commercial | a renewal or downgrade was ever seen | `100·(r + 1)/(r + g + 2)` with `r`, `g` = renewals, downgrades in L |
//! | advocacy | a referral was ever seen | `50 + 50·min(1, referrals in L / referrals_target)` |
//!
//! # Score and contributions
//!
//! With `w̃ᵢ = wᵢ / Σ_present w`: `score = Σ w̃ᵢ·sᵢ` and `contributionᵢ = w̃ᵢ·(sᵢ − 50)`, so the
//! contributions sum exactly to `score − 50`: a positive contribution pulled the score up from
//! the neutral 50, a negative one down. With no component the score is the neutral 50.
//! `trend_7d` = score now − the score recorded for the day 7 days ago (daily history).

use serde::Serialize;

use super::config::ScoringConfig;
use super::state::{AccountState, DAY_MS, WindowSums, day_of};
use crate::event::EventKind;

/// A health component.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Component {
    Engagement,
    Recency,
    Support,
    Sentiment,
    Relationship,
    Commercial,
    Advocacy,
}

impl Component {
    /// All components, in column order.
    pub const ALL: [Component; 7] = [
        Component::Engagement,
        Component::Recency,
        Component::Support,
        Component::Sentiment,
        Component::Relationship,
        Component::Commercial,
        Component::Advocacy,
    ];

    /// The component's name (also its column in the health table).
    pub fn as_str(self) -> &'static str {
        match self {
            Component::Engagement => "engagement",
            Component::Recency => "recency",
            Component::Support => "support",
            Component::Sentiment => "sentiment",
            Component::Relationship => "relationship",
            Component::Commercial => "commercial",
            Component::Advocacy => "advocacy",
        }
    }
}

/// Health band.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Band {
    Healthy,
    Watch,
    AtRisk,
}

impl Band {
    /// The band of `score` under the configured thresholds.
    pub fn of(score: f64, cfg: &ScoringConfig) -> Band {
        if score >= cfg.bands.healthy {
            Band::Healthy
        } else if score >= cfg.bands.watch {
            Band::Watch
        } else {
            Band::AtRisk
        }
    }

    /// `healthy`, `watch` or `at_risk`.
    pub fn as_str(self) -> &'static str {
        match self {
            Band::Healthy => "healthy",
            Band::Watch => "watch",
            Band::AtRisk => "at_risk",
        }
    }
}

/// One present component of a score.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ComponentScore {
    pub component: Component,
    /// The component's own score, 0-100.
    pub score: f64,
    /// Its weight normalised over the present components.
    pub weight: f64,
    /// `weight · (score − 50)`; the contributions sum to the health score − 50.
    pub contribution: f64,
}

/// The seven component scores of an account (`None` = no data), before weighting.
pub type ComponentValues = [Option<f64>; 7];

/// Engagement ratio `q` (recent rate over the account's own baseline rate); `None` when there
/// is no activity ever or no baseline period yet. `f64::INFINITY` for activity after a silent
/// baseline.
pub fn engagement_ratio(
    st: &AccountState,
    now_day: i32,
    activity_short: u32,
    activity_long: u32,
    cfg: &ScoringConfig,
) -> Option<f64> {
    if !st.has_kind(EventKind::Activity) {
        return None;
    }
    let (s, l) = (cfg.windows.short as i64, cfg.windows.long as i64);
    let age = now_day as i64 - day_of(st.first_seen_ms) as i64 + 1;
    let baseline_days = age.min(l) - s;
    if baseline_days <= 0 {
        return None;
    }
    let recent = activity_short as f64 / s as f64;
    let base = activity_long.saturating_sub(activity_short) as f64 / baseline_days as f64;
    Some(if base > 0.0 {
        recent / base
    } else if recent > 0.0 {
        f64::INFINITY
    } else {
        0.0
    })
}

/// Engagement score of ratio `q`: `100·(1 − 4^−q)`.
pub fn engagement_score(q: f64) -> f64 {
    if q.is_infinite() {
        100.0
    } else {
        100.0 * (1.0 - 4f64.powf(-q))
    }
}

/// Recency score of `days_since` the last interaction at cadence `cadence_days`.
pub fn recency_score(days_since: f64, cadence_days: f64) -> f64 {
    if days_since <= cadence_days {
        100.0
    } else {
        100.0 * 2f64.powf(-(days_since - cadence_days) / cadence_days)
    }
}

/// All seven component values of an account at `now_ms`, from its state, window sums `[S, M, L]`
/// and learned cadence. Reads only the sums `AccountState::score_sums` fills (the daily sweep's
/// score passes those).
pub fn component_values(
    st: &AccountState,
    now_ms: i64,
    sums: &[WindowSums; 3],
    cadence: Option<f64>,
    cfg: &ScoringConfig,
) -> ComponentValues {
    let now_day = day_of(now_ms);
    let [ws, wm, wl] = sums;
    let h = &cfg.health;
    let engagement = engagement_ratio(
        st,
        now_day,
        ws.count(EventKind::Activity),
        wl.count(EventKind::Activity),
        cfg,
    )
    .map(engagement_score);
    let recency = (st.last_interaction_ms != i64::MIN).then(|| {
        let days = (now_ms - st.last_interaction_ms).max(0) as f64 / DAY_MS as f64;
        recency_score(days, cadence.unwrap_or(h.default_cadence_days))
    });
    let support = (st.has_kind(EventKind::TicketOpened) || st.has_kind(EventKind::Complaint)).then(|| {
        let burden =
            st.open_tickets() as f64 + 2.0 * st.open_complaints() as f64 + 0.5 * wm.count(EventKind::Complaint) as f64;
        100.0 * h.support_half_burden / (h.support_half_burden + burden)
    });
    let sentiment = st.latest_survey().map(|(_, latest)| match wl.survey_mean() {
        Some(mean) => 10.0 * (latest + mean) / 2.0,
        None => 10.0 * latest,
    });
    let relationship = st
        .has_kind(EventKind::Meeting)
        .then(|| 100.0 * (wl.count(EventKind::Meeting) as f64 / h.meetings_target).min(1.0));
    let commercial = (st.has_kind(EventKind::Renewal) || st.has_kind(EventKind::Downgrade)).then(|| {
        let r = wl.count(EventKind::Renewal) as f64;
        let g = wl.count(EventKind::Downgrade) as f64;
        100.0 * (r + 1.0) / (r + g + 2.0)
    });
    let advocacy = st
        .has_kind(EventKind::Referral)
        .then(|| 50.0 + 50.0 * (wl.count(EventKind::Referral) as f64 / h.referrals_target).min(1.0));
    [
        engagement,
        recency,
        support,
        sentiment,
        relationship,
        commercial,
        advocacy,
    ]
}

/// Combines component values into `(score, present components with weights and contributions)`.
pub fn combine(values: &ComponentValues, cfg: &ScoringConfig) -> (f64, Vec<ComponentScore>) {
    let mut parts = Vec::with_capacity(7);
    let score = combine_with(values, cfg, |p| parts.push(p));
    (score, parts)
}

/// The score of [`combine`] alone (no list of parts: the daily sweep's history).
pub fn combined_score(values: &ComponentValues, cfg: &ScoringConfig) -> f64 {
    combine_with(values, cfg, |_| {})
}

/// The weighted score, each component's part handed to `part` in order.
#[inline]
fn combine_with(values: &ComponentValues, cfg: &ScoringConfig, mut part: impl FnMut(ComponentScore)) -> f64 {
    let weights = cfg.weights.as_array();
    let total: f64 = values
        .iter()
        .zip(weights)
        .filter(|(v, w)| v.is_some() && *w > 0.0)
        .map(|(_, w)| w)
        .sum();
    if total <= 0.0 {
        return 50.0;
    }
    let mut score = 0.0;
    for ((v, w), c) in values.iter().zip(weights).zip(Component::ALL) {
        if let Some(s) = v
            && w > 0.0
        {
            let wn = w / total;
            score += wn * s;
            part(ComponentScore {
                component: c,
                score: *s,
                weight: wn,
                contribution: wn * (s - 50.0),
            });
        }
    }
    score
}
