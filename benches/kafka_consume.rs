//! Consume-to-batches against a real Apache Kafka broker, compared in the same run with a bare
//! rdkafka consume loop that does nothing per message. Both read the same topic (the same
//! messages) from the start, each iteration with a fresh consumer group and the same librdkafka
//! consumer configuration (`KafkaSourceConfig::consumer_config`). An iteration's time runs from
//! creating the consumer (so it includes joining the group) to holding every message: for the
//! bare loop, the last `poll` returning a message; for vigil's source, the last `RecordBatch`
//! received (and acknowledged) downstream.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use rdkafka::consumer::{BaseConsumer, Consumer};
use vigil_connectors::SourceMetrics;
use vigil_connectors::kafka::config::{DEFAULT_MAX_BATCH_ROWS, DEFAULT_MAX_LINGER_MS};
use vigil_connectors::kafka::{self, KafkaSourceConfig};
use vigil_engine::{Event, EventKind};
use vigil_testkit::{KafkaBroker, broker, unique_name};

/// About 500 k messages, rounded down to whole default batches so that the source's last batch
/// is emitted because it is full, not after waiting `max_linger_ms` (which would bill the linger
/// to vigil's time).
const N: usize = 500_000 / DEFAULT_MAX_BATCH_ROWS * DEFAULT_MAX_BATCH_ROWS;
const PARTITIONS: i32 = 4;
/// The channel capacity `vigil run` uses.
const CHANNEL: usize = 16;

/// Per-iteration details criterion does not keep: total time, time to the first message or
/// batch, and batches emitted.
#[derive(Default)]
struct Details(Vec<(Duration, Duration, u64)>);

impl Details {
    fn report(&self, name: &str) {
        let mut v = self.0.clone();
        if v.is_empty() {
            return;
        }
        v.sort_by_key(|d| d.0);
        let (total, first, batches) = v[v.len() / 2];
        let first_max = v.iter().map(|d| d.1).max().unwrap_or_default();
        eprintln!(
            "{name}: {} iterations; median {:.3} s = {:.0} msgs/s; its time to first message/batch \
             {:.3} s (max over iterations {:.3} s); batches {batches} (mean {:.0} rows)",
            v.len(),
            total.as_secs_f64(),
            N as f64 / total.as_secs_f64(),
            first.as_secs_f64(),
            first_max.as_secs_f64(),
            if batches > 0 { N as f64 / batches as f64 } else { 0.0 },
        );
    }
}

fn source_config(b: &KafkaBroker, topic: &str, group: &str, max_batch_rows: usize) -> KafkaSourceConfig {
    let mut cfg = KafkaSourceConfig::new(&b.bootstrap);
    cfg.topics = vec![topic.to_string()];
    cfg.group_id = unique_name(group);
    cfg.dead_letter_topic = format!("{topic}.dlq");
    cfg.max_batch_rows = max_batch_rows;
    cfg
}

/// The bare loop: subscribe, poll until `N` messages were returned, touch nothing.
fn bare_once(b: &KafkaBroker, topic: &str, details: &mut Details) -> Duration {
    let cfg = source_config(b, topic, "bare", DEFAULT_MAX_BATCH_ROWS);
    let start = Instant::now();
    let consumer: BaseConsumer = cfg.consumer_config().create().expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let first = loop {
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            black_box(m.expect("message"));
            break start.elapsed();
        }
    };
    let mut n = 1;
    while n < N {
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            black_box(m.expect("message"));
            n += 1;
        }
    }
    let elapsed = start.elapsed();
    details.0.push((elapsed, first, 0));
    drop(consumer);
    elapsed
}

