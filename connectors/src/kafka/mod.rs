//! Kafka connector: consumer-group source with a dead-letter topic.

pub mod config;
pub mod dead_letter;
pub mod embedded;
pub mod sink;
pub mod source;

pub use config::KafkaSourceConfig;
pub use dead_letter::headers as dead_letter_headers;
pub use embedded::{EmbeddedBroker, MessageProducer};
pub use sink::{KafkaAlertSink, KafkaScoresSink, KafkaSinkConfig};
pub use source::{BatchSpan, CommittedOffsets, KafkaSourceHandle, PartitionOwner, SourceBatch, start, start_owned};
