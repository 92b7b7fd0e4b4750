//! `vigil demo`: one command, nothing installed. An embedded broker (librdkafka's mock
//! cluster), generated traffic replaying 90 days of event time at an accelerated clock, the
//! full pipeline (Kafka source → scoring core → alerts), and a live view of the riskiest
//! accounts and the alerts.

pub mod generator;
pub mod view;

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
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

    let parts = Partitions::new(ScoringConfig::default(), &data.accounts, default_workers())?;

    let mut cfg = KafkaSourceConfig::new(broker.bootstrap());
    cfg.topics = vec![TOPIC.into()];
    cfg.group_id = "vigil-demo".into();
    cfg.max_linger_ms = 20;
    let (source, batches) = kafka::start(cfg, 16)?;

    // Event time runs `speed` times faster than wall time until it reaches now.
    let sim_now = Arc::new(AtomicI64::new(start_ms));
    let stop = Arc::new(AtomicBool::new(false));
    let producer = MessageProducer::new(broker.bootstrap(), TOPIC)?;
    let gen_stop = stop.clone();
    let gen_clock = sim_now.clone();
    let replay_secs = opts.replay_secs;
    let accounts = data.accounts.clone();
    let generator = std::thread::spawn(move || {
        produce_world(&producer, &data, start_ms, replay_secs, false, &gen_stop, &gen_clock)
    });

    let alerts: Arc<RwLock<Vec<Alert>>> = Arc::default();
    let duration = opts.duration;
    let shutdown = async move {
        match duration {
            Some(d) => {
                tokio::select! {
                    _ = tokio::time::sleep(d) => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            None => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    };
    // History and the live `health` table for SQL, in a fresh data directory.
    let data_dir = std::env::temp_dir().join(format!("vigil-demo-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data_dir);
    let live = vigil_runtime::live::LiveTables::open(&data_dir, &accounts, parts.clone())?;
    let fitter = vigil_runtime::models::ModelFitter::new(
        live.analyst.clone(),
        live.models.clone(),
        parts.clone(),
        ScoringConfig::default(),
    );
    let view = view::spawn(
        parts.clone(),
        fitter,
        sim_now.clone(),
        alerts.clone(),
        start_ms,
        stop.clone(),
    );
    let (sql_stop_tx, sql_stop) = tokio::sync::watch::channel(false);
    let creds = vigil_queries::server::Credentials {
        user: "vigil".into(),
        password: opts.sql_password.clone(),
    };
    let started =
        vigil_runtime::live::start_sql_server(opts.sql_listen, live.analyst.clone(), creds.clone(), sql_stop.clone())
            .await;
    let (sql_addr, sql_task) = match started {
        Ok(s) => s,
        // The default port is taken (another demo?): any free port.
        Err(_) => vigil_runtime::live::start_sql_server(
            std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            live.analyst.clone(),
            creds,
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
        view: alerts.clone(),
        start_ms,
        shown: Vec::new(),
    };
    let stats = pipeline::run(
        batches,
        parts.clone(),
        // At most half a day past the newest event applied: events still in flight through
        // Kafka are never mistaken for silence.
        Clock::Shared {
            time: sim_now.clone(),
            max_ahead_ms: DAY_MS / 2,
        },
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

/// Produces the generated world's events (and its invalid messages) in event-time order,
/// `HISTORY_DAYS` of history in `replay_secs` of wall time, then on at wall-clock pace, until
/// `stop` (or, with `until_done`, once everything is sent); `clock` follows the simulated time.
/// Returns (events, invalid messages) produced.
pub fn produce_world(
    producer: &MessageProducer,
    data: &generator::DemoData,
    start_ms: i64,
    replay_secs: f64,
    until_done: bool,
    stop: &AtomicBool,
    clock: &AtomicI64,
) -> anyhow::Result<(u64, u64)> {
    let speed = (HISTORY_DAYS * DAY_MS) as f64 / (replay_secs * 1000.0);
    let t0 = Instant::now();
    let (mut next, mut next_bad) = (0usize, 0usize);
    let end_ms = start_ms + HISTORY_DAYS * DAY_MS;
    while !stop.load(Ordering::Relaxed) {
        let elapsed = t0.elapsed().as_millis() as f64;
        let now = (start_ms as f64 + elapsed * speed) as i64;
        let now = if now >= end_ms {
            end_ms + (elapsed - replay_secs * 1000.0) as i64
        } else {
            now
        };
        while next < data.events.len() && data.events[next].ts_ms <= now {
            let e = &data.events[next];
            producer.send(e.account_id.as_bytes(), e.to_json().as_bytes())?;
            next += 1;
        }
        while next_bad < data.invalid.len() && data.invalid[next_bad].0 <= now {
            let (_, key, body) = &data.invalid[next_bad];
            producer.send(key.as_bytes(), body)?;
            next_bad += 1;
        }
        clock.store(now, Ordering::Relaxed);
        if until_done && next == data.events.len() && next_bad == data.invalid.len() && now >= end_ms {
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    producer.flush(Duration::from_secs(10))?;
    Ok((next as u64, next_bad as u64))
}

/// The demo's pipeline outputs: history and alerts for SQL, alerts to the live view.
#[derive(Clone)]
struct DemoOutputs {
    history: vigil_runtime::outputs::RunOutputs,
    view: Arc<RwLock<Vec<Alert>>>,
    start_ms: i64,
    /// Alerts to print after the step (not under the core's lock).
    shown: Vec<Alert>,
}

impl DemoOutputs {
    fn show(&mut self, alerts: &[Alert]) {
        self.shown.extend_from_slice(alerts);
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
        self.show(&outcome.alerts);
        Ok(())
    }

    fn on_tick(&mut self, shard: &ShardId, alerts: &[Alert], core: &ScoringCore) -> vigil_runtime::Result<()> {
        self.history.on_tick(shard, alerts, core)?;
        self.show(alerts);
        Ok(())
    }

    fn after_step(&mut self) -> vigil_runtime::Result<()> {
        for a in self.shown.drain(..) {
            view::print_alert(&a, self.start_ms);
            if let Ok(mut v) = self.view.write() {
                v.push(a);
            }
        }
        self.history.after_step()
    }
}
