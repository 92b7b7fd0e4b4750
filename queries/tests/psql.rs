//! The Postgres wire server with the real `psql` client: password login, a named query, a join
//! of `health` with `accounts`, and refusals that leave the server serving.

mod common;

use std::process::{Command, Output};

use vigil_queries::postgres::{AuthMethod, Credentials, PgServer};

const PASSWORD: &str = "s3cret-for-tests";

fn psql_path() -> String {
    let found = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|d| d.join("psql"))
        .find(|p| p.is_file());
    match found {
        Some(p) => p.to_string_lossy().into_owned(),
        None => panic!("psql not found: install postgresql-client (CI's .ci/run does)"),
    }
}

fn psql(port: u16, password: &str, sql: &str) -> Output {
    Command::new(psql_path())
        .args(["-X", "-A", "-t", "-F", ",", "-v", "ON_ERROR_STOP=1"])
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-U",
            "vigil",
            "-d",
            "vigil",
            "-c",
            sql,
        ])
        .env("PGPASSWORD", password)
        .env("PGSSLMODE", "disable")
        .env("PGCONNECT_TIMEOUT", "10")
        .output()
        .expect("running psql")
}

fn ok(port: u16, sql: &str) -> String {
    let out = psql(port, PASSWORD, sql);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{sql}: {stderr}");
    String::from_utf8(out.stdout).unwrap()
}

fn refused(port: u16, password: &str, sql: &str) -> String {
    let out = psql(port, password, sql);
    assert!(
        !out.status.success(),
        "{sql} should fail, printed {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn psql_end_to_end() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (dir, analyst) = rt.block_on(common::analyst("retention"));
    let server = rt
        .block_on(PgServer::bind(
            "127.0.0.1:0".parse().unwrap(),
            &analyst,
            Credentials {
                user: "vigil".into(),
                password: PASSWORD.into(),
            },
            AuthMethod::ScramSha256,
        ))
        .unwrap();
    let port = server.local_addr().unwrap().port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let handle = rt.spawn(server.run(async {
        let _ = stopped.await;
    }));

    // A named query with parameters, through its table function.
    assert_eq!(
        ok(
            port,
            "SELECT account_id, name, churn_risk FROM churn_risk('tier=key', 'limit=2')"
        ),
        "C,Cobalt,0.7\nA,Acme,0.1\n"
    );
    // The live health table joined with the accounts dimension.
    assert_eq!(
        ok(
            port,
            "SELECT h.account_id, a.name, a.tier, h.score FROM health h JOIN accounts a ON a.account_id = h.account_id \
             WHERE h.score < 60 ORDER BY h.score"
        ),
        "D,Delta,key,20.0\nC,Cobalt,key,35.0\nB,Beta,standard,55.0\n"
    );
    // A wrong password is refused; so is an unknown user's login.
    let err = refused(port, "wrong", "SELECT 1");
    assert!(err.to_lowercase().contains("password"), "{err}");

    for (sql, word) in [
        ("COPY (SELECT * FROM events) TO '/tmp/vigil-psql-copy.parquet'", "COPY"),
        (
            "CREATE EXTERNAL TABLE x STORED AS CSV LOCATION '/etc/passwd'",
            "CREATE EXTERNAL TABLE",
        ),
        (
            "INSERT INTO accounts VALUES ('Z', 'Zed', 'key', 1.0, 'me', 'x')",
            "INSERT",
        ),
        ("DROP TABLE accounts", "DROP"),
        ("SELECT * FROM '/etc/passwd'", "file"),
    ] {
        let err = refused(port, PASSWORD, sql);
        // DataFusion's own `CREATE EXTERNAL TABLE` is not even Postgres syntax to the server's
        // parser: it never plans.
        let never_parsed = word == "CREATE EXTERNAL TABLE" && err.contains("sql parser error");
        assert!(
            never_parsed || err.contains("refused") && err.contains(word),
            "{sql}: {err}"
        );
        eprintln!("{sql}\n  -> {}", err.trim());
    }
    assert!(!std::path::Path::new("/tmp/vigil-psql-copy.parquet").exists());

    // Still serving, and nothing was dropped.
    assert_eq!(ok(port, "SELECT count(*) FROM accounts"), "7\n");
    assert_eq!(
        ok(
            port,
            "SELECT period, retention_pct FROM retention_nday('granularity=month', 'periods=1', 'as_of=2024-06-01')"
        ),
        "0,100.0\n1,75.0\n"
    );

    let _ = stop.send(());
    rt.block_on(handle).unwrap().unwrap();
    drop(dir);
}
