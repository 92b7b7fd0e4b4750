//! Scalar UDFs of vigil's SQL, one `ScalarUDFImpl` per file.
//!
//! - [`p_alive::PAlive`]: `p_alive(x, t_x, T, r, alpha, a, b)`, BG/NBD probability of being alive.
//! - [`bgnbd_expected::BgNbdExpected`]: `bgnbd_expected(t, x, t_x, T, r, alpha, a, b)`, BG/NBD
//!   expected purchases in the next `t` time units.
//! - [`gg_expected_spend::GgExpectedSpend`]: `gg_expected_spend(x, m, p, q, gamma)`,
//!   Gamma-Gamma expected value per future purchase.
//! - [`sbg_residual_lifetime::SbgResidualLifetime`]: `sbg_residual_lifetime(renewals, alpha,
//!   beta, discount)`, sBG discounted expected residual lifetime in periods.
//! - [`health_band::HealthBand`]: `health_band(score)`, the band of a health score.

pub mod bgnbd_expected;
pub mod gg_expected_spend;
pub mod health_band;
pub mod p_alive;
pub mod sbg_residual_lifetime;

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Float64Array};
use arrow::datatypes::Float64Type;
use datafusion::error::Result;
use datafusion::logical_expr::{ColumnarValue, ScalarUDF};
use datafusion::prelude::SessionContext;

/// Every vigil UDF.
pub fn all() -> Vec<ScalarUDF> {
    vec![
        ScalarUDF::new_from_impl(p_alive::PAlive::new()),
        ScalarUDF::new_from_impl(bgnbd_expected::BgNbdExpected::new()),
        ScalarUDF::new_from_impl(gg_expected_spend::GgExpectedSpend::new()),
        ScalarUDF::new_from_impl(sbg_residual_lifetime::SbgResidualLifetime::new()),
        ScalarUDF::new_from_impl(health_band::HealthBand::new()),
    ]
}

/// Registers every vigil UDF in `ctx`.
pub fn register_all(ctx: &SessionContext) {
    for f in all() {
        ctx.register_udf(f);
    }
}

/// Applies `f` row by row to Float64 arguments (already coerced by the signature). A row with a
/// NULL argument, or for which `f` returns `None`, is NULL.
pub(crate) fn map_f64(args: &[ColumnarValue], rows: usize, f: impl Fn(&[f64]) -> Option<f64>) -> Result<ColumnarValue> {
    let all_scalar = args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_)));
    let n = if all_scalar { 1 } else { rows };
    let arrays: Vec<ArrayRef> = args.iter().map(|a| a.to_array(n)).collect::<Result<_>>()?;
    let cols: Vec<&Float64Array> = arrays.iter().map(|a| a.as_primitive::<Float64Type>()).collect();
    let mut row = vec![0.0; cols.len()];
    let out: Float64Array = (0..n)
        .map(|i| {
            for (slot, c) in row.iter_mut().zip(&cols) {
                if c.is_null(i) {
                    return None;
                }
                *slot = c.value(i);
            }
            f(&row).filter(|v| v.is_finite())
        })
        .collect();
    let out: ArrayRef = Arc::new(out);
    if all_scalar {
        Ok(ColumnarValue::Scalar(datafusion::scalar::ScalarValue::try_from_array(
            &out, 0,
        )?))
    } else {
        Ok(ColumnarValue::Array(out))
    }
}
