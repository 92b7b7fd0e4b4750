//! Alerts raised by the scoring core, their deterministic ids, and their Arrow form.
//!
//! An alert id is `"{kind}/{account_id}/{episode_start_ms}"`: the same episode always gives the
//! same id, so delivery can be idempotent (a sink keeps the first of equal ids).
//!
//! | kind | raised when | episode start | value / threshold |
//! |---|---|---|---|
//! | `quiet` | a key account's silence reaches `k` × its learned gap (clock driven, once per episode) | the last interaction | days silent / `k` × gap (days) |
//! | `recovered` | a quiet account interacts again (once) | the quiet episode's start | days silent / `k` × gap |
//! | `churn_risk` | churn risk rises to the threshold (once until it falls below threshold − hysteresis); never for a cancelled account | start of the day of the crossing | risk / threshold |
//! | `complaint_spike` | `count` complaints within `window_days` (once until the count drops below) | start of the earliest complaint day in the window | complaints / count |

use std::sync::{Arc, LazyLock};

use arrow::array::{ArrayRef, Float64Builder, StringBuilder, TimestampMillisecondBuilder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};

use crate::schema::timestamp_type;

/// What an alert is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    Quiet,
    Recovered,
    ChurnRisk,
    ComplaintSpike,
}

impl AlertKind {
    /// The kind's name.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::Quiet => "quiet",
            AlertKind::Recovered => "recovered",
            AlertKind::ChurnRisk => "churn_risk",
            AlertKind::ComplaintSpike => "complaint_spike",
        }
    }
}

/// One alert (or notice, for `recovered`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Deterministic id: `"{kind}/{account_id}/{episode_start_ms}"`.
    pub id: String,
    pub account_id: String,
    pub kind: AlertKind,
    /// Engine time the condition was met (for `quiet`, the deadline itself).
    pub at_ms: i64,
    pub episode_start_ms: i64,
    pub value: f64,
    pub threshold: f64,
    /// Human-readable one-line explanation.
    pub message: String,
}

impl Alert {
    /// An alert with its deterministic id.
    pub fn new(
        account_id: &str,
        kind: AlertKind,
        at_ms: i64,
        episode_start_ms: i64,
        value: f64,
        threshold: f64,
        message: String,
    ) -> Alert {
        Alert {
            id: alert_id(kind, account_id, episode_start_ms),
            account_id: account_id.to_string(),
            kind,
            at_ms,
            episode_start_ms,
            value,
            threshold,
            message,
        }
    }
}

/// The deterministic id of an alert.
pub fn alert_id(kind: AlertKind, account_id: &str, episode_start_ms: i64) -> String {
    format!("{}/{}/{}", kind.as_str(), account_id, episode_start_ms)
}

static ALERT_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("alert_id", DataType::Utf8, false),
        Field::new("account_id", DataType::Utf8, false),
        Field::new("kind", DataType::Utf8, false),
        Field::new("at", timestamp_type(), false),
        Field::new("episode_start", timestamp_type(), false),
        Field::new("value", DataType::Float64, false),
        Field::new("threshold", DataType::Float64, false),
        Field::new("message", DataType::Utf8, false),
    ]))
});

/// Schema of an alerts batch: `alert_id, account_id, kind, at, episode_start, value, threshold,
/// message` (timestamps in ms UTC).
pub fn alert_schema() -> SchemaRef {
    ALERT_SCHEMA.clone()
}

/// Alerts as one batch of [`alert_schema`].
pub fn alerts_to_batch(alerts: &[Alert]) -> RecordBatch {
    let n = alerts.len();
    let mut id = StringBuilder::with_capacity(n, n * 32);
    let mut account = StringBuilder::with_capacity(n, n * 16);
    let mut kind = StringBuilder::with_capacity(n, n * 12);
    let mut at = TimestampMillisecondBuilder::with_capacity(n);
    let mut start = TimestampMillisecondBuilder::with_capacity(n);
    let mut value = Float64Builder::with_capacity(n);
    let mut threshold = Float64Builder::with_capacity(n);
    let mut message = StringBuilder::with_capacity(n, n * 48);
    for a in alerts {
        id.append_value(&a.id);
        account.append_value(&a.account_id);
        kind.append_value(a.kind.as_str());
        at.append_value(a.at_ms);
        start.append_value(a.episode_start_ms);
        value.append_value(a.value);
        threshold.append_value(a.threshold);
        message.append_value(&a.message);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(id.finish()),
        Arc::new(account.finish()),
        Arc::new(kind.finish()),
        Arc::new(at.finish().with_timezone("UTC")),
        Arc::new(start.finish().with_timezone("UTC")),
        Arc::new(value.finish()),
        Arc::new(threshold.finish()),
        Arc::new(message.finish()),
    ];
    RecordBatch::try_new(alert_schema(), columns).expect("columns follow the alert schema")
}
