//! The backtest of `vigil evaluate`: a data directory's history replayed in event time through
//! one scoring core, every account scored as of cut-off days (with population models fitted on
//! the history before each cut-off only), and each score held against the cancellations of the
//! following days.
//!
//! Scores compared: `churn_risk`, the health score (as `(100 − score) / 100`, so that higher
//! means riskier) and the rule an analyst writes first, activity in the last 30 days against
//! the 60 before (`(before / 60) / (before / 60 + last / 30)`; 0.5 without any activity in the 90
//! days). Accounts that have churned at a cut-off are left out of it.

use std::collections::{BTreeMap, HashMap};

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::{Float64Type, Int64Type, TimestampMillisecondType};
use serde::Serialize;
use vigil_engine::models::evaluate::{CalibrationBin, auc, calibration, top_decile_lift};
use vigil_engine::scoring::{ScoringConfig, ScoringCore};
use vigil_queries::Analyst;
use vigil_queries::models::fit_history;

use crate::error::{Result, RuntimeError};

const DAY_MS: i64 = 86_400_000;

/// What the backtest scores and when.
#[derive(Debug, Clone)]
pub struct BacktestConfig {
    pub scoring: ScoringConfig,
    /// Days after a cut-off in which a cancellation counts as churn.
    pub horizon_days: i64,
    /// Days between cut-offs.
    pub step_days: i64,
    /// Days of history before the first cut-off.
    pub warmup_days: i64,
}

impl Default for BacktestConfig {
    fn default() -> Self {
        BacktestConfig {
            scoring: ScoringConfig::default(),
            horizon_days: 30,
            step_days: 30,
            warmup_days: 90,
        }
    }
}

/// How well one score predicted churn, pooled over every cut-off.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScoreQuality {
    pub score: &'static str,
    pub auc: Option<f64>,
    pub top_decile_lift: Option<f64>,
    /// Ten bins of equal count, lowest scores first.
    pub calibration: Vec<CalibrationBin>,
}

/// The backtest's result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BacktestReport {
    /// Cut-off days (epoch ms at midnight UTC).
    pub cutoffs: Vec<i64>,
    pub horizon_days: i64,
    /// Account scorings: (account, cut-off) pairs of accounts not churned at the cut-off.
    pub observations: usize,
    /// Of those, the ones followed by a cancellation within the horizon.
    pub churned: usize,
    pub scores: Vec<ScoreQuality>,
}

