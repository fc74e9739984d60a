//! Transport: a TCP connection to the ingest server, opened within a deadline.
//!
//! Owns: name resolution, connecting to each resolved address in turn (IPv6 and IPv4), and the
//! socket options a long-lived push wants: `TCP_NODELAY` (each media message goes out in one
//! write already; Nagle would only add latency) and TCP keepalive (a silently dead peer is found
//! even when we have nothing to send), and `TCP_NOTSENT_LOWAT`: the kernel accepts only a little
//! unsent data beyond what is in flight, so when the network is slower than the stream the
//! backlog builds up in campush's bounded queue, where whole GOPs can be dropped, instead of as
//! seconds of stale video in a multi-megabyte socket buffer. In-flight data is not limited, so
//! long fat links keep their throughput. RTMPS plugs in here later.

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::time::Duration;

use tokio::net::TcpStream;

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
}
