//! [`HookDispatcher`]: routes alerts into the outbox and delivers them, one worker per hook.
//!
//! `submit` writes the alert durably (routed to its hooks) before returning; each hook's worker
//! then takes its pending alerts oldest first, up to `concurrency` at a time, and delivers each
//! with bounded retries (exponential backoff with jitter, `Retry-After` honoured). A delivery is
//! recorded in the outbox once the sink confirmed it; one that used up its attempts, or got a
//! non-retryable answer, is parked as failed. At start every pending alert of the outbox is
//! delivered, so alerts written before a crash go out after the restart, and delivered ones do
//! not go out again (a crash between the sink's confirmation and the record re-sends that one
//! alert with the same `Idempotency-Key`/id: at least once).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use super::alert::HookAlert;
use super::store::{FailedDelivery, Outbox, OutboxOptions, RetryFilter};
use crate::error::ConnectorError;
use crate::kafka::sink::KafkaAlertSink;
use crate::log::LogSink;
use crate::registry::SinkConfig;
use crate::routing::{HookConfig, HooksConfig, RetryPolicy, Route, validate_hooks};
use crate::webhook::WebhookSink;

/// A built hook sink.
#[derive(Debug)]
pub enum Sink {
    Webhook(WebhookSink),
    Kafka(KafkaAlertSink),
    Log(LogSink),
}

impl Sink {
    /// Builds the sink of hook `name` (the log sink writes to stdout).
    pub fn build(name: &str, config: &SinkConfig) -> Result<Sink, ConnectorError> {
        Ok(match config {
            SinkConfig::Webhook(c) => Sink::Webhook(WebhookSink::new(name, c)?),
            SinkConfig::Kafka(c) => Sink::Kafka(KafkaAlertSink::new(name, c)?),
            SinkConfig::Log(c) => Sink::Log(LogSink::stdout(name, c)),
        })
    }

    /// One delivery attempt (`attempt` starts at 1).
    pub async fn deliver(&self, alert: &HookAlert, attempt: u32) -> Result<(), ConnectorError> {
        match self {
            Sink::Webhook(s) => s.send(alert, attempt).await,
            Sink::Kafka(s) => s.send(alert).await,
            Sink::Log(s) => s.send(alert),
        }
    }
}

/// Whether a failed attempt is worth another: transport errors and timeouts, HTTP 5xx and
/// 429, Kafka delivery errors, I/O errors. Not: other HTTP statuses, configuration errors.
pub fn is_retryable(e: &ConnectorError) -> bool {
    match e {
        ConnectorError::HttpStatus { status, .. } => *status == 429 || (500..600).contains(status),
        ConnectorError::Http { source, .. } => !source.is_builder(),
        ConnectorError::KafkaDelivery { .. } | ConnectorError::Kafka(_) | ConnectorError::Io { .. } => true,
        _ => false,
    }
}

/// The server-requested delay of a failed attempt (`Retry-After`).
pub fn retry_after(e: &ConnectorError) -> Option<Duration> {
    match e {
        ConnectorError::HttpStatus { retry_after, .. } => *retry_after,
        _ => None,
    }
}

/// Counters of one hook since start.
#[derive(Debug, Default)]
pub struct HookMetrics {
    /// Alerts routed to the hook and newly written to the outbox.
    pub enqueued: AtomicU64,
    /// Requests (attempts) made.
    pub attempts: AtomicU64,
    /// Attempts that failed and were retried.
    pub retries: AtomicU64,
    pub delivered: AtomicU64,
    /// Deliveries parked as failed.
    pub parked: AtomicU64,
    /// Outbox writes that failed (the delivery stays pending and is tried again).
    pub outbox_errors: AtomicU64,
}

/// A hook's counters plus its outbox state now.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HookStats {
    pub enqueued: u64,
    pub attempts: u64,
    pub retries: u64,
    pub delivered: u64,
    pub parked: u64,
    pub outbox_errors: u64,
    /// Deliveries pending now.
    pub pending: usize,
    /// Deliveries parked as failed now (parked ones from before the start included).
    pub failed: usize,
}

/// What [`HookDispatcher::flush`] saw when it returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlushReport {
    /// Deliveries still pending at configured hooks (0 when the flush completed).
    pub pending: usize,
    /// Deliveries parked as failed.
    pub failed: usize,
}

