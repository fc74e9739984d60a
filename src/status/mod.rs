//! The one observable status value, the counters behind it, and its two plain observers: the
//! periodic summary line in the log and the JSON status file.
//!
//! Owns: [`Status`] (what campush is doing right now) and [`Counters`] (what it has done). The
//! stages *report* into the [`SharedStatus`] — the source its own state, each destination its own
//! — and it folds them into one value: the source's trouble first (no camera means nothing
//! streams), then the least healthy destination (solid "streaming" only when every destination
//! streams). The LED, systemd notifications, the log and the status file only *observe* that
//! value; nobody drives an LED or writes a status file from inside a stage.
//!
//! The value travels on a `tokio::sync::watch` channel (observers wake on change); the counters
//! are relaxed atomics, so the per-frame path bumps them without locks or allocation. Each
//! destination also counts its own connections, frames and bytes ([`DestinationCounters`]), and
//! is named by its redacted URL, and shows its end-to-end backlog while it streams (what is
//! queued and on the way to the server, in time, and whether the server's acknowledgements or
//! the socket's send queue measure it: [`DestinationStatus::set_backlog`], two relaxed stores
//! by the publisher). The latest board health sample ([`crate::health`]) is kept here
//! too, for the files and the summary line.
//!
//! For the systemd watchdog ([`crate::notify`]) it also keeps a [`WatchdogView`]: the value
//! folded again without the destinations that gave up on a configuration error (deliberately
//! idle: they must not mask the parts still trying), and how long the source may be silent
//! while it counts as streaming (its own stall rule, [`SharedStatus::set_source_stall`]).
//!
//! Files, each written to a temporary name and renamed (readers never see half a file), world
//! readable whatever the umask (they hold no secret, and `campush status` is run by a person,
//! not the service's user), by `report.rs` ([`run_reporter`], [`write_atomically`]) from one
//! [`Snapshot`] (`snapshot.rs`):
//! - the JSON status file (`status.json`), every 5 s and on every change;
//! - the Prometheus text file (`prometheus.rs`), at the same moments, for node_exporter's
//!   textfile collector: no listening socket.
//!
//! `campush status` (`show.rs`) reads the status file back (`json.rs`: a small JSON reader) and
//! prints it for a person on ssh.
//!
//! Settings: `[status]` ([`RawStatus`] → [`ReportSettings::check`]).

pub mod audio;
mod json;
mod prometheus;
mod report;
pub mod show;
mod snapshot;

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::health::Health;
use crate::stop::Stop;
pub use audio::{AudioSnapshot, AudioStats, MicState};
pub use report::{default_status_file, run_reporter, write_atomically, RawStatus, ReportSettings};
use snapshot::json_string;
pub use snapshot::{DestinationSnapshot, Snapshot};

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
    /// The recording directory cannot be written (full, read-only, missing): the live stream
    /// goes on, the recording is retried.
    Storage,
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

impl Status {
    /// Every status there is.
    pub const ALL: [Status; 10] = [
        Status::Starting,
        Status::WaitingForSource,
        Status::Connecting,
        Status::Streaming,
        Status::Stopped,
        Status::Error(ErrorKind::Config),
        Status::Error(ErrorKind::Refused),
        Status::Error(ErrorKind::Network),
        Status::Error(ErrorKind::Source),
        Status::Error(ErrorKind::Storage),
    ];

    /// How far from "streaming" this is; the shared status shows the least healthy part.
    fn severity(self) -> u8 {
        match self {
            Status::Streaming => 0,
            Status::Stopped => 1,
            Status::Starting => 2,
            // The live stream goes on: any trouble of the stream itself shows first.
            Status::Error(ErrorKind::Storage) => 3,
            Status::Connecting => 4,
            Status::Error(ErrorKind::Network) => 5,
            Status::WaitingForSource | Status::Error(ErrorKind::Source) => 6,
            Status::Error(ErrorKind::Refused) => 7,
            Status::Error(ErrorKind::Config) => 8,
        }
    }

