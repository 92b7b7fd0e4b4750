//! The Kafka source: a consumer-group member on its own thread that turns contract-v1 JSON
//! messages into event RecordBatches, dead-letters invalid ones, and commits offsets only
//! after downstream acknowledges (at-least-once).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arrow::record_batch::RecordBatch;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::KafkaResult;
use rdkafka::message::Message;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tokio::sync::mpsc;
use vigil_engine::{EventBatchBuilder, SourceMeta, decode};

use super::config::KafkaSourceConfig;
use super::dead_letter::{DeadLetterRecord, DeadLetterWriter};
use crate::ack::{Ack, EpochOffset, OffsetTracker, TopicPartition};
use crate::error::ConnectorError;
use crate::metrics::SourceMetrics;
use crate::stall::{SourceView, StallWatch};

/// One batch of valid events and the acknowledgement that lets its offsets be committed.
#[derive(Debug)]
pub struct SourceBatch {
    pub batch: RecordBatch,
    pub ack: Ack,
    /// Where the batch was read (`None` for sources without partitions, e.g. files).
    pub span: Option<BatchSpan>,
}

impl SourceBatch {
    /// A batch from a source without partitions or offsets (files, tests).
    pub fn unpartitioned(batch: RecordBatch) -> SourceBatch {
        SourceBatch {
            batch,
            ack: Ack::none(),
            span: None,
        }
    }
}

/// The span of one partition a Kafka batch covers. A batch holds the events of one partition
/// only, so downstream can keep (and checkpoint) state per partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchSpan {
    pub partition: TopicPartition,
    /// Offset of the first message read into the batch.
    pub first_offset: i64,
    /// Offset after the last message read into the batch (where to resume).
    pub next_offset: i64,
    /// Messages read (valid + dead-lettered).
    pub messages: u64,
    /// Messages sent to the dead-letter topic.
    pub dead_lettered: u64,
    /// The batch ends at the partition's end as last known (no lag): the source reached the
    /// high watermark. A batch of no messages with this set is a marker: the partition is
    /// caught up and idle (its offsets say nothing; `messages` is 0).
    pub caught_up: bool,
}

impl BatchSpan {
    /// A marker that `partition` is caught up, with nothing read.
    pub fn caught_up_marker(partition: TopicPartition) -> BatchSpan {
        BatchSpan {
            partition,
            first_offset: -1,
            next_offset: -1,
            messages: 0,
            dead_lettered: 0,
            caught_up: true,
        }
    }

    /// True for a [`BatchSpan::caught_up_marker`]: no message read, offsets meaningless.
    pub fn is_marker(&self) -> bool {
        self.messages == 0
    }
}

/// Who owns the state of the partitions a source reads: told on assignment (returns where to
/// start each partition, e.g. the offset stored with its checkpoint) and on revocation (returns
/// once the revoked partitions' state is durable, so the new owner can restore it).
pub trait PartitionOwner: Send + Sync + 'static {
    /// Partitions were assigned; returns the offset to start each from (`None`: the committed
    /// offset, else `auto.offset.reset`). An error stops the source: reading a partition whose
    /// state could not be restored would lose that state.
    fn assigned(&self, partitions: &[TopicPartition]) -> Result<Vec<Option<i64>>, String>;
    /// Partitions are being revoked; every batch read from them has been emitted. Returns when
    /// their state is durable and their batches acknowledged, or after `timeout`.
    fn revoked(&self, partitions: &[TopicPartition], timeout: Duration);
}

/// The owner for at-least-once reading: start from committed offsets, nothing to save.
#[derive(Debug, Default)]
pub struct CommittedOffsets;

impl PartitionOwner for CommittedOffsets {
    fn assigned(&self, partitions: &[TopicPartition]) -> Result<Vec<Option<i64>>, String> {
        Ok(vec![None; partitions.len()])
    }
    fn revoked(&self, _partitions: &[TopicPartition], _timeout: Duration) {}
}

