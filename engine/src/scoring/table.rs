//! The `health` table: one row per account, the schema the SQL layer builds on.
//!
//! Column names are stable. Window-named columns use the configured windows (`events_30d` is the
//! mid window, `revenue_90d` and `complaint_cost_90d` the long window; the names follow the
//! defaults). Component columns hold each component's signed contribution (`weight · (score −
//! 50)`, see [`crate::scoring::health`]) and are null when the component has no data;
//! `score − 50` equals the sum of the non-null contributions.

use std::sync::{Arc, LazyLock};

use arrow::array::{
    ArrayRef, BooleanBuilder, Float64Builder, Int64Builder, StringBuilder, TimestampMillisecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;

use super::account::AccountStatus;
use super::health::Component;
use crate::schema::timestamp_type;

static HEALTH_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    let f64n = |name: &str| Field::new(name, DataType::Float64, true);
    let mut fields = vec![
        Field::new("account_id", DataType::Utf8, false),
        Field::new("tier", DataType::Utf8, false),
        f64n("arr"),
        Field::new("owner", DataType::Utf8, true),
        Field::new("segment", DataType::Utf8, true),
        Field::new("score", DataType::Float64, false),
        Field::new("band", DataType::Utf8, false),
        Field::new("churn_risk", DataType::Float64, false),
        f64n("p_alive"),
        f64n("bgnbd_x"),
        f64n("bgnbd_t_x"),
        f64n("bgnbd_t"),
        Field::new("last_seen", timestamp_type(), true),
        f64n("cadence_days"),
        Field::new("open_tickets", DataType::Int64, false),
        Field::new("open_complaints", DataType::Int64, false),
    ];
    fields.extend(Component::ALL.iter().map(|c| f64n(c.as_str())));
    fields.extend([
        f64n("trend_7d"),
        Field::new("events_30d", DataType::Int64, false),
        Field::new("revenue_90d", DataType::Float64, false),
        Field::new("complaint_cost_90d", DataType::Float64, false),
        Field::new("cancelled", DataType::Boolean, false),
        Field::new("quiet", DataType::Boolean, false),
        Field::new("status", DataType::Utf8, false),
    ]);
    Arc::new(Schema::new(fields))
});

/// Schema of the health table:
///
/// `account_id` Utf8, `tier` Utf8 (`key`/`standard`), `arr` Float64?, `owner` Utf8?,
/// `segment` Utf8?, `score` Float64 (0-100), `band` Utf8 (`healthy`/`watch`/`at_risk`),
/// `churn_risk` Float64 (0-1), `p_alive` Float64?, `bgnbd_x` Float64?, `bgnbd_t_x` Float64?,
/// `bgnbd_t` Float64? (days), `last_seen` Timestamp(ms, UTC)?, `cadence_days` Float64?,
/// `open_tickets` Int64, `open_complaints` Int64, `engagement` `recency` `support` `sentiment`
/// `relationship` `commercial` `advocacy` Float64? (contributions), `trend_7d` Float64?,
/// `events_30d` Int64, `revenue_90d` Float64, `complaint_cost_90d` Float64, `cancelled` Boolean,
/// `quiet` Boolean, `status` Utf8 (`active`/`churned`/`won_back`). (`?` = nullable.)
pub fn health_schema() -> SchemaRef {
    HEALTH_SCHEMA.clone()
}

/// One row of the health table.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthRow<'a> {
    pub account_id: &'a str,
    pub key: bool,
    pub arr: Option<f64>,
    pub owner: Option<&'a str>,
    pub segment: Option<&'a str>,
    pub score: f64,
    pub band: &'static str,
    pub churn_risk: f64,
    pub p_alive: Option<f64>,
    pub rfm: Option<(f64, f64, f64)>,
    pub last_seen_ms: Option<i64>,
    pub cadence_days: Option<f64>,
    pub open_tickets: i64,
    pub open_complaints: i64,
    pub contributions: [Option<f64>; 7],
    pub trend_7d: Option<f64>,
    pub events_30d: i64,
    pub revenue_90d: f64,
    pub complaint_cost_90d: f64,
    pub cancelled: bool,
    pub quiet: bool,
    pub status: AccountStatus,
}

