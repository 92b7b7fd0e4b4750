//! Configuration of the Kafka source: topics, group, batching and any librdkafka property.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::ClientConfig;
use serde::Deserialize;
use vigil_engine::DecodeLimits;

use crate::error::ConnectorError;

fn default_topics() -> Vec<String> {
    vec!["interactions".into()]
}
fn default_group() -> String {
    "vigil".into()
}
fn default_dlq() -> String {
    "interactions.dlq".into()
}
fn default_max_rows() -> usize {
    DEFAULT_MAX_BATCH_ROWS
}
fn default_linger_ms() -> u64 {
    DEFAULT_MAX_LINGER_MS
}
fn default_commit_ms() -> u64 {
    1_000
}
fn default_revoke_ms() -> u64 {
    10_000
}
fn default_dlq_attempts() -> u32 {
    5
}
fn default_dlq_timeout_ms() -> u64 {
    30_000
}
fn default_startup_timeout_ms() -> u64 {
    60_000
}
fn default_rebuild_after_ms() -> u64 {
    60_000
}
fn default_max_message_bytes() -> usize {
    DecodeLimits::default().max_message_bytes
}
fn default_skew_ms() -> i64 {
    DecodeLimits::default().max_future_skew_ms
}

/// A map of librdkafka properties whose values may be written as TOML strings, numbers or
/// booleans (`session.timeout.ms = 6000` and `= "6000"` mean the same).
pub fn scalar_map<'de, D: serde::Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Scalar {
        S(String),
        I(i64),
        F(f64),
        B(bool),
    }
    let raw = BTreeMap::<String, Scalar>::deserialize(d)?;
    Ok(raw
        .into_iter()
        .map(|(k, v)| {
            let v = match v {
                Scalar::S(s) => s,
                Scalar::I(i) => i.to_string(),
                Scalar::F(f) => f.to_string(),
                Scalar::B(b) => b.to_string(),
            };
            (k, v)
        })
        .collect())
}

/// Default rows per batch (chosen by the `decode` and `kafka_consume` benchmarks, see BENCHMARKS.md).
pub const DEFAULT_MAX_BATCH_ROWS: usize = 8_192;
/// Default longest wait before a partial batch is emitted.
pub const DEFAULT_MAX_LINGER_MS: u64 = 50;

/// `[source]` with `type = "kafka"`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct KafkaSourceConfig {
    /// `bootstrap.servers`.
    pub brokers: String,
    #[serde(default = "default_topics")]
    pub topics: Vec<String>,
    #[serde(default = "default_group")]
    pub group_id: String,
    #[serde(default = "default_dlq")]
    pub dead_letter_topic: String,
    #[serde(default = "default_max_rows")]
    pub max_batch_rows: usize,
    #[serde(default = "default_linger_ms")]
    pub max_linger_ms: u64,
    #[serde(default = "default_commit_ms")]
    pub commit_interval_ms: u64,
    /// How long a revocation waits for in-flight batches of revoked partitions to be acknowledged.
    #[serde(default = "default_revoke_ms")]
    pub revoke_timeout_ms: u64,
    #[serde(default = "default_dlq_attempts")]
    pub dead_letter_attempts: u32,
    #[serde(default = "default_dlq_timeout_ms")]
    pub dead_letter_timeout_ms: u64,
    #[serde(default = "default_max_message_bytes")]
    pub max_message_bytes: usize,
    #[serde(default = "default_skew_ms")]
    pub max_future_skew_ms: i64,
    /// How long the source waits at start for any broker to answer before it fails with
    /// [`ConnectorError::Unreachable`] (a wrong address or port would otherwise wait forever).
    #[serde(default = "default_startup_timeout_ms")]
    pub startup_timeout_ms: u64,
    /// The watchdog: when the consumer is stalled for this long (by the rules of
    /// [`crate::stall::StallWatch`]: its group not up and steady, or nothing read while behind),
    /// the source replaces it with a new consumer of the same configuration and group (then
    /// waits twice as long before the next, up to 8 times). 0 turns the watchdog off.
    #[serde(default = "default_rebuild_after_ms")]
    pub rebuild_after_ms: u64,
    /// Events before this time (epoch ms; default 0, 1970-01-01) are refused as
    /// `ts_out_of_range`.
    #[serde(default)]
    pub min_ts_ms: i64,
    /// Any librdkafka property for the consumer and the dead-letter producer (e.g.
    /// `security.protocol`, `sasl.mechanism`, `ssl.ca.location`).
    #[serde(default, deserialize_with = "scalar_map")]
    pub properties: BTreeMap<String, String>,
    /// librdkafka properties for the consumer only.
    #[serde(default, deserialize_with = "scalar_map")]
    pub consumer_properties: BTreeMap<String, String>,
    /// librdkafka properties for the dead-letter producer only.
    #[serde(default, deserialize_with = "scalar_map")]
    pub producer_properties: BTreeMap<String, String>,
}

/// Properties vigil sets itself for correctness; config may not override them.
const OWNED_CONSUMER_KEYS: [&str; 3] = ["enable.auto.commit", "enable.auto.offset.store", "group.id"];

impl KafkaSourceConfig {
    /// A config with defaults for everything but brokers.
    pub fn new(brokers: impl Into<String>) -> Self {
        KafkaSourceConfig {
            brokers: brokers.into(),
            topics: default_topics(),
            group_id: default_group(),
            dead_letter_topic: default_dlq(),
            max_batch_rows: default_max_rows(),
            max_linger_ms: default_linger_ms(),
            commit_interval_ms: default_commit_ms(),
            revoke_timeout_ms: default_revoke_ms(),
            dead_letter_attempts: default_dlq_attempts(),
            dead_letter_timeout_ms: default_dlq_timeout_ms(),
            max_message_bytes: default_max_message_bytes(),
            max_future_skew_ms: default_skew_ms(),
            min_ts_ms: 0,
            startup_timeout_ms: default_startup_timeout_ms(),
            rebuild_after_ms: default_rebuild_after_ms(),
            properties: BTreeMap::new(),
            consumer_properties: BTreeMap::new(),
            producer_properties: BTreeMap::new(),
        }
    }

