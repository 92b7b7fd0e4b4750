//! End-to-end load test of the `vigil run` path against a real Apache Kafka broker (started by
//! `vigil-testkit`): Kafka source (`start_owned` with the checkpoint owner) → `pipeline::run`
//! (partition actors on one worker thread per core, wall clock, 100 ms tick, checkpoints every 10 s / 1 M messages
//! into a temp dir) → a sink that only counts events (and, for latency, reads each row's Kafka
//! timestamp). Not criterion: each phase is one long run, reported by this program.
//!
//! Phases (`VIGIL_E2E_PHASES`, comma-separated, default `throughput,latency,memory`):
//! - `throughput`: `VIGIL_E2E_EVENTS` (default 2,000,000) contract-v1 events over 100,000
//!   accounts, keyed by account, 4 partitions, pre-produced once; then `VIGIL_E2E_RUNS` (default
//!   3) alternations of a bare rdkafka `BaseConsumer` loop over the whole topic and the vigil
//!   pipeline over the whole topic, each with a fresh group.
//! - `latency`: offered rates `VIGIL_E2E_RATES` (default `10000,50000,100000` events/s) for
//!   `VIGIL_E2E_SECONDS` (default 25) each, on a fixed schedule: every millisecond the producer
//!   sends that millisecond's events with the Kafka timestamp set to the *intended* send time,
//!   so latency = (wall time in the sink's `on_batch`, after `apply_batch`) − intended time, which
//!   is corrected for coordinated omission. The first 2 s of each rate are not recorded.
//! - `memory`: 1,000,000 accounts × 2 events; RSS (VmRSS, VmHWM from /proc/self/status, peak
//!   reset through /proc/self/clear_refs) before the pipeline starts and after it applied them,
//!   and `ScoringCore::stats().state_bytes` summed over the shards.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arrow::array::{Array, TimestampMillisecondArray};
use hdrhistogram::Histogram;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use tokio::sync::oneshot;
use vigil::config::CheckpointConfig;
use vigil::sample::contract_event;
use vigil_connectors::SourceMetrics;
use vigil_connectors::kafka::config::DEFAULT_MAX_LINGER_MS;
use vigil_connectors::kafka::{self, KafkaSourceConfig};
use vigil_engine::schema::KAFKA_TIMESTAMP;
use vigil_engine::scoring::{Alert, ApplyOutcome, ScoringConfig, ScoringCore, ShardId};
use vigil_runtime::checkpoint::{CheckpointOwner, CheckpointStore};
use vigil_runtime::partitions::{Partitions, default_workers};
use vigil_runtime::pipeline::{self, Checkpointing, Clock, PipelineSink, PipelineStats, Ticking};
use vigil_testkit::{KafkaBroker, broker, unique_name};

const PARTITIONS: i32 = 4;
/// The channel capacity `vigil run` uses.
const CHANNEL: usize = 16;
/// `vigil run`'s default `tick_ms`.
const TICK: Duration = Duration::from_millis(100);
/// Latency samples of the first seconds of each rate are not recorded (warm-up).
const LATENCY_WARMUP_MS: i64 = 2_000;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().replace('_', "").parse().ok())
        .unwrap_or(default)
}

fn wall_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// CPU time (user + system) of this process so far, in seconds (Linux's USER_HZ is 100).
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces) in parentheses.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest.split_whitespace().map(|v| v.parse().unwrap_or(0)).collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    f.get(11).zip(f.get(12)).map_or(0.0, |(u, s)| (u + s) as f64 / 100.0)
}

/// `(VmRSS, VmHWM)` of this process in KiB.
fn rss_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn producer(b: &KafkaBroker, linger_ms: &str) -> ThreadedProducer<DefaultProducerContext> {
    b.client_config()
        .set("compression.type", "lz4")
        .set("linger.ms", linger_ms)
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "1000000")
        .set("message.timeout.ms", "60000")
        .create()
        .expect("producer")
}

