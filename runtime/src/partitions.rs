//! The partitions' executor: a small pool of threads, each owning the [`PartitionActor`]s routed
//! to it, stepping them as inputs arrive in its mailbox and performing their effects through
//! its own copy of the pipeline's sink. No lock is shared by partitions: readers (SQL, the
//! demo's view, the final report) send a visit through the same mailboxes and get their answer
//! between two steps. [`Partitions`] is the handle to the pool; the threads end when the last
//! handle is dropped.

use std::collections::{BTreeMap, HashSet};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow::array::{AsArray, RecordBatch};
use tokio::sync::{OwnedSemaphorePermit, mpsc};
use vigil_connectors::Ack;
use vigil_engine::models::ModelSet;
use vigil_engine::scoring::{AccountInfo, ScoringConfig, ScoringCore, ShardId, health_schema};

use crate::actor::{Dimension, Effects, Input, PartitionActor, TickTime};
use crate::checkpoint::PartitionProgress;
use crate::error::{Result, RuntimeError};
use crate::pipeline::{HistoryWrite, PipelineSink};

/// How long a reader waits for the partitions' answer.
const VISIT_TIMEOUT: Duration = Duration::from_secs(60);

/// A visit to a worker's partitions.
type Visit = Box<dyn FnOnce(&BTreeMap<ShardId, PartitionActor>) + Send>;

/// A message to a worker thread.
pub(crate) enum WorkerMsg {
    /// Take over a partition.
    Adopt(Box<PartitionActor>),
    /// Give up a partition (revoked: another process owns it now).
    Release(ShardId),
    /// Step one partition. `ack` is acknowledged once the step's effects are performed (no
    /// checkpoints); `then_tick` follows with a tick (replay: a tick after every batch);
    /// `permit` bounds the batches queued per worker and is returned after the step.
    Step {
        shard: ShardId,
        input: Input,
        ack: Option<Ack>,
        then_tick: Option<TickTime>,
        permit: Option<OwnedSemaphorePermit>,
    },
    /// Tick every partition of the worker.
    Tick(TickTime),
    /// New population models for every partition of the worker.
    Models(Arc<ModelSet>),
    /// Run a reader's visit between two steps.
    Visit(Visit),
    /// The pipeline starts: its sink (this worker's copy) and where to report.
    Attach(Box<dyn PipelineSink>, mpsc::UnboundedSender<Report>),
    /// The pipeline ended: drop the sink (it may hold channels others wait to see closed).
    Detach,
    /// Report `Synced` once everything sent before is done.
    Sync,
}

/// What a worker tells the pipeline.
pub(crate) enum Report {
    Applied {
        applied: u64,
        duplicates: u64,
        late: u64,
        alerts: u64,
    },
    Ticked {
        alerts: u64,
    },
    /// A partition's state and history as of its checkpoint step, to be written.
    CheckpointReady {
        shard: ShardId,
        progress: PartitionProgress,
        state: Box<ScoringCore>,
        history: Option<HistoryWrite>,
    },
    Synced,
    Failed(String),
}

/// The handle to the partitions and their worker threads.
#[derive(Clone)]
pub struct Partitions {
    inner: Arc<Inner>,
}

struct Inner {
    workers: Vec<mpsc::UnboundedSender<WorkerMsg>>,
    /// What each worker has done.
    counters: Arc<[WorkerCounters]>,
    config: ScoringConfig,
    dims: Arc<Dimension>,
    /// Which worker holds which partition. Changed only by the pipeline's coordinator (and
    /// before it starts); never touched by a step.
    routes: Mutex<Routes>,
    /// The population models last set; a partition adopted later takes them first.
    models: Mutex<Option<Arc<ModelSet>>>,
}

/// Which worker holds which partition.
#[derive(Debug, Default)]
struct Routes {
    by_shard: BTreeMap<ShardId, usize>,
    /// Partitions per worker.
    load: Vec<usize>,
}

impl std::fmt::Debug for Partitions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Partitions")
            .field("workers", &self.inner.workers.len())
            .finish_non_exhaustive()
    }
}

/// What a worker thread has done, counted by the thread itself.
#[derive(Debug, Default)]
struct WorkerCounters {
    batches: AtomicU64,
    busy_ns: AtomicU64,
}

/// A worker thread's share of the work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerLoad {
    /// Partitions it holds.
    pub partitions: usize,
    /// Batches it has applied.
    pub batches: u64,
    /// Time spent applying batches and performing their effects.
    pub busy: Duration,
}

/// Worker threads for this machine: one per core.
pub fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

