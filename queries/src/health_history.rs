//! The `health_history` table: every account's health as of the end of each day of the history,
//! with each component's score and contribution, so that "what moved this score?" has an
//! answer for any two days.
//!
//! Computed at scan time: the `events` history (of the accounts a query asks for, when its
//! `WHERE` names them with `account_id = '…'` or `IN (…)`) is replayed in time order through a
//! scoring core with the default scoring settings and the newest stored models, and each
//! account is scored once per day from its first event's day to the history's last day, as of
//! the day's last millisecond (UTC). Rows are what the live `health` table showed at that
//! moment, under today's models.

use std::collections::BTreeSet;
use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, Date32Builder, Float64Builder, RecordBatch, StringBuilder, new_null_array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimestampMillisecondType};
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::ScalarValue;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{BinaryExpr, Expr, Operator, TableProviderFilterPushDown, TableType};
use datafusion::physical_plan::ExecutionPlan;
use vigil_engine::scoring::{Component, ScoringConfig, ScoringCore};

use crate::models::ModelStore;

const DAY_MS: i64 = 86_400_000;

/// Rows a scan may produce without naming its accounts.
pub const MAX_ROWS: usize = 5_000_000;

/// The schema: `account_id`, `day` (Date32), `score`, `band`, `churn_risk`, `status`, then each
/// component's score (`engagement` … `advocacy`, NULL without data) and its contribution
/// (`engagement_contribution` …; they sum to `score − 50`).
pub fn health_history_schema() -> SchemaRef {
    let mut fields = vec![
        Field::new("account_id", DataType::Utf8, false),
        Field::new("day", DataType::Date32, false),
        Field::new("score", DataType::Float64, false),
        Field::new("band", DataType::Utf8, false),
        Field::new("churn_risk", DataType::Float64, false),
        Field::new("status", DataType::Utf8, false),
    ];
    fields.extend(
        Component::ALL
            .iter()
            .map(|c| Field::new(c.as_str(), DataType::Float64, true)),
    );
    fields.extend(
        Component::ALL
            .iter()
            .map(|c| Field::new(format!("{}_contribution", c.as_str()), DataType::Float64, true)),
    );
    Arc::new(Schema::new(fields))
}

/// The `health_history` table over an `events` table.
pub struct HealthHistoryTable {
    events: Arc<dyn TableProvider>,
    models: Option<ModelStore>,
    scoring: ScoringConfig,
    schema: SchemaRef,
}

impl std::fmt::Debug for HealthHistoryTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HealthHistoryTable").finish()
    }
}

impl HealthHistoryTable {
    /// The table over `events`, scored with the newest fit of `models` (if any).
    pub fn new(events: Arc<dyn TableProvider>, models: Option<ModelStore>) -> Self {
        HealthHistoryTable {
            events,
            models,
            scoring: ScoringConfig::default(),
            schema: health_history_schema(),
        }
    }
}

/// The account ids a filter names (`account_id = 'a'`, `'a' = account_id`, `account_id IN
/// ('a', 'b')`), if it is one of those.
fn named_accounts(e: &Expr) -> Option<Vec<String>> {
    let is_account = |e: &Expr| matches!(e, Expr::Column(c) if c.name == "account_id");
    let text = |e: &Expr| match e {
        Expr::Literal(
            ScalarValue::Utf8(Some(s)) | ScalarValue::Utf8View(Some(s)) | ScalarValue::LargeUtf8(Some(s)),
            _,
        ) => Some(s.clone()),
        _ => None,
    };
    match e {
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Eq,
            right,
        }) => {
            if is_account(left) {
                text(right).map(|s| vec![s])
            } else if is_account(right) {
                text(left).map(|s| vec![s])
            } else {
                None
            }
        }
        Expr::InList(l) if !l.negated && is_account(&l.expr) => l.list.iter().map(text).collect(),
        _ => None,
    }
}

#[async_trait]
impl TableProvider for HealthHistoryTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(filters
            .iter()
            .map(|f| {
                if named_accounts(f).is_some() {
                    TableProviderFilterPushDown::Inexact
                } else {
                    TableProviderFilterPushDown::Unsupported
                }
            })
            .collect())
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        // The accounts asked for: the intersection of the filters that name some.
        let mut wanted: Option<BTreeSet<String>> = None;
        for f in filters {
            if let Some(ids) = named_accounts(f) {
                let ids: BTreeSet<String> = ids.into_iter().collect();
                wanted = Some(match wanted {
                    Some(w) => w.intersection(&ids).cloned().collect(),
                    None => ids,
                });
            }
        }
        let pushed: Vec<Expr> = filters
            .iter()
            .filter(|f| named_accounts(f).is_some())
            .cloned()
            .collect();
        let plan = self.events.scan(state, None, &pushed, None).await?;
        let batches = datafusion::physical_plan::collect(plan, state.task_ctx()).await?;
        // The history's last day, over every account (whichever are asked for): a scan of the
        // times alone when the accounts were narrowed, else the events just read hold it.
        let last_ms = if pushed.is_empty() {
            None
        } else {
            let ts = vec![vigil_engine::schema::TS];
            let plan = self.events.scan(state, Some(&ts), &[], None).await?;
            let mut last = None;
            for b in datafusion::physical_plan::collect(plan, state.task_ctx()).await? {
                let t = arrow::compute::cast(
                    b.column(0),
                    &DataType::Timestamp(arrow::datatypes::TimeUnit::Millisecond, None),
                )?;
                if let Some(m) = arrow::compute::max(t.as_primitive::<TimestampMillisecondType>()) {
                    last = Some(last.map_or(m, |l: i64| l.max(m)));
                }
            }
            last
        };
        let batch = self.replay(&batches, wanted.as_ref(), last_ms)?;
        Ok(MemorySourceConfig::try_new_exec(
            &[vec![batch]],
            self.schema.clone(),
            projection.cloned(),
        )?)
    }
}

