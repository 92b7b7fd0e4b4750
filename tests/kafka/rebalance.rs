//! Two consumers in one group split the partitions; one leaves; nothing is missed.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use vigil_connectors::kafka::{self, SourceBatch};
use vigil_testkit::{broker, unique_name};

use crate::common::{Received, config, event, message};

/// Drains a source in the background, acknowledging every batch, recording rows.
fn drain(mut rx: mpsc::Receiver<SourceBatch>, into: Arc<Mutex<Received>>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(b) = rx.recv().await {
            into.lock().expect("lock").add(&b);
            b.ack.ack();
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
}

async fn wait_for(what: &str, timeout: Duration, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_consumers_split_partitions_and_survive_one_leaving() {
    const WAVE: usize = 20_000;
    let b = broker();
    let topic = unique_name("split");
    let group = unique_name("group");
    b.create_topic(&topic, 4);
    let produce = |range: std::ops::Range<usize>| {
        b.produce(
            &topic,
            "none",
            range.map(|i| {
                let e = event(i, 1_000);
                (Some(e.account_id.clone().into_bytes()), message(i, &e))
            }),
        )
    };
    let mut cfg = config(&b.bootstrap, &[&topic], &group, &format!("{topic}.dlq"));
    cfg.max_batch_rows = 200;

    let a_rows = Arc::new(Mutex::new(Received::default()));
    let b_rows = Arc::new(Mutex::new(Received::default()));
    let (a, a_rx) = kafka::start(cfg.clone(), 2).expect("a starts");
    let a_task = drain(a_rx, a_rows.clone());
    produce(0..WAVE);
    wait_for("a to consume", Duration::from_secs(60), || {
        !a_rows.lock().expect("lock").rows.is_empty()
    })
    .await;

    let (bb, b_rx) = kafka::start(cfg.clone(), 2).expect("b starts");
    let b_task = drain(b_rx, b_rows.clone());
    // Wave 2 goes out once B holds an assignment, so that both members have data to read.
    let b_metrics = bb.metrics().clone();
    wait_for("b to join the group", Duration::from_secs(60), || {
        vigil_connectors::SourceMetrics::get(&b_metrics.rebalances) > 0
    })
    .await;
    produce(WAVE..2 * WAVE);
    wait_for("b to read", Duration::from_secs(60), || {
        !b_rows.lock().expect("lock").rows.is_empty()
    })
    .await;
    let total = || {
        a_rows
            .lock()
            .expect("lock")
            .ids()
            .union(&b_rows.lock().expect("lock").ids())
            .count()
    };
    wait_for("both waves", Duration::from_secs(120), || total() >= 2 * WAVE).await;

    // While both were members, B owned a strict subset of the partitions.
    let b_parts = b_rows.lock().expect("lock").partitions();
    assert!(!b_parts.is_empty() && b_parts.len() < 4, "b got {b_parts:?}");

    // A leaves; B must take over A's partitions for the third wave.
    tokio::task::spawn_blocking(move || a.join())
        .await
        .expect("join")
        .expect("a ok");
    a_task.await.expect("a drained");
    let b_before = b_rows.lock().expect("lock").rows.len();
    produce(2 * WAVE..3 * WAVE);
    wait_for("third wave", Duration::from_secs(120), || total() >= 3 * WAVE).await;
    let b_after: BTreeSet<i32> = b_rows.lock().expect("lock").rows[b_before..]
        .iter()
        .filter_map(|(_, m)| m.partition)
        .collect();
    assert_eq!(
        b_after,
        (0..4).collect::<BTreeSet<_>>(),
        "b owns every partition after a left"
    );

    tokio::task::spawn_blocking(move || bb.join())
        .await
        .expect("join")
        .expect("b ok");
    b_task.await.expect("b drained");
    let all: BTreeSet<String> = (0..3 * WAVE).map(|i| event(i, 1_000).event_id).collect();
    let union: BTreeSet<String> = a_rows
        .lock()
        .expect("lock")
        .ids()
        .union(&b_rows.lock().expect("lock").ids())
        .cloned()
        .collect();
    assert_eq!(union, all, "nothing missed");
}