impl Partitions {
    /// `workers` threads (at least one), no partitions yet; `accounts` is the accounts dimension.
    pub fn new(config: ScoringConfig, accounts: &[AccountInfo], workers: usize) -> Result<Partitions> {
        let dims = Arc::new(Dimension::new(&config, accounts)?);
        let n = workers.max(1);
        let counters: Arc<[WorkerCounters]> = (0..n).map(|_| WorkerCounters::default()).collect();
        let mut senders = Vec::new();
        for i in 0..n {
            let (tx, rx) = mpsc::unbounded_channel();
            let counters = counters.clone();
            std::thread::Builder::new()
                .name(format!("vigil-partitions-{i}"))
                .spawn(move || worker(rx, &counters[i]))
                .map_err(|e| RuntimeError::io("starting a partition worker thread", e))?;
            senders.push(tx);
        }
        Ok(Partitions {
            inner: Arc::new(Inner {
                routes: Mutex::new(Routes {
                    by_shard: BTreeMap::new(),
                    load: vec![0; senders.len()],
                }),
                workers: senders,
                counters,
                config,
                dims,
                models: Mutex::new(None),
            }),
        })
    }

    /// The scoring configuration of every partition.
    pub fn config(&self) -> &ScoringConfig {
        &self.inner.config
    }

    /// The accounts dimension.
    pub fn dims(&self) -> &Arc<Dimension> {
        &self.inner.dims
    }

    /// Number of worker threads.
    pub fn workers(&self) -> usize {
        self.inner.workers.len()
    }