struct SourceContext {
    tracker: Arc<OffsetTracker>,
    metrics: Arc<SourceMetrics>,
    revoke_timeout: Duration,
    owner: Arc<dyn PartitionOwner>,
    /// Set when the owner failed to take an assignment: the source stops with this error.
    failed: std::sync::Mutex<Option<String>>,
    /// Set when the watchdog replaced this consumer: its callbacks (while it closes) only
    /// unassign; the partitions were given up already and the new consumer owns the metrics.
    retired: AtomicBool,
}

impl SourceContext {
    fn new(
        tracker: &Arc<OffsetTracker>,
        metrics: &Arc<SourceMetrics>,
        config: &KafkaSourceConfig,
        owner: &Arc<dyn PartitionOwner>,
    ) -> Self {
        SourceContext {
            tracker: tracker.clone(),
            metrics: metrics.clone(),
            revoke_timeout: config.revoke_timeout(),
            owner: owner.clone(),
            failed: std::sync::Mutex::new(None),
            retired: AtomicBool::new(false),
        }
    }

    fn is_retired(&self) -> bool {
        self.retired.load(Ordering::SeqCst)
    }

    /// Finishes in-flight work on partitions leaving this consumer: the owner makes their state
    /// durable and acknowledges their batches; a bounded wait for the acknowledgements, then
    /// unacknowledged batches are abandoned (read again by the next owner).
    fn settle(&self, parts: &[TopicPartition]) {
        self.owner.revoked(parts, self.revoke_timeout);
        if !self.tracker.wait_settled(Some(parts), self.revoke_timeout) {
            tracing::warn!(
                partitions = parts.len(),
                "revocation timed out waiting for acks; unacknowledged batches are abandoned"
            );
        }
    }

    /// Gives up `parts` as a lost assignment: settled, their acknowledged progress forgotten
    /// rather than committed (the next owner resumes from the owner's state or the last commit).
    fn give_up(&self, parts: &[TopicPartition]) {
        self.settle(parts);
        self.tracker.revoke(parts);
        self.count_assigned();
    }
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

impl ClientContext for SourceContext {
    /// Errors librdkafka reports outside a poll. An end-of-partition event can arrive here (for
    /// a partition being unassigned): it is not an error.
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        if error.rdkafka_error_code() == Some(rdkafka::types::RDKafkaErrorCode::PartitionEOF) {
            tracing::debug!(%reason, "end of partition outside a poll");
        } else {
            tracing::error!("librdkafka: {error}: {reason}");
        }
    }

    fn stats(&self, statistics: rdkafka::Statistics) {
        if self.is_retired() {
            return;
        }
        let mut lag = BTreeMap::new();
        for (topic, t) in &statistics.topics {
            for (partition, p) in &t.partitions {
                // librdkafka reports -1 when unknown and lists a partition -1 (internal).
                if *partition < 0 {
                    continue;
                }
                if let Some(l) = position_lag(p) {
                    lag.insert((topic.clone(), *partition), l);
                }
            }
        }
        if let Ok(mut m) = self.metrics.lag.lock() {
            *m = lag;
        }
        // The group is down from when it left "up" and steady (its state may change several
        // times while down: the first change counts; the join state has no age, so a rebalance
        // counts from the first statistics that show it).
        if let (Some(group), Ok(mut down)) = (&statistics.cgrp, self.metrics.group_down.lock()) {
            if group.state == "up" && group.join_state == "steady" {
                *down = None;
            } else {
                let state = format!("{}/{}", group.state, group.join_state);
                match down.as_mut() {
                    Some((s, _)) => *s = state,
                    None => {
                        let age = if group.state == "up" {
                            0
                        } else {
                            group.stateage.max(0) as u64
                        };
                        let since = Instant::now()
                            .checked_sub(Duration::from_millis(age))
                            .unwrap_or_else(Instant::now);
                        *down = Some((state, since));
                    }
                }
            }
        }
    }
}

