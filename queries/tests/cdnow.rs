//! The CDNOW sample (Fader, Hardie & Lee 2005) loaded as purchase events: SQL with the BG/NBD
//! UDFs and the published parameters reproduces the published figures, and an RFM summary
//! computed in SQL from the events matches `cdnow_customers_summary.csv`.

use std::collections::HashMap;
use std::path::PathBuf;

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::{Float64Type, Int64Type};
use vigil_engine::event::{Event, EventKind};
use vigil_queries::{Analyst, SegmentStore};

fn cdnow_dir() -> PathBuf {
    // The repository root is CARGO_MANIFEST_DIR/..; shared/ sits beside it.
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/data/cdnow")
        .canonicalize()
        .expect("shared/data/cdnow beside the repository")
}

/// CDNOW_sample.txt as one purchase event per transaction; account = the sample id ("1".."2357").
fn cdnow_events() -> RecordBatch {
    let text = std::fs::read_to_string(cdnow_dir().join("CDNOW_sample.txt")).unwrap();
    let mut b = vigil_engine::EventBatchBuilder::with_capacity(8000);
    let limits = vigil_engine::DecodeLimits::default();
    for (i, line) in text.lines().enumerate() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() != 5 {
            continue;
        }
        let id: u32 = f[1].parse().unwrap();
        let date = chrono::NaiveDate::parse_from_str(f[2], "%Y%m%d").unwrap();
        let ts_ms = date.and_hms_opt(0, 0, 0).unwrap().and_utc().timestamp_millis();
        let mut e = Event::new(format!("cdnow-{i}"), id.to_string(), ts_ms, EventKind::Purchase);
        e.amount = Some(f[4].parse().unwrap());
        b.decode_append(e.to_json().as_bytes(), &Default::default(), &limits, i64::MAX / 2)
            .unwrap();
    }
    b.finish()
}

async fn analyst() -> (tempfile::TempDir, Analyst) {
    let dir = tempfile::tempdir().unwrap();
    let store = SegmentStore::open(
        "events",
        dir.path().join("events"),
        vigil_engine::schema::event_schema(),
        "ts",
    )
    .unwrap();
    store.append(cdnow_events()).unwrap();
    store.flush_segment().unwrap();
    let a = Analyst::builder(store).build().unwrap();
    (dir, a)
}

const PARAMS: &str = "0.243, 4.414, 0.793, 2.426";

#[tokio::test]
async fn published_conditional_expectation() {
    let (_d, a) = analyst().await;
    let sql =
        format!("SELECT bgnbd_expected(39, 2, 30.43, 38.86, {PARAMS}) AS e, p_alive(2, 30.43, 38.86, {PARAMS}) AS p");
    let b = &a.collect(&sql).await.unwrap()[0];
    let e = b.column(0).as_primitive::<Float64Type>().value(0);
    let p = b.column(1).as_primitive::<Float64Type>().value(0);
    assert!(
        (e - 1.226).abs() < 5e-4,
        "E[Y(39) | x=2, t_x=30.43, T=38.86] = {e}, published 1.226"
    );
    assert!(p > 0.0 && p < 1.0, "{p}");
    // NULL for an impossible history (t_x > T) and for NULL input.
    let b = &a
        .collect(&format!(
            "SELECT p_alive(2, 40, 38.86, {PARAMS}) AS bad, p_alive(NULL, 1, 2, {PARAMS}) AS n"
        ))
        .await
        .unwrap()[0];
    assert!(b.column(0).is_null(0) && b.column(1).is_null(0));
}

#[tokio::test]
async fn rfm_in_sql_matches_the_published_summary() {
    let (_d, a) = analyst().await;
    // Calibration = weeks 1-39 (purchases before 1997-10-01); occasions = distinct days; T is
    // measured to the last calibration day, 1997-09-30, as in the published summary.
    let sql = format!(
        "WITH days AS (
             SELECT DISTINCT account_id, CAST(CAST(ts AS DATE) AS TIMESTAMP) AS day
             FROM events WHERE kind = 'purchase' AND ts < TIMESTAMP '1997-10-01 00:00:00'
         ),
         rfm AS (
             SELECT account_id,
                    count(*) - 1 AS x,
                    (date_part('epoch', max(day)) - date_part('epoch', min(day))) / 86400.0 / 7 AS t_x,
                    (date_part('epoch', TIMESTAMP '1997-09-30 00:00:00') - date_part('epoch', min(day))) / 86400.0 / 7 AS t
             FROM days GROUP BY account_id
         )
         SELECT CAST(account_id AS BIGINT) AS id, x, round(t_x, 2) AS recency, round(t, 2) AS t,
                p_alive(x, t_x, t, {PARAMS}) AS p_alive,
                bgnbd_expected(39, x, t_x, t, {PARAMS}) AS expected_39
         FROM rfm ORDER BY id"
    );
    let batches = a.collect(&sql).await.unwrap();
    let mut got: HashMap<i64, (i64, f64, f64, f64, f64)> = HashMap::new();
    for b in &batches {
        let id = b.column(0).as_primitive::<Int64Type>();
        let x = b.column(1).as_primitive::<Int64Type>();
        let f = |i: usize| b.column(i).as_primitive::<Float64Type>();
        for r in 0..b.num_rows() {
            got.insert(
                id.value(r),
                (x.value(r), f(2).value(r), f(3).value(r), f(4).value(r), f(5).value(r)),
            );
        }
    }
    let summary = std::fs::read_to_string(cdnow_dir().join("cdnow_customers_summary.csv")).unwrap();
    let mut n = 0;
    for line in summary.lines().skip(1) {
        let v: Vec<&str> = line.trim().split(',').collect();
        let id: i64 = v[0].parse().unwrap();
        let (freq, rec, t): (i64, f64, f64) = (v[1].parse().unwrap(), v[2].parse().unwrap(), v[3].parse().unwrap());
        let (x, recency, tt, p, e) = got.get(&id).unwrap_or_else(|| panic!("customer {id} missing"));
        assert_eq!(*x, freq, "frequency of {id}");
        assert!((recency - rec).abs() < 0.006, "recency of {id}: {recency} vs {rec}");
        assert!((tt - t).abs() < 0.006, "T of {id}: {tt} vs {t}");
        if freq == 0 {
            assert_eq!(*p, 1.0, "P(alive) of {id} without repeat purchases");
        } else {
            assert!(*p > 0.0 && *p < 1.0, "P(alive) of {id}: {p}");
        }
        assert!(*e > 0.0, "expected purchases of {id}: {e}");
        n += 1;
    }
    assert_eq!(n, 2357);
    assert_eq!(got.len(), 2357);
    // Customer 1 is the published example: x = 2, t_x = 30.43, T = 38.86 -> 1.226.
    let c1 = got[&1];
    assert_eq!((c1.0, c1.1, c1.2), (2, 30.43, 38.86));
    assert!((c1.4 - 1.226).abs() < 2e-3, "{}", c1.4);
}
