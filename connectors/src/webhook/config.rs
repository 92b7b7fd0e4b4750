//! `[[hooks]]` with `type = "webhook"`: URL, secret, body format, timeouts, extra headers.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use crate::error::ConnectorError;

fn default_connect_timeout_ms() -> u64 {
    2_000
}
fn default_request_timeout_ms() -> u64 {
    10_000
}
fn default_link_template() -> String {
    "https://vigil.invalid/accounts/{account_id}".into()
}

/// The body a webhook sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BodyFormat {
    /// The documented JSON alert (see [`crate::webhook`]).
    #[default]
    Json,
    /// `{"text": "..."}`: one readable sentence with a link, for Slack incoming webhooks (and
    /// chat tools that accept the same shape).
    Slack,
}

/// A webhook hook.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// `http://` or `https://` URL the alerts are POSTed to.
    pub url: String,
    /// The HMAC-SHA256 signing secret. Required for `format = "json"` unless `secret_env` is
    /// set; optional for `slack` (signed when present).
    #[serde(default)]
    pub secret: Option<String>,
    /// Name of an environment variable holding the secret (read at start), to keep it out of
    /// the config file. Wins over `secret`.
    #[serde(default)]
    pub secret_env: Option<String>,
    #[serde(default)]
    pub format: BodyFormat,
    /// The link in `slack` text; `{account_id}` and `{alert_id}` are replaced (URL-encoded).
    #[serde(default = "default_link_template")]
    pub link_template: String,
    /// TCP (and TLS) connect timeout.
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// Whole-request timeout (connect, send, response).
    #[serde(default = "default_request_timeout_ms")]
    pub request_timeout_ms: u64,
    /// Extra request headers (e.g. an `Authorization` the receiver wants).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

impl WebhookConfig {
    /// A JSON webhook to `url` signed with `secret`, default timeouts.
    pub fn new(url: impl Into<String>, secret: impl Into<String>) -> Self {
        WebhookConfig {
            url: url.into(),
            secret: Some(secret.into()),
            secret_env: None,
            format: BodyFormat::Json,
            link_template: default_link_template(),
            connect_timeout_ms: default_connect_timeout_ms(),
            request_timeout_ms: default_request_timeout_ms(),
            headers: BTreeMap::new(),
        }
    }

    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    /// The signing secret: from `secret_env` when set (it must exist and be non-empty), else
    /// `secret`.
    pub fn resolve_secret(&self) -> Result<Option<String>, ConnectorError> {
        if let Some(var) = &self.secret_env {
            return match std::env::var(var) {
                Ok(v) if !v.is_empty() => Ok(Some(v)),
                _ => Err(ConnectorError::HookConfig(format!(
                    "`secret_env`: environment variable {var} is not set"
                ))),
            };
        }
        Ok(self.secret.clone().filter(|s| !s.is_empty()))
    }

    /// Checks the URL, timeouts, headers and that a JSON webhook has a secret.
    pub fn validate(&self) -> Result<(), ConnectorError> {
        let bad = |m: &str| Err(ConnectorError::HookConfig(m.to_string()));
        let url = reqwest::Url::parse(&self.url)
            .map_err(|e| ConnectorError::HookConfig(format!("`url` {:?}: {e}", self.url)))?;
        if !matches!(url.scheme(), "http" | "https") {
            return bad("`url` must be http:// or https://");
        }
        if self.connect_timeout_ms == 0 || self.request_timeout_ms == 0 {
            return bad("`connect_timeout_ms` and `request_timeout_ms` must be > 0");
        }
        for (k, v) in &self.headers {
            reqwest::header::HeaderName::from_bytes(k.as_bytes())
                .map_err(|e| ConnectorError::HookConfig(format!("header name {k:?}: {e}")))?;
            reqwest::header::HeaderValue::from_str(v)
                .map_err(|e| ConnectorError::HookConfig(format!("header {k:?} value: {e}")))?;
        }
        if self.format == BodyFormat::Json
            && self.secret_env.is_none()
            && self.secret.as_deref().is_none_or(str::is_empty)
        {
            return bad("a `json` webhook needs a `secret` (or `secret_env`) to sign with");
        }
        Ok(())
    }
}
