//! `vigil replay <file>`: backfill from a JSON Lines file of contract-v1 events (decoded by the
//! file source, the same decode path as Kafka) or a Parquet file of events (e.g. a history
//! segment), through the same pipeline as `vigil run`, in event time ([`Clock::Event`]): the
//! engine clock follows the greatest applied event time and advances after every batch, so a
//! replay of the same file raises the same alerts whatever the machine's speed.
//!
//! The valid events are first sorted by `(ts, event_id)` ([`vigil_queries::sort`]: a DataFusion
//! external sort, at most `--sort-memory-mb` in memory, sorted runs spilled to the system's
//! temporary directory beyond that), so a file in arrival order is scored as if it were in time
//! order and any order of the same events gives the same result; invalid lines are counted per
//! reason while reading, as before the sort. `--assume-sorted` skips the sort and scores the
//! events as they are read: an event older than the greatest event time before it minus the
//! allowed lateness is then late (kept in history, not scored), and more than 1 % of late events
//! draw a warning on stderr.
//!
//! History (`events`, `alerts` segments, and `health.parquet` at the end) goes under the data
//! directory; alerts are printed as JSON lines unless `--quiet`; progress goes to stderr (a bar on
//! a terminal, a line every 2 s otherwise: reading, sorting, then scoring); a summary line to
//! stdout.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use arrow::array::RecordBatch;
use futures::StreamExt;
use tokio::runtime::Handle;
use tokio::sync::{mpsc, watch};
use vigil_connectors::file::{FileSource, FileSourceConfig, ParquetEventSource};
use vigil_connectors::kafka::SourceBatch;
use vigil_connectors::metrics::SourceMetrics;
use vigil_engine::InvalidReason;
use vigil_engine::scoring::{Alert, ApplyOutcome, ScoringCore, ShardId};
use vigil_queries::QueryError;
use vigil_queries::sort::{SortConfig, SortStats};

use crate::cli::backfill::ReplayState;
use crate::config::{HistoryConfig, VigilConfig, default_data_dir};
use vigil_runtime::actor::PartitionActor;
use vigil_runtime::checkpoint::PartitionProgress;
use vigil_runtime::live::LiveTables;
use vigil_runtime::models::ModelFitter;
use vigil_runtime::outputs::RunOutputs;
use vigil_runtime::partitions::Partitions;
use vigil_runtime::pipeline::{self, Clock, PipelineSink, PipelineStats, Ticking};

/// Interval of the plain progress lines (stderr not a terminal).
const PLAIN_EVERY: Duration = Duration::from_secs(2);
/// Batches buffered between the reader and the pipeline.
const CHANNEL_BATCHES: usize = 4;
/// The default of `--sort-memory-mb`.
const DEFAULT_SORT_MEMORY_MB: u64 = (vigil_queries::sort::DEFAULT_MEMORY_LIMIT >> 20) as u64;

/// What the input file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum InputFormat {
    /// Parquet when the file starts with the Parquet magic `PAR1`, else JSON Lines.
    Auto,
    /// JSON Lines, one contract-v1 event per line.
    Jsonl,
    /// Parquet with the event schema's columns (e.g. an `events/seg-*.parquet` history segment).
    Parquet,
}

/// `vigil replay <file>`.
#[derive(Debug, Clone, clap::Args)]
pub struct ReplayArgs {
    /// JSON Lines file of contract-v1 events, or a Parquet file of events.
    pub file: PathBuf,
    /// vigil.toml: `[scoring]`, `[[accounts]]`, `data_dir`, `[history]` and `print_alerts` are
    /// used (the file must be valid for `vigil run`, `[source]` included; it is not read from).
    #[arg(long, env = "VIGIL_CONFIG")]
    pub config: Option<PathBuf>,
    /// Where the history goes (`events/`, `alerts/`); overrides `data_dir` of `--config`.
    #[arg(long, env = "VIGIL_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Input format.
    #[arg(long, value_enum, default_value_t = InputFormat::Auto)]
    pub format: InputFormat,
    /// Do not print alerts.
    #[arg(long)]
    pub quiet: bool,
    /// Events per batch (default: the file source's default, 8192). Results do not depend on
    /// it except through batch-level alert evaluation.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub batch_rows: Option<u64>,
    /// The file is already in event-time order: score the events as they are read, without
    /// sorting them first. Events older than the greatest event time before them minus the
    /// allowed lateness are then late (kept in history, not scored).
    #[arg(long)]
    pub assume_sorted: bool,
    /// Memory for sorting the events by event time, in MiB. The sort holds up to this much of
    /// the decoded events; beyond it, sorted runs spill to files in the system's temporary
    /// directory (`TMPDIR`; about the size of the decoded events) and are merged at the end.
    /// Too small for one batch of `--batch-rows` events is an error.
    #[arg(
        long,
        default_value_t = DEFAULT_SORT_MEMORY_MB,
        value_parser = clap::value_parser!(u64).range(1..),
        conflicts_with = "assume_sorted"
    )]
    pub sort_memory_mb: u64,
}

