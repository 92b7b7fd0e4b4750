//! `vigil model fit`: the population models and the churn model fitted on a data directory's
//! history (and stored as its next version), the population models on a transactions file, or
//! (sBG) on a cohort's survivors per period.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use chrono::NaiveDate;
use serde_json::json;
use vigil_engine::models::sbg::{self, Lifetimes};
use vigil_engine::models::summary::Transactions;
use vigil_engine::models::{CustomerSummary, FitWindow};
use vigil_queries::Analyst;
use vigil_queries::models::{ModelStore, fit_timed};
use vigil_runtime::models::{describe, fit_models};

/// `vigil model ...`.
#[derive(Debug, clap::Subcommand)]
pub enum ModelCommand {
    /// Fit BG/NBD (repeat buying, P(alive)), Gamma-Gamma (spend per purchase) and sBG (contract
    /// renewals) by maximum likelihood: on a data directory's history (with the churn model
    /// fitted on its cancellations; stored as the next version of its `models` table), on a
    /// transactions file, or sBG on a cohort's survivors.
    Fit(FitArgs),
}

/// Where the data of a fit comes from, and how to print it.
#[derive(Debug, Clone, clap::Args)]
pub struct FitArgs {
    /// Data directory whose history (`events`) is fitted; the fit becomes the next version in
    /// `<dir>/models.jsonl`, which `vigil run` and `vigil replay` then start from.
    #[arg(long, required_unless_present_any = ["transactions", "survivors"])]
    pub data_dir: Option<PathBuf>,
    /// With --data-dir: end of observation, YYYY-MM-DD (exclusive); default: the end of the data.
    #[arg(long, requires = "data_dir")]
    pub as_of: Option<NaiveDate>,
    /// With --data-dir: print the fit without storing it.
    #[arg(long, requires = "data_dir")]
    pub dry_run: bool,
    /// With --data-dir: scoring settings (`[scoring]` of a vigil.toml) under which the history
    /// is replayed for the churn model; the defaults without it.
    #[arg(long, requires = "data_dir")]
    pub config: Option<PathBuf>,
    /// A transactions file: `csv` with a header naming `account_id` (or `customer_id`), `date`
    /// (YYYY-MM-DD, YYYYMMDD or RFC 3339) and `amount`; or `cdnow`, the whitespace-separated
    /// CDNOW files (`id yyyymmdd cds dollars`, or the sample's `master_id sample_id yyyymmdd
    /// cds dollars`). Transactions of one customer on one day are one purchase occasion.
    #[arg(long, conflicts_with_all = ["data_dir", "survivors"])]
    pub transactions: Option<PathBuf>,
    /// Format of --transactions.
    #[arg(long, value_enum, default_value_t = TxFormat::Csv, requires = "transactions")]
    pub format: TxFormat,
    /// With --transactions: last day of the calibration period (inclusive, YYYY-MM-DD); later
    /// transactions are left out. Default: the last transaction's day.
    #[arg(long, requires = "transactions")]
    pub calibration_end: Option<NaiveDate>,
    /// With --transactions: days per time unit of the parameters (7 = weeks, as in the CDNOW
    /// papers; alpha is in this unit).
    #[arg(long, default_value_t = 1.0, requires = "transactions")]
    pub unit_days: f64,
    /// sBG on a cohort's survivors: CSV with a header, the period in the first column and one
    /// column per cohort of the number still active at the start of each period (period 0 = the
    /// cohort's size).
    #[arg(long, conflicts_with = "data_dir", requires = "cohort")]
    pub survivors: Option<PathBuf>,
    /// With --survivors: the cohort's column.
    #[arg(long, requires = "survivors")]
    pub cohort: Option<String>,
    /// With --survivors: periods fitted (the calibration; later ones are only projected).
    /// Default: every period in the file.
    #[arg(long, requires = "survivors")]
    pub periods: Option<usize>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Transaction file formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TxFormat {
    Csv,
    Cdnow,
}

/// Runs `vigil model`.
pub async fn run(cmd: ModelCommand) -> anyhow::Result<()> {
    let ModelCommand::Fit(args) = cmd;
    let mut out = std::io::stdout().lock();
    if let Some(path) = &args.survivors {
        let cohort = args.cohort.as_deref().unwrap_or_default();
        return fit_survivors(path, cohort, args.periods, args.json, &mut out);
    }
    let set = if let Some(path) = &args.transactions {
        let tx = read_transactions(path, args.format)?;
        let (first, last) = tx
            .day_range()
            .with_context(|| format!("{}: no transactions", path.display()))?;
        let end = args.calibration_end.map_or(last, day_number);
        if !(args.unit_days.is_finite() && args.unit_days > 0.0) {
            bail!("--unit-days must be a positive number");
        }
        let rows: Vec<CustomerSummary> = tx.summarise(end, args.unit_days).into_iter().map(|(_, c)| c).collect();
        let day_ms = 86_400_000_i64;
        fit_timed(
            &rows,
            FitWindow {
                fitted_at_ms: vigil_runtime::pipeline::wall_ms(),
                start_ms: i64::from(first) * day_ms,
                end_ms: (i64::from(end) + 1) * day_ms,
                time_unit_days: args.unit_days,
            },
        )
    } else {
        let dir = args
            .data_dir
            .as_deref()
            .context("--data-dir, --transactions or --survivors")?;
        if !dir.join("events").is_dir() {
            bail!("{}: no history here (no events/ directory)", dir.display());
        }
        let analyst = Analyst::open_data_dir(dir)
            .await
            .with_context(|| format!("opening {}", dir.display()))?;
        let as_of = args.as_of.map(|d| d.format("%Y-%m-%d").to_string());
        let scoring = crate::config::VigilConfig::scoring(args.config.as_deref())?;
        let set = fit_models(&analyst, &scoring, as_of.as_deref(), vigil_runtime::pipeline::wall_ms()).await?;
        if args.dry_run || !set.any_fitted() {
            set
        } else {
            ModelStore::in_data_dir(dir).append(set)?
        }
    };
    if args.json {
        writeln!(out, "{}", serde_json::to_string(&set)?)?;
    } else {
        writeln!(out, "{}", describe(&set))?;
    }
    if !set.any_fitted() {
        bail!("no model could be fitted on this data");
    }
    Ok(())
}

/// Days since 1970-01-01.
fn day_number(d: NaiveDate) -> i32 {
    (d - NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch")).num_days() as i32
}

fn parse_date(s: &str) -> Option<NaiveDate> {
    let s = s.trim();
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .or_else(|_| NaiveDate::parse_from_str(s, "%Y%m%d"))
        .ok()
        .or_else(|| {
            chrono::DateTime::parse_from_rfc3339(s)
                .ok()
                .map(|t| t.naive_utc().date())
        })
}

/// Reads a transactions file into per-customer occasions.
fn read_transactions(path: &Path, format: TxFormat) -> anyhow::Result<Transactions> {
    let mut tx = Transactions::new();
    match format {
        TxFormat::Cdnow => {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            for (i, line) in text.lines().enumerate() {
                let f: Vec<&str> = line.split_whitespace().collect();
                let (id, date, value) = match f.len() {
                    0 => continue,
                    4 => (f[0], f[1], f[3]),
                    5 => (f[1], f[2], f[4]),
                    n => bail!("{} line {}: {n} fields (CDNOW has 4 or 5)", path.display(), i + 1),
                };
                // A header line (the master file has one).
                if i == 0 && date.parse::<u32>().is_err() {
                    continue;
                }
                let day =
                    parse_date(date).with_context(|| format!("{} line {}: date {date:?}", path.display(), i + 1))?;
                let value: f64 = value
                    .parse()
                    .with_context(|| format!("{} line {}: value {value:?}", path.display(), i + 1))?;
                tx.add(id, day_number(day), value);
            }
        }
        TxFormat::Csv => {
            let mut r = csv::Reader::from_path(path).with_context(|| format!("reading {}", path.display()))?;
            let headers = r.headers()?.clone();
            let find = |names: &[&str]| headers.iter().position(|h| names.contains(&h.trim()));
            let id_col = find(&["account_id", "customer_id"])
                .with_context(|| format!("{}: no account_id or customer_id column", path.display()))?;
            let date_col = find(&["date", "ts"]).with_context(|| format!("{}: no date column", path.display()))?;
            let amount_col = find(&["amount", "value"]);
            for (i, rec) in r.records().enumerate() {
                let rec = rec.with_context(|| format!("{} record {}", path.display(), i + 1))?;
                let field = |c: usize| rec.get(c).unwrap_or("");
                let day = parse_date(field(date_col))
                    .with_context(|| format!("{} record {}: date {:?}", path.display(), i + 1, field(date_col)))?;
                let value = match amount_col.map(field).map(str::trim) {
                    None | Some("") => 0.0,
                    Some(v) => v
                        .parse()
                        .with_context(|| format!("{} record {}: amount {v:?}", path.display(), i + 1))?,
                };
                tx.add(field(id_col), day_number(day), value);
            }
        }
    }
    Ok(tx)
}

/// sBG on one cohort's survivors: the fit on the first `periods` periods and the projection of
/// every period in the file.
fn fit_survivors(
    path: &Path,
    cohort: &str,
    periods: Option<usize>,
    as_json: bool,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let mut r = csv::Reader::from_path(path).with_context(|| format!("reading {}", path.display()))?;
    let headers = r.headers()?.clone();
    let col = headers.iter().position(|h| h.trim() == cohort).with_context(|| {
        format!(
            "{}: no column {cohort:?} (columns: {})",
            path.display(),
            headers.iter().collect::<Vec<_>>().join(", ")
        )
    })?;
    let mut survivors: Vec<u64> = Vec::new();
    for (i, rec) in r.records().enumerate() {
        let rec = rec?;
        let v = rec.get(col).unwrap_or("").trim();
        survivors.push(
            v.parse()
                .with_context(|| format!("{} record {}: {v:?} is not a count", path.display(), i + 1))?,
        );
    }
    let calibration = periods.unwrap_or(survivors.len().saturating_sub(1));
    if calibration + 1 > survivors.len() {
        bail!("--periods {calibration}: the file has {} periods", survivors.len() - 1);
    }
    let data = Lifetimes::from_survivors(&survivors[..=calibration])?;
    let fit = sbg::fit(&data)?;
    let size = survivors[0] as f64;
    let projection: Vec<(usize, u64, f64)> = survivors
        .iter()
        .enumerate()
        .map(|(t, &obs)| (t, obs, size * fit.params.survival(t as u32)))
        .collect();
    if as_json {
        let rows: Vec<_> = projection
            .iter()
            .map(|&(t, obs, proj)| json!({"period": t, "observed": obs, "projected": proj, "holdout": t > calibration}))
            .collect();
        writeln!(
            out,
            "{}",
            json!({"model": "sbg", "cohort": cohort, "periods": calibration, "fit": fit, "projection": rows})
        )?;
    } else {
        writeln!(
            out,
            "sBG, cohort {cohort}, periods 0-{calibration}: alpha={:.4} beta={:.4} LL={:.2} over {} customers",
            fit.params.alpha, fit.params.beta, fit.log_likelihood, fit.customers
        )?;
        writeln!(out, "period  observed  projected")?;
        for (t, obs, proj) in projection {
            let mark = if t > calibration { "  (holdout)" } else { "" };
            writeln!(out, "{t:>6}  {obs:>8}  {proj:>9.1}{mark}")?;
        }
    }
    Ok(())
}