struct Hook {
    name: String,
    route: Route,
    retry: RetryPolicy,
    concurrency: usize,
    sink: Sink,
    wake: Notify,
    metrics: HookMetrics,
}

struct Shared {
    outbox: Outbox,
    hooks: Vec<Hook>,
    poll: Duration,
}

/// Runs `f` on the blocking pool (outbox calls `fsync`).
async fn blocking<T, F>(outbox: &Outbox, f: F) -> Result<T, ConnectorError>
where
    T: Send + 'static,
    F: FnOnce(&Outbox) -> Result<T, ConnectorError> + Send + 'static,
{
    let o = outbox.clone();
    tokio::task::spawn_blocking(move || f(&o))
        .await
        .map_err(|e| ConnectorError::Outbox {
            path: outbox.dir().display().to_string(),
            detail: format!("outbox task failed: {e}"),
        })?
}

/// Delivers alerts to hooks through the durable outbox. See the module docs.
pub struct HookDispatcher {
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for HookDispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HookDispatcher")
            .field("hooks", &self.shared.hooks.iter().map(|h| &h.name).collect::<Vec<_>>())
            .field("outbox", &self.shared.outbox)
            .finish()
    }
}

impl HookDispatcher {
    /// Validates the hooks, builds their sinks, opens the outbox and starts the workers (which
    /// begin with whatever the outbox has pending). Must be called inside a Tokio runtime.
    pub fn start(config: &HooksConfig) -> Result<HookDispatcher, ConnectorError> {
        validate_hooks(&config.hooks)?;
        let hooks = config
            .hooks
            .iter()
            .map(|h| Ok((h.clone(), Sink::build(&h.name, &h.sink)?)))
            .collect::<Result<Vec<_>, ConnectorError>>()?;
        let options = OutboxOptions {
            done_retention: Duration::from_secs(config.outbox.done_retention_hours.saturating_mul(3600)),
            ..OutboxOptions::default()
        };
        let outbox = Outbox::open_with(&config.outbox.dir, options)?;
        HookDispatcher::start_with(
            outbox,
            hooks,
            Duration::from_millis(config.outbox.poll_interval_ms.max(10)),
        )
    }

