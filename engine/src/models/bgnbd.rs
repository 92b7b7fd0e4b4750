//! The BG/NBD model of repeat buying (Fader, Hardie & Lee 2005, "Counting Your Customers the Easy Way").
//!
//! Pure functions, no I/O. A customer is summarised by [`Rfm`]: `x` repeat purchase occasions, the
//! last one at `t_x`, observed up to age `t` (all times in one unit, e.g. weeks, measured from the
//! customer's first purchase). [`fit`] estimates the population parameters [`BgNbdParams`] by maximum
//! likelihood (Nelder-Mead on the log-parameters, as the `lifetimes` Python package does); the
//! parameters then give each customer's probability of being alive and expected future purchases.
//!
//! Equation numbers refer to the paper. Everything is computed in log space where it matters, so
//! customers with hundreds of purchases do not overflow.

use serde::{Deserialize, Serialize};
use statrs::function::gamma::ln_gamma;

use super::optimize::{Minimum, minimize_log_params};
use crate::error::EngineError;

/// The four population parameters of BG/NBD: purchase rates are Gamma(`r`, `alpha`) across
/// customers, dropout probabilities after each purchase are Beta(`a`, `b`). `alpha` is in the
/// model's time unit; the others are unitless. All four are positive.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BgNbdParams {
    pub r: f64,
    pub alpha: f64,
    pub a: f64,
    pub b: f64,
}

/// One customer's sufficient statistics: `x` = repeat transactions (purchase occasions after the
/// first), `t_x` = time of the last one, `t` = age (time from the first purchase to the end of
/// observation, the paper's `T`). All times in the same unit, measured from the first purchase.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Rfm {
    pub x: f64,
    pub t_x: f64,
    pub t: f64,
}

/// The result of [`fit`]: the maximum-likelihood parameters and how they were reached.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BgNbdFit {
    pub params: BgNbdParams,
    /// Total log-likelihood of all customers at `params` (the paper reports -9582.4 for CDNOW).
    pub log_likelihood: f64,
    /// Nelder-Mead iterations, summed over all restarts.
    pub iterations: u64,
    /// Number of customers fitted (the sum of the counts for [`fit_weighted`]).
    pub customers: usize,
}

/// `ln(exp(u) + exp(v))` without overflow.
fn log_add_exp(u: f64, v: f64) -> f64 {
    let (hi, lo) = if u >= v { (u, v) } else { (v, u) };
    if lo == f64::NEG_INFINITY {
        return hi;
    }
    hi + (lo - hi).exp().ln_1p()
}

impl BgNbdParams {
    /// The part of a customer's log-likelihood that depends only on `x`:
    /// `ln[Γ(r+x) α^r / Γ(r)] + ln[B(a, b+x) / B(a, b)]`.
    fn ll_x_part(&self, x: f64) -> f64 {
        let BgNbdParams { r, alpha, a, b } = *self;
        let a1 = ln_gamma(r + x) - ln_gamma(r) + r * alpha.ln();
        let a2 = ln_gamma(a + b) + ln_gamma(b + x) - ln_gamma(b) - ln_gamma(a + b + x);
        a1 + a2
    }

    /// The rest of the log-likelihood, given `ln_a_over = ln(a / (b + x - 1))` (unused when x == 0).
    fn ll_time_part(&self, x: f64, ln_a_over: f64, t_x: f64, t: f64) -> f64 {
        let a3 = -(self.r + x) * (self.alpha + t).ln();
        if x > 0.0 {
            let a4 = ln_a_over - (self.r + x) * (self.alpha + t_x).ln();
            log_add_exp(a3, a4)
        } else {
            a3
        }
    }

    /// `ln(a / (b + x - 1))` for x > 0; 0 otherwise (then unused).
    fn ln_a_over(&self, x: f64) -> f64 {
        if x > 0.0 {
            self.a.ln() - (self.b + x - 1.0).ln()
        } else {
            0.0
        }
    }

    /// One customer's log-likelihood (paper eq. 6), in the numerically stable form
    /// `ln[Γ(r+x)α^r/Γ(r)] + ln[B(a,b+x)/B(a,b)] + ln[(α+T)^-(r+x) + δ(x>0) a/(b+x-1) (α+t_x)^-(r+x)]`.
    pub fn log_likelihood(&self, c: &Rfm) -> f64 {
        self.ll_x_part(c.x) + self.ll_time_part(c.x, self.ln_a_over(c.x), c.t_x, c.t)
    }

    /// Sum of [`BgNbdParams::log_likelihood`] over customers.
    pub fn total_log_likelihood(&self, cs: &[Rfm]) -> f64 {
        cs.iter().map(|c| self.log_likelihood(c)).sum()
    }

