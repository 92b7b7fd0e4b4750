//! JSON → RecordBatch decode throughput (rows/s and bytes/s) at several batch sizes, against a
//! baseline that only parses the JSON (serde_json into `IgnoredAny`) in the same run, and the
//! validation alone (no Arrow append). The batch sizes bracket the Kafka source's default
//! `max_batch_rows`.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use serde::de::IgnoredAny;
use vigil_connectors::kafka::config::DEFAULT_MAX_BATCH_ROWS;
use vigil_engine::{DecodeLimits, Event, EventBatchBuilder, EventKind, SourceMeta, decode};

/// Realistic messages: every kind, optional fields in turn, both `ts` forms.
fn messages(n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let kind = EventKind::ALL[i % EventKind::COUNT];
            let mut e = Event::new(
                format!("evt-{i:012}"),
                format!("acct-{:06}", (i * 7919) % 100_000),
                1_780_000_000_000 + i as i64,
                kind,
            );
            match kind {
                EventKind::Purchase | EventKind::Renewal => e.amount = Some((i % 997) as f64 + 0.99),
                EventKind::Complaint => e.cost = Some(12.5),
                EventKind::Survey => e.score = Some((i % 11) as f64),
                _ => {}
            }
            e.user_id = Some(format!("user-{}", i % 5000));
            e.category = Some(["web", "api", "billing", "mobile"][i % 4].to_string());
            if i.is_multiple_of(5) {
                e.attrs = Some(r#"{"plan":"pro","seats":12}"#.into());
            }
            let mut json = e.to_json();
            if i % 2 == 1 {
                json = json.replace(
                    &format!("\"ts\":{}", e.ts_ms),
                    "\"ts\":\"2026-05-28T20:26:40.123+02:00\"",
                );
            }
            json.into_bytes()
        })
        .collect()
}

/// Batch sizes measured; `DEFAULT_MAX_BATCH_ROWS` of the Kafka source is among them.
const BATCH_ROWS: [usize; 5] = [256, 1_024, 4_096, 8_192, 32_768];

fn bench(c: &mut Criterion) {
    let msgs = messages(65_536);
    let bytes: usize = msgs.iter().map(Vec::len).sum();
    let limits = DecodeLimits::default();
    let now = 1_800_000_000_000;
    eprintln!(
        "decode bench: {} messages, {} bytes, {:.1} B/message; source default max_batch_rows = {}",
        msgs.len(),
        bytes,
        bytes as f64 / msgs.len() as f64,
        DEFAULT_MAX_BATCH_ROWS
    );
    let mut g = c.benchmark_group("decode");
    // One iteration handles every message once: criterion reports rows/s and bytes/s.
    g.throughput(Throughput::ElementsAndBytes {
        elements: msgs.len() as u64,
        bytes: bytes as u64,
    });
    // Baseline: a JSON parse of each message that builds nothing.
    g.bench_function("baseline_serde_ignored_any", |b| {
        b.iter(|| {
            for m in &msgs {
                let v: IgnoredAny = serde_json::from_slice(black_box(m)).expect("json");
                black_box(v);
            }
        })
    });
    // Validation only: the source's `decode` (contract v1 checks) without appending to Arrow.
    g.bench_function("validate_only", |b| {
        b.iter(|| {
            for m in &msgs {
                let e = decode(black_box(m), &limits, now).expect("valid");
                black_box(&e);
            }
        })
    });
    // What the Kafka source does per message: decode, append with the Kafka metadata, and emit
    // a RecordBatch every `rows` rows.
    for batch_rows in BATCH_ROWS {
        g.bench_with_input(
            BenchmarkId::new("to_record_batches", batch_rows),
            &batch_rows,
            |b, &rows| {
                b.iter(|| {
                    let mut builder = EventBatchBuilder::with_capacity(rows);
                    let mut out = 0;
                    for (i, m) in msgs.iter().enumerate() {
                        let meta = SourceMeta {
                            topic: Some("interactions"),
                            partition: Some((i % 4) as i32),
                            offset: Some(i as i64),
                            timestamp_ms: Some(now),
                        };
                        builder.decode_append(black_box(m), &meta, &limits, now).expect("valid");
                        if builder.len() == rows {
                            out += black_box(builder.finish()).num_rows();
                        }
                    }
                    if !builder.is_empty() {
                        out += black_box(builder.finish()).num_rows();
                    }
                    assert_eq!(out, msgs.len());
                    out
                })
            },
        );
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
