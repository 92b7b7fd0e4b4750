//! End to end against the real broker: `vigil run` as a process with a webhook hook (a real
//! HTTP receiver on loopback), a SQL rule and the analyst SQL server. A key account with a
//! daily cadence goes silent while other accounts keep flowing: the receiver gets one signed
//! `quiet` alert within 1 s of the deadline, then one `recovered` after the account's next
//! event; a rule raises and resolves as its rows appear and disappear; psql joins `health`
//! with `accounts` over the live state.

#[path = "../../connectors/tests/hooks/receiver.rs"]
#[allow(dead_code)]
mod receiver;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use vigil_engine::{Event, EventKind};
use vigil_testkit::{broker, unique_name};

const SECRET: &str = "whsec_e2e_0123456789";
const DAY: i64 = 86_400_000;

fn wall_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_millis() as i64
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn psql(port: u16, password: &str, sql: &str) -> std::process::Output {
    Command::new("psql")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "vigil", "-d", "vigil"])
        .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .env("PGPASSWORD", password)
        .env("PGCONNECT_TIMEOUT", "10")
        .output()
        .expect("psql runs")
}

#[test]
fn quiet_key_account_reaches_the_webhook_within_a_second_then_recovers() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let recv = rt.block_on(receiver::start(SECRET, "127.0.0.1:0"));
    let b = broker();
    let topic = unique_name("e2e");
    let group = unique_name("group");
    b.create_topic(&topic, 2);
    let data = tempfile::tempdir().expect("data dir");
    let pg_port = free_port();

    // The key account interacted daily; its last interaction puts the quiet deadline (3 × the
    // learned 1-day gap) 25 s from now.
    let t0 = wall_ms();
    let deadline_ms = t0 + 25_000;
    let last = deadline_ms - 3 * DAY;
    let mut history: Vec<Event> = (0..8)
        .map(|j| {
            Event::new(
                format!("key-{j}"),
                "key-acct",
                last - (7 - j) * DAY,
                EventKind::Activity,
            )
        })
        .collect();
    // An account with an open complaint: the rule matches it until the complaint is resolved.
    history.push(Event::new("c-1", "bg-complainer", t0 - DAY, EventKind::Complaint));
    b.produce(
        &topic,
        "none",
        history
            .iter()
            .map(|e| (Some(e.account_id.clone().into_bytes()), e.to_json().into_bytes())),
    );

    let config = data.path().join("vigil.toml");
    std::fs::write(
        &config,
        format!(
            r#"
data_dir = "{data}"
tick_ms = 50

[scoring]
lateness_days = 30

[[accounts]]
account_id = "key-acct"
name = "Key Account Inc"
tier = "key"
arr = 250000

[[hooks]]
name = "owners"
type = "webhook"
url = "{url}"
secret = "{SECRET}"
kinds = ["quiet", "recovered", "rule"]

[[rules]]
name = "open_complaint"
sql = "SELECT account_id FROM health WHERE open_complaints > 0"
interval_ms = 200
"#,
            data = data.path().display(),
            url = recv.url(),
        ),
    )
    .expect("write config");

    let mut child = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["run", "--config"])
        .arg(&config)
        .env("VIGIL_SOURCE__BROKERS", &b.bootstrap)
        .env("VIGIL_SOURCE__TOPICS", format!("[\"{topic}\"]"))
        .env("VIGIL_SOURCE__GROUP_ID", &group)
        .env("VIGIL_SOURCE__DEAD_LETTER_TOPIC", format!("{topic}.dlq"))
        .env("VIGIL_SOURCE__MAX_LINGER_MS", "20")
        .env("VIGIL_SQL__PASSWORD", "s3cret-pg")
        .env("VIGIL_HTTP__LISTEN", "127.0.0.1:0")
        .env("VIGIL_SQL__LISTEN", format!("127.0.0.1:{pg_port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("vigil run starts");

    // Other accounts keep flowing, with event time = wall time.
    let stop = Arc::new(AtomicBool::new(false));
    let bg = {
        let stop = stop.clone();
        let bootstrap = b.bootstrap.clone();
        let topic = topic.clone();
        std::thread::spawn(move || {
            let producer = vigil_connectors::kafka::MessageProducer::new(&bootstrap, &topic).expect("producer");
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                for _ in 0..20 {
                    let e = Event::new(
                        format!("bg-{i}"),
                        format!("bg-{}", i % 50),
                        wall_ms(),
                        EventKind::Activity,
                    );
                    producer
                        .send(e.account_id.as_bytes(), e.to_json().as_bytes())
                        .expect("send");
                    i += 1;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            producer.flush(Duration::from_secs(10)).expect("flush");
        })
    };

    // The rule raises for the complaining account.
    let rule_raised = "rule/open_complaint/bg-complainer";
    wait_for("the rule alert", Duration::from_secs(60), || {
        recv.accepted().keys().any(|k| k.starts_with(rule_raised))
    });

    // psql over the live state: the health of the key account, joined with the accounts table.
    wait_for("the SQL server", Duration::from_secs(30), || {
        psql(pg_port, "s3cret-pg", "SELECT 1").status.success()
    });
    let out = psql(
        pg_port,
        "s3cret-pg",
        "SELECT h.account_id, a.name, a.tier, h.cadence_days FROM health h JOIN accounts a USING (account_id)",
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rows = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(rows.trim(), "key-acct|Key Account Inc|key|1.0", "{rows}");
    let wrong = psql(pg_port, "wrong", "SELECT 1");
    assert!(!wrong.status.success(), "a wrong password is refused");

    // The quiet alert: one, within 1 s of the deadline.
    wait_for("the quiet alert", Duration::from_secs(90), || {
        recv.accepted().keys().any(|k| k.starts_with("quiet/key-acct/"))
    });
    let quiet: Vec<_> = recv
        .seen()
        .into_iter()
        .filter(|s| s.key.starts_with("quiet/key-acct/") && s.outcome == "accepted")
        .collect();
    assert_eq!(quiet.len(), 1, "exactly one quiet delivery");
    let received_ms = wall_ms() - quiet[0].at.elapsed().as_millis() as i64;
    let body: serde_json::Value = serde_json::from_slice(&quiet[0].body).expect("JSON body");
    let late_ms = received_ms - deadline_ms;
    eprintln!("quiet alert received {late_ms} ms after the deadline; body {body}");
    assert!(late_ms >= -50, "not before the deadline: {late_ms} ms");
    assert!(late_ms <= 1_000, "received {late_ms} ms after the deadline");
    assert_eq!(
        quiet[0].key,
        format!("quiet/key-acct/{last}"),
        "id = kind/account/episode start"
    );

    // The account interacts again: one `recovered`. The complaint is resolved: the rule resolves.
    let back = [
        Event::new("key-back", "key-acct", wall_ms(), EventKind::Activity),
        Event::new("c-1-done", "bg-complainer", wall_ms(), EventKind::ComplaintResolved),
    ];
    b.produce(
        &topic,
        "none",
        back.iter()
            .map(|e| (Some(e.account_id.clone().into_bytes()), e.to_json().into_bytes())),
    );
    wait_for(
        "the recovered notice and the rule's resolution",
        Duration::from_secs(60),
        || {
            let accepted = recv.accepted();
            accepted.keys().any(|k| k.starts_with("recovered/key-acct/"))
                && recv.seen().iter().any(|s| {
                    s.key.starts_with(rule_raised) && s.outcome == "accepted" && {
                        let v: serde_json::Value = serde_json::from_slice(&s.body).unwrap_or_default();
                        v["status"] == "resolved"
                    }
                })
        },
    );
    stop.store(true, Ordering::Relaxed);
    bg.join().expect("background producer");
    std::thread::sleep(Duration::from_millis(500));

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    assert!(child.wait().expect("wait").success());

    // Exactly one accepted delivery per alert id, and nothing rejected.
    let accepted = recv.accepted();
    assert!(accepted.values().all(|&n| n == 1), "{accepted:?}");
    assert_eq!(recv.count("rejected"), 0);
    assert_eq!(
        accepted.keys().filter(|k| k.starts_with("quiet/key-acct/")).count(),
        1,
        "{accepted:?}"
    );
    assert_eq!(
        accepted.keys().filter(|k| k.starts_with("recovered/key-acct/")).count(),
        1,
        "{accepted:?}"
    );
    // The alert history is kept for SQL.
    assert!(data.path().join("alerts").read_dir().expect("alerts dir").count() > 0);
}
