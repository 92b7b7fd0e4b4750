//! Golden tests of every named query: `tests/golden/*.txt` hold the data set, query and
//! parameters, a comment explaining how the expected answer was computed by hand, and the
//! expected CSV.

mod common;

use std::sync::Arc;

struct Case {
    file: String,
    dataset: String,
    query: String,
    params: Vec<(String, String)>,
    expected: String,
}

fn cases() -> Vec<Case> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("golden");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            let (head, expected) = text.split_once("\n----\n").expect("a ---- line");
            let field = |k: &str| {
                head.lines()
                    .find_map(|l| l.strip_prefix(&format!("{k}:")))
                    .unwrap_or_else(|| panic!("{}: no {k}:", p.display()))
                    .trim()
                    .to_string()
            };
            let params = field("params")
                .split_whitespace()
                .map(|kv| vigil_queries::named::parse_assignment(kv).unwrap())
                .collect();
            Case {
                file: p.file_name().unwrap().to_string_lossy().into_owned(),
                dataset: field("dataset"),
                query: field("query"),
                params,
                expected: expected.to_string(),
            }
        })
        .collect()
}

#[tokio::test]
async fn every_named_query_matches_its_hand_computed_answer() {
    let cases = cases();
    let mut failures = Vec::new();
    for c in &cases {
        let (_dir, analyst) = common::analyst(&c.dataset).await;
        let df = analyst
            .named(&c.query, &c.params)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", c.file));
        let schema = Arc::new(df.schema().as_arrow().clone());
        let got = common::csv(&schema, &df.collect().await.unwrap());
        if got != c.expected {
            failures.push(format!("{}:\n--- expected\n{}--- got\n{}", c.file, c.expected, got));
        }
    }
    let covered: std::collections::BTreeSet<&str> = cases.iter().map(|c| c.query.as_str()).collect();
    for q in vigil_queries::named::builtin() {
        assert!(covered.contains(q.name.as_str()), "no golden test for {}", q.name);
    }
    assert!(
        failures.is_empty(),
        "{} of {} golden cases differ:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[tokio::test]
async fn table_functions_and_views_give_the_same_answers() {
    let (_dir, analyst) = common::analyst("retention").await;
    for c in cases().iter().filter(|c| c.dataset == "retention") {
        let args: Vec<String> = c.params.iter().map(|(k, v)| format!("'{k}={v}'")).collect();
        let sql = format!("SELECT * FROM {}({})", c.query, args.join(", "));
        assert_eq!(common::sql_csv(&analyst, &sql).await, c.expected, "{}: {sql}", c.file);
    }
    // Positional arguments, in the order of the @param lines.
    let got = common::sql_csv(&analyst, "SELECT account_id FROM churn_risk(2, 'key')").await;
    assert_eq!(got, "account_id\nC\nA\n");
    // The view runs the query with its defaults.
    let view = common::sql_csv(&analyst, "SELECT * FROM complaint_costs").await;
    let golden = cases().into_iter().find(|c| c.file == "complaint_costs.txt").unwrap();
    assert_eq!(view, golden.expected);
}

#[tokio::test]
async fn bad_parameters_are_rejected_not_pasted() {
    let (_dir, analyst) = common::analyst("retention").await;
    for (k, v) in [
        ("granularity", "year"),
        ("periods", "3; DROP TABLE events"),
        ("as_of", "2024-13-01"),
        ("start_event", "signup' OR '1'='1"),
        ("nope", "1"),
    ] {
        let err = analyst
            .named("retention_nday", &[(k.to_string(), v.to_string())])
            .await
            .expect_err(k);
        assert!(err.to_string().contains(k), "{err}");
    }
    let err = analyst
        .sql("SELECT * FROM retention_nday(now())")
        .await
        .expect_err("a non-literal argument");
    assert!(err.to_string().contains("literal"), "{err}");
    let err = analyst
        .sql("SELECT * FROM churn_risk(1, 'key', 0.5, 'no', 'extra')")
        .await
        .expect_err("too many arguments");
    assert!(err.to_string().contains("at most 4"), "{err}");
}
