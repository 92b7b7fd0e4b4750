//! The churn model: a logistic regression of "cancels within the horizon" on the churn signals
//! of [`crate::scoring::churn`], fitted on the history's own cut-offs.
//!
//! ```text
//! P(cancel within H days) = σ(b₀ + Σᵢ wᵢ·xᵢ),  x = [base, engagement, complaints, detractor, downgrade]
//! ```
//!
//! `base` is the model risk (`1 − P(alive)` or the recency rule), the others the hazards, each in
//! `[0, 1]`. Fitted by penalised maximum likelihood (Newton's method, a ridge of
//! [`RIDGE`] on the weights, none on the intercept) with every weight at least 0: a signal can
//! only raise the risk, so the risk rises with each hazard as the noisy-OR's does (the scoring
//! core bounds the risk by its values at engagement hazard 0 and 1). A weight the data would
//! make negative is held at 0 and the others refitted.
//!
//! The alert threshold is chosen on the same observations: the risk at which "risk ≥ threshold"
//! best separates the accounts that cancelled within the horizon (the largest F1 score), among
//! the thresholds that flag at most [`ALERT_BUDGET`] times as many scorings as cancelled (so
//! that alerts stay in proportion to real cancellations even when the signals are weak). A fit
//! whose risk ranks the observations no better than [`MIN_AUC`] is refused: its alerts would
//! be noise.

use serde::{Deserialize, Serialize};

use nalgebra::{DMatrix, DVector};

use super::evaluate::auc;
use crate::EngineError;

/// Names of the features, in order.
pub const FEATURES: [&str; 5] = ["base", "engagement", "complaints", "detractor", "downgrade"];

/// Ridge penalty on the weights (features are within `[0, 1]`).
pub const RIDGE: f64 = 1.0;

/// Fewest cancellations and fewest accounts that stayed needed to fit.
pub const MIN_EACH_OUTCOME: usize = 10;

/// The alert threshold flags at most this many scorings per scoring followed by a cancellation.
pub const ALERT_BUDGET: f64 = 2.0;

/// The least AUC (on the observations fitted) of a usable model.
pub const MIN_AUC: f64 = 0.55;

/// A fitted churn model: coefficients of the logistic regression and the alert threshold.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ChurnModel {
    /// The horizon of the outcome, days: the risk is the probability of cancelling within it.
    pub horizon_days: u32,
    pub intercept: f64,
    /// Weights of [`FEATURES`], each at least 0.
    pub weights: [f64; 5],
    /// A churn-risk alert fires when the risk rises to this.
    pub alert_threshold: f64,
}

impl ChurnModel {
    /// The probability of cancelling within the horizon for features `x`.
    #[inline]
    pub fn risk(&self, x: &[f64; 5]) -> f64 {
        sigmoid(linear(self.intercept, &self.weights, x))
    }
}

/// A fit and what it was fitted on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChurnFit {
    pub model: ChurnModel,
    /// Account scorings (account, cut-off) and how many were followed by a cancellation.
    pub observations: usize,
    pub positives: usize,
    /// Log-likelihood at the fit (without the penalty).
    pub log_likelihood: f64,
    /// AUC of the fitted risk on the observations it was fitted on.
    pub auc: Option<f64>,
}

/// One account scoring: its features and whether a cancellation followed within the horizon.
pub type Observation = ([f64; 5], bool);

/// `intercept + w · x`, the logistic regression's linear predictor.
#[inline]
fn linear(intercept: f64, w: &[f64], x: &[f64; 5]) -> f64 {
    intercept + w.iter().zip(x).map(|(w, x)| w * x).sum::<f64>()
}

/// `1 / (1 + e^−z)`: one formula for every `z`, so that the risk never decreases as a feature
/// rises (`e^−z` overflows to infinity and the risk to 0 for very negative `z`).
#[inline]
fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

