//! `health_band(score)`: the band of a 0-100 health score with the scoring core's default
//! thresholds ([`vigil_engine::scoring::Bands`]): `healthy` at 70 or more, `watch` at 40 or more,
//! `at_risk` below; NULL for NULL.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringArray};
use datafusion::arrow::datatypes::{DataType, Float64Type};
use datafusion::error::Result;
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility};
use datafusion::scalar::ScalarValue;
use vigil_engine::scoring::{Band, Bands};

/// The band of a score, as the scoring core names it.
pub fn band(score: f64) -> &'static str {
    let b = Bands::default();
    if score >= b.healthy {
        Band::Healthy.as_str()
    } else if score >= b.watch {
        Band::Watch.as_str()
    } else {
        Band::AtRisk.as_str()
    }
}

/// The `health_band` UDF.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct HealthBand {
    signature: Signature,
}

impl HealthBand {
    pub fn new() -> Self {
        HealthBand {
            signature: Signature::uniform(1, vec![DataType::Float64], Volatility::Immutable),
        }
    }
}

impl Default for HealthBand {
    fn default() -> Self {
        Self::new()
    }
}

impl ScalarUDFImpl for HealthBand {
    fn name(&self) -> &str {
        "health_band"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        match &args.args[0] {
            ColumnarValue::Scalar(s) => {
                let v = match s.cast_to(&DataType::Float64)? {
                    ScalarValue::Float64(Some(x)) if !x.is_nan() => Some(band(x).to_string()),
                    _ => None,
                };
                Ok(ColumnarValue::Scalar(ScalarValue::Utf8(v)))
            }
            ColumnarValue::Array(a) => {
                let scores = a.as_primitive::<Float64Type>();
                let out: StringArray = (0..scores.len())
                    .map(|i| (!scores.is_null(i) && !scores.value(i).is_nan()).then(|| band(scores.value(i))))
                    .collect();
                Ok(ColumnarValue::Array(Arc::new(out) as ArrayRef))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::band;

    #[test]
    fn thresholds() {
        assert_eq!(band(100.0), "healthy");
        assert_eq!(band(70.0), "healthy");
        assert_eq!(band(69.99), "watch");
        assert_eq!(band(40.0), "watch");
        assert_eq!(band(39.9), "at_risk");
        assert_eq!(band(0.0), "at_risk");
    }
}
