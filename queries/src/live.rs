//! Schemas of the live tables `health` and `alerts`: the scoring core's
//! ([`vigil_engine::scoring::health_schema`], [`vigil_engine::scoring::alert_schema`]).
//!
//! A snapshot or alert batch handed to this crate must have exactly these columns. Alert history
//! is time-partitioned on the alert's `at` column ([`ALERT_TIME_COLUMN`]).

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;

/// The column the alert history is pruned on.
pub const ALERT_TIME_COLUMN: &str = "at";

/// The schema of the `health` table: one row per account from the live scoring state.
pub fn health_schema() -> SchemaRef {
    vigil_engine::scoring::health_schema()
}

/// The schema of the `alerts` table: alert history.
pub fn alert_schema() -> SchemaRef {
    vigil_engine::scoring::alert_schema()
}

/// An empty `health` snapshot.
pub fn empty_health() -> RecordBatch {
    RecordBatch::new_empty(health_schema())
}
