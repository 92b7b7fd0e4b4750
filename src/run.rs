//! `vigil run`: the continuous pipeline from a Kafka topic, 24/7: Kafka source → scoring core →
//! history, alerts (stdout, hooks through the durable outbox), scores topic, SQL rules, and the
//! analyst SQL server over the live state. SIGTERM or Ctrl-C: stop consuming, finish the
//! batches in flight, commit, write the history tails, stop the hooks (undelivered alerts stay
//! in the outbox for the next start), exit 0.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::sync::{mpsc, watch};
use vigil_connectors::kafka::{self, KafkaScoresSink};
use vigil_connectors::outbox::{HookAlert, HookDispatcher};
use vigil_connectors::routing::HooksConfig;
use vigil_engine::rules::RuleAlert;
use vigil_queries::postgres::Credentials;
use vigil_queries::rules::RuleSet;

use crate::config::{ClockMode, VigilConfig};
use crate::http::Health;
use vigil_runtime::checkpoint::{CheckpointOwner, CheckpointStore};
use vigil_runtime::live::{LiveTables, start_sql_server};
use vigil_runtime::metrics::RunMetrics;
use vigil_runtime::models::ModelFitter;
use vigil_runtime::outputs::{PendingScores, RunOutputs, tier_of, write_outbox};
use vigil_runtime::partitions::{Partitions, default_workers};
use vigil_runtime::pipeline::{self, Clock, PipelineStats, Ticking};

async fn terminated() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Turns rule alerts into hook alerts (tier from the live state) and hands them on.
async fn forward_rule_alerts(
    mut rx: mpsc::Receiver<RuleAlert>,
    parts: Partitions,
    hooks: Option<mpsc::UnboundedSender<Vec<HookAlert>>>,
    print: bool,
    metrics: Arc<RunMetrics>,
) {
    while let Some(alert) = rx.recv().await {
        metrics.alert_raised("rule");
        let (parts, id) = (parts.clone(), alert.account_id.clone());
        let is_key = tokio::task::spawn_blocking(move || parts.is_key(&id))
            .await
            .is_ok_and(|k| k.unwrap_or(false));
        let tier = tier_of(is_key);
        let hook = HookAlert::from_rule(&alert, tier);
        if print && let Ok(line) = serde_json::to_string(&hook) {
            println!("{line}");
        }
        if let Some(tx) = &hooks
            && tx.send(vec![hook]).is_err()
        {
            return;
        }
    }
}

