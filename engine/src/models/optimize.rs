//! Maximum likelihood by Nelder-Mead over log-parameters, restarted until it stops improving.
//!
//! Every model here has positive parameters, so each is searched as its logarithm (as the
//! `lifetimes` Python package does). A round runs argmin's Nelder-Mead from a simplex around the
//! best point so far; later rounds restart with a smaller simplex, which guards against a
//! collapsed simplex stopping early. Rounds stop once one improves the cost by less than
//! [`ROUND_IMPROVEMENT`].

use argmin::core::{CostFunction, Executor, State, TerminationReason};
use argmin::solver::neldermead::NelderMead;

use crate::error::EngineError;

/// Cost of a non-finite likelihood: finite, so Nelder-Mead's spread test stays finite too.
pub const PENALTY: f64 = 1e100;
const MAX_ROUNDS: usize = 8;
const MAX_ITERS_PER_ROUND: u64 = 5_000;
const SD_TOLERANCE: f64 = 1e-12;
/// Rounds stop once a round improves the cost by less than this.
const ROUND_IMPROVEMENT: f64 = 1e-11;
/// Fitted log-parameters beyond this magnitude (e^30 ≈ 1e13) mean the likelihood has no interior
/// maximum on this data.
const MAX_ABS_LOG_PARAM: f64 = 30.0;

/// Where the search ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Minimum {
    /// The log-parameters at the minimum.
    pub log_params: Vec<f64>,
    /// The cost there.
    pub cost: f64,
    /// Nelder-Mead iterations, summed over the rounds.
    pub iterations: u64,
}

/// A cost function of the log-parameters for argmin.
struct Objective<'a, F>(&'a F);

impl<F: Fn(&[f64]) -> f64> CostFunction for Objective<'_, F> {
    type Param = Vec<f64>;
    type Output = f64;

    fn cost(&self, p: &Vec<f64>) -> Result<f64, argmin::core::Error> {
        let c = (self.0)(p);
        Ok(if c.is_finite() { c } else { PENALTY })
    }
}

/// Minimises `cost` (a function of the log-parameters, typically the negative mean
/// log-likelihood) from `start`.
///
/// Fails with [`EngineError::FitFailed`] when the search does not converge in [`MAX_ROUNDS`]
/// rounds, or ends at a non-finite cost or at log-parameters beyond ±30 (the likelihood has no
/// interior maximum on this data).
pub fn minimize_log_params(cost: &impl Fn(&[f64]) -> f64, start: &[f64]) -> Result<Minimum, EngineError> {
    let fail = |m: String| Err(EngineError::FitFailed(m));
    let finite = |c: f64| if c.is_finite() { c } else { PENALTY };
    let mut best = start.to_vec();
    let mut best_cost = finite(cost(&best));
    let mut iterations = 0_u64;
    let mut converged = false;
    for round in 0..MAX_ROUNDS {
        let step = if round == 0 { 1.0 } else { 0.1 };
        let mut simplex = vec![best.clone()];
        for k in 0..best.len() {
            let mut v = best.clone();
            v[k] += step;
            simplex.push(v);
        }
        let solver = NelderMead::new(simplex)
            .with_sd_tolerance(SD_TOLERANCE)
            .map_err(|e| EngineError::FitFailed(format!("Nelder-Mead setup: {e}")))?;
        let result = Executor::new(Objective(cost), solver)
            .configure(|s| s.max_iters(MAX_ITERS_PER_ROUND))
            .timer(false)
            .run()
            .map_err(|e| EngineError::FitFailed(format!("Nelder-Mead: {e}")))?;
        let state = result.state();
        iterations += state.get_iter();
        let hit_max = matches!(state.get_termination_reason(), Some(TerminationReason::MaxItersReached));
        let Some(p) = state.get_best_param() else {
            return fail("Nelder-Mead returned no parameters".to_string());
        };
        let c = state.get_best_cost();
        let improvement = best_cost - c;
        if c < best_cost {
            best = p.clone();
            best_cost = c;
        }
        if round > 0 && !hit_max && improvement < ROUND_IMPROVEMENT {
            converged = true;
            break;
        }
    }
    if !converged {
        return fail(format!(
            "Nelder-Mead did not converge in {MAX_ROUNDS} rounds ({iterations} iterations)"
        ));
    }
    if best_cost >= PENALTY || best.iter().any(|v| !v.is_finite() || v.abs() > MAX_ABS_LOG_PARAM) {
        return fail(format!(
            "the likelihood has no finite maximum on this data (log-parameters {best:?})"
        ));
    }
    Ok(Minimum {
        log_params: best,
        cost: best_cost,
        iterations,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_minimum_of_a_bowl() {
        // Minimum at log-parameters (ln 2, ln 0.5).
        let f = |p: &[f64]| (p[0] - 2f64.ln()).powi(2) + 3.0 * (p[1] - 0.5f64.ln()).powi(2);
        let m = minimize_log_params(&f, &[0.0, 0.0]).expect("converges");
        assert!((m.log_params[0].exp() - 2.0).abs() < 1e-5, "{m:?}");
        assert!((m.log_params[1].exp() - 0.5).abs() < 1e-5, "{m:?}");
        assert!(m.cost < 1e-10);
    }

    #[test]
    fn an_unbounded_likelihood_is_refused() {
        // Decreasing without bound as the parameter grows: no interior minimum.
        let f = |p: &[f64]| -p[0];
        let e = minimize_log_params(&f, &[0.0]).expect_err("no minimum");
        assert!(matches!(e, EngineError::FitFailed(_)), "{e}");
    }
}
