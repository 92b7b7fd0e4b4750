//! The `vigil` command: streaming analytics for customer health.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use vigil_connectors::file::{FileSource, FileSourceConfig};

#[derive(Debug, Parser)]
#[command(
    name = "vigil",
    version,
    about = "Live, explainable customer health and churn risk from Kafka."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Zero-setup demo: embedded broker, generated traffic (90 days replayed in about a
    /// minute), the full pipeline, a live view of the riskiest accounts and the alerts.
    Demo {
        /// Stop after this many seconds (default: run until Ctrl-C).
        #[arg(long)]
        duration: Option<u64>,
        /// Accounts to generate.
        #[arg(long, default_value_t = 300)]
        accounts: usize,
        /// Seed of the generated world.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Wall-clock seconds the 90 days of history take to replay.
        #[arg(long, default_value_t = 60.0)]
        replay_secs: f64,
        /// Port of the demo's SQL server (psql); taken: any free port.
        #[arg(long, default_value_t = 5433)]
        sql_port: u16,
        /// Exit once the history is replayed and scored (scripts, CI) instead of serving SQL
        /// until Ctrl-C.
        #[arg(long)]
        exit_after_replay: bool,
    },
    /// Run the continuous pipeline: Kafka source → scoring core → alerts, until SIGTERM.
    ///
    /// Configuration comes from the TOML file and `VIGIL_*` environment variables, which
    /// override any key: `__` separates levels, e.g. `VIGIL_SOURCE__BROKERS=host:9092`,
    /// `VIGIL_SOURCE__GROUP_ID=vigil`, `VIGIL_SOURCE__PROPERTIES__SECURITY.PROTOCOL=SASL_SSL`,
    /// `VIGIL_SCORING__QUIET__K=3`, `VIGIL_TICK_MS=100`, `VIGIL_CLOCK=event`,
    /// `VIGIL_CHECKPOINT__DIR=/shared/ckpt`, `VIGIL_CHECKPOINT__INTERVAL_MS=10000`,
    /// `VIGIL_HTTP__LISTEN=0.0.0.0:9464`, `VIGIL_SQL__PASSWORD=...`, `VIGIL_DATA_DIR=/var/lib/vigil`.
    ///
    /// Per-partition checkpoints (state + next offset) are written every interval and on
    /// SIGTERM; offsets are committed only after a checkpoint; an assigned partition is restored
    /// from its checkpoint. SIGTERM: stop consuming, finish in-flight batches, checkpoint,
    /// commit, exit 0.
    Run {
        /// vigil.toml (optional when everything comes from `VIGIL_*` variables).
        #[arg(long, env = "VIGIL_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Run read-only SQL over a data directory: `vigil sql "SELECT ..."` or `vigil sql --file f.sql`.
    Sql(vigil::cli::analyst::SqlArgs),
    /// Run a named analyst query (`vigil query --list` lists them with their parameters).
    Query(vigil::cli::analyst::QueryArgs),
    /// Serve read-only analyst SQL over the Postgres wire protocol (psql, BI tools), password login.
    Serve(vigil::cli::analyst::ServeArgs),
    /// Alerts whose delivery to a hook failed: list them, retry them.
    #[command(subcommand)]
    Alerts(vigil::cli::alerts::AlertsCommand),
    /// Backfill: replay a JSON Lines file of contract-v1 events (or a Parquet file of events)
    /// through the pipeline in event time; history goes to the data directory, alerts to
    /// stdout (unless `--quiet`), progress to stderr, a summary line to stdout at the end.
    Replay(vigil::cli::replay::ReplayArgs),
    /// Backtest: score every account as of monthly cut-offs of a data directory's history
    /// (models fitted on the data before each) and report how well churn risk, the health score
    /// and an activity rule predicted the next days' cancellations (AUC, top-decile lift,
    /// calibration).
    Evaluate(vigil::cli::evaluate::EvaluateArgs),
    /// Population models of the customers (BG/NBD, Gamma-Gamma, sBG): `vigil model fit`.
    #[command(subcommand)]
    Model(vigil::cli::model::ModelCommand),
    /// Produce the demo's generated traffic (hundreds of accounts, key accounts, churners, one
    /// key account going quiet) to a Kafka topic, e.g. for `vigil run` in Docker Compose.
    Generate(vigil::cli::generate::GenerateArgs),
    /// Check a JSON Lines file against the event contract v1: counts valid events and invalid
    /// lines per reason; `--rejects` writes the invalid lines, unchanged, to a file.
    Validate {
        /// JSON Lines file of contract-v1 events.
        file: PathBuf,
        /// Where to write invalid lines (unchanged) as they are found.
        #[arg(long)]
        rejects: Option<PathBuf>,
        /// Print every invalid line's reason.
        #[arg(long)]
        verbose: bool,
    },
}

fn validate(file: PathBuf, rejects: Option<PathBuf>, verbose: bool) -> anyhow::Result<()> {
    use std::io::Write;
    let mut source = FileSource::open(&FileSourceConfig::new(&file))?;
    let mut out = match &rejects {
        Some(p) => Some(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
        )),
        None => None,
    };
    let (mut valid, mut per_reason) = (0usize, BTreeMap::<&str, usize>::new());
    while let Some(batch) = source.next_batch()? {
        valid += batch.batch.num_rows();
        for r in batch.rejected {
            *per_reason.entry(r.reason.code()).or_default() += 1;
            if verbose {
                eprintln!("line {}: {}: {}", r.line + 1, r.reason.code(), r.reason);
            }
            if let Some(w) = out.as_mut() {
                w.write_all(&r.bytes)?;
                w.write_all(b"\n")?;
            }
        }
    }
    if let Some(mut w) = out {
        w.flush()?;
    }
    let invalid: usize = per_reason.values().sum();
    println!("{}: {valid} valid, {invalid} invalid", file.display());
    for (reason, n) in per_reason {
        println!("  {reason}: {n}");
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    vigil::alloc::use_huge_pages();
    let cli = Cli::parse();
    match cli.command {
        Command::Validate { file, rejects, verbose } => validate(file, rejects, verbose),
        Command::Alerts(cmd) => vigil::cli::alerts::run(cmd),
        Command::Sql(args) => tokio::runtime::Runtime::new()?.block_on(vigil::cli::analyst::run_sql(args)),
        Command::Query(args) => tokio::runtime::Runtime::new()?.block_on(vigil::cli::analyst::run_query(args)),
        Command::Serve(args) => tokio::runtime::Runtime::new()?.block_on(vigil::cli::analyst::run_serve(args)),
        Command::Evaluate(args) => tokio::runtime::Runtime::new()?.block_on(vigil::cli::evaluate::run(args)),
        Command::Model(cmd) => tokio::runtime::Runtime::new()?.block_on(vigil::cli::model::run(cmd)),
        Command::Generate(args) => {
            vigil::cli::generate::run(args)?;
            Ok(())
        }
        Command::Replay(args) => {
            tokio::runtime::Runtime::new()?.block_on(vigil::cli::replay::run(args))?;
            Ok(())
        }
        Command::Run { config } => {
            tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_env("VIGIL_LOG").unwrap_or_else(|_| "info".into()),
                )
                .with_writer(std::io::stderr)
                .init();
            let cfg = vigil::config::VigilConfig::load(config.as_deref())?;
            if cfg.memory.pretouch_mb > 0 {
                let started = std::time::Instant::now();
                let areas = vigil::alloc::pretouch(cfg.memory.pretouch_mb).context("memory.pretouch_mb")?;
                let mib: usize = areas.iter().map(|a| a.len >> 20).sum();
                tracing::info!(mib, secs = started.elapsed().as_secs_f64(), "pretouched memory");
            }
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(vigil::run::run(cfg))?;
            Ok(())
        }
        Command::Demo {
            duration,
            accounts,
            seed,
            replay_secs,
            sql_port,
            exit_after_replay,
        } => {
            let runtime = tokio::runtime::Runtime::new()?;
            let opts = vigil::demo::DemoOptions {
                duration: duration.map(std::time::Duration::from_secs),
                accounts,
                seed,
                replay_secs,
                sql_listen: std::net::SocketAddr::from(([127, 0, 0, 1], sql_port)),
                sql_password: "vigil".into(),
                exit_after_replay,
            };
            runtime.block_on(vigil::demo::run(opts))?;
            Ok(())
        }
    }
}
