//! The accounts dimension (contract v1's accounts topic) as it joins into the scoring state.

use serde::{Deserialize, Serialize};

/// Account tier: key accounts get quiet-account alerts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    Key,
    #[default]
    Standard,
}

impl Tier {
    /// `key` or `standard`.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Key => "key",
            Tier::Standard => "standard",
        }
    }
}

/// Where an account stands with us: `churned` after a cancellation with no signup, purchase or
/// renewal since (minute resolution; a tie counts as churned), `won_back` when one of those
/// followed its last cancellation, `active` when it never cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountStatus {
    Active,
    Churned,
    WonBack,
}

impl AccountStatus {
    /// `active`, `churned` or `won_back`.
    pub fn as_str(self) -> &'static str {
        match self {
            AccountStatus::Active => "active",
            AccountStatus::Churned => "churned",
            AccountStatus::WonBack => "won_back",
        }
    }
}

/// One record of the accounts topic.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct AccountInfo {
    pub account_id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub tier: Tier,
    #[serde(default)]
    pub arr: Option<f64>,
    #[serde(default)]
    pub owner: Option<String>,
    #[serde(default)]
    pub segment: Option<String>,
}

impl AccountInfo {
    /// A standard-tier account with no other attributes.
    pub fn new(account_id: impl Into<String>) -> Self {
        AccountInfo {
            account_id: account_id.into(),
            ..AccountInfo::default()
        }
    }

    /// The attributes without the id, as stored in the state.
    pub fn meta(&self) -> AccountMeta {
        AccountMeta {
            name: self.name.clone(),
            tier: self.tier,
            arr: self.arr,
            owner: self.owner.clone(),
            segment: self.segment.clone(),
        }
    }
}

/// An account's dimension attributes as held in its state.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct AccountMeta {
    pub name: Option<String>,
    pub tier: Tier,
    pub arr: Option<f64>,
    pub owner: Option<String>,
    pub segment: Option<String>,
}

impl AccountMeta {
    /// Key account: tier = key, or ARR at or over `arr_threshold`.
    pub fn is_key(&self, arr_threshold: f64) -> bool {
        self.tier == Tier::Key || self.arr.is_some_and(|a| a >= arr_threshold)
    }

    /// Heap bytes of the strings.
    pub fn heap_bytes(&self) -> usize {
        [&self.name, &self.owner, &self.segment]
            .iter()
            .map(|s| s.as_ref().map_or(0, |s| s.capacity()))
            .sum()
    }
}
