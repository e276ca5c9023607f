//! TLS on the control connection ([`ControlTls`], in [`ClientConfig::tls`](super::ClientConfig::tls)): rustls
//! with the ring provider (TLS 1.3 and 1.2), server certificates checked against the Mozilla roots or a CA file.

use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio_rustls::TlsConnector;

use crate::Error;

/// How the control connection is secured: the TLS client settings and the name the server's certificate must
/// carry. TLS protects the password or token, chat and the media keys (audio is sealed with those keys, so without
/// TLS an on-path attacker who reads the control connection can also read the audio).
#[derive(Clone)]
pub struct ControlTls {
    pub(super) connector: TlsConnector,
    pub(super) name: ServerName<'static>,
}

impl std::fmt::Debug for ControlTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlTls").field("name", &self.name).finish_non_exhaustive()
    }
}

impl ControlTls {
    /// Verifies the server's certificate against the Mozilla root certificates (webpki-roots, built in), as
    /// `server_name` (a DNS name, or an IP address the certificate names).
    pub fn public_roots(server_name: &str) -> Result<Self, Error> {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        Self::with_roots(server_name, roots)
    }

    /// Verifies the server's certificate against the CA certificate(s) in the PEM file `ca` only — a private CA,
    /// or the server's own self-signed certificate.
    pub fn with_ca_file(server_name: &str, ca: &Path) -> Result<Self, Error> {
        let bad = |e: String| Error::Tls(format!("{}: {e}", ca.display()));
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(ca).map_err(|e| bad(e.to_string()))? {
            roots.add(cert.map_err(|e| bad(e.to_string()))?).map_err(|e| bad(e.to_string()))?;
        }
        if roots.is_empty() {
            return Err(bad("no certificate in the file".into()));
        }
        Self::with_roots(server_name, roots)
    }

    /// Uses a rustls client configuration as it is (custom verification, client certificates, …).
    pub fn with_config(server_name: &str, config: Arc<rustls::ClientConfig>) -> Result<Self, Error> {
        let name = ServerName::try_from(server_name.to_string())
            .map_err(|_| Error::Tls(format!("`{server_name}` is not a DNS name or IP address")))?;
        Ok(Self { connector: TlsConnector::from(config), name })
    }

    fn with_roots(server_name: &str, roots: rustls::RootCertStore) -> Result<Self, Error> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Tls(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Self::with_config(server_name, Arc::new(config))
    }

    /// The name the server's certificate must carry.
    #[must_use]
    pub fn server_name(&self) -> String {
        self.name.to_str().into_owned()
    }
}
