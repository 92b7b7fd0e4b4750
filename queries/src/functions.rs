//! Named queries inside SQL: each is a view with its defaults and a table function taking
//! parameters.
//!
//! `SELECT * FROM churn_risk` runs the query with its defaults; `SELECT * FROM
//! churn_risk(10, 'key')` passes parameters by position (in the order of the `@param` lines),
//! and `SELECT * FROM retention_nday('granularity=month', 'periods=6')` by name. Arguments must
//! be literals; each is validated by the parameter's type exactly as on the command line.

use std::sync::Arc;

use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::datasource::ViewTable;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::SessionState;
use datafusion::logical_expr::Expr;
use datafusion::scalar::ScalarValue;

use crate::named::NamedQuery;

/// The table function of one named query.
#[derive(Debug)]
pub struct NamedQueryFunction {
    query: &'static NamedQuery,
}

impl NamedQueryFunction {
    pub fn new(query: &'static NamedQuery) -> Self {
        NamedQueryFunction { query }
    }
}

fn literal_text(v: &ScalarValue) -> Option<String> {
    match v {
        ScalarValue::Utf8(Some(s)) | ScalarValue::LargeUtf8(Some(s)) | ScalarValue::Utf8View(Some(s)) => {
            Some(s.clone())
        }
        ScalarValue::Int8(Some(_))
        | ScalarValue::Int16(Some(_))
        | ScalarValue::Int32(Some(_))
        | ScalarValue::Int64(Some(_))
        | ScalarValue::UInt8(Some(_))
        | ScalarValue::UInt16(Some(_))
        | ScalarValue::UInt32(Some(_))
        | ScalarValue::UInt64(Some(_))
        | ScalarValue::Float32(Some(_))
        | ScalarValue::Float64(Some(_))
        | ScalarValue::Decimal128(Some(_), _, _)
        | ScalarValue::Date32(Some(_)) => Some(v.to_string()),
        _ => None,
    }
}

/// Turns the call's arguments into `(name, value)` pairs.
pub fn call_params(query: &NamedQuery, exprs: &[Expr]) -> Result<Vec<(String, String)>> {
    let mut out = Vec::with_capacity(exprs.len());
    for (i, e) in exprs.iter().enumerate() {
        let text = match e {
            Expr::Literal(v, _) => literal_text(v),
            _ => None,
        }
        .ok_or_else(|| {
            DataFusionError::Plan(format!(
                "{}: argument {} must be a literal number, date or string, got {e}",
                query.name,
                i + 1
            ))
        })?;
        let named = text
            .split_once('=')
            .filter(|(k, _)| query.param(k.trim()).is_some())
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()));
        match named {
            Some(pair) => out.push(pair),
            None => {
                let p = query.params.get(i).ok_or_else(|| {
                    DataFusionError::Plan(format!(
                        "{} takes at most {} arguments ({})",
                        query.name,
                        query.params.len(),
                        query
                            .params
                            .iter()
                            .map(|p| p.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                })?;
                out.push((p.name.clone(), text));
            }
        }
    }
    Ok(out)
}

/// Plans a named query's SQL in `state` and wraps the plan as a view.
pub fn plan_named(state: &SessionState, query: &NamedQuery, params: &[(String, String)]) -> Result<Arc<ViewTable>> {
    let sql = query.render(params).map_err(|e| DataFusionError::Plan(e.to_string()))?;
    // Planning only resolves tables of in-memory catalogs, so blocking here does not wait on I/O.
    let plan = futures::executor::block_on(state.create_logical_plan(&sql))?;
    Ok(Arc::new(ViewTable::new(plan, Some(sql))))
}

impl TableFunctionImpl for NamedQueryFunction {
    fn call_with_args(&self, args: TableFunctionArgs<'_, '_>) -> Result<Arc<dyn TableProvider>> {
        let params = call_params(self.query, args.exprs())?;
        let state = args
            .session()
            .as_any()
            .downcast_ref::<SessionState>()
            .ok_or_else(|| DataFusionError::Internal("named queries need a SessionState".into()))?;
        Ok(plan_named(state, self.query, &params)?)
    }
}
