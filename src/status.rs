//! The one observable status value, and the counters behind the periodic summary.
//!
//! Owns: [`Status`] (what campush is doing right now) and [`Counters`] (what it has done). The
//! stages *report* into a [`StatusBoard`]; the LED, systemd notifications, the log and the status
//! file only *observe* it. Nobody drives an LED or writes a status file from inside a stage.
//!
//! The board is a `tokio::sync::watch` channel for the value (observers wake on change) plus
//! relaxed atomics for the counters (the hot path bumps them without locks or allocation).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::watch;

/// Why campush is not streaming, coarse enough to pick an LED pattern and a retry policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The configuration is invalid: nothing will work until a person fixes it.
    Config,
    /// The server refused the stream (bad key, name in use).
    Refused,
    /// The server could not be reached or the connection broke.
    Network,
    /// The source failed (device gone, input not H.264).
    Source,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Starting,
    WaitingForSource,
    Connecting,
    Streaming,
    Stopped,
    Error(ErrorKind),
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Status::Starting => f.write_str("starting"),
            Status::WaitingForSource => f.write_str("waiting for source"),
            Status::Connecting => f.write_str("connecting"),
            Status::Streaming => f.write_str("streaming"),
            Status::Stopped => f.write_str("stopped"),
            Status::Error(kind) => write!(f, "error ({kind:?})"),
        }
    }
}

/// Monotonic counters. All relaxed: they are statistics, not synchronisation.
#[derive(Debug, Default)]
pub struct Counters {
    pub frames_in: AtomicU64,
    pub frames_sent: AtomicU64,
    pub frames_dropped: AtomicU64,
    pub bytes_sent: AtomicU64,
    pub connects: AtomicU64,
    pub skipped_units: AtomicU64,
}

impl Counters {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// Where stages report and observers look. Cheap to clone.
#[derive(Clone)]
pub struct StatusBoard {
    tx: Arc<watch::Sender<Status>>,
    pub counters: Arc<Counters>,
}

impl StatusBoard {
    pub fn new() -> Self {
        let (tx, _rx) = watch::channel(Status::Starting);
        StatusBoard {
            tx: Arc::new(tx),
            counters: Arc::new(Counters::default()),
        }
    }

    /// Reports a new status; observers are woken only if it changed.
    pub fn set(&self, status: Status) {
        self.tx.send_if_modified(|s| {
            if *s == status {
                false
            } else {
                log::debug!("status: {status}");
                *s = status;
                true
            }
        });
    }

    pub fn get(&self) -> Status {
        *self.tx.borrow()
    }

    pub fn subscribe(&self) -> watch::Receiver<Status> {
        self.tx.subscribe()
    }
}

impl Default for StatusBoard {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observers_see_changes_but_not_repeats() {
        let board = StatusBoard::new();
        let mut rx = board.subscribe();
        assert_eq!(*rx.borrow_and_update(), Status::Starting);
        board.set(Status::Connecting);
        assert!(rx.has_changed().unwrap());
        assert_eq!(*rx.borrow_and_update(), Status::Connecting);
        board.set(Status::Connecting);
        assert!(!rx.has_changed().unwrap());
        board.set(Status::Error(ErrorKind::Refused));
        assert_eq!(board.get(), Status::Error(ErrorKind::Refused));
    }
}
