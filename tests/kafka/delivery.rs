//! 100,000 valid events over 4 partitions, keyed by account: all delivered, values exact,
//! offsets committed after acknowledgement. Lag counts from the consumer's position, not from
//! the committed offsets.

use std::collections::HashMap;
use std::time::Duration;

use vigil_connectors::kafka;
use vigil_testkit::{broker, unique_name};

use crate::common::{Received, by_id, collect_until, config, event, message};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivers_100k_events_exactly() {
    const N: usize = 100_000;
    let b = broker();
    let topic = unique_name("interactions");
    let group = unique_name("group");
    b.create_topic(&topic, 4);
    let events: Vec<_> = (0..N).map(|i| event(i, 2_000)).collect();
    let msgs: Vec<_> = events
        .iter()
        .enumerate()
        .map(|(i, e)| (Some(e.account_id.clone().into_bytes()), message(i, e)))
        .collect();
    b.produce(&topic, "none", msgs);

    let (handle, mut rx) =
        kafka::start(config(&b.bootstrap, &[&topic], &group, &format!("{topic}.dlq")), 8).expect("source starts");
    let mut got = Received::default();
    collect_until(&mut rx, &mut got, Duration::from_secs(180), |r| r.rows.len() >= N).await;
    let metrics = handle.metrics().clone();
    tokio::task::spawn_blocking(move || handle.join())
        .await
        .expect("join")
        .expect("source ok");

    assert_eq!(got.rows.len(), N, "no duplicates in an undisturbed run");
    let expected = by_id(&events);
    let mut partition_of_account: HashMap<String, i32> = HashMap::new();
    for (e, meta) in &got.rows {
        let want = expected.get(&e.event_id).expect("only produced events arrive");
        assert_eq!(e, want, "field values survive Kafka and decoding");
        assert_eq!(meta.topic.as_deref(), Some(topic.as_str()));
        assert!(meta.timestamp_ms.is_some());
        let p = meta.partition.expect("partition column");
        let first = *partition_of_account.entry(e.account_id.clone()).or_insert(p);
        assert_eq!(first, p, "one account's events share a partition (key = account_id)");
    }
    assert_eq!(got.ids().len(), N);
    assert_eq!(got.partitions().len(), 4);
    assert!(got.batches > 1, "batched by max rows");
    assert_eq!(vigil_connectors::SourceMetrics::get(&metrics.valid), N as u64);
    assert_eq!(metrics.invalid_total(), 0);
    assert_eq!(vigil_connectors::SourceMetrics::get(&metrics.key_mismatch), 0);

    // Every acknowledged offset was committed on stop: committed offsets add up to N.
    let committed = b.committed(&group, &topic, 4);
    assert_eq!(committed.values().sum::<i64>(), N as i64, "committed {committed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lag_is_zero_once_everything_is_read_even_before_a_commit() {
    // Batches held unacknowledged: nothing is committed, as in `vigil run` between two
    // checkpoints. Once every message is read, the lag of every partition turns 0 within a
    // statistics interval (5 s); counted from the committed offsets it would stay at 2,000.
    const N: usize = 2_000;
    let b = broker();
    let topic = unique_name("lag");
    let group = unique_name("group");
    b.create_topic(&topic, 2);
    let msgs: Vec<_> = (0..N)
        .map(|i| {
            let e = event(i, 50);
            (Some(e.account_id.clone().into_bytes()), message(i, &e))
        })
        .collect();
    b.produce(&topic, "none", msgs);
    let (handle, mut rx) =
        kafka::start(config(&b.bootstrap, &[&topic], &group, &format!("{topic}.dlq")), 64).expect("source starts");
    let mut held = Vec::new();
    let mut rows = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while rows < N {
        assert!(std::time::Instant::now() < deadline, "read {rows} of {N}");
        if let Ok(Some(batch)) = tokio::time::timeout(Duration::from_secs(1), rx.recv()).await {
            rows += batch.batch.num_rows();
            held.push(batch);
        }
    }
    let metrics = handle.metrics().clone();
    let lag_zero = || {
        let lag = metrics.lag();
        lag.len() == 2 && lag.values().all(|l| *l == 0)
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while !lag_zero() {
        assert!(
            std::time::Instant::now() < deadline,
            "lag after reading everything: {:?}",
            metrics.lag()
        );
        // Statistics come every 5 s; drain anything else the source sends meanwhile.
        if let Ok(Some(batch)) = tokio::time::timeout(Duration::from_millis(200), rx.recv()).await {
            held.push(batch);
        }
    }
    assert!(
        b.committed(&group, &topic, 2).values().all(|o| *o <= 0),
        "nothing committed yet"
    );
    for batch in held {
        batch.ack.ack();
    }
    tokio::task::spawn_blocking(move || handle.join())
        .await
        .expect("join")
        .expect("source ok");
}
