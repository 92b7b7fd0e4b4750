//! The population models' data: customer summaries from the history (the `customer_summary`
//! named query), the fits stored in a data directory (`models.jsonl`), and the `models` (one
//! row per model of each fit) and `model_params` (one row per parameter) tables.

use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};

use arrow::array::{
    Array, ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use vigil_engine::models::bgnbd::Rfm;
use vigil_engine::models::churn;
use vigil_engine::models::{Contract, CustomerSummary, FitWindow, Fitted, ModelSet, fit_population};

use crate::context::Analyst;
use crate::error::{QueryError, Result};
use crate::snapshot::{SnapshotFn, SnapshotTable};

/// The customer summaries of a history and the window they cover.
#[derive(Debug, Clone, PartialEq)]
pub struct HistorySummary {
    /// One row per account with an event, sorted by account id.
    pub customers: Vec<(String, CustomerSummary)>,
    /// Each account's status (`active`, `churned`, `won_back`), in the same order.
    pub status: Vec<String>,
    /// The first event's time and the end of observation (epoch ms).
    pub start_ms: i64,
    pub end_ms: i64,
}

/// Runs the `customer_summary` named query (as of `as_of`, `YYYY-MM-DD`, or the end of the
/// data) and reads its rows as the models' input, in days.
pub async fn history_summary(analyst: &Analyst, as_of: Option<&str>) -> Result<HistorySummary> {
    let params: Vec<(String, String)> = as_of
        .map(|d| ("as_of".to_string(), d.to_string()))
        .into_iter()
        .collect();
    let batches = analyst.named("customer_summary", &params).await?.collect().await?;
    let end_ms = match as_of {
        Some(d) => chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d")
            .map_err(|e| QueryError::Models(format!("as_of {d}: {e}")))?
            .and_hms_opt(0, 0, 0)
            .map(|t| t.and_utc().timestamp_millis())
            .unwrap_or(0),
        None => {
            let b = analyst
                .collect("SELECT CAST(max(ts) AS BIGINT) AS m FROM events")
                .await?;
            int_cell(&b, 0).map_or(0, |m| m + 1)
        }
    };
    let mut out = HistorySummary {
        customers: Vec::new(),
        status: Vec::new(),
        start_ms: i64::MAX,
        end_ms,
    };
    for b in &batches {
        let col = |name: &str, ty: &DataType| -> Result<ArrayRef> {
            let c = b.column_by_name(name).ok_or_else(|| QueryError::Schema {
                table: "customer_summary".into(),
                detail: format!("no column {name}"),
            })?;
            Ok(arrow::compute::cast(c, ty)?)
        };
        let ids = col("account_id", &DataType::Utf8)?;
        let ids = ids.as_any().downcast_ref::<StringArray>().expect("cast to Utf8");
        let x = col("repeat_occasions", &DataType::Float64)?;
        let x = f64s(&x);
        let t_x = col("recency_days", &DataType::Float64)?;
        let t_x = f64s(&t_x);
        let t = col("age_days", &DataType::Float64)?;
        let t = f64s(&t);
        let m = col("repeat_value", &DataType::Float64)?;
        let m = f64s(&m);
        let renewals = col("renewals", &DataType::Int64)?;
        let renewals = renewals.as_any().downcast_ref::<Int64Array>().expect("cast to Int64");
        let status = col("status", &DataType::Utf8)?;
        let status = status.as_any().downcast_ref::<StringArray>().expect("cast to Utf8");
        let contract = col("has_contract", &DataType::Boolean)?;
        let contract = contract
            .as_any()
            .downcast_ref::<BooleanArray>()
            .expect("cast to Boolean");
        let first = col("first_seen", &DataType::Timestamp(TimeUnit::Millisecond, None))?;
        // (cast without a time zone: the values are UTC epoch milliseconds either way)
        let first = first
            .as_any()
            .downcast_ref::<TimestampMillisecondArray>()
            .expect("cast to Timestamp(ms)");
        for i in 0..b.num_rows() {
            let get = |a: &Float64Array| (!a.is_null(i)).then(|| a.value(i));
            let rfm = match (get(x), get(t_x), get(t)) {
                (Some(x), Some(t_x), Some(t)) => Some(Rfm { x, t_x, t }),
                _ => None,
            };
            let st = status.value(i).to_string();
            let summary = CustomerSummary {
                rfm,
                repeat_value: get(m),
                contract: (contract.value(i)).then(|| Contract {
                    renewals: u32::try_from(renewals.value(i)).unwrap_or(u32::MAX),
                    cancelled: st == "churned",
                }),
            };
            if !first.is_null(i) {
                out.start_ms = out.start_ms.min(first.value(i));
            }
            out.customers.push((ids.value(i).to_string(), summary));
            out.status.push(st);
        }
    }
    if out.start_ms == i64::MAX {
        out.start_ms = end_ms;
    }
    Ok(out)
}

fn f64s(a: &ArrayRef) -> &Float64Array {
    a.as_any().downcast_ref::<Float64Array>().expect("cast to Float64")
}

fn int_cell(batches: &[RecordBatch], col: usize) -> Option<i64> {
    let b = batches.iter().find(|b| b.num_rows() > 0)?;
    let c = arrow::compute::cast(b.column(col), &DataType::Int64).ok()?;
    let c = c.as_any().downcast_ref::<Int64Array>()?;
    (!c.is_null(0)).then(|| c.value(0))
}

/// Fits the three population models on the history of `analyst` (see [`history_summary`]).
pub async fn fit_history(analyst: &Analyst, as_of: Option<&str>, fitted_at_ms: i64) -> Result<ModelSet> {
    let h = history_summary(analyst, as_of).await?;
    let rows: Vec<CustomerSummary> = h.customers.iter().map(|(_, c)| *c).collect();
    let window = FitWindow {
        fitted_at_ms,
        start_ms: h.start_ms,
        end_ms: h.end_ms,
        time_unit_days: 1.0,
    };
    tokio::task::spawn_blocking(move || fit_timed(&rows, window))
        .await
        .map_err(|e| QueryError::Models(format!("the fit did not finish: {e}")))
}

/// [`fit_population`] with its wall time recorded in [`ModelSet::fit_ms`] (the engine reads no
/// clock).
pub fn fit_timed(rows: &[CustomerSummary], window: FitWindow) -> ModelSet {
    let started = std::time::Instant::now();
    let mut set = fit_population(rows, window);
    set.fit_ms = started.elapsed().as_secs_f64() * 1e3;
    set
}

/// The fits kept in a data directory: `models.jsonl`, one [`ModelSet`] per line, oldest first.
#[derive(Debug, Clone)]
pub struct ModelStore {
    path: PathBuf,
}

impl ModelStore {
    /// The store `<data_dir>/models.jsonl`.
    pub fn in_data_dir(data_dir: &Path) -> Self {
        ModelStore {
            path: data_dir.join("models.jsonl"),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every stored fit, oldest first (none when the file does not exist).
    pub fn read(&self) -> Result<Vec<ModelSet>> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(QueryError::io(&self.path, e)),
        };
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .enumerate()
            .map(|(i, l)| {
                serde_json::from_str(l)
                    .map_err(|e| QueryError::Models(format!("{} line {}: {e}", self.path.display(), i + 1)))
            })
            .collect()
    }

    /// The newest stored fit.
    pub fn latest(&self) -> Result<Option<ModelSet>> {
        Ok(self.read()?.pop())
    }

    /// Stores `set` as the next version and returns it with its version. The file is replaced
    /// atomically (temp file, fsync, rename), so a crash leaves the old or the new list whole.
    pub fn append(&self, mut set: ModelSet) -> Result<ModelSet> {
        let mut all = self.read()?;
        set.version = all.last().map_or(1, |s| s.version + 1);
        all.push(set.clone());
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| QueryError::io(dir, e))?;
        let mut text = String::new();
        for s in &all {
            text.push_str(&serde_json::to_string(s).map_err(|e| QueryError::Models(e.to_string()))?);
            text.push('\n');
        }
        let tmp = dir.join(format!(".models.jsonl.tmp-{}", std::process::id()));
        {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp).map_err(|e| QueryError::io(&tmp, e))?;
            f.write_all(text.as_bytes()).map_err(|e| QueryError::io(&tmp, e))?;
            f.sync_all().map_err(|e| QueryError::io(&tmp, e))?;
        }
        std::fs::rename(&tmp, &self.path).map_err(|e| QueryError::io(&self.path, e))?;
        Ok(set)
    }
}

