//! `sbg_residual_lifetime(renewals, alpha, beta, discount)`: the sBG discounted expected residual
//! lifetime, in contract periods, of a customer who has renewed `renewals` times, with
//! `discount` per period (Fader & Hardie 2010). Times the value of a period, it is the
//! customer's expected residual value.
//!
//! NULL when an argument is NULL, `renewals` is negative or `alpha`, `beta` or `discount` is not
//! positive. Computed by
//! [`vigil_engine::models::sbg::SbgParams::discounted_residual_lifetime`].

use datafusion::arrow::datatypes::DataType;
use datafusion::error::Result;
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility};
use vigil_engine::models::sbg::SbgParams;

/// The `sbg_residual_lifetime` UDF.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct SbgResidualLifetime {
    signature: Signature,
}

impl SbgResidualLifetime {
    pub fn new() -> Self {
        SbgResidualLifetime {
            signature: Signature::uniform(4, vec![DataType::Float64], Volatility::Immutable),
        }
    }
}

impl Default for SbgResidualLifetime {
    fn default() -> Self {
        Self::new()
    }
}

impl ScalarUDFImpl for SbgResidualLifetime {
    fn name(&self) -> &str {
        "sbg_residual_lifetime"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        super::map_f64(&args.args, args.number_rows, |v| {
            let (n, alpha, beta, d) = (v[0], v[1], v[2], v[3]);
            if !(n >= 0.0 && n <= f64::from(u32::MAX) && alpha > 0.0 && beta > 0.0 && d > 0.0) {
                return None;
            }
            Some(SbgParams { alpha, beta }.discounted_residual_lifetime(n as u32, d))
        })
    }
}
