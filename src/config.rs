//! `vigil.toml`: the configuration of `vigil run`, with every key overridable by a `VIGIL_*`
//! environment variable (`VIGIL_SOURCE__BROKERS=host:9092` sets `source.brokers`; `__`
//! separates levels; the value is read as a TOML value when it parses as one, else as text).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;
use vigil_connectors::kafka::{KafkaSinkConfig, KafkaSourceConfig};
use vigil_connectors::routing::{HookConfig, OutboxConfig};
use vigil_engine::rules::RuleConfig;
use vigil_engine::scoring::ScoringConfig;

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VigilConfig {
    /// The Kafka source (`[source]`).
    pub source: KafkaSourceConfig,
    /// The scoring core (`[scoring]`), defaults for everything.
    #[serde(default)]
    pub scoring: ScoringConfig,
    /// Accounts dimension (`[[accounts]]`), e.g. key accounts and their ARR.
    #[serde(default)]
    pub accounts: Vec<vigil_engine::scoring::AccountInfo>,
    /// Engine clock tick in milliseconds (quiet timers fire on it).
    #[serde(default = "default_tick_ms")]
    pub tick_ms: u64,
    /// Threads that score partitions (each partition is scored by one of them); 0, the
    /// default: one per core.
    #[serde(default)]
    pub workers: usize,
    /// Where history (`events/`, `alerts/` Parquet segments) is kept.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// Event history for SQL (`[history]`).
    #[serde(default)]
    pub history: HistoryConfig,
    /// The analyst SQL server (`[sql]`); off unless a password is set.
    #[serde(default)]
    pub sql: SqlServerConfig,
    /// Where undelivered alerts wait (`[outbox]`, default `<data_dir>/outbox`).
    #[serde(default)]
    pub outbox: Option<OutboxConfig>,
    /// Alert hooks (`[[hooks]]`: webhook, kafka, log) and which alerts each gets.
    #[serde(default)]
    pub hooks: Vec<HookConfig>,
    /// SQL rules (`[[rules]]`) evaluated on an interval over the live tables.
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
    /// The scores topic (`[scores]`): latest score per touched account, key = account_id.
    #[serde(default)]
    pub scores: Option<KafkaSinkConfig>,
    /// Print every alert as a JSON line on stdout.
    #[serde(default = "default_true")]
    pub print_alerts: bool,
    /// Per-partition checkpoints (`[checkpoint]`).
    #[serde(default)]
    pub checkpoint: CheckpointConfig,
    /// Engine time: `wall` (event time while busy, wall clock when idle: live quiet detection)
    /// or `event` (event time only: deterministic backfills and comparisons).
    #[serde(default)]
    pub clock: ClockMode,
    /// HTTP endpoints (`[http]`): `/metrics`, `/healthz`, `/readyz`.
    #[serde(default)]
    pub http: HttpConfig,
    /// Process memory (`[memory]`).
    #[serde(default)]
    pub memory: MemoryConfig,
    /// Population model fits (`[models]`).
    #[serde(default)]
    pub models: ModelsConfig,
}

/// `[models]`: when `vigil run` fits the population models (BG/NBD, Gamma-Gamma, sBG) on the
/// history of every partition it holds. Each fit is stored as the next version in
/// `<data_dir>/models.jsonl` (the `models` table) and handed to every partition; a restart
/// starts from the newest stored fit. Fits read the history, so `[history] enabled` must be on.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelsConfig {
    /// Milliseconds from start-up to the first fit.
    #[serde(default = "default_first_fit_ms")]
    pub first_fit_ms: u64,
    /// Milliseconds between fits; 0: never fit (the stored fit, if any, stays in use).
    #[serde(default = "default_fit_interval_ms")]
    pub fit_interval_ms: u64,
}

fn default_first_fit_ms() -> u64 {
    60_000
}
fn default_fit_interval_ms() -> u64 {
    3_600_000
}

