//! Cancel requests and `statement_timeout` for the whole of a query, rows included. pgwire
//! races a cancel request only against the handler's call, which for DataFusion plans the query
//! and returns a lazy row stream; the work happens while the rows are sent. This wrapper gives
//! the connection's cancel handle a new signal once the rows start (pgwire's is gone by then)
//! and ends the row stream with SQLSTATE 57014 when a cancel request comes or the session's
//! `statement_timeout` passes, or with SQLSTATE 54000 once it passes the server's
//! [`ResultLimits`].

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use datafusion_postgres::DfSessionService;
use futures::future::{BoxFuture, FutureExt};
use futures::{Sink, StreamExt, stream};
use pgwire::api::portal::Portal;
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{Response, SendableRowStream};
use pgwire::api::store::PortalStore;
use pgwire::api::{ClientInfo, ClientPortalStore, ConnectionHandle};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;

use super::guard::user_error;

/// How much one query may send: rows and bytes of row data (`None`: no limit).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResultLimits {
    pub max_rows: Option<u64>,
    pub max_bytes: Option<u64>,
}

impl ResultLimits {
    /// The default of `[sql] max_result_rows` and `vigil serve --max-result-rows`.
    pub const DEFAULT_MAX_ROWS: u64 = 10_000_000;
    /// The default of `[sql] max_result_bytes` and `vigil serve --max-result-bytes` (1 GiB).
    pub const DEFAULT_MAX_BYTES: u64 = 1 << 30;

    /// The limits of the settings, where 0 means no limit.
    pub fn from_settings(max_rows: u64, max_bytes: u64) -> Self {
        ResultLimits {
            max_rows: (max_rows > 0).then_some(max_rows),
            max_bytes: (max_bytes > 0).then_some(max_bytes),
        }
    }

    /// The error once a result passes a limit (54000, program_limit_exceeded), if it has.
    fn check(&self, rows: u64, bytes: u64) -> Option<PgWireError> {
        match (self.max_rows, self.max_bytes) {
            (Some(max), _) if rows > max => Some(user_error(
                "54000",
                format!(
                    "the result has more than {max} rows, the server's limit per query ([sql] max_result_rows): add a LIMIT or aggregate"
                ),
            )),
            (_, Some(max)) if bytes > max => Some(user_error(
                "54000",
                format!(
                    "the result has more than {max} bytes, the server's limit per query ([sql] max_result_bytes): select fewer columns or rows"
                ),
            )),
            _ => None,
        }
    }
}

/// The session service with queries that can be cancelled or timed out while their rows stream,
/// and results bounded by [`ResultLimits`].
pub struct Interruptible {
    inner: Arc<DfSessionService>,
    limits: ResultLimits,
}

impl Interruptible {
    pub fn new(inner: Arc<DfSessionService>, limits: ResultLimits) -> Self {
        Interruptible { inner, limits }
    }
}

/// Why a query stops early: a cancel request or the statement timeout.
type Stop = BoxFuture<'static, &'static str>;

/// What can stop the query starting now on `client`'s connection: its cancel handle and the
/// deadline of its `statement_timeout`.
#[derive(Clone)]
struct Stoppers {
    handle: Option<Arc<ConnectionHandle>>,
    deadline: Option<tokio::time::Instant>,
}

impl Stoppers {
    fn of<C: ClientInfo + ?Sized>(client: &C) -> Stoppers {
        // The key datafusion-postgres keeps `SET statement_timeout` under, in milliseconds.
        let timeout = client
            .metadata()
            .get("statement_timeout_ms")
            .and_then(|ms| ms.parse::<u64>().ok())
            .filter(|ms| *ms > 0)
            .map(Duration::from_millis);
        Stoppers {
            handle: client
                .session_extensions()
                .get::<Arc<ConnectionHandle>>()
                .map(|h| (*h).clone()),
            deadline: timeout.map(|t| tokio::time::Instant::now() + t),
        }
    }

    fn timeout(&self) -> BoxFuture<'static, &'static str> {
        match self.deadline {
            Some(at) => async move {
                tokio::time::sleep_until(at).await;
                "canceling statement due to statement timeout"
            }
            .boxed(),
            None => std::future::pending().boxed(),
        }
    }

