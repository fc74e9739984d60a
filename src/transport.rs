//! Transport: a TCP connection to the ingest server, or TLS over one (`rtmps://`), opened within
//! one deadline.
//!
//! Owns: name resolution, connecting to each resolved address in turn (IPv6 and IPv4), the TLS
//! client (rustls with the ring provider, TLS 1.2 and 1.3) and its trust anchors, and the socket
//! options a long-lived push wants: `TCP_NODELAY` (each media message goes out in one write
//! already; Nagle would only add latency) and TCP keepalive (a silently dead peer is found even
//! when we have nothing to send), and `TCP_NOTSENT_LOWAT`: the kernel accepts only a little
//! unsent data beyond what is in flight, so when the network is slower than the stream the
//! backlog builds up in campush's bounded queue, where whole GOPs can be dropped, instead of as
//! seconds of stale video in a multi-megabyte socket buffer. In-flight data is not limited, so
//! long fat links keep their throughput.
//!
//! TLS (RFC 8446, RFC 5246), when the `tls` cargo feature is on (the default):
//! - trust: the Mozilla root store compiled into the binary (`webpki-roots`: no dependence on the
//!   board's `/etc/ssl`, which minimal images lack), plus the certificates of an optional PEM CA
//!   file (`tls_ca`, `--tls-ca`) for private servers;
//! - SNI: the URL's host name (YouTube requires SNI). An IP literal sends no SNI (RFC 6066 §3
//!   forbids it) and the certificate must then carry that address as an IP SAN;
//! - the TCP connect and the TLS handshake share the connect deadline;
//! - a certificate that is untrusted, expired, not yet valid or for another host is refused with
//!   a [`TransportError::Certificate`] that says which, never silently accepted. `tls_insecure`
//!   turns verification off for lab use and says so loudly at every connect.
//!
//! [`Connection`] is one type for both, so the publisher above has a single code path.

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::rtmp::{RtmpUrl, Scheme};

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("cannot resolve {host}: {source}")]
    Resolve {
        host: String,
        #[source]
        source: io::Error,
    },
    #[error("{host} resolves to no address")]
    NoAddress { host: String },
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: String,
        #[source]
        source: io::Error,
    },
    #[error("connecting to {host}:{port} timed out after {secs} s")]
    ConnectTimeout { host: String, port: u16, secs: u64 },
    /// The TLS settings cannot be used (CA file unreadable, host not a valid TLS name, a build
    /// without TLS). A configuration problem: retrying will not fix it.
    #[error("TLS: {0}")]
    TlsSetup(String),
    /// The server's certificate was refused. Retrying soon will not fix it either.
    #[error("TLS: the certificate of {host} was refused: {problem}")]
    Certificate {
        host: String,
        problem: CertificateProblem,
    },
    /// The TLS handshake failed for another reason (alert, not a TLS server, connection lost).
    #[error("TLS handshake with {host} failed: {source}")]
    Tls {
        host: String,
        #[source]
        source: io::Error,
    },
}

/// Why a server certificate was refused, worded for the person who has to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertificateProblem {
    #[error("it is signed by an unknown issuer (a private or self-signed CA: give its certificate with --tls-ca FILE or tls_ca = \"FILE\" in the [[output]])")]
    UnknownIssuer,
    #[error("it is not valid for host {expected} (it is for: {presented})")]
    WrongHost { expected: String, presented: String },
    #[error("it has expired{0} (if the server's certificate is fine, the board's clock is wrong)")]
    Expired(String),
    #[error("it is not valid yet{0} (the board's clock is probably wrong: no real-time clock and no network time yet?)")]
    NotValidYet(String),
    #[error("{0}")]
    Other(String),
}

impl TransportError {
    /// A certificate refusal: fixing it needs a person (or a correct clock), not a quick retry.
    pub fn is_certificate(&self) -> bool {
        matches!(self, TransportError::Certificate { .. })
    }

    /// The settings are unusable; see [`TransportError::TlsSetup`].
    pub fn is_setup(&self) -> bool {
        matches!(self, TransportError::TlsSetup(_))
    }
}

/// TLS settings of one destination.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// PEM file with extra trusted CA certificates, added to the built-in roots.
    pub ca_file: Option<PathBuf>,
    /// Accept any certificate. Lab use only; warned about at every connect.
    pub insecure: bool,
}

