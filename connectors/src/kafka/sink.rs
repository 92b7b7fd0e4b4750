//! Kafka sinks: the alerts topic (a hook, fed from the outbox) and the scores topic (score
//! updates keyed by `account_id`, suitable for a log-compacted topic).
//!
//! Both use an idempotent producer (`enable.idempotence=true`, `acks=all`) with a bounded
//! `message.timeout.ms`; any librdkafka property passes through `properties`, except the two
//! vigil owns for correctness.
//!
//! Records:
//!
//! | topic | key | value | headers |
//! |---|---|---|---|
//! | alerts | `account_id` | the webhook JSON body ([`crate::webhook`]) | `vigil.alert.id`, `vigil.alert.kind`, `vigil.alert.status` |
//! | scores | `account_id` | `HealthScore` as JSON (score, band, components, churn risk, …) | `vigil.score.as_of_ms` |
//! | scores (account removed) | `account_id` | none (a tombstone) | |

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use serde::Deserialize;
use vigil_engine::scoring::HealthScore;

use crate::error::ConnectorError;
use crate::outbox::alert::HookAlert;
use crate::webhook::body::json_body;

/// Header names on alert records.
pub mod headers {
    pub const ALERT_ID: &str = "vigil.alert.id";
    pub const ALERT_KIND: &str = "vigil.alert.kind";
    pub const ALERT_STATUS: &str = "vigil.alert.status";
    pub const SCORE_AS_OF_MS: &str = "vigil.score.as_of_ms";
}

fn default_message_timeout_ms() -> u64 {
    30_000
}
fn default_request_timeout_ms() -> u64 {
    10_000
}
fn default_attempts() -> u32 {
    3
}

/// Properties vigil sets for correctness; config may not override them.
const OWNED_PRODUCER_KEYS: [&str; 2] = ["enable.idempotence", "acks"];

/// A Kafka sink: `[[hooks]]` with `type = "kafka"` (alerts), or `[scores]` (score updates).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSinkConfig {
    /// `bootstrap.servers`.
    pub brokers: String,
    pub topic: String,
    /// Upper bound on one record's delivery, retries inside librdkafka included.
    #[serde(default = "default_message_timeout_ms")]
    pub message_timeout_ms: u64,
    /// `request.timeout.ms`: one produce request's broker acknowledgement timeout.
    #[serde(default = "default_request_timeout_ms")]
    pub request_timeout_ms: u64,
    /// For the scores sink: attempts per record before `send_all` gives up (each bounded by
    /// `message_timeout_ms`). Alert hooks use their `retry` policy instead.
    #[serde(default = "default_attempts")]
    pub attempts: u32,
    /// Any librdkafka producer property (e.g. `compression.type`, `security.protocol`).
    #[serde(default, deserialize_with = "super::config::scalar_map")]
    pub properties: BTreeMap<String, String>,
}

impl KafkaSinkConfig {
    /// Defaults for everything but brokers and topic.
    pub fn new(brokers: impl Into<String>, topic: impl Into<String>) -> Self {
        KafkaSinkConfig {
            brokers: brokers.into(),
            topic: topic.into(),
            message_timeout_ms: default_message_timeout_ms(),
            request_timeout_ms: default_request_timeout_ms(),
            attempts: default_attempts(),
            properties: BTreeMap::new(),
        }
    }

    pub fn message_timeout(&self) -> Duration {
        Duration::from_millis(self.message_timeout_ms)
    }

    /// Checks values that would make the sink misbehave.
    pub fn validate(&self) -> Result<(), ConnectorError> {
        let bad = |m: String| Err(ConnectorError::HookConfig(m));
        if self.brokers.trim().is_empty() || self.topic.trim().is_empty() {
            return bad("kafka sink: `brokers` and `topic` must be set".into());
        }
        if self.message_timeout_ms == 0 || self.request_timeout_ms == 0 || self.attempts == 0 {
            return bad("kafka sink: timeouts and `attempts` must be > 0".into());
        }
        for key in OWNED_PRODUCER_KEYS {
            if self.properties.contains_key(key) {
                return bad(format!(
                    "kafka sink: property `{key}` is set by vigil and cannot be overridden"
                ));
            }
        }
        Ok(())
    }

