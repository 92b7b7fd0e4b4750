//! The backtest of `vigil evaluate`: a data directory's history replayed in event time through
//! one scoring core, every account scored as of cut-off days, and each score held against the
//! cancellations of the following days. Nothing from after a cut-off reaches its scores: the
//! population models are fitted on the history before it, the churn model on the scorings of
//! the weekly cut-offs before it whose horizon had ended. Cut-offs before the churn model could
//! first be fitted are left out (reported as skipped).
//!
//! The churn model is fitted the same way for use ([`churn_observations`]): every account
//! scored at weekly cut-offs over the whole history, labelled by its cancellations.
//!
//! Scores compared: `churn_risk`, the health score (as `(100 − score) / 100`, so that higher
//! means riskier) and the rule an analyst writes first, activity in the last 30 days against
//! the 60 before (`(before / 60) / (before / 60 + last / 30)`; 0.5 without any activity in the 90
//! days). Accounts that have churned at a cut-off are left out of it.

use std::collections::{BTreeMap, HashMap};

use futures::StreamExt;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Float64Type, Int64Type, TimestampMillisecondType};
use serde::Serialize;
use vigil_engine::models::churn::{self, ChurnModel, Observation};
use vigil_engine::models::evaluate::{CalibrationBin, auc, calibration, top_decile_lift};
use vigil_engine::scoring::{AccountStatus, Population, ScoringConfig, ScoringCore};
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
    /// Cut-off days evaluated (epoch ms at midnight UTC).
    pub cutoffs: Vec<i64>,
    /// Earlier cut-offs left out: too few cancellations behind them to fit the churn model.
    pub skipped_cutoffs: usize,
    /// Cut-offs whose `churn_risk` came from a churn model fitted on the cut-offs before (the
    /// others used the unfitted noisy-OR).
    pub model_cutoffs: usize,
    pub horizon_days: i64,
    /// Account scorings: (account, cut-off) pairs of accounts not churned at the cut-off.
    pub observations: usize,
    /// Of those, the ones followed by a cancellation within the horizon.
    pub churned: usize,
    pub scores: Vec<ScoreQuality>,
}

/// The cut-offs the churn model is trained on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChurnPlan {
    /// Days after a cut-off in which a cancellation counts as churn.
    pub horizon_days: i64,
    /// Days between cut-offs.
    pub step_days: i64,
    /// Days of history before the first cut-off.
    pub warmup_days: i64,
}

impl Default for ChurnPlan {
    /// A 30-day horizon, weekly cut-offs after 30 days of history (a model can then be fitted
    /// once two months of history hold enough cancellations; the features of young accounts
    /// are what they are at that age, as when they are scored).
    fn default() -> Self {
        ChurnPlan {
            horizon_days: 30,
            step_days: 7,
            warmup_days: 30,
        }
    }
}

/// Where each cut-off's population model (BG/NBD, typical gap) comes from.
#[derive(Debug, Clone, Copy)]
enum Populations {
    /// Fitted on the history before each cut-off (the backtest: nothing from the future).
    FitBeforeEach,
    /// One model for every cut-off (training the churn model for use now).
    Given(Population),
}

/// One account, not churned at a cut-off, scored as of it.
#[derive(Debug, Clone, Copy)]
struct Scored {
    cutoff: i64,
    /// The core's churn risk (the noisy-OR: no churn model is set during the replay).
    risk: f64,
    /// `(100 − health score) / 100`.
    health: f64,
    /// The activity rule (evaluation cut-offs only; 0.5 at the others).
    rule: f64,
    features: [f64; 5],
    /// A cancellation followed within the horizon.
    churned: bool,
}

