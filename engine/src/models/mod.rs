//! Population models of customer behaviour, fitted by maximum likelihood. Pure functions, no I/O.
//!
//! - [`bgnbd`]: BG/NBD, repeat buying and P(alive) (non-contractual).
//! - [`churn`]: the churn model, a logistic regression of cancellations on the churn signals.
//! - [`evaluate`]: how well a score predicts an outcome (AUC, top-decile lift, calibration).
//! - [`gamma_gamma`]: Gamma-Gamma, spend per purchase.
//! - [`sbg`]: shifted-beta-geometric, contract renewals (contractual).
//! - [`optimize`]: the shared Nelder-Mead search over log-parameters.
//! - [`summary`]: customer summaries from raw transactions.
//!
//! [`fit_population`] fits all three on one set of [`CustomerSummary`] rows (one per account,
//! from the history or a transactions file) and returns a [`ModelSet`]: what each fit found or
//! why it could not, which the scoring core takes as its [`Population`].

pub mod bgnbd;
pub mod churn;
pub mod evaluate;
pub mod gamma_gamma;
pub mod optimize;
pub mod sbg;
pub mod summary;

use serde::{Deserialize, Serialize};

use crate::scoring::Population;
use bgnbd::{BgNbdFit, Rfm};
use churn::ChurnFit;
use gamma_gamma::{GammaGammaFit, Spend};
use sbg::{Lifetimes, SbgFit};

/// One account's statistics for the models, in the model's time unit (see
/// [`ModelSet::time_unit_days`]), measured from its first transaction.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CustomerSummary {
    /// Repeat-buying statistics; `None` for an account without a transaction.
    pub rfm: Option<Rfm>,
    /// Mean value of the repeat purchase occasions (the first left out); `None` without one.
    pub repeat_value: Option<f64>,
    /// Contract periods renewed and whether the contract ended (the account cancelled), for
    /// accounts with a contract; `None` for the others.
    pub contract: Option<Contract>,
}

/// An account's contract history: `renewals` periods survived, then cancelled or still active.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contract {
    pub renewals: u32,
    pub cancelled: bool,
}

/// A fit that worked, or why it did not.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fitted<T> {
    Ok(T),
    Failed(String),
}

impl<T> Fitted<T> {
    fn from(r: Result<T, crate::EngineError>) -> Self {
        match r {
            Ok(v) => Fitted::Ok(v),
            Err(crate::EngineError::FitFailed(m)) => Fitted::Failed(m),
            Err(e) => Fitted::Failed(e.to_string()),
        }
    }

    /// The fit, when it worked.
    pub fn ok(&self) -> Option<&T> {
        match self {
            Fitted::Ok(v) => Some(v),
            Fitted::Failed(_) => None,
        }
    }
}

/// The three population fits of one data window, versioned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSet {
    /// Increases by one with every fit stored in one place.
    pub version: u64,
    /// When the fit was made (epoch ms, wall clock).
    pub fitted_at_ms: i64,
    /// Event time of the data's first and last event (epoch ms); the end is the models' "now".
    pub window_start_ms: i64,
    pub window_end_ms: i64,
    /// Length of the models' time unit in days (1 for the engine's fits; 7 for weeks).
    pub time_unit_days: f64,
    /// Accounts summarised.
    pub customers: usize,
    pub bgnbd: Fitted<BgNbdFit>,
    pub gamma_gamma: Fitted<GammaGammaFit>,
    pub sbg: Fitted<SbgFit>,
    /// The churn model, fitted on the history's scorings at cut-offs (not by
    /// [`fit_population`]: it needs the scoring core replayed over the history).
    #[serde(default = "churn_not_fitted")]
    pub churn: Fitted<ChurnFit>,
    /// Median time between repeat purchases (`t_x / x` over repeat buyers), in days.
    pub typical_gap_days: Option<f64>,
    /// Wall time of the three fits, in milliseconds, measured by the caller (the engine reads
    /// no clock; 0 until set).
    pub fit_ms: f64,
}

fn churn_not_fitted() -> Fitted<ChurnFit> {
    Fitted::Failed("not fitted: no scorings of the history were given".into())
}

/// The data window a fit covers and when it was made.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FitWindow {
    pub fitted_at_ms: i64,
    pub start_ms: i64,
    pub end_ms: i64,
    pub time_unit_days: f64,
}

/// Fits BG/NBD (accounts with a transaction), Gamma-Gamma (repeat buyers with a positive value)
/// and sBG (accounts with a contract) on `customers`. Each fit fails on its own (too few
/// repeat buyers, no cancellation...), recorded in its [`Fitted`]; `version` is 0 until stored.
pub fn fit_population(customers: &[CustomerSummary], window: FitWindow) -> ModelSet {
    let rfms: Vec<Rfm> = customers.iter().filter_map(|c| c.rfm).collect();
    let bg = if rfms.is_empty() {
        Fitted::Failed("no account has a transaction".into())
    } else {
        Fitted::from(bgnbd::fit(&rfms))
    };
    let spends: Vec<Spend> = customers
        .iter()
        .filter_map(|c| {
            Some(Spend {
                x: c.rfm?.x,
                m: c.repeat_value?,
            })
        })
        .collect();
    let gg = Fitted::from(gamma_gamma::fit(&spends));
    let lifetimes = contract_lifetimes(customers);
    let sbg = Fitted::from(sbg::fit(&lifetimes));
    let mut gaps: Vec<f64> = rfms
        .iter()
        .filter(|r| r.x >= 1.0)
        .map(|r| r.t_x / r.x * window.time_unit_days)
        .collect();
    gaps.sort_by(f64::total_cmp);
    let typical_gap_days = median(&gaps).filter(|m| *m > 0.0);
    ModelSet {
        version: 0,
        fitted_at_ms: window.fitted_at_ms,
        window_start_ms: window.start_ms,
        window_end_ms: window.end_ms,
        time_unit_days: window.time_unit_days,
        customers: customers.len(),
        bgnbd: bg,
        gamma_gamma: gg,
        sbg,
        churn: churn_not_fitted(),
        typical_gap_days,
        fit_ms: 0.0,
    }
}

