//! Shared test helpers: building an analyst session over the hand-made data sets.

#![allow(dead_code)]

use std::io::BufReader;
use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::RecordBatch;
use tempfile::TempDir;
use vigil_queries::accounts::load_accounts_file;
use vigil_queries::live::health_schema;
use vigil_queries::load::events_from_jsonl;
use vigil_queries::{Analyst, SegmentStore};

/// `queries/tests/data`.
pub fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests").join("data")
}

/// The health snapshot of the tests.
pub fn health_batch() -> RecordBatch {
    let file = std::fs::File::open(data_dir().join("health.jsonl")).unwrap();
    let reader = arrow::json::ReaderBuilder::new(health_schema())
        .build(BufReader::new(file))
        .unwrap();
    let batches: Vec<RecordBatch> = reader.collect::<Result<_, _>>().unwrap();
    arrow::compute::concat_batches(&health_schema(), &batches).unwrap()
}

/// A session over `tests/data/<dataset>.jsonl`, accounts.csv, health.jsonl and models.jsonl. The first
/// `flushed` events go to a Parquet segment, the rest stay in the in-memory tail, so queries read
/// both.
pub async fn analyst(dataset: &str) -> (TempDir, Analyst) {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(data_dir().join(format!("{dataset}.jsonl"))).unwrap();
    let batch = events_from_jsonl(&text).unwrap();
    let store = SegmentStore::open(
        "events",
        dir.path().join("events"),
        vigil_engine::schema::event_schema(),
        "ts",
    )
    .unwrap();
    let half = batch.num_rows() / 2;
    store.append(batch.slice(0, half)).unwrap();
    store.flush_segment().unwrap();
    store.append(batch.slice(half, batch.num_rows() - half)).unwrap();
    let accounts = load_accounts_file(&data_dir().join("accounts.csv")).await.unwrap();
    let health = health_batch();
    let analyst = Analyst::builder(store)
        .models(vigil_queries::models::ModelStore::in_data_dir(&data_dir()))
        .accounts(accounts)
        .health(Arc::new(move || Ok(health.clone())))
        .build()
        .unwrap();
    (dir, analyst)
}

/// Batches as CSV text with a header.
pub fn csv(schema: &arrow::datatypes::SchemaRef, batches: &[RecordBatch]) -> String {
    let mut out = Vec::new();
    vigil_queries::output::write_batches(&mut out, schema, batches, vigil_queries::output::Format::Csv).unwrap();
    String::from_utf8(out).unwrap()
}

/// Runs SQL through the read-only guard and returns CSV.
pub async fn sql_csv(analyst: &Analyst, sql: &str) -> String {
    let df = analyst.sql(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    let schema = Arc::new(df.schema().as_arrow().clone());
    let batches = df.collect().await.unwrap();
    csv(&schema, &batches)
}
