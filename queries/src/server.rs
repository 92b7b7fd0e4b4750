//! `vigil serve`: the analyst session over the Postgres wire protocol (pgwire), read-only.
//!
//! Clients log in with MD5 password authentication (what `psql` does with `PGPASSWORD`). Every
//! statement goes through [`Analyst::statements`], so only queries, `EXPLAIN` and `SHOW` run; a
//! refused statement is answered with SQLSTATE `25006` (read_only_sql_transaction) and the
//! connection stays usable. A failed login closes only that connection. Both the simple query
//! protocol (psql) and the extended one (drivers such as psycopg, JDBC) are served; statements
//! with `$n` parameters are refused (inline literals instead).

use std::collections::hash_map::RandomState;
use std::fmt::Debug;
use std::hash::{BuildHasher, Hasher};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow::array::RecordBatch;
use arrow_pg::datatypes::{arrow_schema_to_pg_fields, encode_recordbatch};
use async_trait::async_trait;
use futures::{StreamExt, stream};
use pgwire::api::auth::md5pass::{Md5PasswordAuthStartupHandler, hash_md5_password};
use pgwire::api::auth::{AuthSource, DefaultServerParameterProvider, LoginInfo, Password};
use pgwire::api::portal::Format;
use pgwire::api::portal::Portal;
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{FieldInfo, QueryResponse, Response};
use pgwire::api::stmt::QueryParser;
use pgwire::api::store::PortalStore;
use pgwire::api::{ClientInfo, ClientPortalStore, PgWireServerHandlers, Type};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::data::DataRow;
use tokio::net::TcpListener;

use crate::context::Analyst;
use crate::error::{QueryError, Result};

/// The one login the server accepts.
#[derive(Clone)]
pub struct Credentials {
    pub user: String,
    pub password: String,
}

impl Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

static SALT_COUNTER: AtomicU64 = AtomicU64::new(0);

fn random_salt() -> Vec<u8> {
    let mut h = RandomState::new().build_hasher();
    h.write_u64(SALT_COUNTER.fetch_add(1, Ordering::Relaxed));
    h.finish().to_le_bytes()[..4].to_vec()
}

#[derive(Debug)]
struct Md5Source {
    creds: Credentials,
}

#[async_trait]
impl AuthSource for Md5Source {
    async fn get_password(&self, login: &LoginInfo) -> PgWireResult<Password> {
        let salt = random_salt();
        let user = login.user().unwrap_or_default();
        // An unknown user gets a hash of a password nobody knows, so it fails like a wrong one.
        let password = if user == self.creds.user {
            self.creds.password.clone()
        } else {
            format!("{:x}", RandomState::new().build_hasher().finish())
        };
        let hash = hash_md5_password(user, &password, &salt);
        Ok(Password::new(Some(salt), hash.into_bytes()))
    }
}

/// Answers simple and extended queries from an [`Analyst`].
#[derive(Debug)]
pub struct QueryHandler {
    analyst: Arc<Analyst>,
    parser: Arc<ReadOnlyParser>,
}

/// A statement of the extended protocol: its SQL, checked and planned at Parse time.
#[derive(Debug, Clone)]
pub struct PlannedStatement {
    sql: String,
    schema: arrow::datatypes::SchemaRef,
}

/// Parses extended-protocol statements through the read-only guard and keeps their schema.
#[derive(Debug)]
pub struct ReadOnlyParser {
    analyst: Arc<Analyst>,
}

#[async_trait]
impl QueryParser for ReadOnlyParser {
    type Statement = PlannedStatement;

    async fn parse_sql<C>(
        &self,
        _client: &C,
        sql: &str,
        _types: &[Option<Type>],
    ) -> PgWireResult<Option<Self::Statement>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        if sql.trim().trim_matches(';').trim().is_empty() {
            return Ok(None);
        }
        if has_placeholder(sql) {
            return Err(user_error(
                "0A000",
                "statements with $n parameters are not supported: inline the values as literals".into(),
            ));
        }
        let df = self.analyst.sql(sql).await.map_err(to_pg_error)?;
        Ok(Some(PlannedStatement {
            sql: sql.to_string(),
            schema: Arc::new(df.schema().as_arrow().clone()),
        }))
    }

    fn get_parameter_types(&self, _stmt: &Self::Statement) -> PgWireResult<Vec<Type>> {
        Ok(Vec::new())
    }

    fn get_result_schema(
        &self,
        stmt: &Self::Statement,
        column_format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        arrow_schema_to_pg_fields(&stmt.schema, column_format.unwrap_or(&Format::UnifiedText), None)
    }
}

/// True when `sql` has a `$n` placeholder outside string literals and quoted identifiers.
fn has_placeholder(sql: &str) -> bool {
    let b = sql.as_bytes();
    let mut quote: Option<u8> = None;
    for i in 0..b.len() {
        match quote {
            Some(q) if b[i] == q => quote = None,
            Some(_) => {}
            None if b[i] == b'\'' || b[i] == b'"' => quote = Some(b[i]),
            None if b[i] == b'$' && b.get(i + 1).is_some_and(u8::is_ascii_digit) => return true,
            None => {}
        }
    }
    false
}

fn user_error(code: &str, message: String) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new("ERROR".to_owned(), code.to_owned(), message)))
}