    fn routes(&self) -> std::sync::MutexGuard<'_, Routes> {
        self.inner.routes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The worker thread with the fewest partitions takes `actor` (replacing a partition of the
    /// same id).
    pub fn adopt(&self, actor: PartitionActor) -> Result<()> {
        let id = actor.id().clone();
        self.release(&id)?;
        let mut r = self.routes();
        let w = (0..r.load.len()).min_by_key(|&w| (r.load[w], w)).unwrap_or(0);
        self.send(w, WorkerMsg::Adopt(Box::new(actor)))?;
        // Read after the adoption is queued: a `set_models` racing with this either stored its
        // set before this read (sent here) or broadcasts it after the adoption (sent there).
        if let Some(set) = self.models() {
            self.send(w, WorkerMsg::Models(set))?;
        }
        r.by_shard.insert(id, w);
        r.load[w] += 1;
        Ok(())
    }

    /// Drops a partition (revoked: another process owns it now); false when not held.
    pub fn release(&self, shard: &ShardId) -> Result<bool> {
        let mut r = self.routes();
        let Some(w) = r.by_shard.remove(shard) else {
            return Ok(false);
        };
        r.load[w] -= 1;
        self.send(w, WorkerMsg::Release(shard.clone()))?;
        Ok(true)
    }

    /// The worker thread of a held partition.
    pub(crate) fn worker_of(&self, shard: &ShardId) -> Option<usize> {
        self.routes().by_shard.get(shard).copied()
    }

    /// Number of partitions held.
    pub fn held(&self) -> usize {
        self.routes().by_shard.len()
    }

    /// Each worker thread's share of the work so far.
    pub fn worker_load(&self) -> Vec<WorkerLoad> {
        let partitions = self.routes().load.clone();
        self.inner
            .counters
            .iter()
            .zip(partitions)
            .map(|(c, partitions)| WorkerLoad {
                partitions,
                batches: c.batches.load(Ordering::Relaxed),
                busy: Duration::from_nanos(c.busy_ns.load(Ordering::Relaxed)),
            })
            .collect()
    }

    pub(crate) fn send(&self, worker: usize, msg: WorkerMsg) -> Result<()> {
        self.inner.workers[worker]
            .send(msg)
            .map_err(|_| RuntimeError::Stopped(format!("partition worker {worker}")))
    }

    pub(crate) fn broadcast(&self, msg: impl Fn() -> WorkerMsg) -> Result<()> {
        for w in 0..self.workers() {
            self.send(w, msg())?;
        }
        Ok(())
    }

    /// `f` of every partition, in partition order, each read between two of its steps. Blocks
    /// until every worker answered.
    pub fn each<T: Send + 'static>(
        &self,
        f: impl Fn(&ShardId, &ScoringCore) -> T + Send + Sync + 'static,
    ) -> Result<Vec<(ShardId, T)>> {
        let f = Arc::new(f);
        let (tx, rx) = std::sync::mpsc::channel();
        for w in 0..self.workers() {
            let (f, tx) = (f.clone(), tx.clone());
            self.send(
                w,
                WorkerMsg::Visit(Box::new(move |actors| {
                    let part: Vec<(ShardId, T)> = actors.iter().map(|(id, a)| (id.clone(), f(id, a.core()))).collect();
                    let _ = tx.send(part);
                })),
            )?;
        }
        drop(tx);
        let mut out = Vec::new();
        for _ in 0..self.workers() {
            let part = rx
                .recv_timeout(VISIT_TIMEOUT)
                .map_err(|e| RuntimeError::Stopped(format!("a partition worker ({e})")))?;
            out.extend(part);
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// The health table over every partition, then the dimension's accounts no partition holds.
    pub fn health_batch(&self) -> Result<RecordBatch> {
        let mut parts: Vec<RecordBatch> = self
            .each(|_, c| c.health_batch())?
            .into_iter()
            .map(|(_, b)| b)
            .collect();
        let dims = self.dims();
        if !dims.is_empty() {
            let held: HashSet<String> = parts
                .iter()
                .flat_map(|b| {
                    b.column(0)
                        .as_string::<i32>()
                        .iter()
                        .flatten()
                        .map(str::to_string)
                        .collect::<Vec<_>>()
                })
                .collect();
            parts.push(dims.core.health_batch_where(|id| !held.contains(id)));
        }
        Ok(arrow::compute::concat_batches(&health_schema(), &parts)?)
    }

    /// Accounts known: held by a partition or in the dimension.
    pub fn accounts(&self) -> Result<usize> {
        let ids = self.each(|_, c| c.account_ids().map(str::to_string).collect::<Vec<_>>())?;
        let held: HashSet<String> = ids.into_iter().flat_map(|(_, v)| v).collect();
        let dims_only = self.dims().account_ids().filter(|id| !held.contains(*id)).count();
        Ok(held.len() + dims_only)
    }

    /// True when the account is a key account (tier = key or ARR over the threshold).
    pub fn is_key(&self, account_id: &str) -> Result<bool> {
        let id = account_id.to_string();
        let held = self.each(move |_, c| c.contains(&id).then(|| c.is_key(&id)))?;
        Ok(match held.into_iter().find_map(|(_, k)| k) {
            Some(k) => k,
            None => self.dims().core.is_key(account_id),
        })
    }

    /// Hands population models fitted across all partitions to every partition, now and to
    /// any partition adopted later. Returns once queued: each partition takes them between two
    /// steps.
    pub fn set_models(&self, set: ModelSet) -> Result<()> {
        let set = Arc::new(set);
        *self.inner.models.lock().unwrap_or_else(|p| p.into_inner()) = Some(set.clone());
        self.broadcast(|| WorkerMsg::Models(set.clone()))
    }

    /// The models last handed to the partitions.
    pub fn models(&self) -> Option<Arc<ModelSet>> {
        self.inner.models.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// A worker thread: steps its partitions until every handle is gone.
fn worker(mut rx: mpsc::UnboundedReceiver<WorkerMsg>, counters: &WorkerCounters) {
    let mut w = Worker {
        actors: BTreeMap::new(),
        sink: None,
        reports: None,
        counters,
    };
    while let Some(msg) = rx.blocking_recv() {
        let result = std::panic::catch_unwind(AssertUnwindSafe(|| w.handle(msg)));
        let failure = match result {
            Ok(Ok(())) => continue,
            Ok(Err(e)) => e.to_string(),
            Err(panic) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                format!("a partition worker panicked: {what}")
            }
        };
        match &w.reports {
            Some(r) => {
                let _ = r.send(Report::Failed(failure));
            }
            None => tracing::error!(error = %failure, "partition worker"),
        }
    }
}

struct Worker<'a> {
    actors: BTreeMap<ShardId, PartitionActor>,
    sink: Option<Box<dyn PipelineSink>>,
    reports: Option<mpsc::UnboundedSender<Report>>,
    counters: &'a WorkerCounters,
}

impl Worker<'_> {
    fn report(&self, r: Report) {
        if let Some(tx) = &self.reports {
            let _ = tx.send(r);
        }
    }

    fn handle(&mut self, msg: WorkerMsg) -> Result<()> {
        match msg {
            WorkerMsg::Adopt(actor) => {
                self.actors.insert(actor.id().clone(), *actor);
            }
            WorkerMsg::Release(shard) => {
                self.actors.remove(&shard);
            }
            WorkerMsg::Step {
                shard,
                input,
                ack,
                then_tick,
                permit,
            } => {
                let started = Instant::now();
                let is_batch = matches!(input, Input::Batch { .. });
                self.step(&shard, input)?;
                if let Some(time) = then_tick {
                    self.step(&shard, Input::Tick(time))?;
                }
                if is_batch {
                    self.counters.batches.fetch_add(1, Ordering::Relaxed);
                    self.counters
                        .busy_ns
                        .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
                }
                if let Some(ack) = ack {
                    ack.ack();
                }
                drop(permit);
            }
            WorkerMsg::Tick(time) => {
                let ids: Vec<ShardId> = self.actors.keys().cloned().collect();
                for id in ids {
                    self.step(&id, Input::Tick(time))?;
                }
            }
            WorkerMsg::Models(set) => {
                for a in self.actors.values_mut() {
                    a.step(Input::Models(set.clone()))?;
                }
            }
            WorkerMsg::Visit(visit) => visit(&self.actors),
            WorkerMsg::Attach(sink, reports) => {
                self.sink = Some(sink);
                self.reports = Some(reports);
            }
            WorkerMsg::Detach => {
                self.sink = None;
                self.reports = None;
            }
            WorkerMsg::Sync => self.report(Report::Synced),
        }
        Ok(())
    }

    /// Steps one partition and performs its effects.
    fn step(&mut self, shard: &ShardId, input: Input) -> Result<()> {
        let started = Instant::now();
        let actor = self.actors.get_mut(shard).ok_or_else(|| {
            RuntimeError::Worker(format!("partition {}/{} is not held by this worker", shard.0, shard.1))
        })?;
        let effects = actor.step(input)?;
        let Some(sink) = self.sink.as_mut() else {
            return Ok(());
        };
        match effects {
            Effects::Applied { batch, outcome } => {
                sink.on_batch(shard, &batch, &outcome, actor.core())?;
                sink.after_step()?;
                sink.on_batch_done(&outcome, started.elapsed());
                self.report(Report::Applied {
                    applied: outcome.applied as u64,
                    duplicates: outcome.duplicates as u64,
                    late: outcome.late as u64,
                    alerts: outcome.alerts.len() as u64,
                });
            }
            Effects::Ticked { alerts } => {
                if !alerts.is_empty() {
                    sink.on_tick(shard, &alerts, actor.core())?;
                    sink.after_step()?;
                    self.report(Report::Ticked {
                        alerts: alerts.len() as u64,
                    });
                }
            }
            Effects::Checkpoint { progress, state } => {
                // Cut with the state copy: nothing was applied in between.
                let history = sink.history_cut(shard, progress.checkpoints);
                self.report(Report::CheckpointReady {
                    shard: shard.clone(),
                    progress,
                    state,
                    history,
                });
            }
            Effects::None => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use vigil_engine::scoring::{AccountInfo, ScoringConfig, Tier};
    use vigil_engine::{Event, EventKind};

    use super::*;
    use crate::pipeline::Clock;

    fn shard(p: i32) -> ShardId {
        (Arc::from("t"), p)
    }

    /// A batch of one activity event of `account` on day 100.
    fn batch(account: &str) -> RecordBatch {
        let mut b = vigil_engine::EventBatchBuilder::with_capacity(1);
        let e = Event::new(format!("e-{account}"), account, 100 * 86_400_000, EventKind::Activity);
        b.decode_append(
            e.to_json().as_bytes(),
            &vigil_engine::SourceMeta::default(),
            &vigil_engine::DecodeLimits::default(),
            100 * 86_400_000,
        )
        .expect("valid event");
        b.finish()
    }

    #[test]
    fn partitions_spread_over_the_workers_and_readers_see_all_of_them() {
        let mut key = AccountInfo::new("acct-1");
        key.tier = Tier::Key;
        let dims = [key, AccountInfo::new("dims-only")];
        let parts = Partitions::new(ScoringConfig::default(), &dims, 2).expect("partitions");
        for p in 0..4 {
            let mut actor =
                PartitionActor::new(shard(p), parts.config(), Clock::Event, parts.dims().clone()).expect("actor");
            actor
                .step(Input::Batch {
                    batch: batch(&format!("acct-{p}")),
                    span: None,
                })
                .expect("step");
            parts.adopt(actor).expect("adopt");
        }
        let load: Vec<usize> = parts.worker_load().iter().map(|l| l.partitions).collect();
        assert_eq!(load, vec![2, 2], "two partitions per worker");
        assert_eq!(
            parts.accounts().expect("accounts"),
            5,
            "four held, one from the dimension"
        );
        assert_eq!(parts.health_batch().expect("health").num_rows(), 5);
        assert!(
            parts.is_key("acct-1").expect("is_key"),
            "dimension joined in its partition"
        );
        assert!(!parts.is_key("acct-2").expect("is_key"));
        assert!(parts.release(&shard(1)).expect("release"));
        assert!(!parts.release(&shard(1)).expect("release"), "released once");
        let held: Vec<ShardId> = parts
            .each(|_, _| ())
            .expect("each")
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        assert_eq!(held, vec![shard(0), shard(2), shard(3)]);
        // acct-1 left with its partition: the dimension still knows it.
        assert_eq!(parts.health_batch().expect("health").num_rows(), 5);
        assert_eq!(parts.accounts().expect("accounts"), 5);
    }
}