/// Sends one message, waiting while the producer's queue is full.
fn send(p: &ThreadedProducer<DefaultProducerContext>, topic: &str, key: &[u8], value: &[u8], ts_ms: Option<i64>) {
    let mut rec = BaseRecord::<[u8], [u8]>::to(topic).key(key).payload(value);
    if let Some(ts) = ts_ms {
        rec = rec.timestamp(ts);
    }
    loop {
        match p.send(rec) {
            Ok(()) => return,
            Err((e, r)) => {
                assert!(
                    matches!(
                        e.rdkafka_error_code(),
                        Some(rdkafka::types::RDKafkaErrorCode::QueueFull)
                    ),
                    "produce: {e}"
                );
                rec = r;
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    }
}

/// Produces events `0..n` (account `(i * 7919) % accounts`, time `ts0 + i * step`), keyed by
/// account. Returns the payload bytes.
fn fill_topic(b: &KafkaBroker, topic: &str, n: usize, accounts: usize, ts0: i64, step_ms: i64) -> u64 {
    let p = producer(b, "5");
    let mut bytes = 0;
    for i in 0..n {
        let e = contract_event(i, accounts, ts0 + i as i64 * step_ms);
        let v = e.to_json();
        bytes += v.len() as u64;
        send(&p, topic, e.account_id.as_bytes(), v.as_bytes(), None);
    }
    p.flush(Duration::from_secs(120)).expect("flush");
    bytes
}

/// A new topic named from `prefix`, filled with `n` events over `accounts` accounts whose times
/// lie within the last two days (inside the 7-day lateness of a wall clock), 50 ms apart.
/// Returns the topic, the bytes produced and when production started.
fn new_filled_topic(b: &KafkaBroker, prefix: &str, n: usize, accounts: usize) -> (String, u64, Instant) {
    let topic = unique_name(prefix);
    b.create_topic(&topic, PARTITIONS);
    let ts0 = pipeline::wall_ms() - 2 * 86_400_000;
    let t = Instant::now();
    let bytes = fill_topic(b, &topic, n, accounts, ts0, 50);
    (topic, bytes, t)
}

fn source_config(b: &KafkaBroker, topic: &str, prefix: &str) -> KafkaSourceConfig {
    let mut cfg = KafkaSourceConfig::new(&b.bootstrap);
    cfg.topics = vec![topic.to_string()];
    cfg.group_id = unique_name(prefix);
    cfg.dead_letter_topic = format!("{topic}.dlq");
    cfg
}

/// Latency recording in the sink.
#[derive(Clone)]
struct Latency {
    hist: Histogram<u64>,
    /// Kafka timestamp from which samples are recorded: the first one seen plus the warm-up.
    record_from_ms: Option<i64>,
    last_apply_us: i64,
}

/// Counts rows; stops the pipeline (through `done`) once `target` rows were applied. Every
/// partition worker has a copy; the counts are shared.
#[derive(Clone)]
struct CountingSink {
    shared: Arc<Counting>,
}

struct Counting {
    rows: AtomicU64,
    target: u64,
    started: Instant,
    reached: OnceLock<Duration>,
    done: Mutex<Option<oneshot::Sender<()>>>,
    latency: Option<Mutex<Latency>>,
}

impl PipelineSink for CountingSink {
    fn on_batch(
        &mut self,
        _shard: &ShardId,
        batch: &arrow::array::RecordBatch,
        _outcome: &ApplyOutcome,
        _core: &ScoringCore,
    ) -> vigil_runtime::Result<()> {
        let c = &*self.shared;
        if let Some(l) = &c.latency {
            let now = wall_us();
            let mut l = l.lock().expect("latency");
            l.last_apply_us = l.last_apply_us.max(now);
            if let Some(ts) = batch
                .column(KAFKA_TIMESTAMP)
                .as_any()
                .downcast_ref::<TimestampMillisecondArray>()
            {
                for t in ts.iter().flatten() {
                    let from = *l.record_from_ms.get_or_insert(t + LATENCY_WARMUP_MS);
                    if t >= from {
                        l.hist.saturating_record((now - t * 1000).max(0) as u64);
                    }
                }
            }
        }
        let rows = c.rows.fetch_add(batch.num_rows() as u64, Ordering::Relaxed) + batch.num_rows() as u64;
        if rows >= c.target
            && c.reached.set(c.started.elapsed()).is_ok()
            && let Some(tx) = c.done.lock().expect("done").take()
        {
            let _ = tx.send(());
        }
        Ok(())
    }

    fn on_tick(&mut self, _shard: &ShardId, _alerts: &[Alert], _core: &ScoringCore) -> vigil_runtime::Result<()> {
        Ok(())
    }
}

struct VigilRun {
    /// Start (before creating the source) to the target row count applied.
    to_target: Duration,
    /// Start to the pipeline's return (drain, last tick, final checkpoint).
    total: Duration,
    stats: PipelineStats,
    parts: Partitions,
    /// Rows that reached the sink.
    rows: u64,
    latency: Option<Latency>,
    source_batches: u64,
}

/// Runs the pipeline as `vigil run` wires it until `target` rows were applied (or `timeout`).
/// `ready` is set once the source holds its assignment.
fn run_vigil(
    rt: &tokio::runtime::Runtime,
    cfg: KafkaSourceConfig,
    target: u64,
    latency: Option<Latency>,
    ready: Option<Arc<AtomicBool>>,
    timeout: Duration,
) -> VigilRun {
    let dir = tempfile::tempdir().expect("tempdir");
    let ck = CheckpointConfig::default();
    let parts = Partitions::new(ScoringConfig::default(), &[], default_workers()).expect("partitions");
    let (done_tx, done_rx) = oneshot::channel();
    let started = Instant::now();
    let mut sink = CountingSink {
        shared: Arc::new(Counting {
            rows: AtomicU64::new(0),
            target,
            started,
            reached: OnceLock::new(),
            done: Mutex::new(Some(done_tx)),
            latency: latency.map(Mutex::new),
        }),
    };
    let (stats, source_batches) = rt.block_on(async {
        let store = CheckpointStore::open(dir.path().join("checkpoints")).expect("store");
        let (owner, requests) = CheckpointOwner::new(Duration::from_millis(ck.restore_timeout_ms));
        let checkpoints = Checkpointing {
            store,
            interval: Duration::from_millis(ck.interval_ms.max(1)),
            max_messages: ck.max_messages,
            requests,
        };
        let (source, batches) = kafka::start_owned(cfg, CHANNEL, Arc::new(owner)).expect("source");
        let metrics = source.metrics().clone();
        if let Some(ready) = ready {
            let m = metrics.clone();
            tokio::spawn(async move {
                while SourceMetrics::get(&m.rebalances) == 0 {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                ready.store(true, Ordering::SeqCst);
            });
        }
        let shutdown = async move {
            tokio::select! {
                _ = done_rx => {}
                _ = tokio::time::sleep(timeout) => eprintln!("  (timed out waiting for {target} rows)"),
            }
        };
        let stats = pipeline::run(
            batches,
            parts.clone(),
            Clock::Wall,
            Ticking::Every(TICK),
            &mut sink,
            Some(checkpoints),
            shutdown,
            source.stopper(),
        )
        .await
        .expect("pipeline");
        tokio::task::spawn_blocking(move || source.join())
            .await
            .expect("join task")
            .expect("source");
        (stats, SourceMetrics::get(&metrics.batches))
    });
    let total = started.elapsed();
    let c = &*sink.shared;
    VigilRun {
        to_target: c.reached.get().copied().unwrap_or(total),
        total,
        stats,
        parts,
        rows: c.rows.load(Ordering::Relaxed),
        latency: c.latency.as_ref().map(|l| l.lock().expect("latency").clone()),
        source_batches,
    }
}

/// The bare loop: subscribe with a fresh group, poll until `n` messages, touch each payload.
fn bare_once(b: &KafkaBroker, topic: &str, n: usize) -> Duration {
    let cfg = source_config(b, topic, "bare");
    let start = Instant::now();
    let consumer: BaseConsumer = cfg.consumer_config().create().expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let mut got = 0;
    let mut sum = 0usize;
    while got < n {
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            // The source's configuration reports each partition's end (its caught-up signal).
            let m = match m {
                Err(rdkafka::error::KafkaError::PartitionEOF(_)) => continue,
                m => m.expect("message"),
            };
            sum = sum.wrapping_add(m.payload().map_or(0, |p| p.len() + usize::from(p[0])));
            got += 1;
        }
    }
    let elapsed = start.elapsed();
    black_box(sum);
    elapsed
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    if !s.len().is_multiple_of(2) {
        s[s.len() / 2]
    } else {
        (s[s.len() / 2 - 1] + s[s.len() / 2]) / 2.0
    }
}

fn range(v: &[f64]) -> (f64, f64) {
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (lo, hi)
}

fn throughput(b: &KafkaBroker, rt: &tokio::runtime::Runtime) {
    let n = env_usize("VIGIL_E2E_EVENTS", 2_000_000);
    let accounts = env_usize("VIGIL_E2E_ACCOUNTS", 100_000);
    let runs = env_usize("VIGIL_E2E_RUNS", 3).max(1);
    let (topic, bytes, t) = new_filled_topic(b, "e2e_throughput", n, accounts);
    eprintln!(
        "throughput: topic {topic}: {n} events, {accounts} accounts, {PARTITIONS} partitions, lz4, {:.1} B/event, \
         produced in {:.1} s; load {}",
        bytes as f64 / n as f64,
        t.elapsed().as_secs_f64(),
        loadavg()
    );
    let (mut bare, mut vig, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for run in 1..=runs {
        let load0 = loadavg();
        let cpu0 = cpu_secs();
        let d = bare_once(b, &topic, n);
        let bare_rate = n as f64 / d.as_secs_f64();
        eprintln!(
            "  run {run} bare rdkafka loop: {:.2} s, {:.0} events/s, CPU {:.2} cores; load {load0} -> {}",
            d.as_secs_f64(),
            bare_rate,
            (cpu_secs() - cpu0) / d.as_secs_f64(),
            loadavg()
        );
        let load0 = loadavg();
        let cpu0 = cpu_secs();
        let v = run_vigil(
            rt,
            source_config(b, &topic, "vigil"),
            n as u64,
            None,
            None,
            Duration::from_secs(600),
        );
        assert_eq!(v.rows, n as u64, "every event reached the sink");
        assert_eq!(v.stats.events, n as u64, "every event applied (none late or duplicate)");
        let vigil_rate = n as f64 / v.to_target.as_secs_f64();
        let cpu = (cpu_secs() - cpu0) / v.total.as_secs_f64();
        let accts = v.parts.accounts().unwrap_or(0);
        let busy: Vec<String> = v
            .parts
            .worker_load()
            .iter()
            .map(|l| format!("{} partitions {:.2} s", l.partitions, l.busy.as_secs_f64()))
            .collect();
        eprintln!(
            "  run {run} vigil pipeline: {:.2} s to the last event applied, {:.0} events/s ({:.2} s incl. drain + final \
             checkpoint, CPU {cpu:.2} cores; scoring threads busy: {}); {} batches (mean {:.0} rows), {} checkpoints, \
             {} alerts, {accts} accounts; load {load0} -> {}",
            v.to_target.as_secs_f64(),
            vigil_rate,
            v.total.as_secs_f64(),
            busy.join(", "),
            v.source_batches,
            n as f64 / v.source_batches.max(1) as f64,
            v.stats.checkpoints,
            v.stats.alerts,
            loadavg()
        );
        bare.push(bare_rate);
        vig.push(vigil_rate);
        ratios.push(vigil_rate / bare_rate);
    }
    let (bl, bh) = range(&bare);
    let (vl, vh) = range(&vig);
    let (rl, rh) = range(&ratios);
    eprintln!(
        "THROUGHPUT bare: median {:.0} events/s (range {bl:.0}-{bh:.0}); vigil: median {:.0} events/s (range \
         {vl:.0}-{vh:.0}); ratio of medians {:.3}; per-run ratios median {:.3} (range {rl:.3}-{rh:.3})",
        median(&bare),
        median(&vig),
        median(&vig) / median(&bare),
        median(&ratios),
    );
}

struct ProducerReport {
    sent: u64,
    /// Wall ms of the first and last intended send.
    first_ms: i64,
    last_ms: i64,
    /// Greatest delay of a millisecond's sends behind their intended time.
    max_slip_ms: i64,
    /// Wall ms when the last message was handed to the producer.
    finished_ms: i64,
}

/// Sends `rate` events/s for `seconds` on a fixed per-millisecond schedule, each with its
/// intended send time as the Kafka timestamp.
fn scheduled_producer(b: &KafkaBroker, topic: &str, rate: usize, seconds: usize, accounts: usize) -> ProducerReport {
    let p = producer(b, "1");
    let per_ms = (rate / 1000).max(1);
    let start_ms = pipeline::wall_ms() + 50;
    let mut max_slip_ms = 0;
    let mut sent = 0u64;
    for t in 0..(seconds * 1000) as i64 {
        let intended = start_ms + t;
        loop {
            let now_us = wall_us();
            let wait = intended * 1000 - now_us;
            if wait <= 0 {
                max_slip_ms = max_slip_ms.max(-wait / 1000);
                break;
            }
            std::thread::sleep(Duration::from_micros(wait as u64));
        }
        for j in 0..per_ms {
            let i = t as usize * per_ms + j;
            let e = contract_event(i, accounts, intended);
            let v = e.to_json();
            send(&p, topic, e.account_id.as_bytes(), v.as_bytes(), Some(intended));
            sent += 1;
        }
    }
    let finished_ms = pipeline::wall_ms();
    p.flush(Duration::from_secs(60)).expect("flush");
    ProducerReport {
        sent,
        first_ms: start_ms,
        last_ms: start_ms + (seconds * 1000) as i64 - 1,
        max_slip_ms,
        finished_ms,
    }
}

fn latency(b: &KafkaBroker, rt: &tokio::runtime::Runtime) {
    let rates: Vec<usize> = std::env::var("VIGIL_E2E_RATES")
        .unwrap_or_else(|_| "10000,50000,100000".into())
        .split(',')
        .filter_map(|r| r.trim().replace('_', "").parse().ok())
        .collect();
    let seconds = env_usize("VIGIL_E2E_SECONDS", 25);
    let accounts = env_usize("VIGIL_E2E_ACCOUNTS", 100_000);
    let linger = std::env::var("VIGIL_E2E_LINGER_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_MAX_LINGER_MS);
    eprintln!(
        "latency: {seconds} s per rate, {accounts} accounts, source max_linger_ms = {linger}, producer linger.ms = 1, \
         first {LATENCY_WARMUP_MS} ms not recorded"
    );
    for rate in rates {
        let topic = unique_name("e2e_latency");
        b.create_topic(&topic, PARTITIONS);
        let per_ms = (rate / 1000).max(1);
        let total = (per_ms * seconds * 1000) as u64;
        let ready = Arc::new(AtomicBool::new(false));
        let load0 = loadavg();
        let (report, v) = std::thread::scope(|s| {
            let ready2 = ready.clone();
            let topic2 = topic.clone();
            let prod = s.spawn(move || {
                while !ready2.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(10));
                }
                // Let the consumer's first fetch go out.
                std::thread::sleep(Duration::from_millis(500));
                scheduled_producer(b, &topic2, rate, seconds, accounts)
            });
            let mut cfg = source_config(b, &topic, "latency");
            cfg.max_linger_ms = linger;
            let lat = Latency {
                hist: Histogram::new_with_bounds(1, 600_000_000, 3).expect("histogram"),
                record_from_ms: None,
                last_apply_us: 0,
            };
            let v = run_vigil(
                rt,
                cfg,
                total,
                Some(lat),
                Some(ready.clone()),
                Duration::from_secs(seconds as u64 + 60),
            );
            (prod.join().expect("producer"), v)
        });
        report_latency(rate, seconds, &report, &v, &load0);
    }
}

fn report_latency(rate: usize, seconds: usize, report: &ProducerReport, v: &VigilRun, load0: &str) {
    let l = v.latency.as_ref().expect("latency");
    let h = &l.hist;
    let ms = |us: u64| us as f64 / 1000.0;
    let offered = report.sent as f64 / ((report.last_ms - report.first_ms + 1) as f64 / 1000.0);
    let send_span = (report.finished_ms - report.first_ms) as f64 / 1000.0;
    let drain_ms = l.last_apply_us / 1000 - report.last_ms;
    eprintln!(
        "LATENCY rate {rate}/s ({seconds} s): sent {} (schedule {offered:.0}/s, handed to the producer over {send_span:.2} s, \
         max slip {} ms); applied {} of {}; recorded {} samples: p50 {:.1} ms, p99 {:.1} ms, p99.9 {:.1} ms, max \
         {:.1} ms, mean {:.1} ms; last event applied {drain_ms} ms after its intended send; {} batches (mean {:.0} \
         rows); load {load0} -> {}",
        report.sent,
        report.max_slip_ms,
        v.rows,
        report.sent,
        h.len(),
        ms(h.value_at_quantile(0.5)),
        ms(h.value_at_quantile(0.99)),
        ms(h.value_at_quantile(0.999)),
        ms(h.max()),
        h.mean() / 1000.0,
        v.source_batches,
        v.rows as f64 / v.source_batches.max(1) as f64,
        loadavg(),
    );
}

fn memory(b: &KafkaBroker, rt: &tokio::runtime::Runtime) {
    let accounts = env_usize("VIGIL_E2E_MEM_ACCOUNTS", 1_000_000);
    let n = accounts * 2;
    let (topic, bytes, t) = new_filled_topic(b, "e2e_memory", n, accounts);
    eprintln!(
        "memory: topic {topic}: {n} events over {accounts} accounts ({:.1} B/event), produced in {:.1} s",
        bytes as f64 / n as f64,
        t.elapsed().as_secs_f64()
    );
    // Reset the peak (VmHWM) to the current RSS, so the peak is the pipeline's.
    let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let (rss0, hwm0) = rss_kib();
    let v = run_vigil(
        rt,
        source_config(b, &topic, "memory"),
        n as u64,
        None,
        None,
        Duration::from_secs(900),
    );
    let (rss1, hwm1) = rss_kib();
    let (state, per_account, accts, dedup) = {
        let mut state = 0usize;
        let mut dedup = 0usize;
        let mut accts = 0usize;
        for (_, s) in v.parts.each(|_, core| core.stats()).expect("partitions") {
            state += s.state_bytes;
            dedup += s.dedup_bytes;
            accts += s.accounts;
        }
        (state, state as f64 / accts.max(1) as f64, accts, dedup)
    };
    let mib = |kib: u64| kib as f64 / 1024.0;
    eprintln!(
        "MEMORY {accts} accounts, {} events applied in {:.1} s: before VmRSS {:.1} MiB (VmHWM {:.1} MiB, peak reset \
         {reset}); after VmRSS {:.1} MiB, VmHWM {:.1} MiB; VmRSS growth {:.1} MiB = {:.0} B/account, VmHWM - VmRSS \
         before {:.1} MiB; state_bytes over shards {:.1} MiB ({per_account:.0} B/account), dedup_bytes {:.1} MiB",
        v.stats.events,
        v.to_target.as_secs_f64(),
        mib(rss0),
        mib(hwm0),
        mib(rss1),
        mib(hwm1),
        mib(rss1.saturating_sub(rss0)),
        rss1.saturating_sub(rss0) as f64 * 1024.0 / accts.max(1) as f64,
        mib(hwm1.saturating_sub(rss0)),
        state as f64 / 1_048_576.0,
        dedup as f64 / 1_048_576.0,
    );
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is read from the command line.
    let phases = std::env::var("VIGIL_E2E_PHASES").unwrap_or_else(|_| "throughput,latency,memory".into());
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let b = broker();
    eprintln!(
        "e2e: broker {} (its JVM shares this machine's {} CPUs); load {}",
        b.bootstrap,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        loadavg()
    );
    for phase in phases.split(',').map(str::trim) {
        match phase {
            "throughput" => throughput(b, &rt),
            "latency" => latency(b, &rt),
            "memory" => memory(b, &rt),
            "" => {}
            other => panic!("unknown phase `{other}`"),
        }
    }
}
