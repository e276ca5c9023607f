//! Certificates for the control connections' TLS (`[tls]`): what clients will think of the configured one
//! ([`certificate_problems`], logged when the server starts) and a self-signed one for development
//! ([`self_signed`], the `voice-server gen-cert` subcommand).
//!
//! Clients verify the server's certificate with WebPKI rules (rustls): the certificate a server presents must be
//! an end-entity certificate. One made by a plain `openssl req -x509` is a CA certificate (`basicConstraints
//! CA:TRUE`), which every such client refuses (`CaUsedAsEndEntity`) even when told to trust exactly that file.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use voice_relay::driver::rustls;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, RootCertStore};

use crate::error::Error;

/// Why a certificate presented as a server's own is a CA certificate, and what to do instead.
pub const CA_AS_END_ENTITY: &str = "it is a CA certificate (basicConstraints CA:TRUE, what a plain `openssl req \
     -x509` makes), and clients refuse a CA certificate as a server's own (rustls / WebPKI: CaUsedAsEndEntity), even \
     when told to trust exactly this file; make a server certificate instead: `voice-server gen-cert HOSTNAME` for \
     development, or openssl with `-addext basicConstraints=critical,CA:FALSE -addext \
     subjectAltName=DNS:HOSTNAME`";

/// What clients will object to in the certificate chain in the PEM file `cert` at `unix_time_s`, as sentences
/// (empty: nothing). The chain's last certificate stands in for the root a client trusts (a self-signed
/// certificate is its own), so this checks the certificate's kind, its dates and that the chain is whole, not
/// that any client trusts the root. Host names are not checked (the server does not know which name clients
/// use). A file that cannot be read or parsed gives no sentence here: the TLS setup reports it.
#[must_use]
pub fn certificate_problems(cert: &Path, unix_time_s: u64) -> Vec<String> {
    let Ok(chain) = CertificateDer::pem_file_iter(cert).and_then(Iterator::collect::<Result<Vec<_>, _>>) else {
        return Vec::new();
    };
    let (Some(leaf), Some(last)) = (chain.first(), chain.last()) else { return Vec::new() };
    let mut roots = RootCertStore::empty();
    if roots.add(last.clone()).is_err() {
        return vec![format!("{}: the last certificate of the file cannot be parsed", cert.display())];
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let Ok(verifier) = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider).build() else {
        return Vec::new();
    };
    let Ok(name) = ServerName::try_from("name.invalid") else { return Vec::new() };
    let now = UnixTime::since_unix_epoch(Duration::from_secs(unix_time_s));
    let why = match verifier.verify_server_cert(leaf, &chain[1..], &name, &[], now) {
        Ok(_) => return Vec::new(),
        Err(rustls::Error::InvalidCertificate(e)) => match e {
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => return Vec::new(),
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => "it has expired".to_string(),
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "it is not valid yet (check the clock)".to_string()
            }
            CertificateError::UnknownIssuer | CertificateError::BadSignature if chain.len() == 1 => {
                "the file holds one certificate and it is not self-signed: clients also need the intermediate \
                 certificates, so give the whole chain (e.g. Let's Encrypt's fullchain.pem, not cert.pem)"
                    .to_string()
            }
            CertificateError::Other(other) if format!("{other:?}").contains("CaUsedAsEndEntity") => {
                CA_AS_END_ENTITY.to_string()
            }
            other => format!("clients will refuse it: {other}"),
        },
        Err(other) => format!("clients will refuse it: {other}"),
    };
    vec![format!("TLS certificate {}: {why}", cert.display())]
}

/// A self-signed certificate and its private key, PEM.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct SelfSigned {
    /// The certificate (an end-entity certificate for TLS servers, its own issuer).
    pub cert_pem: String,
    /// Its private key (ECDSA P-256, PKCS#8).
    pub key_pem: String,
    /// The last day it is valid, `YYYY-MM-DD` (UTC).
    pub not_after: String,
}

/// A self-signed server certificate for `names` (host names, or IP addresses, which become IP subject
/// alternative names), valid from the day before `unix_time_s` for `days` days: an end-entity certificate
/// (`CA:FALSE`, key usage digitalSignature, extended key usage serverAuth) that clients accept when they trust
/// this very file (e.g. `voice-client --ca-cert cert.pem`). For development and first deployments; on the
/// internet, prefer a certificate from a public CA.
pub fn self_signed(names: &[String], days: u32, unix_time_s: u64) -> Result<SelfSigned, Error> {
    use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, date_time_ymd};
    let refuse = |reason: String| Error::Certificate { reason };
    let first = names.first().ok_or_else(|| refuse("give at least one host name or IP address".into()))?;
    if !(1..=3650).contains(&days) {
        return Err(refuse(format!("the validity must be 1 to 3650 days, not {days}")));
    }
    if let Some(bad) = names.iter().find(|n| ServerName::try_from(n.as_str()).is_err()) {
        return Err(refuse(format!("{bad:?} is not a host name or an IP address")));
    }
    let mut params = CertificateParams::new(names.to_vec())
        .map_err(|e| refuse(format!("{names:?} are not host names or IP addresses: {e}")))?;
    params.distinguished_name.push(DnType::CommonName, first.as_str());
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let today = unix_time_s / 86_400;
    let date = |day: u64| {
        let (y, m, d) = civil_from_days(day);
        // Certificates hold years up to 9999 (and the clock is wrong far before that).
        (1970..=9000).contains(&y).then(|| (date_time_ymd(y, m, d), format!("{y:04}-{m:02}-{d:02}")))
    };
    let clock = || refuse(format!("the clock says {unix_time_s} s after 1970, which is not a usable date"));
    let (not_before, _) = date(today.saturating_sub(1)).ok_or_else(clock)?;
    let (not_after, last_day) = date(today + u64::from(days)).ok_or_else(clock)?;
    params.not_before = not_before;
    params.not_after = not_after;
    let key = KeyPair::generate().map_err(|e| refuse(format!("cannot generate a key: {e}")))?;
    let cert = params.self_signed(&key).map_err(|e| refuse(format!("cannot sign the certificate: {e}")))?;
    Ok(SelfSigned { cert_pem: cert.pem(), key_pem: key.serialize_pem(), not_after: last_day })
}

/// The proleptic Gregorian date (UTC) of the day `days` after 1970-01-01 (H. Hinnant's `civil_from_days`).
fn civil_from_days(days: u64) -> (i32, u8, u8) {
    let z = i64::try_from(days).unwrap_or(i64::MAX / 2) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    // Day 1–31 and month 1–12 by construction; the year fits for any day count this crate is given.
    (i32::try_from(year).unwrap_or(i32::MAX), month as u8, day as u8)
}

#[cfg(test)]
mod tests {
    use super::civil_from_days;

    #[test]
    fn days_become_calendar_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(59), (1970, 3, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(20_453), (2025, 12, 31));
        assert_eq!(civil_from_days(20_454), (2026, 1, 1));
    }
}