    /// The librdkafka configuration of the producer.
    pub fn producer_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers)
            .set("message.timeout.ms", self.message_timeout_ms.to_string())
            .set("request.timeout.ms", self.request_timeout_ms.to_string())
            .set("socket.timeout.ms", "10000");
        for (k, v) in &self.properties {
            c.set(k, v);
        }
        c.set("enable.idempotence", "true").set("acks", "all");
        c
    }

    fn producer(&self) -> Result<FutureProducer, ConnectorError> {
        self.validate()?;
        Ok(self.producer_config().create()?)
    }
}

/// Sends one record and waits for the broker's confirmation, bounded by the message timeout
/// (plus a margin for a full local queue).
async fn produce(
    producer: &FutureProducer,
    record: FutureRecord<'_, str, [u8]>,
    timeout: Duration,
) -> Result<(), rdkafka::error::KafkaError> {
    let bound = timeout + Duration::from_secs(5);
    match tokio::time::timeout(bound, producer.send(record, Duration::from_secs(5))).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err((e, _))) => Err(e),
        Err(_) => Err(rdkafka::error::KafkaError::MessageProduction(
            rdkafka::types::RDKafkaErrorCode::MessageTimedOut,
        )),
    }
}

/// The alerts topic as a hook: one record per alert, key = `account_id`.
pub struct KafkaAlertSink {
    name: String,
    topic: String,
    timeout: Duration,
    producer: FutureProducer,
}

impl std::fmt::Debug for KafkaAlertSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaAlertSink")
            .field("name", &self.name)
            .field("topic", &self.topic)
            .finish()
    }
}

impl KafkaAlertSink {
    /// A producer for hook `name`.
    pub fn new(name: &str, config: &KafkaSinkConfig) -> Result<Self, ConnectorError> {
        Ok(KafkaAlertSink {
            name: name.to_string(),
            topic: config.topic.clone(),
            timeout: config.message_timeout(),
            producer: config.producer()?,
        })
    }

    /// One delivery attempt (librdkafka retries inside it until the message timeout).
    pub async fn send(&self, alert: &HookAlert) -> Result<(), ConnectorError> {
        let body = json_body(alert);
        let hdrs = OwnedHeaders::new_with_capacity(3)
            .insert(Header {
                key: headers::ALERT_ID,
                value: Some(alert.id.as_str()),
            })
            .insert(Header {
                key: headers::ALERT_KIND,
                value: Some(alert.kind.as_str()),
            })
            .insert(Header {
                key: headers::ALERT_STATUS,
                value: Some(alert.status.as_str()),
            });
        let record = FutureRecord::to(&self.topic)
            .key(alert.account_id.as_str())
            .payload(body.as_slice())
            .headers(hdrs);
        produce(&self.producer, record, self.timeout)
            .await
            .map_err(|source| ConnectorError::KafkaDelivery {
                sink: self.name.clone(),
                topic: self.topic.clone(),
                source: Box::new(source),
            })
    }

    /// Waits up to `timeout` for queued records (shutdown).
    pub fn flush(&self, timeout: Duration) -> Result<(), ConnectorError> {
        Ok(self.producer.flush(timeout)?)
    }
}

/// The scores topic: the latest score per account, key = `account_id` (compaction keeps the
/// latest; [`KafkaScoresSink::tombstone`] deletes an account).
pub struct KafkaScoresSink {
    topic: String,
    timeout: Duration,
    attempts: u32,
    producer: FutureProducer,
}