/// The outcome of a replay, printed as its summary line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayReport {
    /// Events applied to the scoring core.
    pub applied: u64,
    /// Invalid lines (rows) per reason code.
    pub invalid: BTreeMap<&'static str, u64>,
    /// Events whose `event_id` was already applied.
    pub duplicates: u64,
    /// Events older than the watermark (kept in history, not scored).
    pub late: u64,
    /// Alerts raised.
    pub alerts: u64,
    /// Accounts the core knows at the end.
    pub accounts: u64,
    /// The replay stopped on Ctrl-C before the end of the file (nothing of it was kept).
    pub interrupted: bool,
    /// The file was replayed into this data directory before: nothing changed.
    pub already_replayed: bool,
}

impl ReplayReport {
    /// Invalid lines, every reason.
    pub fn invalid_total(&self) -> u64 {
        self.invalid.values().sum()
    }
}

impl std::fmt::Display for ReplayReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "replay: applied={} invalid={}", self.applied, self.invalid_total())?;
        if !self.invalid.is_empty() {
            let parts: Vec<String> = self.invalid.iter().map(|(r, n)| format!("{r}={n}")).collect();
            write!(f, " [{}]", parts.join(" "))?;
        }
        write!(
            f,
            " duplicates={} late={} alerts={} accounts={}",
            self.duplicates, self.late, self.alerts, self.accounts
        )?;
        if self.interrupted {
            f.write_str(" (interrupted: nothing kept)")?;
        }
        if self.already_replayed {
            f.write_str(" (already replayed: nothing changed)")?;
        }
        Ok(())
    }
}

/// Runs `vigil replay`: prints alerts (unless `--quiet`), progress and a warning when many
/// events were late to stderr, and the summary line to stdout.
pub async fn run(args: ReplayArgs) -> anyhow::Result<ReplayReport> {
    let assume_sorted = args.assume_sorted;
    let report = replay(args).await?;
    if let Some(warning) = late_warning(&report, assume_sorted) {
        eprintln!("{warning}");
    }
    println!("{report}");
    Ok(report)
}

/// A warning when more than 1 % of the valid events scored or refused by the core were late.
fn late_warning(report: &ReplayReport, assume_sorted: bool) -> Option<String> {
    let valid = report.applied + report.duplicates + report.late;
    if !pipeline::late_share_warrants_warning(report.late, valid) {
        return None;
    }
    let cause = if assume_sorted {
        "the file is probably not in event-time order: replay it without --assume-sorted, which \
         sorts the events by time first"
    } else {
        "the events were sorted by time, so they are older than what earlier replays into this \
         data directory left (a replay continues from their state): replay the files in time \
         order, or into a fresh data directory"
    };
    Some(format!(
        "replay: warning: {} of {valid} valid events ({:.1} %) were late (older than the greatest \
         event time before them minus the allowed lateness): they are in the history but were not \
         scored; {cause}",
        report.late,
        report.late as f64 * 100.0 / valid as f64
    ))
}

/// The settings a replay takes from `--config` (or the defaults).
struct Settings {
    scoring: vigil_engine::scoring::ScoringConfig,
    accounts: Vec<vigil_engine::scoring::AccountInfo>,
    data_dir: PathBuf,
    history: HistoryConfig,
    print_alerts: bool,
}

