//! Episode tracking for SQL-defined rules: pure, no I/O, time comes in as an argument.
//!
//! A rule is a query evaluated again and again; each evaluation returns the set of
//! `account_id`s that match it *now*. [`EpisodeTracker::observe`] turns that sequence of sets
//! into alerts:
//!
//! - an account that appears (and had no open episode) opens an episode at the evaluation time
//!   and raises one [`RuleStatus::Raised`] alert;
//! - while it keeps appearing nothing more is emitted (once per episode);
//! - when it no longer appears the episode closes with one [`RuleStatus::Resolved`] notice;
//! - appearing again later opens a new episode (a new id).
//!
//! Ids are deterministic (see [`rule_alert_id`]), so re-emitting an alert after a restart with a
//! restored tracker yields the same id and sinks deliver it once. An evaluation that failed must
//! not be passed to `observe` (a failure is not "no rows"), so open episodes stay open across it.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

fn default_interval_ms() -> u64 {
    60_000
}
fn default_timeout_ms() -> u64 {
    30_000
}

/// One `[[rules]]` entry: a SELECT over the live tables returning an `account_id` column,
/// evaluated every `interval_ms` (the evaluation lives in `vigil-queries`).
///
/// ```toml
/// [[rules]]
/// name = "detractor_open_complaint"
/// description = "detractor survey with an open complaint"
/// sql = "SELECT account_id FROM health WHERE sentiment < 0 AND open_complaints > 0"
/// interval_ms = 30000
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// Unique; letters, digits, `_`, `-`, `.` (it is part of alert ids).
    pub name: String,
    /// One read-only query with an `account_id` column.
    pub sql: String,
    /// Used in alert messages.
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default = "default_interval_ms")]
    pub interval_ms: u64,
    /// Longest one evaluation may run.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

impl RuleConfig {
    /// A rule with the default interval and timeout.
    pub fn new(name: impl Into<String>, sql: impl Into<String>) -> Self {
        RuleConfig {
            name: name.into(),
            sql: sql.into(),
            description: None,
            interval_ms: default_interval_ms(),
            timeout_ms: default_timeout_ms(),
        }
    }

    /// Checks the name and the durations (the SQL is checked by planning it).
    pub fn validate(&self) -> Result<(), String> {
        let name_ok = !self.name.is_empty()
            && self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if !name_ok {
            return Err(format!(
                "rule name {:?} must be non-empty letters, digits, `_`, `-` or `.`",
                self.name
            ));
        }
        if self.interval_ms == 0 || self.timeout_ms == 0 {
            return Err(format!(
                "rule `{}`: `interval_ms` and `timeout_ms` must be > 0",
                self.name
            ));
        }
        Ok(())
    }
}

/// Whether a rule alert opens or closes an episode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleStatus {
    Raised,
    Resolved,
}

impl RuleStatus {
    /// `raised` or `resolved`.
    pub fn as_str(self) -> &'static str {
        match self {
            RuleStatus::Raised => "raised",
            RuleStatus::Resolved => "resolved",
        }
    }
}

/// One alert (or resolved notice) of a SQL rule for one account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleAlert {
    /// Deterministic id, see [`rule_alert_id`].
    pub id: String,
    /// The rule's name.
    pub rule: String,
    pub account_id: String,
    pub status: RuleStatus,
    /// The evaluation time that produced this alert.
    pub at_ms: i64,
    /// The evaluation time the episode was first seen.
    pub episode_start_ms: i64,
    /// Human-readable one-line explanation.
    pub message: String,
}

/// The id of a rule alert: `"rule/{rule}/{account_id}/{episode_start_ms}"` when raised, with
/// `"/resolved"` appended for the resolved notice.
pub fn rule_alert_id(rule: &str, account_id: &str, episode_start_ms: i64, status: RuleStatus) -> String {
    match status {
        RuleStatus::Raised => format!("rule/{rule}/{account_id}/{episode_start_ms}"),
        RuleStatus::Resolved => format!("rule/{rule}/{account_id}/{episode_start_ms}/resolved"),
    }
}

/// The open episodes of one rule. Serializable, so the caller can persist it beside the
/// scoring snapshot and keep ids stable across restarts.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct EpisodeTracker {
    rule: String,
    description: Option<String>,
    /// account_id → episode start.
    open: BTreeMap<String, i64>,
    /// The latest evaluation time observed (evaluations older than this are ignored).
    last_at_ms: Option<i64>,
}

impl EpisodeTracker {
    /// A tracker for the rule `rule` with no open episode. `description` (e.g. "detractor
    /// survey with an open complaint") is used in the alert messages.
    pub fn new(rule: impl Into<String>, description: Option<String>) -> Self {
        EpisodeTracker {
            rule: rule.into(),
            description,
            open: BTreeMap::new(),
            last_at_ms: None,
        }
    }

    /// The rule's name.
    pub fn rule(&self) -> &str {
        &self.rule
    }

    /// Accounts with an open episode and the episode start, by account id.
    pub fn open_episodes(&self) -> impl Iterator<Item = (&str, i64)> {
        self.open.iter().map(|(a, s)| (a.as_str(), *s))
    }

