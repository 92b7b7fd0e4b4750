//! Catalog functions psql's `\df` calls that datafusion-pg-catalog does not provide:
//! `pg_function_is_visible(oid)` (true: every function lives in a schema on the search path),
//! `pg_get_function_result(oid)` and `pg_get_function_arguments(oid)` (NULL: the catalog has no
//! signature text). One `ScalarUDFImpl`, a constant per name.

use datafusion::arrow::datatypes::DataType;
use datafusion::error::Result;
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility};
use datafusion::scalar::ScalarValue;

/// A catalog function of one argument that answers the same value for every row.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ConstantCatalogFunction {
    name: &'static str,
    value: ScalarValue,
    signature: Signature,
}

impl ConstantCatalogFunction {
    fn new(name: &'static str, value: ScalarValue) -> Self {
        ConstantCatalogFunction {
            name,
            value,
            signature: Signature::any(1, Volatility::Stable),
        }
    }
}

impl ScalarUDFImpl for ConstantCatalogFunction {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(self.value.data_type())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        Ok(match &args.args[0] {
            ColumnarValue::Scalar(_) => ColumnarValue::Scalar(self.value.clone()),
            ColumnarValue::Array(_) => ColumnarValue::Array(self.value.to_array_of_size(args.number_rows)?),
        })
    }
}

/// The functions, to register next to datafusion-pg-catalog's.
pub fn all() -> Vec<ScalarUDF> {
    vec![
        ScalarUDF::new_from_impl(ConstantCatalogFunction::new(
            "pg_function_is_visible",
            ScalarValue::Boolean(Some(true)),
        )),
        ScalarUDF::new_from_impl(ConstantCatalogFunction::new(
            "pg_get_function_result",
            ScalarValue::Utf8(None),
        )),
        ScalarUDF::new_from_impl(ConstantCatalogFunction::new(
            "pg_get_function_arguments",
            ScalarValue::Utf8(None),
        )),
    ]
}
