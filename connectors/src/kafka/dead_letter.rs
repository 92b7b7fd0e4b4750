//! The dead-letter producer: invalid messages go, unchanged, to the dead-letter topic with
//! headers naming where they came from and why they were refused.
//!
//! A message too large for the dead-letter topic (the producer's `message.max.bytes`, or the
//! topic's `max.message.bytes` when the broker refuses it) goes as an envelope instead: the same
//! provenance headers, `vigil.truncated.from` (the original payload's length) and `vigil.sha256`
//! (the original payload's SHA-256, hex), with the payload cut to its first bytes (and the key
//! to its first 1 KiB). No message is too large to be dead-lettered, so none can stop the
//! pipeline.

use std::sync::Arc;
use std::time::Duration;

use futures::executor::block_on;
use rdkafka::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
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
    /// On an envelope only: the original payload's length in bytes.
    pub const TRUNCATED_FROM: &str = "vigil.truncated.from";
    /// On an envelope only: the SHA-256 of the original payload, lower-case hex.
    pub const SHA256: &str = "vigil.sha256";
}

/// Bytes of the producer's `message.max.bytes` kept for the record's framing and headers.
const RECORD_OVERHEAD_BYTES: usize = 4096;
/// An envelope keeps at most this much of the original key.
const ENVELOPE_KEY_BYTES: usize = 1024;

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
    /// Set on an envelope: the original payload's length and SHA-256 (hex).
    pub truncated_from: Option<(usize, String)>,
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
            truncated_from: None,
        }
    }

    /// Bytes of key and payload.
    pub fn data_bytes(&self) -> usize {
        self.key.as_ref().map_or(0, Vec::len) + self.payload.as_ref().map_or(0, Vec::len)
    }

    /// The envelope of this record with at most `keep` bytes of the payload (a prefix of the
    /// original; an envelope cut again keeps the original's length and hash).
    pub fn envelope(&self, keep: usize) -> DeadLetterRecord {
        use sha2::Digest;
        let payload = self.payload.as_deref().unwrap_or_default();
        let truncated_from = self.truncated_from.clone().unwrap_or_else(|| {
            let hash = sha2::Sha256::digest(payload);
            let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
            (payload.len(), hex)
        });
        let cut = |b: &Vec<u8>, n: usize| b[..b.len().min(n)].to_vec();
        DeadLetterRecord {
            key: self.key.as_ref().map(|k| cut(k, ENVELOPE_KEY_BYTES)),
            payload: self.payload.as_ref().map(|p| cut(p, keep)),
            truncated_from: Some(truncated_from),
            ..self.clone()
        }
    }

    fn headers(&self) -> OwnedHeaders {
        let partition = self.source_partition.to_string();
        let offset = self.source_offset.to_string();
        let headers = OwnedHeaders::new_with_capacity(7)
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
            });
        match &self.truncated_from {
            Some((len, hash)) => headers
                .insert(Header {
                    key: headers::TRUNCATED_FROM,
                    value: Some(len.to_string().as_str()),
                })
                .insert(Header {
                    key: headers::SHA256,
                    value: Some(hash.as_str()),
                }),
            None => headers,
        }
    }
}

/// True when `e` says the record is larger than the producer or the topic accepts.
fn too_large(e: &KafkaError) -> bool {
    matches!(
        e.rdkafka_error_code(),
        Some(RDKafkaErrorCode::MessageSizeTooLarge | RDKafkaErrorCode::InvalidRecord)
    )
}

/// Sends refused messages and confirms their delivery before the source commits past them.
/// Nothing given to it is dropped: a record that cannot be sent or confirmed waits in the
/// writer for the next [`DeadLetterWriter::confirm_all`]. A producer that reports a fatal error
/// (it can send nothing more) is replaced by a new one of the same configuration.
pub struct DeadLetterWriter {
    topic: String,
    producer_config: ClientConfig,
    producer: FutureProducer,
    attempts: u32,
    max_record_bytes: usize,
    in_flight: Vec<(DeliveryFuture, DeadLetterRecord)>,
    /// Records not sent (the producer refused them, or they failed every attempt).
    waiting: Vec<DeadLetterRecord>,
    metrics: Arc<SourceMetrics>,
}

impl std::fmt::Debug for DeadLetterWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeadLetterWriter")
            .field("topic", &self.topic)
            .field("in_flight", &self.in_flight.len())
            .field("waiting", &self.waiting.len())
            .finish()
    }
}

impl DeadLetterWriter {
    /// A writer to `topic` with a producer of `producer_config`, retrying a failed delivery up
    /// to `attempts` times per [`DeadLetterWriter::confirm_all`]; records larger than
    /// `max_record_bytes` (the producer's `message.max.bytes`) go as envelopes. Counts into
    /// `metrics`.
    pub fn new(
        topic: String,
        producer_config: ClientConfig,
        attempts: u32,
        max_record_bytes: usize,
        metrics: Arc<SourceMetrics>,
    ) -> Result<Self, ConnectorError> {
        let producer = producer_config.create()?;
        Ok(DeadLetterWriter {
            topic,
            producer_config,
            producer,
            attempts,
            max_record_bytes,
            in_flight: Vec::new(),
            waiting: Vec::new(),
            metrics,
        })
    }

