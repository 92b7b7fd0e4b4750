//! The operations HTTP endpoint: `GET /metrics` (Prometheus, OpenMetrics text), `GET /healthz`
//! (200 `{"status":"ok"}`; 503 with a JSON `status` and `reason` when the run has failed or its
//! source is stalled) and `GET /readyz` (200 while partitions are assigned and restored, 503
//! otherwise).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use vigil_runtime::metrics::{CONTENT_TYPE, RunMetrics};

/// Liveness and readiness of a run, as `/healthz` and `/readyz` report them.
#[derive(Debug, Default)]
pub struct Health {
    ready: AtomicBool,
    failed: Mutex<Option<String>>,
    /// Why the source is stalled now (clears when it recovers).
    stalled: Mutex<Option<String>>,
}

impl Health {
    /// Not ready, not failed.
    pub fn new() -> Arc<Health> {
        Arc::new(Health::default())
    }

    /// Marks the run ready (or not ready any more, e.g. while shutting down).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    /// Marks the run failed: `/healthz` and `/readyz` answer 503 with `msg` from now on.
    pub fn set_failed(&self, msg: impl Into<String>) {
        *self.failed.lock().unwrap_or_else(|e| e.into_inner()) = Some(msg.into());
    }

    /// Sets or clears the reason the source is stalled.
    pub fn set_stalled(&self, why: Option<String>) {
        *self.stalled.lock().unwrap_or_else(|e| e.into_inner()) = why;
    }

    /// Why the pipeline is unhealthy now: `("failed", reason)` for good, `("stalled", reason)`
    /// until it recovers.
    pub fn problem(&self) -> Option<(&'static str, String)> {
        if let Some(f) = self.failure() {
            return Some(("failed", f));
        }
        let stalled = self.stalled.lock().unwrap_or_else(|e| e.into_inner()).clone();
        stalled.map(|s| ("stalled", s))
    }

    /// Whether `set_ready(true)` was called last (a failure does not change it).
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// The failure message, if the run failed.
    pub fn failure(&self) -> Option<String> {
        self.failed.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

#[derive(Clone)]
struct AppState {
    metrics: Arc<RunMetrics>,
    health: Arc<Health>,
}

async fn metrics(State(s): State<AppState>) -> Response {
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], s.metrics.encode()).into_response()
}

/// A JSON status body.
fn status(code: StatusCode, status: &str, reason: Option<&str>) -> Response {
    let body = match reason {
        Some(r) => serde_json::json!({ "status": status, "reason": r }),
        None => serde_json::json!({ "status": status }),
    };
    (code, [(header::CONTENT_TYPE, "application/json")], format!("{body}\n")).into_response()
}

async fn healthz(State(s): State<AppState>) -> Response {
    match s.health.problem() {
        None => status(StatusCode::OK, "ok", None),
        Some((kind, why)) => status(StatusCode::SERVICE_UNAVAILABLE, kind, Some(&why)),
    }
}

async fn readyz(State(s): State<AppState>) -> Response {
    match s.health.problem() {
        Some((kind, why)) => status(StatusCode::SERVICE_UNAVAILABLE, kind, Some(&why)),
        None if s.health.is_ready() => status(StatusCode::OK, "ready", None),
        None => status(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            Some("no partition assigned and restored now"),
        ),
    }
}

/// The endpoint's routes.
pub fn router(metrics: Arc<RunMetrics>, health: Arc<Health>) -> Router {
    Router::new()
        .route("/metrics", get(self::metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(AppState { metrics, health })
}

/// Binds `listen` (port 0: any free port) and serves the endpoints until `stop` turns true or
/// its sender is dropped; requests in progress then finish (graceful shutdown). Returns the
/// bound address and the serving task.
pub async fn serve(
    listen: SocketAddr,
    metrics: Arc<RunMetrics>,
    health: Arc<Health>,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<(SocketAddr, JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding the metrics endpoint on {listen}"))?;
    let addr = listener.local_addr()?;
    let app = router(metrics, health);
    let task = tokio::spawn(async move {
        let stopped = async move {
            loop {
                if *stop.borrow_and_update() {
                    return;
                }
                if stop.changed().await.is_err() {
                    return;
                }
            }
        };
        if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(stopped).await {
            tracing::error!(error = %e, "metrics endpoint stopped");
        }
    });
    Ok((addr, task))
}
