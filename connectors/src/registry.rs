//! The explicit list of connectors. Adding a connector means adding it here, nowhere else.

use serde::Deserialize;

use crate::error::ConnectorError;
use crate::file::FileSourceConfig;
use crate::kafka::{KafkaSinkConfig, KafkaSourceConfig};
use crate::log::LogSinkConfig;
use crate::webhook::WebhookConfig;

/// A source, as configured (`[source]` with a `type`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SourceConfig {
    Kafka(KafkaSourceConfig),
    File(FileSourceConfig),
}

/// A hook's sink, as configured (`[[hooks]]` with a `type`; see [`crate::routing`]).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SinkConfig {
    Webhook(WebhookConfig),
    Kafka(KafkaSinkConfig),
    Log(LogSinkConfig),
}

impl SinkConfig {
    /// Checks the sink's own settings.
    pub fn validate(&self) -> Result<(), ConnectorError> {
        match self {
            SinkConfig::Webhook(c) => c.validate(),
            SinkConfig::Kafka(c) => c.validate(),
            SinkConfig::Log(_) => Ok(()),
        }
    }
}

/// What a connector is, for `vigil --help` and docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectorInfo {
    pub name: &'static str,
    pub role: &'static str,
    pub summary: &'static str,
}

/// Every connector vigil has.
pub const CONNECTORS: &[ConnectorInfo] = &[
    ConnectorInfo {
        name: "kafka",
        role: "source",
        summary: "consumer group, JSON events to Arrow batches, dead-letter topic, commit after ack",
    },
    ConnectorInfo {
        name: "file",
        role: "source",
        summary: "JSON Lines file through the same decode path, for backfill and tests",
    },
    ConnectorInfo {
        name: "webhook",
        role: "sink",
        summary: "alerts as signed HTTP POSTs (JSON or Slack text), retried with backoff, parked when failed",
    },
    ConnectorInfo {
        name: "kafka",
        role: "sink",
        summary: "alerts topic and scores topic (key = account_id), idempotent producer, acks=all",
    },
    ConnectorInfo {
        name: "log",
        role: "sink",
        summary: "alerts as lines on stdout (text or JSON), for the demo",
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_source_config_variant_is_listed() {
        let kafka: SourceConfig = serde_json::from_str(r#"{"type":"kafka","brokers":"b:1"}"#).expect("kafka");
        let file: SourceConfig = serde_json::from_str(r#"{"type":"file","path":"x.jsonl"}"#).expect("file");
        for (cfg, name) in [(kafka, "kafka"), (file, "file")] {
            let listed = CONNECTORS.iter().any(|c| c.name == name && c.role == "source");
            assert!(listed, "{name} missing from CONNECTORS");
            assert!(matches!(
                (cfg, name),
                (SourceConfig::Kafka(_), "kafka") | (SourceConfig::File(_), "file")
            ));
        }
        let unknown = serde_json::from_str::<SourceConfig>(r#"{"type":"s3","path":"x"}"#);
        assert!(unknown.is_err());
    }

    #[test]
    fn every_sink_config_variant_is_listed() {
        let webhook: SinkConfig =
            serde_json::from_str(r#"{"type":"webhook","url":"http://h/","secret":"s"}"#).expect("webhook");
        let kafka: SinkConfig = serde_json::from_str(r#"{"type":"kafka","brokers":"b:1","topic":"t"}"#).expect("kafka");
        let log: SinkConfig = serde_json::from_str(r#"{"type":"log"}"#).expect("log");
        for (cfg, name) in [(webhook, "webhook"), (kafka, "kafka"), (log, "log")] {
            let listed = CONNECTORS.iter().any(|c| c.name == name && c.role == "sink");
            assert!(listed, "{name} sink missing from CONNECTORS");
            cfg.validate().expect("valid");
            assert!(matches!(
                (cfg, name),
                (SinkConfig::Webhook(_), "webhook") | (SinkConfig::Kafka(_), "kafka") | (SinkConfig::Log(_), "log")
            ));
        }
        assert!(serde_json::from_str::<SinkConfig>(r#"{"type":"smtp"}"#).is_err());
    }
}