/// Whether this build can speak `rtmps://`.
pub const TLS_AVAILABLE: bool = cfg!(feature = "tls");

/// An open connection: plain TCP or TLS over TCP.
pub enum Connection {
    Plain(TcpStream),
    #[cfg(feature = "tls")]
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl Connection {
    /// The TCP socket underneath.
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Connection::Plain(s) => s,
            #[cfg(feature = "tls")]
            Connection::Tls(s) => s.get_ref().0,
        }
    }

    pub fn is_tls(&self) -> bool {
        !matches!(self, Connection::Plain(_))
    }
}

impl AsyncRead for Connection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Connection::Plain(s) => Pin::new(s).poll_read(cx, buf),
            #[cfg(feature = "tls")]
            Connection::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Connection::Plain(s) => Pin::new(s).poll_write(cx, buf),
            #[cfg(feature = "tls")]
            Connection::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Connection::Plain(s) => Pin::new(s).poll_flush(cx),
            #[cfg(feature = "tls")]
            Connection::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Connection::Plain(s) => Pin::new(s).poll_shutdown(cx),
            #[cfg(feature = "tls")]
            Connection::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Opens connections for one destination. Keeps the TLS client configuration (trust anchors,
/// session tickets for quicker reconnects) across connections.
pub struct Connector {
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    tls: TlsOptions,
    #[cfg(feature = "tls")]
    client: Option<std::sync::Arc<rustls::ClientConfig>>,
}

impl Connector {
    pub fn new(tls: TlsOptions) -> Self {
        Connector {
            tls,
            #[cfg(feature = "tls")]
            client: None,
        }
    }

    /// Connects to `url`'s host and port, and for `rtmps://` completes the TLS handshake, all
    /// within `deadline`.
    pub async fn connect(
        &mut self,
        url: &RtmpUrl,
        deadline: Duration,
    ) -> Result<Connection, TransportError> {
        let (host, port) = (url.host.as_str(), url.port);
        let timed_out = || TransportError::ConnectTimeout {
            host: host.to_owned(),
            port,
            secs: deadline.as_secs(),
        };
        match url.scheme {
            Scheme::Rtmp => connect(host, port, deadline).await.map(Connection::Plain),
            Scheme::Rtmps => {
                let started = tokio::time::Instant::now();
                let tcp = connect(host, port, deadline).await?;
                let left = deadline.saturating_sub(started.elapsed());
                tokio::time::timeout(left, self.handshake(host, tcp))
                    .await
                    .map_err(|_| timed_out())?
            }
        }
    }

    #[cfg(not(feature = "tls"))]
    async fn handshake(
        &mut self,
        _host: &str,
        _tcp: TcpStream,
    ) -> Result<Connection, TransportError> {
        Err(TransportError::TlsSetup(
            "this campush was built without TLS (cargo feature `tls`); rtmps:// is not available"
                .into(),
        ))
    }

    #[cfg(feature = "tls")]
    async fn handshake(
        &mut self,
        host: &str,
        tcp: TcpStream,
    ) -> Result<Connection, TransportError> {
        use rustls_pki_types::ServerName;
        if self.tls.insecure {
            log::warn!(
                "TLS certificate verification is OFF for {host} (tls_insecure = true): anyone on \
                 the path can pose as the server and take the stream key. For a lab only; use \
                 tls_ca = \"FILE\" instead"
            );
        }
        let client = match &self.client {
            Some(c) => c.clone(),
            None => self.client.insert(tls::client_config(&self.tls)?).clone(),
        };
        let name = ServerName::try_from(host.to_owned()).map_err(|_| {
            TransportError::TlsSetup(format!("{host:?} is not a valid TLS server name"))
        })?;
        let stream = tokio_rustls::TlsConnector::from(client)
            .connect(name, tcp)
            .await
            .map_err(|e| tls::classify(host, e))?;
        let (_, session) = stream.get_ref();
        log::info!(
            "{host}: {:?}, {:?}",
            session.protocol_version(),
            session.negotiated_cipher_suite().map(|s| s.suite())
        );
        Ok(Connection::Tls(Box::new(stream)))
    }
}

/// Checks that a CA file can be used: readable PEM with at least one valid certificate.
/// Returns how many certificates it holds.
pub fn check_ca_file(path: &Path) -> Result<usize, String> {
    #[cfg(feature = "tls")]
    {
        tls::load_ca_file(path).map(|certs| certs.len())
    }
    #[cfg(not(feature = "tls"))]
    {
        let _ = path;
        Err("this campush was built without TLS (cargo feature `tls`)".into())
    }
}

#[cfg(feature = "tls")]
mod tls {
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
                text.contains(
                    "not valid for host live.example (it is for: other.example, 192.0.2.1)"
                ),
                "{text}"
            );
            let unknown = certificate_problem(&CertificateError::UnknownIssuer).to_string();
            assert!(unknown.contains("unknown issuer") && unknown.contains("--tls-ca"));
            let expired = certificate_problem(&CertificateError::ExpiredContext {
                time: UnixTime::since_unix_epoch(std::time::Duration::from_secs(19_724 * 86_400)),
                not_after: UnixTime::since_unix_epoch(std::time::Duration::from_secs(
                    19_723 * 86_400,
                )),
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
}

/// Resolves `host` and connects to the first address that answers, all within `deadline`.
pub async fn connect(
    host: &str,
    port: u16,
    deadline: Duration,
) -> Result<TcpStream, TransportError> {
    let attempt = async {
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
            .await
            .map_err(|source| TransportError::Resolve {
                host: host.to_owned(),
                source,
            })?
            .collect();
        let mut last = None;
        for addr in &addrs {
            match TcpStream::connect(addr).await {
                Ok(stream) => return Ok(stream),
                Err(source) => {
                    last = Some(TransportError::Connect {
                        addr: addr.to_string(),
                        source,
                    })
                }
            }
        }
        Err(last.unwrap_or_else(|| TransportError::NoAddress {
            host: host.to_owned(),
        }))
    };
    let stream = tokio::time::timeout(deadline, attempt)
        .await
        .map_err(|_| TransportError::ConnectTimeout {
            host: host.to_owned(),
            port,
            secs: deadline.as_secs(),
        })??;
    // Best effort: a socket without these still works.
    let _ = stream.set_nodelay(true);
    let _ = set_keepalive(&stream, 10, 5, 3);
    let _ = set_int(
        &stream,
        libc::IPPROTO_TCP,
        libc::TCP_NOTSENT_LOWAT,
        NOTSENT_LOWAT,
    );
    Ok(stream)
}

/// Unsent bytes the kernel may hold beyond those in flight: about a frame at 5 Mbit/s, a
/// fraction of a second at low bitrates.
pub const NOTSENT_LOWAT: i32 = 32 * 1024;

/// Enables TCP keepalive: first probe after `idle` s, then every `interval` s, `count` probes.
fn set_keepalive(stream: &TcpStream, idle: i32, interval: i32, count: i32) -> io::Result<()> {
    set_int(stream, libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1)?;
    set_int(stream, libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, idle)?;
    set_int(stream, libc::IPPROTO_TCP, libc::TCP_KEEPINTVL, interval)?;
    set_int(stream, libc::IPPROTO_TCP, libc::TCP_KEEPCNT, count)
}

fn set_int(stream: &TcpStream, level: i32, name: i32, value: i32) -> io::Result<()> {
    // SAFETY: the fd is a valid socket owned by `stream`; value points to a live c_int.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            level,
            name,
            &value as *const i32 as *const libc::c_void,
            std::mem::size_of::<i32>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn connects_to_a_loopback_listener_with_keepalive_and_nodelay() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let stream = connect("127.0.0.1", port, Duration::from_secs(5))
            .await
            .unwrap();
        assert!(stream.nodelay().unwrap());
    }

    #[tokio::test]
    async fn a_closed_port_is_a_connect_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let err = connect("127.0.0.1", port, Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(matches!(err, TransportError::Connect { .. }), "{err}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_tls_handshake_that_never_completes_hits_the_connect_deadline() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let hold = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((sock, _)) = listener.accept().await {
                held.push(sock);
            }
        });
        let url = RtmpUrl::parse(&format!("rtmps://127.0.0.1:{port}/live/key")).unwrap();
        let mut connector = Connector::new(TlsOptions::default());
        let err = match connector.connect(&url, Duration::from_secs(3)).await {
            Ok(_) => panic!("a silent peer completed a handshake"),
            Err(e) => e,
        };
        if TLS_AVAILABLE {
            assert!(
                matches!(err, TransportError::ConnectTimeout { secs: 3, .. }),
                "{err}"
            );
        } else {
            assert!(err.is_setup(), "{err}");
        }
        hold.abort();
    }
}