    /// Short machine-readable name, used in the status file.
    pub fn name(self) -> &'static str {
        match self {
            Status::Starting => "starting",
            Status::WaitingForSource => "waiting_for_source",
            Status::Connecting => "connecting",
            Status::Streaming => "streaming",
            Status::Stopped => "stopped",
            Status::Error(ErrorKind::Config) => "error_config",
            Status::Error(ErrorKind::Refused) => "error_refused",
            Status::Error(ErrorKind::Network) => "error_network",
            Status::Error(ErrorKind::Source) => "error_source",
            Status::Error(ErrorKind::Storage) => "error_storage",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Status::Starting => f.write_str("starting"),
            Status::WaitingForSource => f.write_str("waiting for source"),
            Status::Connecting => f.write_str("connecting"),
            Status::Streaming => f.write_str("streaming"),
            Status::Stopped => f.write_str("stopped"),
            Status::Error(ErrorKind::Config) => f.write_str("configuration error"),
            Status::Error(ErrorKind::Refused) => f.write_str("refused by the server"),
            Status::Error(ErrorKind::Network) => f.write_str("network error"),
            Status::Error(ErrorKind::Source) => f.write_str("source error"),
            Status::Error(ErrorKind::Storage) => f.write_str("recording error"),
        }
    }
}

/// The longest a waiting source goes without noting itself alive ([`SharedStatus::sleep_alive`],
/// and the read slices of the sources that wait for data).
pub const ALIVE_SLICE: Duration = Duration::from_secs(1);

/// Monotonic counters. All relaxed: they are statistics, not synchronisation.
#[derive(Debug, Default)]
pub struct Counters {
    pub frames_in: AtomicU64,
    pub frames_sent: AtomicU64,
    pub frames_dropped: AtomicU64,
    pub bytes_sent: AtomicU64,
    pub connects: AtomicU64,
    pub reconnects: AtomicU64,
    /// Times a source's producer (the camera app) was started again after a failure.
    pub source_restarts: AtomicU64,
    /// Steps the source loop took while no frame came: a wait for data that timed out, a slice
    /// of a backoff, a look for the camera. It moves while the source is alive and trying, and
    /// stops only when the source thread is stuck (the systemd watchdog reads it).
    pub source_alive: AtomicU64,
    pub skipped_units: AtomicU64,
    /// The video bitrate the encoder was last set to, kbit/s, while the adaptive bitrate runs
    /// (`ingest`); 0: not adjusted (a source without the control, or adaptive bitrate off).
    pub encoder_kbps: AtomicU64,
    /// Allocation accounting for `CAMPUSH_ALLOC_STATS` (see `alloc`): the process's allocation
    /// count at the 30th frame sent and after the latest frame sent.
    pub warmup_frames: AtomicU64,
    pub warmup_allocs: AtomicU64,
    pub last_frame: AtomicU64,
    pub last_frame_allocs: AtomicU64,
}

impl Counters {
    /// Called by a publisher after each frame it sends; two relaxed stores, no allocation.
    pub fn frame_sent(&self) {
        let n = self.frames_sent.fetch_add(1, Ordering::Relaxed) + 1;
        let allocs = crate::alloc::allocations();
        if n == 30 {
            self.warmup_frames.store(n, Ordering::Relaxed);
            self.warmup_allocs.store(allocs, Ordering::Relaxed);
        }
        self.last_frame.store(n, Ordering::Relaxed);
        self.last_frame_allocs.store(allocs, Ordering::Relaxed);
    }
}

