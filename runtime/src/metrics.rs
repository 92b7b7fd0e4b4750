//! Prometheus metrics of a pipeline run ([`RunMetrics`]), encoded in the OpenMetrics text format
//! by `prometheus-client` and served on `/metrics` (see [`crate::http`]).
//!
//! Two kinds of series live here. Those the pipeline drives (applied, late, duplicate events,
//! batch latency, alerts, checkpoints, partitions, consumer lag) are updated through the methods
//! of [`RunMetrics`]. Those the source counts itself (messages read, valid, dead-lettered per
//! reason) stay in the source's own atomics ([`SourceMetrics`]); [`RunMetrics::encode`] first
//! brings the Prometheus counters up to the atomics' totals (adding the difference since the
//! previous scrape), so a scrape shows exactly the source's counts at that moment.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use vigil_connectors::metrics::SourceMetrics;
use vigil_engine::InvalidReason;

use crate::partitions::Partitions;

/// The content type of [`RunMetrics::encode`]'s output (OpenMetrics text 1.0.0).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Smallest upper bound of the batch latency histogram, in seconds.
pub const LATENCY_FIRST_BUCKET_SECS: f64 = 0.0005;
/// Each latency bucket's bound is this factor times the previous one.
pub const LATENCY_BUCKET_FACTOR: f64 = 2.0;
/// Number of finite latency buckets: 0.5 ms up to about 16 s (plus `+Inf`).
pub const LATENCY_BUCKETS: u16 = 16;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WorkerLabel {
    worker: usize,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LagLabels {
    topic: String,
    partition: i32,
}

/// The source a [`RunMetrics`] follows and the totals it had at the previous scrape.
#[derive(Default)]
struct SourceSync {
    source: Option<Arc<SourceMetrics>>,
    messages: u64,
    valid: u64,
    invalid: [u64; InvalidReason::CODES.len()],
    truncated: u64,
    key_mismatch: u64,
    key_missing: u64,
    rebuilds: u64,
}

/// The `reason` labels of `vigil_key_mismatches`: the key names another account, or there is
/// no key.
const KEY_MISMATCH_REASONS: [&str; 2] = ["other_key", "no_key"];

/// Adds to `counter` what `total` grew by since `*seen`, and remembers `total`. A total below the
/// remembered one (which a source's counter never does) adds nothing.
fn catch_up(counter: &Counter, seen: &mut u64, total: u64) {
    if total > *seen {
        counter.inc_by(total - *seen);
    }
    *seen = total;
}

/// The metrics of one pipeline run. Cheap to update from the pipeline (atomics; the labelled
/// families take a short lock), encoded on demand by [`RunMetrics::encode`].
///
/// `vigil_checkpoint_age_seconds` is computed at each scrape from the instant given to the last
/// [`RunMetrics::checkpoint_written`]; before the first checkpoint it is `NaN` (the series
/// exists, its value is "unknown").
pub struct RunMetrics {
    registry: Registry,
    events_in: Counter,
    events_valid: Counter,
    dead_lettered: Family<ReasonLabel, Counter>,
    dead_letters_truncated: Counter,
    key_mismatches: Family<ReasonLabel, Counter>,
    consumer_rebuilds: Counter,
    applied: Counter,
    late: Counter,
    duplicate: Counter,
    batch_latency: Histogram,
    consumer_lag: Family<LagLabels, Gauge>,
    alerts_raised: Family<KindLabel, Counter>,
    alerts_delivered: Counter,
    alerts_failed: Counter,
    checkpoint_age: Gauge<f64, AtomicU64>,
    checkpoints_written: Counter,
    partitions: Gauge,
    worker_partitions: Family<WorkerLabel, Gauge>,
    worker_batches: Family<WorkerLabel, Gauge>,
    worker_busy: Family<WorkerLabel, Gauge<f64, AtomicU64>>,
    last_checkpoint: Mutex<Option<Instant>>,
    source: Mutex<SourceSync>,
    /// The partitions whose worker threads the `vigil_worker_*` series show.
    workers: Mutex<Option<Partitions>>,
}

impl std::fmt::Debug for RunMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunMetrics")
            .field("events_in", &self.events_in.get())
            .field("applied", &self.applied.get())
            .field("alerts_delivered", &self.alerts_delivered.get())
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl RunMetrics {
    /// All series registered, counters at zero, one `vigil_events_dead_lettered` series per
    /// reason code (so every reason shows, at 0, from the first scrape).
    pub fn new() -> Arc<RunMetrics> {
        let mut registry = Registry::default();
        let events_in = Counter::default();
        registry.register("vigil_events_in", "Messages read from the source", events_in.clone());
        let events_valid = Counter::default();
        registry.register(
            "vigil_events_valid",
            "Messages that are valid contract-v1 events",
            events_valid.clone(),
        );
        let dead_lettered = Family::<ReasonLabel, Counter>::default();
        for reason in InvalidReason::CODES {
            let _ = dead_lettered.get_or_create(&ReasonLabel { reason });
        }
        registry.register(
            "vigil_events_dead_lettered",
            "Invalid messages sent to the dead-letter destination, by reason code",
            dead_lettered.clone(),
        );
        let dead_letters_truncated = Counter::default();
        registry.register(
            "vigil_dead_letters_truncated",
            "Dead letters too large for the dead-letter topic, sent as an envelope (provenance, \
             original length and SHA-256, the first bytes)",
            dead_letters_truncated.clone(),
        );
        let key_mismatches = Family::<ReasonLabel, Counter>::default();
        for reason in KEY_MISMATCH_REASONS {
            let _ = key_mismatches.get_or_create(&ReasonLabel { reason });
        }
        registry.register(
            "vigil_key_mismatches",
            "Valid events whose message key is not their account id (`other_key`) or is absent \
             (`no_key`): the account's events may then be spread over partitions",
            key_mismatches.clone(),
        );
        let consumer_rebuilds = Counter::default();
        registry.register(
            "vigil_consumer_rebuilds",
            "Times the source's watchdog replaced a stalled Kafka consumer with a new one",
            consumer_rebuilds.clone(),
        );
        let applied = Counter::default();
        registry.register(
            "vigil_events_applied",
            "Events applied to the scoring core",
            applied.clone(),
        );
        let late = Counter::default();
        registry.register(
            "vigil_events_late",
            "Events older than the watermark (kept in history, not scored)",
            late.clone(),
        );
        let duplicate = Counter::default();
        registry.register(
            "vigil_events_duplicate",
            "Events whose event_id was already applied",
            duplicate.clone(),
        );
        let batch_latency = Histogram::new(exponential_buckets(
            LATENCY_FIRST_BUCKET_SECS,
            LATENCY_BUCKET_FACTOR,
            LATENCY_BUCKETS,
        ));
        registry.register_with_unit(
            "vigil_batch_latency",
            "Time to apply a batch and hand it to the outputs",
            Unit::Seconds,
            batch_latency.clone(),
        );
        let consumer_lag = Family::<LagLabels, Gauge>::default();
        registry.register(
            "vigil_consumer_lag",
            "Messages between the consumer's position and the end of the partition",
            consumer_lag.clone(),
        );
        let alerts_raised = Family::<KindLabel, Counter>::default();
        registry.register("vigil_alerts_raised", "Alerts raised, by kind", alerts_raised.clone());
        let alerts_delivered = Counter::default();
        registry.register(
            "vigil_alerts_delivered",
            "Alert deliveries to hooks that succeeded",
            alerts_delivered.clone(),
        );
        let alerts_failed = Counter::default();
        registry.register(
            "vigil_alerts_failed",
            "Alert deliveries to hooks that failed",
            alerts_failed.clone(),
        );
        let checkpoint_age = Gauge::<f64, AtomicU64>::default();
        checkpoint_age.set(f64::NAN);
        registry.register_with_unit(
            "vigil_checkpoint_age",
            "Time since the last checkpoint was written (NaN before the first)",
            Unit::Seconds,
            checkpoint_age.clone(),
        );
        let checkpoints_written = Counter::default();
        registry.register(
            "vigil_checkpoints_written",
            "Checkpoints written",
            checkpoints_written.clone(),
        );
        let partitions = Gauge::default();
        registry.register(
            "vigil_partitions_assigned",
            "Source partitions currently assigned to this consumer",
            partitions.clone(),
        );
        let worker_partitions = Family::<WorkerLabel, Gauge>::default();
        registry.register(
            "vigil_worker_partitions",
            "Partitions held by each scoring thread",
            worker_partitions.clone(),
        );
        let worker_batches = Family::<WorkerLabel, Gauge>::default();
        registry.register(
            "vigil_worker_batches",
            "Batches applied by each scoring thread since start",
            worker_batches.clone(),
        );
        let worker_busy = Family::<WorkerLabel, Gauge<f64, AtomicU64>>::default();
        registry.register_with_unit(
            "vigil_worker_busy",
            "Time each scoring thread spent applying batches since start",
            Unit::Seconds,
            worker_busy.clone(),
        );
        Arc::new(RunMetrics {
            registry,
            worker_partitions,
            worker_batches,
            worker_busy,
            workers: Mutex::new(None),
            events_in,
            events_valid,
            dead_lettered,
            dead_letters_truncated,
            key_mismatches,
            consumer_rebuilds,
            applied,
            late,
            duplicate,
            batch_latency,
            consumer_lag,
            alerts_raised,
            alerts_delivered,
            alerts_failed,
            checkpoint_age,
            checkpoints_written,
            partitions,
            last_checkpoint: Mutex::new(None),
            source: Mutex::new(SourceSync::default()),
        })
    }

    /// A batch was applied: `applied` events scored, `late` and `duplicates` not, in `latency`.
    pub fn batch_applied(&self, applied: u64, late: u64, duplicates: u64, latency: Duration) {
        self.applied.inc_by(applied);
        self.late.inc_by(late);
        self.duplicate.inc_by(duplicates);
        self.batch_latency.observe(latency.as_secs_f64());
    }

    /// An alert of `kind` (`quiet`, `churn_risk`, `rule`, ...) was raised.
    pub fn alert_raised(&self, kind: &str) {
        self.alerts_raised
            .get_or_create(&KindLabel { kind: kind.to_string() })
            .inc();
    }

    /// `n` alert deliveries succeeded.
    pub fn alerts_delivered(&self, n: u64) {
        self.alerts_delivered.inc_by(n);
    }

    /// `n` alert deliveries failed.
    pub fn alerts_failed(&self, n: u64) {
        self.alerts_failed.inc_by(n);
    }

    /// A checkpoint was written at `at`; the age gauge counts from the latest such instant.
    pub fn checkpoint_written(&self, at: Instant) {
        self.checkpoints_written.inc();
        let mut last = lock(&self.last_checkpoint);
        if last.is_none_or(|l| at > l) {
            *last = Some(at);
        }
    }

    /// Partitions currently assigned.
    pub fn set_partitions(&self, n: i64) {
        self.partitions.set(n);
    }

    /// The lag of one partition.
    pub fn set_lag(&self, topic: &str, partition: i32, lag: i64) {
        self.consumer_lag
            .get_or_create(&LagLabels {
                topic: topic.to_string(),
                partition,
            })
            .set(lag);
    }

    /// Follows `source`'s counters from now on. The Prometheus counters keep what they counted
    /// before and add a new source's totals on top (a counter never goes down): with one
    /// source per run, they equal its atomics at every scrape. Attaching the source already
    /// followed changes nothing.
    pub fn attach_source(&self, source: Arc<SourceMetrics>) {
        let mut sync = lock(&self.source);
        if sync.source.as_ref().is_some_and(|s| Arc::ptr_eq(s, &source)) {
            return;
        }
        *sync = SourceSync {
            source: Some(source),
            ..SourceSync::default()
        };
    }

    /// Shows `parts`' worker threads in the `vigil_worker_*` series from now on.
    pub fn attach_partitions(&self, parts: Partitions) {
        *lock(&self.workers) = Some(parts);
    }

    /// Sets the `vigil_worker_*` series from the attached partitions' workers.
    fn sync_workers(&self) {
        let Some(parts) = lock(&self.workers).clone() else {
            return;
        };
        for (worker, load) in parts.worker_load().into_iter().enumerate() {
            let label = WorkerLabel { worker };
            self.worker_partitions.get_or_create(&label).set(load.partitions as i64);
            self.worker_batches
                .get_or_create(&label)
                .set(i64::try_from(load.batches).unwrap_or(i64::MAX));
            self.worker_busy.get_or_create(&label).set(load.busy.as_secs_f64());
        }
    }

    /// Brings the source-driven counters up to the attached source's current totals.
    fn sync_source(&self) {
        let mut sync = lock(&self.source);
        let SourceSync {
            source,
            messages,
            valid,
            invalid,
            truncated,
            key_mismatch,
            key_missing,
            rebuilds,
        } = &mut *sync;
        let Some(src) = source.as_ref() else {
            return;
        };
        catch_up(&self.events_in, messages, src.messages.load(Ordering::Relaxed));
        catch_up(&self.events_valid, valid, src.valid.load(Ordering::Relaxed));
        for (i, reason) in InvalidReason::CODES.into_iter().enumerate() {
            let counter = self.dead_lettered.get_or_create(&ReasonLabel { reason });
            catch_up(&counter, &mut invalid[i], src.invalid[i].load(Ordering::Relaxed));
        }
        catch_up(
            &self.dead_letters_truncated,
            truncated,
            src.dead_letters_truncated.load(Ordering::Relaxed),
        );
        let [other, none] = KEY_MISMATCH_REASONS;
        let other = self.key_mismatches.get_or_create(&ReasonLabel { reason: other });
        catch_up(&other, key_mismatch, src.key_mismatch.load(Ordering::Relaxed));
        let none = self.key_mismatches.get_or_create(&ReasonLabel { reason: none });
        catch_up(&none, key_missing, src.key_missing.load(Ordering::Relaxed));
        catch_up(
            &self.consumer_rebuilds,
            rebuilds,
            src.consumer_rebuilds.load(Ordering::Relaxed),
        );
    }

    /// Sets the checkpoint age gauge from the last checkpoint instant (NaN before the first).
    fn sync_checkpoint_age(&self) {
        let age = lock(&self.last_checkpoint).map_or(f64::NAN, |at| at.elapsed().as_secs_f64());
        self.checkpoint_age.set(age);
    }

    /// Syncs the source counters and the checkpoint age, then encodes every series in the
    /// OpenMetrics text format ([`CONTENT_TYPE`]), ending with `# EOF`.
    pub fn encode(&self) -> String {
        self.sync_source();
        self.sync_checkpoint_age();
        self.sync_workers();
        let mut out = String::with_capacity(4096);
        // Writing to a String cannot fail; an encoder error would be a bug in a metric.
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "encoding metrics failed");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(text: &str, series: &str) -> Option<String> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ').map(str::to_string))
    }

    #[test]
    fn source_counters_follow_the_atomics_across_scrapes() {
        let m = RunMetrics::new();
        let src = Arc::new(SourceMetrics::default());
        m.attach_source(src.clone());
        src.messages.store(5, Ordering::Relaxed);
        src.invalid[2].store(2, Ordering::Relaxed);
        src.key_mismatch.store(4, Ordering::Relaxed);
        src.key_missing.store(1, Ordering::Relaxed);
        src.dead_letters_truncated.store(6, Ordering::Relaxed);
        let first = m.encode();
        for (series, want) in [
            ("vigil_key_mismatches_total{reason=\"other_key\"}", "4"),
            ("vigil_key_mismatches_total{reason=\"no_key\"}", "1"),
            ("vigil_dead_letters_truncated_total", "6"),
        ] {
            assert_eq!(value(&first, series).as_deref(), Some(want), "{series}");
        }
        assert_eq!(value(&first, "vigil_events_in_total").as_deref(), Some("5"));
        let series = format!(
            "vigil_events_dead_lettered_total{{reason=\"{}\"}}",
            InvalidReason::CODES[2]
        );
        assert_eq!(value(&first, &series).as_deref(), Some("2"));
        src.messages.store(12, Ordering::Relaxed);
        src.invalid[2].store(3, Ordering::Relaxed);
        m.attach_source(src.clone());
        let second = m.encode();
        assert_eq!(value(&second, "vigil_events_in_total").as_deref(), Some("12"));
        assert_eq!(value(&second, &series).as_deref(), Some("3"));
        assert!(second.ends_with("# EOF\n"));
    }

    #[test]
    fn checkpoint_age_is_nan_until_the_first_checkpoint() {
        let m = RunMetrics::new();
        let before = m.encode();
        assert_eq!(value(&before, "vigil_checkpoint_age_seconds").as_deref(), Some("NaN"));
        m.checkpoint_written(Instant::now() - Duration::from_secs(3));
        let after = m.encode();
        let age: f64 = value(&after, "vigil_checkpoint_age_seconds")
            .expect("age series")
            .parse()
            .expect("a number");
        assert!((3.0..60.0).contains(&age), "age {age}");
        assert_eq!(value(&after, "vigil_checkpoints_written_total").as_deref(), Some("1"));
    }
}