fn to_pg_error(e: QueryError) -> PgWireError {
    match e {
        QueryError::Refused(m) => user_error("25006", format!("refused: {m}")),
        QueryError::DataFusion(datafusion::error::DataFusionError::SQL(..)) => user_error("42601", e.to_string()),
        other => user_error("XX000", other.to_string()),
    }
}

/// Runs a planned query and streams its rows in `format`.
async fn respond(df: datafusion::dataframe::DataFrame, format: &Format) -> PgWireResult<Response> {
    let schema = Arc::new(df.schema().as_arrow().clone());
    let fields = Arc::new(arrow_schema_to_pg_fields(&schema, format, None)?);
    let batches = df.execute_stream().await.map_err(|e| to_pg_error(e.into()))?;
    let f = fields.clone();
    let rows = batches
        .map(move |rb: datafusion::error::Result<RecordBatch>| {
            let it: Box<dyn Iterator<Item = PgWireResult<DataRow>> + Send + Sync> = match rb {
                Ok(rb) => encode_recordbatch(f.clone(), rb),
                Err(e) => Box::new(std::iter::once(Err(to_pg_error(e.into())))),
            };
            stream::iter(it)
        })
        .flatten();
    Ok(Response::Query(QueryResponse::new(fields, rows)))
}

#[async_trait]
impl SimpleQueryHandler for QueryHandler {
    async fn do_query<C>(&self, _client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
    {
        let frames = self.analyst.statements(query).await.map_err(to_pg_error)?;
        let mut out = Vec::with_capacity(frames.len());
        for df in frames {
            out.push(respond(df, &Format::UnifiedText).await?);
        }
        Ok(out)
    }
}

#[async_trait]
impl ExtendedQueryHandler for QueryHandler {
    type Statement = PlannedStatement;
    type QueryParser = ReadOnlyParser;

    fn query_parser(&self) -> Arc<Self::QueryParser> {
        self.parser.clone()
    }

    async fn do_query<C>(
        &self,
        _client: &mut C,
        portal: &Portal<Self::Statement>,
        _max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
    {
        if !portal.parameters.is_empty() {
            return Err(user_error(
                "0A000",
                "query parameters are not supported: inline the values as literals".into(),
            ));
        }
        let df = self
            .analyst
            .sql(&portal.statement.statement.sql)
            .await
            .map_err(to_pg_error)?;
        respond(df, &portal.result_column_format).await
    }
}

struct ConnectionHandlers {
    startup: Arc<Md5PasswordAuthStartupHandler<Md5Source, DefaultServerParameterProvider>>,
    query: Arc<QueryHandler>,
}

impl PgWireServerHandlers for ConnectionHandlers {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        self.query.clone()
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        self.query.clone()
    }

    fn startup_handler(&self) -> Arc<impl pgwire::api::auth::StartupHandler> {
        self.startup.clone()
    }
}

/// The server: a listener and the session it serves.
pub struct Server {
    listener: TcpListener,
    analyst: Arc<Analyst>,
    creds: Credentials,
}

impl Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("addr", &self.listener.local_addr().ok())
            .finish()
    }
}

impl Server {
    /// Binds `addr` (port 0 picks a free port; see [`Server::local_addr`]).
    pub async fn bind(addr: SocketAddr, analyst: Arc<Analyst>, creds: Credentials) -> Result<Server> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| QueryError::io(addr.to_string(), e))?;
        Ok(Server {
            listener,
            analyst,
            creds,
        })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> Result<SocketAddr> {
        self.listener.local_addr().map_err(|e| QueryError::io("listener", e))
    }

    /// Serves connections until `shutdown` completes. Each connection runs in its own task; one
    /// failing (bad password, protocol error, client gone) never stops the server.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) -> Result<()> {
        let query = Arc::new(QueryHandler {
            analyst: self.analyst.clone(),
            parser: Arc::new(ReadOnlyParser {
                analyst: self.analyst.clone(),
            }),
        });
        let params = Arc::new({
            let mut p = DefaultServerParameterProvider::default();
            p.default_transaction_read_only = true;
            p.is_superuser = false;
            p
        });
        tokio::pin!(shutdown);
        loop {
            let (socket, peer) = tokio::select! {
                _ = &mut shutdown => return Ok(()),
                accepted = self.listener.accept() => match accepted {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!("accept failed: {e}");
                        continue;
                    }
                },
            };
            // A startup handler per connection: the MD5 handler keeps the expected hash in it.
            let handlers = ConnectionHandlers {
                startup: Arc::new(Md5PasswordAuthStartupHandler::new(
                    Arc::new(Md5Source {
                        creds: self.creds.clone(),
                    }),
                    params.clone(),
                )),
                query: query.clone(),
            };
            tokio::spawn(async move {
                if let Err(e) = pgwire::tokio::process_socket(socket, None, handlers).await {
                    tracing::debug!("connection from {peer} ended: {e}");
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::has_placeholder;

    #[test]
    fn placeholders_outside_quotes() {
        assert!(has_placeholder("SELECT * FROM accounts WHERE arr > $1"));
        assert!(!has_placeholder("SELECT '$1', \"$2\" FROM accounts"));
        assert!(!has_placeholder("SELECT 1"));
    }
}
