//! SQL rules (`[[rules]]`): read-only SELECTs over the live tables, evaluated on an interval;
//! every returned `account_id` raises the rule's alert once per episode and a resolved notice
//! when it stops matching ([`vigil_engine::rules::EpisodeTracker`]).
//!
//! - At start, [`RuleSet::plan`] plans every rule through the read-only guard and checks it has
//!   an `account_id` column; any rule that does not plan is rejected with the SQL error.
//! - [`RuleSet::evaluate_due`] runs the rules whose interval elapsed, each bounded by its
//!   `timeout_ms`. A rule that fails at run time is reported in [`RuleReport::errors`], keeps its
//!   open episodes (a failure is not "no rows"), is retried after a short backoff (1 s doubling,
//!   capped at its interval), and does not stop the other rules.
//! - [`run`] is the loop the pipeline spawns: it evaluates due rules and sends their alerts.
//!
//! Rules are planned again at each evaluation, so tables whose providers are replaced between
//! evaluations are read fresh.

use std::collections::BTreeSet;
use std::time::Duration;

use arrow::array::{Array, AsArray};
use arrow::compute::{can_cast_types, cast};
use arrow::datatypes::DataType;
use datafusion::execution::context::SessionContext;
use datafusion::logical_expr::LogicalPlan;
use tokio::sync::{mpsc, watch};
use vigil_engine::rules::{EpisodeTracker, RuleAlert, RuleConfig};

use crate::error::QueryError;
use crate::readonly;

/// The column every rule must return.
pub const ACCOUNT_ID_COLUMN: &str = "account_id";

/// Why a rule was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    /// The rule's config is invalid (name, durations, duplicate name, missing column).
    #[error("rule `{rule}`: {detail}")]
    Invalid { rule: String, detail: String },
    /// The rule's SQL does not parse or plan, or is not read-only.
    #[error("rule `{rule}`: {source}")]
    Plan {
        rule: String,
        #[source]
        source: QueryError,
    },
    /// Running the rule failed.
    #[error("rule `{rule}` failed: {source}")]
    Run {
        rule: String,
        #[source]
        source: QueryError,
    },
    /// Running the rule took longer than its `timeout_ms`.
    #[error("rule `{rule}` timed out after {timeout_ms} ms")]
    Timeout { rule: String, timeout_ms: u64 },
}

impl RuleError {
    /// The rule's name.
    pub fn rule(&self) -> &str {
        match self {
            RuleError::Invalid { rule, .. }
            | RuleError::Plan { rule, .. }
            | RuleError::Run { rule, .. }
            | RuleError::Timeout { rule, .. } => rule,
        }
    }
}

/// What one evaluation round produced.
#[derive(Debug, Default)]
pub struct RuleReport {
    /// Raised and resolved alerts of every rule evaluated, rule by rule in config order.
    pub alerts: Vec<RuleAlert>,
    /// Rules that failed this round (retried later).
    pub errors: Vec<RuleError>,
    /// Rules evaluated successfully this round.
    pub evaluated: usize,
}

/// A rule's state, for status output.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleState {
    pub name: String,
    pub open_episodes: usize,
    pub consecutive_failures: u32,
    pub last_error: Option<String>,
    pub next_due_ms: i64,
}

#[derive(Debug)]
struct LiveRule {
    config: RuleConfig,
    tracker: EpisodeTracker,
    next_due_ms: i64,
    failures: u32,
    last_error: Option<String>,
}

/// The planned rules and their episode trackers.
#[derive(Debug)]
pub struct RuleSet {
    rules: Vec<LiveRule>,
}

async fn plan_rule(ctx: &SessionContext, rule: &RuleConfig) -> Result<LogicalPlan, QueryError> {
    let mut statements = readonly::parse_read_only(&rule.sql)?;
    if statements.len() != 1 {
        return Err(QueryError::Refused(format!(
            "a rule is one statement, got {}",
            statements.len()
        )));
    }
    let plan = ctx.state().statement_to_plan(statements.remove(0)).await?;
    readonly::verify_plan(&plan)?;
    Ok(plan)
}

