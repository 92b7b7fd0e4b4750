//! [`HookAlert`]: what every hook delivers — an engine alert or a SQL rule alert, with the
//! account's tier for routing. Stored as is in the outbox and serialized as the webhook body.

use serde::{Deserialize, Serialize};
use vigil_engine::rules::{RuleAlert, RuleStatus};
use vigil_engine::scoring::{Alert, AlertKind, Tier};

/// The kind of a delivered alert: the engine's four, plus `rule` for SQL rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HookKind {
    Quiet,
    Recovered,
    ChurnRisk,
    ComplaintSpike,
    Rule,
}

impl HookKind {
    /// Every kind, for validation and docs.
    pub const ALL: [HookKind; 5] = [
        HookKind::Quiet,
        HookKind::Recovered,
        HookKind::ChurnRisk,
        HookKind::ComplaintSpike,
        HookKind::Rule,
    ];

    /// The kind's name (as in config `kinds = [...]` and the body's `kind`).
    pub fn as_str(self) -> &'static str {
        match self {
            HookKind::Quiet => "quiet",
            HookKind::Recovered => "recovered",
            HookKind::ChurnRisk => "churn_risk",
            HookKind::ComplaintSpike => "complaint_spike",
            HookKind::Rule => "rule",
        }
    }
}

impl From<AlertKind> for HookKind {
    fn from(k: AlertKind) -> Self {
        match k {
            AlertKind::Quiet => HookKind::Quiet,
            AlertKind::Recovered => HookKind::Recovered,
            AlertKind::ChurnRisk => HookKind::ChurnRisk,
            AlertKind::ComplaintSpike => HookKind::ComplaintSpike,
        }
    }
}

/// `raised` (a condition started) or `resolved` (it ended: `recovered`, a rule's resolved notice).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HookStatus {
    Raised,
    Resolved,
}

impl HookStatus {
    /// `raised` or `resolved`.
    pub fn as_str(self) -> &'static str {
        match self {
            HookStatus::Raised => "raised",
            HookStatus::Resolved => "resolved",
        }
    }
}

/// One alert as the hooks deliver it. `id` is deterministic (same episode, same id) and is the
/// webhook's `Idempotency-Key`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HookAlert {
    pub id: String,
    pub kind: HookKind,
    pub status: HookStatus,
    /// The rule's name for `kind = rule`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    pub account_id: String,
    /// The account's tier when the alert was raised (routing uses it).
    pub tier: Tier,
    /// Engine time (ms since the epoch, UTC) the condition was met.
    pub at_ms: i64,
    /// Start of the episode (ms since the epoch, UTC).
    pub episode_start_ms: i64,
    /// The measured value (engine alerts; see `vigil_engine::scoring::alert`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// The threshold it is compared with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// Human-readable one-line explanation.
    pub message: String,
}

impl HookAlert {
    /// An engine alert for an account of `tier` (the pipeline knows it from the scoring state:
    /// `Tier::Key` for key accounts).
    pub fn from_engine(alert: &Alert, tier: Tier) -> Self {
        let status = match alert.kind {
            AlertKind::Recovered => HookStatus::Resolved,
            AlertKind::Quiet | AlertKind::ChurnRisk | AlertKind::ComplaintSpike => HookStatus::Raised,
        };
        HookAlert {
            id: alert.id.clone(),
            kind: alert.kind.into(),
            status,
            rule: None,
            account_id: alert.account_id.clone(),
            tier,
            at_ms: alert.at_ms,
            episode_start_ms: alert.episode_start_ms,
            value: Some(alert.value),
            threshold: Some(alert.threshold),
            message: alert.message.clone(),
        }
    }

    /// A SQL rule alert for an account of `tier`.
    pub fn from_rule(alert: &RuleAlert, tier: Tier) -> Self {
        HookAlert {
            id: alert.id.clone(),
            kind: HookKind::Rule,
            status: match alert.status {
                RuleStatus::Raised => HookStatus::Raised,
                RuleStatus::Resolved => HookStatus::Resolved,
            },
            rule: Some(alert.rule.clone()),
            account_id: alert.account_id.clone(),
            tier,
            at_ms: alert.at_ms,
            episode_start_ms: alert.episode_start_ms,
            value: None,
            threshold: None,
            message: alert.message.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_engine_and_rule_alerts() {
        let a = Alert::new("acct-1", AlertKind::Recovered, 5_000, 1_000, 12.0, 9.0, "back".into());
        let h = HookAlert::from_engine(&a, Tier::Key);
        assert_eq!(h.id, a.id);
        assert_eq!(
            (h.kind, h.status, h.tier),
            (HookKind::Recovered, HookStatus::Resolved, Tier::Key)
        );
        assert_eq!((h.value, h.threshold), (Some(12.0), Some(9.0)));
        let mut t = vigil_engine::rules::EpisodeTracker::new("r1", None);
        let r = t.observe(7, ["acct-2"]).remove(0);
        let h = HookAlert::from_rule(&r, Tier::Standard);
        assert_eq!((h.kind, h.status), (HookKind::Rule, HookStatus::Raised));
        assert_eq!(h.rule.as_deref(), Some("r1"));
        assert_eq!(h.id, "rule/r1/acct-2/7");
        let json = serde_json::to_value(&h).expect("json");
        assert_eq!(json["kind"], "rule");
        assert!(json.get("value").is_none(), "absent values are omitted");
        let back: HookAlert = serde_json::from_value(json).expect("round trip");
        assert_eq!(back, h);
    }
}
