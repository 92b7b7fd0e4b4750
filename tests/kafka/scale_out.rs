//! Scale-out by consumer group: process A alone, then B joins (A checkpoints the partitions it
//! gives up, B restores them from the shared checkpoint directory), then A is SIGKILLed (B
//! takes A's partitions from A's last checkpoints). B's final state equals a single-process run.

use std::time::Duration;

use vigil_testkit::{broker, unique_name};

use crate::vigil_proc::{RunSpec, bad_among, health_csv, message, progress, terminate, wait_for_messages};

#[test]
fn a_alone_then_b_joins_then_a_dies_equals_one_process() {
    const N: usize = 150_000;
    const ACCOUNTS: usize = 3_000;
    let b = broker();
    let topic = unique_name("scale");
    b.create_topic(&topic, 4);
    b.create_topic(&format!("{topic}.dlq"), 1);
    let dir = tempfile::tempdir().expect("tempdir");
    let third = N / 3;
    b.produce(&topic, "lz4", (0..third).map(|i| message(i, ACCOUNTS)));

    let group = unique_name("group");
    let shared = dir.path().join("shared-checkpoints");
    let member = |name: &str| RunSpec {
        bootstrap: b.bootstrap.clone(),
        topic: topic.clone(),
        group: group.clone(),
        data_dir: dir.path().join(name),
        checkpoint_dir: shared.clone(),
        instance: None,
    };
    let mut a = member("a").start();
    wait_for_messages(&shared, third as u64, Duration::from_secs(120), &mut a);

    let b_spec = member("b");
    let mut b_child = b_spec.start();
    // B's join moves partitions from A to B; more events flow meanwhile.
    std::thread::sleep(Duration::from_secs(3));
    b.produce(&topic, "lz4", (third..2 * third).map(|i| message(i, ACCOUNTS)));
    wait_for_messages(&shared, 2 * third as u64, Duration::from_secs(120), &mut b_child);

    // A dies without a chance to checkpoint; B takes its partitions after the session timeout.
    a.kill().expect("SIGKILL a");
    let _ = a.wait();
    b.produce(&topic, "lz4", (2 * third..N).map(|i| message(i, ACCOUNTS)));
    wait_for_messages(&shared, N as u64, Duration::from_secs(180), &mut b_child);
    terminate(b_child);

    // The single-process run of the same stream.
    let single = RunSpec {
        bootstrap: b.bootstrap.clone(),
        topic: topic.clone(),
        group: unique_name("single"),
        data_dir: dir.path().join("single"),
        checkpoint_dir: dir.path().join("single-checkpoints"),
        instance: None,
    };
    let mut child = single.start();
    wait_for_messages(&single.checkpoint_dir, N as u64, Duration::from_secs(120), &mut child);
    terminate(child);

    let p = progress(&shared);
    let bad = bad_among(N);
    assert_eq!(
        p.messages, N as u64,
        "every message counted once across the two processes"
    );
    assert_eq!(p.dead_lettered, bad);
    assert_eq!(p.duplicates, 0);
    let expected = health_csv(&single.data_dir);
    let got = health_csv(&b_spec.data_dir);
    assert_eq!(expected.lines().count(), ACCOUNTS + 1);
    if expected != got {
        let first = expected
            .lines()
            .zip(got.lines())
            .find(|(x, y)| x != y)
            .map(|(x, y)| format!("\nsingle process: {x}\nscaled out:     {y}"))
            .unwrap_or_default();
        panic!(
            "health tables differ ({} vs {} lines){first}",
            expected.lines().count(),
            got.lines().count()
        );
    }
}
