//! Why one connection to a destination failed ([`PublishError`]), the status kind each cause
//! shows as, and the note an unsynchronised clock adds to a refused certificate.

use std::time::Duration;

use crate::rtmp::RtmpError;
use crate::status::ErrorKind;
use crate::transport::TransportError;

/// The phase a connection closed in while the publish was not yet accepted: the server refused
/// the app or the key (a refusal, not a network failure).
pub(super) const CLOSED_WHILE_PUBLISHING: &str =
    "before the publish was accepted (it refused the app or stream key, or is not an RTMP server)";

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error(transparent)]
    Rtmp(#[from] RtmpError),
    #[error("connection lost: {0}")]
    Io(#[from] std::io::Error),
    #[error("the server closed the connection {0}")]
    Closed(&'static str),
    #[error("{0} timed out after {1:?}")]
    Timeout(&'static str, Duration),
}

impl PublishError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            // A certificate will not become valid by retrying at once: wait like a refusal.
            PublishError::Transport(e) if e.is_certificate() => ErrorKind::Refused,
            PublishError::Transport(e) if e.is_setup() => ErrorKind::Config,
            PublishError::Rtmp(e) if e.is_refusal() => ErrorKind::Refused,
            PublishError::Closed(phase) if *phase == CLOSED_WHILE_PUBLISHING => ErrorKind::Refused,
            _ => ErrorKind::Network,
        }
    }
}

impl PublishError {
    /// What to add to the message of a certificate refused as expired or not yet valid when the
    /// board's clock is known not to be synchronised (`clock_synced`, from the board health):
    /// then the clock, not the certificate, is the likely culprit. Empty otherwise.
    pub fn clock_note(&self, clock_synced: Option<bool>) -> &'static str {
        use crate::transport::CertificateProblem::{Expired, NotValidYet};
        match self {
            PublishError::Transport(TransportError::Certificate {
                problem: Expired(_) | NotValidYet(_),
                ..
            }) if clock_synced == Some(false) => {
                "; the system clock is not synchronised (no network time yet, and a Pi has no \
                 real-time clock): the certificate is probably fine, and campush retries until \
                 the clock is set"
            }
            _ => "",
        }
    }
}