/// Runs the backtest over the `events` of `analyst`.
pub async fn backtest(analyst: &Analyst, cfg: &BacktestConfig) -> Result<BacktestReport> {
    if cfg.horizon_days < 1 || cfg.step_days < 1 || cfg.warmup_days < 0 {
        return Err(RuntimeError::Backtest(
            "the horizon and the step must be at least a day, the warm-up not negative".into(),
        ));
    }
    let events = analyst.collect("SELECT * FROM events ORDER BY ts, event_id").await?;
    let schema = vigil_engine::schema::event_schema();
    let events: Vec<RecordBatch> = events
        .iter()
        .filter(|b| b.num_rows() > 0)
        .map(|b| vigil_queries::cast::cast_to_schema(b, &schema))
        .collect::<std::result::Result<_, _>>()?;
    let ts = |b: &RecordBatch| {
        b.column(vigil_engine::schema::TS)
            .as_primitive::<TimestampMillisecondType>()
            .clone()
    };
    let (Some(first), Some(last)) = (
        events.first().map(|b| ts(b).value(0)),
        events.last().map(|b| {
            let t = ts(b);
            t.value(t.len() - 1)
        }),
    ) else {
        return Err(RuntimeError::Backtest("no events in the history".into()));
    };
    let cancellations = cancellations(analyst).await?;

    let first_day = first.div_euclid(DAY_MS) * DAY_MS;
    let mut cutoffs = Vec::new();
    let mut c = first_day + cfg.warmup_days * DAY_MS;
    while c + cfg.horizon_days * DAY_MS <= last {
        cutoffs.push(c);
        c += cfg.step_days * DAY_MS;
    }
    if cutoffs.is_empty() {
        return Err(RuntimeError::Backtest(format!(
            "the history spans {:.0} days: too short for {} days of warm-up and a {}-day horizon",
            (last - first) as f64 / DAY_MS as f64,
            cfg.warmup_days,
            cfg.horizon_days
        )));
    }

    let mut core = ScoringCore::new(cfg.scoring.clone())?;
    let (mut batch_i, mut row_i) = (0usize, 0usize);
    let mut pairs: [Vec<(f64, bool)>; 3] = Default::default();
    for &cutoff in &cutoffs {
        // Every event before the cut-off, in time order.
        while batch_i < events.len() {
            let b = &events[batch_i];
            let t = ts(b);
            let end = (row_i..b.num_rows())
                .find(|&r| t.value(r) >= cutoff)
                .unwrap_or(b.num_rows());
            if end > row_i {
                core.apply_batch(&b.slice(row_i, end - row_i))?;
            }
            if end < b.num_rows() {
                row_i = end;
                break;
            }
            batch_i += 1;
            row_i = 0;
        }
        core.advance_clock(cutoff);
        let day = chrono::DateTime::from_timestamp_millis(cutoff)
            .map(|d| d.format("%Y-%m-%d").to_string())
            .unwrap_or_default();
        let set = fit_history(analyst, Some(&day), cutoff).await?;
        let population = set.population(core.population());
        core.set_population(population);
        let naive = activity_rule(analyst, cutoff).await?;
        let health = core.health_batch();
        let ids = health
            .column_by_name("account_id")
            .expect("health schema")
            .as_string::<i32>();
        let risk = health
            .column_by_name("churn_risk")
            .expect("health schema")
            .as_primitive::<Float64Type>();
        let score = health
            .column_by_name("score")
            .expect("health schema")
            .as_primitive::<Float64Type>();
        let status = health
            .column_by_name("status")
            .expect("health schema")
            .as_string::<i32>();
        for i in 0..health.num_rows() {
            if status.value(i) == "churned" {
                continue;
            }
            let id = ids.value(i);
            let churned = cancellations.get(id).is_some_and(|ts| {
                ts.iter()
                    .any(|&t| t >= cutoff && t < cutoff + cfg.horizon_days * DAY_MS)
            });
            pairs[0].push((risk.value(i), churned));
            pairs[1].push(((100.0 - score.value(i)) / 100.0, churned));
            pairs[2].push((naive.get(id).copied().unwrap_or(0.5), churned));
        }
    }
    let names = ["churn_risk", "health_score", "activity_rule"];
    let scores = names
        .iter()
        .zip(&pairs)
        .map(|(name, p)| ScoreQuality {
            score: name,
            auc: auc(p),
            top_decile_lift: top_decile_lift(p),
            calibration: calibration(p, 10),
        })
        .collect();
    Ok(BacktestReport {
        cutoffs,
        horizon_days: cfg.horizon_days,
        observations: pairs[0].len(),
        churned: pairs[0].iter().filter(|p| p.1).count(),
        scores,
    })
}

/// Cancellation times by account.
async fn cancellations(analyst: &Analyst) -> Result<HashMap<String, Vec<i64>>> {
    let batches = analyst
        .collect("SELECT account_id, CAST(ts AS BIGINT) AS t FROM events WHERE kind = 'cancellation'")
        .await?;
    let mut out: HashMap<String, Vec<i64>> = HashMap::new();
    for b in &batches {
        let ids = arrow::compute::cast(b.column(0), &arrow::datatypes::DataType::Utf8)?;
        let ids = ids.as_string::<i32>();
        let t = b.column(1).as_primitive::<Int64Type>();
        for i in 0..b.num_rows() {
            out.entry(ids.value(i).to_string()).or_default().push(t.value(i));
        }
    }
    Ok(out)
}

/// The activity rule as of `cutoff`, by account (accounts with activity in the 90 days only).
async fn activity_rule(analyst: &Analyst, cutoff: i64) -> Result<BTreeMap<String, f64>> {
    let (d30, d90) = (cutoff - 30 * DAY_MS, cutoff - 90 * DAY_MS);
    let sql = format!(
        "SELECT account_id, \
                sum(CASE WHEN CAST(ts AS BIGINT) >= {d30} THEN 1 ELSE 0 END) AS last30, \
                sum(CASE WHEN CAST(ts AS BIGINT) < {d30} THEN 1 ELSE 0 END) AS before60 \
         FROM events \
         WHERE kind = 'activity' AND CAST(ts AS BIGINT) >= {d90} AND CAST(ts AS BIGINT) < {cutoff} \
         GROUP BY account_id"
    );
    let mut out = BTreeMap::new();
    for b in &analyst.collect(&sql).await? {
        let ids = arrow::compute::cast(b.column(0), &arrow::datatypes::DataType::Utf8)?;
        let ids = ids.as_string::<i32>();
        let last = arrow::compute::cast(b.column(1), &arrow::datatypes::DataType::Float64)?;
        let before = arrow::compute::cast(b.column(2), &arrow::datatypes::DataType::Float64)?;
        let (last, before) = (last.as_primitive::<Float64Type>(), before.as_primitive::<Float64Type>());
        for i in 0..b.num_rows() {
            let (l, p) = (last.value(i) / 30.0, before.value(i) / 60.0);
            out.insert(ids.value(i).to_string(), p / (p + l));
        }
    }
    Ok(out)
}
