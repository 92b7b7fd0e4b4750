//! [`Analyst`]: a DataFusion session with vigil's tables, UDFs and named queries, read-only.
//!
//! Tables: `events` (Parquet segments + in-memory tail, [`crate::segments`]), `accounts`,
//! `health` (live snapshot, [`crate::snapshot`]), `alerts` (segments + tail), `models` and
//! `model_params` (the stored population fits, [`crate::models`]). Every named
//! query is a view with its defaults and a table function with parameters
//! ([`crate::functions`]). Only the table functions listed in [`ALLOWED_TABLE_FUNCTIONS`] and the
//! named queries exist in the session, so no SQL can read a file.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::RecordBatch;
use datafusion::catalog::TableProvider;
use datafusion::dataframe::DataFrame;
use datafusion::execution::context::SessionContext;
use datafusion::prelude::{ParquetReadOptions, SessionConfig};

use crate::accounts::{accounts_schema, accounts_table, load_accounts_file};
use crate::error::{QueryError, Result};
use crate::functions::{NamedQueryFunction, plan_named};
use crate::live::{ALERT_TIME_COLUMN, alert_schema, health_schema};
use crate::models::{ModelStore, model_params_schema, model_params_table, models_schema, models_table};
use crate::named;
use crate::readonly;
use crate::segments::SegmentStore;
use crate::snapshot::{SnapshotFn, SnapshotTable};

/// Built-in table functions kept in analyst sessions (they generate rows, read nothing).
pub const ALLOWED_TABLE_FUNCTIONS: &[&str] = &["generate_series", "range"];

/// What goes into an [`Analyst`] session.
pub struct AnalystBuilder {
    events: SegmentStore,
    late_events: Option<SegmentStore>,
    alerts: Option<SegmentStore>,
    accounts: Option<Arc<dyn TableProvider>>,
    health: Option<SnapshotFn>,
    models: Option<ModelStore>,
}

impl AnalystBuilder {
    /// The store of model fits, the `models` table (default: no rows).
    pub fn models(mut self, store: ModelStore) -> Self {
        self.models = Some(store);
        self
    }

    /// The store of late events (older than the watermark: kept, not scored), the
    /// `late_events` table (default: an empty store beside the events).
    pub fn late_events(mut self, late: SegmentStore) -> Self {
        self.late_events = Some(late);
        self
    }

    /// The alert history store (default: an empty in-memory-only store beside the events).
    pub fn alerts(mut self, alerts: SegmentStore) -> Self {
        self.alerts = Some(alerts);
        self
    }

    /// The accounts table (default: empty). See [`crate::accounts`].
    pub fn accounts(mut self, accounts: Arc<dyn TableProvider>) -> Self {
        self.accounts = Some(accounts);
        self
    }

    /// The snapshot function of the `health` table (default: no rows). It must return batches of
    /// [`health_schema`].
    pub fn health(mut self, snapshot: SnapshotFn) -> Self {
        self.health = Some(snapshot);
        self
    }

