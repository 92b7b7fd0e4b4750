//! The analyst tables over a running pipeline: `events`, `late_events` and `alerts` history and
//! the `models` fits under the data directory, `accounts` from the configuration, `health` read from the partitions at each query
//! (each partition's table as of a moment between two of its steps; no writer waits on a lock).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use vigil_queries::postgres::{AuthMethod, Credentials, PgServer, ResultLimits, TlsFiles};

use vigil_engine::scoring::{AccountInfo, alert_schema};
use vigil_queries::accounts::{Account, accounts_table};
use vigil_queries::models::ModelStore;
use vigil_queries::{Analyst, SegmentStore};

use crate::partitions::Partitions;

/// The live tables and the analyst session over them.
#[derive(Debug, Clone)]
pub struct LiveTables {
    pub analyst: Arc<Analyst>,
    pub events: SegmentStore,
    pub late_events: SegmentStore,
    pub alerts: SegmentStore,
    /// The population model fits (`<data_dir>/models.jsonl`, the `models` table).
    pub models: ModelStore,
}

/// The accounts dimension as the `accounts` table shows it.
pub fn account_rows(accounts: &[AccountInfo]) -> Vec<Account> {
    accounts
        .iter()
        .map(|a| Account {
            account_id: a.account_id.clone(),
            name: a.name.clone(),
            tier: a.tier.as_str().to_string(),
            arr: a.arr,
            owner: a.owner.clone(),
            segment: a.segment.clone(),
        })
        .collect()
}

impl LiveTables {
    /// Opens (or creates) the history under `data_dir` and builds the session.
    pub fn open(data_dir: &Path, accounts: &[AccountInfo], parts: Partitions) -> crate::Result<LiveTables> {
        let event_store =
            |name: &str| SegmentStore::open(name, data_dir.join(name), vigil_engine::schema::event_schema(), "ts");
        let events = event_store("events")?;
        let late_events = event_store("late_events")?;
        let alerts = SegmentStore::open(
            "alerts",
            data_dir.join("alerts"),
            alert_schema(),
            vigil_queries::live::ALERT_TIME_COLUMN,
        )?;
        let models = ModelStore::in_data_dir(data_dir);
        let analyst = Analyst::builder(events.clone())
            .models(models.clone())
            .late_events(late_events.clone())
            .alerts(alerts.clone())
            .accounts(accounts_table(&account_rows(accounts))?)
            .health(Arc::new(move || {
                parts
                    .health_batch()
                    .map_err(|e| vigil_queries::datafusion::error::DataFusionError::Execution(e.to_string()))
            }))
            .build()?;
        Ok(LiveTables {
            analyst: Arc::new(analyst),
            events,
            late_events,
            alerts,
            models,
        })
    }
}

/// Binds the analyst SQL server on `listen` and serves until `stop` turns true (or its sender
/// is dropped). Returns the bound address and the serving task.
pub async fn start_sql_server(
    listen: SocketAddr,
    analyst: Arc<Analyst>,
    creds: Credentials,
    method: AuthMethod,
    tls: Option<&TlsFiles>,
    limits: ResultLimits,
    mut stop: watch::Receiver<bool>,
) -> vigil_queries::Result<(SocketAddr, JoinHandle<()>)> {
    let mut server = PgServer::bind(listen, &analyst, creds, method)
        .await?
        .with_limits(limits);
    if let Some(files) = tls {
        server = server.with_tls(files)?;
    }
    let addr = server.local_addr()?;
    let task = tokio::spawn(async move {
        let stopped = async move { while stop.changed().await.is_ok() && !*stop.borrow() {} };
        if let Err(e) = server.run(stopped).await {
            tracing::error!(error = %e, "SQL server stopped");
        }
    });
    Ok((addr, task))
}