fn settings(args: &ReplayArgs) -> anyhow::Result<Settings> {
    let mut s = match &args.config {
        Some(path) => {
            let cfg = VigilConfig::load(Some(path))?;
            Settings {
                scoring: cfg.scoring,
                accounts: cfg.accounts,
                data_dir: cfg.data_dir,
                history: cfg.history,
                print_alerts: cfg.print_alerts,
            }
        }
        None => Settings {
            scoring: Default::default(),
            accounts: Vec::new(),
            data_dir: default_data_dir(),
            history: HistoryConfig::default(),
            print_alerts: true,
        },
    };
    if let Some(d) = &args.data_dir {
        s.data_dir = d.clone();
    }
    if args.quiet {
        s.print_alerts = false;
    }
    Ok(s)
}

fn is_parquet(path: &Path) -> anyhow::Result<bool> {
    let mut magic = [0u8; 4];
    let mut f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut n = 0;
    while n < magic.len() {
        match f.read(&mut magic[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n == 4 && &magic == b"PAR1")
}

/// Replays the file; see the module documentation.
pub async fn replay(args: ReplayArgs) -> anyhow::Result<ReplayReport> {
    let s = settings(&args)?;
    let parquet = match args.format {
        InputFormat::Auto => is_parquet(&args.file)?,
        InputFormat::Jsonl => false,
        InputFormat::Parquet => true,
    };
    let mut file_cfg = FileSourceConfig::new(&args.file);
    if let Some(n) = args.batch_rows {
        file_cfg.max_batch_rows = usize::try_from(n).unwrap_or(usize::MAX);
    }
    let sort = (!args.assume_sorted).then(|| {
        SortConfig::new(
            usize::try_from(args.sort_memory_mb.saturating_mul(1 << 20)).unwrap_or(usize::MAX),
            file_cfg.max_batch_rows,
        )
    });
    let input = if parquet {
        Input::parquet(file_cfg)?
    } else {
        Input::jsonl(file_cfg)?
    };

    // What earlier replays into this data directory left: their state goes on, a file replayed
    // before changes nothing.
    let state = ReplayState::open(&s.data_dir.join("checkpoints"), &args.file)?;
    let shard = ReplayState::shard();
    // One partition: one worker thread.
    let parts = Partitions::new(s.scoring.clone(), &s.accounts, 1)?;
    if let Some(restored) = state.restored_core()? {
        parts.adopt(PartitionActor::restored(
            shard.clone(),
            restored,
            PartitionProgress::default(),
            Clock::Event,
            parts.dims().clone(),
        ))?;
    }
    if state.already_replayed() {
        eprintln!(
            "replay: {} (content {}) was replayed into {} before; nothing changed",
            args.file.display(),
            state.input(),
            s.data_dir.display()
        );
        return Ok(ReplayReport {
            already_replayed: true,
            accounts: parts.accounts()? as u64,
            ..ReplayReport::default()
        });
    }
    let live = LiveTables::open(&s.data_dir, &s.accounts, parts.clone())
        .with_context(|| format!("opening the history under {}", s.data_dir.display()))?;

    let source = Arc::new(SourceMetrics::default());
    let progress = Progress::start(
        input.total,
        input.unit,
        input.position.clone(),
        source.clone(),
        sort.is_some(),
    );
    let pace = Arc::new(Pace::default());
    let (tx, rx) = mpsc::channel(CHANNEL_BATCHES);
    let feed = Feed { tx, pace: pace.clone() };
    let reader = {
        let source = source.clone();
        let progress = progress.clone();
        let runtime = Handle::current();
        std::thread::Builder::new()
            .name("vigil-replay-reader".into())
            .spawn(move || match sort {
                None => input.read(feed, source),
                Some(config) => input.read_sorted(feed, source, &config, &runtime, &progress),
            })
            .context("starting the reader")?
    };

    let mut sink = ReplaySink {
        outputs: RunOutputs {
            events: s.history.enabled.then(|| live.events.clone()),
            late_events: s.history.enabled.then(|| live.late_events.clone()),
            // Written as the replay partition's numbered segments (see `on_batch` below), kept
            // only when the replay's checkpoint is written at the end.
            tied_to_checkpoints: true,
            alerts: live.alerts.clone(),
            flush_rows: s.history.flush_rows.max(1),
            hooks: None,
            scores: None,
            // Printed by the sink, around the progress bar.
            print_alerts: false,
            metrics: None,
            lines: Vec::new(),
        },
        print_alerts: s.print_alerts,
        progress: progress.clone(),
        seq: state.seq_counter(),
        lines: String::new(),
    };
    sink.outputs.on_restored(&shard, state.restored_seq())?;
    let result = run_pipeline(rx, parts.clone(), &mut sink, pace.clone()).await;
    // The pipeline has ended (its receiver is dropped): the reader stops at its next send.
    pace.stop();
    let read = reader
        .join()
        .map_err(|_| anyhow::anyhow!("the replay reader panicked"))?;
    progress.finish().await;
    let stats = result?;
    read?;
    let interrupted = pace.interrupted.load(Ordering::Relaxed);
    let ReplaySink { mut outputs, .. } = sink;
    if interrupted {
        // A replay is kept whole or not at all: drop the history written so far.
        outputs.on_restored(&shard, state.restored_seq())?;
    } else {
        // The rest of the history, then the checkpoint that covers it all, then the health
        // table as of the end of the replay (for `vigil sql --data-dir`).
        if let Some(write) = outputs.history_cut(&shard, state.next_seq()) {
            write()?;
        }
        // The population models, fitted on the whole history now in the data directory,
        // reach the partition before its checkpoint and the health table are taken.
        if s.history.enabled {
            let fitter = ModelFitter::new(
                live.analyst.clone(),
                live.models.clone(),
                parts.clone(),
                s.scoring.clone(),
            );
            let set = fitter.fit(pipeline::wall_ms()).await?;
            eprintln!("replay: {}", vigil_runtime::models::describe(&set));
        }
        let wanted = shard.clone();
        let snapshot = parts
            .each(move |id, core| (*id == wanted).then(|| core.snapshot()))?
            .into_iter()
            .find_map(|(_, s)| s);
        if let Some(snapshot) = snapshot {
            state.save(snapshot, &stats, source.messages.load(Ordering::Relaxed))?;
        }
        vigil_queries::DataDir::new(&s.data_dir).save_health(&parts.health_batch()?)?;
    }

    let mut report = ReplayReport {
        applied: stats.events,
        duplicates: stats.duplicates,
        late: stats.late,
        alerts: stats.alerts,
        interrupted,
        ..ReplayReport::default()
    };
    for (i, code) in InvalidReason::CODES.into_iter().enumerate() {
        let n = source.invalid[i].load(Ordering::Relaxed);
        if n > 0 {
            report.invalid.insert(code, n);
        }
    }
    report.accounts = parts.accounts()? as u64;
    Ok(report)
}

/// The one call into the pipeline: batches in event time, no checkpoints, until the reader is
/// done or Ctrl-C.
async fn run_pipeline(
    batches: mpsc::Receiver<SourceBatch>,
    parts: Partitions,
    sink: &mut ReplaySink,
    pace: Arc<Pace>,
) -> anyhow::Result<PipelineStats> {
    let interrupted = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    pipeline::run(
        batches,
        parts,
        Clock::Event,
        Ticking::AfterEachBatch,
        sink,
        None,
        interrupted,
        move || {
            pace.interrupted.store(true, Ordering::Relaxed);
            pace.stop();
        },
    )
    .await
    .map_err(Into::into)
}

/// The pipeline's outputs in a replay: `vigil run`'s history outputs and alerts printed around
/// the progress bar.
#[derive(Clone)]
struct ReplaySink {
    outputs: RunOutputs,
    print_alerts: bool,
    progress: Arc<Progress>,
    /// Numbers the history segments ([`ReplayState::seq_counter`]).
    seq: Arc<AtomicU64>,
    /// Alert lines to print after the step.
    lines: String,
}

impl ReplaySink {
    /// Buffers the alert lines; printed after the step (not under the core's lock).
    fn print(&mut self, alerts: &[Alert]) -> vigil_runtime::Result<()> {
        if self.print_alerts {
            for a in alerts {
                self.lines.push_str(&serde_json::to_string(a)?);
                self.lines.push('\n');
            }
        }
        Ok(())
    }
}

impl PipelineSink for ReplaySink {
    fn on_batch(
        &mut self,
        shard: &ShardId,
        batch: &RecordBatch,
        outcome: &ApplyOutcome,
        core: &ScoringCore,
    ) -> vigil_runtime::Result<()> {
        self.outputs.on_batch(shard, batch, outcome, core)?;
        self.progress
            .scored
            .fetch_add(batch.num_rows() as u64, Ordering::Relaxed);
        self.progress
            .applied
            .fetch_add(outcome.applied as u64, Ordering::Relaxed);
        self.print(&outcome.alerts)
    }

    fn on_tick(&mut self, shard: &ShardId, alerts: &[Alert], core: &ScoringCore) -> vigil_runtime::Result<()> {
        self.outputs.on_tick(shard, alerts, core)?;
        self.print(alerts)
    }

    fn after_step(&mut self) -> vigil_runtime::Result<()> {
        if !self.lines.is_empty() {
            self.progress.print_stdout(&std::mem::take(&mut self.lines));
        }
        // History in segments of about `flush_rows`, numbered past the restored checkpoint.
        if self
            .outputs
            .events
            .as_ref()
            .is_some_and(|e| e.tail_rows() >= self.outputs.flush_rows)
            && let Some(write) = self
                .outputs
                .history_cut(&ReplayState::shard(), crate::cli::backfill::next_seq(&self.seq))
        {
            write()?;
        }
        self.outputs.after_step()
    }
}

/// Whether the replay is stopping, and whether it was interrupted (Ctrl-C). The pipeline ticks
/// the partition's clock after every batch ([`Ticking::AfterEachBatch`]), so the engine clock
/// reaches every batch's event time before the next batch is applied (alerts do not depend on
/// how fast the machine is).
#[derive(Default)]
struct Pace {
    stopped: AtomicBool,
    interrupted: AtomicBool,
}

impl Pace {
    fn stop(&self) {
        self.stopped.store(true, Ordering::Relaxed);
    }

    fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::Relaxed)
    }
}

