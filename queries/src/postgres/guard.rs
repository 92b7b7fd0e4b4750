//! The read-only guard as a datafusion-postgres query hook, first of the hooks: every
//! statement, simple or extended, passes [`crate::readonly`]'s check before anything plans or
//! runs it. Session statements clients send without changing data (`SET` of a Postgres session
//! setting, `BEGIN`/`COMMIT`/`ROLLBACK`, cursors over queries) pass to the hooks after it;
//! `SET` of DataFusion's own settings (shared by every session) is refused.

use async_trait::async_trait;
use datafusion::common::ParamValues;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::{Set, Statement};
use datafusion_postgres::QueryHook;
use datafusion_postgres::hooks::HookClient;
use pgwire::api::ClientInfo;
use pgwire::api::results::Response;
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};

/// Postgres session settings clients set at connection or later; accepted (kept per session
/// where datafusion-postgres knows them), never changing data or other sessions.
const SESSION_SETTINGS: [&str; 20] = [
    "application_name",
    "bytea_output",
    "client_encoding",
    "client_min_messages",
    "datestyle",
    "default_transaction_isolation",
    "default_transaction_read_only",
    "extra_float_digits",
    "idle_in_transaction_session_timeout",
    "intervalstyle",
    "lc_messages",
    "lc_monetary",
    "lc_numeric",
    "lc_time",
    "lock_timeout",
    "search_path",
    "standard_conforming_strings",
    "statement_timeout",
    "timezone",
    "transaction_isolation",
];

/// Refuses what an analyst session may not run; see the module documentation.
#[derive(Debug, Default)]
pub struct ReadOnlyHook;

/// An error a client shows: severity ERROR, the SQLSTATE and the message.
pub(crate) fn user_error(code: &str, message: String) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new("ERROR".to_owned(), code.to_owned(), message)))
}

/// Why `statement` may not run in an analyst session, if it may not.
pub fn check(statement: &Statement) -> PgWireResult<()> {
    // `COPY (query) TO STDOUT` sends rows to the client (psql's `\copy`); its query is checked
    // like any other. Every other `COPY` is refused below.
    if let Some(query) = super::copy::copy_out_query(statement) {
        return check(&Statement::Query(Box::new(query.clone())));
    }
    match statement {
        Statement::StartTransaction { .. } | Statement::Commit { .. } | Statement::Rollback { .. } => Ok(()),
        Statement::Set(set) => check_set(set),
        Statement::Declare { stmts } => stmts
            .iter()
            .filter_map(|d| d.for_query.as_ref())
            .try_for_each(|q| check(&Statement::Query(q.clone()))),
        Statement::Fetch { .. } | Statement::Close { .. } | Statement::Deallocate { .. } => Ok(()),
        // The read-only check's only error is a refusal: 25006 (read_only_sql_transaction).
        other => crate::readonly::check_sql_statement(other).map_err(|e| user_error("25006", e.to_string())),
    }
}

fn check_set(set: &Set) -> PgWireResult<()> {
    match set {
        Set::SingleAssignment { variable, .. } => {
            let name = variable.to_string().to_ascii_lowercase();
            if name.starts_with("datafusion.") {
                Err(user_error(
                    "25006",
                    format!("refused: SET {name} is not allowed: the engine's settings are shared by every session"),
                ))
            } else if SESSION_SETTINGS.contains(&name.as_str()) {
                Ok(())
            } else {
                Err(user_error(
                    "42704",
                    format!("unrecognized configuration parameter \"{name}\""),
                ))
            }
        }
        Set::SetTimeZone { .. }
        | Set::SetNames { .. }
        | Set::SetNamesDefault { .. }
        | Set::SetTransaction { .. }
        | Set::SetSessionParam(..) => Ok(()),
        other => Err(user_error(
            "25006",
            format!("refused: {other} is not allowed: this session is read-only"),
        )),
    }
}

#[async_trait]
impl QueryHook for ReadOnlyHook {
    async fn handle_simple_query(
        &self,
        statement: &Statement,
        _session_context: &SessionContext,
        _client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        check(statement).err().map(Err)
    }

    async fn handle_extended_parse_query(
        &self,
        statement: &Statement,
        _session_context: &SessionContext,
        _client: &(dyn ClientInfo + Send + Sync),
    ) -> Option<PgWireResult<LogicalPlan>> {
        check(statement).err().map(Err)
    }

    async fn handle_extended_query(
        &self,
        statement: &Statement,
        _logical_plan: &LogicalPlan,
        _params: &ParamValues,
        _session_context: &SessionContext,
        _client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        check(statement).err().map(Err)
    }
}

#[cfg(test)]
mod tests {
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    use super::*;

    fn verdict(sql: &str) -> Result<(), String> {
        let statements = Parser::parse_sql(&PostgreSqlDialect {}, sql).expect("parses");
        statements.iter().try_for_each(check).map_err(|e| e.to_string())
    }

    #[test]
    fn client_session_statements_pass_and_writes_do_not() {
        for sql in [
            "SELECT 1",
            "SET extra_float_digits = 3",
            "SET application_name = 'PostgreSQL JDBC Driver'",
            "SET DateStyle = 'ISO'",
            "SET TIME ZONE 'UTC'",
            "SET statement_timeout = 1000",
            "BEGIN",
            "BEGIN READ ONLY",
            "COMMIT",
            "ROLLBACK",
            "SHOW search_path",
            "DECLARE c CURSOR FOR SELECT * FROM health",
            "FETCH 10 FROM c",
            "CLOSE c",
            "COPY (SELECT * FROM health) TO STDOUT WITH (FORMAT csv, HEADER)",
        ] {
            verdict(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
        for (sql, code) in [
            ("SET datafusion.execution.batch_size = 1", "25006"),
            ("SET no_such_setting = 1", "42704"),
            ("INSERT INTO accounts VALUES ('a')", "25006"),
            ("DROP TABLE accounts", "25006"),
            ("COPY events TO '/tmp/x.csv'", "25006"),
            ("SELECT * FROM '/etc/passwd'", "25006"),
            ("DECLARE c CURSOR FOR SELECT * FROM '/etc/passwd'", "25006"),
            ("COPY (SELECT * FROM '/etc/passwd') TO STDOUT", "25006"),
            ("COPY events TO STDOUT", "25006"),
        ] {
            let e = verdict(sql).expect_err(sql);
            assert!(e.contains(code), "{sql}: {e}");
        }
    }
}
