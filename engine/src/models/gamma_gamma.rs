//! The Gamma-Gamma model of spend per purchase (Fader, Hardie & Lee 2005, "RFM and CLV: Using
//! Iso-Value Curves for Customer Base Analysis", JMR 42(4)).
//!
//! A customer's purchase values are Gamma(`p`, `ν`) around its own mean; `ν` varies across
//! customers as Gamma(`q`, `γ`). A customer is summarised by `x` repeat purchase occasions and
//! `m`, their mean value (the first purchase left out, as in the paper). Fitted by maximum
//! likelihood on the customers with `x ≥ 1`; the fit then gives each customer's expected spend
//! per future purchase, which with BG/NBD's expected purchases gives customer value.

use serde::{Deserialize, Serialize};
use statrs::function::gamma::ln_gamma;

use super::optimize::{Minimum, minimize_log_params};
use crate::error::EngineError;

/// The population parameters: `p` (shape of one customer's spend), `q` and `gamma` (shape and
/// scale of the spread of customers' rates). All positive; `gamma` is in money.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GammaGammaParams {
    pub p: f64,
    pub q: f64,
    pub gamma: f64,
}

/// One customer: `x ≥ 1` repeat purchase occasions with mean value `m > 0`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Spend {
    pub x: f64,
    pub m: f64,
}

/// The result of [`fit`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GammaGammaFit {
    pub params: GammaGammaParams,
    /// Total log-likelihood at `params`.
    pub log_likelihood: f64,
    pub iterations: u64,
    /// Customers fitted (those with `x ≥ 1` and `m > 0`).
    pub customers: usize,
}

impl GammaGammaParams {
    /// One customer's log-likelihood of its mean spend (paper eq. 3):
    /// `ln Γ(px+q) − ln Γ(px) − ln Γ(q) + q ln γ + (px−1) ln m + px ln x − (px+q) ln(γ + x m)`.
    pub fn log_likelihood(&self, c: &Spend) -> f64 {
        let GammaGammaParams { p, q, gamma } = *self;
        let px = p * c.x;
        ln_gamma(px + q) - ln_gamma(px) - ln_gamma(q) + q * gamma.ln() + (px - 1.0) * c.m.ln() + px * c.x.ln()
            - (px + q) * (gamma + c.x * c.m).ln()
    }

    /// The population's mean spend per purchase, `p γ / (q − 1)` (infinite when `q ≤ 1`).
    pub fn population_mean(&self) -> f64 {
        if self.q <= 1.0 {
            return f64::INFINITY;
        }
        self.p * self.gamma / (self.q - 1.0)
    }

    /// E[spend per purchase | x, m] (paper eq. 5): `p (γ + x m) / (p x + q − 1)`, a weighted
    /// mean of the population's mean and the customer's own. For `x = 0` the population mean.
    pub fn expected_spend(&self, x: f64, m: f64) -> f64 {
        if x <= 0.0 || m <= 0.0 {
            return self.population_mean();
        }
        self.p * (self.gamma + x * m) / (self.p * x + self.q - 1.0)
    }
}

