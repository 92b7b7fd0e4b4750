//! A mixed stream with at least one message for every invalid reason of contract v1,
//! interleaved with valid ones: invalid messages land, unchanged, in the dead-letter topic with
//! the right headers; valid ones are delivered; per-reason counters match. Messages too large
//! for the dead-letter topic land as envelopes, and the events behind them are scored.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rdkafka::Message;
use rdkafka::message::Headers;
use vigil_connectors::kafka::{self, dead_letter_headers as h};
use vigil_testkit::{broker, unique_name};

use crate::common::{Received, collect_until, config, event, message};

const LIMIT: usize = 4_096;

/// Every way a message can be invalid, with the reason code the contract requires.
fn invalid_cases(now_ms: i64) -> Vec<(Vec<u8>, &'static str)> {
    let ok = |extra: &str| {
        format!(r#"{{"event_id":"x","account_id":"bad-acct","ts":1780000000000,"kind":"activity"{extra}}}"#)
            .into_bytes()
    };
    let without = |field: &str| {
        let mut v: serde_json::Value = serde_json::from_slice(&ok("")).expect("json");
        v.as_object_mut().expect("object").remove(field);
        v.to_string().into_bytes()
    };
    let with = |field: &str, raw: &str| {
        let mut v: serde_json::Value = serde_json::from_slice(&ok("")).expect("json");
        v.as_object_mut().expect("object").remove(field);
        let body = v.to_string();
        format!("{},\"{field}\":{raw}}}", &body[..body.len() - 1]).into_bytes()
    };
    let mut bad_utf8 = ok(r#","category":"caf"#);
    bad_utf8.truncate(bad_utf8.len() - 1);
    bad_utf8.extend_from_slice(b"\xff\xfe\"}");
    vec![
        (b"{\"event_id\": ".to_vec(), "not_json"),
        (b"hello".to_vec(), "not_json"),
        (Vec::new(), "not_json"),
        (b"[1,2,3]".to_vec(), "not_object"),
        (b"\"just a string\"".to_vec(), "not_object"),
        (bad_utf8, "not_utf8"),
        (
            ok(&format!(r#","attrs":{{"pad":"{}"}}"#, "p".repeat(LIMIT))),
            "too_large",
        ),
        (without("event_id"), "missing_field"),
        (without("account_id"), "missing_field"),
        (without("ts"), "missing_field"),
        (without("kind"), "missing_field"),
        (with("event_id", "null"), "missing_field"),
        (with("event_id", "17"), "wrong_type"),
        (with("account_id", "true"), "wrong_type"),
        (with("ts", "false"), "wrong_type"),
        (with("kind", "3"), "wrong_type"),
        (ok(r#","user_id":5"#), "wrong_type"),
        (ok(r#","amount":"12.5""#), "wrong_type"),
        (ok(r#","cost":[1]"#), "wrong_type"),
        (ok(r#","score":"9""#), "wrong_type"),
        (ok(r#","category":{"a":1}"#), "wrong_type"),
        (ok(r#","attrs":"text""#), "wrong_type"),
        (with("event_id", r#""""#), "bad_length"),
        (with("account_id", &format!("\"{}\"", "a".repeat(129))), "bad_length"),
        (ok(r#","amount":-1"#), "negative_money"),
        (ok(r#","cost":-0.5"#), "negative_money"),
        (ok(r#","amount":1e400"#), "non_finite_money"),
        (ok(r#","cost":-1e999"#), "non_finite_money"),
        (ok(r#","score":11"#), "score_out_of_range"),
        (ok(r#","score":-0.5"#), "score_out_of_range"),
        (with("ts", r#""yesterday""#), "unparseable_ts"),
        (with("ts", r#""2026-13-01T00:00:00Z""#), "unparseable_ts"),
        (with("ts", r#""2026-11-01 12:00:00""#), "unparseable_ts"),
        (with("ts", "1780000000000.5"), "unparseable_ts"),
        (with("ts", &(now_ms + 2 * 86_400_000).to_string()), "future_ts"),
        (with("kind", r#""teleport""#), "unknown_kind"),
        (with("ts", r#""0001-01-01T00:00:00Z""#), "ts_out_of_range"),
        (with("ts", "-86400000"), "ts_out_of_range"),
        (ok(r#","kind":"purchase""#), "duplicate_key"),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_messages_go_to_the_dead_letter_topic_unchanged() {
    let b = broker();
    let topic = unique_name("mixed");
    let dlq = format!("{topic}.dlq");
    let group = unique_name("group");
    b.create_topic(&topic, 2);
    b.create_topic(&dlq, 1);
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_millis() as i64;
    let cases = invalid_cases(now_ms);
    let reasons: std::collections::BTreeSet<&str> = cases.iter().map(|c| c.1).collect();
    assert_eq!(
        reasons.len(),
        vigil_engine::InvalidReason::CODES.len(),
        "a case for every reason"
    );

    // Interleave: 3 valid events, then one invalid, repeated.
    let mut msgs = Vec::new();
    let mut valid_ids = Vec::new();
    let mut expected_invalid: HashMap<Vec<u8>, (&str, Vec<u8>)> = HashMap::new();
    let mut i = 0;
    for (n, (bytes, reason)) in cases.iter().enumerate() {
        for _ in 0..3 {
            let e = event(i, 50);
            msgs.push((Some(e.account_id.clone().into_bytes()), message(i, &e)));
            valid_ids.push(e.event_id.clone());
            i += 1;
        }
        let key = format!("bad-{n:03}").into_bytes();
        expected_invalid.insert(key.clone(), (*reason, bytes.clone()));
        msgs.push((Some(key), bytes.clone()));
    }
    b.produce(&topic, "none", msgs);

    let mut cfg = config(&b.bootstrap, &[&topic], &group, &dlq);
    cfg.max_message_bytes = LIMIT;
    cfg.max_batch_rows = 16;
    let metrics = read_valid(cfg, valid_ids).await;

    let dead = b.read_all(&dlq, cases.len(), Duration::from_secs(30));
    assert_eq!(
        dead.len(),
        cases.len(),
        "every invalid message is dead-lettered exactly once"
    );
    let originals: HashMap<(i32, i64), Vec<u8>> = b
        .read_all(&topic, 4 * cases.len(), Duration::from_secs(30))
        .into_iter()
        .map(|om| ((om.partition(), om.offset()), om.key().unwrap_or_default().to_vec()))
        .collect();
    for m in &dead {
        let key = m.key().expect("key kept").to_vec();
        let (reason, bytes) = expected_invalid.get(&key).expect("only invalid messages");
        assert_eq!(m.payload().unwrap_or_default(), bytes.as_slice(), "original bytes");
        let headers = header_map(m);
        assert_eq!(
            headers[h::REASON],
            *reason,
            "reason for {}",
            String::from_utf8_lossy(&key)
        );
        assert_eq!(headers[h::SOURCE_TOPIC], topic);
        assert!(!headers[h::DETAIL].is_empty());
        let p: i32 = headers[h::SOURCE_PARTITION].parse().expect("partition header");
        let o: i64 = headers[h::SOURCE_OFFSET].parse().expect("offset header");
        // The headers point at the original message.
        assert_eq!(originals.get(&(p, o)), Some(&key), "headers name the original message");
    }

    let mut want: BTreeMap<&str, u64> = BTreeMap::new();
    for (_, r) in &cases {
        *want.entry(r).or_default() += 1;
    }
    for code in vigil_engine::InvalidReason::CODES {
        assert_eq!(
            metrics.invalid_count(code),
            want.get(code).copied().unwrap_or(0),
            "counter {code}"
        );
    }
    assert_eq!(
        vigil_connectors::SourceMetrics::get(&metrics.dead_lettered),
        cases.len() as u64
    );
}

/// Runs a source with `cfg` until the events `valid_ids` are delivered, stops it (which must end
/// without an error: no message stopped it) and checks that exactly those were delivered.
async fn read_valid(
    cfg: vigil_connectors::kafka::KafkaSourceConfig,
    mut valid_ids: Vec<String>,
) -> std::sync::Arc<vigil_connectors::SourceMetrics> {
    let (handle, mut rx) = kafka::start(cfg, 8).expect("source starts");
    let mut got = Received::default();
    collect_until(&mut rx, &mut got, Duration::from_secs(60), |r| {
        r.rows.len() >= valid_ids.len()
    })
    .await;
    let metrics = handle.metrics().clone();
    tokio::task::spawn_blocking(move || handle.join())
        .await
        .expect("join")
        .expect("the source ran to the end without an error");
    let mut got_ids: Vec<_> = got.ids().into_iter().collect();
    got_ids.sort();
    valid_ids.sort();
    assert_eq!(got_ids, valid_ids, "every valid message is delivered");
    metrics
}

/// The headers of a dead letter as text.
fn header_map(m: &rdkafka::message::OwnedMessage) -> BTreeMap<String, String> {
    m.headers()
        .expect("headers")
        .iter()
        .map(|hd| {
            (
                hd.key.to_string(),
                String::from_utf8_lossy(hd.value.unwrap_or_default()).into_owned(),
            )
        })
        .collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Sends `big` invalid messages (key, bytes, reason), each followed by 3 valid events, through a
/// source whose dead-letter topic is created with `dlq_configs`; checks that every invalid one
/// lands in the dead-letter topic, whole when `whole(bytes)` or else as an envelope (the first
/// bytes, the original length and SHA-256, the provenance headers), that every valid event is
/// delivered with no restart, and that the envelopes are counted.
async fn large_dead_letters(
    big: Vec<(Vec<u8>, Vec<u8>, &'static str)>,
    dlq_configs: &[(&str, &str)],
    whole: impl Fn(&[u8]) -> bool,
) {
    let b = broker();
    let topic = unique_name("large");
    let dlq = format!("{topic}.dlq");
    let group = unique_name("group");
    b.create_topic_with(&topic, 1, &[("max.message.bytes", "4194304")]);
    b.create_topic_with(&dlq, 1, dlq_configs);
    let mut msgs = Vec::new();
    let mut valid_ids = Vec::new();
    let mut i = 0;
    for (key, bytes, _) in &big {
        msgs.push((Some(key.clone()), bytes.clone()));
        for _ in 0..3 {
            let e = event(i, 20);
            msgs.push((Some(e.account_id.clone().into_bytes()), message(i, &e)));
            valid_ids.push(e.event_id.clone());
            i += 1;
        }
    }
    b.produce(&topic, "none", msgs);

    let metrics = read_valid(config(&b.bootstrap, &[&topic], &group, &dlq), valid_ids).await;

    let dead = b.read_all(&dlq, big.len(), Duration::from_secs(30));
    assert_eq!(
        dead.len(),
        big.len(),
        "every large invalid message is dead-lettered once"
    );
    let mut envelopes = 0;
    for m in &dead {
        let key = m.key().expect("key kept").to_vec();
        let (_, bytes, reason) = big.iter().find(|(k, _, _)| *k == key).expect("one of ours");
        let headers = header_map(m);
        assert_eq!(headers[h::REASON], *reason);
        assert_eq!(headers[h::SOURCE_TOPIC], topic);
        assert!(headers.contains_key(h::SOURCE_OFFSET) && headers.contains_key(h::SOURCE_PARTITION));
        let payload = m.payload().unwrap_or_default();
        if whole(bytes) {
            assert_eq!(payload, bytes.as_slice(), "whole when it fits");
            assert!(!headers.contains_key(h::TRUNCATED_FROM));
        } else {
            envelopes += 1;
            assert_eq!(headers[h::TRUNCATED_FROM], bytes.len().to_string());
            assert_eq!(headers[h::SHA256], sha256_hex(bytes));
            assert!(payload.len() < bytes.len(), "cut: {} bytes", payload.len());
            assert_eq!(payload, &bytes[..payload.len()], "the first bytes of the original");
        }
    }
    assert!(
        envelopes > 0,
        "the test sends at least one message too large to go whole"
    );
    assert_eq!(
        vigil_connectors::SourceMetrics::get(&metrics.dead_letters_truncated),
        envelopes,
        "envelopes counted"
    );
    assert_eq!(
        vigil_connectors::SourceMetrics::get(&metrics.dead_lettered),
        big.len() as u64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_too_large_for_the_dead_letter_topic_go_as_envelopes() {
    // A 2 MiB message (over the source's 1 MiB limit: `too_large`), an invalid message of
    // 1,000,500 bytes (under the source's limit, over the dead-letter producer's 1,000,000) and
    // a small invalid one, to a dead-letter topic left at Kafka's default limit.
    let big = vec![
        (b"big-2mib".to_vec(), vec![b'{'; 2 << 20], "too_large"),
        (b"big-1000500".to_vec(), vec![b'x'; 1_000_500], "not_json"),
        (b"small".to_vec(), b"not json".to_vec(), "not_json"),
    ];
    large_dead_letters(big, &[], |b| b.len() < 1_000_000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_topic_with_a_small_limit_gets_smaller_envelopes() {
    // The dead-letter topic takes at most 20,000 bytes, far less than the producer: the broker
    // refuses the first attempts and the envelope is cut until it fits.
    let big = vec![
        (b"mid-50k".to_vec(), vec![b'y'; 50_000], "not_json"),
        (b"big-1000500".to_vec(), vec![b'x'; 1_000_500], "not_json"),
        (b"small".to_vec(), b"not json".to_vec(), "not_json"),
    ];
    large_dead_letters(big, &[("max.message.bytes", "20000")], |b| b.len() < 10_000).await;
}

/// A dead-letter topic that cannot be written at all (it does not exist, and the broker creates
/// no topics): `vigil run` holds consumption without committing past the invalid messages,
/// `/healthz` says why, and once the topic exists the dead letters are written once each and
/// every valid event behind them is scored, with no restart.
#[test]
fn an_unwritable_dead_letter_topic_holds_consumption_until_it_can_be_written() {
    use crate::vigil_proc::{
        DumpLogOnPanic, RunSpec, bad_among, free_port, message, progress, terminate, wait_for_http, wait_for_messages,
    };
    const N: usize = 3_000;
    let b = broker();
    let topic = unique_name("held");
    b.create_topic(&topic, 1);
    // The stream opens with an invalid message (every 997th is).
    b.produce(&topic, "none", (0..N).map(|i| message(i, 50)));
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = RunSpec {
        bootstrap: b.bootstrap.clone(),
        topic: topic.clone(),
        group: unique_name("group"),
        data_dir: dir.path().join("data"),
        checkpoint_dir: dir.path().join("checkpoints"),
        instance: None,
    };
    let log = dir.path().join("held.log");
    let _dump = DumpLogOnPanic(log.clone());
    let port = free_port();
    let mut child = spec.start_logged_with_http(
        &log,
        port,
        30_000,
        &[
            ("VIGIL_SOURCE__DEAD_LETTER_TIMEOUT_MS", "1000"),
            ("VIGIL_SOURCE__DEAD_LETTER_ATTEMPTS", "1"),
        ],
    );
    let red = wait_for_http(port, "/healthz", "HTTP/1.1 503", Duration::from_secs(60));
    assert!(red.contains("consumption held"), "{red}");
    assert!(
        red.contains(&format!("{topic}.dlq")),
        "the reason names the topic: {red}"
    );
    // Held, not ended, and nothing read past the first (invalid) message was let through.
    assert!(child.try_wait().expect("try_wait").is_none(), "vigil run keeps running");
    assert_eq!(
        progress(&spec.checkpoint_dir).messages,
        0,
        "nothing passes the held dead letter"
    );
    assert!(
        b.committed(&spec.group, &topic, 1).values().all(|o| *o <= 0),
        "nothing committed"
    );

    b.create_topic(&format!("{topic}.dlq"), 1);
    let p = wait_for_messages(&spec.checkpoint_dir, N as u64, Duration::from_secs(120), &mut child);
    wait_for_http(port, "/healthz", "HTTP/1.1 200", Duration::from_secs(30));
    terminate(child);
    assert_eq!(p.dead_lettered, bad_among(N));
    assert_eq!(
        p.valid,
        N as u64 - bad_among(N),
        "every valid event behind the hold is scored"
    );
    // One more than expected: waits out the timeout, so a duplicate would show.
    let dead = b.read_all(
        &format!("{topic}.dlq"),
        bad_among(N) as usize + 1,
        Duration::from_secs(10),
    );
    let mut offsets: Vec<String> = dead.iter().map(|m| header_map(m)[h::SOURCE_OFFSET].clone()).collect();
    offsets.sort();
    assert_eq!(offsets, ["0", "1994", "2991", "997"], "each dead letter written once");
}
