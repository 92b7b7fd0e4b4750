//! The `health` table over a live scoring core: each query reads the snapshot the core holds at
//! that moment (the core's lock is the caller's business: here a mutex taken in the closure).

mod common;

use std::sync::{Arc, Mutex};

use arrow::array::AsArray;
use arrow::datatypes::Int64Type;
use vigil_engine::scoring::{ScoringConfig, ScoringCore};
use vigil_queries::Analyst;
use vigil_queries::load::events_from_jsonl;

#[tokio::test]
async fn health_reads_the_current_scoring_state() {
    let dir = tempfile::tempdir().unwrap();
    let store = vigil_queries::SegmentStore::open(
        "events",
        dir.path().join("events"),
        vigil_engine::schema::event_schema(),
        "ts",
    )
    .unwrap();
    let core = Arc::new(Mutex::new(ScoringCore::new(ScoringConfig::default()).unwrap()));
    let snapshot_core = core.clone();
    let analyst = Analyst::builder(store.clone())
        .health(Arc::new(move || Ok(snapshot_core.lock().unwrap().health_batch())))
        .build()
        .unwrap();
    let count = |sql: &'static str| {
        let a = &analyst;
        async move {
            let b = a.collect(sql).await.unwrap();
            b[0].column(0).as_primitive::<Int64Type>().value(0)
        }
    };
    assert_eq!(count("SELECT count(*) FROM health").await, 0);

    // Events reach the core and the history; both are visible to the next query.
    let text = std::fs::read_to_string(common::data_dir().join("retention.jsonl")).unwrap();
    let batch = events_from_jsonl(&text).unwrap();
    core.lock().unwrap().apply_batch(&batch).unwrap();
    store.append(batch).unwrap();
    let accounts = core.lock().unwrap().len() as i64;
    assert!(accounts > 0);
    assert_eq!(count("SELECT count(*) FROM health").await, accounts);
    assert_eq!(count("SELECT count(*) FROM events").await, 28);
    // The core's bands agree with health_band() on its own scores.
    assert_eq!(
        count("SELECT count(*) FROM health WHERE band <> health_band(score)").await,
        0
    );
    // Accounts the core marks cancelled have a cancellation in the history.
    assert_eq!(
        count(
            "SELECT count(*) FROM health h WHERE h.cancelled AND NOT EXISTS \
             (SELECT 1 FROM events e WHERE e.account_id = h.account_id AND e.kind = 'cancellation')"
        )
        .await,
        0
    );
    // Every named query runs over the live table.
    for q in vigil_queries::named::builtin() {
        analyst.named(&q.name, &[]).await.unwrap().collect().await.unwrap();
    }
}