impl Counters {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// What one destination has done. Relaxed atomics, like [`Counters`]; they start from zero
/// whenever the destinations are set again (a new life of the source, a reload), which a
/// Prometheus `rate()` takes as a counter reset.
#[derive(Debug, Default)]
pub struct DestinationCounters {
    pub connects: AtomicU64,
    pub reconnects: AtomicU64,
    pub frames_sent: AtomicU64,
    pub bytes_sent: AtomicU64,
    /// The end-to-end backlog, µs: what is queued and on the way to the server (see
    /// `queue::FrameQueue::backlog_us`). Meaningful only while `backlog_estimate` is not 0.
    pub backlog_us: AtomicU64,
    /// How `backlog_us` is measured: 0 none (not streaming), else a [`BacklogEstimate`] + 1.
    pub backlog_estimate: AtomicU8,
}

/// How a destination's backlog is measured, as the status files name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BacklogEstimate {
    /// The server's RTMP acknowledgements: what it has received (`"acks"`).
    Acks,
    /// The socket's send queue: what has not left this machine's TCP stack (`"socket"`); the
    /// server sends no acknowledgements, or none yet.
    Socket,
}

impl BacklogEstimate {
    /// The name in the status and Prometheus files.
    pub fn name(self) -> &'static str {
        match self {
            BacklogEstimate::Acks => "acks",
            BacklogEstimate::Socket => "socket",
        }
    }

    fn code(self) -> u8 {
        match self {
            BacklogEstimate::Acks => 1,
            BacklogEstimate::Socket => 2,
        }
    }

    fn of_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(BacklogEstimate::Acks),
            2 => Some(BacklogEstimate::Socket),
            _ => None,
        }
    }
}

/// A destination's backlog as the files show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backlog {
    pub ms: u64,
    pub estimate: BacklogEstimate,
}

/// One destination's part of the status.
struct Destination {
    status: Status,
    /// Its redacted URL, once its publisher has named it.
    label: Option<String>,
    counters: Arc<DestinationCounters>,
}

struct Parts {
    source: Status,
    destinations: Vec<Destination>,
    last_error: Option<String>,
    /// The latest board health sample (all unknown until the first).
    health: Health,
    /// The microphone (`alsa:DEVICE`) and its statistics, when there is one.
    audio: Option<(String, Arc<AudioStats>)>,
}

/// Where stages report and observers look. Cheap to clone.
#[derive(Clone)]
pub struct SharedStatus {
    tx: Arc<watch::Sender<Status>>,
    parts: Arc<Mutex<Parts>>,
    pub counters: Arc<Counters>,
    watchdog: Arc<WatchdogView>,
}

/// What the systemd watchdog judges, apart from the status value (holding it does not keep the
/// value's channel open).
#[derive(Debug)]
pub struct WatchdogView {
    judged: Mutex<Status>,
    stall_ms: AtomicU64,
}

impl WatchdogView {
    /// The status folded from the source and the destinations still trying: those in
    /// `Error(Config)` (a TLS setup that failed at run time: that destination has given up) are
    /// left out. A configuration error of the whole process ([`SharedStatus::set`], shown until
    /// campush is stopped) is the source's part too, and so stays.
    pub fn judged(&self) -> Status {
        *self.judged.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How long the source may be silent while it counts as streaming, before its own stall
    /// rule reports it waiting ([`SharedStatus::set_source_stall`]); zero when it never waits.
    pub fn source_stall(&self) -> Duration {
        Duration::from_millis(self.stall_ms.load(Ordering::Relaxed))
    }
}

/// A destination's handle on the shared status.
#[derive(Clone)]
pub struct DestinationStatus {
    shared: SharedStatus,
    index: usize,
    counters: Arc<DestinationCounters>,
}

impl SharedStatus {
    pub fn new() -> Self {
        let (tx, _rx) = watch::channel(Status::Starting);
        SharedStatus {
            tx: Arc::new(tx),
            parts: Arc::new(Mutex::new(Parts {
                // "No complaint from the source" until it reports; the value itself starts at
                // `Starting` and changes only when a part reports.
                source: Status::Streaming,
                destinations: Vec::new(),
                last_error: None,
                health: Health::default(),
                audio: None,
            })),
            counters: Arc::new(Counters::default()),
            watchdog: Arc::new(WatchdogView {
                judged: Mutex::new(Status::Starting),
                stall_ms: AtomicU64::new(0),
            }),
        }
    }

