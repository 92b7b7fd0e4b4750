//! Effectively-once state across crashes: a million events; `vigil run` is SIGKILLed at ten
//! random moments and restarted; the final `health` table equals the one of an uninterrupted
//! run field for field, every message is counted once (valid + dead-lettered) and no event is
//! counted as a duplicate.

use std::time::Duration;

use rand::{RngExt, SeedableRng};
use vigil_testkit::{broker, unique_name};

use crate::vigil_proc::{RunSpec, bad_among, health_csv, kill9, message, progress, terminate, wait_for_messages};

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
