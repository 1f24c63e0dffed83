//! TLS listener setup: certificate chain and private key from PEM files (EMQX 4's
//! `listener.ssl.external.certfile` / `keyfile`), rustls with the `ring` provider, TLS 1.2 and
//! 1.3. Client certificates as EMQX's `verify` / `fail_if_no_peer_cert` / `cacertfile`: with
//! `verify_peer` a certificate a client presents must chain to the CA file, and with
//! `fail_if_no_peer_cert` a client must present one.

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
    /// PEM file with the CA certificates client certificates are checked against.
    #[serde(default)]
    pub cacertfile: Option<PathBuf>,
    /// Check client certificates (EMQX `verify = verify_peer`); needs `cacertfile`.
    #[serde(default)]
    pub verify_peer: bool,
    /// With `verify_peer`, refuse clients that present no certificate.
    #[serde(default)]
    pub fail_if_no_peer_cert: bool,
}

impl TlsConfig {
    /// Server certificate and key only, no client certificates.
    pub fn new(certfile: PathBuf, keyfile: PathBuf) -> TlsConfig {
        TlsConfig {
            certfile,
            keyfile,
            cacertfile: None,
            verify_peer: false,
            fail_if_no_peer_cert: false,
        }
    }
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
    /// `verify_peer` without a CA file, or a CA file rustls cannot use.
    #[error("client certificate verification: {0}")]
    ClientVerifier(String),
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
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let builder = if cfg.verify_peer {
        let Some(ca) = &cfg.cacertfile else {
            return Err(TlsSetupError::ClientVerifier(
                "verify_peer needs cacertfile".to_owned(),
            ));
        };
        let mut roots = rustls::RootCertStore::empty();
        for c in rustls_pemfile::certs(&mut open(ca)?) {
            roots
                .add(c.map_err(io_err(ca))?)
                .map_err(|e| TlsSetupError::ClientVerifier(format!("{}: {e}", ca.display())))?;
        }
        if roots.is_empty() {
            return Err(TlsSetupError::NoCertificate(ca.display().to_string()));
        }
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
        let verifier = if cfg.fail_if_no_peer_cert {
            verifier
        } else {
            verifier.allow_unauthenticated()
        };
        let verifier = verifier
            .build()
            .map_err(|e| TlsSetupError::ClientVerifier(e.to_string()))?;
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let config = builder.with_single_cert(certs, key)?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}
