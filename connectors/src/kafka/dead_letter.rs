//! The dead-letter producer: invalid messages go, unchanged, to the dead-letter topic with
//! headers naming where they came from and why they were refused.

use std::time::Duration;

use futures::executor::block_on;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;
use vigil_engine::InvalidReason;

use crate::error::ConnectorError;
use crate::metrics::SourceMetrics;

/// Header names on every dead-lettered message.
pub mod headers {
    pub const SOURCE_TOPIC: &str = "vigil.source.topic";
    pub const SOURCE_PARTITION: &str = "vigil.source.partition";
    pub const SOURCE_OFFSET: &str = "vigil.source.offset";
    pub const REASON: &str = "vigil.reason";
    pub const DETAIL: &str = "vigil.detail";
}

/// One refused message, owned so that it can be sent again.
#[derive(Debug, Clone)]
pub struct DeadLetterRecord {
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    pub source_topic: String,
    pub source_partition: i32,
    pub source_offset: i64,
    pub timestamp_ms: Option<i64>,
    pub reason: &'static str,
    pub detail: String,
}

impl DeadLetterRecord {
    pub fn new(
        key: Option<&[u8]>,
        payload: Option<&[u8]>,
        topic: &str,
        partition: i32,
        offset: i64,
        timestamp_ms: Option<i64>,
        reason: &InvalidReason,
    ) -> Self {
        DeadLetterRecord {
            key: key.map(<[u8]>::to_vec),
            payload: payload.map(<[u8]>::to_vec),
            source_topic: topic.to_string(),
            source_partition: partition,
            source_offset: offset,
            timestamp_ms,
            reason: reason.code(),
            detail: reason.to_string(),
        }
    }

    fn headers(&self) -> OwnedHeaders {
        let partition = self.source_partition.to_string();
        let offset = self.source_offset.to_string();
        OwnedHeaders::new_with_capacity(5)
            .insert(Header {
                key: headers::SOURCE_TOPIC,
                value: Some(self.source_topic.as_str()),
            })
            .insert(Header {
                key: headers::SOURCE_PARTITION,
                value: Some(partition.as_str()),
            })
            .insert(Header {
                key: headers::SOURCE_OFFSET,
                value: Some(offset.as_str()),
            })
            .insert(Header {
                key: headers::REASON,
                value: Some(self.reason),
            })
            .insert(Header {
                key: headers::DETAIL,
                value: Some(self.detail.as_str()),
            })
    }
}

/// Sends refused messages and confirms their delivery before the source commits past them.
pub struct DeadLetterWriter {
    topic: String,
    producer: FutureProducer,
    attempts: u32,
    in_flight: Vec<(DeliveryFuture, DeadLetterRecord)>,
}

impl std::fmt::Debug for DeadLetterWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeadLetterWriter")
            .field("topic", &self.topic)
            .field("in_flight", &self.in_flight.len())
            .finish()
    }
}

impl DeadLetterWriter {
    pub fn new(topic: String, producer: FutureProducer, attempts: u32) -> Self {
        DeadLetterWriter {
            topic,
            producer,
            attempts,
            in_flight: Vec::new(),
        }
    }

    fn enqueue(&self, rec: &DeadLetterRecord) -> Result<DeliveryFuture, KafkaError> {
        loop {
            let mut fr = FutureRecord::<[u8], [u8]>::to(&self.topic).headers(rec.headers());
            if let Some(k) = &rec.key {
                fr = fr.key(k.as_slice());
            }
            if let Some(p) = &rec.payload {
                fr = fr.payload(p.as_slice());
            }
            if let Some(ts) = rec.timestamp_ms {
                fr = fr.timestamp(ts);
            }
            match self.producer.send_result(fr) {
                Ok(fut) => return Ok(fut),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    self.producer.poll(Duration::from_millis(50));
                }
                Err((e, _)) => return Err(e),
            }
        }
    }

    /// Queues a refused message for delivery.
    pub fn send(&mut self, rec: DeadLetterRecord) -> Result<(), ConnectorError> {
        let fut = self.enqueue(&rec)?;
        self.in_flight.push((fut, rec));
        Ok(())
    }

    /// Messages queued and not yet confirmed.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Waits until every queued message is confirmed by the broker, sending failed ones again
    /// (bounded by the configured attempts, with backoff). Each send is bounded by the
    /// producer's `message.timeout.ms`.
    pub fn confirm_all(&mut self, metrics: &SourceMetrics) -> Result<(), ConnectorError> {
        let mut attempt = 1;
        let mut todo = std::mem::take(&mut self.in_flight);
        while !todo.is_empty() {
            let mut failed = Vec::new();
            let mut last_error = String::new();
            for (fut, rec) in todo {
                match block_on(fut) {
                    Ok(Ok(_)) => SourceMetrics::add(&metrics.dead_lettered, 1),
                    Ok(Err((e, _))) => {
                        last_error = e.to_string();
                        failed.push(rec);
                    }
                    Err(_) => {
                        last_error = "delivery future canceled".into();
                        failed.push(rec);
                    }
                }
            }
            if failed.is_empty() {
                break;
            }
            if attempt >= self.attempts {
                let n = failed.len();
                // Keep them so a later call can try again; nothing is dropped.
                for rec in failed {
                    let fut = self.enqueue(&rec)?;
                    self.in_flight.push((fut, rec));
                }
                return Err(ConnectorError::DeadLetter {
                    topic: self.topic.clone(),
                    attempts: attempt,
                    detail: format!("{n} messages not confirmed; last error: {last_error}"),
                });
            }
            std::thread::sleep(Duration::from_millis(100u64 << attempt.min(6)));
            attempt += 1;
            SourceMetrics::add(&metrics.dead_letter_retries, failed.len() as u64);
            todo = Vec::with_capacity(failed.len());
            for rec in failed {
                let fut = self.enqueue(&rec)?;
                todo.push((fut, rec));
            }
        }
        Ok(())
    }
}