    pub fn max_linger(&self) -> Duration {
        Duration::from_millis(self.max_linger_ms)
    }

    pub fn commit_interval(&self) -> Duration {
        Duration::from_millis(self.commit_interval_ms)
    }

    pub fn revoke_timeout(&self) -> Duration {
        Duration::from_millis(self.revoke_timeout_ms)
    }

    /// The watchdog's bound (`None`: off).
    pub fn rebuild_after(&self) -> Option<Duration> {
        (self.rebuild_after_ms > 0).then(|| Duration::from_millis(self.rebuild_after_ms))
    }

    pub fn limits(&self) -> DecodeLimits {
        DecodeLimits {
            max_message_bytes: self.max_message_bytes,
            max_future_skew_ms: self.max_future_skew_ms,
            min_ts_ms: self.min_ts_ms,
        }
    }

    /// Checks values that would make the source misbehave.
    pub fn validate(&self) -> Result<(), ConnectorError> {
        let bad = |m: &str| Err(ConnectorError::Config(m.to_string()));
        if self.topics.is_empty() {
            return bad("`topics` is empty");
        }
        if self.topics.contains(&self.dead_letter_topic) {
            return bad("`dead_letter_topic` must differ from the source topics");
        }
        if self.max_batch_rows == 0 {
            return bad("`max_batch_rows` must be at least 1");
        }
        if self.dead_letter_attempts == 0 {
            return bad("`dead_letter_attempts` must be at least 1");
        }
        for key in OWNED_CONSUMER_KEYS {
            if self.properties.contains_key(key) || self.consumer_properties.contains_key(key) {
                return bad(&format!("property `{key}` is set by vigil and cannot be overridden"));
            }
        }
        Ok(())
    }

    /// The librdkafka configuration of the consumer.
    pub fn consumer_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers)
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", "10000")
            .set("socket.timeout.ms", "10000")
            // Statistics carry the consumer lag per partition (the `/metrics` gauge).
            .set("statistics.interval.ms", "5000")
            // Reaching a partition's end is reported (as `BatchSpan::caught_up`): the pipeline
            // lets the wall clock move a partition's quiet timers only once it is caught up.
            .set("enable.partition.eof", "true")
            // Keep trying every known broker, not only those a request needs now: after a broker
            // outage, the consumer with sparse connections was seen to stop reconnecting to the
            // only broker (no connection attempt for minutes while the group coordinator query
            // found "no broker available"), so it never got its partitions back.
            .set("enable.sparse.connections", "false");
        for (k, v) in self.properties.iter().chain(&self.consumer_properties) {
            c.set(k, v);
        }
        c.set("group.id", &self.group_id)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false");
        c
    }

    /// The librdkafka configuration of the dead-letter producer.
    pub fn producer_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("message.timeout.ms", self.dead_letter_timeout_ms.to_string())
            // One dead letter per record batch: a broker refusing a batch as too large then
            // names the one record to send as a smaller envelope, not its neighbours too.
            .set("batch.num.messages", "1");
        for (k, v) in self.properties.iter().chain(&self.producer_properties) {
            c.set(k, v);
        }
        c
    }

    /// The dead-letter producer's `message.max.bytes` (librdkafka's default, 1,000,000, unless
    /// set): a dead letter larger than this goes as an envelope.
    pub fn dead_letter_max_record_bytes(&self) -> usize {
        self.producer_config()
            .get("message.max.bytes")
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(LIBRDKAFKA_MESSAGE_MAX_BYTES)
    }
}

/// librdkafka's default `message.max.bytes`.
const LIBRDKAFKA_MESSAGE_MAX_BYTES: usize = 1_000_000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passes_any_librdkafka_property_through() {
        let mut cfg = KafkaSourceConfig::new("b:9092");
        cfg.properties.insert("security.protocol".into(), "SASL_SSL".into());
        cfg.consumer_properties.insert("fetch.max.bytes".into(), "1000".into());
        cfg.producer_properties.insert("linger.ms".into(), "7".into());
        let c = cfg.consumer_config();
        assert_eq!(c.get("security.protocol"), Some("SASL_SSL"));
        assert_eq!(c.get("fetch.max.bytes"), Some("1000"));
        assert_eq!(c.get("linger.ms"), None);
        assert_eq!(c.get("enable.auto.commit"), Some("false"));
        let p = cfg.producer_config();
        assert_eq!(p.get("security.protocol"), Some("SASL_SSL"));
        assert_eq!(p.get("linger.ms"), Some("7"));
        assert_eq!(p.get("fetch.max.bytes"), None);
    }

    #[test]
    fn refuses_overriding_commit_properties() {
        let mut cfg = KafkaSourceConfig::new("b:9092");
        cfg.properties.insert("enable.auto.commit".into(), "true".into());
        assert!(cfg.validate().is_err());
    }

    #[test]
    fn deserializes_with_defaults() {
        let cfg: KafkaSourceConfig = serde_json::from_str(r#"{"brokers":"x:1"}"#).expect("parses");
        assert_eq!(cfg, KafkaSourceConfig::new("x:1"));
        cfg.validate().expect("defaults are valid");
    }
}
