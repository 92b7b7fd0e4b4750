//! Helpers shared by the Kafka tests: a deterministic event generator and batch collection.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use vigil_connectors::kafka::{KafkaSourceConfig, SourceBatch};
use vigil_engine::{Event, RowMeta, events_from_batch};

/// Event `i` of a generated stream over `accounts` accounts, one second apart: every kind and
/// optional field in turn ([`vigil::sample::contract_event`]).
pub fn event(i: usize, accounts: usize) -> Event {
    vigil::sample::contract_event(i, accounts, 1_780_000_000_000 + (i as i64) * 1_000)
}

/// The message of an event: JSON, with `ts` as RFC 3339 (with an offset) for odd `i`.
pub fn message(i: usize, e: &Event) -> Vec<u8> {
    let mut v: serde_json::Value = serde_json::from_str(&e.to_json()).expect("event json");
    if i % 2 == 1 {
        let dt = chrono_like_rfc3339(e.ts_ms);
        v["ts"] = serde_json::Value::String(dt);
    }
    v.to_string().into_bytes()
}

/// Epoch milliseconds as RFC 3339 at +01:00, written by hand so the test does not reuse the
/// decoder's parser to make its input.
fn chrono_like_rfc3339(ts_ms: i64) -> String {
    let secs = ts_ms.div_euclid(1000) + 3600;
    let ms = ts_ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    // Civil-from-days (H. Hinnant).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}+01:00",
        sod / 3600,
        (sod / 60) % 60,
        sod % 60
    )
}

/// A source config for tests: small linger so tests run quickly.
pub fn config(bootstrap: &str, topics: &[&str], group: &str, dlq: &str) -> KafkaSourceConfig {
    let mut c = KafkaSourceConfig::new(bootstrap);
    c.topics = topics.iter().map(|t| t.to_string()).collect();
    c.group_id = group.to_string();
    c.dead_letter_topic = dlq.to_string();
    c.max_linger_ms = 20;
    c.commit_interval_ms = 200;
    c
}

/// Rows received, by event id.
#[derive(Debug, Default)]
pub struct Received {
    pub rows: Vec<(Event, RowMeta)>,
    pub batches: usize,
}

impl Received {
    pub fn ids(&self) -> BTreeSet<String> {
        self.rows.iter().map(|(e, _)| e.event_id.clone()).collect()
    }

    pub fn partitions(&self) -> BTreeSet<i32> {
        self.rows.iter().filter_map(|(_, m)| m.partition).collect()
    }

    pub fn add(&mut self, b: &SourceBatch) {
        if b.batch.num_rows() == 0 {
            // Only a span whose every message was dead-lettered comes without rows.
            let span = b.span.as_ref().expect("Kafka batches carry their span");
            assert_eq!(
                span.messages, span.dead_lettered,
                "an empty batch is an all-dead-lettered span"
            );
            return;
        }
        self.rows.extend(events_from_batch(&b.batch).expect("event schema"));
        self.batches += 1;
    }
}

/// Receives and acknowledges batches until `done` says so or `timeout` passes.
pub async fn collect_until(
    rx: &mut mpsc::Receiver<SourceBatch>,
    received: &mut Received,
    timeout: Duration,
    done: impl Fn(&Received) -> bool,
) {
    let deadline = Instant::now() + timeout;
    while !done(received) {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "timed out: got {} rows in {} batches",
            received.rows.len(),
            received.batches
        );
        match tokio::time::timeout(left.min(Duration::from_secs(1)), rx.recv()).await {
            Ok(Some(b)) => {
                received.add(&b);
                b.ack.ack();
            }
            Ok(None) => panic!("source ended early"),
            Err(_) => {}
        }
    }
}

/// Produced events by id.
pub fn by_id(events: &[Event]) -> HashMap<String, Event> {
    events.iter().map(|e| (e.event_id.clone(), e.clone())).collect()
}