impl Default for ModelsConfig {
    fn default() -> Self {
        ModelsConfig {
            first_fit_ms: default_first_fit_ms(),
            fit_interval_ms: default_fit_interval_ms(),
        }
    }
}

/// `[memory]`: how the process takes its memory.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemoryConfig {
    /// MiB mapped and written at start-up and handed to the allocator (`vigil::alloc::pretouch`),
    /// so that the state grows into memory that is already mapped instead of taking page
    /// faults mid-batch. Size it to the expected peak: in the benchmark, 2,070 B per account with
    /// a full 90-day window, plus 28 B per event id in the de-duplication window. 0, the default:
    /// off. More than the machine has available is refused at start-up. The memory stays with
    /// the process.
    #[serde(default)]
    pub pretouch_mb: usize,
}

/// `clock = "wall" | "event"`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClockMode {
    #[default]
    Wall,
    Event,
}

/// `[checkpoint]`: where and how often partition state is checkpointed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointConfig {
    /// State directory shared by every process of the consumer group (default
    /// `<data_dir>/checkpoints`).
    #[serde(default)]
    pub dir: Option<PathBuf>,
    /// Longest time between checkpoints of a changed partition.
    #[serde(default = "default_checkpoint_ms")]
    pub interval_ms: u64,
    /// Messages read since the last checkpoint that trigger one.
    #[serde(default = "default_checkpoint_messages")]
    pub max_messages: u64,
    /// How long restoring assigned partitions may take before the source gives up.
    #[serde(default = "default_restore_ms")]
    pub restore_timeout_ms: u64,
}

fn default_checkpoint_ms() -> u64 {
    10_000
}
fn default_checkpoint_messages() -> u64 {
    1_000_000
}
fn default_restore_ms() -> u64 {
    120_000
}

impl Default for CheckpointConfig {
    fn default() -> Self {
        CheckpointConfig {
            dir: None,
            interval_ms: default_checkpoint_ms(),
            max_messages: default_checkpoint_messages(),
            restore_timeout_ms: default_restore_ms(),
        }
    }
}

/// `[http]`: the operational endpoints.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Address of `/metrics`, `/healthz`, `/readyz`; empty string: off.
    #[serde(default = "default_http_listen")]
    pub listen: String,
    /// `/healthz` turns 503 once the consumer group has not been up and steady for this long,
    /// or the source has read nothing for this long while behind (see
    /// `vigil_connectors::stall::StallWatch`).
    #[serde(default = "default_stall_after_ms")]
    pub stall_after_ms: u64,
}

fn default_stall_after_ms() -> u64 {
    30_000
}

fn default_http_listen() -> String {
    "127.0.0.1:9464".into()
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: default_http_listen(),
            stall_after_ms: default_stall_after_ms(),
        }
    }
}

fn default_tick_ms() -> u64 {
    100
}
/// The data directory when none is configured.
pub fn default_data_dir() -> PathBuf {
    PathBuf::from("data")
}
fn default_true() -> bool {
    true
}

/// The outbox directory when `[outbox] dir` is not set: `<data_dir>/outbox`.
pub fn default_outbox_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("outbox")
}

/// `[history]`: the `events`, `late_events` and `alerts` tables. In `vigil run` a partition's
/// history is written with its checkpoints; without checkpoints (`vigil replay`) the in-memory
/// tail becomes a Parquet segment at `flush_rows`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryConfig {
    /// Keep events for SQL at all.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Rows in the in-memory tail before it is written as a segment (`vigil replay`; `vigil
    /// run` writes each partition's history with its checkpoints).
    #[serde(default = "default_flush_rows")]
    pub flush_rows: usize,
}

fn default_flush_rows() -> usize {
    200_000
}

impl Default for HistoryConfig {
    fn default() -> Self {
        HistoryConfig {
            enabled: true,
            flush_rows: default_flush_rows(),
        }
    }
}

