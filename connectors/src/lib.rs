//! vigil's connectors: where events come from (Kafka, JSON Lines files) and where refused
//! input goes (the dead-letter topic). The only crate that links rdkafka.
//!
//! One folder per connector (`config` + `source`), listed explicitly in [`registry`].

pub mod ack;
pub mod error;
pub mod file;
pub mod kafka;
pub mod log;
pub mod metrics;
pub mod outbox;
pub mod registry;
pub mod routing;
pub mod stall;
pub mod webhook;

pub use ack::{Ack, OffsetTracker};
pub use error::ConnectorError;
pub use metrics::SourceMetrics;
pub use registry::{CONNECTORS, SinkConfig, SourceConfig};
