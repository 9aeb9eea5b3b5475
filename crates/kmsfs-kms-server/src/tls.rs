//! TLS on the TCP listener (`--tls-cert`, `--tls-key`): rustls with the
//! ring provider, TLS 1.2 and 1.3, no client certificates (callers are
//! authenticated by their SigV4 signature, as at AWS).
//!
//! With TLS a captured request can be neither read nor replayed by whoever
//! sits on the network, which is why the server keeps no replay cache.

use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// The certificate chain and private key files of the listener.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: std::path::PathBuf,
    pub key: std::path::PathBuf,
}

fn invalid(what: &str, path: &Path, e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidInput,
        format!("{what} {}: {e}", path.display()),
    )
}

/// The acceptor for `files`: the chain (leaf first) and its key, in PEM.
pub(crate) fn acceptor(files: &TlsFiles) -> std::io::Result<TlsAcceptor> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|e| invalid("cannot read the TLS certificate", &files.cert, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| invalid("cannot read the TLS certificate", &files.cert, e))?;
    if chain.is_empty() {
        return Err(invalid(
            "no TLS certificate in",
            &files.cert,
            "expected PEM CERTIFICATE blocks",
        ));
    }
    // The key's text never reaches an error message: only the parser's kind
    // of failure does.
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| invalid("cannot read the TLS private key", &files.key, e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(std::io::Error::other)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| {
            invalid(
                "the TLS certificate and key do not make a pair",
                &files.cert,
                e,
            )
        })?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}
