//! An embedded Kafka-protocol broker for `vigil demo`: librdkafka's in-process mock cluster.
//! Zero set-up, in memory. Not Apache Kafka: tests of Kafka behaviour use the real broker.

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{DefaultProducerContext, FutureProducer, FutureRecord, Producer};

use crate::error::ConnectorError;

/// A running in-process mock cluster.
pub struct EmbeddedBroker {
    cluster: MockCluster<'static, DefaultProducerContext>,
    bootstrap: String,
}

impl std::fmt::Debug for EmbeddedBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedBroker")
            .field("bootstrap", &self.bootstrap)
            .finish()
    }
}

impl EmbeddedBroker {
    /// Starts a one-broker mock cluster.
    pub fn start() -> Result<Self, ConnectorError> {
        let cluster = MockCluster::new(1)?;
        let bootstrap = cluster.bootstrap_servers();
        Ok(EmbeddedBroker { cluster, bootstrap })
    }

    /// `bootstrap.servers` of the embedded broker.
    pub fn bootstrap(&self) -> &str {
        &self.bootstrap
    }

    /// Creates a topic (the mock cluster has no CreateTopics API).
    pub fn create_topic(&self, name: &str, partitions: i32) -> Result<(), ConnectorError> {
        self.cluster.create_topic(name, partitions, 1)?;
        Ok(())
    }
}

/// A producer of raw messages (key, value), for generators and tools.
pub struct MessageProducer {
    producer: FutureProducer,
    topic: String,
}

impl std::fmt::Debug for MessageProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageProducer").field("topic", &self.topic).finish()
    }
}

impl MessageProducer {
    /// A producer to `topic` on `bootstrap` (lz4-compressed, idempotent, 30 s delivery timeout).
    pub fn new(bootstrap: &str, topic: &str) -> Result<Self, ConnectorError> {
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("compression.type", "lz4")
            .set("linger.ms", "5")
            .set("message.timeout.ms", "30000")
            .create()?;
        Ok(MessageProducer {
            producer,
            topic: topic.to_string(),
        })
    }

    /// Queues one message; waits (bounded by the producer's timeout) when the queue is full.
    pub fn send(&self, key: &[u8], value: &[u8]) -> Result<(), ConnectorError> {
        let mut record = FutureRecord::to(&self.topic).key(key).payload(value);
        loop {
            match self.producer.send_result(record) {
                Ok(delivery) => {
                    drop(delivery);
                    return Ok(());
                }
                Err((
                    rdkafka::error::KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull),
                    r,
                )) => {
                    record = r;
                    self.producer.poll(Duration::from_millis(10));
                }
                Err((e, _)) => return Err(e.into()),
            }
        }
    }

    /// Waits until every queued message is delivered.
    pub fn flush(&self, timeout: Duration) -> Result<(), ConnectorError> {
        self.producer.flush(timeout)?;
        Ok(())
    }
}
