//! Topics written by producers with gzip, snappy, lz4 and zstd compression are read.

use std::collections::BTreeMap;
use std::time::Duration;

use vigil_connectors::kafka;
use vigil_testkit::{broker, unique_name};

use crate::common::{Received, collect_until, config, event, message};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_every_compression_codec() {
    const PER: usize = 2_000;
    let b = broker();
    let group = unique_name("group");
    let codecs = ["gzip", "snappy", "lz4", "zstd"];
    let topics: Vec<String> = codecs.iter().map(|c| unique_name(&format!("codec_{c}"))).collect();
    for (codec, topic) in codecs.iter().zip(&topics) {
        b.create_topic(topic, 2);
        b.produce(
            topic,
            codec,
            (0..PER).map(|i| {
                let e = event(i, 100);
                (Some(e.account_id.clone().into_bytes()), message(i, &e))
            }),
        );
    }
    let topic_refs: Vec<&str> = topics.iter().map(String::as_str).collect();
    let (handle, mut rx) =
        kafka::start(config(&b.bootstrap, &topic_refs, &group, &unique_name("dlq")), 8).expect("starts");
    let mut got = Received::default();
    collect_until(&mut rx, &mut got, Duration::from_secs(90), |r| {
        r.rows.len() >= PER * codecs.len()
    })
    .await;
    tokio::task::spawn_blocking(move || handle.join())
        .await
        .expect("join")
        .expect("ok");
    let mut per_topic: BTreeMap<String, usize> = BTreeMap::new();
    for (_, meta) in &got.rows {
        *per_topic.entry(meta.topic.clone().expect("topic")).or_default() += 1;
    }
    for topic in &topics {
        assert_eq!(per_topic.get(topic), Some(&PER), "{topic}");
    }
    let expected: Vec<_> = (0..PER).map(|i| event(i, 100)).collect();
    for (e, _) in &got.rows {
        let i: usize = e.event_id[3..].parse().expect("id");
        assert_eq!(e, &expected[i]);
    }
}
