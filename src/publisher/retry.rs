//! When to connect again: quickly where nobody answered (nothing listening, a reset before the
//! server said a word, a stream lost after it ran a while), the exponential backoff with full
//! jitter where a server answered and failed us ([`retry_class`], [`retry_delay`],
//! [`backoff_delay`]).

use std::time::Duration;

use super::{PublishError, PublisherSettings};
use crate::status::ErrorKind;
use crate::transport::TransportError;

/// The wait before reconnect attempt `failures` (1-based): exponential from `backoff_min`,
/// capped at `backoff_max`, with full jitter (`jitter` in [0, 1)), so a fleet of cameras that
/// lost the same server does not come back in lockstep. A refusal always waits the maximum:
/// retrying a wrong key quickly helps nobody and looks like abuse to the platform.
pub fn backoff_delay(
    settings: &PublisherSettings,
    failures: u32,
    kind: ErrorKind,
    jitter: f64,
) -> Duration {
    if kind == ErrorKind::Refused {
        return settings.backoff_max;
    }
    full_jitter(settings.backoff_min, settings.backoff_max, failures, jitter)
}

/// Exponential from `min`, capped at `max`, with full jitter; never below a quarter of `min`.
pub(super) fn full_jitter(min: Duration, max: Duration, failures: u32, jitter: f64) -> Duration {
    let ceiling = min
        .saturating_mul(1u32 << failures.saturating_sub(1).min(20))
        .min(max);
    // Never zero: a quarter of the minimum is the floor.
    ceiling.mul_f64(jitter.clamp(0.0, 1.0)).max(min / 4)
}

/// How soon to try again after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Nobody was there to answer: the schedule of [`backoff_delay`] capped at
    /// [`QUICK_RETRY_CAP`], so a server that comes back gets the stream within about a second.
    Quick,
    /// The server answered and something went wrong: [`backoff_delay`] as it stands.
    Backoff,
}

/// The longest wait before retrying a server that was not there. A connect to a port nobody
/// listens on costs nobody anything, so there is no reason to wait longer; with full jitter the
/// mean is half of it, and a restarted server is publishing again within the cap plus one
/// handshake.
pub const QUICK_RETRY_CAP: Duration = Duration::from_millis(1500);

/// A published connection lost after at least this long is retried quickly (the server most
/// likely restarted or the path broke); one lost sooner is treated like a refusal by backoff:
/// a server that accepts and then drops us at once would otherwise see a reconnect loop.
pub const QUICK_AFTER_STREAMING: Duration = Duration::from_secs(2);

/// Tells "nobody answered" from "the server answered and it failed". `heard`: the server sent
/// at least one byte on this attempt; `streamed_for`: how long the connection streamed, if it
/// was published.
///
/// | Failure | Retry |
/// |---|---|
/// | TCP connect refused, reset, unreachable (host or network), or timed out | quick |
/// | connection reset before the server sent a byte (a server shutting down) | quick |
/// | published, streamed for [`QUICK_AFTER_STREAMING`] or more, then closed or reset | quick |
/// | refusal (publish refused, certificate refused, a clean hang-up before the publish was accepted), configuration | backoff (refusal: the maximum) |
/// | handshake garbage, protocol error, closed after the server had spoken, deadline on a connected socket | backoff |
/// | name resolution (a typo in the host must not become a query a second) | backoff |
pub fn retry_class(e: &PublishError, heard: bool, streamed_for: Option<Duration>) -> Retry {
    let lost = matches!(e, PublishError::Io(_) | PublishError::Closed(_));
    match e {
        _ if matches!(e.kind(), ErrorKind::Refused | ErrorKind::Config) => Retry::Backoff,
        PublishError::Transport(
            TransportError::Connect { .. } | TransportError::ConnectTimeout { .. },
        ) => Retry::Quick,
        _ if lost && streamed_for.is_some_and(|d| d >= QUICK_AFTER_STREAMING) => Retry::Quick,
        PublishError::Io(_) if !heard && streamed_for.is_none() => Retry::Quick,
        _ => Retry::Backoff,
    }
}

/// The wait before the next attempt: [`backoff_delay`], and for [`Retry::Quick`] the same
/// schedule capped at [`QUICK_RETRY_CAP`] (never longer than the configured maximum either).
pub fn retry_delay(
    settings: &PublisherSettings,
    failures: u32,
    kind: ErrorKind,
    retry: Retry,
    jitter: f64,
) -> Duration {
    match retry {
        Retry::Backoff => backoff_delay(settings, failures, kind, jitter),
        Retry::Quick => {
            let cap = QUICK_RETRY_CAP.min(settings.backoff_max);
            full_jitter(settings.backoff_min, cap, failures, jitter).min(cap)
        }
    }
}
