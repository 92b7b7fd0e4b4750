//! The `events` store: segments and tail are both visible, a reopened directory has the same
//! rows, and time-range predicates skip segments (counted, and visible in EXPLAIN).

mod common;

use arrow::array::AsArray;
use arrow::datatypes::Int64Type;
use vigil_engine::event::{Event, EventKind};
use vigil_queries::{Analyst, SegmentStore};

const DAY: i64 = 86_400_000;
const JAN_1_2024: i64 = 1_704_067_200_000;

fn day_batch(day: i64, n: usize) -> arrow::array::RecordBatch {
    let mut b = vigil_engine::EventBatchBuilder::with_capacity(n);
    for i in 0..n {
        let e = Event::new(
            format!("e{day}-{i}"),
            format!("acc{}", i % 3),
            JAN_1_2024 + day * DAY + i as i64,
            EventKind::Activity,
        );
        b.decode_append(
            e.to_json().as_bytes(),
            &Default::default(),
            &Default::default(),
            i64::MAX / 2,
        )
        .unwrap();
    }
    b.finish()
}

fn open(dir: &std::path::Path) -> SegmentStore {
    SegmentStore::open("events", dir.join("events"), vigil_engine::schema::event_schema(), "ts").unwrap()
}

async fn count(a: &Analyst, sql: &str) -> i64 {
    let b = a.collect(sql).await.unwrap();
    b[0].column(0).as_primitive::<Int64Type>().value(0)
}

#[tokio::test]
async fn segments_tail_reopen_and_pruning() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    // Three segments: days 0-9, 10-19, 20-29 (10 events a day), and days 30-31 in the tail.
    for seg in 0..3 {
        for d in 0..10 {
            store.append(day_batch(seg * 10 + d, 10)).unwrap();
        }
        let meta = store.flush_segment().unwrap().unwrap();
        assert_eq!(meta.rows, 100);
        assert_eq!(meta.min_ts_ms, JAN_1_2024 + seg * 10 * DAY);
    }
    assert!(store.flush_segment().unwrap().is_none(), "an empty tail writes nothing");
    store.append(day_batch(30, 10)).unwrap();
    store.append(day_batch(31, 10)).unwrap();
    assert_eq!(store.tail_rows(), 20);

    let a = Analyst::builder(store.clone()).build().unwrap();
    assert_eq!(count(&a, "SELECT count(*) FROM events").await, 320);
    let before = store.counters();
    assert_eq!(before.segments_scanned, 3);

    // Days 12..14 only: one segment read, two skipped; the tail is still read.
    let n = count(
        &a,
        "SELECT count(*) FROM events WHERE ts >= TIMESTAMP '2024-01-13 00:00:00' AND ts < TIMESTAMP '2024-01-16 00:00:00'",
    )
    .await;
    assert_eq!(n, 30);
    let after = store.counters();
    assert_eq!(after.segments_scanned - before.segments_scanned, 1);
    assert_eq!(after.segments_pruned - before.segments_pruned, 2);

    // A range in the tail only: no segment read at all.
    let n = count(
        &a,
        "SELECT count(*) FROM events WHERE ts >= TIMESTAMP '2024-01-31 00:00:00'",
    )
    .await;
    assert_eq!(n, 20);
    assert_eq!(store.counters().segments_scanned, after.segments_scanned);

    // EXPLAIN names only the chosen file.
    let plan = common::sql_csv(
        &a,
        "EXPLAIN SELECT count(*) FROM events WHERE ts BETWEEN TIMESTAMP '2024-01-22 00:00:00' AND TIMESTAMP '2024-01-23 00:00:00'",
    )
    .await;
    assert!(plan.contains("seg-000002.parquet"), "{plan}");
    assert!(
        !plan.contains("seg-000000.parquet") && !plan.contains("seg-000001.parquet"),
        "{plan}"
    );

    // Reopening the directory finds the segments (not the lost tail) and keeps numbering.
    let reopened = open(dir.path());
    assert_eq!(reopened.segments().len(), 3);
    assert_eq!(reopened.segments()[1].min_ts_ms, JAN_1_2024 + 10 * DAY);
    reopened.append(day_batch(40, 5)).unwrap();
    let m = reopened.flush_segment().unwrap().unwrap();
    assert!(m.path.ends_with("seg-000003.parquet"), "{}", m.path.display());
    let a2 = Analyst::builder(reopened).build().unwrap();
    assert_eq!(count(&a2, "SELECT count(*) FROM events").await, 305);
}

#[tokio::test]
async fn wrong_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let other = vigil_queries::accounts::accounts_batch(&[vigil_queries::accounts::Account::new("a")]).unwrap();
    assert!(store.append(other).is_err());
}

#[tokio::test]
async fn data_dir_layout_and_accounts_files() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store.append(day_batch(0, 4)).unwrap();
    store.flush_segment().unwrap();
    std::fs::copy(common::data_dir().join("accounts.csv"), dir.path().join("accounts.csv")).unwrap();
    let health = common::health_batch();
    let file = std::fs::File::create(dir.path().join("health.parquet")).unwrap();
    let mut w = datafusion::parquet::arrow::ArrowWriter::try_new(file, health.schema(), None).unwrap();
    w.write(&health).unwrap();
    w.close().unwrap();
    let a = Analyst::open_data_dir(dir.path()).await.unwrap();
    assert_eq!(count(&a, "SELECT count(*) FROM events").await, 4);
    assert_eq!(
        common::sql_csv(
            &a,
            "SELECT account_id, tier, arr, owner FROM accounts WHERE account_id IN ('C', 'F') ORDER BY 1"
        )
        .await,
        "account_id,tier,arr,owner\nC,key,,alice\nF,standard,,\n"
    );
    // The snapshot's own tier: A and D (C is key only in accounts.csv).
    assert_eq!(count(&a, "SELECT count(*) FROM health WHERE tier = 'key'").await, 2);
    assert_eq!(count(&a, "SELECT count(*) FROM alerts").await, 0);
    let tables = common::sql_csv(&a, "SHOW TABLES").await;
    for t in ["events", "accounts", "health", "alerts", "churn_risk", "retention_nday"] {
        assert!(tables.contains(&format!(",{t},")), "{t} missing from {tables}");
    }
}

