//! `vigil alerts failed` and `vigil alerts retry`: the parked deliveries of the hooks' outbox.
//! Both work while `vigil run` is running (a retry is then handed to it through a request file)
//! and while it is stopped (the retry is applied to the outbox; the next start delivers).

use std::path::PathBuf;

use anyhow::Context;
use vigil_connectors::outbox::{RetryFilter, RetryOutcome, read_failed, request_retry};

/// Where the outbox is.
#[derive(Debug, Clone, clap::Args)]
pub struct OutboxArgs {
    /// vigil.toml of the `vigil run` whose outbox this is (its `[outbox] dir`, else
    /// `<data_dir>/outbox`).
    #[arg(long, env = "VIGIL_CONFIG")]
    pub config: Option<PathBuf>,
    /// The outbox directory itself (overrides --config).
    #[arg(long)]
    pub outbox_dir: Option<PathBuf>,
}

impl OutboxArgs {
    fn dir(&self) -> anyhow::Result<PathBuf> {
        if let Some(d) = &self.outbox_dir {
            return Ok(d.clone());
        }
        let text = match &self.config {
            Some(p) => std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?,
            None => String::new(),
        };
        let mut doc: toml::Table = text.parse().context("vigil.toml is not valid TOML")?;
        crate::config::apply_env_overrides(&mut doc, std::env::vars())?;
        let outbox_dir = doc
            .get("outbox")
            .and_then(|o| o.get("dir"))
            .and_then(|d| d.as_str())
            .map(PathBuf::from);
        let data_dir = doc
            .get("data_dir")
            .and_then(|d| d.as_str())
            .map_or_else(crate::config::default_data_dir, PathBuf::from);
        Ok(outbox_dir.unwrap_or_else(|| crate::config::default_outbox_dir(&data_dir)))
    }
}

/// `vigil alerts ...`.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum AlertsCommand {
    /// List alerts whose delivery was given up after the hook's attempts (parked).
    Failed {
        #[command(flatten)]
        outbox: OutboxArgs,
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Make parked deliveries pending again (all, or only some hooks / alert ids).
    Retry {
        #[command(flatten)]
        outbox: OutboxArgs,
        /// Only deliveries to this hook (repeatable).
        #[arg(long = "hook")]
        hooks: Vec<String>,
        /// Only this alert id (repeatable).
        #[arg(long = "id")]
        ids: Vec<String>,
    },
}

/// Runs `vigil alerts ...`.
pub fn run(cmd: AlertsCommand) -> anyhow::Result<()> {
    match cmd {
        AlertsCommand::Failed { outbox, json } => {
            let dir = outbox.dir()?;
            let failed = read_failed(&dir).with_context(|| format!("outbox {}", dir.display()))?;
            for f in &failed {
                if json {
                    let line = serde_json::json!({
                        "id": f.alert.id,
                        "hook": f.sink,
                        "attempts": f.attempts,
                        "error": f.error,
                        "failed_at_ms": f.failed_at_ms,
                        "alert": f.alert,
                    });
                    println!("{line}");
                } else {
                    println!(
                        "{}\thook={}\tattempts={}\terror={}",
                        f.alert.id, f.sink, f.attempts, f.error
                    );
                }
            }
            if !json {
                eprintln!("{} parked deliveries in {}", failed.len(), dir.display());
            }
            Ok(())
        }
        AlertsCommand::Retry { outbox, hooks, ids } => {
            let dir = outbox.dir()?;
            let filter = RetryFilter { sinks: hooks, ids };
            match request_retry(&dir, &filter).with_context(|| format!("outbox {}", dir.display()))? {
                RetryOutcome::Applied { count } => {
                    println!("{count} parked deliveries are pending again; the next `vigil run` delivers them")
                }
                RetryOutcome::Queued { request } => println!(
                    "retry requested from the running vigil ({}); it applies it within its poll interval",
                    request.display()
                ),
            }
            Ok(())
        }
    }
}