impl SourceContext {
    fn assign(&self, consumer: &BaseConsumer<Self>, tpl: &mut TopicPartitionList) {
        let parts = partitions_of(tpl);
        match self.owner.assigned(&parts) {
            Ok(starts) => {
                for ((topic, partition), start) in parts.iter().zip(starts) {
                    if let Some(offset) = start
                        && let Err(e) = tpl.set_partition_offset(topic, *partition, Offset::Offset(offset))
                    {
                        tracing::warn!(error = %e, %topic, partition, "cannot set the start offset");
                    }
                }
            }
            Err(e) => {
                tracing::error!(error = %e, partitions = parts.len(), "partition state could not be restored; stopping");
                *self.failed.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                // Take no partitions: nothing is read without its state.
                *tpl = TopicPartitionList::new();
            }
        }
        let parts = partitions_of(tpl);
        self.tracker.assign(&parts);
        let result = match consumer.rebalance_protocol() {
            RebalanceProtocol::Cooperative => consumer.incremental_assign(tpl),
            _ => consumer.assign(tpl),
        };
        if let Err(e) = result {
            tracing::error!(error = %e, "assigning partitions failed");
        }
        self.count_assigned();
        SourceMetrics::add(&self.metrics.rebalances, 1);
    }

    fn revoke(&self, consumer: &BaseConsumer<Self>, tpl: &TopicPartitionList) {
        let parts = partitions_of(tpl);
        // Finish in-flight work on the revoked partitions, then commit what is acknowledged.
        self.settle(&parts);
        // Asynchronous: a synchronous commit here can wait for a coordinator that is gone (the
        // assignment is lost when the broker is unreachable) while the group cannot rejoin
        // until this callback returns. Offsets are only progress reports where an owner keeps
        // checkpoints, and the next owner re-reads anything not committed.
        // A lost assignment (session timeout: the group has moved on) is not committed at all,
        // as librdkafka's rebalance documentation asks: the commit cannot succeed, and while it
        // waits for a coordinator it holds up the unassign that the rejoin waits for.
        let offsets = self.tracker.take_committable_of(&parts);
        if consumer.assignment_lost() {
            tracing::debug!(partitions = parts.len(), "assignment lost: not committing its offsets");
        } else {
            commit_offsets(consumer, offsets, CommitMode::Async, &self.metrics);
        }
        self.tracker.revoke(&parts);
        let result = match consumer.rebalance_protocol() {
            RebalanceProtocol::Cooperative => consumer.incremental_unassign(tpl),
            _ => consumer.unassign(),
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "unassigning partitions failed");
        }
        self.count_assigned();
        SourceMetrics::add(&self.metrics.rebalances, 1);
    }

    /// The `assigned` gauge, from the tracker: no call into librdkafka from its own callback
    /// (asking the consumer for its assignment here can wait on the group thread at close).
    fn count_assigned(&self) {
        SourceMetrics::set(&self.metrics.assigned, self.tracker.assigned_count() as u64);
    }
}

