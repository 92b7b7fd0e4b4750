//! `bgnbd_expected(t, x, t_x, T, r, alpha, a, b)`: BG/NBD expected number of purchases in the next
//! `t` time units of a customer with `x` repeat purchases, the last at `t_x`, observed for `T`.
//!
//! NULL when an argument is NULL, `t` is negative, or the history or parameters are invalid (see
//! [`super::p_alive`]). Computed by [`vigil_engine::models::bgnbd::BgNbdParams::expected_conditional`].

use datafusion::arrow::datatypes::DataType;
use datafusion::error::Result;
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility};

/// The `bgnbd_expected` UDF.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct BgNbdExpected {
    signature: Signature,
}

impl BgNbdExpected {
    pub fn new() -> Self {
        BgNbdExpected {
            signature: Signature::uniform(8, vec![DataType::Float64], Volatility::Immutable),
        }
    }
}

impl Default for BgNbdExpected {
    fn default() -> Self {
        Self::new()
    }
}

impl ScalarUDFImpl for BgNbdExpected {
    fn name(&self) -> &str {
        "bgnbd_expected"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        super::map_f64(&args.args, args.number_rows, |v| {
            if v[0] < 0.0 {
                return None;
            }
            let (params, rfm) = super::p_alive::model(v[1], v[2], v[3], &v[4..8])?;
            Some(params.expected_conditional(v[0], &rfm))
        })
    }
}
