//! Logins: SCRAM-SHA-256 (the default, what Postgres itself uses) or MD5 when configured, for
//! the one analyst account; an unknown user fails exactly like a wrong password.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use futures::Sink;
use pgwire::api::auth::md5pass::{Md5PasswordAuthStartupHandler, hash_md5_password};
use pgwire::api::auth::sasl::SASLAuthStartupHandler;
use pgwire::api::auth::sasl::scram::{ScramAuth, gen_salted_password};
use pgwire::api::auth::{AuthSource, DefaultServerParameterProvider, LoginInfo, Password, StartupHandler};
use pgwire::api::{ClientInfo, ConnectionManager};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};

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

/// How clients prove the password (`[sql] auth`, `vigil serve --auth`), named as Postgres's
/// `password_encryption` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize, clap::ValueEnum)]
pub enum AuthMethod {
    /// SCRAM-SHA-256 (RFC 7677), as Postgres 14+ does by default.
    #[default]
    #[serde(rename = "scram-sha-256")]
    #[value(name = "scram-sha-256")]
    ScramSha256,
    /// MD5, for old clients only: Postgres deprecates it.
    #[serde(rename = "md5")]
    #[value(name = "md5")]
    Md5,
}

/// SCRAM's iteration count (Postgres's default).
const SCRAM_ITERATIONS: usize = 4096;

/// The password to check a login against: the configured one for the configured user, a random
/// one nobody knows for anyone else.
fn password_for(creds: &Credentials, login: &LoginInfo) -> String {
    if login.user() == Some(creds.user.as_str()) {
        creds.password.clone()
    } else {
        format!("{:x}", rand::random::<u128>())
    }
}

#[derive(Debug)]
struct ScramSource {
    creds: Credentials,
}

#[async_trait]
impl AuthSource for ScramSource {
    async fn get_password(&self, login: &LoginInfo) -> PgWireResult<Password> {
        let salt = rand::random::<[u8; 16]>().to_vec();
        let salted = gen_salted_password(&password_for(&self.creds, login), &salt, SCRAM_ITERATIONS);
        Ok(Password::new(Some(salt), salted))
    }
}

#[derive(Debug)]
pub(crate) struct Md5Source {
    creds: Credentials,
}

#[async_trait]
impl AuthSource for Md5Source {
    async fn get_password(&self, login: &LoginInfo) -> PgWireResult<Password> {
        let salt = rand::random::<[u8; 4]>().to_vec();
        let user = login.user().unwrap_or_default();
        let hash = hash_md5_password(user, &password_for(&self.creds, login), &salt);
        Ok(Password::new(Some(salt), hash.into_bytes()))
    }
}

/// The startup handler of one connection (each keeps that connection's handshake state).
pub(crate) enum Login {
    Scram(SASLAuthStartupHandler<DefaultServerParameterProvider>),
    Md5(Md5PasswordAuthStartupHandler<Md5Source, DefaultServerParameterProvider>),
}

impl Login {
    /// A handler for one new connection, registered with `connections` (query cancellation);
    /// with the server's certificate chain `cert_pem` (TLS), SCRAM offers channel binding.
    pub fn new(
        method: AuthMethod,
        creds: &Credentials,
        cert_pem: Option<&[u8]>,
        params: Arc<DefaultServerParameterProvider>,
        connections: Arc<ConnectionManager>,
    ) -> Login {
        match method {
            AuthMethod::ScramSha256 => {
                let mut scram = ScramAuth::new(Arc::new(ScramSource { creds: creds.clone() }));
                scram.set_iterations(SCRAM_ITERATIONS);
                if let Some(pem) = cert_pem
                    && let Err(e) = scram.configure_certificate(pem)
                {
                    tracing::warn!(error = %e, "SCRAM without channel binding: the certificate could not be read for it");
                }
                Login::Scram(
                    SASLAuthStartupHandler::new(params)
                        .with_scram(scram)
                        .with_connection_manager(connections),
                )
            }
            AuthMethod::Md5 => Login::Md5(
                Md5PasswordAuthStartupHandler::new(Arc::new(Md5Source { creds: creds.clone() }), params)
                    .with_connection_manager(connections),
            ),
        }
    }
}

#[async_trait]
impl StartupHandler for Login {
    async fn on_startup<C>(&self, client: &mut C, message: PgWireFrontendMessage) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        match self {
            Login::Scram(h) => h.on_startup(client, message).await,
            Login::Md5(h) => h.on_startup(client, message).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_are_named_as_postgres_names_them() {
        #[derive(serde::Deserialize)]
        struct Sql {
            auth: AuthMethod,
        }
        let parse = |v: &str| serde_json::from_str::<Sql>(&format!("{{\"auth\":\"{v}\"}}")).map(|s| s.auth);
        assert_eq!(parse("scram-sha-256").expect("scram"), AuthMethod::ScramSha256);
        assert_eq!(parse("md5").expect("md5"), AuthMethod::Md5);
        assert!(parse("scram-sha256").is_err());
        use clap::ValueEnum;
        assert_eq!(
            AuthMethod::from_str("scram-sha-256", false),
            Ok(AuthMethod::ScramSha256)
        );
    }
}
