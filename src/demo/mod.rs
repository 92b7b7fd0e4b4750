//! `vigil demo`: one command, nothing installed. An embedded broker (librdkafka's mock
//! cluster), generated traffic replaying 90 days of event time at an accelerated clock, the
//! full pipeline (Kafka source → scoring core → alerts), and a live view of the riskiest
//! accounts and the alerts.
//!
//! Two runs with one seed print the same alerts in the same order, at any replay speed and
//! however loaded the machine: the partitions' clocks step with event time
//! ([`Clock::EventSteps`], alerts evaluated at each simulated hour); the traffic waits at each
//! simulated midnight until the pipeline has applied everything before it, then the day's
//! alerts are printed in time order and, every two simulated weeks, the models are refitted on
//! the history before that day, so each partition takes them between the same two events.

pub mod generator;
pub mod view;

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use anyhow::Context;
use vigil_connectors::kafka::{self, EmbeddedBroker, KafkaSourceConfig, MessageProducer};
use vigil_engine::scoring::{Alert, AlertKind, ScoringConfig, ScoringCore, ShardId};

use generator::{DAY_MS, HISTORY_DAYS};
use vigil_runtime::partitions::{Partitions, default_workers};
use vigil_runtime::pipeline::{self, Clock, Ticking, wall_ms};

/// Options of `vigil demo`.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Stop after this long (else on Ctrl-C).
    pub duration: Option<Duration>,
    /// Accounts to generate.
    pub accounts: usize,
    /// Random seed of the generated world.
    pub seed: u64,
    /// Wall-clock seconds the 90 days of history take to replay.
    pub replay_secs: f64,
    /// Where the SQL server listens (port 0: any free port).
    pub sql_listen: std::net::SocketAddr,
    /// The SQL server's password (user `vigil`).
    pub sql_password: String,
    /// Stop once the history is replayed and scored (else run on until `duration` or Ctrl-C,
    /// the SQL server answering).
    pub exit_after_replay: bool,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            duration: None,
            accounts: 300,
            seed: 42,
            replay_secs: 60.0,
            sql_listen: std::net::SocketAddr::from(([127, 0, 0, 1], 5433)),
            sql_password: "vigil".into(),
            exit_after_replay: false,
        }
    }
}

/// What a demo run did (printed at the end, and used by tests).
#[derive(Debug, Clone, Default)]
pub struct DemoSummary {
    pub events_produced: u64,
    pub invalid_produced: u64,
    pub events_scored: u64,
    pub dead_lettered: u64,
    pub alerts: Vec<Alert>,
}

const TOPIC: &str = "interactions";
/// The demo's clock step: alerts are evaluated at each simulated hour the events pass.
const CLOCK_STEP_MS: i64 = 3_600_000;
/// Simulated days between two model fits (two weeks: a fit takes seconds on the demo data).
const FIT_EVERY_DAYS: i64 = 14;
/// Longest wait for the pipeline to apply what was produced.
const APPLY_TIMEOUT: Duration = Duration::from_secs(120);

/// The demo's scoring settings: the defaults, with alerts evaluated when the clock steps rather
/// than at the end of each batch (batch boundaries depend on timing; clock steps do not).
fn scoring_config() -> ScoringConfig {
    ScoringConfig {
        alerts_on_apply: false,
        ..ScoringConfig::default()
    }
}

