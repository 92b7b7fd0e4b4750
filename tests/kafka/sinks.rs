//! The Kafka sinks against the real broker: alerts go through the outbox to the alerts topic,
//! score updates to the scores topic; every record is keyed by `account_id`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use rdkafka::Message;
use rdkafka::message::Headers;
use vigil_connectors::kafka::{KafkaScoresSink, KafkaSinkConfig};
use vigil_connectors::outbox::{HookAlert, HookDispatcher, Outbox, Sink};
use vigil_connectors::registry::SinkConfig;
use vigil_connectors::routing::HookConfig;
use vigil_engine::scoring::testing::events_to_batch;
use vigil_engine::scoring::{Alert, AlertKind, ScoringConfig, ScoringCore, Tier};
use vigil_engine::{Event, EventKind};
use vigil_testkit::{broker, payload_text, unique_name};

fn sink_config(topic: &str) -> KafkaSinkConfig {
    let mut c = KafkaSinkConfig::new(broker().bootstrap.clone(), topic);
    c.message_timeout_ms = 20_000;
    c.properties.insert("linger.ms".into(), "5".into());
    c
}

fn header(m: &rdkafka::message::OwnedMessage, name: &str) -> Option<String> {
    let h = m.headers()?;
    h.iter()
        .find(|h| h.key == name)
        .and_then(|h| h.value)
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_topic_receives_alerts_keyed_by_account() {
    let b = broker();
    let topic = unique_name("alerts");
    b.create_topic(&topic, 3);
    let dir = tempfile::tempdir().expect("tmp");
    let hook = HookConfig::new("alerts-topic", SinkConfig::Kafka(sink_config(&topic)));
    let sink = Sink::build(&hook.name, &hook.sink).expect("producer");
    let d = HookDispatcher::start_with(
        Outbox::open(dir.path()).expect("outbox"),
        vec![(hook, sink)],
        Duration::from_millis(50),
    )
    .expect("starts");
    let alerts: Vec<HookAlert> = (0..6)
        .map(|i| {
            let kind = [AlertKind::Quiet, AlertKind::ChurnRisk, AlertKind::ComplaintSpike][i % 3];
            let a = Alert::new(
                &format!("acct-{i}"),
                kind,
                1_780_000_000_000,
                1_779_000_000_000,
                0.8,
                0.7,
                "m".into(),
            );
            HookAlert::from_engine(&a, Tier::Key)
        })
        .collect();
    assert_eq!(d.submit(&alerts).expect("submit"), 6);
    let report = d.flush(Duration::from_secs(60)).await;
    assert_eq!((report.pending, report.failed), (0, 0));
    d.shutdown().await;

    let got = b.read_all(&topic, 6, Duration::from_secs(60));
    assert_eq!(got.len(), 6);
    let mut by_id = BTreeMap::new();
    for m in &got {
        let key = String::from_utf8(m.key().expect("keyed").to_vec()).expect("utf8 key");
        let body: serde_json::Value = serde_json::from_str(&payload_text(m)).expect("json body");
        assert_eq!(body["account_id"], key.as_str(), "key = account_id");
        let id = header(m, "vigil.alert.id").expect("id header");
        assert_eq!(body["id"], id.as_str());
        assert_eq!(header(m, "vigil.alert.kind").as_deref(), body["kind"].as_str());
        by_id.insert(id, key);
    }
    let expected: BTreeMap<String, String> = alerts.iter().map(|a| (a.id.clone(), a.account_id.clone())).collect();
    assert_eq!(by_id, expected, "every alert once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scores_topic_receives_score_updates_keyed_by_account() {
    let b = broker();
    let topic = unique_name("scores");
    b.create_topic(&topic, 2);
    let mut core = ScoringCore::new(ScoringConfig::default()).expect("core");
    let day = 86_400_000i64;
    let events: Vec<Event> = (0..30)
        .map(|i| {
            let kind = [EventKind::Activity, EventKind::Purchase, EventKind::Complaint][i % 3];
            let mut e = Event::new(
                format!("ev-{i}"),
                format!("acct-{}", i % 4),
                1_780_000_000_000 + i as i64 * day,
                kind,
            );
            if kind == EventKind::Purchase {
                e.amount = Some(100.0);
            }
            e
        })
        .collect();
    core.apply_batch(&events_to_batch(&events)).expect("applies");
    let scores: Vec<_> = (0..4)
        .map(|i| core.score(&format!("acct-{i}")).expect("scored"))
        .collect();

    let sink = KafkaScoresSink::new(&sink_config(&topic)).expect("producer");
    assert_eq!(sink.send_all(&scores).await.expect("delivered"), 4);
    sink.tombstone("acct-3").await.expect("tombstone");

    let got = b.read_all(&topic, 5, Duration::from_secs(60));
    assert_eq!(got.len(), 5);
    let keys: BTreeSet<String> = got
        .iter()
        .map(|m| String::from_utf8(m.key().expect("keyed").to_vec()).expect("utf8"))
        .collect();
    assert_eq!(
        keys,
        BTreeSet::from(["acct-0", "acct-1", "acct-2", "acct-3"].map(String::from))
    );
    let mut tombstones = 0;
    for m in &got {
        let key = String::from_utf8_lossy(m.key().expect("keyed")).into_owned();
        match m.payload() {
            None => {
                tombstones += 1;
                assert_eq!(key, "acct-3");
            }
            Some(p) => {
                let v: serde_json::Value = serde_json::from_slice(p).expect("json");
                assert_eq!(v["account_id"], key.as_str());
                let expected = scores.iter().find(|s| s.account_id == key).expect("sent");
                assert_eq!(v["score"].as_f64(), Some(expected.score));
                assert_eq!(header(m, "vigil.score.as_of_ms"), Some(expected.as_of_ms.to_string()));
            }
        }
    }
    assert_eq!(tombstones, 1);
}