/// Contract accounts as sBG data: a cancelled account was lost at the end of period
/// `renewals + 1`; an active one is right-censored after `renewals` periods.
pub fn contract_lifetimes(customers: &[CustomerSummary]) -> Lifetimes {
    let mut out = Lifetimes::default();
    let mut alive: std::collections::BTreeMap<u32, u64> = std::collections::BTreeMap::new();
    for c in customers.iter().filter_map(|c| c.contract) {
        if c.cancelled {
            let t = c.renewals as usize + 1;
            if out.churned.len() < t {
                out.churned.resize(t, 0);
            }
            out.churned[t - 1] += 1;
        } else {
            *alive.entry(c.renewals).or_default() += 1;
        }
    }
    out.alive = alive.into_iter().collect();
    out
}

fn median(sorted: &[f64]) -> Option<f64> {
    let m = sorted.len() / 2;
    match sorted.len() {
        0 => None,
        n if n % 2 == 1 => Some(sorted[m]),
        _ => Some((sorted[m - 1] + sorted[m]) / 2.0),
    }
}

impl ModelSet {
    /// Whether at least one of the models was fitted (a set worth storing).
    pub fn any_fitted(&self) -> bool {
        self.bgnbd.ok().is_some()
            || self.gamma_gamma.ok().is_some()
            || self.sbg.ok().is_some()
            || self.churn.ok().is_some()
    }

    /// Fits the churn model on `observations` (see [`churn::fit`]) into this set.
    pub fn fit_churn(&mut self, observations: &[churn::Observation], horizon_days: u32) {
        self.churn = Fitted::from(churn::fit(observations, horizon_days));
    }

    /// The scoring core's population model: BG/NBD parameters in days (`alpha` scaled from the
    /// fit's time unit), the typical inter-purchase gap and the churn model, each kept from
    /// `previous` when this fit did not produce it.
    pub fn population(&self, previous: Population) -> Population {
        let params = self.bgnbd.ok().map(|f| {
            let mut p = f.params;
            p.alpha *= self.time_unit_days;
            p
        });
        Population {
            params: params.or(previous.params),
            typical_gap_days: self.typical_gap_days.unwrap_or(previous.typical_gap_days),
            churn: self.churn.ok().map(|f| f.model).or(previous.churn),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contracts_become_churned_and_censored_counts() {
        let c = |renewals, cancelled| CustomerSummary {
            rfm: None,
            repeat_value: None,
            contract: Some(Contract { renewals, cancelled }),
        };
        let l = contract_lifetimes(&[
            c(0, true),
            c(0, true),
            c(2, true),
            c(1, false),
            c(1, false),
            c(3, false),
        ]);
        assert_eq!(l.churned, vec![2, 0, 1]);
        assert_eq!(l.alive, vec![(1, 2), (3, 1)]);
        assert_eq!(l.customers(), 6);
    }

    #[test]
    fn each_model_fails_on_its_own() {
        // The grouped rows of the BG/NBD unit tests, which have a fit.
        let grouped = [
            ((0.0, 0.0, 30.0), 40),
            ((0.0, 0.0, 35.0), 30),
            ((1.0, 10.0, 30.0), 12),
            ((2.0, 25.0, 35.0), 8),
            ((4.0, 28.0, 30.0), 5),
            ((1.0, 3.0, 33.0), 9),
        ];
        let rows: Vec<CustomerSummary> = grouped
            .iter()
            .flat_map(|&((x, t_x, t), n)| {
                std::iter::repeat_n(
                    CustomerSummary {
                        rfm: Some(Rfm { x, t_x, t }),
                        repeat_value: None,
                        contract: None,
                    },
                    n,
                )
            })
            .collect();
        let set = fit_population(
            &rows,
            FitWindow {
                fitted_at_ms: 0,
                start_ms: 0,
                end_ms: 0,
                time_unit_days: 1.0,
            },
        );
        assert!(set.bgnbd.ok().is_some(), "{:?}", set.bgnbd);
        assert!(matches!(set.gamma_gamma, Fitted::Failed(_)));
        assert!(matches!(set.sbg, Fitted::Failed(_)));
        // t_x / x: 10 (12 rows), 12.5 (8), 7 (5), 3 (9): the median of 34 values is 10.
        assert_eq!(set.typical_gap_days, Some(10.0));
        let before = Population {
            params: None,
            typical_gap_days: 30.0,
            churn: None,
        };
        let pop = set.population(before);
        assert!(pop.params.is_some());
        assert_eq!(pop.typical_gap_days, 10.0);
        assert_eq!(pop.params.map(|p| p.alpha), set.bgnbd.ok().map(|f| f.params.alpha));
    }
}
