//! Effectively-once state and history across crashes: a million events; `vigil run` is
//! SIGKILLed at ten random moments and restarted; the final `health` table equals the one of an
//! uninterrupted run field for field, every message is counted once (valid + dead-lettered), no
//! event is counted as a duplicate, the `events` history holds every valid event id exactly
//! once, the `alerts` history one row per alert id, and named queries over the history answer
//! as after the uninterrupted run.

use std::time::Duration;

use rand::{RngExt, SeedableRng};
use vigil_testkit::{broker, unique_name};

use crate::vigil_proc::{
    RunSpec, bad_among, health_csv, kill9, message, progress, sql_csv, terminate, wait_for_messages,
};

#[test]
fn sigkill_ten_times_then_state_equals_an_uninterrupted_run() {
    const N: usize = 1_000_000;
    const ACCOUNTS: usize = 20_000;
    let b = broker();
    let topic = unique_name("crash");
    b.create_topic(&topic, 4);
    b.create_topic(&format!("{topic}.dlq"), 1);
    b.produce(&topic, "lz4", (0..N).map(|i| message(i, ACCOUNTS)));
    let bad = bad_among(N);
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = |name: &str| RunSpec {
        bootstrap: b.bootstrap.clone(),
        topic: topic.clone(),
        group: unique_name(name),
        data_dir: dir.path().join(name).join("data"),
        checkpoint_dir: dir.path().join(name).join("checkpoints"),
        instance: Some(unique_name(name)),
    };

    // The uninterrupted run.
    let clean = spec("clean");
    let mut child = clean.start();
    wait_for_messages(&clean.checkpoint_dir, N as u64, Duration::from_secs(300), &mut child);
    terminate(child);

    // The same stream, killed ten times at random moments.
    let crashy = spec("crashy");
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed);
    let mut mid_stream_kills = 0;
    for kill in 0..10 {
        let child = crashy.start();
        let wait_ms = rng.random_range(800..3_000);
        std::thread::sleep(Duration::from_millis(wait_ms));
        kill9(child);
        let p = progress(&crashy.checkpoint_dir);
        eprintln!(
            "kill {kill} after {wait_ms} ms: checkpoints cover {} of {N} messages",
            p.messages
        );
        if p.messages > 0 && p.messages < N as u64 {
            mid_stream_kills += 1;
        }
    }
    let mut child = crashy.start();
    wait_for_messages(&crashy.checkpoint_dir, N as u64, Duration::from_secs(300), &mut child);
    terminate(child);
    assert!(
        mid_stream_kills >= 3,
        "only {mid_stream_kills} kills landed mid-stream; the test did not exercise recovery"
    );

    for (name, s) in [("clean", &clean), ("crashy", &crashy)] {
        let p = progress(&s.checkpoint_dir);
        assert_eq!(p.messages, N as u64, "{name}: every message counted once");
        assert_eq!(p.dead_lettered, bad, "{name}: dead-lettered");
        assert_eq!(p.valid, N as u64 - bad, "{name}: valid");
        assert_eq!(p.applied, N as u64 - bad, "{name}: applied");
        assert_eq!(p.duplicates, 0, "{name}: no event counted twice");
        assert_eq!(p.late, 0, "{name}: nothing late");
    }
    // History: every valid event once, every alert once, the same answers as the clean run.
    let valid = N as u64 - bad;
    for (name, s) in [("clean", &clean), ("crashy", &crashy)] {
        assert_eq!(
            sql_csv(
                &s.data_dir,
                "SELECT count(*) AS n, count(DISTINCT event_id) AS ids FROM events"
            ),
            format!("n,ids\n{valid},{valid}\n"),
            "{name}: the events history holds every valid event id exactly once"
        );
        // Every raise once: no (alert id, time) twice in the raw history (a segment written
        // again after a crash would repeat rows); `alerts` shows one row per id.
        let raises = sql_csv(
            &s.data_dir,
            "SELECT count(*) AS repeated FROM \
             (SELECT alert_id, at FROM alert_raises GROUP BY alert_id, at HAVING count(*) > 1)",
        );
        assert_eq!(raises, "repeated\n0\n", "{name}: a raise written twice");
        let alerts = sql_csv(
            &s.data_dir,
            "SELECT count(*) > 0 AND count(*) = count(DISTINCT alert_id) AS once FROM alerts",
        );
        assert_eq!(alerts, "once\ntrue\n", "{name}: one row per alert id");
    }
    // Named queries over the history (alerts are left out: when the engine evaluates an
    // account depends on how the stream was cut into batches, which differs between runs).
    for query in [
        "SELECT kind, count(*) AS n, sum(amount) AS amount, sum(cost) AS cost FROM events GROUP BY kind ORDER BY kind",
        "SELECT * FROM complaint_costs",
        "SELECT * FROM acquisition_cost",
        "SELECT * FROM retention_nday",
    ] {
        assert_csv_close(
            &sql_csv(&crashy.data_dir, query),
            &sql_csv(&clean.data_dir, query),
            &format!("after crashes, `{query}`"),
        );
    }

    let expected = health_csv(&clean.data_dir);
    let got = health_csv(&crashy.data_dir);
    assert_eq!(
        expected.lines().count(),
        ACCOUNTS + 1,
        "one health row per account plus the header"
    );
    if expected != got {
        let first = expected
            .lines()
            .zip(got.lines())
            .find(|(a, b)| a != b)
            .map(|(a, b)| format!("\nuninterrupted: {a}\nafter crashes: {b}"))
            .unwrap_or_default();
        panic!("health tables differ{first}");
    }
}

/// Two CSV answers are the same: same rows and fields, numbers equal up to the last bits that
/// the order of a floating-point sum moves (segments split the rows differently after crashes).
fn assert_csv_close(got: &str, expected: &str, what: &str) {
    let (g, e): (Vec<&str>, Vec<&str>) = (got.lines().collect(), expected.lines().collect());
    assert_eq!(g.len(), e.len(), "{what}: rows\ngot:\n{got}\nexpected:\n{expected}");
    assert!(
        e.len() > 1,
        "{what}: the uninterrupted run answers with rows:\n{expected}"
    );
    for (gl, el) in g.iter().zip(&e) {
        let (gf, ef): (Vec<&str>, Vec<&str>) = (gl.split(',').collect(), el.split(',').collect());
        let same = gf.len() == ef.len()
            && gf.iter().zip(&ef).all(|(a, b)| {
                a == b
                    || matches!((a.parse::<f64>(), b.parse::<f64>()), (Ok(x), Ok(y))
                        if (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0))
            });
        assert!(same, "{what}: answers differ\ngot:      {gl}\nexpected: {el}");
    }
}
