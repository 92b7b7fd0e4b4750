//! Errors of the connectors crate.

/// What can go wrong in a source or sink (not bad input: that is dead-lettered, see
/// [`vigil_engine::InvalidReason`]).
#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("kafka configuration: {0}")]
    Config(String),
    #[error(
        "no Kafka broker of `{brokers}` answered within {waited_ms} ms ({detail}): check [source] brokers, the network and the listeners"
    )]
    Unreachable {
        brokers: String,
        waited_ms: u64,
        detail: String,
    },
    #[error("dead-letter topic `{topic}`: delivery failed after {attempts} attempts: {detail}")]
    DeadLetter {
        topic: String,
        attempts: u32,
        detail: String,
    },
    #[error("io on {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {detail}")]
    BadFile { path: String, detail: String },
    #[error("downstream closed the batch channel")]
    DownstreamClosed,
    #[error("source thread panicked")]
    Panicked,
    #[error("hook configuration: {0}")]
    HookConfig(String),
    #[error("hook `{sink}`: HTTP {status}: {detail}")]
    HttpStatus {
        sink: String,
        status: u16,
        /// The server's `Retry-After`, when it sent one (429, 503).
        retry_after: Option<std::time::Duration>,
        detail: String,
    },
    #[error("hook `{sink}`: {source}")]
    Http {
        sink: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("hook `{sink}`: kafka delivery to `{topic}`: {source}")]
    KafkaDelivery {
        sink: String,
        topic: String,
        #[source]
        source: Box<rdkafka::error::KafkaError>,
    },
    #[error("hook `{sink}`: {detail}")]
    Hook { sink: String, detail: String },
    #[error("outbox {path}: {detail}")]
    Outbox { path: String, detail: String },
    #[error("outbox {path} is in use by another process")]
    OutboxLocked { path: String },
    #[error("webhook signature header malformed: {0}")]
    SignatureMalformed(&'static str),
    #[error("webhook signature timestamp is {age_secs} s from now, tolerance is {tolerance_secs} s")]
    SignatureStale { age_secs: i64, tolerance_secs: u64 },
    #[error("webhook signature does not match the body")]
    SignatureMismatch,
}