/// Maximum-likelihood parameters over `customers`; rows with `x < 1` or `m ≤ 0` carry no
/// information about spend and are left out.
///
/// Fails with [`EngineError::FitFailed`] when fewer than two customers remain, a row is not
/// finite, or the optimisation does not converge.
pub fn fit(customers: &[Spend]) -> Result<GammaGammaFit, EngineError> {
    let rows: Vec<Spend> = customers.iter().copied().filter(|c| c.x >= 1.0 && c.m > 0.0).collect();
    if let Some(c) = rows.iter().find(|c| !(c.x.is_finite() && c.m.is_finite())) {
        return Err(EngineError::FitFailed(format!(
            "a customer has a non-finite statistic: {c:?}"
        )));
    }
    if rows.len() < 2 {
        return Err(EngineError::FitFailed(format!(
            "{} customers with a repeat purchase of positive value; at least 2 are needed",
            rows.len()
        )));
    }
    let n = rows.len() as f64;
    let params = |lp: &[f64]| GammaGammaParams {
        p: lp[0].exp(),
        q: lp[1].exp(),
        gamma: lp[2].exp(),
    };
    let cost = |lp: &[f64]| {
        let ps = params(lp);
        -rows.iter().map(|c| ps.log_likelihood(c)).sum::<f64>() / n
    };
    // Start at p = q = 1 and γ at the mean spend, the scale of the data.
    let mean_m = rows.iter().map(|c| c.m).sum::<f64>() / n;
    let Minimum {
        log_params,
        cost: best,
        iterations,
    } = minimize_log_params(&cost, &[0.0, 0.0, mean_m.ln()])?;
    Ok(GammaGammaFit {
        params: params(&log_params),
        log_likelihood: -best * n,
        iterations,
        customers: rows.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PUBLISHED: GammaGammaParams = GammaGammaParams {
        p: 6.25,
        q: 3.74,
        gamma: 15.44,
    };

    #[test]
    fn log_likelihood_matches_the_densities() {
        // The paper's eq. 3 is the marginal of a Gamma(px, ν x) mean given ν ~ Gamma(q, γ);
        // integrate that numerically over ν for one customer.
        let c = Spend { x: 3.0, m: 25.0 };
        let ps = PUBLISHED;
        let ln_density_mean = |nu: f64| {
            let shape = ps.p * c.x;
            let rate = nu * c.x;
            shape * rate.ln() + (shape - 1.0) * c.m.ln() - rate * c.m - ln_gamma(shape)
        };
        let ln_prior = |nu: f64| ps.q * ps.gamma.ln() + (ps.q - 1.0) * nu.ln() - ps.gamma * nu - ln_gamma(ps.q);
        let (mut total, steps, hi) = (0.0, 200_000, 5.0);
        let h = hi / steps as f64;
        for i in 0..steps {
            let nu = (i as f64 + 0.5) * h;
            total += (ln_density_mean(nu) + ln_prior(nu)).exp() * h;
        }
        let want = total.ln();
        let got = ps.log_likelihood(&c);
        assert!((got - want).abs() < 1e-6, "got {got}, numeric {want}");
    }

    #[test]
    fn expected_spend_is_a_weighted_mean() {
        let ps = PUBLISHED;
        let pop = ps.population_mean();
        assert!((pop - 6.25 * 15.44 / 2.74).abs() < 1e-12);
        // Published in lifetimes' documentation for the CDNOW fit: weight p x / (p x + q − 1).
        let (x, m) = (2.0, 40.0);
        let w = ps.p * x / (ps.p * x + ps.q - 1.0);
        let want = (1.0 - w) * pop + w * m;
        assert!((ps.expected_spend(x, m) - want).abs() < 1e-12);
        assert_eq!(ps.expected_spend(0.0, 0.0), pop);
    }

    #[test]
    fn fit_recovers_simulated_parameters() {
        // Customers drawn from the model itself with a fixed generator.
        let truth = GammaGammaParams {
            p: 4.0,
            q: 5.0,
            gamma: 60.0,
        };
        let mut rng = SplitMix(7);
        let rows: Vec<Spend> = (0..4000)
            .map(|i| {
                let x = 1.0 + (i % 6) as f64;
                let nu = rng.gamma(truth.q) / truth.gamma;
                let total = rng.gamma(truth.p * x) / nu;
                Spend { x, m: total / x }
            })
            .collect();
        let fit = fit(&rows).expect("fit");
        let p = fit.params;
        assert!((p.p / truth.p - 1.0).abs() < 0.15, "{p:?}");
        assert!((p.q / truth.q - 1.0).abs() < 0.2, "{p:?}");
        assert!(
            (p.population_mean() / truth.population_mean() - 1.0).abs() < 0.05,
            "{p:?}"
        );
        assert_eq!(fit.customers, 4000);
    }

    #[test]
    fn too_few_customers_are_refused() {
        let e = fit(&[Spend { x: 0.0, m: 0.0 }, Spend { x: 2.0, m: 10.0 }]).expect_err("one row");
        assert!(e.to_string().contains("at least 2"), "{e}");
    }

    /// A small deterministic generator with a Gamma sampler (Marsaglia & Tsang).
    struct SplitMix(u64);

    impl SplitMix {
        fn uniform(&mut self) -> f64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
        }

        fn normal(&mut self) -> f64 {
            let (u, v) = (self.uniform().max(1e-300), self.uniform());
            (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
        }

        fn gamma(&mut self, shape: f64) -> f64 {
            if shape < 1.0 {
                return self.gamma(shape + 1.0) * self.uniform().powf(1.0 / shape);
            }
            let d = shape - 1.0 / 3.0;
            let c = 1.0 / (9.0 * d).sqrt();
            loop {
                let z = self.normal();
                let v = (1.0 + c * z).powi(3);
                if v <= 0.0 {
                    continue;
                }
                if self.uniform().ln() < 0.5 * z * z + d - d * v + d * v.ln() {
                    return d * v;
                }
            }
        }
    }
}