    /// Builds the session.
    pub fn build(self) -> Result<Analyst> {
        let mut config = SessionConfig::new()
            .with_information_schema(true)
            .with_default_catalog_and_schema("vigil", "public");
        // `SELECT * FROM retention_nday(...)` keeps the named query's ORDER BY.
        config.options_mut().sql_parser.enable_subquery_sort_elimination = false;
        let ctx = SessionContext::new_with_config(config);
        let state = ctx.state();
        for name in state.table_functions().keys() {
            if !ALLOWED_TABLE_FUNCTIONS.contains(&name.as_str()) {
                ctx.deregister_udtf(name);
            }
        }
        crate::udf::register_all(&ctx);
        // The Postgres catalog (`pg_catalog.*`, `current_database()`, `format_type`, ...) that
        // psql, JDBC and BI tools read to list tables and columns.
        datafusion_postgres::datafusion_pg_catalog::setup_pg_catalog(
            &ctx,
            "vigil",
            datafusion_postgres::datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider,
        )
        .map_err(|e| QueryError::DataFusion(*e))?;
        for f in crate::postgres::catalog_functions::all() {
            ctx.register_udf(f);
        }

        let alerts = match self.alerts {
            Some(a) => a,
            None => SegmentStore::open(
                "alerts",
                self.events.dir().join("..").join("alerts"),
                alert_schema(),
                ALERT_TIME_COLUMN,
            )?,
        };
        let late_events = match self.late_events {
            Some(l) => l,
            None => SegmentStore::open(
                "late_events",
                self.events.dir().join("..").join("late_events"),
                self.events.schema(),
                "ts",
            )?,
        };
        ctx.register_table("events", self.events.table())?;
        ctx.register_table(
            "health_history",
            Arc::new(crate::health_history::HealthHistoryTable::new(
                self.events.table(),
                self.models.clone(),
            )),
        )?;
        ctx.register_table("late_events", late_events.table())?;
        ctx.register_table("alert_raises", alerts.table())?;
        ctx.register_table("alerts", one_row_per_alert(&alerts)?)?;
        let accounts = match self.accounts {
            Some(a) => a,
            None => accounts_table(&[])?,
        };
        if accounts.schema().fields() != accounts_schema().fields() {
            return Err(QueryError::Schema {
                table: "accounts".into(),
                detail: format!("expected {:?}", accounts_schema().fields()),
            });
        }
        ctx.register_table("accounts", accounts)?;
        let health = self
            .health
            .unwrap_or_else(|| Arc::new(|| Ok(RecordBatch::new_empty(health_schema()))));
        ctx.register_table("health", Arc::new(SnapshotTable::new(health_schema(), health)))?;
        match self.models {
            Some(store) => {
                ctx.register_table("models", models_table(store.clone()))?;
                ctx.register_table("model_params", model_params_table(store))?;
            }
            None => {
                let empty = |schema| Arc::new(SnapshotTable::fixed(RecordBatch::new_empty(schema)));
                ctx.register_table("models", empty(models_schema()))?;
                ctx.register_table("model_params", empty(model_params_schema()))?;
            }
        }

        let state = ctx.state();
        for q in named::builtin() {
            ctx.register_udtf(&q.name, Arc::new(NamedQueryFunction::new(q)));
            ctx.register_table(q.name.as_str(), plan_named(&state, q, &[])?)?;
        }
        Ok(Analyst {
            ctx,
            events: self.events,
            alerts,
        })
    }
}

/// The `alerts` view: one row per alert id, its first raise. An alert id names an episode
/// (kind, account, episode start); the engine can raise one again after it cleared (a churn
/// risk that crosses its threshold twice in a day, a complaint spike that ends and returns),
/// and webhook receivers keep the first delivery of an id (`Idempotency-Key`): the view shows
/// what they show. Every raise stays in `alert_raises`.
fn one_row_per_alert(store: &SegmentStore) -> Result<Arc<dyn TableProvider>> {
    use datafusion::datasource::provider_as_source;
    use datafusion::logical_expr::LogicalPlanBuilder;
    use datafusion::prelude::col;
    let schema = store.schema();
    let columns = schema.fields().iter().map(|f| col(f.name().as_str())).collect();
    let plan = LogicalPlanBuilder::scan("alert_raises", provider_as_source(store.table()), None)?
        .distinct_on(
            vec![col("alert_id")],
            columns,
            Some(vec![
                col("alert_id").sort(true, false),
                col(ALERT_TIME_COLUMN).sort(true, false),
                col("message").sort(true, false),
            ]),
        )?
        .build()?;
    Ok(Arc::new(datafusion::catalog::view::ViewTable::new(
        plan,
        Some("SELECT DISTINCT ON (alert_id) * FROM alert_raises ORDER BY alert_id, at, message".into()),
    )))
}

/// A read-only analyst session over vigil's tables.
pub struct Analyst {
    ctx: SessionContext,
    events: SegmentStore,
    alerts: SegmentStore,
}

impl std::fmt::Debug for Analyst {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Analyst").field("events", &self.events.dir()).finish()
    }
}

/// Where each table lives in a data directory.
#[derive(Debug, Clone)]
pub struct DataDir {
    pub root: PathBuf,
}

impl DataDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        DataDir { root: root.into() }
    }
    /// Event segments: `<root>/events/*.parquet`.
    pub fn events(&self) -> PathBuf {
        self.root.join("events")
    }
    /// Late event segments: `<root>/late_events/*.parquet`.
    pub fn late_events(&self) -> PathBuf {
        self.root.join("late_events")
    }
    /// Alert segments: `<root>/alerts/*.parquet`.
    pub fn alerts(&self) -> PathBuf {
        self.root.join("alerts")
    }
    /// The accounts file: `<root>/accounts.parquet` or `<root>/accounts.csv`, whichever exists.
    pub fn accounts(&self) -> Option<PathBuf> {
        ["accounts.parquet", "accounts.csv"]
            .iter()
            .map(|f| self.root.join(f))
            .find(|p| p.is_file())
    }
    /// A saved health snapshot: `<root>/health.parquet`.
    pub fn health(&self) -> PathBuf {
        self.root.join("health.parquet")
    }

    /// Saves a health table as `<root>/health.parquet`, atomically (temp file, fsync, rename).
    pub fn save_health(&self, batch: &RecordBatch) -> Result<()> {
        use crate::error::QueryError;
        std::fs::create_dir_all(&self.root).map_err(|e| QueryError::io(&self.root, e))?;
        let tmp = self.root.join(format!(".health.parquet.tmp-{}", std::process::id()));
        {
            let file = std::fs::File::create(&tmp).map_err(|e| QueryError::io(&tmp, e))?;
            let mut w = datafusion::parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None)?;
            w.write(batch)?;
            let file = w.into_inner()?;
            file.sync_all().map_err(|e| QueryError::io(&tmp, e))?;
        }
        std::fs::rename(&tmp, self.health()).map_err(|e| QueryError::io(self.health(), e))?;
        Ok(())
    }
}