fn check_columns(rule: &RuleConfig, plan: &LogicalPlan) -> Result<(), RuleError> {
    let invalid = |detail: String| RuleError::Invalid {
        rule: rule.name.clone(),
        detail,
    };
    let field = plan
        .schema()
        .fields()
        .iter()
        .find(|f| f.name() == ACCOUNT_ID_COLUMN)
        .ok_or_else(|| {
            let cols: Vec<&str> = plan.schema().fields().iter().map(|f| f.name().as_str()).collect();
            invalid(format!(
                "the query must return an `{ACCOUNT_ID_COLUMN}` column (it returns: {})",
                cols.join(", ")
            ))
        })?;
    if !can_cast_types(field.data_type(), &DataType::Utf8) {
        return Err(invalid(format!(
            "`{ACCOUNT_ID_COLUMN}` is {} and cannot be read as text",
            field.data_type()
        )));
    }
    Ok(())
}

/// Runs one rule and returns the distinct account ids it matched.
async fn matching_accounts(ctx: &SessionContext, rule: &RuleConfig) -> Result<BTreeSet<String>, RuleError> {
    let run = |source: QueryError| RuleError::Run {
        rule: rule.name.clone(),
        source,
    };
    let work = async {
        let plan = plan_rule(ctx, rule).await?;
        let df = ctx.execute_logical_plan(plan).await?;
        Ok::<_, QueryError>(df.collect().await?)
    };
    let batches = tokio::time::timeout(Duration::from_millis(rule.timeout_ms), work)
        .await
        .map_err(|_| RuleError::Timeout {
            rule: rule.name.clone(),
            timeout_ms: rule.timeout_ms,
        })?
        .map_err(run)?;
    let mut out = BTreeSet::new();
    for b in &batches {
        let col = b.column_by_name(ACCOUNT_ID_COLUMN).ok_or_else(|| RuleError::Invalid {
            rule: rule.name.clone(),
            detail: format!("the result has no `{ACCOUNT_ID_COLUMN}` column"),
        })?;
        let text = cast(col, &DataType::Utf8).map_err(|e| run(QueryError::Arrow(e)))?;
        let strings = text.as_string::<i32>();
        for i in 0..strings.len() {
            if strings.is_valid(i) {
                out.insert(strings.value(i).to_string());
            }
        }
    }
    Ok(out)
}

impl RuleSet {
    /// Validates and plans every rule against `ctx`; the first rule that is invalid or does
    /// not plan is returned as the error (with the SQL error). Every rule is due at once.
    pub async fn plan(ctx: &SessionContext, rules: &[RuleConfig]) -> Result<RuleSet, RuleError> {
        let mut names = BTreeSet::new();
        let mut live = Vec::with_capacity(rules.len());
        for r in rules {
            r.validate().map_err(|detail| RuleError::Invalid {
                rule: r.name.clone(),
                detail,
            })?;
            if !names.insert(r.name.as_str()) {
                return Err(RuleError::Invalid {
                    rule: r.name.clone(),
                    detail: "two rules have this name".into(),
                });
            }
            let plan = plan_rule(ctx, r).await.map_err(|source| RuleError::Plan {
                rule: r.name.clone(),
                source,
            })?;
            check_columns(r, &plan)?;
            live.push(LiveRule {
                tracker: EpisodeTracker::new(r.name.clone(), r.description.clone()),
                config: r.clone(),
                next_due_ms: i64::MIN,
                failures: 0,
                last_error: None,
            });
        }
        Ok(RuleSet { rules: live })
    }

    /// Number of rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether there is no rule.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// When the next rule is due (ms), None without rules.
    pub fn next_due_ms(&self) -> Option<i64> {
        self.rules.iter().map(|r| r.next_due_ms).min()
    }

