//! `/metrics`, `/healthz` and `/readyz` over loopback HTTP: exact series values after driving
//! `RunMetrics` and a source's atomics, status codes as readiness and failure change, and
//! graceful shutdown.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use vigil::http::{Health, serve};
use vigil_connectors::metrics::SourceMetrics;
use vigil_engine::InvalidReason;
use vigil_runtime::metrics::RunMetrics;

/// The index of a reason code in `InvalidReason::CODES` (and in `SourceMetrics::invalid`).
fn reason(code: &str) -> usize {
    InvalidReason::CODES
        .iter()
        .position(|c| *c == code)
        .unwrap_or_else(|| panic!("no reason code {code}"))
}

/// The value of one series (the whole text before the value must match), as text.
fn series<'a>(body: &'a str, name: &str) -> &'a str {
    body.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("no series `{name}` in:\n{body}"))
}

async fn get(client: &reqwest::Client, url: String) -> (u16, Option<String>, String) {
    let resp = client.get(url).send().await.expect("request");
    let status = resp.status().as_u16();
    let ctype = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    (status, ctype, resp.text().await.expect("body"))
}

#[tokio::test]
async fn metrics_health_and_readiness_over_http() {
    let metrics = RunMetrics::new();
    let health = Health::new();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let (addr, task) = serve("127.0.0.1:0".parse().unwrap(), metrics.clone(), health.clone(), stop_rx)
        .await
        .expect("binds");
    assert_ne!(addr.port(), 0, "the real port is returned");
    let base = format!("http://{addr}");
    let client = reqwest::Client::new();

    // Before anything happened: not ready, alive, every reason at 0, no checkpoint yet.
    let (status, _, body) = get(&client, format!("{base}/readyz")).await;
    assert_eq!(
        (status, body.as_str()),
        (
            503,
            "{\"reason\":\"no partition assigned and restored now\",\"status\":\"not_ready\"}\n"
        )
    );
    let (status, _, body) = get(&client, format!("{base}/healthz")).await;
    assert_eq!((status, body.as_str()), (200, "{\"status\":\"ok\"}\n"));
    let (_, _, body) = get(&client, format!("{base}/metrics")).await;
    assert_eq!(
        series(&body, "vigil_events_dead_lettered_total{reason=\"unknown_kind\"}"),
        "0"
    );
    assert_eq!(series(&body, "vigil_checkpoint_age_seconds"), "NaN");
    assert_eq!(series(&body, "vigil_events_applied_total"), "0");

    // Drive the source's atomics and the pipeline's metrics.
    let source = Arc::new(SourceMetrics::default());
    metrics.attach_source(source.clone());
    source.messages.fetch_add(10, Ordering::Relaxed);
    source.valid.fetch_add(6, Ordering::Relaxed);
    source.invalid[reason("not_json")].fetch_add(3, Ordering::Relaxed);
    source.invalid[reason("future_ts")].fetch_add(1, Ordering::Relaxed);
    metrics.batch_applied(4, 1, 1, Duration::from_micros(300));
    metrics.batch_applied(2, 0, 0, Duration::from_millis(3));
    metrics.alert_raised("quiet");
    metrics.alert_raised("quiet");
    metrics.alert_raised("churn_risk");
    metrics.alerts_delivered(2);
    metrics.alerts_failed(1);
    metrics.set_partitions(3);
    metrics.set_lag("interactions", 0, 42);
    metrics.set_lag("interactions", 2, 7);
    metrics.checkpoint_written(Instant::now() - Duration::from_secs(5));

    let (status, ctype, body) = get(&client, format!("{base}/metrics")).await;
    assert_eq!(status, 200);
    assert_eq!(
        ctype.as_deref(),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    assert!(body.ends_with("# EOF\n"), "OpenMetrics ends with # EOF:\n{body}");
    assert!(body.contains("# TYPE vigil_events_in counter\n"));
    assert!(body.contains("# TYPE vigil_batch_latency_seconds histogram\n"));
    assert!(body.contains("# UNIT vigil_batch_latency_seconds seconds\n"));
    assert_eq!(series(&body, "vigil_events_in_total"), "10");
    assert_eq!(series(&body, "vigil_events_valid_total"), "6");
    assert_eq!(
        series(&body, "vigil_events_dead_lettered_total{reason=\"not_json\"}"),
        "3"
    );
    assert_eq!(
        series(&body, "vigil_events_dead_lettered_total{reason=\"future_ts\"}"),
        "1"
    );
    assert_eq!(
        series(&body, "vigil_events_dead_lettered_total{reason=\"bad_length\"}"),
        "0"
    );
    assert_eq!(series(&body, "vigil_events_applied_total"), "6");
    assert_eq!(series(&body, "vigil_events_late_total"), "1");
    assert_eq!(series(&body, "vigil_events_duplicate_total"), "1");
    assert_eq!(series(&body, "vigil_batch_latency_seconds_count"), "2");
    let sum: f64 = series(&body, "vigil_batch_latency_seconds_sum").parse().unwrap();
    assert!((sum - 0.0033).abs() < 1e-9, "latency sum {sum}");
    // Exponential buckets from 0.5 ms: 0.3 ms falls in the first, 3 ms from the 4 ms one on.
    assert_eq!(series(&body, "vigil_batch_latency_seconds_bucket{le=\"0.0005\"}"), "1");
    assert_eq!(series(&body, "vigil_batch_latency_seconds_bucket{le=\"0.002\"}"), "1");
    assert_eq!(series(&body, "vigil_batch_latency_seconds_bucket{le=\"0.004\"}"), "2");
    assert_eq!(series(&body, "vigil_batch_latency_seconds_bucket{le=\"+Inf\"}"), "2");
    assert_eq!(series(&body, "vigil_alerts_raised_total{kind=\"quiet\"}"), "2");
    assert_eq!(series(&body, "vigil_alerts_raised_total{kind=\"churn_risk\"}"), "1");
    assert_eq!(series(&body, "vigil_alerts_delivered_total"), "2");
    assert_eq!(series(&body, "vigil_alerts_failed_total"), "1");
    assert_eq!(series(&body, "vigil_partitions_assigned"), "3");
    assert_eq!(
        series(&body, "vigil_consumer_lag{topic=\"interactions\",partition=\"0\"}"),
        "42"
    );
    assert_eq!(
        series(&body, "vigil_consumer_lag{topic=\"interactions\",partition=\"2\"}"),
        "7"
    );
    assert_eq!(series(&body, "vigil_checkpoints_written_total"), "1");
    let age: f64 = series(&body, "vigil_checkpoint_age_seconds").parse().unwrap();
    assert!((5.0..120.0).contains(&age), "checkpoint age {age}");

    // The source counts on; the next scrape shows its new totals, not a second copy.
    source.messages.fetch_add(5, Ordering::Relaxed);
    source.invalid[reason("not_json")].fetch_add(1, Ordering::Relaxed);
    let (_, _, body) = get(&client, format!("{base}/metrics")).await;
    assert_eq!(series(&body, "vigil_events_in_total"), "15");
    assert_eq!(
        series(&body, "vigil_events_dead_lettered_total{reason=\"not_json\"}"),
        "4"
    );
    assert_eq!(series(&body, "vigil_events_valid_total"), "6");

    // Ready, then failed: both endpoints report the failure.
    health.set_ready(true);
    let (status, _, body) = get(&client, format!("{base}/readyz")).await;
    assert_eq!((status, body.as_str()), (200, "{\"status\":\"ready\"}\n"));
    // Stalled (nothing read for a while): 503 with the reason, and back once it clears.
    health.set_stalled(Some("nothing read for 31 s while 500 messages behind".into()));
    for path in ["healthz", "readyz"] {
        let (status, _, body) = get(&client, format!("{base}/{path}")).await;
        assert_eq!(
            (status, body.as_str()),
            (
                503,
                "{\"reason\":\"nothing read for 31 s while 500 messages behind\",\"status\":\"stalled\"}\n"
            )
        );
    }
    health.set_stalled(None);
    let (status, _, _) = get(&client, format!("{base}/healthz")).await;
    assert_eq!(status, 200);
    health.set_failed("scoring core lock poisoned");
    let (status, _, body) = get(&client, format!("{base}/healthz")).await;
    assert_eq!(status, 503);
    assert_eq!(
        body,
        "{\"reason\":\"scoring core lock poisoned\",\"status\":\"failed\"}\n"
    );
    let (status, _, _) = get(&client, format!("{base}/readyz")).await;
    assert_eq!(status, 503);
    let (status, _, _) = get(&client, format!("{base}/nope")).await;
    assert_eq!(status, 404);

    // Graceful shutdown: the task ends and the port stops answering.
    stop_tx.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("server stops on `stop`")
        .expect("server task");
    let after = reqwest::Client::new()
        .get(format!("{base}/healthz"))
        .timeout(Duration::from_secs(2))
        .send()
        .await;
    assert!(after.is_err(), "no server after shutdown: {after:?}");
}

#[tokio::test]
async fn dropping_the_stop_sender_stops_the_server_and_a_busy_port_is_an_error() {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let (addr, task) = serve(
        "127.0.0.1:0".parse().unwrap(),
        RunMetrics::new(),
        Health::new(),
        stop_rx.clone(),
    )
    .await
    .expect("binds");
    let err = serve(addr, RunMetrics::new(), Health::new(), stop_rx)
        .await
        .expect_err("the port is taken");
    assert!(format!("{err:#}").contains(&addr.to_string()), "{err:#}");
    drop(stop_tx);
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("server stops when the sender is dropped")
        .expect("server task");
}
