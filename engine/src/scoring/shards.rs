//! [`ShardedCore`]: one [`ScoringCore`] per input shard (a Kafka topic-partition), so that each
//! shard's state can be checkpointed, restored and handed to another process on its own, and
//! each shard's time and watermark follow only its own events (deterministic per shard).
//!
//! Events of one account always arrive on one shard (the input is keyed by account), so every
//! account lives in exactly one shard core. The accounts dimension is held here and joined into
//! a shard's state when the account first appears there; accounts known only from the
//! dimension (no events yet on any owned shard) are answered from a dimension-only core.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow::record_batch::RecordBatch;

use super::account::AccountInfo;
use super::alert::Alert;
use super::config::ScoringConfig;
use super::core::{AccountView, ApplyOutcome, HealthScore, ScoringCore};
use crate::error::EngineError;
use crate::schema;

/// A shard: stream (topic) name and partition.
pub type ShardId = (Arc<str>, i32);

/// Per-shard scoring cores plus the accounts dimension. See the module docs.
#[derive(Debug)]
pub struct ShardedCore {
    config: ScoringConfig,
    dims: HashMap<Box<str>, AccountInfo>,
    /// Accounts known only from the dimension.
    dims_core: ScoringCore,
    shards: BTreeMap<ShardId, ScoringCore>,
}

impl ShardedCore {
    /// No shards; fails when the configuration is invalid.
    pub fn new(config: ScoringConfig) -> Result<Self, EngineError> {
        Ok(ShardedCore {
            dims_core: ScoringCore::new(config.clone())?,
            config,
            dims: HashMap::new(),
            shards: BTreeMap::new(),
        })
    }

    /// The scoring configuration every shard uses.
    pub fn config(&self) -> &ScoringConfig {
        &self.config
    }

    /// Inserts or replaces an account's dimension record, in the shard that holds the account
    /// (if any) and for shards where it appears later.
    pub fn upsert_account(&mut self, info: AccountInfo) {
        self.dims_core.upsert_account(info.clone());
        for core in self.shards.values_mut() {
            if core.contains(&info.account_id) {
                core.upsert_account(info.clone());
            }
        }
        self.dims.insert(info.account_id.clone().into_boxed_str(), info);
    }

    /// The core of a shard, created empty when the shard is new.
    pub fn shard_mut(&mut self, shard: &ShardId) -> Result<&mut ScoringCore, EngineError> {
        if !self.shards.contains_key(shard) {
            self.shards
                .insert(shard.clone(), ScoringCore::new(self.config.clone())?);
        }
        Ok(self.shards.get_mut(shard).expect("inserted above"))
    }

    /// The core of a shard, if held.
    pub fn shard(&self, shard: &ShardId) -> Option<&ScoringCore> {
        self.shards.get(shard)
    }

    /// Held shards in order.
    pub fn shards(&self) -> impl Iterator<Item = (&ShardId, &ScoringCore)> {
        self.shards.iter()
    }

    /// Number of held shards.
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// Installs a shard's core (a restored checkpoint), replacing any held one; dimension
    /// records are re-joined (the dimension may have changed since the checkpoint).
    pub fn insert_shard(&mut self, shard: ShardId, mut core: ScoringCore) {
        if !self.dims.is_empty() {
            let ids: Vec<String> = core
                .account_ids()
                .filter(|id| self.dims.contains_key(*id))
                .map(str::to_string)
                .collect();
            for id in ids {
                if let Some(info) = self.dims.get(id.as_str()) {
                    core.upsert_account(info.clone());
                }
            }
        }
        self.shards.insert(shard, core);
    }

    /// Drops a shard (revoked: another process owns it now) and returns its core.
    pub fn remove_shard(&mut self, shard: &ShardId) -> Option<ScoringCore> {
        self.shards.remove(shard)
    }

    /// Applies a batch of one shard's events to that shard's core and joins the dimension
    /// records of accounts it saw for the first time.
    pub fn apply_batch(&mut self, shard: &ShardId, batch: &RecordBatch) -> Result<ApplyOutcome, EngineError> {
        let has_dims = !self.dims.is_empty();
        let core = self.shard_mut(shard)?;
        let outcome = core.apply_batch(batch)?;
        if has_dims && outcome.new_accounts > 0 {
            use arrow::array::AsArray;
            let ids = batch.column(schema::ACCOUNT_ID).as_string::<i32>();
            let core = self.shards.get_mut(shard).expect("created above");
            for id in ids.iter().flatten() {
                if core.lacks_dimension(id)
                    && let Some(info) = self.dims.get(id)
                {
                    core.upsert_account(info.clone());
                }
            }
        }
        Ok(outcome)
    }

    /// True when no shard holds the account (it is known only from the dimension, if at all).
    fn in_no_shard(&self, account_id: &str) -> bool {
        !self.shards.values().any(|c| c.contains(account_id))
    }

    /// The core holding an account: its shard, else the dimension-only core.
    fn holder(&self, account_id: &str) -> Option<&ScoringCore> {
        self.shards
            .values()
            .find(|c| c.contains(account_id))
            .or_else(|| self.dims_core.contains(account_id).then_some(&self.dims_core))
    }

