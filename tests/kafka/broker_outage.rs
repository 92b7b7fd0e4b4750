//! A broker outage mid-stream: the broker is stopped for 30 s while events keep being produced
//! (the producer buffers them) and `vigil run` keeps running; `/healthz` turns 503 (stalled)
//! during the outage and 200 again after it; after the broker is back, vigil recovers by
//! itself, loses nothing and counts nothing twice: its final state equals a run over the same
//! stream without an outage.

use std::time::Duration;

use vigil_testkit::{RestartableBroker, unique_name};

use crate::vigil_proc::{
    DumpLogOnPanic, RunSpec, bad_among, free_port, health_csv, http_get, message, progress, terminate, wait_for_http,
    wait_for_messages,
};

/// A private broker (these tests stop it) with a topic of `partitions` and its dead-letter
/// topic, a temporary directory, and a `vigil run` over them named `name`.
fn private_broker_run(name: &str, partitions: i32) -> (RestartableBroker, tempfile::TempDir, RunSpec) {
    let broker = RestartableBroker::start_new().unwrap_or_else(|e| panic!("private broker: {e}"));
    let b = broker.client();
    let topic = unique_name(name);
    b.create_topic(&topic, partitions);
    b.create_topic(&format!("{topic}.dlq"), 1);
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = RunSpec {
        bootstrap: broker.bootstrap.clone(),
        topic,
        group: unique_name("group"),
        data_dir: dir.path().join(name),
        checkpoint_dir: dir.path().join(format!("{name}-checkpoints")),
        instance: None,
    };
    (broker, dir, spec)
}

/// The health table of a run over `spec`'s stream of `n` messages without an outage (a new
/// group, its own directories under `dir`).
fn calm_health(spec: &RunSpec, dir: &std::path::Path, n: usize) -> String {
    let calm = RunSpec {
        group: unique_name("calm"),
        data_dir: dir.join("calm"),
        checkpoint_dir: dir.join("calm-checkpoints"),
        ..spec.clone()
    };
    let mut child = calm.start();
    wait_for_messages(&calm.checkpoint_dir, n as u64, Duration::from_secs(120), &mut child);
    terminate(child);
    health_csv(&calm.data_dir)
}

#[test]
fn broker_down_30s_mid_stream_then_no_loss_and_same_state() {
    const N: usize = 120_000;
    const ACCOUNTS: usize = 2_000;
    let (mut broker, dir, spec) = private_broker_run("outage", 4);
    let (b, topic) = (broker.client(), spec.topic.clone());
    let half = N / 2;
    b.produce(&topic, "lz4", (0..half).map(|i| message(i, ACCOUNTS)));
    // The group's state machine goes to a file, printed if the test fails: the rejoin after the
    // outage is what this test is about.
    let log = dir.path().join("outage.log");
    let _dump = DumpLogOnPanic(log.clone());
    let http_port = free_port();
    // Stalled once the consumer group has not been up for 3 s (librdkafka's statistics, every
    // 5 s, say so).
    let mut child = spec.start_logged_with_http(&log, http_port, 3_000, &[]);
    wait_for_messages(
        &spec.checkpoint_dir,
        half as u64 / 2,
        Duration::from_secs(120),
        &mut child,
    );

    wait_for_http(http_port, "/readyz", "HTTP/1.1 200", Duration::from_secs(30));
    // The broker goes away mid-stream for 30 s; vigil keeps running and says it is stalled.
    let outage = std::time::Instant::now();
    broker.stop();
    let red = wait_for_http(http_port, "/healthz", "HTTP/1.1 503", Duration::from_secs(25));
    assert!(red.contains("\"status\":\"stalled\""), "{red}");
    eprintln!("/healthz 503 after {:.1} s of outage", outage.elapsed().as_secs_f64());
    std::thread::sleep(Duration::from_secs(30).saturating_sub(outage.elapsed()));
    assert!(
        child.try_wait().expect("try_wait").is_none(),
        "vigil run must ride through a broker outage"
    );
    broker.start().unwrap_or_else(|e| panic!("broker restart: {e}"));
    b.produce(&topic, "lz4", (half..N).map(|i| message(i, ACCOUNTS)));
    wait_for_messages(&spec.checkpoint_dir, N as u64, Duration::from_secs(180), &mut child);
    wait_for_http(http_port, "/healthz", "HTTP/1.1 200", Duration::from_secs(30));
    terminate(child);

    let p = progress(&spec.checkpoint_dir);
    assert_eq!(p.messages, N as u64, "no message lost or counted twice");
    assert_eq!(p.dead_lettered, bad_among(N));
    assert_eq!(p.duplicates, 0);

    let expected = calm_health(&spec, dir.path(), N);
    assert_eq!(expected.lines().count(), ACCOUNTS + 1);
    assert!(
        expected == health_csv(&spec.data_dir),
        "the health table after the outage differs from the calm run"
    );
}

/// The watchdog: with the broker gone longer than `[source] rebuild_after_ms`, the source
/// replaces its consumer (counted in `vigil_consumer_rebuilds_total`); the replacement takes the
/// partitions back once the broker returns, and nothing is lost or counted twice.
#[test]
fn a_consumer_stalled_past_the_watchdog_bound_is_replaced_and_resumes() {
    const N: usize = 20_000;
    const ACCOUNTS: usize = 500;
    let (mut broker, dir, spec) = private_broker_run("wedged", 2);
    let (b, topic) = (broker.client(), spec.topic.clone());
    let half = N / 2;
    b.produce(&topic, "lz4", (0..half).map(|i| message(i, ACCOUNTS)));
    let log = dir.path().join("wedged.log");
    let _dump = DumpLogOnPanic(log.clone());
    let http_port = free_port();
    let mut child = spec.start_logged_with_http(&log, http_port, 3_000, &[("VIGIL_SOURCE__REBUILD_AFTER_MS", "4000")]);
    wait_for_messages(&spec.checkpoint_dir, half as u64, Duration::from_secs(120), &mut child);
    assert_eq!(rebuilds(http_port), 0, "no replacement while the consumer works");

    broker.stop();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while rebuilds(http_port) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the watchdog never replaced the stalled consumer"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    broker.start().unwrap_or_else(|e| panic!("broker restart: {e}"));
    b.produce(&topic, "lz4", (half..N).map(|i| message(i, ACCOUNTS)));
    wait_for_messages(&spec.checkpoint_dir, N as u64, Duration::from_secs(180), &mut child);
    wait_for_http(http_port, "/healthz", "HTTP/1.1 200", Duration::from_secs(30));
    terminate(child);
    let p = progress(&spec.checkpoint_dir);
    assert_eq!(p.messages, N as u64, "no message lost or counted twice");
    assert_eq!(p.duplicates, 0);

    assert!(
        calm_health(&spec, dir.path(), N) == health_csv(&spec.data_dir),
        "the health table after the replacement differs from the calm run"
    );
}

/// `vigil_consumer_rebuilds_total` from the process's `/metrics`.
fn rebuilds(port: u16) -> u64 {
    let metrics = http_get(port, "/metrics");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("vigil_consumer_rebuilds_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no vigil_consumer_rebuilds_total in /metrics:\n{metrics}"))
}