impl ConsumerContext for SourceContext {
    fn rebalance(&self, consumer: &BaseConsumer<Self>, err: RDKafkaRespErr, tpl: &mut TopicPartitionList) {
        if self.is_retired() {
            // Closing after the watchdog replaced it: the partitions were given up already.
            let result = match (consumer.rebalance_protocol(), err) {
                (RebalanceProtocol::Cooperative, RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) => {
                    consumer.incremental_unassign(tpl)
                }
                _ => consumer.unassign(),
            };
            if let Err(e) = result {
                tracing::debug!(error = %e, "retired consumer: unassign failed");
            }
            return;
        }
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => self.assign(consumer, tpl),
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => self.revoke(consumer, tpl),
            other => {
                tracing::warn!(error = ?other, "rebalance error; dropping the assignment");
                let all = consumer.assignment().unwrap_or_default();
                self.revoke(consumer, &all);
            }
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

/// Messages between the consumer's position and the partition's end: the end is the last
/// stable offset (read_committed, librdkafka's default) or else the high watermark; the
/// position is the offset after the last message handed to vigil (`app_offset`), or the
/// committed offset before any was. librdkafka's own `consumer_lag` counts from the committed
/// offset, which trails the position by up to a checkpoint interval: a caught-up pipeline would
/// show lag. `None` when the end or the position is unknown.
fn position_lag(p: &rdkafka::statistics::Partition) -> Option<i64> {
    let end = if p.ls_offset >= 0 { p.ls_offset } else { p.hi_offset };
    let position = if p.app_offset >= 0 {
        p.app_offset
    } else {
        p.committed_offset
    };
    (end >= 0 && position >= 0).then(|| (end - position).max(0))
}

/// Starts a Kafka source reading at-least-once from committed offsets; batches arrive on the
/// returned channel (bounded: a slow downstream slows consumption rather than growing memory).
pub fn start(
    config: KafkaSourceConfig,
    channel_capacity: usize,
) -> Result<(KafkaSourceHandle, mpsc::Receiver<SourceBatch>), ConnectorError> {
    start_owned(config, channel_capacity, Arc::new(CommittedOffsets))
}

/// Starts a Kafka source whose partitions' state `owner` keeps (checkpoints): it is asked where
/// to start each assigned partition and told before a partition is revoked.
pub fn start_owned(
    config: KafkaSourceConfig,
    channel_capacity: usize,
    owner: Arc<dyn PartitionOwner>,
) -> Result<(KafkaSourceHandle, mpsc::Receiver<SourceBatch>), ConnectorError> {
    config.validate()?;
    let tracker = OffsetTracker::new();
    let metrics = Arc::new(SourceMetrics::default());
    let ctx = SourceContext::new(&tracker, &metrics, &config, &owner);
    let consumer: BaseConsumer<SourceContext> = config.consumer_config().create_with_context(ctx)?;
    // Fail early, in one line, when no broker answers.
    if let Err(e) = consumer.fetch_metadata(None, Duration::from_millis(config.startup_timeout_ms)) {
        return Err(ConnectorError::Unreachable {
            brokers: config.brokers.clone(),
            waited_ms: config.startup_timeout_ms,
            detail: e.to_string(),
        });
    }
    let topics: Vec<&str> = config.topics.iter().map(String::as_str).collect();
    consumer.subscribe(&topics)?;
    let dead_letter = DeadLetterWriter::new(
        config.dead_letter_topic.clone(),
        config.producer_config(),
        config.dead_letter_attempts,
        config.dead_letter_max_record_bytes(),
        metrics.clone(),
    )?;
    let (tx, rx) = mpsc::channel(channel_capacity.max(1));
    let stop = Arc::new(AtomicBool::new(false));
    let worker = Worker {
        consumer,
        dead_letter,
        watchdog: config.rebuild_after().map(Watchdog::new),
        config,
        tx: Some(tx),
        tracker,
        metrics: metrics.clone(),
        stop: stop.clone(),
        owner,
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
    /// Taken (closed) when the source stops reading, so downstream sees the end of the stream
    /// while the source waits for the last acknowledgements.
    tx: Option<mpsc::Sender<SourceBatch>>,
    tracker: Arc<OffsetTracker>,
    metrics: Arc<SourceMetrics>,
    stop: Arc<AtomicBool>,
    owner: Arc<dyn PartitionOwner>,
    /// `None` when `rebuild_after_ms` is 0.
    watchdog: Option<Watchdog>,
}

/// Decides when to replace a stalled consumer: checks once a second, with a bound that doubles
/// after each replacement (up to 8 times the configured one) and returns to it once the new
/// consumer holds partitions in an up group.
struct Watchdog {
    base: Duration,
    bound: Duration,
    watch: StallWatch,
    checked: Instant,
}

impl Watchdog {
    fn new(base: Duration) -> Self {
        Watchdog {
            base,
            bound: base,
            watch: StallWatch::default(),
            checked: Instant::now(),
        }
    }

    /// Why the consumer should be replaced now, if it should.
    fn due(&mut self, metrics: &SourceMetrics) -> Option<String> {
        let now = Instant::now();
        if now.duration_since(self.checked) < Duration::from_secs(1) {
            return None;
        }
        self.checked = now;
        let view = metrics.view(now);
        if view.assigned > 0 && view.group_down.is_none() {
            self.bound = self.base;
        }
        let why = self.watch.check(now, &SourceView { held: None, ..view }, self.bound)?;
        self.watch = StallWatch::default();
        self.bound = (self.bound * 2).min(self.base * 8);
        Some(why)
    }
}

/// The batch being built for one partition.
struct OpenBatch {
    builder: EventBatchBuilder,
    /// Assignment epoch the rows were read under.
    epoch: u64,
    first_offset: i64,
    next_offset: i64,
    messages: u64,
    dead_lettered: u64,
    started: Instant,
    /// The partition's end was reached after its last message.
    at_end: bool,
}

impl Worker {
    fn run(mut self) -> Result<(), ConnectorError> {
        let limits = self.config.limits();
        let linger = self.config.max_linger();
        let commit_interval = self.config.commit_interval();
        let mut open: HashMap<TopicPartition, OpenBatch> = HashMap::new();
        let mut topics: Vec<Arc<str>> = Vec::new();
        let mut last_commit = Instant::now();
        let result = loop {
            if self.stop.load(Ordering::SeqCst) {
                break Ok(());
            }
            if let Some(e) = self
                .consumer
                .context()
                .failed
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take()
            {
                break Err(ConnectorError::Config(format!("partition assignment: {e}")));
            }
            let timeout = open
                .values()
                .map(|b| linger.saturating_sub(b.started.elapsed()))
                .min()
                .unwrap_or(Duration::from_millis(100));
            match self.consumer.poll(timeout) {
                None => {}
                Some(Err(rdkafka::error::KafkaError::PartitionEOF(partition))) => {
                    if let Err(e) = self.reached_end(partition, &mut open) {
                        break Err(e);
                    }
                }
                Some(Err(e)) => {
                    SourceMetrics::add(&self.metrics.consume_errors, 1);
                    tracing::warn!(error = %e, "consume error");
                }
                Some(Ok(msg)) => {
                    let topic = match topics.iter().find(|t| &***t == msg.topic()) {
                        Some(t) => t.clone(),
                        None => {
                            let t: Arc<str> = Arc::from(msg.topic());
                            topics.push(t.clone());
                            t
                        }
                    };
                    let tp: TopicPartition = (topic, msg.partition());
                    let Some(epoch) = self.tracker.epoch(&tp) else {
                        // Not (or no longer) assigned: not ours to read.
                        continue;
                    };
                    // Rows read under an earlier assignment of this partition are abandoned: the
                    // new assignment starts from where the owner's state says.
                    if open.get(&tp).is_some_and(|b| b.epoch != epoch) {
                        open.remove(&tp);
                    }
                    let batch = open.entry(tp.clone()).or_insert_with(|| OpenBatch {
                        builder: EventBatchBuilder::with_capacity(self.config.max_batch_rows.min(1024)),
                        epoch,
                        first_offset: msg.offset(),
                        next_offset: msg.offset(),
                        messages: 0,
                        dead_lettered: 0,
                        started: Instant::now(),
                        at_end: false,
                    });
                    batch.next_offset = msg.offset() + 1;
                    batch.messages += 1;
                    let payload = msg.payload().unwrap_or(&[]);
                    SourceMetrics::add(&self.metrics.messages, 1);
                    SourceMetrics::add(&self.metrics.bytes, payload.len() as u64);
                    let timestamp_ms = msg.timestamp().to_millis();
                    match decode(payload, &limits, now_ms()) {
                        Ok(event) => {
                            match msg.key() {
                                None => SourceMetrics::add(&self.metrics.key_missing, 1),
                                Some(k) if k != event.account_id.as_bytes() => {
                                    SourceMetrics::add(&self.metrics.key_mismatch, 1)
                                }
                                Some(_) => {}
                            }
                            let meta = SourceMeta {
                                topic: Some(&tp.0),
                                partition: Some(msg.partition()),
                                offset: Some(msg.offset()),
                                timestamp_ms,
                            };
                            batch.builder.append(&event, &meta);
                            SourceMetrics::add(&self.metrics.valid, 1);
                        }
                        Err(reason) => {
                            SourceMetrics::add(&self.metrics.invalid[reason.index()], 1);
                            batch.dead_lettered += 1;
                            let rec = DeadLetterRecord::new(
                                msg.key(),
                                msg.payload(),
                                &tp.0,
                                msg.partition(),
                                msg.offset(),
                                timestamp_ms,
                                &reason,
                            );
                            self.dead_letter.send(rec);
                        }
                    }
                    if batch.builder.len() >= self.config.max_batch_rows {
                        let full = open.remove(&tp).expect("present");
                        if let Err(e) = self.flush(tp, full) {
                            break Err(e);
                        }
                    }
                }
            }
            let due: Vec<TopicPartition> = open
                .iter()
                .filter(|(_, b)| b.started.elapsed() >= linger)
                .map(|(tp, _)| tp.clone())
                .collect();
            let mut failed = None;
            for tp in due {
                let b = open.remove(&tp).expect("present");
                if let Err(e) = self.flush(tp, b) {
                    failed = Some(e);
                    break;
                }
            }
            if let Some(e) = failed {
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
            if let Some(why) = self.watchdog.as_mut().and_then(|w| w.due(&self.metrics)) {
                open.clear();
                if let Err(e) = self.replace_consumer(&why) {
                    break Err(e);
                }
            }
        };
        // Rows not yet emitted are abandoned (never committed; read again after restart). The
        // channel closes so downstream sees the end; emitted batches get a bounded wait for their
        // acknowledgement, then a final commit.
        drop(open);
        self.tx = None;
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

    /// Makes every dead letter durable, however long that takes. When the dead-letter topic
    /// cannot be written (the writer's attempts all failed), consumption is held: the assigned
    /// partitions are paused, nothing is emitted or committed past the dead letters, the reason
    /// shows in `/healthz`, and the writer tries again after a backoff (1 s, doubling to 60 s)
    /// until it succeeds (true) or the source is stopped (false). The consumer is polled
    /// meanwhile (the group keeps the member); a message it still hands over is read again
    /// after the hold.
    fn confirm_dead_letters(&mut self) -> Result<bool, ConnectorError> {
        let mut backoff = Duration::from_secs(1);
        let mut held = false;
        let mut rewind: BTreeMap<TopicPartition, i64> = BTreeMap::new();
        let result = loop {
            let e = match self.dead_letter.confirm_all() {
                Ok(()) => break Ok(true),
                Err(e @ ConnectorError::DeadLetter { .. }) => e,
                Err(e) => break Err(e),
            };
            if self.stop.load(Ordering::SeqCst) {
                tracing::warn!(error = %e, "stopping with dead letters not written; their messages are read again at the next start");
                break Ok(false);
            }
            tracing::error!(error = %e, retry_in_s = backoff.as_secs(), "dead letters cannot be written; consumption held");
            self.metrics.set_held(Some(format!(
                "consumption held: {e} (next try in {} s)",
                backoff.as_secs()
            )));
            if !held {
                held = true;
                if let Err(e) = self.consumer.assignment().and_then(|a| self.consumer.pause(&a)) {
                    tracing::warn!(error = %e, "cannot pause the assigned partitions");
                }
            }
            let until = Instant::now() + backoff;
            while Instant::now() < until && !self.stop.load(Ordering::SeqCst) {
                if let Some(Ok(msg)) = self.consumer.poll(Duration::from_millis(100)) {
                    let tp: TopicPartition = (Arc::from(msg.topic()), msg.partition());
                    rewind.entry(tp).or_insert(msg.offset());
                }
            }
            backoff = (backoff * 2).min(Duration::from_secs(60));
        };
        if held {
            if let Err(e) = self.consumer.assignment().and_then(|a| self.consumer.resume(&a)) {
                tracing::warn!(error = %e, "cannot resume the assigned partitions");
            }
            for ((topic, partition), offset) in rewind {
                if let Err(e) = self
                    .consumer
                    .seek(&topic, partition, Offset::Offset(offset), Duration::from_secs(10))
                {
                    tracing::warn!(error = %e, %topic, partition, offset, "cannot rewind after the hold");
                }
            }
            self.metrics.set_held(None);
            if let Ok(true) = result {
                tracing::info!("dead letters written; consumption resumed");
            }
        }
        result
    }

    /// The watchdog's remedy: gives up the partitions as lost (their state made durable by the
    /// owner, their unacknowledged rows read again), retires the consumer (closed on a thread
    /// of its own: a close can wait long on an unreachable coordinator) and subscribes a new
    /// one, same configuration and group.
    fn replace_consumer(&mut self, why: &str) -> Result<(), ConnectorError> {
        tracing::warn!(%why, "watchdog: replacing the Kafka consumer");
        let old_ctx = self.consumer.context();
        old_ctx.retired.store(true, Ordering::SeqCst);
        old_ctx.give_up(&self.tracker.assigned());
        let ctx = SourceContext::new(&self.tracker, &self.metrics, &self.config, &self.owner);
        let fresh: BaseConsumer<SourceContext> = self.config.consumer_config().create_with_context(ctx)?;
        let topics: Vec<&str> = self.config.topics.iter().map(String::as_str).collect();
        fresh.subscribe(&topics)?;
        let old = std::mem::replace(&mut self.consumer, fresh);
        if let Err(e) = std::thread::Builder::new()
            .name("vigil-kafka-retired".into())
            .spawn(move || drop(old))
        {
            tracing::warn!(error = %e, "cannot close the retired consumer on its own thread");
        }
        if let Ok(mut down) = self.metrics.group_down.lock() {
            *down = None;
        }
        if let Ok(mut lag) = self.metrics.lag.lock() {
            lag.clear();
        }
        SourceMetrics::add(&self.metrics.consumer_rebuilds, 1);
        Ok(())
    }

    /// The consumer reached the end of `partition` (librdkafka's end-of-partition event, sent
    /// once each time the end is reached). Its open batch is emitted now, marked caught up
    /// (nothing more is there to wait for); without one, a caught-up marker is. The event names
    /// no topic: when several assigned topics have a partition of that number, it is ambiguous
    /// and ignored (those partitions are never taken as caught up: event time only).
    fn reached_end(
        &mut self,
        partition: i32,
        open: &mut HashMap<TopicPartition, OpenBatch>,
    ) -> Result<(), ConnectorError> {
        let assigned = self.consumer.assignment().unwrap_or_default();
        let mut at_end = partitions_of(&assigned).into_iter().filter(|(_, p)| *p == partition);
        let (Some(tp), None) = (at_end.next(), at_end.next()) else {
            return Ok(());
        };
        if self.tracker.epoch(&tp).is_some() {
            match open.remove(&tp) {
                Some(mut b) => {
                    b.at_end = true;
                    self.flush(tp, b)?;
                }
                None => {
                    let tx = self.tx.as_ref().ok_or(ConnectorError::DownstreamClosed)?;
                    tx.blocking_send(SourceBatch {
                        batch: RecordBatch::new_empty(vigil_engine::schema::event_schema()),
                        ack: Ack::none(),
                        span: Some(BatchSpan::caught_up_marker(tp)),
                    })
                    .map_err(|_| ConnectorError::DownstreamClosed)?;
                }
            }
        }
        Ok(())
    }

    /// Emits one partition's batch (also when every message in it was dead-lettered: its
    /// offsets and counts still move downstream's progress).
    fn flush(&mut self, tp: TopicPartition, mut open: OpenBatch) -> Result<(), ConnectorError> {
        if self.tracker.epoch(&tp) != Some(open.epoch) {
            return Ok(());
        }
        // The end-of-partition event came right after the batch's last message. A batch emitted
        // before it (full, or at the linger) is not caught up; the event then comes as a marker.
        let caught_up = open.at_end;
        // Dead letters must be durable before the source may commit past them; stopped while
        // they cannot be written, the batch is not emitted (all of it is read again).
        if !self.confirm_dead_letters()? {
            return Ok(());
        }
        let batch = open.builder.finish();
        let ack = self.tracker.register(vec![(
            tp.clone(),
            EpochOffset {
                next_offset: open.next_offset,
                epoch: open.epoch,
            },
        )]);
        SourceMetrics::add(&self.metrics.batches, 1);
        let span = BatchSpan {
            partition: tp,
            first_offset: open.first_offset,
            next_offset: open.next_offset,
            messages: open.messages,
            dead_lettered: open.dead_lettered,
            caught_up,
        };
        let tx = self.tx.as_ref().ok_or(ConnectorError::DownstreamClosed)?;
        tx.blocking_send(SourceBatch {
            batch,
            ack,
            span: Some(span),
        })
        .map_err(|_| ConnectorError::DownstreamClosed)
    }
}