    /// The health of an account now (at its shard's `now`).
    pub fn score(&self, account_id: &str) -> Option<HealthScore> {
        self.holder(account_id)?.score(account_id)
    }

    /// The event-derived state of an account.
    pub fn account_view(&self, account_id: &str) -> Option<AccountView> {
        self.holder(account_id)?.account_view(account_id)
    }

    /// True when the account is a key account.
    pub fn is_key(&self, account_id: &str) -> bool {
        self.holder(account_id).is_some_and(|c| c.is_key(account_id))
    }

    /// Ids of the accounts held in shards (not the dimension-only ones), shard by shard.
    pub fn account_ids(&self) -> impl Iterator<Item = &str> {
        self.shards.values().flat_map(ScoringCore::account_ids)
    }

    /// Accounts held over all shards (plus dimension-only accounts).
    pub fn len(&self) -> usize {
        let in_shards: usize = self.shards.values().map(ScoringCore::len).sum();
        let dims_only = self.dims.keys().filter(|id| self.in_no_shard(id)).count();
        in_shards + dims_only
    }

    /// True when no account is known.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The health table over every shard, then the dimension-only accounts.
    pub fn health_batch(&self) -> RecordBatch {
        let mut parts: Vec<RecordBatch> = self.shards.values().map(ScoringCore::health_batch).collect();
        if !self.dims.is_empty() {
            parts.push(self.dims_core.health_batch_where(|id| self.in_no_shard(id)));
        }
        let schema = super::table::health_schema();
        arrow::compute::concat_batches(&schema, &parts).expect("health batches share one schema")
    }

    /// Advances each shard's clock to `now(shard)` and returns the alerts due, by shard (only
    /// the shards that raised any).
    pub fn advance_clock(&mut self, mut now: impl FnMut(&ShardId, &ScoringCore) -> i64) -> Vec<(ShardId, Vec<Alert>)> {
        let mut alerts = Vec::new();
        for (id, core) in &mut self.shards {
            let t = now(id, core);
            let raised = core.advance_clock(t);
            if !raised.is_empty() {
                alerts.push((id.clone(), raised));
            }
        }
        alerts
    }

    /// Refits BG/NBD population parameters per shard (shards without enough data keep theirs).
    pub fn refit_bgnbd(&mut self) {
        for core in self.shards.values_mut() {
            let _ = core.refit_bgnbd();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Event, EventKind};
    use crate::scoring::testing::events_to_batch as batch_of;

    fn shard(p: i32) -> ShardId {
        (Arc::from("t"), p)
    }

    fn ev(id: &str, account: &str, day: i64) -> Event {
        Event::new(id, account, day * crate::scoring::DAY_MS, EventKind::Activity)
    }

    #[test]
    fn accounts_live_in_their_shard_and_join_the_dimension() {
        let mut c = ShardedCore::new(ScoringConfig::default()).expect("core");
        let mut key = AccountInfo::new("a");
        key.tier = crate::scoring::Tier::Key;
        c.upsert_account(key);
        c.upsert_account(AccountInfo::new("dims-only"));
        c.apply_batch(&shard(0), &batch_of(&[ev("e1", "a", 100), ev("e2", "a", 101)]))
            .expect("apply");
        c.apply_batch(&shard(1), &batch_of(&[ev("e3", "b", 100)]))
            .expect("apply");
        assert!(c.shard(&shard(0)).expect("shard 0").contains("a"));
        assert!(!c.shard(&shard(1)).expect("shard 1").contains("a"));
        assert!(c.is_key("a"), "dimension joined when the account first appears");
        assert!(!c.is_key("b"));
        assert_eq!(c.len(), 3);
        let health = c.health_batch();
        assert_eq!(health.num_rows(), 3, "a, b and the dimension-only account");
        // Each shard's time follows its own events.
        assert_eq!(
            c.shard(&shard(0)).and_then(|s| s.max_event_ms()),
            Some(101 * crate::scoring::DAY_MS)
        );
        assert_eq!(
            c.shard(&shard(1)).and_then(|s| s.max_event_ms()),
            Some(100 * crate::scoring::DAY_MS)
        );
    }

    #[test]
    fn a_removed_shard_restores_equal_and_rejoins_changed_dimensions() {
        let mut c = ShardedCore::new(ScoringConfig::default()).expect("core");
        c.apply_batch(&shard(0), &batch_of(&[ev("e1", "a", 100)]))
            .expect("apply");
        let before = c.shard(&shard(0)).expect("shard").snapshot();
        let removed = c.remove_shard(&shard(0)).expect("held");
        assert_eq!(removed.snapshot(), before);
        assert_eq!(c.len(), 0);
        let mut key = AccountInfo::new("a");
        key.tier = crate::scoring::Tier::Key;
        c.upsert_account(key);
        c.insert_shard(shard(0), ScoringCore::restore(&before).expect("restore"));
        assert!(c.is_key("a"), "the current dimension wins over the checkpointed one");
        assert_eq!(c.len(), 1);
    }
}