/// The reader's end of the pipeline.
struct Feed {
    tx: mpsc::Sender<SourceBatch>,
    pace: Arc<Pace>,
}

impl Feed {
    /// Sends one batch; false when the replay is stopping.
    fn send(&mut self, batch: RecordBatch) -> bool {
        if self.pace.is_stopped() {
            return false;
        }
        if batch.num_rows() == 0 {
            return true;
        }
        self.tx.blocking_send(SourceBatch::unpartitioned(batch)).is_ok()
    }
}

/// A reader that counts the bytes read through it.
struct Counted<R> {
    inner: R,
    bytes: Arc<AtomicU64>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bytes.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

enum InputKind {
    Jsonl,
    Parquet,
}

/// The file to replay and how far reading it has got.
struct Input {
    kind: InputKind,
    /// The file, and the rows per batch.
    cfg: FileSourceConfig,
    /// Bytes (JSON Lines) or rows (Parquet) in the file.
    total: u64,
    unit: &'static str,
    position: Arc<AtomicU64>,
}

impl Input {
    fn jsonl(cfg: FileSourceConfig) -> anyhow::Result<Input> {
        let total = std::fs::metadata(&cfg.path)
            .with_context(|| format!("reading {}", cfg.path.display()))?
            .len();
        Ok(Input {
            kind: InputKind::Jsonl,
            cfg,
            total,
            unit: "bytes",
            position: Arc::new(AtomicU64::new(0)),
        })
    }

