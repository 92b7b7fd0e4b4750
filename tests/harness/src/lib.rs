//! Test harness shared by vigil's integration tests and benchmarks: one real Apache Kafka
//! broker per test process, unique names, and small producer/consumer helpers.

pub mod kafka;

pub use kafka::{KafkaBroker, RestartableBroker, broker, payload_text, unique_name};
