//! `COPY (query) TO STDOUT`, what psql's `\copy (SELECT …) TO 'file'` sends: the query's rows
//! go to the client over the COPY protocol (CSV with `FORMAT csv` / `CSV`, else Postgres's text
//! format; `HEADER` and `DELIMITER` honoured) and the client writes its own file. The server
//! never touches a file: every other `COPY` stays refused by the guard.

use std::sync::Arc;

use arrow_pg::datatypes::arrow_schema_to_pg_fields;
use arrow_pg::encoder::encode_value;
use async_trait::async_trait;
use datafusion::common::ParamValues;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::{
    CopyLegacyCsvOption, CopyLegacyOption, CopyOption, CopySource, CopyTarget, Query, Statement,
};
use datafusion_postgres::QueryHook;
use datafusion_postgres::hooks::HookClient;
use futures::{StreamExt, stream};
use pgwire::api::ClientInfo;
use pgwire::api::portal::Format;
use pgwire::api::results::{CopyCsvOptions, CopyEncoder, CopyResponse, CopyTextOptions, Response};
use pgwire::error::PgWireResult;
use pgwire::messages::copy::CopyData;

use super::guard::user_error;

/// Answers `COPY (query) TO STDOUT`; passes every other statement on.
#[derive(Debug, Default)]
pub struct CopyToStdoutHook;

/// The query of a `COPY (query) TO STDOUT`, if `statement` is one.
pub fn copy_out_query(statement: &Statement) -> Option<&Query> {
    match statement {
        Statement::Copy {
            source: CopySource::Query(query),
            to: true,
            target: CopyTarget::Stdout,
            ..
        } => Some(query),
        _ => None,
    }
}

/// How the rows are written.
#[derive(Debug, Clone, PartialEq, Eq)]
struct CopyFormat {
    csv: bool,
    header: bool,
    delimiter: Option<char>,
}

fn format_of(statement: &Statement) -> CopyFormat {
    let mut f = CopyFormat {
        csv: false,
        header: false,
        delimiter: None,
    };
    if let Statement::Copy {
        options,
        legacy_options,
        ..
    } = statement
    {
        for o in options {
            match o {
                CopyOption::Format(name) => f.csv = name.value.eq_ignore_ascii_case("csv"),
                CopyOption::Header(h) => f.header = *h,
                CopyOption::Delimiter(c) => f.delimiter = Some(*c),
                _ => {}
            }
        }
        for o in legacy_options {
            match o {
                CopyLegacyOption::Csv(csv) => {
                    f.csv = true;
                    f.header |= csv.iter().any(|c| matches!(c, CopyLegacyCsvOption::Header));
                }
                CopyLegacyOption::Header => f.header = true,
                CopyLegacyOption::Delimiter(c) => f.delimiter = Some(*c),
                _ => {}
            }
        }
    }
    f
}

/// The header line: column names, quoted in CSV where they need it.
fn header_line(names: &[String], format: &CopyFormat) -> String {
    let delimiter = format.delimiter.unwrap_or(if format.csv { ',' } else { '\t' });
    let quote = |n: &String| {
        if format.csv && (n.contains(delimiter) || n.contains('"') || n.contains('\n')) {
            format!("\"{}\"", n.replace('"', "\"\""))
        } else {
            n.clone()
        }
    };
    let mut line = names.iter().map(quote).collect::<Vec<_>>().join(&delimiter.to_string());
    line.push('\n');
    line
}