    fn parquet(cfg: FileSourceConfig) -> anyhow::Result<Input> {
        let total = ParquetEventSource::open(&cfg.path, cfg.max_batch_rows)?.total_rows();
        Ok(Input {
            kind: InputKind::Parquet,
            cfg,
            total,
            unit: "rows",
            position: Arc::new(AtomicU64::new(0)),
        })
    }

    /// The file's valid events, batch by batch, in file order, counted into `source` as they are
    /// read (valid rows, invalid ones per reason, and the position in the file).
    fn batches(self, source: Arc<SourceMetrics>) -> anyhow::Result<Batches> {
        let cfg = self.cfg;
        let position = self.position;
        let path = cfg.path.clone();
        let file = File::open(&path).with_context(|| format!("opening {}", path.display()))?;
        Ok(match self.kind {
            InputKind::Jsonl => {
                let counted = Counted {
                    inner: file,
                    bytes: position,
                };
                let src = FileSource::from_reader(
                    BufReader::with_capacity(1 << 20, counted),
                    cfg.limits(),
                    cfg.max_batch_rows,
                );
                Box::new(src.map(move |b| {
                    let b = b?;
                    let rows = b.batch.num_rows() as u64;
                    source
                        .messages
                        .fetch_add(rows + b.rejected.len() as u64, Ordering::Relaxed);
                    source.valid.fetch_add(rows, Ordering::Relaxed);
                    for r in &b.rejected {
                        source.invalid[r.reason.index()].fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(b.batch)
                }))
            }
            InputKind::Parquet => {
                drop(file);
                let reader = ParquetEventSource::open(&path, cfg.max_batch_rows)?;
                Box::new(reader.map(move |b| {
                    let b = b?;
                    source.messages.fetch_add(b.rows, Ordering::Relaxed);
                    source.valid.fetch_add(b.events.num_rows() as u64, Ordering::Relaxed);
                    for (i, n) in b.rejected.iter().enumerate() {
                        source.invalid[i].fetch_add(*n, Ordering::Relaxed);
                    }
                    position.fetch_add(b.rows, Ordering::Relaxed);
                    Ok(b.events)
                }))
            }
        })
    }

    /// Reads the whole file into `feed` as it is (runs on its own thread), counting into
    /// `source`.
    fn read(self, mut feed: Feed, source: Arc<SourceMetrics>) -> anyhow::Result<()> {
        for batch in self.batches(source)? {
            if !feed.send(batch?) {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Reads the whole file into the sort, counting into `source`, then sends the events to
    /// `feed` in time order (runs on its own thread, which reads, sorts and merges; `runtime`
    /// reads the spill files).
    fn read_sorted(
        self,
        mut feed: Feed,
        source: Arc<SourceMetrics>,
        config: &SortConfig,
        runtime: &Handle,
        progress: &Arc<Progress>,
    ) -> anyhow::Result<()> {
        let mut batches = self.batches(source)?;
        let pace = feed.pace.clone();
        let read = progress.clone();
        let input = std::iter::from_fn(move || {
            // Ctrl-C while reading: end the sort at once rather than sort what was read.
            if pace.is_stopped() {
                return Some(Err(QueryError::Input("interrupted".into())));
            }
            match batches.next() {
                Some(batch) => Some(batch.map_err(|e| QueryError::Input(e.into()))),
                None => {
                    read.enter(Phase::Sorting, None);
                    None
                }
            }
        });
        let mut sorted = vigil_queries::sort::sort_by_time(input, config).context("starting the sort by event time")?;
        let mut scoring = false;
        while let Some(batch) = runtime.block_on(sorted.next()) {
            let batch = match batch {
                Ok(batch) => batch,
                Err(_) if feed.pace.is_stopped() => return Ok(()),
                Err(QueryError::Input(e)) => return Err(anyhow::Error::from_boxed(e)),
                Err(e @ QueryError::SortMemory { .. }) => {
                    return Err(anyhow::Error::new(e).context(format!(
                        "sorting the events by time in --sort-memory-mb {} (raise it, or lower --batch-rows)",
                        config.memory_limit >> 20
                    )));
                }
                Err(e) => return Err(anyhow::Error::new(e).context("sorting the events by time")),
            };
            if !scoring {
                progress.enter(Phase::Scoring, Some(sorted.stats()));
                scoring = true;
            }
            if !feed.send(batch) {
                return Ok(());
            }
        }
        if !scoring {
            progress.enter(Phase::Scoring, Some(sorted.stats()));
        }
        Ok(())
    }
}

/// The valid events of the file, batch by batch.
type Batches = Box<dyn Iterator<Item = anyhow::Result<RecordBatch>> + Send>;

/// What a replay is doing, for its progress lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Reading the file (with `--assume-sorted`, scoring the events as they are read).
    Reading,
    /// The file is read; the sort merges its sorted runs.
    Sorting,
    /// The sorted events go through the pipeline.
    Scoring,
}

/// Progress on stderr: a bar when stderr is a terminal, else a line every [`PLAIN_EVERY`]; in
/// both cases a last line at the end. A sorting replay reports its phases apart: the bytes or
/// rows read, a line when the sort starts, one when scoring starts (with what the sort spilled),
/// then the events scored.
struct Progress {
    total: u64,
    unit: &'static str,
    position: Arc<AtomicU64>,
    source: Arc<SourceMetrics>,
    applied: AtomicU64,
    /// Events that went through the pipeline (applied, duplicates and late).
    scored: AtomicU64,
    /// The events are sorted before they are scored.
    sorting: bool,
    /// The current phase and when it started.
    phase: Mutex<(Phase, Instant)>,
    started: Instant,
    bar: Option<indicatif::ProgressBar>,
    stop: watch::Sender<bool>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

fn bar_style(template: &str) -> indicatif::ProgressStyle {
    indicatif::ProgressStyle::with_template(template).unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
}

impl Progress {
    fn start(
        total: u64,
        unit: &'static str,
        position: Arc<AtomicU64>,
        source: Arc<SourceMetrics>,
        sorting: bool,
    ) -> Arc<Progress> {
        let bar = std::io::stderr().is_terminal().then(|| {
            let template = if unit == "bytes" {
                "{spinner} [{elapsed_precise}] {wide_bar} {binary_bytes}/{binary_total_bytes} {msg} ETA {eta}"
            } else {
                "{spinner} [{elapsed_precise}] {wide_bar} {human_pos}/{human_len} rows {msg} ETA {eta}"
            };
            indicatif::ProgressBar::new(total).with_style(bar_style(template))
        });
        let (stop, mut stopped) = watch::channel(false);
        let started = Instant::now();
        let p = Arc::new(Progress {
            total,
            unit,
            position,
            source,
            applied: AtomicU64::new(0),
            scored: AtomicU64::new(0),
            sorting,
            phase: Mutex::new((Phase::Reading, started)),
            started,
            bar,
            stop,
            task: Mutex::new(None),
        });
        let every = if p.bar.is_some() {
            Duration::from_millis(200)
        } else {
            PLAIN_EVERY
        };
        let q = p.clone();
        let task = tokio::spawn(async move {
            let mut ticker = tokio::time::interval(every);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            ticker.tick().await;
            loop {
                tokio::select! {
                    _ = ticker.tick() => q.report(),
                    _ = stopped.changed() => return,
                }
            }
        });
        *p.task.lock().unwrap_or_else(|e| e.into_inner()) = Some(task);
        p
    }

    /// Events read so far and their rate since the start.
    fn events_and_rate(&self) -> (u64, f64) {
        let events = self.source.valid.load(Ordering::Relaxed);
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        (events, events as f64 / secs)
    }

    fn phase(&self) -> (Phase, Instant) {
        *self.phase.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn report(&self) {
        let pos = self.position.load(Ordering::Relaxed);
        let (events, rate) = self.events_and_rate();
        let (phase, since) = self.phase();
        match (phase, &self.bar) {
            (Phase::Reading, Some(bar)) => {
                bar.set_position(pos);
                bar.set_message(format!("{events} events, {rate:.0} ev/s"));
            }
            (Phase::Reading, None) if self.sorting => eprintln!(
                "replay: reading {pos}/{} {}, {events} events, {rate:.0} ev/s",
                self.total, self.unit
            ),
            (Phase::Reading, None) => self.plain_line(pos, events, rate),
            (Phase::Sorting, Some(bar)) => bar.tick(),
            (Phase::Sorting, None) => eprintln!(
                "replay: sorting {events} events by event time, {:.0} s",
                since.elapsed().as_secs_f64()
            ),
            (Phase::Scoring, bar) => {
                let scored = self.scored.load(Ordering::Relaxed);
                let rate = scored as f64 / since.elapsed().as_secs_f64().max(1e-3);
                match bar {
                    Some(bar) => {
                        bar.set_position(scored);
                        bar.set_message(format!("{rate:.0} ev/s"));
                    }
                    None => eprintln!("replay: scoring {scored}/{events} events, {rate:.0} ev/s"),
                }
            }
        }
    }

    fn plain_line(&self, pos: u64, events: u64, rate: f64) {
        eprintln!(
            "replay: {pos}/{} {}, {events} events, {rate:.0} ev/s",
            self.total, self.unit
        );
    }

    /// Moves a sorting replay to `phase` and says so on a line of its own: what was read when the
    /// sort starts, what the sort took (`stats`) when scoring starts.
    fn enter(&self, phase: Phase, stats: Option<SortStats>) {
        let now = Instant::now();
        let (_, since) = std::mem::replace(&mut *self.phase.lock().unwrap_or_else(|e| e.into_inner()), (phase, now));
        let secs = now.duration_since(since).as_secs_f64();
        let events = self.source.valid.load(Ordering::Relaxed);
        let line = match phase {
            Phase::Reading => return,
            Phase::Sorting => {
                let invalid: u64 = self.source.invalid.iter().map(|n| n.load(Ordering::Relaxed)).sum();
                format!(
                    "replay: read {events} valid events ({invalid} invalid) in {secs:.1} s; sorting them by event time"
                )
            }
            Phase::Scoring => {
                let how = match stats {
                    Some(s) if s.spill_files > 0 => format!(
                        "{:.1} MiB spilled to disk in {} files",
                        s.spilled_bytes as f64 / (1 << 20) as f64,
                        s.spill_files
                    ),
                    _ => "in memory".to_string(),
                };
                format!("replay: sorted {events} events by event time in {secs:.1} s ({how}); scoring them")
            }
        };
        let Some(bar) = &self.bar else {
            eprintln!("{line}");
            return;
        };
        bar.println(&line);
        // Values first, then the style: the bar is redrawn with the new style at once.
        match phase {
            Phase::Sorting => {
                bar.set_message(format!("sorting {events} events by event time"));
                bar.set_style(bar_style("{spinner} [{elapsed_precise}] {msg}"));
            }
            _ => {
                bar.set_message("");
                bar.set_length(events);
                bar.set_position(0);
                bar.reset_eta();
                bar.set_style(bar_style(
                    "{spinner} [{elapsed_precise}] {wide_bar} {human_pos}/{human_len} events scored, {msg} ETA {eta}",
                ));
            }
        }
    }

    /// Prints `text` on stdout without tearing the bar.
    fn print_stdout(&self, text: &str) {
        use std::io::Write;
        let write = || {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(text.as_bytes());
            let _ = out.flush();
        };
        match &self.bar {
            Some(bar) => bar.suspend(write),
            None => write(),
        }
    }

    /// Stops the periodic reports and prints the last one.
    async fn finish(&self) {
        let _ = self.stop.send(true);
        let task = self.task.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(t) = task {
            let _ = t.await;
        }
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        let (events, rate) = self.events_and_rate();
        self.plain_line(self.position.load(Ordering::Relaxed), events, rate);
        let applied = self.applied.load(Ordering::Relaxed);
        let secs = self.started.elapsed().as_secs_f64();
        eprintln!("replay: done in {secs:.1} s, {applied} events applied");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(applied: u64, duplicates: u64, late: u64) -> ReplayReport {
        ReplayReport {
            applied,
            duplicates,
            late,
            ..ReplayReport::default()
        }
    }

    #[test]
    fn late_events_warn_above_one_percent_of_the_valid_ones() {
        // 1 late of 100 valid: exactly 1 %, no warning; 2 of 100: a warning.
        assert_eq!(late_warning(&report(98, 1, 1), true), None);
        assert_eq!(late_warning(&report(1_000, 0, 0), true), None);
        let w = late_warning(&report(97, 1, 2), true).expect("a warning");
        assert!(
            w.starts_with("replay: warning: 2 of 100 valid events (2.0 %) were late"),
            "{w}"
        );
        assert!(w.contains("without --assume-sorted"), "{w}");
        let w = late_warning(&report(0, 0, 3), false).expect("a warning");
        assert!(w.contains("3 of 3 valid events (100.0 %)"), "{w}");
        assert!(!w.contains("--assume-sorted"), "{w}");
    }
}