impl std::fmt::Debug for KafkaScoresSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaScoresSink").field("topic", &self.topic).finish()
    }
}

impl KafkaScoresSink {
    pub fn new(config: &KafkaSinkConfig) -> Result<Self, ConnectorError> {
        Ok(KafkaScoresSink {
            topic: config.topic.clone(),
            timeout: config.message_timeout(),
            attempts: config.attempts,
            producer: config.producer()?,
        })
    }

    async fn send_one(&self, key: &str, payload: Option<&[u8]>, as_of_ms: Option<i64>) -> Result<(), ConnectorError> {
        let as_of = as_of_ms.map(|t| t.to_string());
        let mut last = None;
        for attempt in 1..=self.attempts {
            let mut record = FutureRecord::<str, [u8]>::to(&self.topic).key(key);
            if let Some(p) = payload {
                record = record.payload(p);
            }
            if let Some(t) = &as_of {
                record = record.headers(OwnedHeaders::new_with_capacity(1).insert(Header {
                    key: headers::SCORE_AS_OF_MS,
                    value: Some(t.as_str()),
                }));
            }
            match produce(&self.producer, record, self.timeout).await {
                Ok(()) => return Ok(()),
                Err(e) => {
                    tracing::warn!(topic = %self.topic, key, attempt, error = %e, "scores: delivery failed");
                    last = Some(e);
                    if attempt < self.attempts {
                        tokio::time::sleep(Duration::from_millis(200u64 << attempt.min(5))).await;
                    }
                }
            }
        }
        Err(ConnectorError::KafkaDelivery {
            sink: "scores".into(),
            topic: self.topic.clone(),
            source: Box::new(last.unwrap_or(rdkafka::error::KafkaError::Canceled)),
        })
    }

    /// Sends one score update and waits for its confirmation.
    pub async fn send(&self, score: &HealthScore) -> Result<(), ConnectorError> {
        let payload = serde_json::to_vec(score).map_err(|e| ConnectorError::Hook {
            sink: "scores".into(),
            detail: format!("encoding a score: {e}"),
        })?;
        self.send_one(&score.account_id, Some(&payload), Some(score.as_of_ms))
            .await
    }

    /// Sends score updates concurrently and waits for all; fails with the first error after
    /// every record was tried (each record's attempts bounded by `attempts`).
    pub async fn send_all(&self, scores: &[HealthScore]) -> Result<usize, ConnectorError> {
        let results = futures::future::join_all(scores.iter().map(|s| self.send(s))).await;
        let mut n = 0;
        let mut first_err = None;
        for r in results {
            match r {
                Ok(()) => n += 1,
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        first_err.map_or(Ok(n), Err)
    }

    /// A tombstone (null value) for an account removed from the state.
    pub async fn tombstone(&self, account_id: &str) -> Result<(), ConnectorError> {
        self.send_one(account_id, None, None).await
    }

    /// Waits up to `timeout` for queued records (shutdown).
    pub fn flush(&self, timeout: Duration) -> Result<(), ConnectorError> {
        Ok(self.producer.flush(timeout)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn producer_is_idempotent_and_passes_properties_through() {
        let mut cfg = KafkaSinkConfig::new("b:9092", "vigil.alerts");
        cfg.properties.insert("compression.type".into(), "zstd".into());
        cfg.properties.insert("security.protocol".into(), "SASL_SSL".into());
        cfg.validate().expect("valid");
        let c = cfg.producer_config();
        assert_eq!(c.get("enable.idempotence"), Some("true"));
        assert_eq!(c.get("acks"), Some("all"));
        assert_eq!(c.get("message.timeout.ms"), Some("30000"));
        assert_eq!(c.get("compression.type"), Some("zstd"));
        assert_eq!(c.get("security.protocol"), Some("SASL_SSL"));
        cfg.properties.insert("acks".into(), "1".into());
        assert!(cfg.validate().is_err(), "acks is owned by vigil");
    }
}
