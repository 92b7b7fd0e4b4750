//! `p_alive(x, t_x, T, r, alpha, a, b)`: the BG/NBD probability that a customer with `x` repeat
//! purchases, the last at `t_x`, observed for `T`, is still alive, under parameters `r, alpha, a, b`.
//!
//! NULL when an argument is NULL or the history is impossible (negative values, `t_x > T`,
//! `x > 0` with `t_x = 0` is allowed) or a parameter is not positive. Computed by
//! [`vigil_engine::models::bgnbd::BgNbdParams::p_alive`].

use datafusion::arrow::datatypes::DataType;
use datafusion::error::Result;
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility};
use vigil_engine::models::bgnbd::{BgNbdParams, Rfm};

/// The `p_alive` UDF.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct PAlive {
    signature: Signature,
}

impl PAlive {
    pub fn new() -> Self {
        PAlive {
            signature: Signature::uniform(7, vec![DataType::Float64], Volatility::Immutable),
        }
    }
}

impl Default for PAlive {
    fn default() -> Self {
        Self::new()
    }
}

/// Parameters and history from SQL arguments, `None` when they are not valid.
pub(crate) fn model(x: f64, t_x: f64, t: f64, p: &[f64]) -> Option<(BgNbdParams, Rfm)> {
    let (r, alpha, a, b) = (p[0], p[1], p[2], p[3]);
    if !(r > 0.0 && alpha > 0.0 && a > 0.0 && b > 0.0) || x < 0.0 || t_x < 0.0 || t < t_x {
        return None;
    }
    Some((BgNbdParams { r, alpha, a, b }, Rfm { x, t_x, t }))
}

impl ScalarUDFImpl for PAlive {
    fn name(&self) -> &str {
        "p_alive"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        super::map_f64(&args.args, args.number_rows, |v| {
            let (params, rfm) = model(v[0], v[1], v[2], &v[3..7])?;
            Some(params.p_alive(&rfm))
        })
    }
}