/// Runs the backtest over the `events` of `analyst`. `churn_risk` at a cut-off is the churn
/// model's, fitted on the scorings of the earlier cut-offs whose horizon had ended by then; the
/// noisy-OR's until enough cancellations were seen to fit one.
pub async fn backtest(analyst: &Analyst, cfg: &BacktestConfig) -> Result<BacktestReport> {
    // Scored at the evaluation cut-offs and, for the churn model's training, at the training
    // plan's weekly ones too.
    let train = ChurnPlan::default();
    let (all, scored) = score_history(
        analyst,
        &cfg.scoring,
        cfg.horizon_days,
        &[cfg.step_days, train.step_days],
        cfg.warmup_days,
        Populations::FitBeforeEach,
        None,
    )
    .await?;
    let first = all[0];
    let cutoffs: Vec<i64> = all
        .iter()
        .copied()
        .filter(|c| (c - first) % (cfg.step_days * DAY_MS) == 0)
        .collect();
    let horizon_ms = cfg.horizon_days * DAY_MS;
    // Each cut-off's churn model, fitted on the scorings whose horizon had ended by then.
    let models: Vec<Option<ChurnModel>> = cutoffs
        .iter()
        .map(|&cutoff| {
            let known: Vec<Observation> = scored
                .iter()
                .filter(|s| s.cutoff + horizon_ms <= cutoff)
                .map(|s| (s.features, s.churned))
                .collect();
            churn::fit(&known, cfg.horizon_days as u32).ok().map(|f| f.model)
        })
        .collect();
    // Once a churn model could be fitted, the cut-offs before it are left out for every score
    // (the unfitted noisy-OR's risks are not probabilities: pooled with the model's they would
    // rank on two scales); without any, every cut-off counts, scored by the noisy-OR.
    let first_model = models.iter().position(Option::is_some).unwrap_or(0);
    let mut pairs: [Vec<(f64, bool)>; 3] = Default::default();
    for (&cutoff, model) in cutoffs.iter().zip(&models).skip(first_model) {
        for s in scored.iter().filter(|s| s.cutoff == cutoff) {
            let risk = model.map_or(s.risk, |m| m.risk(&s.features));
            pairs[0].push((risk, s.churned));
            pairs[1].push((s.health, s.churned));
            pairs[2].push((s.rule, s.churned));
        }
    }
    let model_cutoffs = models.iter().filter(|m| m.is_some()).count();
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
        cutoffs: cutoffs[first_model..].to_vec(),
        skipped_cutoffs: first_model,
        model_cutoffs,
        horizon_days: cfg.horizon_days,
        observations: pairs[0].len(),
        churned: pairs[0].iter().filter(|p| p.1).count(),
        scores,
    })
}

/// The churn model's training data: every account not churned at a cut-off (every `step_days`
/// from `warmup_days` after the first event, while `horizon_days` of history follow), its
/// features as of the cut-off under `population`, and whether it cancelled within the horizon.
/// Only events before `until_ms` count, when given.
pub async fn churn_observations(
    analyst: &Analyst,
    scoring: &ScoringConfig,
    population: Population,
    plan: ChurnPlan,
    until_ms: Option<i64>,
) -> Result<Vec<Observation>> {
    let (_, scored) = score_history(
        analyst,
        scoring,
        plan.horizon_days,
        &[plan.step_days],
        plan.warmup_days,
        Populations::Given(population),
        until_ms,
    )
    .await?;
    Ok(scored.iter().map(|s| (s.features, s.churned)).collect())
}