    /// `ln` of the odds that the customer has dropped out, `a/(b+x-1) ((α+T)/(α+t_x))^(r+x)`
    /// (x > 0 only).
    fn ln_dropout_odds(&self, c: &Rfm) -> f64 {
        self.ln_a_over(c.x) + (self.r + c.x) * ((self.alpha + c.t).ln() - (self.alpha + c.t_x).ln())
    }

    /// P(alive | x, t_x, T) (Fader, Hardie & Lee, note "Computing P(alive) using the BG/NBD model"):
    /// `1 / (1 + δ(x>0) a/(b+x-1) ((α+T)/(α+t_x))^(r+x))`. Exactly 1.0 when x == 0 (a known
    /// limit of BG/NBD: a customer can only drop out right after a repeat purchase).
    pub fn p_alive(&self, c: &Rfm) -> f64 {
        if c.x <= 0.0 {
            return 1.0;
        }
        1.0 / (1.0 + self.ln_dropout_odds(c).exp())
    }

    /// E[Y(t) | x, t_x, T]: expected purchases in the next `t` time units of a customer with the
    /// given history (paper eq. 10). Computed through the Euler transform of its 2F1,
    /// `1 - (1-z)^(r+x) 2F1(r+x, b+x; a+b+x-1; z) = 1 - (1-z)^(a-1) 2F1(a+b-1-r, a-1; a+b+x-1; z)`
    /// with `z = t/(α+T+t)`, which has no large intermediate values for frequent buyers.
    pub fn expected_conditional(&self, t: f64, c: &Rfm) -> f64 {
        let f = |a: f64| {
            let p = BgNbdParams { a, ..*self };
            let z = t / (p.alpha + c.t + t);
            let x = c.x;
            let bracket = 1.0 - (1.0 - z).powf(a - 1.0) * hyp2f1(a + p.b - 1.0 - p.r, a - 1.0, a + p.b + x - 1.0, z);
            let lead = (a + p.b + x - 1.0) / (a - 1.0);
            let denom = if x > 0.0 { 1.0 + p.ln_dropout_odds(c).exp() } else { 1.0 };
            lead * bracket / denom
        };
        across_a_equals_one(self.a, f)
    }

    /// E[X(t)]: expected purchases of a new customer in its first `t` time units (paper eq. 9),
    /// `(a+b-1)/(a-1) [1 - (α/(α+t))^r 2F1(r, b; a+b-1; t/(α+t))]`, computed through the Euler
    /// transform of the 2F1 like [`BgNbdParams::expected_conditional`].
    pub fn expected_unconditional(&self, t: f64) -> f64 {
        let f = |a: f64| {
            let p = BgNbdParams { a, ..*self };
            let z = t / (p.alpha + t);
            let bracket = 1.0 - (1.0 - z).powf(a - 1.0) * hyp2f1(a + p.b - 1.0 - p.r, a - 1.0, a + p.b - 1.0, z);
            (a + p.b - 1.0) / (a - 1.0) * bracket
        };
        across_a_equals_one(self.a, f)
    }
}

/// The expectations divide by `a - 1`, with a removable singularity at `a = 1`; near it, interpolate
/// linearly between points at a safe distance (error O(h²)).
fn across_a_equals_one(a: f64, f: impl Fn(f64) -> f64) -> f64 {
    const H: f64 = 1e-4;
    if (a - 1.0).abs() >= H {
        return f(a);
    }
    let (lo, hi) = (f(1.0 - H), f(1.0 + H));
    let w = (a - (1.0 - H)) / (2.0 * H);
    lo + w * (hi - lo)
}

/// A customer's statistics from the times of its distinct purchase occasions (sorted ascending,
/// the first one is the first purchase) and the end of observation `end`: `x` = count - 1,
/// `t_x` = last - first, `T` = end - first. An empty slice gives all zeros (no purchase, no
/// statistics).
pub fn rfm_from_occasions(occasion_times: &[f64], end: f64) -> Rfm {
    debug_assert!(
        occasion_times.windows(2).all(|w| w[0] < w[1]),
        "occasion times must be sorted and distinct"
    );
    match (occasion_times.first(), occasion_times.last()) {
        (Some(&first), Some(&last)) => Rfm {
            x: (occasion_times.len() - 1) as f64,
            t_x: last - first,
            t: end - first,
        },
        _ => Rfm {
            x: 0.0,
            t_x: 0.0,
            t: 0.0,
        },
    }
}

// ---------------------------------------------------------------------------------------------
// Gauss hypergeometric function
// ---------------------------------------------------------------------------------------------

/// Beyond this z the power series is replaced by the 1 - z connection formula.
const Z_SERIES_MAX: f64 = 0.9;
/// Term cap of the power series where it is the primary method.
const SERIES_MAX_TERMS: usize = 1_000_000;
/// Term cap of the power series as fallback near z = 1 when c - a - b is (nearly) an integer.
const SERIES_FALLBACK_TERMS: usize = 50_000;
/// How close c - a - b may come to an integer before the connection formula is not used.
const NEAR_INTEGER: f64 = 1e-4;

