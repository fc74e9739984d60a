//! Transport: a TCP connection to the ingest server, or TLS over one (`rtmps://`), opened within
//! one deadline.
//!
//! Owns: name resolution, connecting to each resolved address in turn (IPv6 and IPv4), the TLS
//! client (`transport/tls/`: TLS 1.2 and 1.3, rustls with the ring provider for the handshake)
//! and its trust anchors, and the socket
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
//!   turns verification off for lab use and says so loudly at every connect;
//! - sessions resume across reconnects (the client configuration, with its session cache, lives
//!   as long as the [`Connector`]);
//! - after the handshake, records are sealed and opened in place in two buffers allocated with
//!   the connection, not by rustls's buffered API (which allocates per record): streaming over
//!   TLS allocates nothing per frame, like plain TCP. `transport/tls/` says how and why.
//!
//! [`Connection`] is one type for both, so the publisher above has a single code path; over
//! plain TCP it also writes a frame from where it lies (`vectored.rs`, one `writev` of the
//! chunk headers and the body in its pool slot).

#[cfg(feature = "tls")]
mod tls;
pub mod vectored;

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::setting::Invalid;

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

impl TlsOptions {
    /// Checks the TLS keys of an `[[output]]` (`tls_ca`, `tls_insecure`) against its URL's
    /// scheme (`rtmps`: whether it is `rtmps://`): they apply to `rtmps://` only, which needs a
    /// build with TLS; the CA file must hold a usable certificate.
    pub fn check(
        rtmps: bool,
        ca_file: Option<&Path>,
        insecure: Option<bool>,
    ) -> Result<TlsOptions, Invalid> {
        let tls = TlsOptions {
            ca_file: ca_file.map(Path::to_path_buf),
            insecure: insecure.unwrap_or(false),
        };
        let key = if ca_file.is_some() {
            "tls_ca"
        } else {
            "tls_insecure"
        };
        match rtmps {
            false if tls.ca_file.is_some() || tls.insecure => {
                return Err(Invalid::new(
                    key,
                    "tls_ca and tls_insecure only apply to rtmps:// URLs (this one is rtmp://)",
                ))
            }
            false => {}
            true if !TLS_AVAILABLE => return Err(Invalid::new(
                "url",
                "rtmps:// needs TLS, and this campush was built without it (cargo feature `tls`)",
            )),
            true => {}
        }
        if tls.insecure && tls.ca_file.is_some() {
            return Err(Invalid::new(
                "tls_insecure",
                "set tls_ca or tls_insecure, not both",
            ));
        }
        if let Some(path) = &tls.ca_file {
            check_ca_file(path).map_err(|e| Invalid::new("tls_ca", e))?;
        }
        Ok(tls)
    }
}

/// An open connection: plain TCP or TLS over TCP.
pub enum Connection {
    Plain(TcpStream),
    #[cfg(feature = "tls")]
    Tls(Box<tls::TlsStream>),
}

impl Connection {
    /// The TCP socket underneath.
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Connection::Plain(s) => s,
            #[cfg(feature = "tls")]
            Connection::Tls(s) => s.tcp(),
        }
    }

    pub fn is_tls(&self) -> bool {
        !matches!(self, Connection::Plain(_))
    }

    /// Writes what the socket takes now from `slices` (one `writev`), without waiting:
    /// `WouldBlock` when it takes nothing. Plain TCP only: over TLS the bytes are sealed into
    /// records from a copy anyway, so this says `Unsupported` and the caller writes normally.
    pub fn try_write_vectored(&self, slices: &[io::IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Connection::Plain(s) => s.try_write_vectored(slices),
            #[cfg(feature = "tls")]
            Connection::Tls(_) => Err(io::ErrorKind::Unsupported.into()),
        }
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

/// Where to connect: a host (name or address literal) and port, and whether TLS runs over the
/// connection (`rtmps://`). The host is also the TLS server name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoint<'a> {
    pub host: &'a str,
    pub port: u16,
    pub tls: bool,
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

    /// Connects to the endpoint's host and port, and with `tls` completes the TLS handshake,
    /// all within `deadline`.
    pub async fn connect(
        &mut self,
        endpoint: Endpoint<'_>,
        deadline: Duration,
    ) -> Result<Connection, TransportError> {
        let Endpoint { host, port, tls } = endpoint;
        let timed_out = || TransportError::ConnectTimeout {
            host: host.to_owned(),
            port,
            secs: deadline.as_secs(),
        };
        if !tls {
            return connect(host, port, deadline).await.map(Connection::Plain);
        }
        let started = tokio::time::Instant::now();
        let tcp = connect(host, port, deadline).await?;
        let left = deadline.saturating_sub(started.elapsed());
        tokio::time::timeout(left, self.handshake(host, tcp))
            .await
            .map_err(|_| timed_out())?
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
        let stream = tls::connect(client, host, tcp).await?;
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

/// A loopback server that accepts connections and never says a word: the peer that deadlines
/// are for. Returns its port and the task holding the connections (abort it when done).
#[cfg(test)]
pub(crate) async fn silent_server() -> (u16, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = listener.accept().await {
            held.push(sock);
        }
    });
    (port, hold)
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
        let (port, hold) = silent_server().await;
        let endpoint = Endpoint {
            host: "127.0.0.1",
            port,
            tls: true,
        };
        let mut connector = Connector::new(TlsOptions::default());
        let err = match connector.connect(endpoint, Duration::from_secs(3)).await {
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
