//! `vigil evaluate`: how well churn risk, the health score and a naive activity rule predicted
//! the cancellations of a data directory's history (see `vigil_runtime::backtest`).

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, bail};
use vigil_queries::Analyst;
use vigil_runtime::backtest::{BacktestConfig, backtest};

/// `vigil evaluate --data-dir DIR`.
#[derive(Debug, Clone, clap::Args)]
pub struct EvaluateArgs {
    /// Data directory whose history (`events`) is replayed and scored.
    #[arg(long)]
    pub data_dir: PathBuf,
    /// Days after a cut-off in which a cancellation counts as churn.
    #[arg(long, default_value_t = 30)]
    pub horizon_days: i64,
    /// Days between cut-offs.
    #[arg(long, default_value_t = 30)]
    pub step_days: i64,
    /// Days of history before the first cut-off.
    #[arg(long, default_value_t = 90)]
    pub warmup_days: i64,
    /// Scoring settings (`[scoring]` of a vigil.toml); the defaults without it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Runs `vigil evaluate`.
pub async fn run(args: EvaluateArgs) -> anyhow::Result<()> {
    if !args.data_dir.join("events").is_dir() {
        bail!("{}: no history here (no events/ directory)", args.data_dir.display());
    }
    let analyst = Analyst::open_data_dir(&args.data_dir)
        .await
        .with_context(|| format!("opening {}", args.data_dir.display()))?;
    let scoring = crate::config::VigilConfig::scoring(args.config.as_deref())?;
    let cfg = BacktestConfig {
        scoring,
        horizon_days: args.horizon_days,
        step_days: args.step_days,
        warmup_days: args.warmup_days,
    };
    let report = backtest(&analyst, &cfg).await?;
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string(&report)?)?;
        return Ok(());
    }
    writeln!(
        out,
        "{} cut-offs every {} days ({} with a fitted churn model; {} earlier ones left out: too \
         few cancellations before them to fit it); {} account scorings, {} followed by a \
         cancellation within {} days",
        report.cutoffs.len(),
        args.step_days,
        report.model_cutoffs,
        report.skipped_cutoffs,
        report.observations,
        report.churned,
        report.horizon_days
    )?;
    writeln!(out, "{:<14} {:>7} {:>17}", "score", "AUC", "top-decile lift")?;
    let f = |v: Option<f64>, digits: usize| v.map_or("-".to_string(), |v| format!("{v:.digits$}"));
    for s in &report.scores {
        writeln!(
            out,
            "{:<14} {:>7} {:>17}",
            s.score,
            f(s.auc, 3),
            f(s.top_decile_lift, 2)
        )?;
    }
    if let Some(risk) = report.scores.iter().find(|s| s.score == "churn_risk") {
        writeln!(out, "churn_risk calibration (by decile of the predicted risk):")?;
        writeln!(
            out,
            "{:>4} {:>7} {:>15} {:>14}",
            "bin", "count", "mean predicted", "observed rate"
        )?;
        for b in &risk.calibration {
            writeln!(
                out,
                "{:>4} {:>7} {:>15.3} {:>14.3}",
                b.bin, b.count, b.mean_score, b.observed_rate
            )?;
        }
    }
    Ok(())
}