/// `[sql]`: Postgres wire protocol server for analysts, read-only, password login.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqlServerConfig {
    #[serde(default = "default_sql_listen")]
    pub listen: SocketAddr,
    #[serde(default = "default_sql_user")]
    pub user: String,
    /// No password, no server (`VIGIL_SQL__PASSWORD`).
    #[serde(default)]
    pub password: Option<String>,
    /// How clients prove the password: `scram-sha-256` (default) or `md5` (old clients only).
    #[serde(default)]
    pub auth: vigil_queries::postgres::AuthMethod,
    /// TLS: the server's certificate chain (PEM); with `tls_key`.
    #[serde(default)]
    pub tls_cert: Option<std::path::PathBuf>,
    /// TLS: the certificate's private key (PEM); with `tls_cert`.
    #[serde(default)]
    pub tls_key: Option<std::path::PathBuf>,
    /// Rows one query may return (0: no limit); past it the query ends with SQLSTATE 54000.
    #[serde(default = "default_max_result_rows")]
    pub max_result_rows: u64,
    /// Bytes of row data one query may return (0: no limit).
    #[serde(default = "default_max_result_bytes")]
    pub max_result_bytes: u64,
}

fn default_max_result_rows() -> u64 {
    vigil_queries::postgres::ResultLimits::DEFAULT_MAX_ROWS
}
fn default_max_result_bytes() -> u64 {
    vigil_queries::postgres::ResultLimits::DEFAULT_MAX_BYTES
}

impl SqlServerConfig {
    /// The per-query result limits.
    pub fn limits(&self) -> vigil_queries::postgres::ResultLimits {
        vigil_queries::postgres::ResultLimits::from_settings(self.max_result_rows, self.max_result_bytes)
    }

    /// The TLS files, when both are set.
    pub fn tls(&self) -> Option<vigil_queries::postgres::TlsFiles> {
        vigil_queries::postgres::TlsFiles::from_pair(self.tls_cert.as_ref(), self.tls_key.as_ref())
    }
}

impl std::fmt::Debug for SqlServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlServerConfig")
            .field("listen", &self.listen)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("auth", &self.auth)
            .finish()
    }
}

fn default_sql_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 5433))
}
fn default_sql_user() -> String {
    "vigil".into()
}

impl Default for SqlServerConfig {
    fn default() -> Self {
        SqlServerConfig {
            listen: default_sql_listen(),
            user: default_sql_user(),
            password: None,
            auth: Default::default(),
            tls_cert: None,
            tls_key: None,
            max_result_rows: default_max_result_rows(),
            max_result_bytes: default_max_result_bytes(),
        }
    }
}

const PREFIX: &str = "VIGIL_";
/// `VIGIL_*` variables that are not configuration keys.
const NOT_CONFIG: [&str; 4] = ["CONFIG", "LOG", "TEST_KAFKA", "KAFKA_LIBS"];

/// Applies `VIGIL_*` overrides from `vars` onto a parsed TOML document.
pub fn apply_env_overrides(
    doc: &mut toml::Table,
    vars: impl IntoIterator<Item = (String, String)>,
) -> anyhow::Result<Vec<String>> {
    let mut applied = Vec::new();
    for (name, value) in vars {
        let Some(path) = name.strip_prefix(PREFIX) else {
            continue;
        };
        // Variables of the CLI and the test harness, not config keys.
        if path.is_empty() || NOT_CONFIG.contains(&path) {
            continue;
        }
        let keys: Vec<String> = path.split("__").map(|k| k.to_ascii_lowercase()).collect();
        if keys.iter().any(String::is_empty) {
            anyhow::bail!("{name}: empty key segment");
        }
        let parsed = format!("v = {value}")
            .parse::<toml::Table>()
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(value.clone()));
        let mut table = &mut *doc;
        for k in &keys[..keys.len() - 1] {
            let entry = table
                .entry(k.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            table = entry
                .as_table_mut()
                .with_context(|| format!("{name}: `{k}` is not a table"))?;
        }
        table.insert(keys[keys.len() - 1].clone(), parsed);
        applied.push(keys.join("."));
    }
    Ok(applied)
}

