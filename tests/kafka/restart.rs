//! A consumer stopped mid-stream and restarted in the same group delivers every event
//! (duplicates allowed, none missing); its committed offsets never pass an unacknowledged batch.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use vigil_connectors::kafka;
use vigil_testkit::{broker, unique_name};

use crate::common::{Received, collect_until, config, event, message};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_in_same_group_misses_nothing_and_never_commits_past_unacked() {
    const N: usize = 20_000;
    let b = broker();
    let topic = unique_name("restart");
    let group = unique_name("group");
    b.create_topic(&topic, 4);
    let events: Vec<_> = (0..N).map(|i| event(i, 500)).collect();
    b.produce(
        &topic,
        "none",
        events
            .iter()
            .enumerate()
            .map(|(i, e)| (Some(e.account_id.clone().into_bytes()), message(i, e))),
    );

    let mut cfg = config(&b.bootstrap, &[&topic], &group, &format!("{topic}.dlq"));
    cfg.max_batch_rows = 250;
    cfg.revoke_timeout_ms = 1_000;
    let (handle, mut rx) = kafka::start(cfg.clone(), 4).expect("source starts");

    // First run: ack 5 batches, hold the 6th unacknowledged, ack 10 more, then stop.
    let mut acked = Received::default();
    let mut held_min: HashMap<i32, i64> = HashMap::new();
    let mut held = None;
    let mut n = 0;
    while n < 16 {
        let batch = tokio::time::timeout(Duration::from_secs(60), rx.recv())
            .await
            .expect("a batch in time")
            .expect("source open");
        n += 1;
        if n == 6 {
            for (_, meta) in vigil_engine::events_from_batch(&batch.batch).expect("schema") {
                let (p, o) = (meta.partition.expect("p"), meta.offset.expect("o"));
                let slot = held_min.entry(p).or_insert(o);
                *slot = (*slot).min(o);
            }
            held = Some(batch);
        } else {
            acked.add(&batch);
            batch.ack.ack();
        }
    }
    // Give the periodic commit time to run, then look at what the group committed.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let check = |committed: &HashMap<i32, i64>| {
        for (p, min) in &held_min {
            if let Some(c) = committed.get(p) {
                assert!(
                    c <= min,
                    "partition {p}: committed {c} passes the unacknowledged batch starting at {min}"
                );
            }
        }
    };
    check(&b.committed(&group, &topic, 4));
    assert!(!held_min.is_empty());
    drop(held); // abandoned, never acknowledged
    drop(rx);
    let _ = tokio::task::spawn_blocking(move || handle.join()).await.expect("join");
    let after_stop = b.committed(&group, &topic, 4);
    check(&after_stop);
    assert!(after_stop.values().sum::<i64>() < N as i64, "stopped mid-stream");

    // Second run in the same group: together with what was acknowledged, everything arrives.
    let (handle, mut rx) = kafka::start(cfg, 4).expect("source restarts");
    let first_ids = acked.ids();
    let all: BTreeSet<String> = events.iter().map(|e| e.event_id.clone()).collect();
    let mut second = Received::default();
    collect_until(&mut rx, &mut second, Duration::from_secs(120), |r| {
        r.rows.len() + first_ids.len() >= N && first_ids.union(&r.ids()).count() == N
    })
    .await;
    let union: BTreeSet<String> = first_ids.union(&second.ids()).cloned().collect();
    assert_eq!(union, all, "no event missing after restart");
    tokio::task::spawn_blocking(move || handle.join())
        .await
        .expect("join")
        .expect("source ok");
    assert_eq!(b.committed(&group, &topic, 4).values().sum::<i64>(), N as i64);
}
