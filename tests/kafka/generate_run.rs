//! A new user's first pipeline: `vigil generate` fills a topic with 90 days of history, then
//! `vigil run` with default settings (wall clock, default lateness) reads the backlog: no event
//! is late, and the key account `acme-corp`, silent since day 60, is flagged quiet.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use vigil_testkit::{broker, unique_name};

use crate::vigil_proc::{progress, terminate};

#[test]
fn generate_then_run_with_defaults_counts_nothing_late_and_flags_acme_corp() {
    let b = broker();
    let topic = unique_name("generated");
    b.create_topic(&topic, 4);
    b.create_topic(&format!("{topic}.dlq"), 1);
    let dir = tempfile::tempdir().expect("tempdir");
    let accounts = dir.path().join("accounts.toml");
    let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["generate", "--brokers", &b.bootstrap, "--topic", &topic])
        .args(["--accounts", "300", "--replay-secs", "2", "--accounts-out"])
        .arg(&accounts)
        .env_remove("VIGIL_SOURCE__BROKERS")
        .output()
        .expect("vigil generate runs");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "vigil generate: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // "vigil generate: produced N events and M invalid messages"
    let produced: Vec<u64> = stdout
        .lines()
        .find(|l| l.contains("produced"))
        .expect("a produced line")
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    let (events, invalid) = (produced[0], produced[1]);
    assert!(events > 10_000, "{stdout}");

    // `vigil run` as the README and docker-compose run it: only where to read and write.
    let data = dir.path().join("data");
    let mut child = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["run", "--config"])
        .arg(&accounts)
        .env("VIGIL_SOURCE__BROKERS", &b.bootstrap)
        .env("VIGIL_SOURCE__TOPICS", format!("[\"{topic}\"]"))
        .env("VIGIL_SOURCE__GROUP_ID", unique_name("generated-group"))
        .env("VIGIL_SOURCE__DEAD_LETTER_TOPIC", format!("{topic}.dlq"))
        .env("VIGIL_DATA_DIR", &data)
        .env("VIGIL_HTTP__LISTEN", "127.0.0.1:0")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("vigil run starts");
    let (tx, lines) = mpsc::channel();
    let reader = BufReader::new(child.stdout.take().expect("stdout"));
    std::thread::spawn(move || {
        for line in reader.lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut quiet = None;
    let mut alerts = 0;
    while quiet.is_none() {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "acme-corp was not flagged; {alerts} alerts seen");
        let Ok(line) = lines.recv_timeout(left) else { continue };
        let Ok(alert) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        alerts += 1;
        if alert["kind"] == "quiet" && alert["account_id"] == "acme-corp" {
            quiet = Some(alert);
        }
    }
    let checkpoints = data.join("checkpoints");
    crate::vigil_proc::wait_for_messages(&checkpoints, events + invalid, Duration::from_secs(120), &mut child);
    terminate(child);
    let p = progress(&checkpoints);
    assert_eq!(p.messages, events + invalid, "every message read once");
    assert_eq!(p.dead_lettered, invalid);
    assert_eq!(p.late, 0, "catching up on a backlog makes nothing late");
    assert_eq!(p.applied + p.duplicates, events);
    let quiet = quiet.expect("found");
    assert_eq!(quiet["tier"], "key", "{quiet}");
}