fn is_nonpositive_integer(v: f64) -> bool {
    v <= 0.0 && v == v.floor()
}

/// `(ln|Γ(v)|, sign Γ(v))`; the sign is 0.0 at the poles (v a non-positive integer), where `1/Γ = 0`.
fn ln_gamma_signed(v: f64) -> (f64, f64) {
    if v > 0.0 {
        (ln_gamma(v), 1.0)
    } else if v == v.floor() {
        (f64::INFINITY, 0.0)
    } else {
        // Reflection: Γ(v) = π / (sin(πv) Γ(1-v)).
        let s = (std::f64::consts::PI * v).sin();
        (std::f64::consts::PI.ln() - s.abs().ln() - ln_gamma(1.0 - v), s.signum())
    }
}

/// `Γ(n0) Γ(n1) / (Γ(d0) Γ(d1))`; zero when a denominator argument is a pole. Numerator arguments
/// must not be poles.
fn gamma_ratio(n0: f64, n1: f64, d0: f64, d1: f64) -> f64 {
    let (ln_d0, s_d0) = ln_gamma_signed(d0);
    let (ln_d1, s_d1) = ln_gamma_signed(d1);
    if s_d0 == 0.0 || s_d1 == 0.0 {
        return 0.0;
    }
    let (ln_n0, s_n0) = ln_gamma_signed(n0);
    let (ln_n1, s_n1) = ln_gamma_signed(n1);
    s_n0 * s_n1 * s_d0 * s_d1 * (ln_n0 + ln_n1 - ln_d0 - ln_d1).exp()
}

/// The power series `Σ (a)_n (b)_n / ((c)_n n!) z^n`, stopped once the remaining tail (bounded by
/// a geometric series) is below half an ulp of the sum. `None` if `max_terms` were not enough.
fn hyp2f1_series(a: f64, b: f64, c: f64, z: f64, max_terms: usize) -> Option<f64> {
    let mut sum = 1.0_f64;
    let mut term = 1.0_f64;
    for n in 0..max_terms {
        let nf = n as f64;
        let ratio = (a + nf) * (b + nf) / ((c + nf) * (nf + 1.0)) * z;
        term *= ratio;
        sum += term;
        if term == 0.0 || !sum.is_finite() {
            return Some(sum);
        }
        // Later ratios tend to z; bound the tail by a geometric series with the larger of both.
        let rho = ratio.abs().max(z.abs());
        if rho < 1.0 && term.abs() <= 0.5 * f64::EPSILON * sum.abs() * (1.0 - rho) {
            return Some(sum);
        }
    }
    None
}

/// 2F1 for 0.9 < z < 1 by the connection formula (Abramowitz & Stegun 15.3.6) to series in 1 - z,
/// valid when c - a - b is not an integer:
/// `Γ(c)Γ(c-a-b)/(Γ(c-a)Γ(c-b)) F(a,b;a+b-c+1;1-z) + (1-z)^(c-a-b) Γ(c)Γ(a+b-c)/(Γ(a)Γ(b)) F(c-a,c-b;c-a-b+1;1-z)`.
fn hyp2f1_connection(a: f64, b: f64, c: f64, z: f64) -> f64 {
    let w = 1.0 - z;
    let d = c - a - b;
    let mut total = 0.0;
    let k1 = gamma_ratio(c, d, c - a, c - b);
    if k1 != 0.0 {
        total += k1 * hyp2f1_series(a, b, 1.0 - d, w, SERIES_MAX_TERMS).unwrap_or(f64::NAN);
    }
    let k2 = gamma_ratio(c, -d, a, b);
    if k2 != 0.0 {
        total += k2 * w.powf(d) * hyp2f1_series(c - a, c - b, d + 1.0, w, SERIES_MAX_TERMS).unwrap_or(f64::NAN);
    }
    total
}

/// 2F1 for 0.9 < z < 1.
fn hyp2f1_near_one(a: f64, b: f64, c: f64, z: f64) -> f64 {
    let d = c - a - b;
    if (d - d.round()).abs() > NEAR_INTEGER {
        return hyp2f1_connection(a, b, c, z);
    }
    // c - a - b (nearly) an integer: the connection formula cancels. The plain series still
    // converges (slowly); use it while affordable (z up to about 0.998).
    if let Some(v) = hyp2f1_series(a, b, c, z, SERIES_FALLBACK_TERMS) {
        return v;
    }
    // Otherwise 2F1 is analytic in c: Richardson-extrapolate symmetric evaluations at c ± h, c ± 2h,
    // where c - a - b is at least h - NEAR_INTEGER from the integer, so the connection formula
    // applies (error O(h^4): about 1e-11 relative at 1 - z = 1e-12).
    const H: f64 = 2.0 * NEAR_INTEGER;
    let g = |s: f64| hyp2f1_connection(a, b, c + s, z);
    let m1 = 0.5 * (g(H) + g(-H));
    let m2 = 0.5 * (g(2.0 * H) + g(-2.0 * H));
    (4.0 * m1 - m2) / 3.0
}