impl HealthHistoryTable {
    /// Replays `events` (of the `wanted` accounts, or all) and scores each account daily until
    /// the day of `last_ms` (the history's newest event; `None`: the newest of `events`).
    fn replay(
        &self,
        events: &[RecordBatch],
        wanted: Option<&BTreeSet<String>>,
        last_ms: Option<i64>,
    ) -> Result<RecordBatch> {
        let ext = |e: String| DataFusionError::Execution(format!("health_history: {e}"));
        let schema = vigil_engine::schema::event_schema();
        let mut all = Vec::new();
        for b in events.iter().filter(|b| b.num_rows() > 0) {
            let b = crate::cast::cast_to_schema(b, &schema).map_err(|e| ext(e.to_string()))?;
            let b = match wanted {
                Some(w) => {
                    let ids = b.column(vigil_engine::schema::ACCOUNT_ID).as_string::<i32>();
                    let keep: arrow::array::BooleanArray =
                        ids.iter().map(|id| Some(id.is_some_and(|id| w.contains(id)))).collect();
                    arrow::compute::filter_record_batch(&b, &keep)?
                }
                None => b,
            };
            if b.num_rows() > 0 {
                all.push(b);
            }
        }
        let mut out = Rows::default();
        if all.is_empty() {
            return out.finish(&self.schema);
        }
        let batch = arrow::compute::concat_batches(&schema, &all)?;
        let ts_col = batch.column(vigil_engine::schema::TS);
        let order = arrow::compute::sort_to_indices(ts_col, None, None)?;
        let batch = arrow::compute::take_record_batch(&batch, &order)?;
        let ts = batch
            .column(vigil_engine::schema::TS)
            .as_primitive::<TimestampMillisecondType>();
        let ids = batch.column(vigil_engine::schema::ACCOUNT_ID).as_string::<i32>();
        let (first_day, last_day) = (
            ts.value(0).div_euclid(DAY_MS),
            last_ms
                .unwrap_or(i64::MIN)
                .max(ts.value(batch.num_rows() - 1))
                .div_euclid(DAY_MS),
        );

        let mut core = ScoringCore::new(self.scoring.clone()).map_err(|e| ext(e.to_string()))?;
        if let Some(store) = &self.models
            && let Some(set) = store.latest().map_err(|e| ext(e.to_string()))?
        {
            core.set_population(set.population(core.population()));
        }
        let mut seen: BTreeSet<String> = BTreeSet::new();
        let mut row = 0;
        for day in first_day..=last_day {
            let midnight = (day + 1) * DAY_MS;
            let start = row;
            while row < batch.num_rows() && ts.value(row) < midnight {
                seen.insert(ids.value(row).to_string());
                row += 1;
            }
            if row > start {
                core.apply_batch(&batch.slice(start, row - start))
                    .map_err(|e| ext(e.to_string()))?;
            }
            // The end of the day: its last millisecond, so that the engine's "today" is `day`.
            core.advance_clock(midnight - 1);
            if out.len + seen.len() > MAX_ROWS {
                return Err(ext(format!(
                    "more than {MAX_ROWS} rows: name the accounts (WHERE account_id = '…' or IN (…))"
                )));
            }
            for id in &seen {
                if let Some(h) = core.score(id) {
                    out.push(id, day as i32, &h, core.status(id).map_or("active", |s| s.as_str()));
                }
            }
        }
        out.finish(&self.schema)
    }
}

/// The table's columns under construction.
#[derive(Default)]
struct Rows {
    len: usize,
    account: StringBuilder,
    day: Date32Builder,
    score: Float64Builder,
    band: StringBuilder,
    churn_risk: Float64Builder,
    status: StringBuilder,
    components: [Float64Builder; 7],
    contributions: [Float64Builder; 7],
}

impl Rows {
    fn push(&mut self, id: &str, day: i32, h: &vigil_engine::scoring::HealthScore, status: &str) {
        self.len += 1;
        self.account.append_value(id);
        self.day.append_value(day);
        self.score.append_value(h.score);
        self.band.append_value(h.band.as_str());
        self.churn_risk.append_value(h.churn_risk);
        self.status.append_value(status);
        for (i, c) in Component::ALL.iter().enumerate() {
            self.components[i].append_option(h.component_score(*c));
            self.contributions[i].append_option(h.contribution(*c));
        }
    }

    fn finish(mut self, schema: &SchemaRef) -> Result<RecordBatch> {
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(self.account.finish()),
            Arc::new(self.day.finish()),
            Arc::new(self.score.finish()),
            Arc::new(self.band.finish()),
            Arc::new(self.churn_risk.finish()),
            Arc::new(self.status.finish()),
        ];
        columns.extend(self.components.iter_mut().map(|b| Arc::new(b.finish()) as ArrayRef));
        columns.extend(self.contributions.iter_mut().map(|b| Arc::new(b.finish()) as ArrayRef));
        if self.len == 0 {
            columns = schema
                .fields()
                .iter()
                .map(|f| new_null_array(f.data_type(), 0))
                .collect();
        }
        Ok(RecordBatch::try_new(schema.clone(), columns)?)
    }
}