/// Every second: consumer lag and hook delivery counts into the metrics;
/// ready while the source holds partitions (restored) and runs; stalled (`/healthz` 503) by
/// the rules of [`vigil_connectors::stall::StallWatch`] with the bound `stall_after`, or when
/// the scores topic has refused every send for that long.
async fn observe(
    source: Arc<vigil_connectors::SourceMetrics>,
    scores: Option<Arc<PendingScores>>,
    hooks: Option<Arc<HookDispatcher>>,
    metrics: Arc<RunMetrics>,
    health: Arc<Health>,
    stall_after: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let (mut delivered, mut failed) = (0u64, 0u64);
    let mut stall = vigil_connectors::stall::StallWatch::default();
    loop {
        for ((topic, partition), lag) in source.lag() {
            metrics.set_lag(&topic, partition, lag);
        }
        if let Some(d) = &hooks {
            let stats = d.stats();
            let now_delivered: u64 = stats.values().map(|s| s.delivered).sum();
            let now_failed: u64 = stats.values().map(|s| s.parked).sum();
            metrics.alerts_delivered(now_delivered.saturating_sub(delivered));
            metrics.alerts_failed(now_failed.saturating_sub(failed));
            (delivered, failed) = (now_delivered.max(delivered), now_failed.max(failed));
        }
        let now = Instant::now();
        let view = source.view(now);
        health.set_ready(view.assigned > 0 && !*stop.borrow());
        let sink_failing = scores
            .as_ref()
            .and_then(|s| s.failing_for())
            .filter(|(for_, _)| *for_ >= stall_after)
            .map(|(for_, why)| format!("scores topic: sending has failed for {} s: {why}", for_.as_secs()));
        health.set_stalled(stall.check(now, &view, stall_after).or(sink_failing));
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Runs the pipeline until SIGTERM/Ctrl-C.
pub async fn run(cfg: VigilConfig) -> anyhow::Result<PipelineStats> {
    run_until(cfg, terminated()).await
}

/// Runs the pipeline until `shutdown` completes.
pub async fn run_until(cfg: VigilConfig, shutdown: impl Future<Output = ()>) -> anyhow::Result<PipelineStats> {
    let workers = if cfg.workers == 0 {
        default_workers()
    } else {
        cfg.workers
    };
    let parts = Partitions::new(cfg.scoring.clone(), &cfg.accounts, workers)?;
    let metrics = RunMetrics::new();
    let health = Health::new();
    let live = LiveTables::open(&cfg.data_dir, &cfg.accounts, parts.clone())?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = Vec::new();

    // Rules are planned before anything starts: a rule that does not plan is a config error.
    let rules = RuleSet::plan(live.analyst.context(), &cfg.rules)
        .await
        .context("planning [[rules]]")?;

    // Hooks: alerts go to the durable outbox first, then to each hook.
    let (hook_tx, dispatcher) = if cfg.hooks.is_empty() {
        (None, None)
    } else {
        let hooks_cfg = HooksConfig {
            outbox: cfg.outbox(),
            hooks: cfg.hooks.clone(),
        };
        let dispatcher = Arc::new(HookDispatcher::start(&hooks_cfg).context("starting the hooks")?);
        let (tx, rx) = mpsc::unbounded_channel();
        tasks.push(tokio::spawn(write_outbox(dispatcher.clone(), rx)));
        tracing::info!(hooks = cfg.hooks.len(), outbox = %hooks_cfg.outbox.dir.display(), "hooks started");
        (Some(tx), Some(dispatcher))
    };

    if !rules.is_empty() {
        let (tx, rx) = mpsc::channel(1024);
        tasks.push(tokio::spawn(forward_rule_alerts(
            rx,
            parts.clone(),
            hook_tx.clone(),
            cfg.print_alerts,
            metrics.clone(),
        )));
        let ctx = live.analyst.context().clone();
        let stop = stop_rx.clone();
        tasks.push(tokio::spawn(async move {
            vigil_queries::rules::run(ctx, rules, pipeline::wall_ms, tx, stop).await;
        }));
    }

    let scores = match &cfg.scores {
        Some(c) => {
            let sink = KafkaScoresSink::new(c).context("scores topic")?;
            let pending = Arc::new(PendingScores::default());
            tasks.push(tokio::spawn(pending.clone().run(sink, stop_rx.clone())));
            Some(pending)
        }
        None => None,
    };

    let server = match &cfg.sql.password {
        Some(password) if !password.is_empty() => {
            let creds = Credentials {
                user: cfg.sql.user.clone(),
                password: password.clone(),
            };
            let (addr, task) = start_sql_server(
                cfg.sql.listen,
                live.analyst.clone(),
                creds,
                cfg.sql.auth,
                cfg.sql.tls().as_ref(),
                cfg.sql.limits(),
                stop_rx.clone(),
            )
            .await
            .with_context(|| format!("SQL server on {}", cfg.sql.listen))?;
            tracing::info!(%addr, user = %cfg.sql.user, "SQL server listening (read-only)");
            Some(task)
        }
        _ => {
            tracing::info!("SQL server off (set sql.password / VIGIL_SQL__PASSWORD to start it)");
            None
        }
    };

    let http = if cfg.http.listen.trim().is_empty() {
        None
    } else {
        let listen: std::net::SocketAddr = cfg
            .http
            .listen
            .parse()
            .with_context(|| format!("http.listen `{}`", cfg.http.listen))?;
        let (addr, task) = crate::http::serve(listen, metrics.clone(), health.clone(), stop_rx.clone())
            .await
            .with_context(|| format!("HTTP endpoints on {listen}"))?;
        tracing::info!(%addr, "HTTP endpoints: /metrics /healthz /readyz");
        Some(task)
    };

    let mut outputs = RunOutputs {
        events: cfg.history.enabled.then(|| live.events.clone()),
        late_events: cfg.history.enabled.then(|| live.late_events.clone()),
        tied_to_checkpoints: true,
        alerts: live.alerts.clone(),
        flush_rows: cfg.history.flush_rows.max(1),
        hooks: hook_tx,
        scores: scores.clone(),
        print_alerts: cfg.print_alerts,
        metrics: Some(metrics.clone()),
        lines: Vec::new(),
    };

    // Partition state is restored from checkpoints on assignment; offsets follow checkpoints.
    let store = CheckpointStore::open(cfg.checkpoint_dir())?;
    let (owner, requests) = CheckpointOwner::new(Duration::from_millis(cfg.checkpoint.restore_timeout_ms));
    let checkpoints = pipeline::Checkpointing {
        store,
        interval: Duration::from_millis(cfg.checkpoint.interval_ms.max(1)),
        max_messages: cfg.checkpoint.max_messages,
        requests,
    };
    let (source, batches) = kafka::start_owned(cfg.source.clone(), 16, Arc::new(owner))?;
    metrics.attach_source(source.metrics().clone());
    metrics.attach_partitions(parts.clone());
    // Population models: the newest stored fit at once (partitions assigned later take it
    // first), fresh fits over the history on a schedule.
    let fitter = ModelFitter::new(
        live.analyst.clone(),
        live.models.clone(),
        parts.clone(),
        cfg.scoring.clone(),
    );
    if let Some(version) = fitter.restore()? {
        tracing::info!(version, "population models from {}", live.models.path().display());
    }
    if cfg.models.fit_interval_ms > 0 {
        if cfg.history.enabled {
            tasks.push(fitter.spawn(
                Duration::from_millis(cfg.models.first_fit_ms),
                Duration::from_millis(cfg.models.fit_interval_ms),
                stop_rx.clone(),
            ));
        } else {
            tracing::warn!("[history] is off: the population models are not fitted (churn risk uses the recency rule)");
        }
    }
    tasks.push(tokio::spawn(observe(
        source.metrics().clone(),
        scores.clone(),
        dispatcher.clone(),
        metrics.clone(),
        health.clone(),
        Duration::from_millis(cfg.http.stall_after_ms),
        stop_rx.clone(),
    )));
    tracing::info!(topics = ?cfg.source.topics, group = %cfg.source.group_id, checkpoints = %cfg.checkpoint_dir().display(), "vigil run: consuming");
    let clock = match cfg.clock {
        ClockMode::Wall => Clock::Wall,
        ClockMode::Event => Clock::Event,
    };
    let result = pipeline::run(
        batches,
        parts.clone(),
        clock,
        Ticking::Every(Duration::from_millis(cfg.tick_ms.max(10))),
        &mut outputs,
        Some(checkpoints),
        shutdown,
        source.stopper(),
    )
    .await;
    if let Err(e) = &result {
        health.set_failed(format!("{e:#}"));
        source.stop();
    }
    health.set_ready(false);
    tokio::task::spawn_blocking(move || source.join()).await??;
    let stats = result?;

    // Shutdown: history tails and the health table to disk (`vigil sql --data-dir` reads
    // them), then the background tasks.
    outputs.flush()?;
    vigil_queries::DataDir::new(&cfg.data_dir).save_health(&parts.health_batch()?)?;
    drop(outputs);
    let _ = stop_tx.send(true);
    if let Some(s) = server {
        let _ = s.await;
    }
    if let Some(h) = http {
        let _ = h.await;
    }
    for t in tasks {
        let _ = t.await;
    }
    if let Some(d) = dispatcher {
        let report = d.flush(Duration::from_secs(2)).await;
        if report.pending > 0 {
            tracing::info!(
                pending = report.pending,
                "undelivered alerts stay in the outbox for the next start"
            );
        }
        match Arc::try_unwrap(d) {
            Ok(d) => d.shutdown().await,
            Err(_) => tracing::warn!("hook dispatcher still shared at shutdown"),
        }
    }
    if let Some(w) = stats.late_warning() {
        tracing::warn!("vigil run: {w}");
    }
    tracing::info!(?stats, "vigil run: stopped cleanly");
    Ok(stats)
}