/// Builds a health batch row by row.
#[derive(Debug)]
pub struct HealthBatchBuilder {
    account_id: StringBuilder,
    tier: StringBuilder,
    arr: Float64Builder,
    owner: StringBuilder,
    segment: StringBuilder,
    score: Float64Builder,
    band: StringBuilder,
    churn_risk: Float64Builder,
    p_alive: Float64Builder,
    x: Float64Builder,
    t_x: Float64Builder,
    t: Float64Builder,
    last_seen: TimestampMillisecondBuilder,
    cadence: Float64Builder,
    open_tickets: Int64Builder,
    open_complaints: Int64Builder,
    contributions: [Float64Builder; 7],
    trend: Float64Builder,
    events_30d: Int64Builder,
    revenue_90d: Float64Builder,
    complaint_cost_90d: Float64Builder,
    cancelled: BooleanBuilder,
    quiet: BooleanBuilder,
    status: StringBuilder,
}

impl HealthBatchBuilder {
    /// A builder with room for `n` rows.
    pub fn with_capacity(n: usize) -> Self {
        let f = || Float64Builder::with_capacity(n);
        HealthBatchBuilder {
            account_id: StringBuilder::with_capacity(n, n * 16),
            tier: StringBuilder::with_capacity(n, n * 8),
            arr: f(),
            owner: StringBuilder::with_capacity(n, n * 8),
            segment: StringBuilder::with_capacity(n, n * 8),
            score: f(),
            band: StringBuilder::with_capacity(n, n * 7),
            churn_risk: f(),
            p_alive: f(),
            x: f(),
            t_x: f(),
            t: f(),
            last_seen: TimestampMillisecondBuilder::with_capacity(n),
            cadence: f(),
            open_tickets: Int64Builder::with_capacity(n),
            open_complaints: Int64Builder::with_capacity(n),
            contributions: std::array::from_fn(|_| f()),
            trend: f(),
            events_30d: Int64Builder::with_capacity(n),
            revenue_90d: f(),
            complaint_cost_90d: f(),
            cancelled: BooleanBuilder::with_capacity(n),
            quiet: BooleanBuilder::with_capacity(n),
            status: StringBuilder::with_capacity(n, n * 7),
        }
    }

    /// Appends one row.
    pub fn append(&mut self, r: &HealthRow<'_>) {
        self.account_id.append_value(r.account_id);
        self.tier.append_value(if r.key { "key" } else { "standard" });
        self.arr.append_option(r.arr);
        self.owner.append_option(r.owner);
        self.segment.append_option(r.segment);
        self.score.append_value(r.score);
        self.band.append_value(r.band);
        self.churn_risk.append_value(r.churn_risk);
        self.p_alive.append_option(r.p_alive);
        self.x.append_option(r.rfm.map(|v| v.0));
        self.t_x.append_option(r.rfm.map(|v| v.1));
        self.t.append_option(r.rfm.map(|v| v.2));
        self.last_seen.append_option(r.last_seen_ms);
        self.cadence.append_option(r.cadence_days);
        self.open_tickets.append_value(r.open_tickets);
        self.open_complaints.append_value(r.open_complaints);
        for (b, c) in self.contributions.iter_mut().zip(r.contributions) {
            b.append_option(c);
        }
        self.trend.append_option(r.trend_7d);
        self.events_30d.append_value(r.events_30d);
        self.revenue_90d.append_value(r.revenue_90d);
        self.complaint_cost_90d.append_value(r.complaint_cost_90d);
        self.cancelled.append_value(r.cancelled);
        self.quiet.append_value(r.quiet);
        self.status.append_value(r.status.as_str());
    }

    /// The batch of the appended rows.
    pub fn finish(mut self) -> RecordBatch {
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(self.account_id.finish()),
            Arc::new(self.tier.finish()),
            Arc::new(self.arr.finish()),
            Arc::new(self.owner.finish()),
            Arc::new(self.segment.finish()),
            Arc::new(self.score.finish()),
            Arc::new(self.band.finish()),
            Arc::new(self.churn_risk.finish()),
            Arc::new(self.p_alive.finish()),
            Arc::new(self.x.finish()),
            Arc::new(self.t_x.finish()),
            Arc::new(self.t.finish()),
            Arc::new(self.last_seen.finish().with_timezone("UTC")),
            Arc::new(self.cadence.finish()),
            Arc::new(self.open_tickets.finish()),
            Arc::new(self.open_complaints.finish()),
        ];
        for b in self.contributions.iter_mut() {
            columns.push(Arc::new(b.finish()));
        }
        columns.extend::<[ArrayRef; 7]>([
            Arc::new(self.trend.finish()),
            Arc::new(self.events_30d.finish()),
            Arc::new(self.revenue_90d.finish()),
            Arc::new(self.complaint_cost_90d.finish()),
            Arc::new(self.cancelled.finish()),
            Arc::new(self.quiet.finish()),
            Arc::new(self.status.finish()),
        ]);
        RecordBatch::try_new(health_schema(), columns).expect("columns follow the health schema")
    }
}
