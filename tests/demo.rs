//! `vigil demo --duration 60` as a newcomer runs it: nothing installed but the binary (the
//! embedded broker is librdkafka's mock cluster). It prints alerts, including `quiet` for the
//! key account that goes silent, and its SQL server answers the real psql while it runs.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use vigil::demo::generator::QUIET_ACCOUNT;

fn psql(port: u16, sql: &str) -> std::process::Output {
    Command::new("psql")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "vigil", "-d", "vigil"])
        .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .env("PGPASSWORD", "vigil")
        .env("PGCONNECT_TIMEOUT", "10")
        .output()
        .expect("psql runs (postgresql-client)")
}

#[test]
fn demo_for_60s_alerts_on_the_quiet_key_account_and_answers_psql() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["demo", "--duration", "60", "--sql-port", &port.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("vigil demo starts");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut lines = Vec::new();
    // The psql command is printed once the server listens; then psql must get answers while
    // the demo runs.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !lines.iter().any(|l: &String| l.contains("psql -h")) {
        assert!(Instant::now() < deadline, "no psql command printed: {lines:?}");
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(200)) {
            lines.push(l);
        }
    }
    std::thread::sleep(Duration::from_secs(20));
    let out = psql(port, "SELECT count(*) FROM health");
    assert!(
        out.status.success(),
        "psql during the demo: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let n: i64 = String::from_utf8_lossy(&out.stdout).trim().parse().expect("a count");
    assert!(n > 100, "the live health table has the generated accounts: {n}");
    let out = psql(
        port,
        "SELECT account_id FROM health WHERE tier = 'key' ORDER BY account_id",
    );
    assert!(String::from_utf8_lossy(&out.stdout).lines().any(|l| l == QUIET_ACCOUNT));

    let status = child.wait().expect("demo exits");
    assert!(status.success(), "demo exit status {status:?}");
    reader.join().expect("reader");
    lines.extend(rx.try_iter());
    let quiet: Vec<&String> = lines
        .iter()
        .filter(|l| l.starts_with("ALERT") && l.contains(" quiet ") && l.contains(QUIET_ACCOUNT))
        .collect();
    assert_eq!(
        quiet.len(),
        1,
        "one quiet alert for {QUIET_ACCOUNT}:\n{}",
        lines.join("\n")
    );
    assert!(
        lines.iter().any(|l| l.starts_with("vigil demo done:")),
        "summary printed"
    );
    // Churn-risk alerts fire only at a fitted churn model's threshold: no more than three per
    // account that really cancels in the generated world (seed 42, 300 accounts), and never
    // for the key account that is active until it goes quiet.
    let world = vigil::demo::generator::generate(42, 300, 0);
    let cancelling: std::collections::BTreeSet<&str> = world
        .events
        .iter()
        .filter(|e| e.kind == vigil_engine::EventKind::Cancellation)
        .map(|e| e.account_id.as_str())
        .collect();
    let churn: Vec<&String> = lines
        .iter()
        .filter(|l| l.starts_with("ALERT") && l.contains(" churn_risk "))
        .collect();
    eprintln!(
        "{} churn-risk alerts, {} accounts cancel",
        churn.len(),
        cancelling.len()
    );
    assert!(
        churn.len() <= 3 * cancelling.len(),
        "{} churn-risk alerts for {} cancelling accounts:\n{}",
        churn.len(),
        cancelling.len(),
        lines.join("\n")
    );
    assert!(
        !churn.iter().any(|l| l.contains(QUIET_ACCOUNT)),
        "{QUIET_ACCOUNT} flagged for churn:\n{}",
        lines.join("\n")
    );
}