    /// Starts workers for already built sinks over an open outbox (tests, custom sinks).
    pub fn start_with(
        outbox: Outbox,
        hooks: Vec<(HookConfig, Sink)>,
        poll_interval: Duration,
    ) -> Result<HookDispatcher, ConnectorError> {
        let configs: Vec<HookConfig> = hooks.iter().map(|(c, _)| c.clone()).collect();
        validate_hooks(&configs)?;
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|e| ConnectorError::HookConfig(format!("hooks must start inside a Tokio runtime: {e}")))?;
        for (sink, n) in outbox.pending_counts() {
            if !configs.iter().any(|c| c.name == sink) {
                tracing::warn!(hook = %sink, pending = n, "outbox has alerts pending for a hook that is not configured");
            }
        }
        let shared = Arc::new(Shared {
            outbox,
            hooks: hooks
                .into_iter()
                .map(|(c, sink)| Hook {
                    route: c.route(),
                    name: c.name,
                    retry: c.retry,
                    concurrency: c.concurrency,
                    sink,
                    wake: Notify::new(),
                    metrics: HookMetrics::default(),
                })
                .collect(),
            poll: poll_interval,
        });
        let (shutdown, rx) = watch::channel(false);
        let mut tasks = Vec::new();
        for idx in 0..shared.hooks.len() {
            tasks.push(runtime.spawn(run_worker(shared.clone(), idx, rx.clone())));
        }
        tasks.push(runtime.spawn(run_housekeeping(shared.clone(), rx)));
        Ok(HookDispatcher {
            shared,
            shutdown,
            tasks,
        })
    }

    /// The outbox (for listing and tests).
    pub fn outbox(&self) -> &Outbox {
        &self.shared.outbox
    }

    /// Routes each alert and writes it durably (one `fsync` for all) before returning; the
    /// hooks' workers are woken. Alerts routed nowhere, and ids already known to the outbox,
    /// are skipped. Returns how many were newly written. Blocking: from async code use
    /// [`HookDispatcher::submit_async`].
    pub fn submit(&self, alerts: &[HookAlert]) -> Result<usize, ConnectorError> {
        submit(&self.shared, alerts)
    }

    /// [`HookDispatcher::submit`] on the blocking pool.
    pub async fn submit_async(&self, alerts: Vec<HookAlert>) -> Result<usize, ConnectorError> {
        let shared = self.shared.clone();
        tokio::task::spawn_blocking(move || submit(&shared, &alerts))
            .await
            .map_err(|e| ConnectorError::Outbox {
                path: self.shared.outbox.dir().display().to_string(),
                detail: format!("submit task failed: {e}"),
            })?
    }

    /// Parked deliveries.
    pub fn failed(&self) -> Vec<FailedDelivery> {
        self.shared.outbox.failed()
    }

    /// Makes parked deliveries matching `filter` pending again and wakes the workers. Returns
    /// how many. (`vigil alerts retry` from another process: [`super::request_retry`].)
    pub fn retry_failed(&self, filter: &RetryFilter) -> Result<usize, ConnectorError> {
        let n = self.shared.outbox.retry_failed(filter)?;
        wake_all(&self.shared);
        Ok(n)
    }

    /// Counters and outbox state per hook name.
    pub fn stats(&self) -> BTreeMap<String, HookStats> {
        let pending = self.shared.outbox.pending_counts();
        let failed = self.shared.outbox.failed();
        self.shared
            .hooks
            .iter()
            .map(|h| {
                let m = &h.metrics;
                let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
                let stats = HookStats {
                    enqueued: get(&m.enqueued),
                    attempts: get(&m.attempts),
                    retries: get(&m.retries),
                    delivered: get(&m.delivered),
                    parked: get(&m.parked),
                    outbox_errors: get(&m.outbox_errors),
                    pending: pending.get(&h.name).copied().unwrap_or(0),
                    failed: failed.iter().filter(|f| f.sink == h.name).count(),
                };
                (h.name.clone(), stats)
            })
            .collect()
    }

    fn pending_here(&self) -> usize {
        let counts = self.shared.outbox.pending_counts();
        self.shared
            .hooks
            .iter()
            .map(|h| counts.get(&h.name).copied().unwrap_or(0))
            .sum()
    }

    /// Waits until no delivery is pending at the configured hooks (delivered or parked), or
    /// `timeout`.
    pub async fn flush(&self, timeout: Duration) -> FlushReport {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let pending = self.pending_here();
            if pending == 0 || tokio::time::Instant::now() >= deadline {
                return FlushReport {
                    pending,
                    failed: self.shared.outbox.failed().len(),
                };
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the workers. Deliveries cut short stay pending in the outbox for the next start.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            if let Err(e) = t.await {
                tracing::error!(error = %e, "hook worker ended abnormally");
            }
        }
    }
}

fn wake_all(shared: &Shared) {
    for h in &shared.hooks {
        h.wake.notify_one();
    }
}

fn submit(shared: &Shared, alerts: &[HookAlert]) -> Result<usize, ConnectorError> {
    let items: Vec<(HookAlert, Vec<String>)> = alerts
        .iter()
        .map(|a| {
            let sinks = shared
                .hooks
                .iter()
                .filter(|h| h.route.matches(a))
                .map(|h| h.name.clone())
                .collect();
            (a.clone(), sinks)
        })
        .collect();
    let written = shared.outbox.enqueue_all(&items)?;
    let mut n = 0;
    for ((_, sinks), new) in items.iter().zip(&written) {
        if !*new {
            continue;
        }
        n += 1;
        for h in shared.hooks.iter().filter(|h| sinks.contains(&h.name)) {
            h.metrics.enqueued.fetch_add(1, Ordering::Relaxed);
        }
    }
    if n > 0 {
        wake_all(shared);
    }
    Ok(n)
}

async fn run_housekeeping(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(shared.poll) => {}
            _ = shutdown.changed() => return,
        }
        match blocking(&shared.outbox, Outbox::apply_requests).await {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(deliveries = n, "outbox: retry request applied");
                wake_all(&shared);
            }
            Err(e) => tracing::error!(error = %e, "outbox: applying retry requests failed"),
        }
    }
}

