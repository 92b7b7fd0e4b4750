//! The scoring core: per-account state from event batches, explainable health scores, churn
//! risk, quiet key-account detection and alerts. No I/O: time comes in as event times and
//! [`ScoringCore::advance_clock`].
//!
//! - [`config`]: [`ScoringConfig`] (serde, defaults for everything).
//! - [`state`]: per-account state, order independent within the allowed lateness.
//! - [`entries`]: the daily entries of an account, and the running sums of its recent days.
//! - [`dedup`]: de-duplication of event ids per day of event time.
//! - [`health`]: the seven components, weights, bands and contributions (formulas there).
//! - [`churn`]: churn risk from BG/NBD P(alive) and hazard signals (formula there).
//! - [`timers`]: the quiet-timer heap.
//! - [`alert`]: alerts, deterministic ids, [`alert_schema`].
//! - [`table`]: the health table, [`health_schema`].
//! - [`core`]: [`ScoringCore`], snapshot and restore.
//! - [`shards`]: [`ShardedCore`], one core per input shard (Kafka partition).

pub mod account;
pub mod alert;
pub mod churn;
pub mod config;
pub mod core;
pub mod dedup;
pub mod entries;
pub mod hash;
pub mod health;
pub mod intern;
pub mod mem;
pub mod shards;
pub mod state;
pub mod table;
pub mod testing;
pub mod timers;

pub use account::{AccountInfo, AccountMeta, AccountStatus, Tier};
pub use alert::{Alert, AlertKind, alert_id, alert_schema, alerts_to_batch};
pub use churn::{BaseRule, ChurnBreakdown, Population};
pub use config::{Bands, ChurnConfig, HealthParams, QuietConfig, ScoringConfig, SpikeConfig, Weights, Windows};
pub use core::{AccountView, ApplyOutcome, CoreStats, HealthScore, ScoringCore};
pub use health::{Band, Component, ComponentScore};
pub use shards::{ShardId, ShardedCore};
pub use state::{DAY_MS, WindowSums};
pub use table::health_schema;