/// The Gauss hypergeometric function `2F1(a, b; c; z)` for real arguments and z <= 1.
///
/// - 0 <= z <= 0.9: the power series with a convergence check on the tail;
/// - 0.9 < z < 1: the 1 - z connection formula (A&S 15.3.6), or near an integer c - a - b the
///   slowly converging series / extrapolation in c;
/// - z < 0: Pfaff's transformation `(1-z)^-a 2F1(a, c-b; c; z/(z-1))` into [0, 1);
/// - z = 1: Gauss's theorem when c - a - b > 0, infinity otherwise.
///
/// Closed forms are used when a or b equals c, and a non-positive integer a or b gives the
/// terminating polynomial. NaN for z > 1, non-finite input, or c a non-positive integer.
/// BG/NBD uses z = t/(α+T+t) and t/(α+t), always in [0, 1).
pub fn hyp2f1(a: f64, b: f64, c: f64, z: f64) -> f64 {
    if !(a.is_finite() && b.is_finite() && c.is_finite() && z.is_finite()) || z > 1.0 {
        return f64::NAN;
    }
    if a == 0.0 || b == 0.0 || z == 0.0 {
        return 1.0;
    }
    if is_nonpositive_integer(a) || is_nonpositive_integer(b) {
        // A polynomial (unless c hits a pole first, which the terms show as non-finite).
        if is_nonpositive_integer(c) && c > a.max(b) {
            return f64::NAN;
        }
        return hyp2f1_series(a, b, c, z, SERIES_MAX_TERMS).unwrap_or(f64::NAN);
    }
    if is_nonpositive_integer(c) {
        return f64::NAN;
    }
    if b == c {
        return (1.0 - z).powf(-a);
    }
    if a == c {
        return (1.0 - z).powf(-b);
    }
    if z < 0.0 {
        return (1.0 - z).powf(-a) * hyp2f1(a, c - b, c, z / (z - 1.0));
    }
    if z == 1.0 {
        return if c - a - b > 0.0 {
            gamma_ratio(c, c - a - b, c - a, c - b)
        } else {
            f64::INFINITY
        };
    }
    if z <= Z_SERIES_MAX {
        return hyp2f1_series(a, b, c, z, SERIES_MAX_TERMS).unwrap_or(f64::NAN);
    }
    hyp2f1_near_one(a, b, c, z)
}

// ---------------------------------------------------------------------------------------------
// Maximum-likelihood fit
// ---------------------------------------------------------------------------------------------

/// Customers sharing one `x`, whose `x`-only terms are computed once per likelihood evaluation.
struct XGroup {
    x: f64,
    weight: f64,
    /// `(t_x, T, count)`.
    members: Vec<(f64, f64, f64)>,
}

/// The negative mean log-likelihood as a function of the log-parameters.
struct NegMeanLl<'a> {
    groups: &'a [XGroup],
    total_weight: f64,
}

impl NegMeanLl<'_> {
    fn total_ll(&self, p: &BgNbdParams) -> f64 {
        let mut total = 0.0;
        for g in self.groups {
            let ln_a_over = p.ln_a_over(g.x);
            let mut time_part = 0.0;
            for &(t_x, t, w) in &g.members {
                time_part += w * p.ll_time_part(g.x, ln_a_over, t_x, t);
            }
            total += g.weight * p.ll_x_part(g.x) + time_part;
        }
        total
    }
}

fn params_from_log(p: &[f64]) -> BgNbdParams {
    BgNbdParams {
        r: p[0].exp(),
        alpha: p[1].exp(),
        a: p[2].exp(),
        b: p[3].exp(),
    }
}

/// Identical `(x, t_x, T)` rows merged with their counts, in first-seen order (exact equality).
pub fn group_identical(customers: &[Rfm]) -> Vec<(Rfm, u64)> {
    let mut index: hashbrown::HashMap<[u64; 3], usize> = hashbrown::HashMap::with_capacity(customers.len());
    let mut out: Vec<(Rfm, u64)> = Vec::new();
    for c in customers {
        let key = [c.x.to_bits(), c.t_x.to_bits(), c.t.to_bits()];
        let i = *index.entry(key).or_insert_with(|| {
            out.push((*c, 0));
            out.len() - 1
        });
        out[i].1 += 1;
    }
    out
}

/// Maximum-likelihood BG/NBD parameters of `customers` (paper section 3). Identical rows are
/// grouped first (see [`fit_weighted`]).
///
/// Fails with [`EngineError::FitFailed`] when there are no customers, a row is invalid (non-finite,
/// negative, `x` not a whole number, `t_x > T`), no customer made a repeat purchase (the likelihood
/// then has no maximum), or the optimisation does not converge to finite parameters.
pub fn fit(customers: &[Rfm]) -> Result<BgNbdFit, EngineError> {
    fit_weighted(&group_identical(customers))
}

