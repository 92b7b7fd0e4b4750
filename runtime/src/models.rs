//! Model fits of a pipeline: the population models fitted on the history of every partition
//! (the `customer_summary` named query) and the churn model on the scorings of the history's
//! cut-offs ([`crate::backtest::churn_observations`]), stored in the data directory's
//! `models.jsonl` (the `models` table), and handed to every partition as an input of its step.
//! Scoring never waits for a fit: the queries and the replay run on the async runtime, the
//! likelihood searches on a blocking thread.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use vigil_engine::models::{Fitted, ModelSet};
use vigil_engine::scoring::{Population, ScoringConfig};
use vigil_queries::Analyst;
use vigil_queries::models::{ModelStore, fit_history};

use crate::backtest::{ChurnPlan, churn_observations};
use crate::error::{Result, RuntimeError};
use crate::partitions::Partitions;

/// Fits every model on the history of `analyst` (before the day `as_of`, `YYYY-MM-DD`, when
/// given): the population models, then the churn model on the scorings of weekly cut-offs under
/// the fitted population ([`ChurnPlan::default`]). A model that cannot be fitted says why in its
/// [`Fitted`]; `fit_ms` is the wall time of it all.
pub async fn fit_models(
    analyst: &Analyst,
    scoring: &ScoringConfig,
    as_of: Option<&str>,
    fitted_at_ms: i64,
) -> Result<ModelSet> {
    let started = std::time::Instant::now();
    let mut set = fit_history(analyst, as_of, fitted_at_ms).await?;
    let population = set.population(Population::unfitted(scoring));
    let plan = ChurnPlan::default();
    match churn_observations(analyst, scoring, population, plan, Some(set.window_end_ms)).await {
        Ok(obs) => {
            set = tokio::task::spawn_blocking(move || {
                set.fit_churn(&obs, plan.horizon_days as u32);
                set
            })
            .await
            .map_err(|e| RuntimeError::Stopped(format!("the churn model's fit ({e})")))?;
        }
        // Too little history for a cut-off: the churn model waits for more.
        Err(RuntimeError::Backtest(why)) => set.churn = Fitted::Failed(why),
        Err(e) => return Err(e),
    }
    set.fit_ms = started.elapsed().as_secs_f64() * 1e3;
    Ok(set)
}

/// Fits, stores and applies the models of one pipeline.
#[derive(Debug, Clone)]
pub struct ModelFitter {
    analyst: Arc<Analyst>,
    store: ModelStore,
    parts: Partitions,
    scoring: Arc<ScoringConfig>,
}

impl ModelFitter {
    /// A fitter reading the history through `analyst`, replaying it under `scoring` (the
    /// pipeline's scoring settings) and keeping its fits in `store`.
    pub fn new(analyst: Arc<Analyst>, store: ModelStore, parts: Partitions, scoring: ScoringConfig) -> Self {
        ModelFitter {
            analyst,
            store,
            parts,
            scoring: Arc::new(scoring),
        }
    }

    /// Hands the newest stored fit, if any, to the partitions (a restart keeps its models).
    pub fn restore(&self) -> Result<Option<u64>> {
        match self.store.latest()? {
            Some(set) => {
                let version = set.version;
                self.parts.set_models(set)?;
                Ok(Some(version))
            }
            None => Ok(None),
        }
    }

    /// Fits the models on the history as it is now ([`fit_models`]). When at least one fitted,
    /// stores the set as the next version and hands it to every partition; returns it either way
    /// (a model that did not fit says why).
    pub async fn fit(&self, now_ms: i64) -> Result<ModelSet> {
        self.fit_as_of(None, now_ms).await
    }

    /// [`ModelFitter::fit`] on the history before the day `as_of` (`YYYY-MM-DD`), when given.
    pub async fn fit_as_of(&self, as_of: Option<&str>, now_ms: i64) -> Result<ModelSet> {
        let set = fit_models(&self.analyst, &self.scoring, as_of, now_ms).await?;
        if !set.any_fitted() {
            return Ok(set);
        }
        let store = self.store.clone();
        let set = tokio::task::spawn_blocking(move || store.append(set))
            .await
            .map_err(|e| RuntimeError::Stopped(format!("the model store's writer ({e})")))??;
        self.parts.set_models(set.clone())?;
        Ok(set)
    }

    /// Fits after `first`, then every `every`, until `stop` turns true; each fit is logged.
    pub fn spawn(self, first: Duration, every: Duration, mut stop: watch::Receiver<bool>) -> JoinHandle<()> {
        tokio::spawn(async move {
            let mut wait = first;
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = stop.changed() => return,
                }
                if *stop.borrow() {
                    return;
                }
                match self.fit(crate::pipeline::wall_ms()).await {
                    Ok(set) => tracing::info!("{}", describe(&set)),
                    Err(e) => tracing::warn!(error = %e, "model fit"),
                }
                wait = every;
            }
        })
    }
}

/// One line about a fit: each model's parameters and log-likelihood, or why it did not fit.
pub fn describe(set: &ModelSet) -> String {
    fn part<T>(name: &str, f: &Fitted<T>, ok: impl Fn(&T) -> String) -> String {
        match f {
            Fitted::Ok(v) => format!("{name} {}", ok(v)),
            Fitted::Failed(why) => format!("{name} not fitted ({why})"),
        }
    }
    let version = if set.version == 0 {
        "not stored".to_string()
    } else {
        format!("version {}", set.version)
    };
    format!(
        "models ({version}, {} accounts, {:.0} ms): {}; {}; {}; {}",
        set.customers,
        set.fit_ms,
        part("BG/NBD", &set.bgnbd, |f| format!(
            "r={:.4} alpha={:.4} a={:.4} b={:.4} LL={:.2} over {} accounts",
            f.params.r, f.params.alpha, f.params.a, f.params.b, f.log_likelihood, f.customers
        )),
        part("Gamma-Gamma", &set.gamma_gamma, |f| format!(
            "p={:.4} q={:.4} gamma={:.4} LL={:.2} over {} repeat buyers",
            f.params.p, f.params.q, f.params.gamma, f.log_likelihood, f.customers
        )),
        part("sBG", &set.sbg, |f| format!(
            "alpha={:.4} beta={:.4} LL={:.2} over {} contracts",
            f.params.alpha, f.params.beta, f.log_likelihood, f.customers
        )),
        part("churn", &set.churn, |f| {
            let weights: Vec<String> = vigil_engine::models::churn::FEATURES
                .iter()
                .zip(f.model.weights)
                .map(|(n, w)| format!("{n}={w:.3}"))
                .collect();
            format!(
                "intercept={:.3} {} alert at {:.3}, AUC {} over {} scorings ({} cancelled within {} days)",
                f.model.intercept,
                weights.join(" "),
                f.model.alert_threshold,
                f.auc.map_or("-".into(), |a| format!("{a:.3}")),
                f.observations,
                f.positives,
                f.model.horizon_days
            )
        }),
    )
}
