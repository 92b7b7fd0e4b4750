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
/// Rounds in a row that run out of iterations before the search gives up: it is following a
/// ridge towards a limit of the model, not closing in on a maximum.
const MAX_ROUNDS_AT_MAX_ITERS: usize = 2;
const SD_TOLERANCE: f64 = 1e-12;
/// Rounds stop once a round improves the cost by less than this.
const ROUND_IMPROVEMENT: f64 = 1e-11;
/// Fitted log-parameters beyond this magnitude (e^30 ≈ 1e13) mean the likelihood has no interior
/// maximum on this data: the search is walking off to a limit of the model (BG/NBD's Poisson
/// limit when purchases are more regular than a gamma mixture allows: r and alpha grow together
/// without bound). A round that ends there stops the search.
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
/// Fails with [`EngineError::FitFailed`] when a round ends at log-parameters beyond ±30 or at a
/// non-finite cost, or two rounds in a row run out of iterations (the likelihood has no interior
/// maximum on this data), or when the search does not converge in [`MAX_ROUNDS`] rounds.
pub fn minimize_log_params(cost: &impl Fn(&[f64]) -> f64, start: &[f64]) -> Result<Minimum, EngineError> {
    let fail = |m: String| Err(EngineError::FitFailed(m));
    let finite = |c: f64| if c.is_finite() { c } else { PENALTY };
    let mut best = start.to_vec();
    let mut best_cost = finite(cost(&best));
    let mut iterations = 0_u64;
    let mut converged = false;
    // Rounds in a row that ran out of iterations.
    let mut at_max = 0;
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
        if best.iter().any(|v| v.abs() > MAX_ABS_LOG_PARAM) {
            break;
        }
        at_max = if hit_max { at_max + 1 } else { 0 };
        if at_max == MAX_ROUNDS_AT_MAX_ITERS {
            return fail(format!(
                "Nelder-Mead follows a ridge without converging ({iterations} iterations, log-parameters \
                 {best:?}): the likelihood has no finite maximum on this data"
            ));
        }
        if round > 0 && !hit_max && improvement < ROUND_IMPROVEMENT {
            converged = true;
            break;
        }
    }
    if best_cost >= PENALTY || best.iter().any(|v| !v.is_finite() || v.abs() > MAX_ABS_LOG_PARAM) {
        return fail(format!(
            "the likelihood has no finite maximum on this data (log-parameters {best:?} after {iterations} iterations)"
        ));
    }
    if !converged {
        return fail(format!(
            "Nelder-Mead did not converge in {MAX_ROUNDS} rounds ({iterations} iterations)"
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

    #[test]
    fn a_search_that_never_settles_stops_after_two_rounds_out_of_iterations() {
        // A bowl with noise of 1e-3 on the cost: the simplex's costs never agree to 1e-12, so
        // every round runs out of iterations. Two such rounds in a row end the search (the
        // demo's BG/NBD on too regular purchases walked a ridge like this for eight).
        let f = |p: &[f64]| {
            let h = (p[0].to_bits() ^ p[1].to_bits().rotate_left(17)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            p[0] * p[0] + p[1] * p[1] + 1e-3 * (h >> 11) as f64 / (1u64 << 53) as f64
        };
        match minimize_log_params(&f, &[1.0, 1.0]) {
            Err(EngineError::FitFailed(why)) => {
                assert!(why.contains("ridge"), "{why}");
                assert!(
                    why.contains(&format!("{} iterations", 2 * MAX_ITERS_PER_ROUND)),
                    "{why}"
                );
            }
            other => panic!("{other:?}"),
        }
    }
}