/// Vigil's source with default settings but `max_batch_rows`: until `N` rows arrived as batches.
fn vigil_once(
    rt: &tokio::runtime::Runtime,
    b: &KafkaBroker,
    topic: &str,
    max_batch_rows: usize,
    details: &mut Details,
) -> Duration {
    let cfg = source_config(b, topic, "vigil", max_batch_rows);
    let start = Instant::now();
    let (handle, mut rx) = kafka::start(cfg, CHANNEL).expect("source");
    let (n, first) = rt.block_on(async {
        let mut n = 0;
        let mut first = None;
        while n < N {
            let batch = rx.recv().await.expect("batch");
            first.get_or_insert_with(|| start.elapsed());
            n += batch.batch.num_rows();
            batch.ack.ack();
        }
        (n, first.unwrap_or_default())
    });
    let elapsed = start.elapsed();
    assert_eq!(n, N, "rows");
    let m = handle.metrics();
    assert_eq!(
        SourceMetrics::get(&m.valid),
        N as u64,
        "every message valid, none read twice"
    );
    details.0.push((elapsed, first, SourceMetrics::get(&m.batches)));
    drop(rx);
    let _ = handle.join();
    elapsed
}

fn bench(c: &mut Criterion) {
    let b = broker();
    let topic = unique_name("bench_interactions");
    b.create_topic(&topic, PARTITIONS);
    let msgs: Vec<(Option<Vec<u8>>, Vec<u8>)> = (0..N)
        .map(|i| {
            let kind = EventKind::ALL[i % EventKind::COUNT];
            let mut e = Event::new(
                format!("evt-{i:012}"),
                format!("acct-{:06}", i % 50_000),
                1_780_000_000_000 + i as i64,
                kind,
            );
            e.category = Some("web".into());
            if kind == EventKind::Purchase {
                e.amount = Some(42.0);
            }
            (Some(e.account_id.clone().into_bytes()), e.to_json().into_bytes())
        })
        .collect();
    let bytes: u64 = msgs.iter().map(|(_, v)| v.len() as u64).sum();
    let produced = b.produce(&topic, "lz4", msgs);
    assert_eq!(produced, N);
    eprintln!(
        "kafka_consume bench: topic {topic}, {PARTITIONS} partitions, lz4, {N} messages, {bytes} payload \
         bytes ({:.1} B/message); source defaults max_batch_rows = {DEFAULT_MAX_BATCH_ROWS}, \
         max_linger_ms = {DEFAULT_MAX_LINGER_MS}",
        bytes as f64 / N as f64
    );
    let rt = tokio::runtime::Runtime::new().expect("runtime");

    let mut g = c.benchmark_group("kafka_consume");
    // Each iteration takes seconds: one iteration per sample rather than criterion's ramp.
    g.sampling_mode(SamplingMode::Flat);
    // Payload bytes (keys excluded): criterion reports messages/s and bytes/s.
    g.throughput(Throughput::ElementsAndBytes {
        elements: N as u64,
        bytes,
    });
    let mut bare = Details::default();
    g.bench_function("bare_rdkafka_loop", |bch| {
        bch.iter_custom(|iters| (0..iters).map(|_| bare_once(b, &topic, &mut bare)).sum())
    });
    let mut vigil = Details::default();
    g.bench_function("vigil_source_to_batches", |bch| {
        bch.iter_custom(|iters| {
            (0..iters)
                .map(|_| vigil_once(&rt, b, &topic, DEFAULT_MAX_BATCH_ROWS, &mut vigil))
                .sum()
        })
    });
    let mut vigil_1k = Details::default();
    g.bench_function("vigil_source_to_batches_1024_rows", |bch| {
        bch.iter_custom(|iters| {
            (0..iters)
                .map(|_| vigil_once(&rt, b, &topic, 1_024, &mut vigil_1k))
                .sum()
        })
    });
    g.finish();
    bare.report("bare_rdkafka_loop (incl. warm-up)");
    vigil.report("vigil_source_to_batches (incl. warm-up)");
    vigil_1k.report("vigil_source_to_batches_1024_rows (incl. warm-up)");
}

criterion_group! {
    name = benches;
    // Overridable on the command line (`--measurement-time`, `--warm-up-time`, `--sample-size`).
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(20));
    targets = bench
}
criterion_main!(benches);
