//! vigil's analyst SQL: DataFusion tables over live state and history, named customer-health
//! queries, a CLI and a Postgres wire server, all read-only.
//!
//! - [`segments`]: `events` and `alerts` history, Parquet segments plus an in-memory tail, with
//!   time-range pruning of segments.
//! - [`accounts`]: the accounts dimension. [`snapshot`]: the live `health` table.
//! - [`cast`]: batches read back cast to their table's types.
//! - [`named`]: named queries (`queries/sql/*.sql`) with typed parameters.
//! - [`functions`]: named queries as views and table functions inside SQL.
//! - [`udf`]: `p_alive`, `bgnbd_expected`, `health_band`.
//! - [`readonly`]: the guard refusing anything but queries.
//! - [`context`]: [`Analyst`], the session tying it together.
//! - [`models`]: customer summaries from the history, stored model fits, the `models` table.
//! - [`load`]: events from JSON Lines. [`output`]: table, CSV, JSON, Parquet output.
//! - [`postgres`]: the Postgres wire server on datafusion-postgres: pg_catalog, parameters,
//!   transactions and session settings, SCRAM-SHA-256 logins, behind the read-only guard.
//! - [`sort`]: event batches sorted by event time in bounded memory (spilling to disk).
//!
//! The `vigil sql`, `vigil query` and `vigil serve` commands live in the `vigil` binary.

pub mod accounts;
pub mod cast;
pub mod context;
pub mod error;
pub mod functions;
pub mod health_history;
pub mod live;
pub mod load;
pub mod models;
pub mod named;
pub mod output;
pub mod postgres;
pub mod readonly;
pub mod rules;
pub mod segments;
pub mod snapshot;
pub mod sort;
pub mod udf;

pub use context::{Analyst, AnalystBuilder, DataDir};
pub use datafusion;
pub use error::{QueryError, Result};
pub use segments::{SegmentMeta, SegmentStore, TailCut};
