//! Configuration of the JSON Lines file source.

use std::path::PathBuf;

use serde::Deserialize;
use vigil_engine::DecodeLimits;

use crate::kafka::config::DEFAULT_MAX_BATCH_ROWS;

fn default_max_rows() -> usize {
    DEFAULT_MAX_BATCH_ROWS
}

/// `[source]` with `type = "file"`: contract-v1 events, one JSON object per line.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FileSourceConfig {
    pub path: PathBuf,
    #[serde(default = "default_max_rows")]
    pub max_batch_rows: usize,
    #[serde(default)]
    pub max_message_bytes: Option<usize>,
    #[serde(default)]
    pub max_future_skew_ms: Option<i64>,
}

impl FileSourceConfig {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        FileSourceConfig {
            path: path.into(),
            max_batch_rows: default_max_rows(),
            max_message_bytes: None,
            max_future_skew_ms: None,
        }
    }

    pub fn limits(&self) -> DecodeLimits {
        let d = DecodeLimits::default();
        DecodeLimits {
            max_message_bytes: self.max_message_bytes.unwrap_or(d.max_message_bytes),
            max_future_skew_ms: self.max_future_skew_ms.unwrap_or(d.max_future_skew_ms),
            ..d
        }
    }
}