/// Like [`fit`], for rows already grouped as `(statistics, number of customers with them)`.
/// Rows with count 0 are ignored; `customers` of the result is the sum of the counts.
pub fn fit_weighted(groups: &[(Rfm, u64)]) -> Result<BgNbdFit, EngineError> {
    let fail = |m: String| Err(EngineError::FitFailed(m));
    let mut total_count: u64 = 0;
    let mut repeaters: u64 = 0;
    let mut rows: Vec<(Rfm, u64)> = Vec::with_capacity(groups.len());
    for (i, &(c, n)) in groups.iter().enumerate() {
        if n == 0 {
            continue;
        }
        if !(c.x.is_finite() && c.t_x.is_finite() && c.t.is_finite()) {
            return fail(format!("customer row {i} has a non-finite statistic: {c:?}"));
        }
        if c.x < 0.0 || c.x != c.x.floor() {
            return fail(format!(
                "customer row {i} has x = {} (must be a whole number >= 0)",
                c.x
            ));
        }
        if c.t_x < 0.0 || c.t_x > c.t {
            return fail(format!("customer row {i} needs 0 <= t_x <= T: {c:?}"));
        }
        total_count += n;
        if c.x > 0.0 {
            repeaters += n;
        }
        rows.push((c, n));
    }
    if total_count == 0 {
        return fail("no customers to fit".to_string());
    }
    if repeaters == 0 {
        return fail("no customer made a repeat purchase; the BG/NBD likelihood has no maximum".to_string());
    }

    rows.sort_by(|l, r| l.0.x.total_cmp(&r.0.x));
    let mut xgroups: Vec<XGroup> = Vec::new();
    for (c, n) in rows {
        let w = n as f64;
        match xgroups.last_mut() {
            Some(g) if g.x == c.x => {
                g.weight += w;
                g.members.push((c.t_x, c.t, w));
            }
            _ => xgroups.push(XGroup {
                x: c.x,
                weight: w,
                members: vec![(c.t_x, c.t, w)],
            }),
        }
    }
    let problem = NegMeanLl {
        groups: &xgroups,
        total_weight: total_count as f64,
    };
    let cost = |p: &[f64]| -problem.total_ll(&params_from_log(p)) / problem.total_weight;
    // Start at all parameters 1 (log 0).
    let Minimum {
        log_params: best,
        iterations,
        ..
    } = minimize_log_params(&cost, &[0.0; 4])?;
    let params = params_from_log(&best);
    Ok(BgNbdFit {
        params,
        log_likelihood: problem.total_ll(&params),
        iterations,
        customers: usize::try_from(total_count).unwrap_or(usize::MAX),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CDNOW: BgNbdParams = BgNbdParams {
        r: 0.243,
        alpha: 4.414,
        a: 0.793,
        b: 2.426,
    };

    fn close(got: f64, want: f64, tol: f64) {
        assert!((got - want).abs() <= tol, "got {got}, want {want} (tolerance {tol})");
    }

    fn rel_close(got: f64, want: f64, rel: f64) {
        assert!(
            (got - want).abs() <= rel * want.abs(),
            "got {got}, want {want} (relative tolerance {rel})"
        );
    }

    fn rfm(x: f64, t_x: f64, t: f64) -> Rfm {
        Rfm { x, t_x, t }
    }

    // ---- hyp2f1 ----

    #[test]
    fn hyp2f1_log_closed_form() {
        // 2F1(1, 1; 2; z) = -ln(1-z)/z; c - a - b = 0 is the integer case near z = 1.
        for z in [
            0.01_f64, 0.3, 0.5, 0.8, 0.9, 0.95, 0.99, 0.999, 0.99999, -0.5, -3.0, -1000.0,
        ] {
            let want = -(1.0 - z).ln() / z;
            rel_close(hyp2f1(1.0, 1.0, 2.0, z), want, 1e-10);
        }
    }

    #[test]
    fn hyp2f1_power_closed_form() {
        // 2F1(a, b; b; z) = (1-z)^-a, through the shortcut and through the general paths.
        for &(a, b) in &[(0.243, 2.426), (2.5, 0.7), (1.3, 5.0)] {
            for z in [0.2_f64, 0.7, 0.95, 0.99, -2.0] {
                let want = (1.0 - z).powf(-a);
                rel_close(hyp2f1(a, b, b, z), want, 1e-12);
                if z > Z_SERIES_MAX {
                    rel_close(hyp2f1_connection(a, b, b, z), want, 1e-10);
                } else if z >= 0.0 {
                    rel_close(hyp2f1_series(a, b, b, z, SERIES_MAX_TERMS).unwrap(), want, 1e-12);
                }
            }
        }
    }

    #[test]
    fn hyp2f1_arcsin_and_arctan() {
        // 2F1(1/2, 1/2; 3/2; s^2) = asin(s)/s: c - a - b = 1/2, the connection formula near 1.
        for z in [0.1_f64, 0.5, 0.9, 0.95, 0.99, 0.9999] {
            let s = f64::sqrt(z);
            rel_close(hyp2f1(0.5, 0.5, 1.5, z), s.asin() / s, 1e-12);
        }
        // 2F1(1/2, 1; 3/2; -s^2) = atan(s)/s: Pfaff's transformation.
        for s in [0.5_f64, 1.0, 3.0, 30.0] {
            rel_close(hyp2f1(0.5, 1.0, 1.5, -s * s), s.atan() / s, 1e-12);
        }
    }

    #[test]
    fn hyp2f1_near_integer_extrapolation() {
        // 2F1(1, 1; 2; z) at z so close to 1 that the series fallback gives up: Richardson in c.
        for e in [1e-7, 1e-9, 1e-12] {
            let z = 1.0 - e;
            rel_close(hyp2f1(1.0, 1.0, 2.0, z), -(1.0 - z).ln() / z, 1e-10);
        }
        // Nearly integer c - a - b (5e-5 off) takes the same path; 2F1(a, b; a + b + 5e-5; z) via
        // the Euler transform of 2F1(a, b; b; z) is not closed-form, so compare against the series
        // at a z where it converges.
        let (a, b, c, z) = (0.3, 1.7, 2.00005, 0.9999);
        let series = hyp2f1_series(a, b, c, z, 10_000_000).unwrap();
        rel_close(hyp2f1_near_one(a, b, c, z), series, 1e-10);
    }

    #[test]
    fn hyp2f1_special_values() {
        assert_eq!(hyp2f1(1.0, 2.0, 3.0, 0.0), 1.0);
        // Polynomial: 2F1(-2, b; c; z) = 1 - 2bz/c + b(b+1)z^2/(c(c+1)).
        let (b, c, z) = (1.5, 2.5, 0.97);
        rel_close(
            hyp2f1(-2.0, b, c, z),
            1.0 - 2.0 * b * z / c + b * (b + 1.0) * z * z / (c * (c + 1.0)),
            1e-14,
        );
        // Gauss's theorem at z = 1: 2F1(a, b; c; 1) = Γ(c)Γ(c-a-b)/(Γ(c-a)Γ(c-b)); here = 2.
        rel_close(hyp2f1(1.0, 1.0, 3.0, 1.0), 2.0, 1e-12);
        assert!(hyp2f1(1.0, 1.0, 2.0, 1.5).is_nan());
        assert!(hyp2f1(1.0, 1.0, -2.0, 0.5).is_nan());
    }

    #[test]
    fn gamma_signed_negative_arguments() {
        // Γ(-0.5) = -2√π, Γ(-1.5) = 4√π/3.
        let sqrt_pi = std::f64::consts::PI.sqrt();
        let (l, s) = ln_gamma_signed(-0.5);
        rel_close(s * l.exp(), -2.0 * sqrt_pi, 1e-12);
        let (l, s) = ln_gamma_signed(-1.5);
        rel_close(s * l.exp(), 4.0 * sqrt_pi / 3.0, 1e-12);
        assert_eq!(ln_gamma_signed(-2.0).1, 0.0);
    }

    // ---- likelihood ----

    #[test]
    fn log_likelihood_matches_eq6_directly() {
        // Paper eq. 6 with beta and gamma functions written out (small x, no overflow).
        use statrs::function::beta::beta;
        use statrs::function::gamma::gamma;
        let p = CDNOW;
        for c in [rfm(0.0, 0.0, 38.86), rfm(2.0, 30.43, 38.86), rfm(5.0, 20.0, 30.0)] {
            let BgNbdParams { r, alpha, a, b } = p;
            let x = c.x;
            let common = gamma(r + x) * alpha.powf(r) / gamma(r);
            let mut l = beta(a, b + x) / beta(a, b) * common / (alpha + c.t).powf(r + x);
            if x > 0.0 {
                l += beta(a + 1.0, b + x - 1.0) / beta(a, b) * common / (alpha + c.t_x).powf(r + x);
            }
            rel_close(p.log_likelihood(&c), l.ln(), 1e-12);
        }
    }

    #[test]
    fn log_likelihood_large_x_is_finite() {
        // A log density of purchase times, so it may be positive for very frequent buyers.
        let ll = CDNOW.log_likelihood(&rfm(500.0, 38.0, 39.0));
        assert!(ll.is_finite(), "{ll}");
        assert!(CDNOW.log_likelihood(&rfm(5000.0, 38.0, 39.0)).is_finite());
    }

    #[test]
    fn total_and_grouped_likelihood_agree() {
        let cs = [
            rfm(0.0, 0.0, 30.0),
            rfm(2.0, 10.0, 30.0),
            rfm(0.0, 0.0, 30.0),
            rfm(1.0, 5.0, 20.0),
        ];
        let grouped = group_identical(&cs);
        assert_eq!(grouped.len(), 3);
        assert_eq!(grouped[0], (rfm(0.0, 0.0, 30.0), 2));
        let by_rows = CDNOW.total_log_likelihood(&cs);
        let by_groups: f64 = grouped.iter().map(|(c, n)| *n as f64 * CDNOW.log_likelihood(c)).sum();
        rel_close(by_rows, by_groups, 1e-14);
    }

    // ---- p_alive ----

    #[test]
    fn p_alive_no_repeat_is_one() {
        assert_eq!(CDNOW.p_alive(&rfm(0.0, 0.0, 38.86)), 1.0);
        assert_eq!(CDNOW.p_alive(&rfm(0.0, 0.0, 1000.0)), 1.0);
    }

    #[test]
    fn p_alive_hand_computed() {
        // 1 / (1 + a/(b+x-1) * ((alpha+T)/(alpha+t_x))^(r+x)), step by step.
        let (r, alpha, a, b) = (0.243, 4.414, 0.793, 2.426);

        // x = 2, t_x = 30.43, T = 38.86.
        let (x, t_x, t) = (2.0_f64, 30.43_f64, 38.86_f64);
        let odds_factor = a / (b + x - 1.0); // 0.793 / 3.426
        let ratio = (alpha + t) / (alpha + t_x); // 43.274 / 34.844
        let power = ratio.powf(r + x); // ^2.243
        let want = 1.0 / (1.0 + odds_factor * power);
        rel_close(CDNOW.p_alive(&rfm(x, t_x, t)), want, 1e-13);
        close(want, 0.72658, 1e-5); // 0.231465 * 1.241935^2.243 = 0.231465 * 1.625789 = 0.376314 -> 1/1.376314

        // x = 1, t_x = 1.71, T = 38.86: a long-quiet single repeater.
        let (x, t_x, t) = (1.0_f64, 1.71_f64, 38.86_f64);
        let odds_factor = a / (b + x - 1.0); // 0.793 / 2.426
        let ratio = (alpha + t) / (alpha + t_x); // 43.274 / 6.124
        let power = ratio.powf(r + x); // ^1.243
        let want = 1.0 / (1.0 + odds_factor * power);
        rel_close(CDNOW.p_alive(&rfm(x, t_x, t)), want, 1e-13);
        close(want, 0.21210, 1e-5); // 0.326876 * 7.066297^1.243 = 0.326876 * 11.364373 = 3.714735 -> 1/4.714735

        // Bought just now (t_x = T): only the dropout right after the last purchase counts.
        let want = 1.0 / (1.0 + a / (b + 3.0 - 1.0));
        rel_close(CDNOW.p_alive(&rfm(3.0, 20.0, 20.0)), want, 1e-13);
    }

    #[test]
    fn p_alive_decreases_with_age() {
        let mut prev = 1.0;
        for k in 0..60 {
            let t = 10.0 + k as f64;
            let p = CDNOW.p_alive(&rfm(3.0, 10.0, t));
            assert!(
                p < prev || (k == 0 && p <= prev),
                "not decreasing at T = {t}: {p} vs {prev}"
            );
            assert!(p > 0.0);
            prev = p;
        }
    }

    // ---- expectations ----

    #[test]
    fn expected_conditional_matches_untransformed_eq10() {
        // Eq. 10 as printed, with 2F1(r+x, b+x; a+b+x-1; z), against the Euler-transformed form.
        let BgNbdParams { r, alpha, a, b } = CDNOW;
        for c in [
            rfm(0.0, 0.0, 38.86),
            rfm(2.0, 30.43, 38.86),
            rfm(7.0, 35.0, 39.0),
            rfm(1.0, 1.0, 2.0),
        ] {
            for t in [1.0, 39.0, 52.0, 500.0] {
                let x = c.x;
                let z = t / (alpha + c.t + t);
                let hyp = hyp2f1(r + x, b + x, a + b + x - 1.0, z);
                let bracket = 1.0 - ((alpha + c.t) / (alpha + c.t + t)).powf(r + x) * hyp;
                let denom = if x > 0.0 {
                    1.0 + a / (b + x - 1.0) * ((alpha + c.t) / (alpha + c.t_x)).powf(r + x)
                } else {
                    1.0
                };
                let want = (a + b + x - 1.0) / (a - 1.0) * bracket / denom;
                rel_close(CDNOW.expected_conditional(t, &c), want, 1e-9);
            }
        }
    }

    #[test]
    fn expected_conditional_published_value() {
        close(CDNOW.expected_conditional(39.0, &rfm(2.0, 30.43, 38.86)), 1.226, 1e-3);
    }

    #[test]
    fn expected_unconditional_published_values() {
        // The published values come from the full-precision MLE (these digits are our fit's); the
        // 3-decimal CDNOW parameters are 0.0015 off at t = 32 and 0.003 at t = 78 because
        // 1/(a-1) amplifies the rounding of a.
        let mle = BgNbdParams {
            r: 0.242593,
            alpha: 4.413524,
            a: 0.792894,
            b: 2.425789,
        };
        for (t, want) in [
            (0.1429, 0.0078),
            (1.0, 0.0532),
            (3.0, 0.1506),
            (31.8571, 1.0405),
            (32.0, 1.0437),
            (78.0, 1.8576),
        ] {
            close(mle.expected_unconditional(t), want, 5e-4);
            close(CDNOW.expected_unconditional(t), want, 5e-3);
        }
        // Reference values of the rounded parameters (mpmath, eq. 9 as printed).
        close(CDNOW.expected_unconditional(32.0), 1.045243328374, 1e-10);
        close(CDNOW.expected_unconditional(78.0), 1.860519057943, 1e-10);
    }

    #[test]
    fn expectations_far_horizon_match_mpmath() {
        // z close to 1 (connection formula path); references from mpmath at 30 digits.
        rel_close(CDNOW.expected_unconditional(1000.0), 6.580391613738319, 1e-10);
        rel_close(CDNOW.expected_unconditional(100_000.0), 29.60786165454848, 1e-10);
        rel_close(
            CDNOW.expected_conditional(5000.0, &rfm(2.0, 30.43, 38.86)),
            19.44162983462291,
            1e-10,
        );
    }

    #[test]
    fn expectations_are_continuous_at_a_equals_one() {
        let at = |a: f64| BgNbdParams { a, ..CDNOW };
        let c = rfm(2.0, 30.43, 38.86);
        let mid = at(1.0).expected_conditional(39.0, &c);
        assert!(mid.is_finite());
        rel_close(mid, at(1.0 + 3e-3).expected_conditional(39.0, &c), 1e-2);
        rel_close(mid, at(1.0 - 3e-3).expected_conditional(39.0, &c), 1e-2);
        let mid = at(1.0).expected_unconditional(39.0);
        rel_close(mid, at(1.0 + 3e-3).expected_unconditional(39.0), 1e-2);
    }

    #[test]
    fn expected_conditional_frequent_buyer_is_finite() {
        let e = CDNOW.expected_conditional(39.0, &rfm(400.0, 38.5, 39.0));
        assert!(e.is_finite() && e > 100.0, "{e}");
    }

    // ---- rfm_from_occasions ----

    #[test]
    fn rfm_from_occasions_basic() {
        assert_eq!(rfm_from_occasions(&[2.0, 5.0, 9.5], 12.0), rfm(2.0, 7.5, 10.0));
        assert_eq!(rfm_from_occasions(&[4.0], 10.0), rfm(0.0, 0.0, 6.0));
        assert_eq!(rfm_from_occasions(&[], 10.0), rfm(0.0, 0.0, 0.0));
    }

    // ---- fit ----

    #[test]
    fn fit_rejects_bad_input() {
        let failed = |r: Result<BgNbdFit, EngineError>| matches!(r, Err(EngineError::FitFailed(_)));
        assert!(failed(fit(&[])));
        assert!(failed(fit(&[rfm(f64::NAN, 0.0, 1.0), rfm(1.0, 0.5, 1.0)])));
        assert!(failed(fit(&[rfm(1.0, 0.5, f64::INFINITY)])));
        assert!(failed(fit(&[rfm(1.5, 0.5, 1.0)])));
        assert!(failed(fit(&[rfm(1.0, 2.0, 1.0)])));
        assert!(failed(fit(&[rfm(0.0, 0.0, 10.0), rfm(0.0, 0.0, 20.0)])));
        assert!(failed(fit_weighted(&[(rfm(1.0, 0.5, 1.0), 0)])));
    }

    #[test]
    fn fit_weighted_equals_fit_on_expanded_rows() {
        let grouped = [
            (rfm(0.0, 0.0, 30.0), 40),
            (rfm(0.0, 0.0, 35.0), 30),
            (rfm(1.0, 10.0, 30.0), 12),
            (rfm(2.0, 25.0, 35.0), 8),
            (rfm(4.0, 28.0, 30.0), 5),
            (rfm(1.0, 3.0, 33.0), 9),
        ];
        let expanded: Vec<Rfm> = grouped
            .iter()
            .flat_map(|&(c, n)| std::iter::repeat_n(c, n as usize))
            .collect();
        let w = fit_weighted(&grouped).unwrap();
        let e = fit(&expanded).unwrap();
        assert_eq!(w.customers, 104);
        assert_eq!(e.customers, 104);
        close(w.log_likelihood, e.log_likelihood, 1e-8);
        close(w.log_likelihood, w.params.total_log_likelihood(&expanded), 1e-8);
    }
}