/// Fits the model on `obs`; fails with too few cancellations or accounts that stayed.
pub fn fit(obs: &[Observation], horizon_days: u32) -> Result<ChurnFit, EngineError> {
    let positives = obs.iter().filter(|o| o.1).count();
    let negatives = obs.len() - positives;
    if positives < MIN_EACH_OUTCOME || negatives < MIN_EACH_OUTCOME {
        return Err(EngineError::FitFailed(format!(
            "{positives} scorings followed by a cancellation and {negatives} not: \
             at least {MIN_EACH_OUTCOME} of each are needed"
        )));
    }
    let mut free = [true; 5];
    let mut beta = [0.0; 6];
    // The base rate as the start: the intercept alone.
    let rate = positives as f64 / obs.len() as f64;
    beta[0] = (rate / (1.0 - rate)).ln();
    loop {
        beta = newton(obs, beta, &free)?;
        let negative: Vec<usize> = (0..5).filter(|&j| free[j] && beta[j + 1] < 0.0).collect();
        if negative.is_empty() {
            break;
        }
        for j in negative {
            free[j] = false;
            beta[j + 1] = 0.0;
        }
    }
    let mut model = ChurnModel {
        horizon_days,
        intercept: beta[0],
        weights: [beta[1], beta[2], beta[3], beta[4], beta[5]],
        alert_threshold: 0.5,
    };
    let scored: Vec<(f64, bool)> = obs.iter().map(|(x, y)| (model.risk(x), *y)).collect();
    let auc = auc(&scored);
    if auc.is_none_or(|a| a < MIN_AUC) {
        return Err(EngineError::FitFailed(format!(
            "the churn signals do not predict the cancellations here (AUC {:.3} < {MIN_AUC} over {} \
             scorings, {positives} cancelled)",
            auc.unwrap_or(0.5),
            obs.len()
        )));
    }
    model.alert_threshold = best_f1_threshold(&scored, positives);
    let log_likelihood = scored
        .iter()
        .map(|&(p, y)| {
            if y {
                p.max(1e-300).ln()
            } else {
                (1.0 - p).max(1e-300).ln()
            }
        })
        .sum();
    Ok(ChurnFit {
        model,
        observations: obs.len(),
        positives,
        log_likelihood,
        auc,
    })
}

/// The penalised objective: negative log-likelihood plus the ridge on the weights.
fn objective(obs: &[Observation], beta: &[f64; 6]) -> f64 {
    let mut nll = 0.0;
    for (x, y) in obs {
        let z = linear(beta[0], &beta[1..], x);
        // log(1 + e^z) − y·z, computed without overflow.
        let softplus = if z > 0.0 {
            z + (-z).exp().ln_1p()
        } else {
            z.exp().ln_1p()
        };
        nll += softplus - if *y { z } else { 0.0 };
    }
    nll + 0.5 * RIDGE * beta[1..].iter().map(|b| b * b).sum::<f64>()
}

/// Newton's method over the intercept and the free weights (the others held at their value),
/// each step halved until the objective falls.
fn newton(obs: &[Observation], mut beta: [f64; 6], free: &[bool; 5]) -> Result<[f64; 6], EngineError> {
    let idx: Vec<usize> = std::iter::once(0)
        .chain((0..5).filter(|&j| free[j]).map(|j| j + 1))
        .collect();
    let n = idx.len();
    let mut value = objective(obs, &beta);
    for _ in 0..100 {
        let mut grad = DVector::<f64>::zeros(n);
        let mut hess = DMatrix::<f64>::zeros(n, n);
        for (x, y) in obs {
            let full = [1.0, x[0], x[1], x[2], x[3], x[4]];
            let p = sigmoid(linear(beta[0], &beta[1..], x));
            let (r, w) = (p - if *y { 1.0 } else { 0.0 }, p * (1.0 - p));
            let v = DVector::from_iterator(n, idx.iter().map(|&k| full[k]));
            grad.axpy(r, &v, 1.0);
            hess.ger(w, &v, &v, 1.0);
        }
        for (a, &k) in idx.iter().enumerate() {
            if k > 0 {
                grad[a] += RIDGE * beta[k];
                hess[(a, a)] += RIDGE;
            }
        }
        // The penalised Hessian is positive definite (the ridge on the weights; the intercept's
        // diagonal is the sum of p(1 − p) > 0).
        let step = hess
            .cholesky()
            .map(|c| c.solve(&grad))
            .ok_or_else(|| EngineError::FitFailed("the churn model's Hessian is not positive definite".into()))?;
        let mut t = 1.0;
        loop {
            let mut next = beta;
            for (a, &k) in idx.iter().enumerate() {
                next[k] -= t * step[a];
            }
            let v = objective(obs, &next);
            if v <= value || t < 1e-10 {
                let done = (value - v).abs() <= 1e-10 * value.abs().max(1.0);
                beta = next;
                value = v.min(value);
                if done {
                    return Ok(beta);
                }
                break;
            }
            t /= 2.0;
        }
        if !beta.iter().all(|b| b.is_finite()) {
            return Err(EngineError::FitFailed("the churn model's fit diverged".into()));
        }
    }
    Ok(beta)
}