    /// What the systemd watchdog judges.
    pub fn watchdog(&self) -> Arc<WatchdogView> {
        Arc::clone(&self.watchdog)
    }

    /// Sets how long the source may go without delivering while it still counts as streaming:
    /// its stall rule (the camera app's `stall_timeout_s` plus the time to stop the app, a V4L2
    /// device's silence limit) after which it reports `WaitingForSource`. Set by each source
    /// when it is made; zero (the default) for sources that never wait for their input.
    pub fn set_source_stall(&self, d: Duration) {
        let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        self.watchdog.stall_ms.store(ms, Ordering::Relaxed);
    }

    fn parts(&self) -> MutexGuard<'_, Parts> {
        self.parts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers the microphone named `source` (`alsa:DEVICE`), or none; returns the
    /// statistics its capture thread stores into.
    pub fn set_audio(&self, source: Option<String>) -> Arc<AudioStats> {
        let stats = Arc::new(AudioStats::default());
        self.parts().audio = source.map(|s| (s, Arc::clone(&stats)));
        stats
    }

    /// Registers `n` destinations (replacing the previous set, as a reload does).
    pub fn set_destinations(&self, n: usize) -> Vec<DestinationStatus> {
        let counters: Vec<Arc<DestinationCounters>> = (0..n).map(|_| Arc::default()).collect();
        self.parts().destinations = counters
            .iter()
            .map(|c| Destination {
                status: Status::Starting,
                label: None,
                counters: Arc::clone(c),
            })
            .collect();
        self.publish();
        counters
            .into_iter()
            .enumerate()
            .map(|(index, counters)| DestinationStatus {
                shared: self.clone(),
                index,
                counters,
            })
            .collect()
    }

    /// The source's own state: `Streaming` while it delivers, `WaitingForSource` or
    /// `Error(Source)` when it does not.
    pub fn set_source(&self, status: Status) {
        self.parts().source = status;
        self.publish();
    }

    /// Reports a state for the whole process (a configuration error at start-up, the final stop).
    pub fn set(&self, status: Status) {
        {
            let mut p = self.parts();
            p.source = status;
            for d in &mut p.destinations {
                d.status = status;
            }
        }
        self.publish();
    }

    /// Notes that the source loop is alive while no frame flows (see [`Counters::source_alive`]).
    /// One relaxed atomic add.
    pub fn source_alive(&self) {
        Counters::add(&self.counters.source_alive, 1);
    }

    /// Sleeps `d`, noting the source alive at the start and after every [`ALIVE_SLICE`], for a
    /// source waiting out a backoff on its own thread. Ends early, with `false` and without
    /// noting the source alive again, once `stop` is requested (looked at every
    /// [`crate::stop::SLICE`]).
    pub fn sleep_alive(&self, d: Duration, stop: &Stop) -> bool {
        let until = Instant::now() + d;
        loop {
            if stop.requested() {
                return false;
            }
            self.source_alive();
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return true;
            }
            if !stop.sleep(left.min(ALIVE_SLICE)) {
                return false;
            }
        }
    }

    /// Records the most recent error, already stripped of secrets by its `Display`.
    pub fn set_last_error(&self, error: &dyn std::fmt::Display) {
        self.parts().last_error = Some(error.to_string());
    }

    pub fn last_error(&self) -> Option<String> {
        self.parts().last_error.clone()
    }

    /// Records the latest board health sample.
    pub fn set_health(&self, health: Health) {
        self.parts().health = health;
    }

    /// The latest board health sample (all unknown before the first).
    pub fn health(&self) -> Health {
        self.parts().health
    }

