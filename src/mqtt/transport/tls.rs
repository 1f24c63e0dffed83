//! TLS listener setup: certificate chain and private key from PEM files (EMQX 4's
//! `listener.ssl.external.certfile` / `keyfile`), rustls with the `ring` provider, TLS 1.2 and
//! 1.3, no client certificates.

use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use thiserror::Error;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::TlsAcceptor;

/// Where the server's certificate and key are.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct TlsConfig {
    /// PEM file with the certificate chain, leaf first.
    pub certfile: PathBuf,
    /// PEM file with the private key (PKCS#8, PKCS#1 or SEC1).
    pub keyfile: PathBuf,
}

/// Why a TLS listener could not be set up.
#[derive(Debug, Error)]
pub enum TlsSetupError {
    /// A file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// The certificate file has no certificate.
    #[error("{0}: no certificate found")]
    NoCertificate(String),
    /// The key file has no private key.
    #[error("{0}: no private key found")]
    NoKey(String),
    /// rustls refused the pair (key does not match, unsupported algorithm, ...).
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

fn open(path: &Path) -> Result<BufReader<std::fs::File>, TlsSetupError> {
    std::fs::File::open(path)
        .map(BufReader::new)
        .map_err(|source| TlsSetupError::Io {
            path: path.display().to_string(),
            source,
        })
}

/// Reads the PEM files and builds an acceptor.
pub fn acceptor(cfg: &TlsConfig) -> Result<TlsAcceptor, TlsSetupError> {
    let io_err = |path: &Path| {
        let path = path.display().to_string();
        move |source| TlsSetupError::Io {
            path: path.clone(),
            source,
        }
    };
    let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut open(&cfg.certfile)?)
        .collect::<Result<_, _>>()
        .map_err(io_err(&cfg.certfile))?;
    if certs.is_empty() {
        return Err(TlsSetupError::NoCertificate(
            cfg.certfile.display().to_string(),
        ));
    }
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut open(&cfg.keyfile)?)
        .map_err(io_err(&cfg.keyfile))?
        .ok_or_else(|| TlsSetupError::NoKey(cfg.keyfile.display().to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}
