//! `vigil run` as a child process for the checkpoint tests: start, SIGKILL, SIGTERM, the
//! progress its checkpoints record, and the health table it leaves behind.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use vigil_runtime::checkpoint::{CheckpointStore, PartitionProgress};

/// How to run one `vigil run` process.
#[derive(Debug, Clone)]
pub struct RunSpec {
    pub bootstrap: String,
    pub topic: String,
    pub group: String,
    pub data_dir: PathBuf,
    pub checkpoint_dir: PathBuf,
    /// `group.instance.id` (static membership: a restarted process takes its place at once).
    pub instance: Option<String>,
}

impl RunSpec {
    pub fn start(&self) -> Child {
        self.command()
            .stderr(Stdio::inherit())
            .spawn()
            .expect("vigil run starts")
    }

    /// [`RunSpec::start`] with the consumer group's state machine and the broker connections
    /// logged (librdkafka's `cgrp` and `broker` debug contexts), and stderr written to `log`
    /// instead of the test's output (a [`DumpLogOnPanic`] guard prints its end when the test
    /// fails), and `/healthz` on `127.0.0.1:http_port`, stalled after `stall_after_ms` (see
    /// `[http] stall_after_ms`), and the configuration overrides `env` (`VIGIL_*` variables).
    pub fn start_logged_with_http(
        &self,
        log: &Path,
        http_port: u16,
        stall_after_ms: u64,
        env: &[(&str, &str)],
    ) -> Child {
        self.logged(log)
            .env("VIGIL_HTTP__LISTEN", format!("127.0.0.1:{http_port}"))
            .env("VIGIL_HTTP__STALL_AFTER_MS", stall_after_ms.to_string())
            .envs(env.iter().copied())
            .spawn()
            .expect("vigil run starts")
    }

    fn logged(&self, log: &Path) -> Command {
        let file = std::fs::File::create(log).expect("log file");
        let mut cmd = self.command();
        cmd.env("VIGIL_SOURCE__CONSUMER_PROPERTIES__DEBUG", "cgrp,broker")
            .env("NO_COLOR", "1")
            .env("VIGIL_LOG", "info,librdkafka=debug,vigil_connectors=debug,vigil=debug")
            .stderr(file);
        cmd
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_vigil"));
        cmd.arg("run")
            .env("VIGIL_DATA_DIR", &self.data_dir)
            .env("VIGIL_CHECKPOINT__DIR", &self.checkpoint_dir)
            .env("VIGIL_CHECKPOINT__INTERVAL_MS", "500")
            .env("VIGIL_CHECKPOINT__MAX_MESSAGES", "100000")
            .env("VIGIL_CLOCK", "event")
            .env("VIGIL_PRINT_ALERTS", "false")
            .env("VIGIL_HTTP__LISTEN", "127.0.0.1:0")
            .env("VIGIL_SOURCE__BROKERS", &self.bootstrap)
            .env("VIGIL_SOURCE__TOPICS", format!("[\"{}\"]", self.topic))
            .env("VIGIL_SOURCE__GROUP_ID", &self.group)
            .env("VIGIL_SOURCE__DEAD_LETTER_TOPIC", format!("{}.dlq", self.topic))
            .env("VIGIL_SOURCE__COMMIT_INTERVAL_MS", "200")
            .env("VIGIL_SOURCE__CONSUMER_PROPERTIES__SESSION.TIMEOUT.MS", "6000")
            .env("VIGIL_SOURCE__CONSUMER_PROPERTIES__HEARTBEAT.INTERVAL.MS", "500")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null());
        if let Some(i) = &self.instance {
            cmd.env("VIGIL_SOURCE__CONSUMER_PROPERTIES__GROUP.INSTANCE.ID", i);
        }
        cmd
    }
}

/// Prints the last lines of a `vigil run` log (see [`RunSpec::start_logged`]) when dropped
/// during a panic, so that a failed test shows what the process was doing.
pub struct DumpLogOnPanic(pub PathBuf);

impl Drop for DumpLogOnPanic {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        let text = std::fs::read_to_string(&self.0).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let from = lines.len().saturating_sub(1500);
        eprintln!("--- last {} lines of {} ---", lines.len() - from, self.0.display());
        for line in &lines[from..] {
            eprintln!("{line}");
        }
    }
}

/// Progress summed over every partition's checkpoint in `dir`.
pub fn progress(dir: &Path) -> PartitionProgress {
    let Ok(store) = CheckpointStore::open(dir) else {
        return PartitionProgress::default();
    };
    // A checkpoint may be replaced while being read: retry a torn listing.
    let all = (0..5).find_map(|_| store.load_all().ok()).unwrap_or_default();
    all.iter().fold(PartitionProgress::default(), |mut sum, c| {
        let p = c.progress;
        sum.messages += p.messages;
        sum.valid += p.valid;
        sum.applied += p.applied;
        sum.duplicates += p.duplicates;
        sum.late += p.late;
        sum.dead_lettered += p.dead_lettered;
        sum.checkpoints += p.checkpoints;
        sum
    })
}

