//! The demo's live terminal view: the riskiest accounts with their top factors, and alerts as
//! they fire.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use vigil_engine::scoring::{Alert, BaseRule, ShardedCore};

use super::generator::DAY_MS;
use crate::pipeline::SharedCore;

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

fn render(core: &ShardedCore, day: f64, alerts: usize) -> String {
    // Cancelled accounts are lost, not at risk: the view ranks the ones still to be saved.
    let mut rows: Vec<_> = core
        .account_ids()
        .filter_map(|id| core.score(id))
        .filter(|h| h.churn.rule != BaseRule::Cancelled)
        .collect();
    rows.sort_by(|a, b| b.churn_risk.total_cmp(&a.churn_risk));
    let mut out = format!(
        "── day {day:5.1} ── {} accounts ── {} alerts ── riskiest accounts ──\n{:<16} {:>6} {:<8} {:>6} {:>7}  top factor\n",
        core.len(),
        alerts,
        "account",
        "health",
        "band",
        "risk",
        "trend"
    );
    for h in rows.iter().take(8) {
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

/// Prints the view every few seconds until `stop`; refits BG/NBD as history accumulates.
pub fn spawn(
    core: SharedCore,
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
            let text = {
                let Ok(mut c) = core.write() else { return };
                // Population parameters from the history so far (fails harmlessly while too few
                // accounts have repeat purchases).
                c.refit_bgnbd();
                render(&c, day, n_alerts)
            };
            if tty {
                println!("\n{text}");
            } else {
                print!("{text}");
            }
        }
    })
}
