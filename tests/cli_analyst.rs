//! The CLI subcommands as the `vigil` binary wires them: argument parsing and output files.

use clap::{Parser, Subcommand};
use vigil::cli::analyst::{QueryArgs, ServeArgs, SqlArgs, run_query, run_sql};

#[derive(Debug, Parser)]
struct Vigil {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    Sql(SqlArgs),
    Query(QueryArgs),
    Serve(ServeArgs),
}

fn parse(args: &[&str]) -> Cmd {
    Vigil::try_parse_from(std::iter::once("vigil").chain(args.iter().copied()))
        .unwrap_or_else(|e| panic!("{args:?}: {e}"))
        .command
}

/// `queries/tests/data`: the hand-made analyst data sets.
fn queries_data() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("queries/tests/data")
}

/// A data directory with the retention events in one segment and accounts.csv.
fn data_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let store = vigil_queries::SegmentStore::open(
        "events",
        dir.path().join("events"),
        vigil_engine::schema::event_schema(),
        "ts",
    )
    .unwrap();
    let text = std::fs::read_to_string(queries_data().join("retention.jsonl")).unwrap();
    store
        .append(vigil_queries::load::events_from_jsonl(&text).unwrap())
        .unwrap();
    store.flush_segment().unwrap();
    std::fs::copy(queries_data().join("accounts.csv"), dir.path().join("accounts.csv")).unwrap();
    dir
}

#[tokio::test]
async fn sql_and_query_write_every_format() {
    let dir = data_dir();
    let d = dir.path().to_str().unwrap();
    let out = dir.path().join("out");

    let Cmd::Sql(args) = parse(&[
        "sql",
        "SELECT account_id, count(*) AS n FROM events GROUP BY account_id ORDER BY account_id LIMIT 2",
        "--data-dir",
        d,
        "--format",
        "csv",
        "-o",
        out.to_str().unwrap(),
    ]) else {
        panic!()
    };
    run_sql(args).await.unwrap();
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "account_id,n\nA,7\nB,6\n");

    let sql_file = dir.path().join("q.sql");
    std::fs::write(&sql_file, "SELECT name FROM accounts WHERE tier = 'key' ORDER BY name").unwrap();
    let Cmd::Sql(args) = parse(&[
        "sql",
        "--file",
        sql_file.to_str().unwrap(),
        "--data-dir",
        d,
        "--format",
        "json",
        "-o",
        out.to_str().unwrap(),
    ]) else {
        panic!()
    };
    run_sql(args).await.unwrap();
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        "[{\"name\":\"Acme\"},{\"name\":\"Cobalt\"},{\"name\":\"Delta\"},{\"name\":\"Golf\"}]\n"
    );

    let pq = dir.path().join("out.parquet");
    let Cmd::Query(args) = parse(&[
        "query",
        "retention_nday",
        "--param",
        "granularity=month",
        "-p",
        "periods=1",
        "--param",
        "as_of=2024-06-01",
        "--data-dir",
        d,
        "--format",
        "parquet",
        "-o",
        pq.to_str().unwrap(),
    ]) else {
        panic!()
    };
    run_query(args).await.unwrap();
    let ctx = vigil_queries::datafusion::prelude::SessionContext::new();
    let rows = ctx
        .read_parquet(pq.to_str().unwrap(), Default::default())
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    // Rolling 30-day periods (the default): E signed up on May 2 12:00, 29.5 days before
    // as_of, so even its period 0 has not ended (the golden retention_nday_rolling_month works
    // the others out).
    assert_eq!(
        csv(&rows[0].schema(), &rows),
        "period,eligible,returned,retention_pct\n0,4,4,100.0\n1,4,3,75.0\n"
    );

    // A write is refused, a bad parameter is an error naming it.
    let Cmd::Sql(args) = parse(&["sql", "DROP TABLE accounts", "--data-dir", d]) else {
        panic!()
    };
    assert!(run_sql(args).await.unwrap_err().to_string().contains("refused"));
    let Cmd::Query(args) = parse(&["query", "churn_risk", "--param", "tier=gold", "--data-dir", d]) else {
        panic!()
    };
    assert!(run_query(args).await.unwrap_err().to_string().contains("tier"));
}

#[test]
fn argument_shapes() {
    assert!(
        Vigil::try_parse_from(["vigil", "sql"]).is_err(),
        "SQL or --file is required"
    );
    assert!(Vigil::try_parse_from(["vigil", "sql", "SELECT 1", "--file", "x.sql"]).is_err());
    assert!(Vigil::try_parse_from(["vigil", "query", "--param", "novalue"]).is_err());
    assert!(matches!(
        parse(&["query", "--list"]),
        Cmd::Query(QueryArgs { list: true, .. })
    ));
    let Cmd::Serve(s) = parse(&["serve", "--password", "pw", "--listen", "127.0.0.1:6543"]) else {
        panic!()
    };
    assert_eq!((s.user.as_str(), s.listen.port()), ("vigil", 6543));
}

fn csv(schema: &arrow::datatypes::SchemaRef, batches: &[arrow::array::RecordBatch]) -> String {
    let mut out = Vec::new();
    vigil_queries::output::write_batches(&mut out, schema, batches, vigil_queries::output::Format::Csv).unwrap();
    String::from_utf8(out).unwrap()
}
