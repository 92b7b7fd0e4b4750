//! Routing: which alerts go to which hook (`[[hooks]]` in config), and the outbox settings.
//!
//! ```toml
//! [outbox]
//! dir = "data/outbox"
//!
//! [[hooks]]
//! name = "cs-webhook"
//! type = "webhook"
//! url = "https://hooks.example.com/vigil"
//! secret_env = "VIGIL_HOOK_SECRET"
//! kinds = ["quiet", "churn_risk", "rule"]   # empty or absent: every kind
//! tiers = ["key"]                           # empty or absent: every tier
//! rules = ["detractor_open_complaint"]      # for kind `rule`: only these rules (absent: all)
//! ```
//!
//! An alert goes to every hook whose filters all match it; the filters of a hook are ANDed,
//! the values inside one filter ORed. The sink-specific keys are those of
//! [`crate::registry::SinkConfig`]'s variants.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use vigil_engine::scoring::Tier;

use crate::error::ConnectorError;
use crate::outbox::alert::{HookAlert, HookKind};
use crate::registry::SinkConfig;

fn default_max_attempts() -> u32 {
    6
}
fn default_backoff_min_ms() -> u64 {
    500
}
fn default_backoff_max_ms() -> u64 {
    30_000
}
fn default_max_retry_after_ms() -> u64 {
    120_000
}
fn default_concurrency() -> usize {
    4
}

/// How a hook retries one delivery before parking it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryPolicy {
    /// Attempts per delivery (first try included); then the alert is parked as failed.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// The first backoff; each next one doubles, plus random jitter of up to the same amount.
    #[serde(default = "default_backoff_min_ms")]
    pub backoff_min_ms: u64,
    /// Backoff cap (before jitter).
    #[serde(default = "default_backoff_max_ms")]
    pub backoff_max_ms: u64,
    /// A server's `Retry-After` is honoured up to this long.
    #[serde(default = "default_max_retry_after_ms")]
    pub max_retry_after_ms: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: default_max_attempts(),
            backoff_min_ms: default_backoff_min_ms(),
            backoff_max_ms: default_backoff_max_ms(),
            max_retry_after_ms: default_max_retry_after_ms(),
        }
    }
}

impl RetryPolicy {
    pub fn backoff_min(&self) -> Duration {
        Duration::from_millis(self.backoff_min_ms)
    }

    pub fn backoff_max(&self) -> Duration {
        Duration::from_millis(self.backoff_max_ms)
    }

    pub fn max_retry_after(&self) -> Duration {
        Duration::from_millis(self.max_retry_after_ms)
    }
}

/// Which alerts a hook takes. Empty lists match everything.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    #[serde(default)]
    pub kinds: Vec<HookKind>,
    #[serde(default)]
    pub tiers: Vec<Tier>,
    /// For `rule` alerts: only these rule names.
    #[serde(default)]
    pub rules: Vec<String>,
}

impl Route {
    /// Whether `alert` goes through this route.
    pub fn matches(&self, alert: &HookAlert) -> bool {
        let kind = self.kinds.is_empty() || self.kinds.contains(&alert.kind);
        let tier = self.tiers.is_empty() || self.tiers.contains(&alert.tier);
        let rule = match (&alert.rule, alert.kind) {
            (Some(name), HookKind::Rule) => self.rules.is_empty() || self.rules.iter().any(|r| r == name),
            _ => true,
        };
        kind && tier && rule
    }
}

/// One `[[hooks]]` entry: a name, the sink (`type` and its keys), the route and the retries.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct HookConfig {
    /// Unique; the outbox records delivery per hook name, so renaming a hook makes its pending
    /// alerts wait for a hook of the old name.
    pub name: String,
    #[serde(default)]
    pub kinds: Vec<HookKind>,
    #[serde(default)]
    pub tiers: Vec<Tier>,
    #[serde(default)]
    pub rules: Vec<String>,
    #[serde(default)]
    pub retry: RetryPolicy,
    /// Deliveries in flight at once for this hook.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    #[serde(flatten)]
    pub sink: SinkConfig,
}