/// The threshold `t` (one of the scores) for which flagging every score `≥ t` has the largest F1
/// score against the outcomes, among those flagging at most [`ALERT_BUDGET`] × `positives`
/// scores (the highest score when even it flags more); ties go to the higher threshold (fewer
/// alerts).
pub fn best_f1_threshold(scored: &[(f64, bool)], positives: usize) -> f64 {
    let mut sorted: Vec<(f64, bool)> = scored.to_vec();
    sorted.sort_by(|a, b| b.0.total_cmp(&a.0));
    let budget = (ALERT_BUDGET * positives as f64).floor() as usize;
    let (mut best, mut best_t, mut tp, mut i) = (-1.0, sorted.first().map_or(1.0, |s| s.0), 0usize, 0);
    while i < sorted.len() {
        let t = sorted[i].0;
        while i < sorted.len() && sorted[i].0 == t {
            tp += sorted[i].1 as usize;
            i += 1;
        }
        if i > budget {
            break;
        }
        let f1 = 2.0 * tp as f64 / (i + positives) as f64;
        if f1 > best {
            (best, best_t) = (f1, t);
        }
    }
    best_t
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Observations drawn from a known model (a fixed linear congruential stream).
    fn sample(n: usize, truth: &ChurnModel) -> Vec<Observation> {
        let mut s = 0x9e37_79b9_7f4a_7c15u64;
        let mut u = move || {
            s = s
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (s >> 11) as f64 / (1u64 << 53) as f64
        };
        (0..n)
            .map(|_| {
                let x = [u(), u(), (u() < 0.2) as u8 as f64, (u() < 0.1) as u8 as f64, 0.0];
                let y = u() < truth.risk(&x);
                (x, y)
            })
            .collect()
    }

    #[test]
    fn recovers_known_coefficients() {
        let truth = ChurnModel {
            horizon_days: 30,
            intercept: -4.0,
            weights: [1.5, 3.0, 1.0, 2.0, 0.0],
            alert_threshold: 0.5,
        };
        let obs = sample(200_000, &truth);
        let fit = fit(&obs, 30).expect("fits");
        let m = fit.model;
        assert!((m.intercept - truth.intercept).abs() < 0.15, "{m:?}");
        for j in 0..4 {
            assert!((m.weights[j] - truth.weights[j]).abs() < 0.15, "weight {j}: {m:?}");
        }
        // The downgrade feature never varies: the ridge holds its weight at 0.
        assert!(m.weights[4].abs() < 1e-9, "{m:?}");
        assert!(fit.auc.expect("both outcomes") > 0.7);
        assert!(m.alert_threshold > 0.0 && m.alert_threshold < 1.0);
    }

    #[test]
    fn a_signal_that_lowers_risk_gets_weight_zero() {
        // Complaints make cancelling less likely in this data: the constraint holds the weight
        // at 0 instead of letting a complaint lower the risk.
        let truth = ChurnModel {
            horizon_days: 30,
            intercept: -2.0,
            weights: [2.0, 0.0, -3.0, 0.0, 0.0],
            alert_threshold: 0.5,
        };
        let obs = sample(50_000, &truth);
        let m = fit(&obs, 30).expect("fits").model;
        assert_eq!(m.weights[2], 0.0, "{m:?}");
        assert!(m.weights[0] > 1.0, "{m:?}");
    }

    #[test]
    fn too_few_cancellations_is_a_clear_failure() {
        let obs: Vec<Observation> = (0..100).map(|i| ([0.5; 5], i < 3)).collect();
        let e = fit(&obs, 30).expect_err("3 cancellations");
        assert!(e.to_string().contains("3 scorings followed by a cancellation"), "{e}");
    }

    #[test]
    fn the_threshold_maximises_f1() {
        // Scores 0.9 (pos), 0.8 (neg), 0.7 (pos), 0.1 (neg), positives 2:
        // t = 0.9: F1 = 2·1/(1+2) = 0.667; t = 0.8: 2·1/(2+2) = 0.5; t = 0.7: 2·2/(3+2) = 0.8;
        // t = 0.1: 2·2/(4+2) = 0.667 -> 0.7.
        let s = [(0.9, true), (0.8, false), (0.7, true), (0.1, false)];
        assert_eq!(best_f1_threshold(&s, 2), 0.7);
        // Budget: 1 positive may flag at most 2 scores. Scores 0.9 (neg), 0.8 (neg), 0.7 (pos),
        // 0.1 (neg): F1 would be best at 0.7 (2·1/(3+1) = 0.5) but that flags 3 > 2; of 0.9
        // (F1 0) and 0.8 (F1 0) the first, higher one is kept.
        let s = [(0.9, false), (0.8, false), (0.7, true), (0.1, false)];
        assert_eq!(best_f1_threshold(&s, 1), 0.9);
    }

    #[test]
    fn signals_that_do_not_predict_give_no_model() {
        // Outcomes drawn independently of the features (a model with every weight 0).
        let flat = ChurnModel {
            horizon_days: 30,
            intercept: -2.0,
            weights: [0.0; 5],
            alert_threshold: 0.5,
        };
        let obs = sample(5_000, &flat);
        let e = fit(&obs, 30).expect_err("AUC about 0.5");
        assert!(e.to_string().contains("do not predict"), "{e}");
    }
}
