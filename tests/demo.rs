//! `vigil demo` as a newcomer runs it: nothing installed but the binary (the embedded broker is
//! librdkafka's mock cluster). It prints alerts, including `quiet` for the key account that goes
//! silent, and its SQL server answers the real psql while it runs. Two runs with one seed, at
//! different replay speeds and at the same time (so each slows the other down), print the same
//! alerts in the same order.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use vigil::demo::generator::{DAY_MS, QUIET_ACCOUNT};
use vigil_engine::EventKind;

fn psql(port: u16, sql: &str) -> std::process::Output {
    Command::new("psql")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "vigil", "-d", "vigil"])
        .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .env("PGPASSWORD", "vigil")
        .env("PGCONNECT_TIMEOUT", "10")
        .output()
        .expect("psql runs (postgresql-client)")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// A running demo and the lines it printed so far.
struct Demo {
    child: Child,
    rx: mpsc::Receiver<String>,
    lines: Vec<String>,
    reader: std::thread::JoinHandle<()>,
}

impl Demo {
    fn start(port: u16, replay_secs: &str) -> Demo {
        let mut child = Command::new(env!("CARGO_BIN_EXE_vigil"))
            .args(["demo", "--exit-after-replay", "--replay-secs", replay_secs])
            .args(["--sql-port", &port.to_string()])
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
        Demo {
            child,
            rx,
            lines: Vec::new(),
            reader,
        }
    }

    /// Waits (up to `limit`) for a line that `want` accepts.
    fn wait_for(&mut self, limit: Duration, what: &str, want: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + limit;
        while !self.lines.iter().any(|l| want(l)) {
            assert!(
                Instant::now() < deadline,
                "no {what} printed:\n{}",
                self.lines.join("\n")
            );
            if let Ok(l) = self.rx.recv_timeout(Duration::from_millis(200)) {
                self.lines.push(l);
            }
        }
    }

    /// Waits for the exit (it exits once the history is replayed) and returns every line.
    fn finish(mut self) -> Vec<String> {
        let status = self.child.wait().expect("demo exits");
        self.reader.join().expect("reader");
        self.lines.extend(self.rx.try_iter());
        assert!(
            status.success(),
            "demo exit status {status:?}:\n{}",
            self.lines.join("\n")
        );
        self.lines
    }
}

fn alerts(lines: &[String]) -> Vec<&String> {
    lines.iter().filter(|l| l.starts_with("ALERT")).collect()
}

#[test]
fn demo_alerts_on_the_quiet_key_account_answers_psql_and_repeats_itself() {
    let port = free_port();
    let mut demo = Demo::start(port, "60");
    let fast = Demo::start(free_port(), "20");
    // The psql command is printed once the server listens; psql gets answers while the demo
    // runs (the first alert is printed on day 15 or so, a third of the way through).
    demo.wait_for(Duration::from_secs(60), "psql command", |l| l.contains("psql -h"));
    demo.wait_for(Duration::from_secs(120), "alert", |l| l.starts_with("ALERT"));
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

    let lines = demo.finish();
    let all = lines.join("\n");
    assert!(
        lines.iter().any(|l| l.contains("days of history are replayed")),
        "{all}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("vigil demo done:")),
        "summary printed:\n{all}"
    );
    let quiet: Vec<&String> = alerts(&lines)
        .into_iter()
        .filter(|l| l.contains(" quiet ") && l.contains(QUIET_ACCOUNT))
        .collect();
    assert_eq!(quiet.len(), 1, "one quiet alert for {QUIET_ACCOUNT}:\n{all}");

    // Churn-risk alerts fire only at a fitted churn model's threshold, for accounts still to be
    // saved: no more than three per account that really cancels in the generated world (seed
    // 42, 300 accounts), never after an account's cancellation, and never for the key account
    // that is active until it goes quiet.
    let world = vigil::demo::generator::generate(42, 300, 0);
    let cancelled_on: std::collections::BTreeMap<&str, f64> = world
        .events
        .iter()
        .filter(|e| e.kind == EventKind::Cancellation)
        .map(|e| (e.account_id.as_str(), e.ts_ms as f64 / DAY_MS as f64))
        .collect();
    let churn: Vec<&String> = alerts(&lines)
        .into_iter()
        .filter(|l| l.contains(" churn_risk "))
        .collect();
    eprintln!(
        "{} churn-risk alerts, {} accounts cancel",
        churn.len(),
        cancelled_on.len()
    );
    assert!(
        churn.len() <= 3 * cancelled_on.len(),
        "{} churn-risk alerts for {} cancelling accounts:\n{all}",
        churn.len(),
        cancelled_on.len()
    );
    for l in &churn {
        // "ALERT day  70.0  churn_risk      globex-192       ..."
        let f: Vec<&str> = l.split_whitespace().collect();
        let (day, account) = (f[2].parse::<f64>().expect("day"), f[4]);
        assert_ne!(account, QUIET_ACCOUNT, "{QUIET_ACCOUNT} flagged for churn:\n{all}");
        if let Some(c) = cancelled_on.get(account) {
            assert!(
                day < *c,
                "a churn-risk alert after {account} cancelled on day {c:.1}: {l}"
            );
        }
    }

    // The same seed at three times the speed, run alongside: the same alerts, in the same order.
    let fast = fast.finish();
    assert_eq!(
        alerts(&lines),
        alerts(&fast),
        "two runs with one seed printed different alerts:\n{all}\n-- at --replay-secs 20:\n{}",
        fast.join("\n")
    );
}
