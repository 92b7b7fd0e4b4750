//! TLS for the Postgres server: a certificate chain and its private key from PEM files (a CA's
//! or a self-signed one), through rustls with the ring provider (the one pgwire uses).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::crypto::ring;

use crate::error::{QueryError, Result};

/// Where the server's certificate chain and private key are (PEM).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

fn bad(path: &Path, detail: impl std::fmt::Display) -> QueryError {
    QueryError::Tls {
        path: path.display().to_string(),
        detail: detail.to_string(),
    }
}

/// rustls's ring provider. rustls 0.23.48 deprecates it for lacking post-quantum key exchange;
/// pgwire's SCRAM and the rest of the tree use ring, and the alternative (aws-lc-rs) is a
/// second C build. Classical key exchange (X25519, P-256) is what Postgres clients offer today.
#[allow(deprecated)]
fn ring_provider() -> tokio_rustls::rustls::crypto::CryptoProvider {
    ring::default_provider()
}

impl TlsFiles {
    /// The files of a setting pair (`--tls-cert`/`--tls-key`, `[sql] tls_cert`/`tls_key`): TLS
    /// when both are given.
    pub fn from_pair(cert: Option<&PathBuf>, key: Option<&PathBuf>) -> Option<TlsFiles> {
        Some(TlsFiles {
            cert: cert?.clone(),
            key: key?.clone(),
        })
    }

    /// The certificate chain as PEM text (SCRAM's channel binding hashes its first certificate).
    pub fn cert_pem(&self) -> Result<Vec<u8>> {
        std::fs::read(&self.cert).map_err(|e| bad(&self.cert, e))
    }

    /// The acceptor that wraps each connection asking for TLS.
    pub fn acceptor(&self) -> Result<TlsAcceptor> {
        let certs = CertificateDer::pem_file_iter(&self.cert)
            .map_err(|e| bad(&self.cert, e))?
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| bad(&self.cert, e))?;
        if certs.is_empty() {
            return Err(bad(&self.cert, "no certificate in the file"));
        }
        let key = PrivateKeyDer::from_pem_file(&self.key).map_err(|e| bad(&self.key, e))?;
        let config = ServerConfig::builder_with_provider(Arc::new(ring_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| bad(&self.cert, e))?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| bad(&self.key, e))?;
        Ok(TlsAcceptor::from(Arc::new(config)))
    }
}