impl HookConfig {
    /// A hook taking every alert, with default retries.
    pub fn new(name: impl Into<String>, sink: SinkConfig) -> Self {
        HookConfig {
            name: name.into(),
            kinds: Vec::new(),
            tiers: Vec::new(),
            rules: Vec::new(),
            retry: RetryPolicy::default(),
            concurrency: default_concurrency(),
            sink,
        }
    }

    /// The hook's route.
    pub fn route(&self) -> Route {
        Route {
            kinds: self.kinds.clone(),
            tiers: self.tiers.clone(),
            rules: self.rules.clone(),
        }
    }

    /// Checks the hook on its own (names across hooks: [`validate_hooks`]).
    pub fn validate(&self) -> Result<(), ConnectorError> {
        let bad = |m: String| Err(ConnectorError::HookConfig(format!("hook `{}`: {m}", self.name)));
        if self.name.trim().is_empty() {
            return Err(ConnectorError::HookConfig("a hook has an empty `name`".into()));
        }
        if self.retry.max_attempts == 0 {
            return bad("`retry.max_attempts` must be at least 1".into());
        }
        if self.retry.backoff_min_ms == 0 || self.retry.backoff_max_ms < self.retry.backoff_min_ms {
            return bad("`retry.backoff_min_ms` must be > 0 and <= `retry.backoff_max_ms`".into());
        }
        if self.concurrency == 0 {
            return bad("`concurrency` must be at least 1".into());
        }
        if !self.rules.is_empty() && !self.kinds.is_empty() && !self.kinds.contains(&HookKind::Rule) {
            return bad("`rules` is set but `kinds` does not include `rule`".into());
        }
        self.sink.validate().or_else(|e| bad(e.to_string()))
    }
}

/// Checks every hook and that names are unique.
pub fn validate_hooks(hooks: &[HookConfig]) -> Result<(), ConnectorError> {
    let mut names = BTreeSet::new();
    for h in hooks {
        h.validate()?;
        if !names.insert(h.name.as_str()) {
            return Err(ConnectorError::HookConfig(format!("two hooks are named `{}`", h.name)));
        }
    }
    Ok(())
}

/// Names of the hooks `alert` is routed to, in config order.
pub fn route<'a>(hooks: &'a [HookConfig], alert: &HookAlert) -> Vec<&'a str> {
    hooks
        .iter()
        .filter(|h| h.route().matches(alert))
        .map(|h| h.name.as_str())
        .collect()
}

fn default_outbox_dir() -> PathBuf {
    PathBuf::from("data/outbox")
}
fn default_poll_ms() -> u64 {
    1_000
}
fn default_retention_hours() -> u64 {
    24 * 7
}

/// `[outbox]`: where undelivered alerts are kept.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboxConfig {
    #[serde(default = "default_outbox_dir")]
    pub dir: PathBuf,
    /// How often idle hook workers look for work they were not woken for (retry requests from
    /// `vigil alerts retry`, deliveries made pending by another path).
    #[serde(default = "default_poll_ms")]
    pub poll_interval_ms: u64,
    /// How long ids of delivered alerts are remembered for de-duplication.
    #[serde(default = "default_retention_hours")]
    pub done_retention_hours: u64,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        OutboxConfig {
            dir: default_outbox_dir(),
            poll_interval_ms: default_poll_ms(),
            done_retention_hours: default_retention_hours(),
        }
    }
}

/// `[outbox]` and `[[hooks]]` together (a config file's top level can deserialize into it).
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
pub struct HooksConfig {
    #[serde(default)]
    pub outbox: OutboxConfig,
    #[serde(default)]
    pub hooks: Vec<HookConfig>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox::alert::HookStatus;

    fn alert(kind: HookKind, tier: Tier, rule: Option<&str>) -> HookAlert {
        HookAlert {
            id: "x".into(),
            kind,
            status: HookStatus::Raised,
            rule: rule.map(str::to_string),
            account_id: "a".into(),
            tier,
            at_ms: 0,
            episode_start_ms: 0,
            value: None,
            threshold: None,
            message: String::new(),
        }
    }

