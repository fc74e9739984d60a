//! The TLS client of `rtmps://`: rustls (ring provider) for the handshake and the key schedule,
//! our own record layer for the application data, and a thin tokio shell around both.
//!
//! Why not rustls's buffered `ClientConnection` (which tokio-rustls wraps): it seals every TLS
//! record into a `Vec` of its own, so each frame would cost about one heap allocation per 16 KiB
//! record, where plain RTMP costs none. rustls 0.23's unbuffered API lets the caller own the
//! buffers, but its `encrypt` still seals each record into a temporary `Vec` before copying it
//! out, and it hands over received records the same way. So rustls's unbuffered client runs the
//! handshake in our buffers ([`handshake`]), then hands the traffic keys and its key schedule
//! over (`dangerous_into_kernel_connection`, the interface meant for kernel TLS), and
//! [`records`] seals and opens records in place in two buffers allocated once per connection:
//! streaming over TLS allocates nothing, like plain RTMP. rustls still verifies the certificate,
//! resumes sessions (it stores the tickets the server sends after the handshake) and derives the
//! keys of TLS 1.3 KeyUpdates; `records` documents what is left to it.
//!
//! Both halves are sans IO (bytes in, bytes out); [`TlsStream`] moves the bytes between them and
//! the TCP socket. All its state lives in the stream, not in the futures that poll it, so a read
//! dropped half-way (a `select!` branch that lost) loses nothing: bytes taken from the socket
//! stay in the input buffer. Reads and writes must not overlap (one task drives both in turn).
//!
//! Also here: the client configuration (trust anchors, cipher suite order) and the wording of
//! certificate refusals.

mod handshake;
mod records;
#[cfg(test)]
mod wire_tests;

use crate::clock::civil_from_days;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{ring, CryptoProvider};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use self::handshake::{Handshake, HandshakeError, Want};
use self::records::{Read, TlsError, Traffic};
use super::{CertificateProblem, TlsOptions, TransportError};
use crate::peer_text::PeerText;

/// A TLS connection over TCP, after its handshake.
pub struct TlsStream {
    tcp: TcpStream,
    traffic: Traffic,
}

/// Runs the TLS handshake with `host` over `tcp`. The caller bounds it in time.
pub async fn connect(
    config: Arc<ClientConfig>,
    host: &str,
    mut tcp: TcpStream,
) -> Result<TlsStream, TransportError> {
    let name = ServerName::try_from(host.to_owned()).map_err(|_| {
        TransportError::TlsSetup(format!("{host:?} is not a valid TLS server name"))
    })?;
    let mut hs =
        Handshake::new(config, name).map_err(|e| TransportError::TlsSetup(e.to_string()))?;
    if let Err(e) = run_handshake(&mut hs, &mut tcp).await {
        // Best effort, without waiting: the alert that tells the server why.
        let _ = tcp.try_write(hs.outgoing());
        return Err(classify(host, e));
    }
    let resumed = hs.resumed();
    let traffic = hs.into_traffic().map_err(|e| classify(host, e))?;
    log::info!(
        "{host}: {:?}, {:?}{}",
        traffic.protocol_version(),
        traffic.cipher_suite(),
        if resumed { ", session resumed" } else { "" }
    );
    Ok(TlsStream { tcp, traffic })
}

/// The handshake's I/O. Every turn sends or receives, or ends; the caller's deadline bounds it.
async fn run_handshake(hs: &mut Handshake, tcp: &mut TcpStream) -> Result<(), HandshakeError> {
    loop {
        match hs.advance()? {
            Want::Write => {
                tcp.write_all(hs.outgoing()).await?;
                let n = hs.outgoing().len();
                hs.sent(n);
            }
            Want::Read => {
                let n = tcp.read(hs.input_space()?).await?;
                if n == 0 {
                    return Err(HandshakeError::Io(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the server closed the connection during the TLS handshake",
                    )));
                }
                hs.received(n);
            }
            Want::Done => return Ok(()),
        }
    }
}

/// Socket reads one `poll_read` makes before it yields, when records carry no application data.
const READS_PER_POLL: usize = 16;