async fn copy_out(query: &Query, format: CopyFormat, ctx: &SessionContext) -> PgWireResult<Response> {
    let df = ctx
        .sql(&query.to_string())
        .await
        .map_err(|e| user_error("42601", e.to_string()))?;
    let schema = Arc::new(df.schema().as_arrow().clone());
    let fields = Arc::new(arrow_schema_to_pg_fields(&schema, &Format::UnifiedText, None)?);
    let columns = fields.len();
    let header = format.header.then(|| {
        let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
        Ok(CopyData::new(header_line(&names, &format).into()))
    });
    let batches = df
        .execute_stream()
        .await
        .map_err(|e| user_error("XX000", e.to_string()))?;
    let new_encoder = {
        let fields = fields.clone();
        move || match (format.csv, format.delimiter) {
            (true, d) => {
                let mut o = CopyCsvOptions::default();
                if let Some(d) = d {
                    o.delimiter = d.to_string().into();
                }
                CopyEncoder::new_csv(fields.clone(), o)
            }
            (false, d) => {
                let mut o = CopyTextOptions::default();
                if let Some(d) = d {
                    o.delimiter = d.to_string().into();
                }
                CopyEncoder::new_text(fields.clone(), o)
            }
        }
    };
    let rows = batches
        .map(move |batch| -> Vec<PgWireResult<CopyData>> {
            let batch = match batch {
                Ok(b) => b,
                Err(e) => return vec![Err(user_error("XX000", e.to_string()))],
            };
            let mut encoder = new_encoder();
            let mut out = Vec::with_capacity(batch.num_rows());
            for row in 0..batch.num_rows() {
                for (i, column) in batch.columns().iter().enumerate() {
                    if let Err(e) = encode_value(&mut encoder, column, row, batch.schema().field(i), &fields[i]) {
                        return vec![Err(e)];
                    }
                }
                out.push(Ok(encoder.take_copy()));
            }
            out
        })
        .flat_map(stream::iter);
    let data = stream::iter(header).chain(rows);
    Ok(Response::CopyOut(CopyResponse::new(0, columns, data)))
}

#[async_trait]
impl QueryHook for CopyToStdoutHook {
    async fn handle_simple_query(
        &self,
        statement: &Statement,
        session_context: &SessionContext,
        _client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        let query = copy_out_query(statement)?;
        Some(copy_out(query, format_of(statement), session_context).await)
    }

    async fn handle_extended_parse_query(
        &self,
        statement: &Statement,
        _session_context: &SessionContext,
        _client: &(dyn ClientInfo + Send + Sync),
    ) -> Option<PgWireResult<LogicalPlan>> {
        copy_out_query(statement).map(|_| {
            Err(user_error(
                "0A000",
                "COPY TO STDOUT is served on the simple query protocol (psql's \\copy)".into(),
            ))
        })
    }

    async fn handle_extended_query(
        &self,
        _statement: &Statement,
        _logical_plan: &LogicalPlan,
        _params: &ParamValues,
        _session_context: &SessionContext,
        _client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        None
    }
}

#[cfg(test)]
mod tests {
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    use super::*;

    fn parse(sql: &str) -> Statement {
        Parser::parse_sql(&PostgreSqlDialect {}, sql).expect("parses").remove(0)
    }

    #[test]
    fn only_copy_of_a_query_to_stdout_is_served_with_its_options() {
        let s = parse("COPY (SELECT 1 AS a) TO STDOUT WITH (FORMAT csv, HEADER)");
        assert!(copy_out_query(&s).is_some());
        assert_eq!(
            format_of(&s),
            CopyFormat {
                csv: true,
                header: true,
                delimiter: None
            }
        );
        let s = parse("COPY (SELECT 1) TO STDOUT CSV HEADER DELIMITER ';'");
        assert_eq!(
            format_of(&s),
            CopyFormat {
                csv: true,
                header: true,
                delimiter: Some(';')
            }
        );
        for refused in [
            "COPY events TO STDOUT",
            "COPY (SELECT 1) TO '/tmp/x.csv'",
            "COPY events FROM STDIN",
            "COPY (SELECT 1) TO PROGRAM 'sh'",
        ] {
            assert!(copy_out_query(&parse(refused)).is_none(), "{refused}");
        }
        let f = CopyFormat {
            csv: true,
            header: true,
            delimiter: None,
        };
        assert_eq!(header_line(&["a".into(), "b,c".into()], &f), "a,\"b,c\"\n");
    }
}