/// Replays the history through one scoring core and scores every account not churned at each
/// cut-off: `warmup_days` after the first event's day, then every `steps[i]` days for each `i`,
/// while `horizon_days` of history follow. With [`Populations::FitBeforeEach`] (the backtest)
/// the cut-offs of the first step are evaluated: the population models are refitted there (the
/// others keep the latest fit, made on earlier data only) and the activity rule is computed.
async fn score_history(
    analyst: &Analyst,
    scoring: &ScoringConfig,
    horizon_days: i64,
    steps: &[i64],
    warmup_days: i64,
    populations: Populations,
    until_ms: Option<i64>,
) -> Result<(Vec<i64>, Vec<Scored>)> {
    if horizon_days < 1 || steps.iter().any(|&s| s < 1) || warmup_days < 0 {
        return Err(RuntimeError::Backtest(
            "the horizon and the step must be at least a day, the warm-up not negative".into(),
        ));
    }
    let until = until_ms.map_or(String::new(), |t| format!("WHERE CAST(ts AS BIGINT) < {t} "));
    let bounds = analyst
        .collect(&format!(
            "SELECT min(CAST(ts AS BIGINT)), max(CAST(ts AS BIGINT)) FROM events {until}"
        ))
        .await?;
    let bound = |col: usize| {
        bounds.iter().find(|b| b.num_rows() > 0).and_then(|b| {
            let c = arrow::compute::cast(b.column(col), &arrow::datatypes::DataType::Int64).ok()?;
            let c = c.as_primitive::<Int64Type>();
            (!c.is_null(0)).then(|| c.value(0))
        })
    };
    let (Some(first), Some(last)) = (bound(0), bound(1)) else {
        return Err(RuntimeError::Backtest("no events in the history".into()));
    };
    let cancellations = cancellations(analyst).await?;

    let first_day = first.div_euclid(DAY_MS) * DAY_MS;
    let c0 = first_day + warmup_days * DAY_MS;
    let mut cutoffs = Vec::new();
    for &step in steps {
        let mut c = c0;
        while c + horizon_days * DAY_MS <= last {
            cutoffs.push(c);
            c += step * DAY_MS;
        }
    }
    cutoffs.sort_unstable();
    cutoffs.dedup();
    let first_step = steps.first().copied().unwrap_or(1) * DAY_MS;
    if cutoffs.is_empty() {
        return Err(RuntimeError::Backtest(format!(
            "the history spans {:.0} days: too short for {} days of warm-up and a {}-day horizon",
            (last - first) as f64 / DAY_MS as f64,
            warmup_days,
            horizon_days
        )));
    }

    let mut core = ScoringCore::new(scoring.clone())?;
    if let Populations::Given(p) = populations {
        core.set_population(Population { churn: None, ..p });
    }
    // The history streamed in time order (never all of it in memory): `pending` holds the rest
    // of the batch that crossed the last cut-off.
    let schema = vigil_engine::schema::event_schema();
    let mut events = analyst
        .sql(&format!("SELECT * FROM events {until}ORDER BY ts, event_id"))
        .await?
        .execute_stream()
        .await
        .map_err(vigil_queries::QueryError::from)?;
    let mut pending: Option<RecordBatch> = None;
    let mut out = Vec::new();
    for &cutoff in &cutoffs {
        // Every event before the cut-off, in time order.
        loop {
            let b = match pending.take() {
                Some(b) => b,
                None => match events.next().await {
                    Some(b) => {
                        let b = b.map_err(vigil_queries::QueryError::from)?;
                        if b.num_rows() == 0 {
                            continue;
                        }
                        vigil_queries::cast::cast_to_schema(&b, &schema)?
                    }
                    None => break,
                },
            };
            let t = b
                .column(vigil_engine::schema::TS)
                .as_primitive::<TimestampMillisecondType>();
            let end = (0..b.num_rows())
                .find(|&r| t.value(r) >= cutoff)
                .unwrap_or(b.num_rows());
            if end > 0 {
                core.apply_batch(&b.slice(0, end))?;
            }
            if end < b.num_rows() {
                pending = Some(b.slice(end, b.num_rows() - end));
                break;
            }
        }
        core.advance_clock(cutoff);
        // A backtest's evaluation cut-off (the first step's): population models refitted, the
        // activity rule computed; the other cut-offs only train the churn model.
        let evaluated = matches!(populations, Populations::FitBeforeEach) && (cutoff - c0) % first_step == 0;
        if evaluated {
            let day = chrono::DateTime::from_timestamp_millis(cutoff)
                .map(|d| d.format("%Y-%m-%d").to_string())
                .unwrap_or_default();
            let set = fit_history(analyst, Some(&day), cutoff).await?;
            let population = set.population(core.population());
            core.set_population(Population {
                churn: None,
                ..population
            });
        }
        let naive = if evaluated {
            activity_rule(analyst, cutoff).await?
        } else {
            BTreeMap::new()
        };
        for id in core.account_ids() {
            if core.status(id) == Some(AccountStatus::Churned) {
                continue;
            }
            let Some(h) = core.score(id) else { continue };
            let churned = cancellations
                .get(id)
                .is_some_and(|ts| ts.iter().any(|&t| t >= cutoff && t < cutoff + horizon_days * DAY_MS));
            out.push(Scored {
                cutoff,
                risk: h.churn_risk,
                health: (100.0 - h.score) / 100.0,
                rule: naive.get(id).copied().unwrap_or(0.5),
                features: h.churn.features(),
                churned,
            });
        }
    }
    Ok((cutoffs, out))
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
