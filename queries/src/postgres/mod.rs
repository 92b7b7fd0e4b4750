//! The analyst session over the Postgres wire protocol, served by datafusion-postgres: its
//! Postgres compatibility (pg_catalog and the catalog functions psql, JDBC and BI tools read,
//! the extended protocol with parameters, cursors, `SET`/`SHOW`, transactions) behind vigil's
//! read-only guard ([`guard::ReadOnlyHook`], first of the hooks), with SCRAM-SHA-256 logins
//! ([`auth`]), TLS ([`tls`]), `COPY (query) TO STDOUT` ([`copy`]) and cancel requests and
//! statement timeouts that stop a query while its rows stream ([`interrupt`]). Every refused statement
//! answers with a SQLSTATE and leaves the session usable; a failed login closes only that
//! connection.

pub mod auth;
pub mod catalog_functions;
pub mod copy;
pub mod guard;
pub mod interrupt;
pub mod tls;

use std::fmt::Debug;
use std::net::SocketAddr;
use std::sync::Arc;

use datafusion::prelude::SessionContext;
use datafusion_postgres::hooks::cursor::CursorStatementHook;
use datafusion_postgres::hooks::set_show::SetShowHook;
use datafusion_postgres::hooks::transactions::TransactionStatementHook;
use datafusion_postgres::{DfSessionService, QueryHook};
use pgwire::api::auth::DefaultServerParameterProvider;
use pgwire::api::cancel::DefaultCancelHandler;
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::{ConnectionManager, PgWireServerHandlers};
use tokio::net::TcpListener;

pub use auth::{AuthMethod, Credentials};
pub use interrupt::ResultLimits;
pub use tls::TlsFiles;

use crate::context::Analyst;
use crate::error::{QueryError, Result};

/// The handlers of one connection: its own login state, the shared query service.
struct ConnectionHandlers {
    login: Arc<auth::Login>,
    session: Arc<interrupt::Interruptible>,
    cancel: Arc<DefaultCancelHandler>,
}

impl PgWireServerHandlers for ConnectionHandlers {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        self.session.clone()
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        self.session.clone()
    }

    fn startup_handler(&self) -> Arc<impl pgwire::api::auth::StartupHandler> {
        self.login.clone()
    }

    fn cancel_handler(&self) -> Arc<impl pgwire::api::cancel::CancelHandler> {
        self.cancel.clone()
    }
}

/// The server: a listener, the session context it serves and the login it accepts.
pub struct PgServer {
    listener: TcpListener,
    context: Arc<SessionContext>,
    creds: Credentials,
    method: AuthMethod,
    /// The TLS acceptor and the certificate chain (PEM), when TLS is configured.
    tls: Option<(tokio_rustls::TlsAcceptor, Arc<Vec<u8>>)>,
    limits: ResultLimits,
}

impl Debug for PgServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgServer")
            .field("addr", &self.listener.local_addr().ok())
            .field("method", &self.method)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

/// The hooks every statement passes, in order: the guard, then datafusion-postgres's own.
fn hooks() -> Vec<Arc<dyn QueryHook>> {
    vec![
        Arc::new(guard::ReadOnlyHook),
        Arc::new(copy::CopyToStdoutHook),
        Arc::new(CursorStatementHook),
        Arc::new(SetShowHook),
        Arc::new(TransactionStatementHook),
    ]
}

impl PgServer {
    /// Binds `addr` (port 0 picks a free port; see [`PgServer::local_addr`]) to serve
    /// `analyst`'s tables to `creds`, proven with `method`.
    pub async fn bind(addr: SocketAddr, analyst: &Analyst, creds: Credentials, method: AuthMethod) -> Result<PgServer> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| QueryError::io(addr.to_string(), e))?;
        Ok(PgServer {
            listener,
            context: Arc::new(analyst.context().clone()),
            creds,
            method,
            tls: None,
            limits: ResultLimits::default(),
        })
    }

    /// Bounds what one query may send (rows, bytes of row data); past a bound the query ends
    /// with SQLSTATE 54000 and a message naming the setting.
    pub fn with_limits(mut self, limits: ResultLimits) -> PgServer {
        self.limits = limits;
        self
    }

    /// Offers TLS with the certificate and key of `files` (read now: a bad file fails here, with
    /// its path). SCRAM logins over TLS bind the password proof to the certificate
    /// (SCRAM-SHA-256-PLUS), so a man in the middle cannot relay them.
    pub fn with_tls(mut self, files: &TlsFiles) -> Result<PgServer> {
        self.tls = Some((files.acceptor()?, Arc::new(files.cert_pem()?)));
        Ok(self)
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> Result<SocketAddr> {
        self.listener.local_addr().map_err(|e| QueryError::io("listener", e))
    }

    /// Serves connections until `shutdown` completes. Each connection runs in its own task; one
    /// failing (bad password, protocol error, client gone) never stops the server.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) -> Result<()> {
        let session = Arc::new(interrupt::Interruptible::new(
            Arc::new(DfSessionService::new_with_hooks(self.context.clone(), hooks())),
            self.limits,
        ));
        let connections = Arc::new(ConnectionManager::new());
        let cancel = Arc::new(DefaultCancelHandler::new(connections.clone()));
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
            let handlers = ConnectionHandlers {
                login: Arc::new(auth::Login::new(
                    self.method,
                    &self.creds,
                    self.tls.as_ref().map(|(_, pem)| pem.as_slice()),
                    params.clone(),
                    connections.clone(),
                )),
                session: session.clone(),
                cancel: cancel.clone(),
            };
            let tls = self.tls.as_ref().map(|(acceptor, _)| acceptor.clone());
            tokio::spawn(async move {
                if let Err(e) = pgwire::tokio::process_socket(socket, tls, handlers).await {
                    tracing::debug!("connection from {peer} ended: {e}");
                }
            });
        }
    }
}