    fn publish(&self) {
        let (overall, judged) = {
            let p = self.parts();
            let fold = |destinations: &mut dyn Iterator<Item = Status>| {
                let worst = destinations
                    .max_by_key(|s| s.severity())
                    // No destination registered (yet): the process-wide or source state shows.
                    .unwrap_or(p.source);
                if p.source != Status::Streaming {
                    p.source
                } else {
                    worst
                }
            };
            let all = fold(&mut p.destinations.iter().map(|d| d.status));
            let trying = fold(
                &mut p
                    .destinations
                    .iter()
                    .map(|d| d.status)
                    .filter(|s| *s != Status::Error(ErrorKind::Config)),
            );
            (all, trying)
        };
        *self
            .watchdog
            .judged
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = judged;
        self.tx.send_if_modified(|s| {
            if *s == overall {
                false
            } else {
                log::debug!("status: {overall}");
                *s = overall;
                true
            }
        });
    }

    /// The one value.
    pub fn get(&self) -> Status {
        *self.tx.borrow()
    }

    pub fn subscribe(&self) -> watch::Receiver<Status> {
        self.tx.subscribe()
    }

    /// A one-line summary for the log.
    pub fn summary(&self, kbps: f64) -> String {
        let c = &self.counters;
        let mut s = format!(
            "{}: frames in {} sent {} dropped {}, {:.0} kbit/s, {} reconnect(s)",
            self.get(),
            Counters::get(&c.frames_in),
            Counters::get(&c.frames_sent),
            Counters::get(&c.frames_dropped),
            kbps,
            Counters::get(&c.reconnects),
        );
        let encoder = Counters::get(&c.encoder_kbps);
        if encoder > 0 {
            s += &format!(", encoder {encoder} kbit/s");
        }
        // Only sources that run a producer (the camera app) restart; others never show it.
        let restarts = Counters::get(&c.source_restarts);
        if restarts > 0 {
            s += &format!(", {restarts} source restart(s)");
        }
        if let Some(board) = self.health().summary() {
            s += &format!("; board: {board}");
        }
        if let Some(e) = self.last_error() {
            s += &format!("; last error: {e}");
        }
        s
    }

    /// Everything the files show, read at once.
    pub fn snapshot(&self, kbps: f64, uptime: Duration) -> Snapshot {
        let c = &self.counters;
        let p = self.parts();
        let mut destinations: Vec<DestinationSnapshot> = Vec::with_capacity(p.destinations.len());
        for (i, d) in p.destinations.iter().enumerate() {
            let base = d
                .label
                .clone()
                .unwrap_or_else(|| format!("destination {}", i + 1));
            // Two destinations on the same server and app look alike once redacted: number
            // the later ones, so that each has a label (and a Prometheus series) of its own.
            let mut label = base.clone();
            let mut n = 1;
            while destinations.iter().any(|o| o.label == label) {
                n += 1;
                label = format!("{base} #{n}");
            }
            destinations.push(DestinationSnapshot {
                label,
                status: d.status,
                connects: Counters::get(&d.counters.connects),
                reconnects: Counters::get(&d.counters.reconnects),
                frames_sent: Counters::get(&d.counters.frames_sent),
                bytes_sent: Counters::get(&d.counters.bytes_sent),
                backlog: d.counters.backlog(),
            });
        }
        Snapshot {
            status: self.get(),
            uptime,
            bitrate_kbps: kbps,
            encoder_kbps: Some(Counters::get(&c.encoder_kbps)).filter(|k| *k > 0),
            frames_in: Counters::get(&c.frames_in),
            frames_sent: Counters::get(&c.frames_sent),
            frames_dropped: Counters::get(&c.frames_dropped),
            bytes_sent: Counters::get(&c.bytes_sent),
            connects: Counters::get(&c.connects),
            reconnects: Counters::get(&c.reconnects),
            source_restarts: Counters::get(&c.source_restarts),
            destinations,
            health: p.health,
            last_error: p.last_error.clone(),
            audio: p
                .audio
                .as_ref()
                .map(|(source, stats)| stats.snapshot(source)),
        }
    }

    /// The status file's contents.
    pub fn to_json(&self, kbps: f64, uptime: Duration) -> String {
        self.snapshot(kbps, uptime).to_json()
    }

