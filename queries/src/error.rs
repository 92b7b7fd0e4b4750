//! The one error type of the crate.

use std::path::PathBuf;

use datafusion::error::DataFusionError;

/// Everything that can go wrong in vigil's analyst SQL.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// Planning or executing SQL failed.
    #[error("{0}")]
    DataFusion(#[from] DataFusionError),
    /// An Arrow operation failed (building, writing or formatting batches).
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    /// Reading or writing Parquet failed.
    #[error("parquet: {0}")]
    Parquet(#[from] datafusion::parquet::errors::ParquetError),
    /// A file or directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A batch does not have the schema of the table it is appended to.
    #[error("schema mismatch for table {table}: {detail}")]
    Schema { table: String, detail: String },
    /// No named query has this name.
    #[error("unknown named query {0:?} (known: {1})")]
    UnknownQuery(String, String),
    /// A named query's `.sql` file has a malformed header.
    #[error("named query {query}: {detail}")]
    BadQueryFile { query: String, detail: String },
    /// A parameter value was rejected.
    #[error("parameter {name} of {query}: {detail}")]
    BadParam {
        query: String,
        name: String,
        detail: String,
    },
    /// A statement was refused because the session is read-only.
    #[error("refused: {0}")]
    Refused(String),

    #[error("TLS for the SQL server ({path}): {detail}")]
    Tls { path: String, detail: String },
    /// An accounts file is malformed.
    #[error("accounts: {0}")]
    Accounts(String),
    /// A sort ran out of its memory limit (a single batch and the merge's reserve did not fit).
    #[error("the sort's memory limit of {limit} bytes is too small: {detail}")]
    SortMemory { limit: usize, detail: String },
    /// A model fit could not be made, stored or read.
    #[error("models: {0}")]
    Models(String),
    /// The input of a sort failed.
    #[error("reading the input")]
    Input(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl QueryError {
    /// An [`QueryError::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        QueryError::Io {
            path: path.into(),
            source,
        }
    }
}

/// The crate's result type.
pub type Result<T, E = QueryError> = std::result::Result<T, E>;