static MODELS_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    let ts = vigil_engine::schema::timestamp_type;
    Arc::new(Schema::new(vec![
        Field::new("version", DataType::Int64, false),
        Field::new("model", DataType::Utf8, false),
        Field::new("status", DataType::Utf8, false),
        Field::new("detail", DataType::Utf8, true),
        Field::new("customers", DataType::Int64, true),
        Field::new("log_likelihood", DataType::Float64, true),
        Field::new("params", DataType::Utf8, true),
        Field::new("iterations", DataType::Int64, true),
        Field::new("fitted_at", ts(), false),
        Field::new("window_start", ts(), false),
        Field::new("window_end", ts(), false),
        Field::new("time_unit_days", DataType::Float64, false),
        Field::new("fit_ms", DataType::Float64, false),
    ]))
});

/// The schema of the `models` table: one row per model of each stored fit.
pub fn models_schema() -> SchemaRef {
    MODELS_SCHEMA.clone()
}

/// One row of the `models` table.
struct ModelRow {
    model: &'static str,
    detail: Option<String>,
    customers: Option<i64>,
    log_likelihood: Option<f64>,
    params: Option<String>,
    iterations: Option<i64>,
}

fn model_rows(set: &ModelSet) -> [ModelRow; 4] {
    fn row<T>(model: &'static str, f: &Fitted<T>, read: impl Fn(&T) -> (i64, f64, String, Option<i64>)) -> ModelRow {
        match f {
            Fitted::Ok(v) => {
                let (customers, ll, params, iterations) = read(v);
                ModelRow {
                    model,
                    detail: None,
                    customers: Some(customers),
                    log_likelihood: Some(ll),
                    params: Some(params),
                    iterations,
                }
            }
            Fitted::Failed(why) => ModelRow {
                model,
                detail: Some(why.clone()),
                customers: None,
                log_likelihood: None,
                params: None,
                iterations: None,
            },
        }
    }
    let json = |v: serde_json::Value| v.to_string();
    [
        row("bgnbd", &set.bgnbd, |f| {
            let p = f.params;
            (
                f.customers as i64,
                f.log_likelihood,
                json(serde_json::json!({"r": p.r, "alpha": p.alpha, "a": p.a, "b": p.b})),
                Some(f.iterations as i64),
            )
        }),
        row("gamma_gamma", &set.gamma_gamma, |f| {
            let p = f.params;
            (
                f.customers as i64,
                f.log_likelihood,
                json(serde_json::json!({"p": p.p, "q": p.q, "gamma": p.gamma})),
                Some(f.iterations as i64),
            )
        }),
        row("sbg", &set.sbg, |f| {
            let p = f.params;
            (
                f.customers as i64,
                f.log_likelihood,
                json(serde_json::json!({"alpha": p.alpha, "beta": p.beta})),
                Some(f.iterations as i64),
            )
        }),
        // customers: account scorings at cut-offs; params: the coefficients, the alert
        // threshold, the horizon, the cancellations seen and the in-sample AUC.
        row("churn", &set.churn, |f| {
            let m = f.model;
            let mut params = serde_json::Map::new();
            params.insert("intercept".into(), m.intercept.into());
            for (name, w) in churn::FEATURES.iter().zip(m.weights) {
                params.insert((*name).into(), w.into());
            }
            params.insert("alert_threshold".into(), m.alert_threshold.into());
            params.insert("horizon_days".into(), m.horizon_days.into());
            params.insert("positives".into(), f.positives.into());
            params.insert("auc".into(), f.auc.into());
            (
                f.observations as i64,
                f.log_likelihood,
                json(serde_json::Value::Object(params)),
                None,
            )
        }),
    ]
}

