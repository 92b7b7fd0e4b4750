//! The Kafka source: a consumer-group member on its own thread that turns contract-v1 JSON
//! messages into event RecordBatches, dead-letters invalid ones, and commits offsets only
//! after downstream acknowledges (at-least-once).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arrow::record_batch::RecordBatch;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaResult;
use rdkafka::message::Message;
use rdkafka::producer::FutureProducer;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tokio::sync::mpsc;
use vigil_engine::{EventBatchBuilder, SourceMeta, decode};

use super::config::KafkaSourceConfig;
use super::dead_letter::{DeadLetterRecord, DeadLetterWriter};
use crate::ack::{Ack, EpochOffset, OffsetTracker, TopicPartition};
use crate::error::ConnectorError;
use crate::metrics::SourceMetrics;

/// One batch of valid events and the acknowledgement that lets its offsets be committed.
#[derive(Debug)]
pub struct SourceBatch {
    pub batch: RecordBatch,
    pub ack: Ack,
}

struct SourceContext {
    tracker: Arc<OffsetTracker>,
    metrics: Arc<SourceMetrics>,
    revoke_timeout: Duration,
}

fn partitions_of(tpl: &TopicPartitionList) -> Vec<TopicPartition> {
    tpl.elements()
        .iter()
        .map(|e| (Arc::<str>::from(e.topic()), e.partition()))
        .collect()
}

fn commit_offsets<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    offsets: Vec<(TopicPartition, i64)>,
    mode: CommitMode,
    metrics: &SourceMetrics,
) {
    if offsets.is_empty() {
        return;
    }
    let mut tpl = TopicPartitionList::with_capacity(offsets.len());
    for ((topic, partition), next) in &offsets {
        if let Err(e) = tpl.add_partition_offset(topic, *partition, Offset::Offset(*next)) {
            tracing::warn!(error = %e, "bad offset in commit list");
        }
    }
    match consumer.commit(&tpl, mode) {
        Ok(()) => SourceMetrics::add(&metrics.commits, 1),
        Err(e) => {
            SourceMetrics::add(&metrics.commit_errors, 1);
            tracing::warn!(error = %e, "offset commit failed; the next commit carries the offsets again");
        }
    }
}

impl ClientContext for SourceContext {}

impl ConsumerContext for SourceContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            let parts = partitions_of(tpl);
            // Finish in-flight work on the revoked partitions: wait (bounded) for downstream to
            // acknowledge, commit what is acknowledged, abandon the rest (read again by the new owner).
            if !self.tracker.wait_settled(Some(&parts), self.revoke_timeout) {
                tracing::warn!(
                    partitions = parts.len(),
                    "revocation timed out waiting for acks; unacknowledged batches are abandoned"
                );
            }
            let offsets = self.tracker.take_committable_of(&parts);
            commit_offsets(consumer, offsets, CommitMode::Sync, &self.metrics);
            self.tracker.revoke(&parts);
            SourceMetrics::add(&self.metrics.rebalances, 1);
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                self.tracker.assign(&partitions_of(tpl));
                SourceMetrics::add(&self.metrics.rebalances, 1);
            }
            Rebalance::Error(e) => tracing::warn!(error = %e, "rebalance error"),
            Rebalance::Revoke(_) => {}
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, _offsets: &TopicPartitionList) {
        if let Err(e) = result {
            SourceMetrics::add(&self.metrics.commit_errors, 1);
            tracing::warn!(error = %e, "asynchronous offset commit failed");
        }
    }
}

/// A running Kafka source.
#[derive(Debug)]
pub struct KafkaSourceHandle {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<(), ConnectorError>>>,
    metrics: Arc<SourceMetrics>,
}