    /// Number of open episodes.
    pub fn open_count(&self) -> usize {
        self.open.len()
    }

    /// The latest evaluation time observed.
    pub fn last_at_ms(&self) -> Option<i64> {
        self.last_at_ms
    }

    /// Applies one successful evaluation at `at_ms` that returned `matching` (duplicates are
    /// fine). Returns the resolved notices, then the raised alerts, each sorted by account id.
    ///
    /// An evaluation older than the latest one observed is stale (it raced a newer one) and is
    /// ignored: it returns nothing and changes nothing.
    pub fn observe<I, S>(&mut self, at_ms: i64, matching: I) -> Vec<RuleAlert>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        if self.last_at_ms.is_some_and(|last| at_ms < last) {
            return Vec::new();
        }
        self.last_at_ms = Some(at_ms);
        let now: BTreeSet<String> = matching.into_iter().map(|s| s.as_ref().to_string()).collect();
        let mut out = Vec::new();
        let gone: Vec<String> = self.open.keys().filter(|a| !now.contains(*a)).cloned().collect();
        for account in gone {
            if let Some(start) = self.open.remove(&account) {
                out.push(self.alert(&account, RuleStatus::Resolved, at_ms, start));
            }
        }
        for account in now {
            if !self.open.contains_key(&account) {
                out.push(self.alert(&account, RuleStatus::Raised, at_ms, at_ms));
                self.open.insert(account, at_ms);
            }
        }
        out
    }

    fn alert(&self, account_id: &str, status: RuleStatus, at_ms: i64, start_ms: i64) -> RuleAlert {
        let message = match (status, &self.description) {
            (RuleStatus::Raised, Some(d)) => format!("{account_id} matches rule {}: {d}", self.rule),
            (RuleStatus::Raised, None) => format!("{account_id} matches rule {}", self.rule),
            (RuleStatus::Resolved, Some(d)) => format!("{account_id} no longer matches rule {}: {d}", self.rule),
            (RuleStatus::Resolved, None) => format!("{account_id} no longer matches rule {}", self.rule),
        };
        RuleAlert {
            id: rule_alert_id(&self.rule, account_id, start_ms, status),
            rule: self.rule.clone(),
            account_id: account_id.to_string(),
            status,
            at_ms,
            episode_start_ms: start_ms,
            message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: &[RuleAlert]) -> Vec<&str> {
        v.iter().map(|a| a.id.as_str()).collect()
    }

    #[test]
    fn raises_once_per_episode_and_resolves() {
        let mut t = EpisodeTracker::new("detractor", None);
        let a = t.observe(1_000, ["a", "b", "a"]);
        assert_eq!(ids(&a), ["rule/detractor/a/1000", "rule/detractor/b/1000"]);
        assert!(a.iter().all(|x| x.status == RuleStatus::Raised));
        assert!(t.observe(2_000, ["b", "a"]).is_empty(), "still matching: nothing new");
        let r = t.observe(3_000, ["b"]);
        assert_eq!(ids(&r), ["rule/detractor/a/1000/resolved"]);
        assert_eq!(r[0].status, RuleStatus::Resolved);
        assert_eq!((r[0].at_ms, r[0].episode_start_ms), (3_000, 1_000));
        let again = t.observe(4_000, ["a", "b"]);
        assert_eq!(ids(&again), ["rule/detractor/a/4000"], "a new episode, a new id");
        let all_gone = t.observe(5_000, Vec::<String>::new());
        assert_eq!(
            ids(&all_gone),
            ["rule/detractor/a/4000/resolved", "rule/detractor/b/1000/resolved"]
        );
        assert_eq!(t.open_count(), 0);
    }

    #[test]
    fn rule_config_defaults_and_validation() {
        let r: RuleConfig = serde_json::from_str(r#"{"name":"a.b-c_1","sql":"SELECT 1"}"#).expect("parses");
        assert_eq!((r.interval_ms, r.timeout_ms), (60_000, 30_000));
        r.validate().expect("valid");
        assert!(RuleConfig::new("a/b", "x").validate().is_err());
        assert!(RuleConfig::new("", "x").validate().is_err());
        assert!(serde_json::from_str::<RuleConfig>(r#"{"name":"a","sql":"x","every":1}"#).is_err());
    }

    #[test]
    fn stale_evaluations_are_ignored_and_state_round_trips() {
        let mut t = EpisodeTracker::new("r", Some("open complaint".into()));
        t.observe(10, ["x"]);
        assert!(
            t.observe(5, Vec::<&str>::new()).is_empty(),
            "older than the latest: ignored"
        );
        assert_eq!(t.open_episodes().collect::<Vec<_>>(), [("x", 10)]);
        let json = serde_json::to_string(&t).expect("serializes");
        let mut back: EpisodeTracker = serde_json::from_str(&json).expect("deserializes");
        assert_eq!(back, t);
        let r = back.observe(20, Vec::<&str>::new());
        assert_eq!(r[0].id, "rule/r/x/10/resolved");
        assert_eq!(r[0].message, "x no longer matches rule r: open complaint");
    }
}