    /// The Prometheus text file's contents.
    pub fn to_prometheus(&self, kbps: f64, uptime: Duration) -> String {
        prometheus::render(&self.snapshot(kbps, uptime))
    }
}

impl Default for SharedStatus {
    fn default() -> Self {
        Self::new()
    }
}

/// For tests: destinations on the servers `hosts`, each named `rtmp://HOST:1935/live/<redacted>`.
#[cfg(test)]
pub(crate) fn destinations_on(status: &SharedStatus, hosts: &[&str]) -> Vec<DestinationStatus> {
    let d = status.set_destinations(hosts.len());
    for (d, host) in d.iter().zip(hosts) {
        d.set_label(format!("rtmp://{host}:1935/live/<redacted>"));
    }
    d
}

impl DestinationCounters {
    /// The backlog last set ([`DestinationStatus::set_backlog`]), in ms.
    fn backlog(&self) -> Option<Backlog> {
        let estimate = BacklogEstimate::of_code(self.backlog_estimate.load(Ordering::Relaxed))?;
        Some(Backlog {
            ms: self.backlog_us.load(Ordering::Relaxed) / 1000,
            estimate,
        })
    }
}

impl DestinationStatus {
    /// The end-to-end backlog behind this destination, µs, and how it is measured; `None` when
    /// it is not streaming. Two relaxed stores, no allocation: the publisher calls it while it
    /// streams.
    pub fn set_backlog(&self, backlog: Option<(u64, BacklogEstimate)>) {
        let c = &self.counters;
        match backlog {
            Some((us, estimate)) => {
                c.backlog_us.store(us, Ordering::Relaxed);
                c.backlog_estimate.store(estimate.code(), Ordering::Relaxed);
            }
            None => c.backlog_estimate.store(0, Ordering::Relaxed),
        }
    }

    pub fn set(&self, status: Status) {
        if let Some(d) = self.shared.parts().destinations.get_mut(self.index) {
            d.status = status;
        }
        self.shared.publish();
    }

    pub fn get(&self) -> Status {
        self.shared
            .parts()
            .destinations
            .get(self.index)
            .map_or(Status::Stopped, |d| d.status)
    }

    /// Names the destination in the status and Prometheus files: its URL, redacted (the
    /// caller's `Display` of an `RtmpUrl`, which never shows the key).
    pub fn set_label(&self, label: String) {
        if let Some(d) = self.shared.parts().destinations.get_mut(self.index) {
            d.label = Some(label);
        }
    }

    /// This destination's own counters.
    pub fn counters(&self) -> &DestinationCounters {
        &self.counters
    }

    /// A connection attempt starts: counted here and in the total.
    pub fn count_connect(&self) {
        Counters::add(&self.counters.connects, 1);
        Counters::add(&self.shared.counters.connects, 1);
    }

    /// A reconnect (an attempt after a failure) starts.
    pub fn count_reconnect(&self) {
        Counters::add(&self.counters.reconnects, 1);
        Counters::add(&self.shared.counters.reconnects, 1);
    }

    /// A frame went out (see [`Counters::frame_sent`]).
    pub fn count_frame_sent(&self) {
        Counters::add(&self.counters.frames_sent, 1);
        self.shared.counters.frame_sent();
    }

    /// `n` bytes went out.
    pub fn count_bytes_sent(&self, n: u64) {
        Counters::add(&self.counters.bytes_sent, n);
        Counters::add(&self.shared.counters.bytes_sent, n);
    }