    /// `rec` as it can go: whole when it fits the producer's limit, else as an envelope keeping
    /// as much of the payload as fits (counted as truncated).
    fn fitting(&self, rec: DeadLetterRecord) -> DeadLetterRecord {
        let room = self
            .max_record_bytes
            .saturating_sub(RECORD_OVERHEAD_BYTES + rec.detail.len());
        if rec.data_bytes() <= room {
            return rec;
        }
        SourceMetrics::add(&self.metrics.dead_letters_truncated, 1);
        rec.envelope(room.saturating_sub(ENVELOPE_KEY_BYTES))
    }

    /// A smaller envelope of `rec` after the broker refused it as too large: a quarter of the
    /// payload kept, then none. `None` when it is already an envelope without payload.
    fn smaller(&self, rec: &DeadLetterRecord) -> Option<DeadLetterRecord> {
        let len = rec.payload.as_ref().map_or(0, Vec::len);
        if len == 0 && rec.truncated_from.is_some() {
            return None;
        }
        if rec.truncated_from.is_none() {
            SourceMetrics::add(&self.metrics.dead_letters_truncated, 1);
        }
        Some(rec.envelope(if len < 64 { 0 } else { len / 4 }))
    }

    /// Queues `rec` with the producer, smaller each time the producer says it is too large;
    /// returns the delivery future and the record as queued, or the error and the record.
    #[allow(clippy::result_large_err)]
    fn enqueue(
        &self,
        rec: DeadLetterRecord,
    ) -> Result<(DeliveryFuture, DeadLetterRecord), (KafkaError, DeadLetterRecord)> {
        let mut rec = rec;
        loop {
            match self.enqueue_once(&rec) {
                Ok(fut) => return Ok((fut, rec)),
                Err(e) if too_large(&e) => match self.smaller(&rec) {
                    Some(smaller) => rec = smaller,
                    None => return Err((e, rec)),
                },
                Err(e) => return Err((e, rec)),
            }
        }
    }

    /// One attempt to queue `rec` with the producer (waiting while its queue is full).
    fn enqueue_once(&self, rec: &DeadLetterRecord) -> Result<DeliveryFuture, KafkaError> {
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

    /// Queues one dead letter (without waiting for the broker); one the producer refuses waits
    /// in the writer for [`DeadLetterWriter::confirm_all`].
    pub fn send(&mut self, rec: DeadLetterRecord) {
        let rec = self.fitting(rec);
        match self.enqueue(rec) {
            Ok(sent) => self.in_flight.push(sent),
            Err((e, rec)) => {
                tracing::warn!(error = %e, "dead letter not queued; it is sent again before the next commit");
                self.waiting.push(rec);
            }
        }
    }

    /// Replaces the producer when it reports a fatal error (an idempotent producer can then
    /// send nothing more); its queued records fail and are sent again by the new one.
    fn renew_if_fatal(&mut self) -> Result<(), ConnectorError> {
        if let Some((code, reason)) = self.producer.client().fatal_error() {
            tracing::error!(?code, %reason, "dead-letter producer failed fatally; replacing it");
            self.producer = self.producer_config.create()?;
        }
        Ok(())
    }

    /// Waits until every dead letter given to the writer is confirmed by the broker, sending
    /// failed ones again (up to the configured attempts, with backoff; a record the topic
    /// refuses as too large goes at once as a smaller envelope, without using an attempt). Each
    /// send is bounded by the producer's `message.timeout.ms`. After the last attempt the
    /// failed records stay in the writer for the next call, and the error says why.
    pub fn confirm_all(&mut self) -> Result<(), ConnectorError> {
        let mut attempt = 1;
        loop {
            self.renew_if_fatal()?;
            let mut last_error = String::new();
            let mut failed = Vec::new();
            for rec in std::mem::take(&mut self.waiting) {
                match self.enqueue(rec) {
                    Ok(sent) => self.in_flight.push(sent),
                    Err((e, rec)) => {
                        last_error = e.to_string();
                        failed.push(rec);
                    }
                }
            }
            let mut smaller = Vec::new();
            for (fut, rec) in std::mem::take(&mut self.in_flight) {
                match block_on(fut) {
                    Ok(Ok(_)) => SourceMetrics::add(&self.metrics.dead_lettered, 1),
                    Ok(Err((e, _))) if too_large(&e) => match self.smaller(&rec) {
                        Some(s) => smaller.push(s),
                        None => {
                            last_error = e.to_string();
                            failed.push(rec);
                        }
                    },
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
            self.waiting = smaller;
            if failed.is_empty() {
                if self.waiting.is_empty() {
                    return Ok(());
                }
                continue;
            }
            let n = failed.len();
            self.waiting.extend(failed);
            if attempt >= self.attempts {
                return Err(ConnectorError::DeadLetter {
                    topic: self.topic.clone(),
                    attempts: attempt,
                    detail: format!("{n} messages not confirmed; last error: {last_error}"),
                });
            }
            std::thread::sleep(Duration::from_millis(100u64 << attempt.min(6)));
            attempt += 1;
            SourceMetrics::add(&self.metrics.dead_letter_retries, n as u64);
        }
    }
}