/// The `models` table's rows for `sets`.
pub fn models_batch(sets: &[ModelSet]) -> Result<RecordBatch> {
    let mut rows: Vec<(&ModelSet, ModelRow)> = Vec::new();
    for s in sets {
        for r in model_rows(s) {
            rows.push((s, r));
        }
    }
    let ts = |f: fn(&ModelSet) -> i64| -> ArrayRef {
        Arc::new(
            TimestampMillisecondArray::from(rows.iter().map(|(s, _)| f(s)).collect::<Vec<_>>()).with_timezone("UTC"),
        )
    };
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(
            rows.iter().map(|(s, _)| s.version as i64).collect::<Vec<_>>(),
        )),
        Arc::new(StringArray::from(rows.iter().map(|(_, r)| r.model).collect::<Vec<_>>())),
        Arc::new(StringArray::from(
            rows.iter()
                .map(|(_, r)| if r.detail.is_none() { "fitted" } else { "failed" })
                .collect::<Vec<_>>(),
        )),
        Arc::new(rows.iter().map(|(_, r)| r.detail.as_deref()).collect::<StringArray>()),
        Arc::new(rows.iter().map(|(_, r)| r.customers).collect::<Int64Array>()),
        Arc::new(rows.iter().map(|(_, r)| r.log_likelihood).collect::<Float64Array>()),
        Arc::new(rows.iter().map(|(_, r)| r.params.as_deref()).collect::<StringArray>()),
        Arc::new(rows.iter().map(|(_, r)| r.iterations).collect::<Int64Array>()),
        ts(|s| s.fitted_at_ms),
        ts(|s| s.window_start_ms),
        ts(|s| s.window_end_ms),
        Arc::new(Float64Array::from(
            rows.iter().map(|(s, _)| s.time_unit_days).collect::<Vec<_>>(),
        )),
        Arc::new(Float64Array::from(
            rows.iter().map(|(s, _)| s.fit_ms).collect::<Vec<_>>(),
        )),
    ];
    Ok(RecordBatch::try_new(models_schema(), columns)?)
}