    /// Evaluates the rules due at `now_ms`.
    pub async fn evaluate_due(&mut self, ctx: &SessionContext, now_ms: i64) -> RuleReport {
        self.evaluate(ctx, now_ms, false).await
    }

    /// Evaluates every rule now, due or not.
    pub async fn evaluate_all(&mut self, ctx: &SessionContext, now_ms: i64) -> RuleReport {
        self.evaluate(ctx, now_ms, true).await
    }

    async fn evaluate(&mut self, ctx: &SessionContext, now_ms: i64, all: bool) -> RuleReport {
        let mut report = RuleReport::default();
        for rule in &mut self.rules {
            if !all && rule.next_due_ms > now_ms {
                continue;
            }
            let interval = i64::try_from(rule.config.interval_ms).unwrap_or(i64::MAX);
            match matching_accounts(ctx, &rule.config).await {
                Ok(accounts) => {
                    report.alerts.extend(rule.tracker.observe(now_ms, accounts));
                    report.evaluated += 1;
                    rule.failures = 0;
                    rule.last_error = None;
                    rule.next_due_ms = now_ms.saturating_add(interval);
                }
                Err(e) => {
                    rule.failures = rule.failures.saturating_add(1);
                    rule.last_error = Some(e.to_string());
                    let backoff = 1_000i64.saturating_mul(1 << rule.failures.min(20).saturating_sub(1));
                    rule.next_due_ms = now_ms.saturating_add(backoff.min(interval));
                    tracing::warn!(rule = %rule.config.name, failures = rule.failures, error = %e, "rule evaluation failed; will retry");
                    report.errors.push(e);
                }
            }
        }
        report
    }

    /// Each rule's state.
    pub fn states(&self) -> Vec<RuleState> {
        self.rules
            .iter()
            .map(|r| RuleState {
                name: r.config.name.clone(),
                open_episodes: r.tracker.open_count(),
                consecutive_failures: r.failures,
                last_error: r.last_error.clone(),
                next_due_ms: r.next_due_ms,
            })
            .collect()
    }

    /// The episode trackers (serializable), to persist beside the scoring snapshot.
    pub fn trackers(&self) -> Vec<EpisodeTracker> {
        self.rules.iter().map(|r| r.tracker.clone()).collect()
    }

    /// Puts back persisted trackers, matched by rule name (trackers of rules no longer
    /// configured are ignored). Returns how many were restored.
    pub fn restore_trackers(&mut self, trackers: Vec<EpisodeTracker>) -> usize {
        let mut n = 0;
        for t in trackers {
            if let Some(r) = self.rules.iter_mut().find(|r| r.config.name == t.rule()) {
                r.tracker = t;
                n += 1;
            }
        }
        n
    }
}