impl VigilConfig {
    /// Parses TOML text, then applies the given environment overrides.
    pub fn parse(text: &str, env: impl IntoIterator<Item = (String, String)>) -> anyhow::Result<Self> {
        let mut doc: toml::Table = text.parse().context("vigil.toml is not valid TOML")?;
        apply_env_overrides(&mut doc, env)?;
        let cfg: VigilConfig = toml::Value::Table(doc).try_into().context("vigil.toml")?;
        cfg.source.validate()?;
        vigil_connectors::routing::validate_hooks(&cfg.hooks)?;
        if let Some(s) = &cfg.scores {
            s.validate()?;
        }
        Ok(cfg)
    }

    /// The outbox settings, its directory defaulting to `<data_dir>/outbox`.
    pub fn outbox(&self) -> OutboxConfig {
        self.outbox.clone().unwrap_or_else(|| OutboxConfig {
            dir: default_outbox_dir(&self.data_dir),
            ..OutboxConfig::default()
        })
    }

    /// The checkpoint directory, defaulting to `<data_dir>/checkpoints`.
    pub fn checkpoint_dir(&self) -> PathBuf {
        self.checkpoint
            .dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("checkpoints"))
    }

    /// Reads the file (when given) and applies the process's `VIGIL_*` variables.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Self> {
        let text = match path {
            Some(p) => std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?,
            None => String::new(),
        };
        Self::parse(&text, std::env::vars())
    }

    /// The `[scoring]` settings of the vigil.toml at `path`, or the defaults without one (the
    /// offline commands that replay a history: `vigil evaluate`, `vigil model fit`).
    pub fn scoring(path: Option<&Path>) -> anyhow::Result<ScoringConfig> {
        match path {
            Some(p) => Ok(Self::load(Some(p))?.scoring),
            None => Ok(ScoringConfig::default()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn env_overrides_nested_keys_with_typed_values() {
        let text = "[source]\nbrokers = \"file:1\"\nmax_batch_rows = 10\n";
        let cfg = VigilConfig::parse(
            text,
            env(&[
                ("VIGIL_SOURCE__BROKERS", "env:9092"),
                ("VIGIL_SOURCE__MAX_BATCH_ROWS", "4096"),
                ("VIGIL_SOURCE__PROPERTIES__SECURITY.PROTOCOL", "SASL_SSL"),
                ("VIGIL_SCORING__QUIET__K", "2.5"),
                ("VIGIL_TICK_MS", "250"),
                ("OTHER", "ignored"),
            ]),
        )
        .expect("parses");
        assert_eq!(cfg.source.brokers, "env:9092");
        assert_eq!(cfg.source.max_batch_rows, 4096);
        assert_eq!(
            cfg.source.properties.get("security.protocol").map(String::as_str),
            Some("SASL_SSL")
        );
        assert_eq!(cfg.scoring.quiet.k, 2.5);
        assert_eq!(cfg.tick_ms, 250);
        assert_eq!(cfg.memory.pretouch_mb, 0, "off unless set");
        let cfg = VigilConfig::parse(text, env(&[("VIGIL_MEMORY__PRETOUCH_MB", "4096")])).expect("parses");
        assert_eq!(cfg.memory.pretouch_mb, 4096);
    }

    #[test]
    fn config_from_env_alone_and_clear_errors() {
        let cfg = VigilConfig::parse("", env(&[("VIGIL_SOURCE__BROKERS", "b:1")])).expect("env alone");
        assert_eq!(cfg.source.topics, vec!["interactions".to_string()]);
        let err = VigilConfig::parse("[source]\nbrokers = \"b\"\nnope = 1\n", env(&[])).expect_err("unknown key");
        assert!(format!("{err:#}").contains("nope"), "{err:#}");
        let err = VigilConfig::parse("", env(&[])).expect_err("no source");
        assert!(format!("{err:#}").contains("source"), "{err:#}");
    }
}