/// The `models` table over a store, read at every scan (fits made while a session is open
/// appear in its next query).
pub fn models_table(store: ModelStore) -> Arc<SnapshotTable> {
    store_table(store, models_schema(), models_batch)
}

/// A table of `schema` whose rows `rows` builds from the store's fits at every scan.
fn store_table(
    store: ModelStore,
    schema: SchemaRef,
    rows: fn(&[ModelSet]) -> Result<RecordBatch>,
) -> Arc<SnapshotTable> {
    let external = |e: QueryError| datafusion::error::DataFusionError::External(Box::new(e));
    let f: SnapshotFn = Arc::new(move || rows(&store.read().map_err(external)?).map_err(external));
    Arc::new(SnapshotTable::new(schema, f))
}

static MODEL_PARAMS_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("version", DataType::Int64, false),
        Field::new("model", DataType::Utf8, false),
        Field::new("name", DataType::Utf8, false),
        Field::new("value", DataType::Float64, false),
    ]))
});

/// The schema of the `model_params` table: one row per parameter of each fitted model, with
/// BG/NBD's `alpha` in days (the unit the scoring core and the named queries use).
pub fn model_params_schema() -> SchemaRef {
    MODEL_PARAMS_SCHEMA.clone()
}

/// The `model_params` table's rows for `sets`.
pub fn model_params_batch(sets: &[ModelSet]) -> Result<RecordBatch> {
    let mut rows: Vec<(i64, &'static str, &'static str, f64)> = Vec::new();
    for s in sets {
        let v = s.version as i64;
        if let Some(f) = s.bgnbd.ok() {
            let p = f.params;
            rows.extend([
                (v, "bgnbd", "r", p.r),
                (v, "bgnbd", "alpha", p.alpha * s.time_unit_days),
                (v, "bgnbd", "a", p.a),
                (v, "bgnbd", "b", p.b),
            ]);
        }
        if let Some(f) = s.gamma_gamma.ok() {
            let p = f.params;
            rows.extend([
                (v, "gamma_gamma", "p", p.p),
                (v, "gamma_gamma", "q", p.q),
                (v, "gamma_gamma", "gamma", p.gamma),
            ]);
        }
        if let Some(f) = s.sbg.ok() {
            rows.extend([(v, "sbg", "alpha", f.params.alpha), (v, "sbg", "beta", f.params.beta)]);
        }
        if let Some(f) = s.churn.ok() {
            let m = f.model;
            rows.push((v, "churn", "intercept", m.intercept));
            rows.extend(churn::FEATURES.iter().zip(m.weights).map(|(n, w)| (v, "churn", *n, w)));
            rows.extend([
                (v, "churn", "alert_threshold", m.alert_threshold),
                (v, "churn", "horizon_days", f64::from(m.horizon_days)),
            ]);
        }
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(rows.iter().map(|r| r.0).collect::<Vec<_>>())),
        Arc::new(StringArray::from(rows.iter().map(|r| r.1).collect::<Vec<_>>())),
        Arc::new(StringArray::from(rows.iter().map(|r| r.2).collect::<Vec<_>>())),
        Arc::new(Float64Array::from(rows.iter().map(|r| r.3).collect::<Vec<_>>())),
    ];
    Ok(RecordBatch::try_new(model_params_schema(), columns)?)
}

/// The `model_params` table over a store, read at every scan.
pub fn model_params_table(store: ModelStore) -> Arc<SnapshotTable> {
    store_table(store, model_params_schema(), model_params_batch)
}