impl KafkaSourceHandle {
    /// Asks the source to stop: it stops reading, waits (bounded) for in-flight batches to be
    /// acknowledged, commits, and leaves the group.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    /// A function that asks the source to stop (for shutdown paths that do not own the handle).
    pub fn stopper(&self) -> impl Fn() + Send + Sync + 'static {
        let stop = self.stop.clone();
        move || stop.store(true, Ordering::SeqCst)
    }

    /// The source's counters.
    pub fn metrics(&self) -> &Arc<SourceMetrics> {
        &self.metrics
    }

    /// True once the source thread has ended (stopped or failed).
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }

    /// Stops the source and waits for its thread.
    pub fn join(mut self) -> Result<(), ConnectorError> {
        self.stop();
        match self.thread.take() {
            Some(t) => t.join().map_err(|_| ConnectorError::Panicked)?,
            None => Ok(()),
        }
    }
}

impl Drop for KafkaSourceHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts a Kafka source; batches arrive on the returned channel (bounded: a slow downstream
/// slows consumption rather than growing memory).
pub fn start(
    config: KafkaSourceConfig,
    channel_capacity: usize,
) -> Result<(KafkaSourceHandle, mpsc::Receiver<SourceBatch>), ConnectorError> {
    config.validate()?;
    let tracker = OffsetTracker::new();
    let metrics = Arc::new(SourceMetrics::default());
    let ctx = SourceContext {
        tracker: tracker.clone(),
        metrics: metrics.clone(),
        revoke_timeout: config.revoke_timeout(),
    };
    let consumer: BaseConsumer<SourceContext> = config.consumer_config().create_with_context(ctx)?;
    let topics: Vec<&str> = config.topics.iter().map(String::as_str).collect();
    consumer.subscribe(&topics)?;
    let producer: FutureProducer = config.producer_config().create()?;
    let dead_letter = DeadLetterWriter::new(config.dead_letter_topic.clone(), producer, config.dead_letter_attempts);
    let (tx, rx) = mpsc::channel(channel_capacity.max(1));
    let stop = Arc::new(AtomicBool::new(false));
    let worker = Worker {
        consumer,
        dead_letter,
        config,
        tx,
        tracker,
        metrics: metrics.clone(),
        stop: stop.clone(),
    };
    let thread = std::thread::Builder::new()
        .name("vigil-kafka-source".into())
        .spawn(move || worker.run())
        .map_err(|e| ConnectorError::Io {
            path: "thread spawn".into(),
            source: e,
        })?;
    Ok((
        KafkaSourceHandle {
            stop,
            thread: Some(thread),
            metrics,
        },
        rx,
    ))
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

struct Worker {
    consumer: BaseConsumer<SourceContext>,
    dead_letter: DeadLetterWriter,
    config: KafkaSourceConfig,
    tx: mpsc::Sender<SourceBatch>,
    tracker: Arc<OffsetTracker>,
    metrics: Arc<SourceMetrics>,
    stop: Arc<AtomicBool>,
}

/// The batch being built: rows plus, per partition, the next offset and its epoch.
struct OpenBatch {
    builder: EventBatchBuilder,
    offsets: HashMap<TopicPartition, EpochOffset>,
    started: Option<Instant>,
}

impl Worker {
    fn run(mut self) -> Result<(), ConnectorError> {
        let limits = self.config.limits();
        let linger = self.config.max_linger();
        let commit_interval = self.config.commit_interval();
        let mut open = OpenBatch {
            builder: EventBatchBuilder::with_capacity(self.config.max_batch_rows),
            offsets: HashMap::new(),
            started: None,
        };
        let mut topics: Vec<Arc<str>> = Vec::new();
        let mut last_commit = Instant::now();
        let mut rebalances_seen = SourceMetrics::get(&self.metrics.rebalances);
        let result = loop {
            if self.stop.load(Ordering::SeqCst) {
                break Ok(());
            }
            let timeout = match open.started {
                Some(t) => linger.saturating_sub(t.elapsed()),
                None => Duration::from_millis(100),
            };
            match self.consumer.poll(timeout) {
                None => {}
                Some(Err(e)) => {
                    SourceMetrics::add(&self.metrics.consume_errors, 1);
                    tracing::warn!(error = %e, "consume error");
                }
                Some(Ok(msg)) => {
                    let rebalances = SourceMetrics::get(&self.metrics.rebalances);
                    if rebalances != rebalances_seen {
                        rebalances_seen = rebalances;
                        // Offsets read under a revoked assignment must not be committed by us.
                        open.offsets.retain(|tp, eo| self.tracker.epoch(tp) == Some(eo.epoch));
                    }
                    let topic = match topics.iter().find(|t| &***t == msg.topic()) {
                        Some(t) => t.clone(),
                        None => {
                            let t: Arc<str> = Arc::from(msg.topic());
                            topics.push(t.clone());
                            t
                        }
                    };
                    let tp: TopicPartition = (topic, msg.partition());
                    let epoch = match open.offsets.get(&tp) {
                        Some(eo) => eo.epoch,
                        None => self.tracker.epoch(&tp).unwrap_or(0),
                    };
                    open.offsets.insert(
                        tp.clone(),
                        EpochOffset {
                            next_offset: msg.offset() + 1,
                            epoch,
                        },
                    );
                    let payload = msg.payload().unwrap_or(&[]);
                    SourceMetrics::add(&self.metrics.messages, 1);
                    SourceMetrics::add(&self.metrics.bytes, payload.len() as u64);
                    let timestamp_ms = msg.timestamp().to_millis();
                    match decode(payload, &limits, now_ms()) {
                        Ok(event) => {
                            if msg.key().is_some_and(|k| k != event.account_id.as_bytes()) {
                                SourceMetrics::add(&self.metrics.key_mismatch, 1);
                            }
                            let meta = SourceMeta {
                                topic: Some(&tp.0),
                                partition: Some(msg.partition()),
                                offset: Some(msg.offset()),
                                timestamp_ms,
                            };
                            open.builder.append(&event, &meta);
                            SourceMetrics::add(&self.metrics.valid, 1);
                        }
                        Err(reason) => {
                            SourceMetrics::add(&self.metrics.invalid[reason.index()], 1);
                            let rec = DeadLetterRecord::new(
                                msg.key(),
                                msg.payload(),
                                &tp.0,
                                msg.partition(),
                                msg.offset(),
                                timestamp_ms,
                                &reason,
                            );
                            if let Err(e) = self.dead_letter.send(rec) {
                                break Err(e);
                            }
                        }
                    }
                    open.started.get_or_insert_with(Instant::now);
                }
            }
            let full = open.builder.len() >= self.config.max_batch_rows;
            let lingered = open.started.is_some_and(|t| t.elapsed() >= linger);
            if (full || lingered)
                && let Err(e) = self.flush(&mut open)
            {
                break Err(e);
            }
            if last_commit.elapsed() >= commit_interval {
                commit_offsets(
                    &self.consumer,
                    self.tracker.take_committable(),
                    CommitMode::Async,
                    &self.metrics,
                );
                last_commit = Instant::now();
            }
        };
        // Rows not yet emitted are abandoned (never committed; read again after restart).
        // Emitted batches get a bounded wait for their acknowledgement, then a final commit.
        if !self.tracker.wait_settled(None, self.config.revoke_timeout()) {
            tracing::warn!("stopping with unacknowledged batches; they will be read again");
        }
        commit_offsets(
            &self.consumer,
            self.tracker.take_committable(),
            CommitMode::Sync,
            &self.metrics,
        );
        self.consumer.unsubscribe();
        result
    }

    fn flush(&mut self, open: &mut OpenBatch) -> Result<(), ConnectorError> {
        // Dead letters must be durable before the source may commit past them.
        self.dead_letter.confirm_all(&self.metrics)?;
        let offsets: Vec<_> = open.offsets.drain().collect();
        open.started = None;
        if open.builder.is_empty() {
            if !offsets.is_empty() {
                self.tracker.register_acked(offsets);
            }
            return Ok(());
        }
        let batch = open.builder.finish();
        let ack = self.tracker.register(offsets);
        SourceMetrics::add(&self.metrics.batches, 1);
        self.tx
            .blocking_send(SourceBatch { batch, ack })
            .map_err(|_| ConnectorError::DownstreamClosed)
    }
}
