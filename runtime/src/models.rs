//! Population model fits of a pipeline: fitted on the history of every partition (the
//! `customer_summary` named query), stored in the data directory's `models.jsonl` (the `models`
//! table), and handed to every partition as an input of its step. Scoring never waits for a
//! fit: the query runs on the async runtime, the likelihood search on a blocking thread.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use vigil_engine::models::{Fitted, ModelSet};
use vigil_queries::Analyst;
use vigil_queries::models::{ModelStore, fit_history};

use crate::error::{Result, RuntimeError};
use crate::partitions::Partitions;

/// Fits, stores and applies the population models of one pipeline.
#[derive(Debug, Clone)]
pub struct ModelFitter {
    analyst: Arc<Analyst>,
    store: ModelStore,
    parts: Partitions,
}

impl ModelFitter {
    /// A fitter reading the history through `analyst` and keeping its fits in `store`.
    pub fn new(analyst: Arc<Analyst>, store: ModelStore, parts: Partitions) -> Self {
        ModelFitter { analyst, store, parts }
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

    /// Fits the three models on the history as it is now. When at least one fitted, stores the
    /// set as the next version and hands it to every partition; returns it either way (a model
    /// that did not fit says why).
    pub async fn fit(&self, now_ms: i64) -> Result<ModelSet> {
        let set = fit_history(&self.analyst, None, now_ms).await?;
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
        "models ({version}, {} accounts, {:.0} ms): {}; {}; {}",
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
    )
}
