//! TLS client configuration: trust anchors, cipher suite order, and the wording of certificate
//! refusals.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{ring, CryptoProvider};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use super::{CertificateProblem, TlsOptions, TransportError};

pub fn load_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let shown = path.display();
    let iter = CertificateDer::pem_file_iter(path).map_err(|e| match e {
        rustls_pki_types::pem::Error::Io(e) => format!("cannot read the CA file {shown}: {e}"),
        e => format!("the CA file {shown} is not PEM: {e}"),
    })?;
    let certs = iter
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("the CA file {shown} is not valid PEM: {e}"))?;
    if certs.is_empty() {
        return Err(format!(
            "the CA file {shown} holds no certificate (expected -----BEGIN CERTIFICATE-----)"
        ));
    }
    let mut roots = RootCertStore::empty();
    for cert in &certs {
        roots
            .add(cert.clone())
            .map_err(|e| format!("the CA file {shown} holds an unusable certificate: {e}"))?;
    }
    Ok(certs)
}

pub fn client_config(opts: &TlsOptions) -> Result<Arc<ClientConfig>, TransportError> {
    let mut provider = ring::default_provider();
    if !aes_in_hardware() {
        // Without AES instructions (every Pi up to the 4, any ARMv6/ARMv7 board),
        // ChaCha20-Poly1305 costs a fraction of AES-GCM's CPU: offer it first, and servers
        // that honour the client's order (or prioritise ChaCha for such clients) pick it.
        provider
            .cipher_suites
            .sort_by_key(|s| !is_chacha(s.suite()));
    }
    let provider = Arc::new(provider);
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TransportError::TlsSetup(e.to_string()))?;
    let config = if opts.insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth()
    } else {
        let mut roots = RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        if let Some(path) = &opts.ca_file {
            for cert in load_ca_file(path).map_err(TransportError::TlsSetup)? {
                // Checked by load_ca_file.
                let _ = roots.add(cert);
            }
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    Ok(Arc::new(config))
}

fn is_chacha(suite: rustls::CipherSuite) -> bool {
    use rustls::CipherSuite as C;
    matches!(
        suite,
        C::TLS13_CHACHA20_POLY1305_SHA256
            | C::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
            | C::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256
    )
}

/// Whether this CPU has AES instructions (and carry-less multiply, for GCM).
pub fn aes_in_hardware() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("aes")
            && std::arch::is_x86_feature_detected!("pclmulqdq")
    }
    #[cfg(target_arch = "aarch64")]
    {
        std::arch::is_aarch64_feature_detected!("aes")
            && std::arch::is_aarch64_feature_detected!("pmull")
    }
    // 32-bit ARM boards (Pi Zero to Pi 3 on a 32-bit OS) have none.
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        false
    }
}

/// Turns a failed handshake into a certificate refusal when that is what it was.
pub fn classify(host: &str, e: std::io::Error) -> TransportError {
    let rustls_error = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    let problem = match rustls_error {
        Some(rustls::Error::InvalidCertificate(c)) => certificate_problem(c),
        _ => {
            return TransportError::Tls {
                host: host.to_owned(),
                source: e,
            }
        }
    };
    TransportError::Certificate {
        host: host.to_owned(),
        problem,
    }
}

fn certificate_problem(e: &CertificateError) -> CertificateProblem {
    let date = |t: &UnixTime| {
        let secs = t.as_secs();
        let (y, m, d) = civil_from_days((secs / 86_400) as i64);
        format!("{y:04}-{m:02}-{d:02}")
    };
    match e {
        CertificateError::UnknownIssuer => CertificateProblem::UnknownIssuer,
        CertificateError::NotValidForName => CertificateProblem::WrongHost {
            expected: "this host".into(),
            presented: "other names".into(),
        },
        CertificateError::NotValidForNameContext {
            expected,
            presented,
        } => CertificateProblem::WrongHost {
            expected: expected.to_str().into_owned(),
            presented: if presented.is_empty() {
                "no name".into()
            } else {
                let names: Vec<&str> = presented.iter().map(|n| bare_name(n)).collect();
                names.join(", ")
            },
        },
        CertificateError::Expired => CertificateProblem::Expired(String::new()),
        CertificateError::ExpiredContext { time, not_after } => CertificateProblem::Expired(
            format!(" on {} (the clock says {})", date(not_after), date(time)),
        ),
        CertificateError::NotValidYet => CertificateProblem::NotValidYet(String::new()),
        CertificateError::NotValidYetContext { time, not_before } => {
            CertificateProblem::NotValidYet(format!(
                ": it starts on {} and the clock says {}",
                date(not_before),
                date(time)
            ))
        }
        other => CertificateProblem::Other(other.to_string()),
    }
}

/// `DnsName("a.example")` or `IpAddress(192.0.2.1)` (how the verifier lists a certificate's
/// names) as just the name.
fn bare_name(presented: &str) -> &str {
    let inner = presented
        .strip_prefix("DnsName(")
        .or_else(|| presented.strip_prefix("IpAddress("))
        .and_then(|rest| rest.strip_suffix(')'));
    match inner {
        Some(name) => name.trim_matches('"'),
        None => presented,
    }
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's
/// `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// `tls_insecure`: any certificate is accepted, but the handshake signatures are still
/// checked (so the connection is at least encrypted to whoever holds that key).
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_aes_instructions_chacha20_is_offered_first() {
        let config = client_config(&TlsOptions::default()).unwrap();
        let first = config.crypto_provider().cipher_suites[0].suite();
        assert_eq!(is_chacha(first), !aes_in_hardware(), "{first:?}");
    }

    #[test]
    fn days_become_calendar_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }

    #[test]
    fn certificate_errors_are_worded_for_a_person() {
        let wrong = certificate_problem(&CertificateError::NotValidForNameContext {
            expected: ServerName::try_from("live.example").unwrap(),
            presented: vec![
                "DnsName(\"other.example\")".into(),
                "IpAddress(192.0.2.1)".into(),
            ],
        });
        let text = wrong.to_string();
        assert!(
            text.contains("not valid for host live.example (it is for: other.example, 192.0.2.1)"),
            "{text}"
        );
        let unknown = certificate_problem(&CertificateError::UnknownIssuer).to_string();
        assert!(unknown.contains("unknown issuer") && unknown.contains("--tls-ca"));
        let expired = certificate_problem(&CertificateError::ExpiredContext {
            time: UnixTime::since_unix_epoch(std::time::Duration::from_secs(19_724 * 86_400)),
            not_after: UnixTime::since_unix_epoch(std::time::Duration::from_secs(19_723 * 86_400)),
        })
        .to_string();
        assert!(expired.contains("expired on 2024-01-01"), "{expired}");
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "not a certificate\n").unwrap();
        let err = load_ca_file(&path).unwrap_err();
        assert!(err.contains("no certificate"), "{err}");
        let err = load_ca_file(&dir.path().join("missing.pem")).unwrap_err();
        assert!(err.contains("cannot read"), "{err}");
    }
}