/// Runs the demo until `duration` passes or Ctrl-C.
pub async fn run(opts: DemoOptions) -> anyhow::Result<DemoSummary> {
    let broker = EmbeddedBroker::start().context("starting the embedded broker")?;
    broker.create_topic(TOPIC, 4)?;
    broker.create_topic("interactions.dlq", 1)?;
    println!("vigil demo: embedded Kafka-protocol broker at {}", broker.bootstrap());

    let start_ms = (wall_ms() / DAY_MS - HISTORY_DAYS) * DAY_MS;
    let data = generator::generate(opts.seed, opts.accounts, start_ms);
    let key_accounts = data
        .accounts
        .iter()
        .filter(|a| a.tier == vigil_engine::scoring::Tier::Key)
        .count();
    println!(
        "generated {} accounts ({} key), {} events over {} days; replaying at {:.1} days/s",
        data.accounts.len(),
        key_accounts,
        data.events.len(),
        HISTORY_DAYS,
        HISTORY_DAYS as f64 / opts.replay_secs
    );

    let parts = Partitions::new(scoring_config(), &data.accounts, default_workers())?;

    let mut cfg = KafkaSourceConfig::new(broker.bootstrap());
    cfg.topics = vec![TOPIC.into()];
    cfg.group_id = "vigil-demo".into();
    cfg.max_linger_ms = 20;
    // The mock broker holds a fetch for its full wait when no data is there yet: keep it short,
    // the traffic waits at each simulated midnight for the pipeline to catch up.
    cfg.consumer_properties.insert("fetch.wait.max.ms".into(), "10".into());
    let (source, batches) = kafka::start(cfg, 16)?;

    let alerts: Arc<RwLock<Vec<Alert>>> = Arc::default();
    // History and the live `health` table for SQL, in a fresh data directory.
    let data_dir = std::env::temp_dir().join(format!("vigil-demo-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data_dir);
    let live = vigil_runtime::live::LiveTables::open(&data_dir, &data.accounts, parts.clone())?;
    let fitter = vigil_runtime::models::ModelFitter::new(
        live.analyst.clone(),
        live.models.clone(),
        parts.clone(),
        scoring_config(),
    );

    // Event time runs `speed` times faster than wall time; the traffic waits at each simulated
    // midnight (and for the fits every `FIT_EVERY_DAYS`).
    let sim_now = Arc::new(AtomicI64::new(start_ms));
    let stop = Arc::new(AtomicBool::new(false));
    let applied = Arc::new(AtomicU64::new(0));
    let (replayed_tx, replayed) = tokio::sync::oneshot::channel::<()>();
    let producer = MessageProducer::new(broker.bootstrap(), TOPIC)?;
    let world = Traffic {
        start_ms,
        replay_secs: opts.replay_secs,
        stop: stop.clone(),
        clock: sim_now.clone(),
    };
    let released = Released {
        pending: Arc::default(),
        shown: alerts.clone(),
        start_ms,
    };
    let mut days = Days {
        fitter,
        runtime: tokio::runtime::Handle::current(),
        applied: applied.clone(),
        released: released.clone(),
        stop: stop.clone(),
        start_ms,
        churn_model_shown: false,
    };
    let generator = std::thread::spawn(move || -> anyhow::Result<(u64, u64)> {
        let sent = produce_world(&producer, &data, &world, Some(1), |at_ms, events| {
            days.midnight(at_ms, events)
        })?;
        if days.wait_applied(sent.0)? {
            days.released.print();
            println!(
                "day {:5.1}: the {HISTORY_DAYS} days of history are replayed and scored ({} events)",
                (world.clock.load(Ordering::Relaxed) - start_ms) as f64 / DAY_MS as f64,
                sent.0
            );
            let _ = replayed_tx.send(());
        }
        Ok(sent)
    });

    let duration = opts.duration;
    let exit_after_replay = opts.exit_after_replay;
    let shutdown = async move {
        let replayed = async move {
            match replayed.await {
                Ok(()) if exit_after_replay => {}
                _ => std::future::pending().await,
            }
        };
        let timeout = async move {
            match duration {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = timeout => {}
            _ = replayed => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    };
    let view = view::spawn(parts.clone(), sim_now.clone(), alerts.clone(), start_ms, stop.clone());
    let (sql_stop_tx, sql_stop) = tokio::sync::watch::channel(false);
    let creds = vigil_queries::postgres::Credentials {
        user: "vigil".into(),
        password: opts.sql_password.clone(),
    };
    let started = vigil_runtime::live::start_sql_server(
        opts.sql_listen,
        live.analyst.clone(),
        creds.clone(),
        Default::default(),
        None,
        Default::default(),
        sql_stop.clone(),
    )
    .await;
    let (sql_addr, sql_task) = match started {
        Ok(s) => s,
        // The default port is taken (another demo?): any free port.
        Err(_) => vigil_runtime::live::start_sql_server(
            std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            live.analyst.clone(),
            creds,
            Default::default(),
            None,
            Default::default(),
            sql_stop,
        )
        .await
        .context("starting the SQL server")?,
    };
    println!(
        "SQL (read-only, live state): PGPASSWORD={} psql -h {} -p {} -U vigil -d vigil -c \"SELECT * FROM churn_risk(10)\"",
        opts.sql_password,
        sql_addr.ip(),
        sql_addr.port()
    );
    let mut outputs = DemoOutputs {
        history: vigil_runtime::outputs::RunOutputs {
            events: Some(live.events.clone()),
            late_events: Some(live.late_events.clone()),
            tied_to_checkpoints: false,
            alerts: live.alerts.clone(),
            flush_rows: 100_000,
            hooks: None,
            scores: None,
            print_alerts: false,
            metrics: None,
            lines: Vec::new(),
        },
        pending: released.pending.clone(),
        applied,
    };
    let stats = pipeline::run(
        batches,
        parts.clone(),
        // Deterministic: alerts at each simulated hour the events pass, whatever the batches.
        Clock::EventSteps { step_ms: CLOCK_STEP_MS },
        Ticking::Every(Duration::from_millis(100)),
        &mut outputs,
        None,
        shutdown,
        source.stopper(),
    )
    .await?;
    stop.store(true, Ordering::Relaxed);
    let (produced, bad) = generator.join().map_err(|_| anyhow::anyhow!("generator panicked"))??;
    let _ = view.await;
    // Alerts of a run stopped before its next midnight.
    released.print();
    let metrics = source.metrics().clone();
    tokio::task::spawn_blocking(move || source.join()).await??;
    let alerts = alerts.read().map(|v| v.clone()).unwrap_or_default();
    let _ = sql_stop_tx.send(true);
    let _ = sql_task.await;
    let _ = std::fs::remove_dir_all(&data_dir);
    let summary = DemoSummary {
        events_produced: produced,
        invalid_produced: bad,
        events_scored: stats.events,
        dead_lettered: metrics.invalid_total(),
        alerts,
    };
    println!(
        "\nvigil demo done: {} events produced, {} scored, {} duplicates, {} late, {} invalid → dead-letter topic, {} alerts ({} quiet)",
        summary.events_produced,
        summary.events_scored,
        stats.duplicates,
        stats.late,
        summary.dead_lettered,
        summary.alerts.len(),
        summary.alerts.iter().filter(|a| a.kind == AlertKind::Quiet).count()
    );
    Ok(summary)
}

/// How the generated traffic is paced.
#[derive(Debug, Clone)]
pub struct Traffic {
    /// Event time of day 0.
    pub start_ms: i64,
    /// Wall-clock seconds the `HISTORY_DAYS` take (without the pauses).
    pub replay_secs: f64,
    /// Stop early when it turns true.
    pub stop: Arc<AtomicBool>,
    /// Follows the simulated time.
    pub clock: Arc<AtomicI64>,
}

/// Produces the generated world's events (and its invalid messages) in event-time order,
/// `HISTORY_DAYS` of history in `replay_secs` of wall time, until everything is sent or `stop`.
/// With `pause_every_days`, at each multiple of that many days of simulated time every event
/// before it is sent and flushed, then `pause(at_ms, events_sent)` runs before any later event
/// is sent (its time does not count against the pace). Returns (events, invalid messages)
/// produced.
pub fn produce_world(
    producer: &MessageProducer,
    data: &generator::DemoData,
    traffic: &Traffic,
    pause_every_days: Option<i64>,
    mut pause: impl FnMut(i64, u64) -> anyhow::Result<()>,
) -> anyhow::Result<(u64, u64)> {
    let start_ms = traffic.start_ms;
    let speed = (HISTORY_DAYS * DAY_MS) as f64 / (traffic.replay_secs * 1000.0);
    let t0 = Instant::now();
    let mut paused = Duration::ZERO;
    let (mut next, mut next_bad) = (0usize, 0usize);
    let end_ms = start_ms + HISTORY_DAYS * DAY_MS;
    let every_ms = pause_every_days.map(|d| d.max(1) * DAY_MS);
    let mut next_pause = every_ms.map(|e| start_ms + e);
    // Sends everything before `until` (exclusive).
    let send_before = |until: i64, next: &mut usize, next_bad: &mut usize| -> anyhow::Result<()> {
        while *next < data.events.len() && data.events[*next].ts_ms < until {
            let e = &data.events[*next];
            producer.send(e.account_id.as_bytes(), e.to_json().as_bytes())?;
            *next += 1;
        }
        while *next_bad < data.invalid.len() && data.invalid[*next_bad].0 < until {
            let (_, key, body) = &data.invalid[*next_bad];
            producer.send(key.as_bytes(), body)?;
            *next_bad += 1;
        }
        Ok(())
    };
    while !traffic.stop.load(Ordering::Relaxed) {
        let elapsed = t0.elapsed().saturating_sub(paused).as_secs_f64() * 1000.0;
        let now = ((start_ms as f64 + elapsed * speed) as i64).min(end_ms);
        while let Some(at) = next_pause.filter(|at| *at <= now && *at < end_ms) {
            send_before(at, &mut next, &mut next_bad)?;
            producer.flush(Duration::from_secs(10))?;
            traffic.clock.store(at, Ordering::Relaxed);
            let began = Instant::now();
            pause(at, next as u64)?;
            paused += began.elapsed();
            next_pause = every_ms.map(|e| at + e);
            if traffic.stop.load(Ordering::Relaxed) {
                break;
            }
        }
        send_before(now.saturating_add(1), &mut next, &mut next_bad)?;
        traffic.clock.store(now, Ordering::Relaxed);
        if next == data.events.len() && next_bad == data.invalid.len() && now >= end_ms {
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    producer.flush(Duration::from_secs(10))?;
    Ok((next as u64, next_bad as u64))
}

/// Alerts raised and not yet printed, and the ones printed.
#[derive(Clone)]
struct Released {
    /// Raised by the partitions (in no particular order across partitions).
    pending: Arc<Mutex<Vec<Alert>>>,
    /// Printed, in the order printed (the live view counts them; the summary lists them).
    shown: Arc<RwLock<Vec<Alert>>>,
    start_ms: i64,
}

impl Released {
    /// Prints the pending alerts in time order (then by account and kind).
    fn print(&self) {
        let mut batch = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|p| p.into_inner()));
        batch.sort_by(|a, b| (a.at_ms, &a.account_id, a.kind).cmp(&(b.at_ms, &b.account_id, b.kind)));
        for a in &batch {
            view::print_alert(a, self.start_ms);
        }
        self.shown.write().unwrap_or_else(|p| p.into_inner()).extend(batch);
    }
}

/// What the demo does at each simulated midnight while the traffic waits: the day's alerts, and
/// every `FIT_EVERY_DAYS` the model fits.
struct Days {
    fitter: vigil_runtime::models::ModelFitter,
    runtime: tokio::runtime::Handle,
    /// Events the pipeline has applied (and written to the history).
    applied: Arc<AtomicU64>,
    released: Released,
    stop: Arc<AtomicBool>,
    start_ms: i64,
    churn_model_shown: bool,
}

impl Days {
    /// Waits until the pipeline has applied `events` events; false when the demo stops first.
    fn wait_applied(&self, events: u64) -> anyhow::Result<bool> {
        let deadline = Instant::now() + APPLY_TIMEOUT;
        while self.applied.load(Ordering::Acquire) < events {
            if self.stop.load(Ordering::Relaxed) {
                return Ok(false);
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "the pipeline applied {} of {events} events within {APPLY_TIMEOUT:?}",
                self.applied.load(Ordering::Acquire)
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        Ok(true)
    }

    /// Once every event before `at_ms` (`events` of them) is applied: prints the alerts raised
    /// so far and, on a fit day, fits the models on the history before that day and hands them
    /// to the partitions before any later event is sent.
    fn midnight(&mut self, at_ms: i64, events: u64) -> anyhow::Result<()> {
        if !self.wait_applied(events)? {
            return Ok(());
        }
        self.released.print();
        let day = (at_ms - self.start_ms) / DAY_MS;
        if day % FIT_EVERY_DAYS != 0 {
            return Ok(());
        }
        let date = chrono::DateTime::from_timestamp_millis(at_ms)
            .context("the fit's day")?
            .format("%Y-%m-%d")
            .to_string();
        match self.runtime.block_on(self.fitter.fit_as_of(Some(&date), at_ms)) {
            // The first churn model: from now on churn risk is a probability and its alerts fire
            // at the model's threshold.
            Ok(set) if set.churn.ok().is_some() && !self.churn_model_shown => {
                self.churn_model_shown = true;
                println!("day {day:5}.0: {}", vigil_runtime::models::describe(&set));
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(error = %e, "demo model fit"),
        }
        Ok(())
    }
}

/// The demo's pipeline outputs: history and alerts for SQL; alerts to print at the next
/// midnight, and the count of events applied.
#[derive(Clone)]
struct DemoOutputs {
    history: vigil_runtime::outputs::RunOutputs,
    pending: Arc<Mutex<Vec<Alert>>>,
    /// Events applied and written to the history, over every partition (counted after the
    /// batch's alerts are pending).
    applied: Arc<AtomicU64>,
}

impl DemoOutputs {
    fn hold(&self, alerts: &[Alert]) {
        if !alerts.is_empty() {
            self.pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend_from_slice(alerts);
        }
    }
}

impl pipeline::PipelineSink for DemoOutputs {
    fn on_batch(
        &mut self,
        shard: &ShardId,
        batch: &arrow::array::RecordBatch,
        outcome: &vigil_engine::scoring::ApplyOutcome,
        core: &ScoringCore,
    ) -> vigil_runtime::Result<()> {
        self.history.on_batch(shard, batch, outcome, core)?;
        self.hold(&outcome.alerts);
        self.applied.fetch_add(batch.num_rows() as u64, Ordering::Release);
        Ok(())
    }

    fn on_tick(&mut self, shard: &ShardId, alerts: &[Alert], core: &ScoringCore) -> vigil_runtime::Result<()> {
        self.history.on_tick(shard, alerts, core)?;
        self.hold(alerts);
        Ok(())
    }

    fn after_step(&mut self) -> vigil_runtime::Result<()> {
        self.history.after_step()
    }
}