/// A partition's tail committed as a named segment: rows appended after the cut stay in the
/// tail, a name written again replaces its file (a re-run after a crash adds nothing), and
/// `discard` drops what a restored checkpoint does not cover, tail included.
#[tokio::test]
async fn keyed_tails_commit_as_named_segments_idempotently() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let a = Analyst::builder(store.clone()).build().unwrap();
    let total = "SELECT count(*) FROM events";
    store.append_to("t-0", day_batch(0, 10)).unwrap();
    store.append_to("t-1", day_batch(1, 7)).unwrap();
    let cut = store.cut("t-0");
    assert_eq!(cut.rows(), 10);
    // Appended while the cut is being written: belongs to the next segment.
    store.append_to("t-0", day_batch(2, 5)).unwrap();
    let meta = store.commit(cut.clone(), "t-0-000000000001").unwrap().unwrap();
    assert_eq!(meta.rows, 10);
    assert_eq!(store.tail_rows(), 12, "t-0's later rows and t-1's stay in the tail");
    assert_eq!(count(&a, total).await, 22, "every row visible once");
    // The same cut committed again under the same name (a retried write): still once.
    store.commit(cut, "t-0-000000000001").unwrap();
    assert_eq!(store.segments().len(), 1);
    assert_eq!(count(&a, total).await, 22);
    // Restored at checkpoint 0: segment 1 and t-0's tail go; t-1 is untouched.
    let deleted = store
        .discard("t-0", |stem| stem.starts_with("t-0-") && stem > "t-0-000000000000")
        .unwrap();
    assert_eq!(deleted, 1);
    assert!(store.segments().is_empty());
    assert_eq!(store.tail_rows(), 7);
    assert_eq!(count(&a, total).await, 7);
    // A reopened directory sees only what was committed and kept.
    store.commit(store.cut("t-1"), "t-1-000000000001").unwrap();
    let reopened = open(dir.path());
    assert_eq!(reopened.segments().len(), 1);
    assert_eq!(reopened.segments()[0].rows, 7);
    let names: Vec<String> = std::fs::read_dir(dir.path().join("events"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(
        names,
        vec!["t-1-000000000001.parquet".to_string()],
        "no temp files left"
    );
}

/// Small segments merged into one: the table shows the same rows throughout, the inputs' files
/// go at the next compaction, and a store opened after a crash that left them deletes them (the
/// merged segment names what it supersedes).
#[tokio::test]
async fn compaction_merges_segments_and_a_reopened_store_drops_what_it_superseded() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let a = Analyst::builder(store.clone()).build().unwrap();
    let total = "SELECT count(*), count(DISTINCT event_id) FROM events";
    for (n, day) in [(1, 0), (2, 1), (3, 2)] {
        store.append_to("t-0", day_batch(day, 10)).unwrap();
        store.commit(store.cut("t-0"), &format!("t-0-{n:012}")).unwrap();
    }
    assert_eq!(store.segments().len(), 3);
    let stems: Vec<String> = (1..=3).map(|n| format!("t-0-{n:012}")).collect();
    let merged = store.compact(&stems, "t-0-000000000003-m").unwrap().unwrap();
    assert_eq!((merged.rows, merged.supersedes.clone()), (30, stems.clone()));
    assert_eq!(
        (merged.min_ts_ms, merged.max_ts_ms),
        (JAN_1_2024, JAN_1_2024 + 2 * DAY + 9)
    );
    assert_eq!(store.segments().len(), 1);
    assert_eq!(count(&a, total).await, 30);
    let file = |stem: &str| dir.path().join("events").join(format!("{stem}.parquet"));
    assert!(
        file(&stems[0]).exists(),
        "an input is deleted at the next compaction only"
    );

    // A crash before the inputs were deleted: a reopened store deletes them and reads each row once.
    let reopened = open(dir.path());
    assert_eq!(reopened.segments().len(), 1);
    assert!(
        stems.iter().all(|s| !file(s).exists()),
        "superseded inputs deleted on open"
    );
    let b = Analyst::builder(reopened.clone()).build().unwrap();
    assert_eq!(count(&b, total).await, 30);

    // The next compaction deletes the previous one's inputs.
    for (n, day) in [(4, 3), (5, 4)] {
        reopened.append_to("t-0", day_batch(day, 10)).unwrap();
        reopened.commit(reopened.cut("t-0"), &format!("t-0-{n:012}")).unwrap();
    }
    let stems = vec![
        "t-0-000000000003-m".to_string(),
        "t-0-000000000004".to_string(),
        "t-0-000000000005".to_string(),
    ];
    reopened.compact(&stems, "t-0-000000000005-m").unwrap().unwrap();
    reopened.compact(&["t-0-000000000005-m".to_string()], "x").unwrap();
    assert_eq!(count(&b, total).await, 50);
    assert!(file("t-0-000000000005-m").exists());
}
