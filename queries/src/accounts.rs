//! The `accounts` dimension: account_id, name, tier, arr, owner, segment.
//!
//! Loaded from a CSV file (with a header row), a Parquet file with these columns, or an in-memory
//! list of [`Account`]s.

use std::path::Path;
use std::sync::{Arc, LazyLock};

use arrow::array::{ArrayRef, Float64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::datasource::MemTable;
use datafusion::prelude::{CsvReadOptions, ParquetReadOptions, SessionContext};

use crate::error::{QueryError, Result};

/// One account of the dimension. `tier` is `key` or `standard`.
#[derive(Debug, Clone, PartialEq)]
pub struct Account {
    pub account_id: String,
    pub name: Option<String>,
    pub tier: String,
    pub arr: Option<f64>,
    pub owner: Option<String>,
    pub segment: Option<String>,
}

impl Account {
    /// A `standard` account with only an id.
    pub fn new(account_id: impl Into<String>) -> Self {
        Account {
            account_id: account_id.into(),
            name: None,
            tier: "standard".into(),
            arr: None,
            owner: None,
            segment: None,
        }
    }
}

static ACCOUNTS_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("account_id", DataType::Utf8, false),
        Field::new("name", DataType::Utf8, true),
        Field::new("tier", DataType::Utf8, false),
        Field::new("arr", DataType::Float64, true),
        Field::new("owner", DataType::Utf8, true),
        Field::new("segment", DataType::Utf8, true),
    ]))
});

/// The schema of the `accounts` table.
pub fn accounts_schema() -> SchemaRef {
    ACCOUNTS_SCHEMA.clone()
}

/// The accounts as one batch of [`accounts_schema`].
pub fn accounts_batch(accounts: &[Account]) -> Result<RecordBatch> {
    let s = |f: fn(&Account) -> Option<&str>| -> ArrayRef { Arc::new(accounts.iter().map(f).collect::<StringArray>()) };
    let columns: Vec<ArrayRef> = vec![
        s(|a| Some(a.account_id.as_str())),
        s(|a| a.name.as_deref()),
        s(|a| Some(a.tier.as_str())),
        Arc::new(accounts.iter().map(|a| a.arr).collect::<Float64Array>()),
        s(|a| a.owner.as_deref()),
        s(|a| a.segment.as_deref()),
    ];
    Ok(RecordBatch::try_new(accounts_schema(), columns)?)
}

/// A table of the given accounts.
pub fn accounts_table(accounts: &[Account]) -> Result<Arc<MemTable>> {
    Ok(Arc::new(MemTable::try_new(
        accounts_schema(),
        vec![vec![accounts_batch(accounts)?]],
    )?))
}

/// Reads an accounts file (`.csv` with a header, or `.parquet`) into a table. Missing optional
/// columns are NULL, a missing `tier` is `standard`; extra columns are ignored.
pub async fn load_accounts_file(path: &Path) -> Result<Arc<MemTable>> {
    let ctx = SessionContext::new();
    let p = path.to_string_lossy().to_string();
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default()
        .to_ascii_lowercase();
    match ext.as_str() {
        "csv" => {
            // Every column is read as text (ids like "00042" keep their zeros), then cast.
            let text = std::fs::read_to_string(path).map_err(|e| QueryError::io(path, e))?;
            let header = text.lines().next().unwrap_or_default();
            let fields: Vec<Field> = header
                .split(',')
                .map(|c| Field::new(c.trim().trim_matches('"'), DataType::Utf8, true))
                .collect();
            let schema = Schema::new(fields);
            ctx.register_csv("raw", &p, CsvReadOptions::new().has_header(true).schema(&schema))
                .await?
        }
        "parquet" => ctx.register_parquet("raw", &p, ParquetReadOptions::default()).await?,
        _ => return Err(QueryError::Accounts(format!("{p}: expected a .csv or .parquet file"))),
    }
    let raw = ctx.table("raw").await?;
    let present: Vec<String> = raw.schema().fields().iter().map(|f| f.name().clone()).collect();
    if !present.iter().any(|c| c == "account_id") {
        return Err(QueryError::Accounts(format!("{p}: no account_id column")));
    }
    let pick = |c: &str, ty: &str, default: &str| {
        if present.iter().any(|x| x == c) {
            format!("CAST(NULLIF(TRIM(CAST(\"{c}\" AS VARCHAR)), '') AS {ty}) AS {c}")
        } else {
            format!("CAST({default} AS {ty}) AS {c}")
        }
    };
    let sql = format!(
        "SELECT CAST(account_id AS VARCHAR) AS account_id, {}, COALESCE({}, 'standard') AS tier, {}, {}, {} FROM raw",
        pick("name", "VARCHAR", "NULL"),
        if present.iter().any(|x| x == "tier") {
            "NULLIF(TRIM(CAST(tier AS VARCHAR)), '')"
        } else {
            "NULL"
        },
        pick("arr", "DOUBLE", "NULL"),
        pick("owner", "VARCHAR", "NULL"),
        pick("segment", "VARCHAR", "NULL"),
    );
    let batches = ctx.sql(&sql).await?.collect().await?;
    let schema = accounts_schema();
    let batches = batches
        .into_iter()
        .map(|b| crate::cast::cast_to_schema(&b, &schema))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| QueryError::Accounts(format!("{p}: {e}")))?;
    Ok(Arc::new(MemTable::try_new(accounts_schema(), vec![batches])?))
}