    const CONFIG: &str = r#"
[outbox]
dir = "/var/lib/vigil/outbox"

[[hooks]]
name = "cs-webhook"
type = "webhook"
url = "https://hooks.example.com/vigil"
secret = "s3cret"
kinds = ["quiet", "churn_risk", "rule"]
tiers = ["key"]
rules = ["detractor_open_complaint"]
retry = { max_attempts = 4, backoff_min_ms = 100 }

[[hooks]]
name = "slack"
type = "webhook"
url = "https://hooks.slack.com/services/T/B/X"
format = "slack"
link_template = "https://vigil.example.com/accounts/{account_id}"

[[hooks]]
name = "alerts-topic"
type = "kafka"
brokers = "127.0.0.1:9092"
topic = "vigil.alerts"
properties = { "compression.type" = "zstd" }

[[hooks]]
name = "stdout"
type = "log"
"#;

    #[test]
    fn parses_the_documented_toml_and_routes() {
        let cfg: HooksConfig = toml::from_str(CONFIG).expect("parses");
        validate_hooks(&cfg.hooks).expect("valid");
        assert_eq!(cfg.outbox.dir, PathBuf::from("/var/lib/vigil/outbox"));
        assert_eq!(cfg.hooks.len(), 4);
        let cs = &cfg.hooks[0];
        assert_eq!(cs.retry.max_attempts, 4);
        assert_eq!(cs.retry.backoff_max_ms, 30_000);
        assert!(matches!(cs.sink, SinkConfig::Webhook(_)));
        assert!(matches!(cfg.hooks[2].sink, SinkConfig::Kafka(_)));
        assert!(matches!(cfg.hooks[3].sink, SinkConfig::Log(_)));

        let quiet_key = alert(HookKind::Quiet, Tier::Key, None);
        assert_eq!(
            route(&cfg.hooks, &quiet_key),
            ["cs-webhook", "slack", "alerts-topic", "stdout"]
        );
        let quiet_std = alert(HookKind::Quiet, Tier::Standard, None);
        assert_eq!(route(&cfg.hooks, &quiet_std), ["slack", "alerts-topic", "stdout"]);
        let spike = alert(HookKind::ComplaintSpike, Tier::Key, None);
        assert_eq!(route(&cfg.hooks, &spike), ["slack", "alerts-topic", "stdout"]);
        let other_rule = alert(HookKind::Rule, Tier::Key, Some("other"));
        assert_eq!(route(&cfg.hooks, &other_rule), ["slack", "alerts-topic", "stdout"]);
        let rule = alert(HookKind::Rule, Tier::Key, Some("detractor_open_complaint"));
        assert_eq!(route(&cfg.hooks, &rule)[0], "cs-webhook");
    }

    #[test]
    fn rejects_bad_configs() {
        let dup = format!("{CONFIG}\n[[hooks]]\nname = \"stdout\"\ntype = \"log\"\n");
        let cfg: HooksConfig = toml::from_str(&dup).expect("parses");
        let err = validate_hooks(&cfg.hooks).expect_err("duplicate");
        assert!(err.to_string().contains("two hooks are named `stdout`"), "{err}");
        let unknown_kind = "[[hooks]]\nname = \"x\"\ntype = \"log\"\nkinds = [\"nope\"]\n";
        assert!(toml::from_str::<HooksConfig>(unknown_kind).is_err());
        let unknown_type = "[[hooks]]\nname = \"x\"\ntype = \"smtp\"\n";
        assert!(toml::from_str::<HooksConfig>(unknown_type).is_err());
        let typo = "[[hooks]]\nname = \"x\"\ntype = \"webhook\"\nurl = \"http://h/\"\nsecret = \"s\"\nsecert = \"s\"\n";
        assert!(toml::from_str::<HooksConfig>(typo).is_err(), "unknown keys are refused");
        let no_secret = "[[hooks]]\nname = \"x\"\ntype = \"webhook\"\nurl = \"http://h/\"\n";
        let cfg: HooksConfig = toml::from_str(no_secret).expect("parses");
        let err = validate_hooks(&cfg.hooks).expect_err("json webhook needs a secret");
        assert!(err.to_string().contains("secret"), "{err}");
        let zero = "[[hooks]]\nname = \"x\"\ntype = \"log\"\nretry = { max_attempts = 0 }\n";
        let cfg: HooksConfig = toml::from_str(zero).expect("parses");
        assert!(validate_hooks(&cfg.hooks).is_err());
    }
}