    pub fn shared(&self) -> &SharedStatus {
        &self.shared
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observers_see_changes_but_not_repeats() {
        let status = SharedStatus::new();
        let dests = status.set_destinations(1);
        let mut rx = status.subscribe();
        assert_eq!(*rx.borrow_and_update(), Status::Starting);
        dests[0].set(Status::Connecting);
        assert!(rx.has_changed().unwrap());
        assert_eq!(*rx.borrow_and_update(), Status::Connecting);
        dests[0].set(Status::Connecting);
        assert!(!rx.has_changed().unwrap());
        dests[0].set(Status::Error(ErrorKind::Refused));
        assert_eq!(status.get(), Status::Error(ErrorKind::Refused));
    }

    #[test]
    fn the_board_shows_streaming_only_when_every_destination_streams() {
        let status = SharedStatus::new();
        let d = status.set_destinations(2);
        d[0].set(Status::Streaming);
        assert_eq!(status.get(), Status::Starting);
        d[1].set(Status::Connecting);
        assert_eq!(status.get(), Status::Connecting);
        d[1].set(Status::Streaming);
        assert_eq!(status.get(), Status::Streaming);
        d[0].set(Status::Error(ErrorKind::Network));
        assert_eq!(status.get(), Status::Error(ErrorKind::Network));
    }

    #[test]
    fn a_missing_source_outranks_the_destinations() {
        let status = SharedStatus::new();
        let d = status.set_destinations(1);
        d[0].set(Status::Streaming);
        status.set_source(Status::WaitingForSource);
        assert_eq!(status.get(), Status::WaitingForSource);
        status.set_source(Status::Streaming);
        assert_eq!(status.get(), Status::Streaming);
    }

    #[test]
    fn the_status_file_is_json_with_the_counters_and_escaped_error() {
        let status = SharedStatus::new();
        status.set_destinations(1)[0].set(Status::Streaming);
        Counters::add(&status.counters.frames_sent, 42);
        status.set_last_error(&"server said \"no\"\n");
        let json = status.to_json(1234.5, Duration::from_secs(7));
        assert!(json.contains("\"status\":\"streaming\""), "{json}");
        assert!(json.contains("\"frames_sent\":42"));
        assert!(json.contains("\"source_restarts\":0"), "{json}");
        assert!(json.contains("\"bitrate_kbps\":1234.5"));
        assert!(
            json.contains(r#""last_error":"server said \"no\"\u000a""#),
            "{json}"
        );
        assert!(json.contains("\"encoder_bitrate_kbps\":null"), "{json}");
    }

    #[test]
    fn the_encoder_bitrate_set_by_the_adaptive_bitrate_is_in_the_files_and_the_summary() {
        let status = SharedStatus::new();
        assert!(!status
            .to_prometheus(0.0, Duration::ZERO)
            .contains("encoder"));
        status.counters.encoder_kbps.store(1875, Ordering::Relaxed);
        let json = status.to_json(0.0, Duration::ZERO);
        assert!(json.contains("\"encoder_bitrate_kbps\":1875"), "{json}");
        let text = status.to_prometheus(0.0, Duration::ZERO);
        assert!(
            text.contains("\ncampush_encoder_bitrate_bits_per_second 1875000\n"),
            "{text}"
        );
        assert!(status.summary(0.0).contains("encoder 1875 kbit/s"));
    }

    #[test]
    fn source_restarts_show_in_the_summary_once_there_are_any() {
        let board = SharedStatus::new();
        assert!(!board.summary(0.0).contains("restart"));
        Counters::add(&board.counters.source_restarts, 2);
        assert!(board.summary(0.0).contains(", 2 source restart(s)"));
        assert!(board
            .to_json(0.0, Duration::ZERO)
            .contains("\"source_restarts\":2"));
    }

    #[test]
    fn the_board_health_shows_in_the_summary_line_and_the_status_file() {
        use crate::health::{FirmwareFlags, Health, Interface, Wifi};
        let board = SharedStatus::new();
        board.set_destinations(1)[0].set(Status::Streaming);
        assert!(!board.summary(0.0).contains("board"), "nothing known yet");
        let json = board.to_json(0.0, Duration::ZERO);
        assert!(
            json.contains(
                r#""health":{"under_voltage":null,"throttled":null,"freq_capped":null,"soft_temp_limit":null,"firmware_flags":null,"temp_c":null,"wifi_interface":null,"wifi_link_quality":null,"wifi_signal_dbm":null,"wifi_power_save":null,"clock_synced":null}"#
            ),
            "{json}"
        );
        board.set_health(Health {
            firmware: Some(FirmwareFlags(0x50005)),
            temp_millicelsius: Some(71_540),
            wifi: Some(Wifi {
                interface: Interface::new("wlan0").unwrap(),
                link_quality: Some(41),
                signal_dbm: Some(-69),
            }),
            wifi_power_save: Some(false),
            clock_synced: Some(true),
        });
        board.set_last_error(&"boom");
        assert_eq!(
            board.summary(1000.0),
            "streaming: frames in 0 sent 0 dropped 0, 1000 kbit/s, 0 reconnect(s); \
             board: under-voltage, throttled, 71.5 °C, Wi-Fi -69 dBm; last error: boom"
        );
        let json = board.to_json(0.0, Duration::ZERO);
        assert!(
            json.contains(
                r#""health":{"under_voltage":true,"throttled":true,"freq_capped":false,"soft_temp_limit":false,"firmware_flags":"0x50005","temp_c":71.5,"wifi_interface":"wlan0","wifi_link_quality":41,"wifi_signal_dbm":-69,"wifi_power_save":false,"clock_synced":true}"#
            ),
            "{json}"
        );
    }

    #[test]
    fn each_destination_is_in_the_status_file_under_its_redacted_url() {
        let status = SharedStatus::new();
        let d = status.set_destinations(2);
        d[0].set_label("rtmp://h:1935/live/<redacted>".into());
        d[0].set(Status::Streaming);
        d[0].count_connect();
        d[0].count_frame_sent();
        d[0].count_bytes_sent(500);
        d[1].count_connect();
        d[1].count_reconnect();
        let json = status.to_json(0.0, Duration::ZERO);
        assert!(
            json.contains(
                r#""destinations":[{"destination":"rtmp://h:1935/live/<redacted>","status":"streaming","connects":1,"reconnects":0,"frames_sent":1,"bytes_sent":500,"backlog_ms":null,"backlog_estimate":null},{"destination":"destination 2","status":"starting","connects":1,"reconnects":1,"frames_sent":0,"bytes_sent":0,"backlog_ms":null,"backlog_estimate":null}]"#
            ),
            "{json}"
        );
        // The totals count both.
        assert!(json.contains(r#""connects":2,"reconnects":1"#), "{json}");
        assert_eq!(Counters::get(&status.counters.frames_sent), 1);
        assert_eq!(Counters::get(&d[0].counters().bytes_sent), 500);
    }

    #[test]
    fn each_streaming_destination_shows_its_backlog_in_ms_and_the_estimate_that_measures_it() {
        let status = SharedStatus::new();
        let d = destinations_on(&status, &["a", "b", "c"]);
        d[0].set_backlog(Some((1_234_567, BacklogEstimate::Acks)));
        d[1].set_backlog(Some((80_000, BacklogEstimate::Socket)));
        // Streamed, then the connection ended: no backlog to show.
        d[2].set_backlog(Some((9_000_000, BacklogEstimate::Acks)));
        d[2].set_backlog(None);
        let json = status.to_json(0.0, Duration::ZERO);
        for part in [
            r#""destination":"rtmp://a:1935/live/<redacted>","status":"starting","connects":0,"reconnects":0,"frames_sent":0,"bytes_sent":0,"backlog_ms":1234,"backlog_estimate":"acks"}"#,
            r#""bytes_sent":0,"backlog_ms":80,"backlog_estimate":"socket"}"#,
            r#""destination":"rtmp://c:1935/live/<redacted>","status":"starting","connects":0,"reconnects":0,"frames_sent":0,"bytes_sent":0,"backlog_ms":null,"backlog_estimate":null}"#,
        ] {
            assert!(json.contains(part), "{part} not in {json}");
        }
        let parsed = json::parse(&json).unwrap();
        let first = &parsed.get("destinations").unwrap().as_array().unwrap()[0];
        assert_eq!(first.get("backlog_ms").unwrap().as_f64(), Some(1234.0));
    }
}
