//! Every column of `health` depends on the events, not on how fast they arrive: the same
//! messages read as one backlog (a catch-up run) and fed in paced chunks to a running process
//! (a live run) leave the same table, `trend_7d` included.

use std::time::Duration;

use vigil_testkit::{broker, unique_name};

use crate::vigil_proc::{RunSpec, health_csv, terminate, wait_for_messages};

/// Events over 12.5 days (45 s apart) of 300 accounts.
const N: usize = 24_000;
const ACCOUNTS: usize = 300;

fn messages() -> Vec<(Option<Vec<u8>>, Vec<u8>)> {
    (0..N)
        .map(|i| {
            let mut e = crate::common::event(i, ACCOUNTS);
            e.ts_ms = 1_780_000_000_000 + i as i64 * 45_000;
            (Some(e.account_id.clone().into_bytes()), crate::common::message(i, &e))
        })
        .collect()
}

fn spec(dir: &std::path::Path, name: &str) -> RunSpec {
    RunSpec {
        bootstrap: broker().bootstrap.clone(),
        topic: unique_name(name),
        group: unique_name("group"),
        data_dir: dir.join(name),
        checkpoint_dir: dir.join(format!("{name}-checkpoints")),
        instance: None,
    }
}

#[test]
fn a_backlog_and_a_paced_stream_of_the_same_events_leave_the_same_health() {
    let b = broker();
    let dir = tempfile::tempdir().expect("tempdir");
    let all = messages();

    // Catch-up: everything is in the topic before the process starts.
    let backlog = spec(dir.path(), "backlog");
    b.create_topic(&backlog.topic, 2);
    b.create_topic(&format!("{}.dlq", backlog.topic), 1);
    b.produce(&backlog.topic, "lz4", all.clone());
    let mut child = backlog.start();
    wait_for_messages(&backlog.checkpoint_dir, N as u64, Duration::from_secs(120), &mut child);
    terminate(child);

    // Live: the process waits for events, which come in 12 chunks, each read and checkpointed
    // (ticks in between) before the next is sent.
    let paced = spec(dir.path(), "paced");
    b.create_topic(&paced.topic, 2);
    b.create_topic(&format!("{}.dlq", paced.topic), 1);
    let mut child = paced.start();
    let chunk = N / 12;
    for (k, part) in all.chunks(chunk).enumerate() {
        b.produce(&paced.topic, "lz4", part.to_vec());
        let sent = ((k + 1) * chunk).min(N) as u64;
        wait_for_messages(&paced.checkpoint_dir, sent, Duration::from_secs(60), &mut child);
    }
    terminate(child);

    let fast = health_csv(&backlog.data_dir);
    let slow = health_csv(&paced.data_dir);
    assert_eq!(fast.lines().count(), ACCOUNTS + 1);
    let header: Vec<&str> = fast.lines().next().expect("header").split(',').collect();
    let trend = header.iter().position(|c| *c == "trend_7d").expect("trend_7d column");
    let with_trend = fast
        .lines()
        .skip(1)
        .filter(|l| l.split(',').nth(trend).is_some_and(|v| !v.is_empty()))
        .count();
    assert_eq!(with_trend, ACCOUNTS, "every account has a trend after 12 days");
    assert!(
        fast == slow,
        "the health tables differ; first differing line:\n{:?}",
        fast.lines().zip(slow.lines()).find(|(a, b)| a != b)
    );
}