impl Analyst {
    /// A builder over the given event store.
    pub fn builder(events: SegmentStore) -> AnalystBuilder {
        AnalystBuilder {
            events,
            late_events: None,
            alerts: None,
            accounts: None,
            health: None,
            models: None,
        }
    }

    /// A session over a data directory (see [`DataDir`]); missing parts are empty tables.
    pub async fn open_data_dir(root: &Path) -> Result<Analyst> {
        let dd = DataDir::new(root);
        let events = SegmentStore::open("events", dd.events(), vigil_engine::schema::event_schema(), "ts")?;
        let alerts = SegmentStore::open("alerts", dd.alerts(), alert_schema(), ALERT_TIME_COLUMN)?;
        let late = SegmentStore::open(
            "late_events",
            dd.late_events(),
            vigil_engine::schema::event_schema(),
            "ts",
        )?;
        let mut b = Analyst::builder(events)
            .alerts(alerts)
            .late_events(late)
            .models(ModelStore::in_data_dir(root));
        if let Some(p) = dd.accounts() {
            b = b.accounts(load_accounts_file(&p).await?);
        }
        let hp = dd.health();
        if hp.is_file() {
            let ctx = SessionContext::new();
            let batches = ctx
                .read_parquet(hp.to_string_lossy().to_string(), ParquetReadOptions::default())
                .await?
                .collect()
                .await?;
            // Parquet readers may hand back view types (Utf8View): cast to the table's types.
            let schema = health_schema();
            let cast = |b: &RecordBatch| {
                crate::cast::cast_to_schema(b, &schema).map_err(|e| {
                    arrow::error::ArrowError::SchemaError(format!(
                        "{e}: the file comes from another version of vigil; `vigil replay` or `vigil run` \
                         writes it again"
                    ))
                })
            };
            let batch = batches
                .iter()
                .map(cast)
                .collect::<std::result::Result<Vec<_>, _>>()
                .and_then(|bs| arrow::compute::concat_batches(&schema, &bs))
                .map_err(|e| QueryError::Schema {
                    table: "health".into(),
                    detail: format!("{}: {e}", hp.display()),
                })?;
            b = b.health(Arc::new(move || Ok(batch.clone())));
        }
        b.build()
    }

    /// The DataFusion session (with every table registered). Running SQL on it directly skips
    /// the read-only guard; use [`Analyst::sql`] for untrusted SQL.
    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    /// The event history store.
    pub fn events(&self) -> &SegmentStore {
        &self.events
    }

    /// The alert history store.
    pub fn alerts(&self) -> &SegmentStore {
        &self.alerts
    }

    /// Plans untrusted SQL (one or more statements) through the read-only guard.
    pub async fn statements(&self, sql: &str) -> Result<Vec<DataFrame>> {
        let statements = readonly::parse_read_only(sql)?;
        let state = self.ctx.state();
        let mut out = Vec::with_capacity(statements.len());
        for s in statements {
            let plan = state.statement_to_plan(s).await?;
            readonly::verify_plan(&plan)?;
            out.push(self.ctx.execute_logical_plan(plan).await?);
        }
        Ok(out)
    }

    /// Plans one untrusted statement through the read-only guard.
    pub async fn sql(&self, sql: &str) -> Result<DataFrame> {
        let mut v = self.statements(sql).await?;
        match v.len() {
            1 => Ok(v.remove(0)),
            n => Err(QueryError::Refused(format!("expected one statement, got {n}"))),
        }
    }

    /// Plans a named query with parameters (`name=value` pairs; defaults for the rest).
    pub async fn named(&self, name: &str, params: &[(String, String)]) -> Result<DataFrame> {
        let q = named::find(name)?;
        let sql = q.render(params)?;
        Ok(self.ctx.sql(&sql).await?)
    }

    /// Runs SQL and collects the batches (convenience for tests and tools).
    pub async fn collect(&self, sql: &str) -> Result<Vec<RecordBatch>> {
        Ok(self.sql(sql).await?.collect().await?)
    }
}
