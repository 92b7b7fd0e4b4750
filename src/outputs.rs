//! What the running pipeline does with each applied batch and each clock tick: history for SQL
//! (`events`, `alerts`), alerts to stdout and to the hooks' durable outbox, score updates to the
//! scores topic.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow::array::{Array, AsArray};
use tokio::sync::{Notify, mpsc};
use vigil_connectors::kafka::{KafkaScoresSink, SourceBatch};
use vigil_connectors::outbox::{HookAlert, HookDispatcher};
use vigil_engine::scoring::{Alert, ApplyOutcome, HealthScore, ShardedCore, Tier, alerts_to_batch};
use vigil_queries::SegmentStore;

use crate::metrics::RunMetrics;
use crate::pipeline::PipelineSink;

/// The tier hooks route on: `key` for the core's key accounts (tier = key or ARR over the
/// threshold), else `standard`.
pub fn tier_of(core: &ShardedCore, account_id: &str) -> Tier {
    if core.is_key(account_id) {
        Tier::Key
    } else {
        Tier::Standard
    }
}

/// Latest score per account not yet sent: a newer score replaces an unsent older one (the
/// scores topic is compacted by key, so only the latest matters).
#[derive(Debug, Default)]
pub struct PendingScores {
    latest: Mutex<HashMap<String, HealthScore>>,
    wake: Notify,
}

impl PendingScores {
    fn put(&self, scores: impl IntoIterator<Item = HealthScore>) {
        if let Ok(mut m) = self.latest.lock() {
            for s in scores {
                m.insert(s.account_id.clone(), s);
            }
        }
        self.wake.notify_one();
    }

    fn take(&self) -> Vec<HealthScore> {
        self.latest
            .lock()
            .map(|mut m| m.drain().map(|(_, s)| s).collect())
            .unwrap_or_default()
    }

    /// Sends pending scores until `stop` turns true, then sends what is left. Failed sends
    /// (after the sink's own retries) go back into the pending set, unless a newer score came.
    pub async fn run(self: Arc<Self>, sink: KafkaScoresSink, mut stop: tokio::sync::watch::Receiver<bool>) {
        loop {
            let stopping = *stop.borrow();
            let batch = self.take();
            if !batch.is_empty()
                && let Err(e) = sink.send_all(&batch).await
            {
                tracing::warn!(error = %e, n = batch.len(), "scores topic: sending failed, will retry");
                if let Ok(mut m) = self.latest.lock() {
                    for s in batch {
                        m.entry(s.account_id.clone()).or_insert(s);
                    }
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            if stopping {
                let left = self.take();
                if !left.is_empty()
                    && let Err(e) = sink.send_all(&left).await
                {
                    tracing::warn!(error = %e, n = left.len(), "scores topic: score updates not sent at shutdown");
                }
                return;
            }
            tokio::select! {
                _ = self.wake.notified() => tokio::time::sleep(Duration::from_millis(50)).await,
                _ = stop.changed() => {}
            }
        }
    }
}

/// The pipeline's outputs in `vigil run`.
pub struct RunOutputs {
    /// `events` history (None: history off).
    pub events: Option<SegmentStore>,
    /// `alerts` history.
    pub alerts: SegmentStore,
    /// Tail rows that trigger writing a segment.
    pub flush_rows: usize,
    /// Alerts to the hooks' outbox writer.
    pub hooks: Option<mpsc::UnboundedSender<Vec<HookAlert>>>,
    /// Score updates for the scores topic.
    pub scores: Option<Arc<PendingScores>>,
    /// Print alerts as JSON lines on stdout.
    pub print_alerts: bool,
    /// Counters for `/metrics`.
    pub metrics: Option<Arc<RunMetrics>>,
}

impl RunOutputs {
    fn alerts(&mut self, alerts: &[Alert], core: &ShardedCore) -> anyhow::Result<()> {
        if alerts.is_empty() {
            return Ok(());
        }
        self.alerts.append(alerts_to_batch(alerts))?;
        if let Some(m) = &self.metrics {
            for a in alerts {
                m.alert_raised(a.kind.as_str());
            }
        }
        if !self.print_alerts && self.hooks.is_none() {
            return Ok(());
        }
        // One JSON shape for every alert on stdout and to the hooks: rule alerts (printed by
        // `run.rs`) use it too.
        let hook_alerts: Vec<HookAlert> = alerts
            .iter()
            .map(|a| HookAlert::from_engine(a, tier_of(core, &a.account_id)))
            .collect();
        if self.print_alerts {
            for a in &hook_alerts {
                println!("{}", serde_json::to_string(a)?);
            }
        }
        if let Some(tx) = &self.hooks {
            tx.send(hook_alerts)
                .map_err(|_| anyhow::anyhow!("the hooks' outbox writer has stopped"))?;
        }
        Ok(())
    }

    /// Writes the history tails as segments (shutdown).
    pub fn flush(&self) -> anyhow::Result<()> {
        if let Some(e) = &self.events {
            e.flush_segment()?;
        }
        self.alerts.flush_segment()?;
        Ok(())
    }
}

impl PipelineSink for RunOutputs {
    fn on_batch(&mut self, batch: &SourceBatch, outcome: &ApplyOutcome, core: &ShardedCore) -> anyhow::Result<()> {
        if let Some(events) = &self.events {
            events.append(batch.batch.clone())?;
            if events.tail_rows() >= self.flush_rows {
                events.flush_segment()?;
            }
        }
        if let Some(scores) = &self.scores {
            let ids = batch.batch.column(vigil_engine::schema::ACCOUNT_ID).as_string::<i32>();
            let mut seen = std::collections::HashSet::with_capacity(ids.len().min(4096));
            let updates: Vec<HealthScore> = ids
                .iter()
                .flatten()
                .filter(|id| seen.insert(*id))
                .filter_map(|id| core.score(id))
                .collect();
            scores.put(updates);
        }
        self.alerts(&outcome.alerts, core)
    }

    fn on_tick(&mut self, alerts: &[Alert], core: &ShardedCore) -> anyhow::Result<()> {
        self.alerts(alerts, core)
    }

    fn on_checkpoint(&mut self, _written: usize, core: &ShardedCore) -> anyhow::Result<()> {
        if let Some(m) = &self.metrics {
            m.checkpoint_written(std::time::Instant::now());
            m.set_partitions(core.shard_count() as i64);
        }
        Ok(())
    }

    fn on_batch_done(&mut self, outcome: &ApplyOutcome, elapsed: Duration) {
        if let Some(m) = &self.metrics {
            m.batch_applied(
                outcome.applied as u64,
                outcome.late as u64,
                outcome.duplicates as u64,
                elapsed,
            );
        }
    }
}

/// Writes alerts to the outbox (durably, before delivery) as they come; runs until the
/// sender side is dropped.
pub async fn write_outbox(dispatcher: Arc<HookDispatcher>, mut rx: mpsc::UnboundedReceiver<Vec<HookAlert>>) {
    while let Some(mut alerts) = rx.recv().await {
        while let Ok(more) = rx.try_recv() {
            alerts.extend(more);
        }
        // The outbox write is retried: an alert must not be lost to a transient disk error.
        let mut delay = Duration::from_millis(50);
        loop {
            match dispatcher.submit_async(alerts.clone()).await {
                Ok(_) => break,
                Err(e) => {
                    tracing::error!(error = %e, n = alerts.len(), "writing alerts to the outbox failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
    }
}