/// Waits until the checkpoints in `dir` account for at least `messages` messages; fails at
/// once when `child` exits.
pub fn wait_for_messages(dir: &Path, messages: u64, timeout: Duration, child: &mut Child) -> PartitionProgress {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("vigil run exited early: {status:?}");
        }
        let p = progress(dir);
        if p.messages >= messages {
            return p;
        }
        if Instant::now() >= deadline {
            reap(child);
            panic!(
                "checkpoints reached {} of {messages} messages in time: {p:?}",
                p.messages
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// How long a SIGTERMed `vigil run` may take to checkpoint and exit.
const STOP_TIMEOUT: Duration = Duration::from_secs(90);

/// SIGTERM, then the exit status must be success within [`STOP_TIMEOUT`] (else SIGKILL and
/// fail).
pub fn terminate(mut child: Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let deadline = Instant::now() + STOP_TIMEOUT;
    let exit = loop {
        if let Some(exit) = child.try_wait().expect("wait") {
            break exit;
        }
        if Instant::now() >= deadline {
            reap(&mut child);
            panic!("vigil run did not stop within {STOP_TIMEOUT:?} of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "vigil run exit status {exit:?}");
}

/// SIGKILL and wait, ignoring errors: before a test fails, so that it never leaves a running
/// process behind.
fn reap(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// SIGKILL.
pub fn kill9(mut child: Child) {
    child.kill().expect("SIGKILL");
    let _ = child.wait();
}

/// The `health` table a stopped `vigil run` left in `data_dir`, as CSV ordered by account.
pub fn health_csv(data_dir: &Path) -> String {
    sql_csv(data_dir, "SELECT * FROM health ORDER BY account_id")
}

/// A query over the history and health a stopped `vigil run` left in `data_dir`, as CSV.
pub fn sql_csv(data_dir: &Path, query: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["sql", "--format", "csv", "--data-dir"])
        .arg(data_dir)
        .arg(query)
        .output()
        .expect("vigil sql");
    assert!(
        out.status.success(),
        "vigil sql failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// Event `i` of the checkpoint tests' stream as a message: every kind with its fields, times
/// increasing 300 ms per event (about 3.5 days for a million, inside the lateness), keyed by
/// account; every 997th message is undecodable (dead-letter topic).
pub fn message(i: usize, accounts: usize) -> (Option<Vec<u8>>, Vec<u8>) {
    let mut e = crate::common::event(i, accounts);
    e.ts_ms = 1_780_000_000_000 + i as i64 * 300;
    let key = Some(e.account_id.clone().into_bytes());
    if i.is_multiple_of(997) {
        return (
            key,
            format!("{{\"event_id\": \"bad-{i}\", \"account_id\": ").into_bytes(),
        );
    }
    (key, crate::common::message(i, &e))
}

/// Number of undecodable messages among the first `n`.
pub fn bad_among(n: usize) -> u64 {
    (0..n).filter(|i| i.is_multiple_of(997)).count() as u64
}

/// `GET path` on `127.0.0.1:port`: the raw response (status line, headers, body).
pub fn http_get(port: u16, path: &str) -> String {
    try_http_get(port, path).expect("GET")
}

/// [`http_get`], with connection and read errors returned.
fn try_http_get(port: u16, path: &str) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

/// A free TCP port on 127.0.0.1 (for a child's HTTP listener).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// Polls `GET path` every 200 ms (the listener may not be up yet) until its response starts
/// with `status_line` (e.g. `HTTP/1.1 503`); returns that response, or panics after `limit`
/// with the last answer and the process's `/metrics` source and group series.
pub fn wait_for_http(port: u16, path: &str, status_line: &str, limit: Duration) -> String {
    let start = std::time::Instant::now();
    loop {
        let r = try_http_get(port, path);
        if let Ok(r) = &r
            && r.starts_with(status_line)
        {
            return r.clone();
        }
        if start.elapsed() >= limit {
            let metrics = try_http_get(port, "/metrics").unwrap_or_default();
            let source: Vec<&str> = metrics
                .lines()
                .filter(|l| l.starts_with("vigil_partitions") || l.starts_with("vigil_consumer"))
                .collect();
            panic!(
                "{path} never answered {status_line} in {:.1} s: {r:?}\n{}",
                start.elapsed().as_secs_f64(),
                source.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
