//! The demo's live terminal view: the riskiest accounts with their top factors, and alerts as
//! they fire.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use vigil_engine::scoring::{Alert, BaseRule, HealthScore};

use super::generator::DAY_MS;
use vigil_runtime::partitions::Partitions;

/// Prints one alert as a line.
pub fn print_alert(a: &Alert, start_ms: i64) {
    let day = (a.at_ms - start_ms) as f64 / DAY_MS as f64;
    println!(
        "ALERT day {day:5.1}  {:<15} {:<16} {}",
        a.kind.as_str(),
        a.account_id,
        a.message
    );
}

/// Rows the view shows.
const ROWS: usize = 8;

/// The riskiest accounts still to be saved, over every partition, and how many accounts there
/// are.
fn riskiest(parts: &Partitions) -> anyhow::Result<(Vec<HealthScore>, usize)> {
    let per_partition = parts.each(|_, core| {
        // Cancelled accounts are lost, not at risk: the view ranks the ones still to be saved.
        let mut rows: Vec<HealthScore> = core
            .account_ids()
            .filter_map(|id| core.score(id))
            .filter(|h| h.churn.rule != BaseRule::Cancelled)
            .collect();
        rows.sort_by(|a, b| b.churn_risk.total_cmp(&a.churn_risk));
        rows.truncate(ROWS);
        rows
    })?;
    let mut rows: Vec<HealthScore> = per_partition.into_iter().flat_map(|(_, r)| r).collect();
    rows.sort_by(|a, b| b.churn_risk.total_cmp(&a.churn_risk));
    Ok((rows, parts.accounts()?))
}

fn render(rows: &[HealthScore], accounts: usize, day: f64, alerts: usize) -> String {
    let mut out = format!(
        "── day {day:5.1} ── {} accounts ── {} alerts ── riskiest accounts ──\n{:<16} {:>6} {:<8} {:>6} {:>7}  top factor\n",
        accounts, alerts, "account", "health", "band", "risk", "trend"
    );
    for h in rows.iter().take(ROWS) {
        let top = h
            .components
            .iter()
            .min_by(|a, b| a.contribution.total_cmp(&b.contribution))
            .map(|c| format!("{:?} {:+.1}", c.component, c.contribution))
            .unwrap_or_default();
        let trend = h.trend_7d.map(|t| format!("{t:+.1}")).unwrap_or_else(|| "-".into());
        out.push_str(&format!(
            "{:<16} {:>6.1} {:<8} {:>6.2} {:>7}  {}\n",
            h.account_id,
            h.score,
            h.band.as_str(),
            h.churn_risk,
            trend,
            top
        ));
    }
    out
}

/// Prints the view every few seconds until `stop`.
pub fn spawn(
    parts: Partitions,
    sim_now: Arc<AtomicI64>,
    alerts: Arc<RwLock<Vec<Alert>>>,
    start_ms: i64,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let tty = std::io::stdout().is_terminal();
        while !stop.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_secs(5)).await;
            let day = (sim_now.load(Ordering::Relaxed) - start_ms) as f64 / DAY_MS as f64;
            let n_alerts = alerts.read().map(|a| a.len()).unwrap_or(0);
            let parts = parts.clone();
            let view = tokio::task::spawn_blocking(move || riskiest(&parts)).await;
            let Ok(Ok((rows, accounts))) = view else { return };
            let text = render(&rows, accounts, day, n_alerts);
            if tty {
                println!("\n{text}");
            } else {
                print!("{text}");
            }
        }
    })
}