fn io_error(e: TlsError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

impl TlsStream {
    pub fn tcp(&self) -> &TcpStream {
        &self.tcp
    }

    /// Sends sealed records until none is left (or the socket is full: `Pending`).
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Each turn sends at least one byte or returns.
        while !self.traffic.outgoing().is_empty() {
            let n = ready!(Pin::new(&mut self.tcp).poll_write(cx, self.traffic.outgoing()))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.traffic.sent(n);
        }
        Poll::Ready(Ok(()))
    }

    /// After a TLS error: the alert for the server, if it fits in the socket now.
    fn send_alert(&mut self) {
        if let Ok(n) = self.tcp.try_write(self.traffic.outgoing()) {
            self.traffic.sent(n);
        }
    }
}

impl AsyncRead for TlsStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        for _ in 0..READS_PER_POLL {
            match this.traffic.read(buf.initialize_unfilled()) {
                Ok(Read::Data(n)) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Ok(Read::Closed) => return Poll::Ready(Ok(())),
                Ok(Read::NeedMore) => {}
                Err(e) => {
                    this.send_alert();
                    return Poll::Ready(Err(io_error(e)));
                }
            }
            let space = this.traffic.input_space();
            if space.is_empty() {
                // Cannot happen: a partial record always fits. Never read 0 bytes and call it EOF.
                return Poll::Ready(Err(io_error(TlsError::Oversized)));
            }
            let mut space = ReadBuf::new(space);
            ready!(Pin::new(&mut this.tcp).poll_read(cx, &mut space))?;
            let n = space.filled().len();
            if n == 0 {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the server closed the connection without a TLS close_notify",
                )));
            }
            this.traffic.received(n);
        }
        // Many records without application data: let other tasks run, then carry on.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

impl AsyncWrite for TlsStream {
    /// Seals up to 64 KiB of `buf` into the output buffer and starts sending it; waits only when
    /// the output buffer is full of records the socket has not taken yet.
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let mut n = this.traffic.encrypt(buf).map_err(io_error)?;
        if n == 0 {
            ready!(this.poll_send(cx))?;
            // The output buffer is empty now: it takes at least one record.
            n = this.traffic.encrypt(buf).map_err(io_error)?;
            if n == 0 {
                return Poll::Ready(Err(io_error(TlsError::OutputFull)));
            }
        }
        // Send what the socket takes now; the rest goes at the next write or flush.
        if let Poll::Ready(Err(e)) = this.poll_send(cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_send(cx))?;
        Pin::new(&mut this.tcp).poll_flush(cx)
    }

    /// Sends what is queued, then close_notify, then half-closes the TCP connection.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_send(cx))?;
        this.traffic.close().map_err(io_error)?;
        ready!(this.poll_send(cx))?;
        Pin::new(&mut this.tcp).poll_shutdown(cx)
    }
}

/// The largest CA file read.
const CA_FILE_LIMIT: usize = 4 << 20;

pub fn load_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let shown = path.display();
    // Bounded like every file campush reads (Debian's whole bundle is about 220 KB).
    let pem = crate::small_file::read(path, CA_FILE_LIMIT)
        .map_err(|e| format!("cannot read the CA file {shown}: {e}"))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
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
    let mut config = if opts.insecure {
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
    // The record layer takes the traffic keys over from rustls after the handshake.
    config.enable_secret_extraction = true;
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
fn classify(host: &str, e: HandshakeError) -> TransportError {
    let source = match e {
        HandshakeError::Tls(rustls::Error::InvalidCertificate(c)) => {
            return TransportError::Certificate {
                host: host.to_owned(),
                problem: certificate_problem(&c),
            }
        }
        HandshakeError::Io(e) => e,
        e => io::Error::new(io::ErrorKind::InvalidData, e),
    };
    TransportError::Tls {
        host: host.to_owned(),
        source,
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
                // The server's text: a certificate may list thousands of names.
                let names: Vec<&str> = presented.iter().map(|n| bare_name(n)).collect();
                PeerText::new(&names.join(", ")).to_string()
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
        // A certificate listing a thousand names (the server's text) makes one short line.
        let many = certificate_problem(&CertificateError::NotValidForNameContext {
            expected: ServerName::try_from("live.example").unwrap(),
            presented: (0..1000)
                .map(|i| format!("DnsName(\"host{i}.example\")"))
                .collect(),
        })
        .to_string();
        assert!(many.len() < 400, "{} bytes", many.len());
        assert!(
            many.contains("it is for: host0.example, host1.example"),
            "{many}"
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
