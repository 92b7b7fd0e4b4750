//! Analysts' clients against `vigil serve`, clients vigil's developers did not write: psql
//! (its catalog commands `\dt`, `\dv`, `\d health`, `\l`, `\df`, `\copy`; a SCRAM-SHA-256 login; a
//! wrong password refused; writes refused with SQLSTATE 25006 while the session stays usable;
//! session settings and a read-only transaction accepted).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::vigil;

const PASSWORD: &str = "analyst-pw";

/// A data directory with a replayed history of 2,000 events over 40 accounts.
fn data_dir(root: &Path) -> PathBuf {
    let file = root.join("events.jsonl");
    let lines: Vec<String> = (0..2_000)
        .map(|i| vigil::sample::contract_event(i, 40, 1_780_000_000_000 + i as i64 * 600_000).to_json())
        .collect();
    std::fs::write(&file, lines.join("\n") + "\n").expect("events file");
    let data = root.join("data");
    vigil(&[
        "replay",
        file.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
        "--quiet",
    ]);
    data
}

/// `vigil serve` on a free port; killed when dropped.
struct Serve {
    child: Child,
    port: u16,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(data: &Path, extra: &[&str]) -> Serve {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let child = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
        .arg(data)
        .args(extra)
        .env("VIGIL_PG_PASSWORD", PASSWORD)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("vigil serve starts");
    let server = Serve { child, port };
    // Ready once psql gets an answer.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = psql(server.port, PASSWORD, &["-c", "SELECT 1"]);
        if out.status.success() {
            return server;
        }
        assert!(
            Instant::now() < deadline,
            "vigil serve never answered psql: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// psql connecting as user `vigil` with `password`, unaligned output, no `.psqlrc`.
fn psql_command(port: u16, password: &str) -> Command {
    let mut cmd = Command::new("psql");
    cmd.args([
        "-h",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "-U",
        "vigil",
        "-d",
        "vigil",
        "-X",
        "-A",
    ])
    .env("PGPASSWORD", password)
    .env("PGCONNECT_TIMEOUT", "10");
    cmd
}

/// psql with `args` after the connection.
fn psql(port: u16, password: &str, args: &[&str]) -> Output {
    psql_command(port, password)
        .args(args)
        .output()
        .expect("psql runs (postgresql-client)")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs a psql script with `ON_ERROR_STOP` off and verbose errors (SQLSTATE shown).
fn script(port: u16, sql: &str) -> String {
    let out = psql_command(port, PASSWORD)
        .args([
            "-v",
            "VERBOSITY=verbose",
            "-v",
            "ON_ERROR_STOP=0",
            "-c",
            "\\set VERBOSITY verbose",
            "-f",
            "-",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().expect("stdin").write_all(sql.as_bytes())?;
            c.wait_with_output()
        })
        .expect("psql runs");
    text(&out)
}

#[test]
fn psql_browses_the_catalog_logs_in_with_scram_and_is_refused_writes() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = data_dir(tmp.path());
    let server = serve(&data, &[]);
    let port = server.port;

    let ok = |args: &[&str]| {
        let out = psql(port, PASSWORD, args);
        assert!(out.status.success(), "psql {args:?}: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let tables = ok(&["-c", "\\dt"]);
    for t in ["health", "events", "accounts", "alert_raises"] {
        assert!(tables.contains(&format!("|{t}|")), "\\dt lists {t}:\n{tables}");
    }
    let views = ok(&["-c", "\\dv"]);
    for v in ["alerts", "churned_accounts"] {
        assert!(views.contains(&format!("|{v}|")), "\\dv lists {v}:\n{views}");
    }
    let health = ok(&["-c", "\\d health"]);
    for column in ["account_id|text", "score|double precision", "trend_7d|double precision"] {
        assert!(health.contains(column), "\\d health shows {column}:\n{health}");
    }
    let databases = ok(&["-c", "\\l"]);
    assert!(databases.lines().any(|l| l.starts_with("vigil|")), "\\l:\n{databases}");
    ok(&["-c", "\\df"]);
    let who = ok(&["-t", "-c", "SELECT current_database(), current_schema()"]);
    assert_eq!(who.trim(), "vigil|public");

    // What JDBC and psycopg send before their first query, and a read-only transaction.
    let session = script(
        port,
        "SET extra_float_digits = 3;\nSET application_name = 'psql-test';\nBEGIN READ ONLY;\n\
         SELECT count(*) AS n FROM health;\nCOMMIT;\n",
    );
    assert!(session.contains("\n40\n"), "{session}");
    assert!(!session.contains("ERROR"), "{session}");

    // Every write, file read and DDL is refused with 25006; the session goes on.
    let refused = script(
        port,
        "DROP TABLE accounts;\nINSERT INTO accounts (account_id) VALUES ('x');\n\
         COPY events TO '/tmp/vigil-copy.csv';\nSELECT * FROM '/etc/passwd';\n\
         CREATE TABLE t AS SELECT 1;\nSET datafusion.execution.batch_size = 1;\nSELECT 41 + 1 AS answer;\n",
    );
    assert_eq!(refused.matches("25006").count(), 6, "{refused}");
    assert!(refused.contains("\n42\n"), "the session stays usable: {refused}");
    assert!(!Path::new("/tmp/vigil-copy.csv").exists());

    // psql's \copy: the rows come over COPY TO STDOUT, psql writes the file.
    let file = tmp.path().join("health.csv");
    ok(&[
        "-c",
        &format!(
            "\\copy (SELECT account_id, score FROM health ORDER BY account_id) TO '{}' WITH (FORMAT csv, HEADER)",
            file.display()
        ),
    ]);
    let csv = std::fs::read_to_string(&file).expect("psql wrote the file");
    assert_eq!(csv.lines().count(), 41, "{csv}");
    assert!(csv.starts_with("account_id,score\nacct-0000000,"), "{csv}");

    // A wrong password is refused; the server goes on.
    let wrong = psql(port, "not-the-password", &["-c", "SELECT 1"]);
    assert!(!wrong.status.success());
    assert!(
        text(&wrong).to_lowercase().contains("password authentication failed"),
        "{}",
        text(&wrong)
    );
    ok(&["-c", "SELECT 1"]);
}

/// A Python with psycopg 3 from PyPI: a virtual environment made once under the target
/// directory (`python3 -m venv`, `pip install psycopg[binary]`).
fn python_with_psycopg() -> PathBuf {
    static PYTHON: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    PYTHON
        .get_or_init(|| {
            let env = Path::new(env!("CARGO_TARGET_TMPDIR")).join("pyenv-psycopg");
            let python = env.join("bin").join("python");
            let has = |p: &Path| {
                Command::new(p)
                    .args(["-c", "import psycopg"])
                    .status()
                    .is_ok_and(|s| s.success())
            };
            if !has(&python) {
                let run = |cmd: &mut Command| {
                    let out = cmd.output().expect("runs");
                    assert!(out.status.success(), "{cmd:?}: {}", text(&out));
                };
                run(Command::new("python3").args(["-m", "venv"]).arg(&env));
                run(Command::new(&python).args(["-m", "pip", "install", "-q", "psycopg[binary]==3.3.9"]));
            }
            python
        })
        .clone()
}

#[test]
fn psycopg_logs_in_with_scram_only_runs_parameters_in_its_default_transaction_mode_and_cancels() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = data_dir(tmp.path());
    let server = serve(&data, &[]);
    let program = r#"
import sys
import psycopg
port, password = sys.argv[1], sys.argv[2]
# libpq refuses any login but SCRAM-SHA-256 here.
dsn = f"host=127.0.0.1 port={port} dbname=vigil user=vigil password={password} require_auth=scram-sha-256"
with psycopg.connect(dsn) as conn:            # default mode: every query inside BEGIN
    cur = conn.execute("SELECT count(*) FROM health WHERE score >= %s AND account_id <> %s", (0, "nobody"))
    print("count", cur.fetchone()[0])
    cur = conn.execute("SELECT account_id, score FROM health WHERE account_id = %s", ("acct-0000007",))
    print("one", cur.fetchone()[0])
    try:
        conn.execute("DELETE FROM accounts WHERE account_id = %s", ("x",))
        print("write accepted")
    except psycopg.Error as e:
        print("refused", e.sqlstate)
    conn.rollback()
    print("after", conn.execute("SELECT 40 + %s", (2,)).fetchone()[0])
# A long query cancelled from another thread (libpq's cancel request, sent until it lands
# while the query runs): it ends with 57014 and the connection answers the next query.
import threading
with psycopg.connect(dsn, autocommit=True) as conn:
    done = threading.Event()
    def cancel_until_done():
        while not done.is_set():
            conn.cancel_safe(timeout=5)
            done.wait(0.2)
    t = threading.Thread(target=cancel_until_done)
    t.start()
    try:
        conn.execute("SELECT count(*) FROM generate_series(1, 500000000000)")
        print("not cancelled")
    except psycopg.errors.QueryCanceled as e:
        print("cancelled", e.sqlstate)
    finally:
        done.set()
        t.join()
    print("after cancel", conn.execute("SELECT 7").fetchone()[0])
    conn.execute("SET statement_timeout = 300")
    try:
        conn.execute("SELECT count(*) FROM generate_series(1, 500000000000)")
        print("no timeout")
    except psycopg.errors.QueryCanceled as e:
        print("timed out", e.sqlstate, "statement timeout" in str(e))
try:
    psycopg.connect(f"host=127.0.0.1 port={port} dbname=vigil user=vigil password=wrong")
    print("wrong password accepted")
except psycopg.OperationalError as e:
    print("wrong password refused", "authentication failed" in str(e).lower())
"#;
    let out = Command::new(python_with_psycopg())
        .args(["-c", program, &server.port.to_string(), PASSWORD])
        .output()
        .expect("python runs");
    let got = text(&out);
    assert!(out.status.success(), "{got}");
    assert!(got.contains("count 40\n"), "{got}");
    assert!(got.contains("one acct-0000007\n"), "{got}");
    assert!(got.contains("refused 25006\n"), "{got}");
    assert!(got.contains("after 42\n"), "{got}");
    assert!(got.contains("wrong password refused True\n"), "{got}");
    assert!(got.contains("cancelled 57014\n"), "{got}");
    assert!(got.contains("after cancel 7\n"), "{got}");
    assert!(got.contains("timed out 57014 True\n"), "{got}");
}

/// The PostgreSQL JDBC driver from Maven Central (what DBeaver, Metabase, DataGrip and Tableau
/// use), fetched once into the target directory with `mvn dependency:copy`.
fn jdbc_jar() -> PathBuf {
    static JAR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    JAR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("jdbc");
        let jar = dir.join("postgresql-42.7.14.jar");
        if !jar.exists() {
            let out = Command::new("mvn")
                .args([
                    "-B",
                    "-q",
                    "dependency:copy",
                    "-Dartifact=org.postgresql:postgresql:42.7.14",
                ])
                .arg(format!("-DoutputDirectory={}", dir.display()))
                .output()
                .expect("mvn runs (maven)");
            assert!(out.status.success(), "fetching the JDBC driver: {}", text(&out));
        }
        jar
    })
    .clone()
}

#[test]
fn the_jdbc_driver_lists_tables_and_columns_and_runs_a_prepared_statement() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = data_dir(tmp.path());
    let server = serve(&data, &[]);
    let program = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/harness/jdbc/VigilJdbc.java");
    let out = Command::new("java")
        .arg("-cp")
        .arg(jdbc_jar())
        .arg(program)
        .args([&server.port.to_string(), PASSWORD])
        .output()
        .expect("java runs");
    let got = text(&out);
    assert!(out.status.success(), "{got}");
    assert!(got.contains("product PostgreSQL\n"), "{got}");
    for t in [
        "table health TABLE",
        "table events TABLE",
        "table accounts TABLE",
        "table alerts VIEW",
    ] {
        assert!(got.contains(&format!("{t}\n")), "getTables lists {t}: {got}");
    }
    for c in [
        "column account_id text",
        "column score float8",
        "column last_seen timestamptz",
    ] {
        assert!(got.contains(&format!("{c}\n")), "getColumns lists {c}: {got}");
    }
    assert!(got.contains("count 40\n"), "{got}");
    assert!(got.contains("named "), "{got}");
    assert!(got.contains("refused 25006\n"), "{got}");
    assert!(got.contains("after 42\n"), "{got}");
}

#[test]
fn psql_over_tls_logs_in_with_scram_bound_to_the_certificate() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = data_dir(tmp.path());
    // A self-signed certificate made by openssl, as an operator would.
    let (cert, key) = (tmp.path().join("cert.pem"), tmp.path().join("key.pem"));
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl runs");
    assert!(out.status.success(), "{}", text(&out));
    let server = serve(
        &data,
        &["--tls-cert", cert.to_str().unwrap(), "--tls-key", key.to_str().unwrap()],
    );
    let conninfo = format!(
        "host=127.0.0.1 port={} user=vigil dbname=vigil sslmode=require channel_binding=require",
        server.port
    );
    let out = Command::new("psql")
        .args([
            conninfo.as_str(),
            "-X",
            "-A",
            "-t",
            "-c",
            "\\conninfo",
            "-c",
            "SELECT count(*) FROM health",
        ])
        .env("PGPASSWORD", PASSWORD)
        .output()
        .expect("psql runs");
    let got = text(&out);
    assert!(out.status.success(), "{got}");
    assert!(got.contains("SSL connection (protocol: TLSv1."), "{got}");
    assert!(got.contains("\n40\n"), "{got}");
    // Without TLS the same server still answers (TLS is offered, not required).
    let plain = psql(server.port, PASSWORD, &["-t", "-c", "SELECT 1"]);
    assert!(plain.status.success(), "{}", text(&plain));
}

#[test]
fn a_result_past_the_servers_limits_ends_with_54000_and_the_session_goes_on() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = data_dir(tmp.path());
    let rows = serve(&data, &["--max-result-rows", "10"]);
    let out = script(rows.port, "SELECT * FROM events;\nSELECT count(*) AS n FROM events;\n");
    assert!(out.contains("54000"), "{out}");
    assert!(
        out.contains("more than 10 rows") && out.contains("max_result_rows"),
        "{out}"
    );
    assert!(out.contains("\n2000\n"), "an aggregate stays under the limit: {out}");
    let bytes = serve(&data, &["--max-result-bytes", "1000"]);
    let out = script(bytes.port, "SELECT * FROM health;\nSELECT 1 AS one;\n");
    assert!(out.contains("54000") && out.contains("max_result_bytes"), "{out}");
    assert!(out.contains("\n1\n"), "{out}");
}