/// Evaluates due rules until `shutdown` turns true or the receiver of `alerts` is gone.
/// `clock` gives the evaluation time in ms (wall clock or engine time); failures are logged
/// and retried, alerts are sent in order.
pub async fn run(
    ctx: SessionContext,
    mut rules: RuleSet,
    clock: impl Fn() -> i64 + Send,
    alerts: mpsc::Sender<RuleAlert>,
    mut shutdown: watch::Receiver<bool>,
) -> RuleSet {
    loop {
        if *shutdown.borrow() {
            return rules;
        }
        let now = clock();
        let report = rules.evaluate_due(&ctx, now).await;
        for a in report.alerts {
            if alerts.send(a).await.is_err() {
                return rules;
            }
        }
        let wait_ms = rules
            .next_due_ms()
            .map_or(1_000, |due| due.saturating_sub(clock()).clamp(10, 1_000));
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(u64::try_from(wait_ms).unwrap_or(1_000))) => {}
            _ = shutdown.changed() => return rules,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int64Array, RecordBatch, StringArray};
    use arrow::datatypes::{Field, Schema};
    use datafusion::datasource::MemTable;
    use vigil_engine::rules::RuleStatus;

    use super::*;

    /// Replaces the `health` table with rows `(account_id, sentiment, open_complaints)`.
    fn set_health(ctx: &SessionContext, rows: &[(&str, i64, i64)]) {
        let schema = Arc::new(Schema::new(vec![
            Field::new("account_id", DataType::Utf8, false),
            Field::new("sentiment", DataType::Int64, false),
            Field::new("open_complaints", DataType::Int64, false),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0))),
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.1))),
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.2))),
            ],
        )
        .expect("batch");
        let table = MemTable::try_new(schema, vec![vec![batch]]).expect("table");
        let _ = ctx.deregister_table("health").expect("deregister");
        ctx.register_table("health", Arc::new(table)).expect("register");
    }

    fn rule(name: &str, sql: &str) -> RuleConfig {
        let mut r = RuleConfig::new(name, sql);
        r.interval_ms = 1_000;
        r
    }

    fn summary(alerts: &[RuleAlert]) -> Vec<(String, String, RuleStatus)> {
        alerts
            .iter()
            .map(|a| (a.rule.clone(), a.account_id.clone(), a.status))
            .collect()
    }

    fn s(rule: &str, account: &str, status: RuleStatus) -> (String, String, RuleStatus) {
        (rule.into(), account.into(), status)
    }

    const DETRACTOR: &str = "SELECT account_id FROM health WHERE sentiment < 0 AND open_complaints > 0";

    #[tokio::test]
    async fn raises_and_resolves_per_account_as_rows_appear_and_disappear() {
        use RuleStatus::{Raised, Resolved};
        let ctx = SessionContext::new();
        set_health(&ctx, &[("a", -5, 1), ("b", -1, 2), ("c", 3, 1)]);
        let mut rules = RuleSet::plan(&ctx, &[rule("detractor", DETRACTOR)])
            .await
            .expect("plans");

        let r = rules.evaluate_due(&ctx, 1_000).await;
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        assert_eq!(
            summary(&r.alerts),
            [s("detractor", "a", Raised), s("detractor", "b", Raised)]
        );
        assert_eq!(r.alerts[0].id, "rule/detractor/a/1000");

        // Not due yet: nothing runs.
        let r = rules.evaluate_due(&ctx, 1_500).await;
        assert_eq!((r.evaluated, r.alerts.len()), (0, 0));

        // Same rows: nothing new (once per episode).
        let r = rules.evaluate_due(&ctx, 2_000).await;
        assert_eq!((r.evaluated, r.alerts.len()), (1, 0));

        // b's complaint is closed, c becomes a detractor.
        set_health(&ctx, &[("a", -5, 1), ("b", -1, 0), ("c", -3, 1)]);
        let r = rules.evaluate_due(&ctx, 3_000).await;
        assert_eq!(
            summary(&r.alerts),
            [s("detractor", "b", Resolved), s("detractor", "c", Raised)]
        );
        assert_eq!(r.alerts[0].id, "rule/detractor/b/1000/resolved");

        // Everyone recovers.
        set_health(&ctx, &[]);
        let r = rules.evaluate_due(&ctx, 4_000).await;
        assert_eq!(
            summary(&r.alerts),
            [s("detractor", "a", Resolved), s("detractor", "c", Resolved)]
        );

        // b matches again: a new episode with a new id.
        set_health(&ctx, &[("b", -2, 1)]);
        let r = rules.evaluate_due(&ctx, 5_000).await;
        assert_eq!(r.alerts.len(), 1);
        assert_eq!(r.alerts[0].id, "rule/detractor/b/5000");
        assert_eq!(rules.states()[0].open_episodes, 1);
    }

    #[tokio::test]
    async fn a_rule_that_does_not_plan_is_rejected_with_the_sql_error() {
        let ctx = SessionContext::new();
        set_health(&ctx, &[("a", -5, 1)]);
        let err = RuleSet::plan(
            &ctx,
            &[rule("ok", DETRACTOR), rule("bad", "SELECT account_id FROM nowhere")],
        )
        .await
        .expect_err("unknown table");
        assert_eq!(err.rule(), "bad");
        assert!(err.to_string().contains("nowhere"), "{err}");

        let err = RuleSet::plan(&ctx, &[rule("cols", "SELECT sentiment FROM health")])
            .await
            .expect_err("no account_id");
        assert!(err.to_string().contains("account_id"), "{err}");

        let err = RuleSet::plan(&ctx, &[rule("w", "DROP TABLE health")])
            .await
            .expect_err("read-only");
        assert!(matches!(err, RuleError::Plan { .. }), "{err}");

        let err = RuleSet::plan(
            &ctx,
            &[rule("two", "SELECT 'a' AS account_id; SELECT 'b' AS account_id")],
        )
        .await
        .expect_err("one statement");
        assert!(err.to_string().contains("one statement"), "{err}");

        let err = RuleSet::plan(&ctx, &[rule("d", DETRACTOR), rule("d", DETRACTOR)])
            .await
            .expect_err("duplicate");
        assert!(err.to_string().contains("two rules"), "{err}");
    }

    #[tokio::test]
    async fn a_failing_rule_is_reported_and_retried_without_stopping_others() {
        use RuleStatus::Raised;
        let ctx = SessionContext::new();
        set_health(&ctx, &[("a", -5, 1)]);
        let complaints = "SELECT account_id FROM health WHERE open_complaints > 0";
        let mut rules = RuleSet::plan(&ctx, &[rule("flaky", DETRACTOR), rule("complaints", complaints)])
            .await
            .expect("plans");
        let r = rules.evaluate_due(&ctx, 1_000).await;
        assert_eq!(r.alerts.len(), 2);

        // The table disappears: both fail at run time, nothing resolves, errors are reported.
        let _ = ctx.deregister_table("health").expect("deregister");
        let r = rules.evaluate_due(&ctx, 2_000).await;
        assert_eq!(r.errors.len(), 2);
        assert!(r.alerts.is_empty(), "a failure must not resolve open episodes");
        assert_eq!(rules.states()[0].consecutive_failures, 1);
        assert!(
            rules.states()[0]
                .last_error
                .as_deref()
                .is_some_and(|e| e.contains("health"))
        );
        // Retried after the backoff (1 s, capped at the interval).
        assert_eq!(rules.next_due_ms(), Some(3_000));

        // Back, with a new account for one rule only: the other keeps working.
        set_health(&ctx, &[("a", -5, 1), ("z", 1, 1)]);
        let r = rules.evaluate_due(&ctx, 3_000).await;
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        assert_eq!(summary(&r.alerts), [s("complaints", "z", Raised)]);
        assert_eq!(rules.states()[0].consecutive_failures, 0);
    }

    #[tokio::test]
    async fn run_loop_sends_alerts_and_trackers_restore() {
        let ctx = SessionContext::new();
        set_health(&ctx, &[("a", -5, 1)]);
        let rules = RuleSet::plan(&ctx, &[rule("detractor", DETRACTOR)])
            .await
            .expect("plans");
        let (tx, mut rx) = mpsc::channel(16);
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(run(ctx.clone(), rules, || 42, tx, stop_rx));
        let a = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("in time")
            .expect("an alert");
        assert_eq!(a.id, "rule/detractor/a/42");
        stop.send(true).expect("stop");
        let rules = task.await.expect("joins");

        let mut fresh = RuleSet::plan(&ctx, &[rule("detractor", DETRACTOR)])
            .await
            .expect("plans");
        assert_eq!(fresh.restore_trackers(rules.trackers()), 1);
        let r = fresh.evaluate_all(&ctx, 100).await;
        assert!(r.alerts.is_empty(), "restored episode: no second raise");
    }
}
