//! `gg_expected_spend(x, m, p, q, gamma)`: the Gamma-Gamma expected value of a customer's next
//! purchases, given `x` repeat purchases of mean value `m`, under parameters `p, q, gamma` (the
//! population's mean `p gamma / (q - 1)` when `x = 0`).
//!
//! NULL when an argument is NULL, `x` or `m` is negative, a parameter is not positive, or
//! `q <= 1` for a customer without a repeat purchase (the population mean is then infinite).
//! Computed by [`vigil_engine::models::gamma_gamma::GammaGammaParams::expected_spend`].

use datafusion::arrow::datatypes::DataType;
use datafusion::error::Result;
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility};
use vigil_engine::models::gamma_gamma::GammaGammaParams;

/// The `gg_expected_spend` UDF.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct GgExpectedSpend {
    signature: Signature,
}

impl GgExpectedSpend {
    pub fn new() -> Self {
        GgExpectedSpend {
            signature: Signature::uniform(5, vec![DataType::Float64], Volatility::Immutable),
        }
    }
}

impl Default for GgExpectedSpend {
    fn default() -> Self {
        Self::new()
    }
}

impl ScalarUDFImpl for GgExpectedSpend {
    fn name(&self) -> &str {
        "gg_expected_spend"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        super::map_f64(&args.args, args.number_rows, |v| {
            let (x, m, p, q, gamma) = (v[0], v[1], v[2], v[3], v[4]);
            if x < 0.0 || m < 0.0 || !(p > 0.0 && q > 0.0 && gamma > 0.0) {
                return None;
            }
            Some(GammaGammaParams { p, q, gamma }.expected_spend(x, m))
        })
    }
}
