//! The read-only guard: which statements analysts may run.
//!
//! Two checks, both must pass. First the parsed statement kind: only queries (`SELECT`, `WITH`,
//! `VALUES`), `EXPLAIN` of those, and `SHOW` are allowed; `COPY`, `CREATE EXTERNAL TABLE`,
//! `INSERT`, `DROP`, `SET` and everything else are refused with a message naming the statement.
//! Relations whose names look like files or URLs are refused too (DataFusion's URL tables are
//! never enabled, this is a second lock). Then the logical plan, through DataFusion's
//! [`SQLOptions`] with DDL, DML and statements all disallowed.

use datafusion::logical_expr::LogicalPlan;
use datafusion::sql::parser::{DFParser, Statement as DfStatement};
use datafusion::sql::sqlparser::ast::{ObjectName, Statement, visit_relations};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use std::ops::ControlFlow;

use crate::error::{QueryError, Result};

/// DataFusion's options for read-only sessions: no DDL, no DML, no statements.
pub fn sql_options() -> datafusion::execution::context::SQLOptions {
    datafusion::execution::context::SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
}

/// Parses `sql` (PostgreSQL dialect, one or more statements separated by `;`) and checks each.
pub fn parse_read_only(sql: &str) -> Result<Vec<DfStatement>> {
    let statements = DFParser::parse_sql_with_dialect(sql, &PostgreSqlDialect {})?;
    statements
        .into_iter()
        .map(|s| {
            check_statement(&s)?;
            Ok(s)
        })
        .collect()
}

fn statement_name(s: &Statement) -> String {
    let text = s.to_string();
    let words: Vec<&str> = text.split_whitespace().take(3).collect();
    let n = match words.first().map(|w| w.to_ascii_uppercase()) {
        Some(w) if ["CREATE", "DROP", "ALTER"].contains(&w.as_str()) => words.len().min(2),
        _ => 1,
    };
    words[..n].join(" ").to_ascii_uppercase()
}

/// Refuses every statement that is not a query, an `EXPLAIN` of one, or `SHOW`.
pub fn check_statement(s: &DfStatement) -> Result<()> {
    match s {
        DfStatement::Statement(inner) => check_sql_statement(inner),
        DfStatement::Explain(e) => check_statement(&e.statement),
        DfStatement::CopyTo(_) => Err(QueryError::Refused(
            "COPY is not allowed: this session is read-only and never writes or reads server files".into(),
        )),
        DfStatement::CreateExternalTable(_) => Err(QueryError::Refused(
            "CREATE EXTERNAL TABLE is not allowed: this session is read-only and never reads server files".into(),
        )),
        DfStatement::Reset(_) => Err(QueryError::Refused(
            "RESET is not allowed: this session is read-only".into(),
        )),
    }
}

pub(crate) fn check_sql_statement(s: &Statement) -> Result<()> {
    match s {
        Statement::Query(_) => check_relations(s),
        Statement::Explain { statement, .. } => check_sql_statement(statement),
        Statement::ShowTables { .. }
        | Statement::ShowColumns { .. }
        | Statement::ShowVariable { .. }
        | Statement::ShowVariables { .. }
        | Statement::ShowFunctions { .. } => Ok(()),
        Statement::Copy { .. } => Err(QueryError::Refused(
            "COPY is not allowed: this session is read-only and never writes or reads server files".into(),
        )),
        other => Err(QueryError::Refused(format!(
            "{} is not allowed: this session is read-only (SELECT, EXPLAIN and SHOW only)",
            statement_name(other)
        ))),
    }
}

fn check_relations(s: &Statement) -> Result<()> {
    let mut bad: Option<String> = None;
    let _ = visit_relations(s, |name: &ObjectName| {
        let text = name.to_string();
        if text.contains('/')
            || text.contains('\\')
            || text.contains("://")
            || text.contains('.') && text.contains('\'')
        {
            bad = Some(text);
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    });
    match bad {
        Some(name) => Err(QueryError::Refused(format!(
            "table {name} looks like a file or URL: this session never reads server files"
        ))),
        None => Ok(()),
    }
}

/// Checks a logical plan against [`sql_options`].
pub fn verify_plan(plan: &LogicalPlan) -> Result<()> {
    sql_options()
        .verify_plan(plan)
        .map_err(|e| QueryError::Refused(format!("{e}; this session is read-only")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(sql: &str) -> String {
        match parse_read_only(sql) {
            Err(QueryError::Refused(m)) => m,
            other => panic!("{sql}: expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn queries_pass() {
        for sql in [
            "SELECT 1",
            "WITH a AS (SELECT 1 AS x) SELECT x FROM a",
            "EXPLAIN SELECT * FROM events WHERE ts > now()",
            "SHOW TABLES",
            "SELECT * FROM retention_nday('week', 4)",
            "SELECT 1; SELECT 2",
        ] {
            parse_read_only(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
    }

    #[test]
    fn writes_and_files_are_refused() {
        assert!(refused("COPY events TO '/tmp/x.parquet'").contains("COPY"));
        assert!(refused("CREATE EXTERNAL TABLE t STORED AS PARQUET LOCATION '/etc'").contains("CREATE EXTERNAL TABLE"));
        assert!(refused("INSERT INTO accounts VALUES ('a')").contains("INSERT"));
        assert!(refused("DROP TABLE accounts").contains("DROP TABLE"));
        assert!(refused("CREATE TABLE t AS SELECT 1").contains("CREATE TABLE"));
        assert!(refused("SET datafusion.execution.batch_size = 1").contains("SET"));
        assert!(refused("SELECT * FROM '/etc/passwd'").contains("file"));
        assert!(refused("SELECT 1; DROP VIEW v").contains("DROP VIEW"));
        assert!(refused("EXPLAIN COPY events TO '/tmp/x'").contains("COPY"));
    }
}