/// One hook's worker: keeps up to `concurrency` deliveries in flight, refilling a slot from the
/// outbox's pending alerts (oldest first) as soon as one completes, so a slow alert does not
/// hold back the ones behind it.
async fn run_worker(shared: Arc<Shared>, idx: usize, mut shutdown: watch::Receiver<bool>) {
    let hook = &shared.hooks[idx];
    let mut in_flight = FuturesUnordered::new();
    let mut ids: HashSet<String> = HashSet::new();
    let mut paused_until: Option<tokio::time::Instant> = None;
    loop {
        if *shutdown.borrow() {
            return;
        }
        if paused_until.is_some_and(|t| tokio::time::Instant::now() >= t) {
            paused_until = None;
        }
        if paused_until.is_none() && in_flight.len() < hook.concurrency {
            let name = hook.name.clone();
            let limit = hook.concurrency + ids.len();
            let pending = blocking(&shared.outbox, move |o| Ok(o.pending(&name, limit)))
                .await
                .unwrap_or_default();
            for alert in pending {
                if in_flight.len() >= hook.concurrency {
                    break;
                }
                if ids.insert(alert.id.clone()) {
                    in_flight.push(deliver_one(&shared, hook, alert));
                }
            }
        }
        if in_flight.is_empty() {
            let idle = paused_until.map_or(shared.poll, |t| {
                t.saturating_duration_since(tokio::time::Instant::now())
            });
            tokio::select! {
                _ = hook.wake.notified() => {}
                _ = tokio::time::sleep(idle) => {}
                _ = shutdown.changed() => return,
            }
            continue;
        }
        let slot_free = in_flight.len() < hook.concurrency && paused_until.is_none();
        tokio::select! {
            Some((id, recorded)) = in_flight.next() => {
                ids.remove(&id);
                if !recorded {
                    // The outbox could not record the result: the alert is still pending; wait
                    // before taking it again instead of re-sending at once.
                    paused_until = Some(tokio::time::Instant::now() + shared.poll);
                }
            }
            _ = hook.wake.notified(), if slot_free => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// Delivers one alert with retries and records the result. Returns the id and whether the
/// result was recorded in the outbox.
async fn deliver_one(shared: &Shared, hook: &Hook, alert: HookAlert) -> (String, bool) {
    let attempts = AtomicU32::new(0);
    let policy = &hook.retry;
    let backoff = ExponentialBuilder::default()
        .with_min_delay(policy.backoff_min())
        .with_max_delay(policy.backoff_max())
        .with_factor(2.0)
        .with_jitter()
        .with_max_times(policy.max_attempts.saturating_sub(1) as usize);
    let cap = policy.max_retry_after();
    let (counter, target) = (&attempts, &alert);
    let result = (move || async move {
        let n = counter.fetch_add(1, Ordering::Relaxed) + 1;
        hook.metrics.attempts.fetch_add(1, Ordering::Relaxed);
        hook.sink.deliver(target, n).await
    })
    .retry(backoff)
    .when(is_retryable)
    .adjust(|e, next| next.map(|d| retry_after(e).map_or(d, |ra| ra.min(cap))))
    .notify(|e, wait| {
        hook.metrics.retries.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(hook = %hook.name, alert = %alert.id, error = %e, wait_ms = wait.as_millis() as u64, "delivery failed, retrying");
    })
    .await;
    let id = alert.id.clone();
    let name = hook.name.clone();
    let recorded = match result {
        Ok(()) => {
            hook.metrics.delivered.fetch_add(1, Ordering::Relaxed);
            blocking(&shared.outbox, move |o| o.mark_delivered(&id, &name)).await
        }
        Err(e) => {
            let n = attempts.load(Ordering::Relaxed);
            hook.metrics.parked.fetch_add(1, Ordering::Relaxed);
            tracing::error!(hook = %hook.name, alert = %alert.id, attempts = n, error = %e, "delivery parked as failed");
            let error = e.to_string();
            blocking(&shared.outbox, move |o| o.park(&id, &name, n, &error)).await
        }
    };
    match recorded {
        Ok(()) => (alert.id, true),
        Err(e) => {
            hook.metrics.outbox_errors.fetch_add(1, Ordering::Relaxed);
            tracing::error!(hook = %hook.name, alert = %alert.id, error = %e, "outbox: could not record the delivery result");
            (alert.id, false)
        }
    }
}
