//! TLS on the control connections ([`Server::with_tls`](super::Server::with_tls)): rustls with the ring provider
//! (TLS 1.3 and 1.2). Only the control connection is wrapped; audio keeps its own AEAD (`PROTOCOL.md`), keyed
//! by the media key that then travels inside TLS.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::error::DriverError;

/// Longest a client may take to complete the TLS handshake before its connection is dropped (the core never
/// sees a connection that did not finish it).
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A rustls server configuration from PEM files: `cert` holds the certificate chain (leaf first, e.g. Let's
/// Encrypt's `fullchain.pem`), `key` its private key (PKCS #8, PKCS #1 or SEC1). Errors name the file and why.
pub fn server_config_from_pem(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, DriverError> {
    let tls_error = |path: &Path, reason: String| DriverError::Tls { path: path.to_path_buf(), reason };
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .map_err(|e| tls_error(cert, e.to_string()))?;
    if chain.is_empty() {
        return Err(tls_error(cert, "no certificate in the file".into()));
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| tls_error(key, e.to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_error(cert, e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .map_err(|e| tls_error(key, format!("does not match the certificate or is unusable: {e}")))?;
    Ok(Arc::new(config))
}