    /// The stop while the rows stream. pgwire's own cancel signal watched the planning and is
    /// gone by now (replacing it earlier would fire pgwire's receiver): the connection's cancel
    /// handle gets a new signal for the rows.
    async fn while_streaming(&self) -> Stop {
        let cancel: BoxFuture<'static, &'static str> = match &self.handle {
            Some(handle) => {
                let rx = handle.start_query().await;
                async move {
                    match rx.await {
                        Ok(()) => "canceling statement due to user request",
                        // The next query replaced the signal.
                        Err(_) => std::future::pending().await,
                    }
                }
                .boxed()
            }
            None => std::future::pending().boxed(),
        };
        futures::future::select(cancel, self.timeout())
            .map(|either| either.factor_first().0)
            .boxed()
    }
}

fn canceled(why: &str) -> PgWireError {
    user_error("57014", why.to_string())
}

/// `rows`, ending with a 57014 error as soon as a cancel request or the timeout comes, or with
/// a 54000 error when they pass `limits`.
fn until_stopped(rows: SendableRowStream, stoppers: Stoppers, limits: ResultLimits) -> SendableRowStream {
    enum State {
        Start(SendableRowStream, Stoppers),
        Streaming(SendableRowStream, Stop, u64, u64),
    }
    Box::pin(stream::unfold(
        Some(State::Start(rows, stoppers)),
        move |state| async move {
            let (mut rows, mut stop, sent_rows, sent_bytes) = match state? {
                State::Start(rows, stoppers) => (rows, stoppers.while_streaming().await, 0, 0),
                State::Streaming(rows, stop, n, b) => (rows, stop, n, b),
            };
            tokio::select! {
                biased;
                why = &mut stop => Some((Err(canceled(why)), None)),
                row = rows.next() => match row? {
                    Ok(row) => {
                        let (n, b) = (sent_rows + 1, sent_bytes + row.data.len() as u64);
                        match limits.check(n, b) {
                            Some(e) => Some((Err(e), None)),
                            None => Some((Ok(row), Some(State::Streaming(rows, stop, n, b)))),
                        }
                    }
                    Err(e) => Some((Err(e), Some(State::Streaming(rows, stop, sent_rows, sent_bytes)))),
                },
            }
        },
    ))
}

/// `response` with its rows ended by a cancel request, the timeout or the limits.
fn interruptible(response: Response, stoppers: &Stoppers, limits: ResultLimits) -> Response {
    match response {
        Response::Query(mut q) => {
            let rows = std::mem::replace(q.data_rows(), Box::pin(stream::empty()));
            *q.data_rows() = until_stopped(rows, stoppers.clone(), limits);
            Response::Query(q)
        }
        other => other,
    }
}

/// The handler's call (planning) within the statement timeout; pgwire races it against a
/// cancel request itself.
async fn planned<T>(work: impl std::future::Future<Output = PgWireResult<T>>, stoppers: &Stoppers) -> PgWireResult<T> {
    tokio::select! {
        why = stoppers.timeout() => Err(canceled(why)),
        result = work => result,
    }
}

#[async_trait]
impl SimpleQueryHandler for Interruptible {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let stoppers = Stoppers::of(&*client);
        let responses = planned(SimpleQueryHandler::do_query(&*self.inner, client, query), &stoppers).await?;
        Ok(responses
            .into_iter()
            .map(|r| interruptible(r, &stoppers, self.limits))
            .collect())
    }
}

#[async_trait]
impl ExtendedQueryHandler for Interruptible {
    type Statement = <DfSessionService as ExtendedQueryHandler>::Statement;
    type QueryParser = <DfSessionService as ExtendedQueryHandler>::QueryParser;

    fn query_parser(&self) -> Arc<Self::QueryParser> {
        self.inner.query_parser()
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Self::Statement>,
        max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let stoppers = Stoppers::of(&*client);
        let response = planned(
            ExtendedQueryHandler::do_query(&*self.inner, client, portal, max_rows),
            &stoppers,
        )
        .await?;
        Ok(interruptible(response, &stoppers, self.limits))
    }
}
