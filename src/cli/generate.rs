//! `vigil generate`: the demo's world of accounts (key accounts, cadences, complaint bursts,
//! churners, a key account that goes quiet) produced to a real Kafka topic, for Docker Compose
//! and for trying `vigil run` against a broker of one's own.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64};

use anyhow::Context;
use vigil_connectors::kafka::MessageProducer;

use crate::demo::generator::{self, DAY_MS, HISTORY_DAYS};
use vigil_runtime::pipeline::wall_ms;

/// Arguments of `vigil generate`.
#[derive(Debug, clap::Args)]
pub struct GenerateArgs {
    /// `bootstrap.servers` of the broker.
    #[arg(long, env = "VIGIL_SOURCE__BROKERS")]
    pub brokers: String,
    /// Topic to produce the interactions to (created by the broker or beforehand).
    #[arg(long, default_value = "interactions")]
    pub topic: String,
    /// Accounts to generate.
    #[arg(long, default_value_t = 300)]
    pub accounts: usize,
    /// Seed of the generated world.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Wall-clock seconds the 90 days of history take to produce.
    #[arg(long, default_value_t = 60.0)]
    pub replay_secs: f64,
    /// Write the accounts dimension as a `vigil.toml` fragment (`[[accounts]]`) here first.
    #[arg(long)]
    pub accounts_out: Option<PathBuf>,
}

/// The accounts as `[[accounts]]` TOML.
fn accounts_toml(accounts: &[vigil_engine::scoring::AccountInfo]) -> anyhow::Result<String> {
    #[derive(serde::Serialize)]
    struct Doc<'a> {
        accounts: &'a [vigil_engine::scoring::AccountInfo],
    }
    toml::to_string(&Doc { accounts }).context("accounts as TOML")
}

/// Runs `vigil generate`: returns (events, invalid messages) produced.
pub fn run(args: GenerateArgs) -> anyhow::Result<(u64, u64)> {
    let start_ms = (wall_ms() / DAY_MS - HISTORY_DAYS) * DAY_MS;
    let data = generator::generate(args.seed, args.accounts, start_ms);
    if let Some(path) = &args.accounts_out {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, accounts_toml(&data.accounts)?).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    }
    println!(
        "vigil generate: {} accounts, {} events over {HISTORY_DAYS} days to {} on {} in {:.0} s",
        data.accounts.len(),
        data.events.len(),
        args.topic,
        args.brokers,
        args.replay_secs
    );
    let producer = MessageProducer::new(&args.brokers, &args.topic)?;
    let traffic = crate::demo::Traffic {
        start_ms,
        replay_secs: args.replay_secs,
        stop: Arc::new(AtomicBool::new(false)),
        clock: Arc::new(AtomicI64::new(start_ms)),
    };
    let (events, bad) = crate::demo::produce_world(&producer, &data, &traffic, None, |_, _| Ok(()))?;
    println!("vigil generate: produced {events} events and {bad} invalid messages");
    Ok((events, bad))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_fragment_parses_as_vigil_accounts() {
        let data = generator::generate(7, 50, 0);
        let text = accounts_toml(&data.accounts).expect("toml");
        let cfg = crate::config::VigilConfig::parse(&text, [("VIGIL_SOURCE__BROKERS".to_string(), "b:1".to_string())])
            .expect("a vigil.toml");
        assert_eq!(cfg.accounts, data.accounts);
        assert!(cfg.accounts.iter().any(|a| a.tier == vigil_engine::scoring::Tier::Key));
    }
}
