//! `vigil run` as a process against the real broker: consumes, emits alerts as JSON lines,
//! and on SIGTERM finishes in-flight work, commits and exits 0.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use vigil_engine::{Event, EventKind};
use vigil_testkit::{broker, unique_name};

use crate::vigil_proc::http_get;

#[test]
fn run_consumes_alerts_and_stops_cleanly_on_sigterm() {
    const N: usize = 3_000;
    let b = broker();
    let topic = unique_name("run");
    let group = unique_name("group");
    // Four partitions on two scoring threads: each thread holds two and applies batches.
    b.create_topic(&topic, 4);
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_millis() as i64;
    let day = 86_400_000;
    // A key account that interacted daily (lateness raised to 30 days for its history) and has
    // been silent for 4 days: past 3 × its learned gap (floored at 1 day). Background traffic
    // from other accounts.
    let mut events: Vec<Event> = (0..6)
        .map(|k| {
            Event::new(
                format!("key-{k}"),
                "key-acct",
                now - 9 * day + k * day,
                EventKind::Activity,
            )
        })
        .collect();
    events.extend((0..N - events.len()).map(|i| {
        Event::new(
            format!("bg-{i}"),
            format!("bg-{}", i % 40),
            now - (i as i64 % 5) * day,
            EventKind::Activity,
        )
    }));
    b.produce(
        &topic,
        "none",
        events
            .iter()
            .map(|e| (Some(e.account_id.clone().into_bytes()), e.to_json().into_bytes())),
    );
    let config = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(
        config.path(),
        "[[accounts]]\naccount_id = \"key-acct\"\ntier = \"key\"\narr = 250000\n",
    )
    .expect("write config");
    let data = tempfile::tempdir().expect("data dir");
    let http_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["run", "--config"])
        .arg(config.path())
        .env("VIGIL_DATA_DIR", data.path())
        .env("VIGIL_HTTP__LISTEN", format!("127.0.0.1:{http_port}"))
        .env("VIGIL_SCORING__LATENESS_DAYS", "30")
        .env("VIGIL_WORKERS", "2")
        .env("VIGIL_SOURCE__BROKERS", &b.bootstrap)
        .env("VIGIL_SOURCE__TOPICS", format!("[\"{topic}\"]"))
        .env("VIGIL_SOURCE__GROUP_ID", &group)
        .env("VIGIL_SOURCE__DEAD_LETTER_TOPIC", format!("{topic}.dlq"))
        .env("VIGIL_SOURCE__COMMIT_INTERVAL_MS", "200")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("vigil run starts");
    let stdout = child.stdout.take().expect("stdout");
    let lines = std::thread::spawn(move || BufReader::new(stdout).lines().map_while(Result::ok).collect::<Vec<_>>());

    let deadline = Instant::now() + Duration::from_secs(90);
    while b.committed(&group, &topic, 4).values().sum::<i64>() < N as i64 {
        assert!(
            Instant::now() < deadline,
            "vigil run did not commit all {N} events in time"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    // Offsets are committed only after a checkpoint covers them; the endpoints say so.
    let metrics = http_get(http_port, "/metrics");
    assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
    for series in [
        format!("vigil_events_in_total {N}"),
        format!("vigil_events_valid_total {N}"),
        format!("vigil_events_applied_total {N}"),
        "vigil_events_duplicate_total 0".to_string(),
        "vigil_events_dead_lettered_total{reason=\"not_json\"} 0".to_string(),
        "vigil_partitions_assigned 4".to_string(),
        "vigil_worker_partitions{worker=\"0\"} 2".to_string(),
        "vigil_worker_partitions{worker=\"1\"} 2".to_string(),
    ] {
        assert!(
            metrics.lines().any(|l| l == series),
            "missing `{series}` in:\n{metrics}"
        );
    }
    let written = metrics
        .lines()
        .find_map(|l| l.strip_prefix("vigil_checkpoints_written_total "))
        .and_then(|v| v.parse::<u64>().ok())
        .expect("checkpoints counter");
    assert!(written >= 1, "a checkpoint preceded the commit");
    for worker in 0..2 {
        let series = |name: &str| -> f64 {
            let prefix = format!("{name}{{worker=\"{worker}\"}} ");
            metrics
                .lines()
                .find_map(|l| l.strip_prefix(prefix.as_str()))
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("missing `{prefix}` in:\n{metrics}"))
        };
        assert!(
            series("vigil_worker_batches") >= 1.0,
            "scoring thread {worker} applied batches"
        );
        assert!(
            series("vigil_worker_busy_seconds") > 0.0,
            "scoring thread {worker} was busy"
        );
    }
    assert!(http_get(http_port, "/readyz").starts_with("HTTP/1.1 200"));
    assert!(http_get(http_port, "/healthz").starts_with("HTTP/1.1 200"));
    crate::vigil_proc::terminate(child);
    let alerts: Vec<serde_json::Value> = lines
        .join()
        .expect("stdout reader")
        .iter()
        .map(|l| serde_json::from_str(l).expect("alerts are JSON lines"))
        .collect();
    let quiet: Vec<_> = alerts
        .iter()
        .filter(|a| a["kind"] == "quiet" && a["account_id"] == "key-acct")
        .collect();
    assert_eq!(quiet.len(), 1, "one quiet alert for the silent key account: {alerts:?}");
    assert_eq!(b.committed(&group, &topic, 4).values().sum::<i64>(), N as i64);
}
