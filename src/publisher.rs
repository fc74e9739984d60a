//! The publisher: the thin tokio shell that moves one destination's frames through the sans-IO
//! RTMP session and a TCP or TLS connection (`transport`).
//!
//! Owns: one destination's connection and all its per-connection state, its output buffer and
//! read buffer (allocated once per destination, reused across connections), its audio source
//! handle, and the reconnect loop around [`Publisher::run_once`].
//!
//! One connection (`run_once`):
//! 1. connect (TCP, and TLS for `rtmps://`) within the connect deadline; handshake + `connect` +
//!    `createStream` + `publish`
//!    within the publish deadline (the session decides what to send, we only move bytes);
//! 2. resynchronise the queue to a keyframe, send `onMetaData` and the AVC sequence header from
//!    the cached SPS/PPS (and the AAC sequence header), then frames, each preceded by the audio
//!    frames captured up to it (interleaved by timestamp); what one frame needs is chunked into
//!    `out` and goes to the socket in one `write` (plus a flush over TLS), under the write
//!    deadline;
//! 3. answer the server (pings, acknowledgements) whenever it sends something; after every read
//!    and write, and every 100 ms, measure the backlog beyond the queue (`backlog`: by the
//!    server's acknowledgements of the window we announce, else the socket's send queue; said
//!    once per connection) and hand it to the queue's drop policy; every 100 ms, show the
//!    end-to-end backlog (queued and in flight) and its estimate in the status;
//! 4. at the end of the input or on stop: `FCUnpublish` + `deleteStream`, half-close, and wait
//!    (bounded) for the server to close, which proves it has read everything we sent.
//!
//! Retries (issue 10): a failure where nobody answered (connect refused or unreachable, a
//! connection reset before the server sent a byte, a published stream lost after it had run a
//! while) is retried quickly, at most [`QUICK_RETRY_CAP`] later, so a restarted server has the
//! stream again within about a second; a server that answered and failed us (refused, garbage,
//! silent past a deadline) gets the exponential backoff ([`retry_class`], [`retry_delay`]).
//!
//! Timestamps: FLV timestamps on a connection start at 0 on its first (key)frame and follow the
//! capture clock from there, so they are monotonic within a connection and every recording a
//! server makes per connection starts at zero and decodes from its first frame.
//!
//! Settings: one `[[output]]` ([`RawOutput`] → [`Output::check`]: the URL with its key, the TLS
//! options) and `[network]` ([`RawNetwork`] → [`PublisherSettings::check`]) are checked here;
//! `config` assembles them.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

use crate::audio::{AudioSource, AudioSpec};
use crate::backlog::{Estimate, Meter};
use crate::clock::monotonic_us;
use crate::flv;
use crate::pool::Frame;
use crate::queue::{FrameQueue, SharedHeaders};
use crate::rtmp::session::DEFAULT_WINDOW_ACK_SIZE;
use crate::rtmp::{ClientSession, Framing, RtmpError, RtmpUrl, Scheme, SessionConfig};
use crate::setting::Invalid;
use crate::status::{BacklogEstimate, Counters, DestinationStatus, ErrorKind, Status};
use crate::transport::{vectored, Connection, Connector, Endpoint, TlsOptions, TransportError};

/// Deadlines and sizes of one destination.
#[derive(Debug, Clone)]
pub struct PublisherSettings {
    pub connect_timeout: Duration,
    pub publish_timeout: Duration,
    pub write_timeout: Duration,
    /// How long to wait for the server to close after our unpublish.
    pub finish_timeout: Duration,
    pub chunk_size: u32,
    /// Give up after this many consecutive failed attempts (`None`: never).
    pub max_attempts: Option<u32>,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// A connection that streamed this long resets the backoff schedule.
    pub healthy_after: Duration,
    /// Trust settings for `rtmps://`.
    pub tls: TlsOptions,
    /// The audio track sent with the video.
    pub audio: AudioSpec,
}

impl Default for PublisherSettings {
    fn default() -> Self {
        PublisherSettings {
            connect_timeout: Duration::from_secs(10),
            publish_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(5),
            finish_timeout: Duration::from_secs(5),
            chunk_size: 4096,
            max_attempts: None,
            backoff_min: Duration::from_millis(500),
            backoff_max: Duration::from_secs(10),
            healthy_after: Duration::from_secs(30),
            tls: TlsOptions::default(),
            audio: AudioSpec::None,
        }
    }
}

/// `[network]` of the configuration file, as written.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNetwork {
    pub connect_timeout_s: Option<f64>,
    pub publish_timeout_s: Option<f64>,
    pub write_timeout_s: Option<f64>,
    pub backoff_min_s: Option<f64>,
    pub backoff_max_s: Option<f64>,
    /// Consecutive failed attempts before giving up; 0 = never.
    pub max_attempts: Option<u32>,
    pub chunk_size: Option<u32>,
}

impl PublisherSettings {
    /// The deadlines, backoff and chunk size `[network]` asks for. `one_shot`: the source is a
    /// file pushed once, a job that should fail fast (one attempt unless `max_attempts` says
    /// otherwise); live sources and looping files never give up unless told to.
    pub fn check(raw: &RawNetwork, one_shot: bool) -> Result<PublisherSettings, Invalid> {
        let secs = |v: Option<f64>, key: &'static str, default: f64, max: f64| {
            let v = v.unwrap_or(default);
            if v.is_finite() && v > 0.0 && v <= max {
                Ok(Duration::from_secs_f64(v))
            } else {
                Err(Invalid::new(
                    key,
                    format!("{v} is out of range: expected seconds above 0, at most {max}"),
                ))
            }
        };
        let mut settings = PublisherSettings {
            connect_timeout: secs(raw.connect_timeout_s, "connect_timeout_s", 10.0, 300.0)?,
            publish_timeout: secs(raw.publish_timeout_s, "publish_timeout_s", 10.0, 300.0)?,
            write_timeout: secs(raw.write_timeout_s, "write_timeout_s", 5.0, 300.0)?,
            backoff_min: secs(raw.backoff_min_s, "backoff_min_s", 0.5, 3600.0)?,
            backoff_max: secs(raw.backoff_max_s, "backoff_max_s", 10.0, 3600.0)?,
            max_attempts: match raw.max_attempts {
                Some(0) => None,
                Some(m) => Some(m),
                None if one_shot => Some(1),
                None => None,
            },
            ..PublisherSettings::default()
        };
        if settings.backoff_min > settings.backoff_max {
            return Err(Invalid::new(
                "backoff_min_s",
                "is larger than backoff_max_s",
            ));
        }
        if let Some(size) = raw.chunk_size {
            if !(128..=65536).contains(&size) {
                return Err(Invalid::new(
                    "chunk_size",
                    format!("{size} is out of range: expected 128 to 65536"),
                ));
            }
            settings.chunk_size = size;
        }
        Ok(settings)
    }
}

/// One `[[output]]` of the configuration file, as written.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOutput {
    pub url: Option<String>,
    pub key: Option<String>,
    /// A file holding only the key; relative: to the configuration file's directory.
    pub key_file: Option<PathBuf>,
    /// rtmps:// only: PEM file of extra trusted CA certificates; relative: as `key_file`.
    pub tls_ca: Option<PathBuf>,
    /// rtmps:// only: accept any certificate (lab use; warned about at every connect).
    pub tls_insecure: Option<bool>,
}

/// One destination, checked: where to publish (the key inside the URL) and how to trust it.
#[derive(Debug, Clone)]
pub struct Output {
    pub url: RtmpUrl,
    pub tls: TlsOptions,
    /// The file the key was read from (`key_file`, resolved), if it came from one.
    pub key_file: Option<PathBuf>,
}

impl Output {
    /// Checks an `[[output]]`. A relative `key_file` or `tls_ca` is taken from `base_dir` (the
    /// configuration file's directory: a key file beside campush.toml on the card), not from
    /// the working directory, which for a service is `/`. No error names the key, the URL or
    /// the key file: the key may sit in any of them.
    pub fn check(raw: &RawOutput, base_dir: Option<&Path>) -> Result<Output, Invalid> {
        let resolve = |path: &Path| match base_dir {
            Some(dir) if path.is_relative() => dir.join(path),
            _ => path.to_path_buf(),
        };
        let Some(url) = &raw.url else {
            return Err(Invalid::new(
                "url",
                "missing: every [[output]] needs url = \"rtmp://host/app\"",
            ));
        };
        let key_file = raw.key_file.as_deref().map(resolve);
        let (key, key_from) = match (&raw.key, &key_file) {
            (Some(_), Some(_)) => {
                return Err(Invalid::new("key_file", "set key or key_file, not both"))
            }
            (Some(k), None) => (Some(k.trim().to_owned()), "key"),
            (None, Some(path)) => {
                let text = crate::small_file::read_to_string(path, KEY_FILE_LIMIT)
                    .map_err(|e| Invalid::new("key_file", unreadable_key_file(path, &e)))?;
                let key = text.trim_start_matches('\u{feff}').trim().to_owned();
                (Some(key), "key_file")
            }
            (None, None) => (None, "url"),
        };
        let url = match key {
            Some(key) if key.is_empty() => {
                return Err(Invalid::new(key_from, "the stream key is empty"))
            }
            Some(key) => RtmpUrl::with_key(url, &key),
            None => RtmpUrl::parse(url),
        }
        .map_err(|e| {
            use crate::rtmp::UrlError::{EmptyKey, InvalidKey};
            let key = match e {
                EmptyKey | InvalidKey => key_from,
                _ => "url",
            };
            Invalid::new(key, e.to_string())
        })?;
        let tls = TlsOptions::check(
            url.scheme == Scheme::Rtmps,
            raw.tls_ca.as_deref().map(resolve).as_deref(),
            raw.tls_insecure,
        )?;
        Ok(Output { url, tls, key_file })
    }
}

/// The most a key file may hold: a stream key is tens of bytes (a line, maybe a comment more).
/// Only a regular file is read, so `/dev/zero` or a FIFO is refused rather than read forever.
pub const KEY_FILE_LIMIT: usize = 4096;

/// Why a key file cannot be read, naming its directory but not its name (a key pasted into
/// `key_file` by mistake would be its name). A key file kept from other users (root:campush 0640
/// in /etc/campush) is closed to a person checking the configuration as themselves, too: that
/// error says how to check it as the service reads it.
fn unreadable_key_file(path: &Path, e: &std::io::Error) -> String {
    let dir = path.parent().unwrap_or(Path::new(""));
    let hint = match e.kind() {
        std::io::ErrorKind::PermissionDenied => {
            "; check the configuration as the service reads it: \
             sudo -u campush campush check-config"
        }
        _ => "",
    };
    format!("cannot read the key file (in {}): {e}{hint}", dir.display())
}

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

/// Set (to anything) in the environment, campush ignores the server's RTMP acknowledgements and
/// announces no window: the backlog is measured by the socket's send queue alone. For tests of
/// that fallback against servers that do acknowledge.
pub const IGNORE_ACKS_ENV: &str = "CAMPUSH_IGNORE_RTMP_ACKS";

/// The most frames sent per wake-up before the server's messages and a stop are looked at again
/// (an unpaced source refills the queue as fast as it drains).
const DRAIN_AT_MOST: usize = 16;

/// How often the backlog is measured while nothing is read or written.
const MEASURE_EVERY: Duration = Duration::from_millis(100);

const CLOSED_WHILE_PUBLISHING: &str =
    "before the publish was accepted (it refused the app or stream key, or is not an RTMP server)";

/// How a connection ended without an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The input ended and the server has everything.
    Finished,
    /// Asked to stop; unpublished cleanly.
    Stopped,
}

/// One destination.
pub struct Publisher {
    url: RtmpUrl,
    /// The URL as logs show it (redacted), made once.
    label: String,
    settings: PublisherSettings,
    queue: Arc<FrameQueue>,
    headers: SharedHeaders,
    status: DestinationStatus,
    stop: watch::Receiver<bool>,
    connector: Connector,
    /// The audio track, pulled by timestamp before each video frame.
    audio: Option<Box<dyn AudioSource>>,
    /// One audio tag body at a time (allocated once).
    audio_tag: flv::AudioTag,
    out: Vec<u8>,
    inbuf: Box<[u8]>,
    published_once: bool,
    /// How long the last connection streamed, once it has ended.
    streamed_for: Option<Duration>,
    /// The server sent at least one byte on the current attempt (RTMP, after TLS if any).
    heard_from_server: bool,
    /// The current connection's backlog beyond the queue (`crate::backlog`).
    meter: Meter,
    /// Announce a window and believe the server's acknowledgements (unless [`IGNORE_ACKS_ENV`]).
    use_acks: bool,
    /// When the backlog was last shown in the status (µs, monotonic).
    backlog_shown_us: u64,
}

/// Per-connection media state.
struct Stream {
    base_us: Option<u64>,
    last_ts: u32,
    sent_gen: u32,
    audio_header_sent: bool,
}

impl Publisher {
    pub fn new(
        url: RtmpUrl,
        settings: PublisherSettings,
        queue: Arc<FrameQueue>,
        headers: SharedHeaders,
        status: DestinationStatus,
        stop: watch::Receiver<bool>,
    ) -> Self {
        let connector = Connector::new(settings.tls.clone());
        let audio = settings.audio.open();
        let label = url.to_string();
        status.set_label(label.clone());
        let use_acks = std::env::var_os(IGNORE_ACKS_ENV).is_none();
        let meter = Meter::new(
            // Frames remembered in flight: four times the queue's frame cap.
            queue.max_frames().saturating_mul(4).max(256),
            DEFAULT_WINDOW_ACK_SIZE,
            use_acks,
        );
        Publisher {
            url,
            label,
            settings,
            queue,
            headers,
            status,
            stop,
            connector,
            audio,
            audio_tag: flv::AudioTag::new(),
            out: Vec::with_capacity(512 * 1024),
            inbuf: vec![0; 16 * 1024].into_boxed_slice(),
            published_once: false,
            streamed_for: None,
            heard_from_server: false,
            meter,
            use_acks,
            backlog_shown_us: 0,
        }
    }

    /// Runs connections until the input ends, a stop is requested, or `max_attempts`
    /// consecutive attempts failed (then the last error is returned). This is the reconnect loop:
    /// everything a connection owns lives in `run_once`, so each attempt starts clean.
    pub async fn run(&mut self) -> Result<Outcome, PublishError> {
        let mut failures = 0u32;
        loop {
            let started = tokio::time::Instant::now();
            let result = self.run_once().await;
            let e = match result {
                Ok(outcome) => return Ok(outcome),
                Err(e) => e,
            };
            // A connection that streamed long enough was healthy: start the schedule over.
            let healthy = self
                .streamed_for
                .is_some_and(|d| d >= self.settings.healthy_after);
            failures = if healthy { 1 } else { failures + 1 };
            let clock = e.clock_note(self.status.shared().health().clock_synced);
            // The error first: a status write woken by the state change shows both.
            self.status
                .shared()
                .set_last_error(&format_args!("{}: {e}{clock}", self.url));
            self.status.set(Status::Error(e.kind()));
            log::warn!("{}: {e}{clock}", self.url);
            if self
                .settings
                .max_attempts
                .is_some_and(|max| failures >= max)
            {
                return Err(e);
            }
            // The input ended while this destination was down: there is nothing left to send
            // it, and waiting for it would hold up the end of the other destinations' push.
            if self.queue.is_finished() {
                log::warn!("{}: the input ended while it was unreachable", self.url);
                return Err(e);
            }
            let jitter = (monotonic_us() % 1000) as f64 / 1000.0;
            let retry = retry_class(&e, self.heard_from_server, self.streamed_for);
            let delay = retry_delay(&self.settings, failures, e.kind(), retry, jitter);
            log::info!(
                "{}: reconnecting in {:.3} s (attempt {} failed after {:.3} s{})",
                self.url,
                delay.as_secs_f64(),
                failures,
                started.elapsed().as_secs_f64(),
                match retry {
                    Retry::Quick => "; the server is not there: retrying soon",
                    Retry::Backoff => "",
                }
            );
            let mut stop = self.stop.clone();
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = stop.wait_for(|s| *s) => {
                    self.status.set(Status::Stopped);
                    return Ok(Outcome::Stopped);
                }
            }
            self.status.count_reconnect();
        }
    }

    /// One connection, from TCP connect to unpublish.
    pub async fn run_once(&mut self) -> Result<Outcome, PublishError> {
        self.status.set(Status::Connecting);
        self.streamed_for = None;
        self.heard_from_server = false;
        self.status.count_connect();
        let endpoint = Endpoint {
            host: &self.url.host,
            port: self.url.port,
            tls: self.url.scheme == Scheme::Rtmps,
        };
        let mut conn = self
            .connector
            .connect(endpoint, self.settings.connect_timeout)
            .await?;
        let mut session = ClientSession::new(SessionConfig {
            app: self.url.app.clone(),
            tc_url: self.url.tc_url.clone(),
            stream_key: self.url.stream_key.clone(),
            flash_ver: "FMLE/3.0 (compatible; campush)".into(),
            chunk_size: self.settings.chunk_size,
            seed: monotonic_us() ^ u64::from(std::process::id()),
            max_message_size: 1024 * 1024,
            window_ack_size: if self.use_acks {
                DEFAULT_WINDOW_ACK_SIZE
            } else {
                0
            },
        });
        self.meter.reset(monotonic_us());

        let deadline = self.settings.publish_timeout;
        tokio::time::timeout(deadline, self.publish(&mut conn, &mut session))
            .await
            .map_err(|_| PublishError::Timeout("handshake and publish", deadline))??;
        log::info!("{}: publishing", self.url);
        self.status.set(Status::Streaming);
        let streaming_since = tokio::time::Instant::now();
        let dropped = self.queue.resync(!self.published_once);
        Counters::add(
            &self.status.shared().counters.frames_dropped,
            dropped as u64,
        );
        self.published_once = true;
        self.queue.set_streaming(true);
        let result = self.stream(&mut conn, &mut session).await;
        self.queue.set_streaming(false);
        self.status.set_backlog(None);
        self.streamed_for = Some(streaming_since.elapsed());
        self.queue.set_oldest_in_flight(None);
        self.queue.set_link(0, None);
        if let Some(estimate) = self.meter.finish() {
            self.log_estimate(estimate);
        }
        result
    }

    async fn publish(
        &mut self,
        conn: &mut Connection,
        session: &mut ClientSession,
    ) -> Result<(), PublishError> {
        self.out.clear();
        session.start(&mut self.out);
        conn.write_all(&self.out).await?;
        conn.flush().await?;
        self.meter.sent(self.out.len() as u64, None);
        while !session.is_published() {
            let n = conn.read(&mut self.inbuf).await?;
            if n == 0 {
                return Err(PublishError::Closed(CLOSED_WHILE_PUBLISHING));
            }
            self.heard_from_server = true;
            self.out.clear();
            session.receive(&self.inbuf[..n], &mut self.out)?;
            if !self.out.is_empty() {
                conn.write_all(&self.out).await?;
                conn.flush().await?;
                self.meter.sent(self.out.len() as u64, None);
            }
        }
        Ok(())
    }

    async fn stream(
        &mut self,
        conn: &mut Connection,
        session: &mut ClientSession,
    ) -> Result<Outcome, PublishError> {
        let mut st = Stream {
            base_us: None,
            last_ts: 0,
            sent_gen: 0,
            audio_header_sent: false,
        };
        let mut stop = self.stop.clone();
        // The backlog is measured after every read and write, and on this tick while neither
        // happens (the queue may be refusing frames because of it).
        let mut tick = tokio::time::interval(MEASURE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Reads and writes never overlap: a write completes (or times out) before the next read
        // is polled, so one stream serves both, TLS included. Both futures in the select are
        // cancel-safe: bytes a TLS read already took from the socket stay in the connection's
        // input buffer.
        let outcome = loop {
            self.out.clear();
            let mut frame_ts = None;
            // Bytes of a frame that went out straight from its slot (`send_body_now`).
            let mut sent_now = 0;
            tokio::select! {
                biased;
                _ = stop.wait_for(|s| *s) => break Outcome::Stopped,
                read = conn.read(&mut self.inbuf) => {
                    let n = read?;
                    if n == 0 {
                        return Err(PublishError::Closed("while streaming"));
                    }
                    session.receive(&self.inbuf[..n], &mut self.out)?;
                    if let Some((seq, count)) = session.peer_acknowledged() {
                        self.meter.on_peer_ack(seq, count, monotonic_us());
                    }
                }
                _ = tick.tick() => {}
                frame = self.queue.pop() => match frame {
                    Some(mut frame) => for batched in 1.. {
                        frame_ts = Some(frame.meta().timestamp_us);
                        if let Some(framing) = self.write_frame(session, &mut st, &frame) {
                            sent_now = self.send_body_now(conn, &frame, &framing)?;
                        }
                        // Drain what else is queued in this wake-up while the socket takes
                        // every byte (`out` empty: nothing waits to be written); a frame that
                        // leaves bytes behind, or TLS, ends the batch for `write_out`.
                        if !self.out.is_empty() || batched == DRAIN_AT_MOST {
                            break;
                        }
                        let Ok(Some(next)) = self.queue.try_pop() else {
                            break;
                        };
                        if sent_now > 0 {
                            self.meter.sent(sent_now as u64, frame_ts);
                            sent_now = 0;
                        }
                        frame = next;
                    },
                    None => break Outcome::Finished,
                },
            }
            let mut sent = sent_now;
            if !self.out.is_empty() {
                self.write_out(conn).await?;
                sent += self.out.len();
            }
            if sent > 0 {
                self.meter.sent(sent as u64, frame_ts);
            }
            self.measure_backlog(conn);
        };
        self.finish(conn, session, outcome).await;
        Ok(outcome)
    }

    /// Chunks what goes before one frame into `out`: the headers when the parameter sets
    /// changed, every audio frame captured up to it, and the first chunk header of the frame's
    /// own message; returns how the frame's body follows ([`send_body_now`](Self::send_body_now)
    /// sends it from its pool slot). `None` for a frame a connection cannot start with.
    fn write_frame(
        &mut self,
        session: &mut ClientSession,
        st: &mut Stream,
        frame: &Frame,
    ) -> Option<Framing> {
        let meta = *frame.meta();
        let base = match st.base_us {
            Some(base) => base,
            None if meta.keyframe => {
                if let Some(audio) = &mut self.audio {
                    audio.start(meta.timestamp_us);
                }
                *st.base_us.insert(meta.timestamp_us)
            }
            None => return None, // cannot start here; the queue resync makes this rare
        };
        // Milliseconds since the first frame of this connection; modulo 2^32 like RTMP itself.
        let ts = (meta.timestamp_us.saturating_sub(base) / 1000) as u32;
        let ts = if ts.wrapping_sub(st.last_ts) as i32 >= 0 {
            ts
        } else {
            st.last_ts
        };
        st.last_ts = ts;
        if meta.params_gen != st.sent_gen {
            let h = self.headers.lock();
            session.write_metadata(&mut self.out, &h.metadata);
            session.write_video(&mut self.out, ts, &h.sequence_header);
            st.sent_gen = h.generation.max(meta.params_gen);
        }
        if let Some(audio) = &mut self.audio {
            if !st.audio_header_sent {
                st.audio_header_sent = true;
                let asc = audio.format().audio_specific_config();
                let tag = self.audio_tag.sequence_header(&asc);
                session.write_audio(&mut self.out, 0, tag);
            }
            // Interleave by timestamp: the audio captured up to this frame goes first, so the
            // server's muxer never waits on one track for the other.
            while let Some(a) = audio.next_until(meta.timestamp_us) {
                let ats = (a.timestamp_us.saturating_sub(base) / 1000) as u32;
                let tag = self.audio_tag.frame(a.data);
                session.write_audio(&mut self.out, ats.min(ts), tag);
            }
        }
        let framing = session.write_video_header(&mut self.out, ts, meta.len as usize);
        self.status.count_frame_sent();
        framing
    }

    /// Sends `out` and then the frame's body from its pool slot, framed, in as few `writev`
    /// calls as the socket takes now (plain TCP: no copy of the body on a link that keeps up);
    /// what it does not take is copied into `out` for [`write_out`](Self::write_out). Over TLS
    /// the body is copied into `out` (it is sealed from a copy anyway). Never waits, so the
    /// slot's lock is never held across an await. Returns the bytes written.
    fn send_body_now(
        &mut self,
        conn: &Connection,
        frame: &Frame,
        framing: &Framing,
    ) -> Result<usize, PublishError> {
        let body = frame.bytes();
        let pieces = framing
            .pieces(&body)
            .flat_map(|(header, chunk)| [header, chunk]);
        if conn.is_tls() {
            for piece in pieces {
                self.out.extend_from_slice(piece);
            }
            return Ok(0);
        }
        let written = vectored::write_now(&mut self.out, pieces, |slices| {
            conn.try_write_vectored(slices)
        })?;
        self.status.count_bytes_sent(written as u64);
        Ok(written)
    }

    /// Updates the backlog beyond the queue from the kernel's send queue (and the server's
    /// acknowledgements, already taken), says once which estimate the connection uses, and
    /// hands the result to the queue's drop policy; every [`MEASURE_EVERY`], shows the
    /// end-to-end backlog (the queue's and in flight, up to now) in the status. No allocation
    /// unless it logs.
    fn measure_backlog(&mut self, conn: &Connection) {
        let now = monotonic_us();
        self.meter.on_kernel_queue(conn.send_queue_bytes());
        if let Some(estimate) = self.meter.update(now) {
            self.log_estimate(estimate);
        }
        self.queue
            .set_oldest_in_flight(self.meter.oldest_in_flight());
        self.queue
            .set_link(self.meter.in_flight_bytes(), self.meter.link_bytes_per_s());
        if now.saturating_sub(self.backlog_shown_us) >= MEASURE_EVERY.as_micros() as u64 {
            self.backlog_shown_us = now;
            let estimate = match self.meter.estimate() {
                Estimate::ServerAcks => BacklogEstimate::Acks,
                Estimate::Pending | Estimate::KernelQueue => BacklogEstimate::Socket,
            };
            let backlog = self.queue.backlog_us(now).map(|us| (us, estimate));
            self.status.set_backlog(backlog);
        }
    }

    /// Says which estimate of the backlog a connection uses (once per change).
    fn log_estimate(&self, estimate: Estimate) {
        let how = match estimate {
            Estimate::ServerAcks => "the server's RTMP acknowledgements (what it has received)",
            Estimate::KernelQueue => {
                "the socket's send queue (the server sends no RTMP acknowledgements, or they \
                 stopped: buffers beyond the next TCP hop are not seen)"
            }
            Estimate::Pending => "the socket's send queue until the server acknowledges",
        };
        // The label (the redacted URL, made once): this line may come in the steady state, and
        // formatting the URL again would allocate.
        log::info!("{}: backlog measured by {how}", self.label);
    }

    /// Writes `out` in full. The deadline is on progress, not on the whole buffer: a large
    /// keyframe on a slow link may take long, but a write that moves no byte for `write_timeout`
    /// means the server stopped reading (or the path is dead) and ends the connection.
    ///
    /// Over TLS a write hands bytes to the TLS session, which may keep some encrypted records
    /// when the socket is full; the flush pushes them out (under the same deadline) so that no
    /// frame waits in the session for the next one.
    async fn write_out(&mut self, conn: &mut Connection) -> Result<(), PublishError> {
        let deadline = self.settings.write_timeout;
        let stalled = || PublishError::Timeout("a write that made no progress", deadline);
        let mut written = 0;
        while written < self.out.len() {
            let n = tokio::time::timeout(deadline, conn.write(&self.out[written..]))
                .await
                .map_err(|_| stalled())??;
            if n == 0 {
                return Err(PublishError::Closed("while streaming"));
            }
            written += n;
        }
        if conn.is_tls() {
            tokio::time::timeout(deadline, conn.flush())
                .await
                .map_err(|_| stalled())??;
        }
        self.status.count_bytes_sent(written as u64);
        Ok(())
    }

    /// Unpublishes, half-closes, and waits for the server to close its side: once it has, it has
    /// read every byte we sent. Errors here change nothing about the outcome.
    async fn finish(
        &mut self,
        conn: &mut Connection,
        session: &mut ClientSession,
        outcome: Outcome,
    ) {
        let budget = match outcome {
            // A stop must complete within a second (systemd, Ctrl-C).
            Outcome::Stopped => Duration::from_millis(800).min(self.settings.finish_timeout),
            Outcome::Finished => self.settings.finish_timeout,
        };
        self.out.clear();
        session.finish(&mut self.out);
        let drain = async {
            conn.write_all(&self.out).await?;
            // Flushes, then (TLS) sends close_notify, then half-closes the TCP connection.
            conn.shutdown().await?;
            loop {
                let n = conn.read(&mut self.inbuf).await?;
                if n == 0 {
                    return Ok::<_, std::io::Error>(());
                }
            }
        };
        match tokio::time::timeout(budget, drain).await {
            Ok(Ok(())) => log::info!("{}: unpublished", self.url),
            Ok(Err(e)) => log::debug!("{}: closing: {e}", self.url),
            Err(_) => log::debug!("{}: server did not close within {budget:?}", self.url),
        }
        self.status.set(Status::Stopped);
    }
}

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
fn full_jitter(min: Duration, max: Duration, failures: u32, jitter: f64) -> Duration {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(min_ms: u64, max_ms: u64) -> PublisherSettings {
        PublisherSettings {
            backoff_min: Duration::from_millis(min_ms),
            backoff_max: Duration::from_millis(max_ms),
            ..PublisherSettings::default()
        }
    }

    #[test]
    fn a_key_file_closed_to_the_reader_says_how_to_check_it_as_the_service() {
        let path = Path::new("/etc/campush/sk-pasted-here");
        let denied = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        let msg = unreadable_key_file(path, &denied);
        assert!(
            msg.starts_with("cannot read the key file (in /etc/campush): "),
            "{msg}"
        );
        assert!(
            msg.ends_with("as the service reads it: sudo -u campush campush check-config"),
            "{msg}"
        );
        let missing = std::io::Error::from(std::io::ErrorKind::NotFound);
        let msg = unreadable_key_file(path, &missing);
        assert!(!msg.contains("sudo"), "{msg}");
        assert!(!msg.contains("sk-pasted"), "{msg}");
    }

    fn output_with_key_file(path: &Path) -> Result<Output, Invalid> {
        Output::check(
            &RawOutput {
                url: Some("rtmp://127.0.0.1/live".into()),
                key_file: Some(path.to_path_buf()),
                ..RawOutput::default()
            },
            None,
        )
    }

    #[test]
    fn a_key_file_is_read_trimmed_and_only_when_it_is_a_small_regular_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stream.key");
        std::fs::write(&path, "\u{feff}sk-1234\n").unwrap();
        let out = output_with_key_file(&path).unwrap();
        assert_eq!(out.url.stream_key, "sk-1234");

        std::fs::write(&path, vec![b'k'; KEY_FILE_LIMIT + 1]).unwrap();
        let e = output_with_key_file(&path).unwrap_err();
        assert_eq!(e.key, "key_file");
        assert!(
            e.message.contains("larger than 4096 bytes"),
            "{}",
            e.message
        );
        assert!(!e.message.contains("kkkk"), "{}", e.message);

        let t = std::time::Instant::now();
        let e = output_with_key_file(Path::new("/dev/zero")).unwrap_err();
        assert!(t.elapsed() < Duration::from_secs(1));
        assert!(e.message.contains("not a regular file"), "{}", e.message);
    }

    #[test]
    fn a_key_file_that_is_a_fifo_is_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stream.key");
        let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo on a NUL-terminated path we own.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let (tx, rx) = std::sync::mpsc::channel();
        let asked = path.clone();
        std::thread::spawn(move || {
            let _ = tx.send(output_with_key_file(&asked).map(|_| ()));
        });
        let got = rx.recv_timeout(Duration::from_secs(2));
        if got.is_err() {
            // Unblock the reader (a writer opens and closes), so the thread ends.
            let _ = std::fs::OpenOptions::new().write(true).open(&path);
        }
        let Ok(Err(e)) = got else {
            panic!("a FIFO key file was not refused within 2 s: {got:?}");
        };
        assert!(e.message.contains("a FIFO"), "{}", e.message);
    }

    #[test]
    fn the_backoff_ceiling_doubles_from_the_minimum_up_to_the_maximum() {
        let s = settings(500, 10_000);
        let ceilings: Vec<u64> = (1..=7)
            .map(|n| backoff_delay(&s, n, ErrorKind::Network, 1.0).as_millis() as u64)
            .collect();
        assert_eq!(ceilings, [500, 1000, 2000, 4000, 8000, 10_000, 10_000]);
        assert_eq!(
            backoff_delay(&s, 1000, ErrorKind::Network, 1.0),
            Duration::from_secs(10)
        );
    }

    #[test]
    fn full_jitter_spreads_the_wait_below_the_ceiling_with_a_floor() {
        let s = settings(500, 10_000);
        assert_eq!(
            backoff_delay(&s, 4, ErrorKind::Network, 0.5),
            Duration::from_millis(2000)
        );
        assert_eq!(
            backoff_delay(&s, 4, ErrorKind::Network, 0.0),
            Duration::from_millis(125)
        );
    }

    #[test]
    fn a_refusal_waits_the_maximum_whatever_the_attempt() {
        let s = settings(500, 10_000);
        for n in [1, 2, 9] {
            assert_eq!(
                backoff_delay(&s, n, ErrorKind::Refused, 0.0),
                Duration::from_secs(10)
            );
        }
    }

    fn io(kind: std::io::ErrorKind) -> std::io::Error {
        std::io::Error::from(kind)
    }

    fn connect_failed(kind: std::io::ErrorKind) -> PublishError {
        PublishError::Transport(TransportError::Connect {
            addr: "127.0.0.1:1935".into(),
            source: io(kind),
        })
    }

    #[test]
    fn nobody_listening_or_nobody_reachable_is_retried_quickly() {
        use std::io::ErrorKind::{ConnectionRefused, ConnectionReset, HostUnreachable};
        for kind in [ConnectionRefused, ConnectionReset, HostUnreachable] {
            assert_eq!(
                retry_class(&connect_failed(kind), false, None),
                Retry::Quick,
                "{kind:?}"
            );
        }
        let timed_out = PublishError::Transport(TransportError::ConnectTimeout {
            host: "h".into(),
            port: 1935,
            secs: 10,
        });
        assert_eq!(retry_class(&timed_out, false, None), Retry::Quick);
    }

    #[test]
    fn a_connection_reset_before_the_server_said_a_word_is_retried_quickly() {
        let reset = PublishError::Io(io(std::io::ErrorKind::ConnectionReset));
        assert_eq!(retry_class(&reset, false, None), Retry::Quick);
    }

    #[test]
    fn a_clean_hang_up_after_our_handshake_is_a_refusal_even_without_a_word() {
        // A server that read C0 and C1 and closed: how one refusing us without RTMP looks.
        let closed = PublishError::Closed(CLOSED_WHILE_PUBLISHING);
        assert_eq!(closed.kind(), ErrorKind::Refused);
        assert_eq!(retry_class(&closed, false, None), Retry::Backoff);
    }

    #[test]
    fn a_server_that_answered_and_then_failed_us_gets_the_backoff() {
        let garbage = PublishError::Rtmp(RtmpError::NotRtmp(0x48));
        assert_eq!(retry_class(&garbage, true, None), Retry::Backoff);
        let closed_after_speaking = PublishError::Closed(CLOSED_WHILE_PUBLISHING);
        assert_eq!(
            retry_class(&closed_after_speaking, true, None),
            Retry::Backoff
        );
        let silent = PublishError::Timeout("handshake and publish", Duration::from_secs(10));
        assert_eq!(retry_class(&silent, false, None), Retry::Backoff);
        let refused = PublishError::Rtmp(RtmpError::Refused {
            command: "publish",
            code: crate::peer_text::PeerText::new("NetStream.Publish.BadName"),
            description: crate::peer_text::PeerText::new("in use"),
        });
        assert_eq!(retry_class(&refused, true, None), Retry::Backoff);
        let certificate = PublishError::Transport(TransportError::Certificate {
            host: "h".into(),
            problem: crate::transport::CertificateProblem::UnknownIssuer,
        });
        assert_eq!(retry_class(&certificate, false, None), Retry::Backoff);
        let unresolved = PublishError::Transport(TransportError::Resolve {
            host: "typo.example".into(),
            source: io(std::io::ErrorKind::NotFound),
        });
        assert_eq!(retry_class(&unresolved, false, None), Retry::Backoff);
    }

    #[test]
    fn a_stream_lost_after_streaming_a_while_is_retried_quickly_one_dropped_at_once_is_not() {
        let lost = PublishError::Closed("while streaming");
        let long = Some(Duration::from_secs(5));
        let short = Some(Duration::from_millis(500));
        assert_eq!(retry_class(&lost, true, long), Retry::Quick);
        assert_eq!(retry_class(&lost, true, short), Retry::Backoff);
        let reset = PublishError::Io(io(std::io::ErrorKind::ConnectionReset));
        assert_eq!(retry_class(&reset, true, long), Retry::Quick);
        let stalled =
            PublishError::Timeout("a write that made no progress", Duration::from_secs(5));
        assert_eq!(retry_class(&stalled, true, long), Retry::Backoff);
    }

    #[test]
    fn a_quick_retry_never_waits_longer_than_the_cap_however_many_attempts_failed() {
        let s = settings(500, 10_000);
        for failures in [1, 2, 3, 10, 1000] {
            for jitter in [0.0, 0.5, 0.999] {
                let d = retry_delay(&s, failures, ErrorKind::Network, Retry::Quick, jitter);
                assert!(d <= QUICK_RETRY_CAP, "attempt {failures}: {d:?}");
                assert!(d >= Duration::from_millis(125), "attempt {failures}: {d:?}");
            }
        }
        // While the backoff of the same attempt would wait up to its maximum.
        assert_eq!(
            retry_delay(&s, 10, ErrorKind::Network, Retry::Backoff, 0.999),
            Duration::from_secs(10).mul_f64(0.999)
        );
        // A configured maximum below the cap still holds.
        let fast = settings(20, 100);
        assert_eq!(
            retry_delay(&fast, 9, ErrorKind::Network, Retry::Quick, 1.0),
            Duration::from_millis(100)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn with_nobody_listening_attempts_come_at_most_the_quick_cap_apart() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        let s = PublisherSettings {
            max_attempts: Some(12),
            ..settings(500, 10_000)
        };
        let (mut p, _status, _stop) = publisher(port, s);
        let start = tokio::time::Instant::now();
        p.run().await.unwrap_err();
        let waited = start.elapsed();
        // Eleven waits of at most 1.5 s each, where the backoff would allow up to 73.5 s.
        assert!(waited <= QUICK_RETRY_CAP * 11, "{waited:?}");
    }

    /// A publisher to `port`, the status it reports to, and its stop switch (kept by the caller:
    /// dropping it would read as "stop").
    fn publisher(
        port: u16,
        settings: PublisherSettings,
    ) -> (Publisher, crate::status::SharedStatus, watch::Sender<bool>) {
        let status = crate::status::SharedStatus::new();
        let dest = status.set_destinations(1).remove(0);
        let (stop, rx) = watch::channel(false);
        let url = RtmpUrl::parse(&format!("rtmp://127.0.0.1:{port}/live/key")).unwrap();
        let queue = Arc::new(FrameQueue::new(
            crate::queue::Limits::default(),
            crate::queue::Policy::DropGops,
        ));
        let p = Publisher::new(url, settings, queue, SharedHeaders::default(), dest, rx);
        (p, status, stop)
    }

    #[tokio::test(start_paused = true)]
    async fn reconnect_attempts_follow_the_backoff_schedule_and_give_up_when_told() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        let s = PublisherSettings {
            max_attempts: Some(6),
            ..settings(500, 4000)
        };
        let (mut p, status, _stop) = publisher(port, s);
        let start = tokio::time::Instant::now();
        let err = p.run().await.unwrap_err();
        let waited = start.elapsed();
        assert!(matches!(err, PublishError::Transport(_)), "{err}");
        // Five waits between six attempts, each at most its ceiling: 0.5+1+2+4+4 s.
        assert!(waited <= Duration::from_millis(11_500), "{waited:?}");
        assert!(waited >= Duration::from_millis(5 * 125), "{waited:?}");
        assert_eq!(Counters::get(&status.counters.connects), 6);
        assert_eq!(Counters::get(&status.counters.reconnects), 5);
        assert_eq!(status.get(), Status::Error(ErrorKind::Network));
        assert!(status.last_error().unwrap().contains("<redacted>"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_destination_down_when_the_input_ends_gives_up_instead_of_holding_the_end() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        let (mut p, _status, _stop) = publisher(port, settings(500, 4000)); // never gives up by count
        p.queue.close();
        let err = p.run().await.unwrap_err();
        assert!(matches!(err, PublishError::Transport(_)), "{err}");
    }

    #[test]
    fn a_certificate_refused_for_its_dates_blames_an_unsynchronised_clock_only() {
        use crate::transport::CertificateProblem;
        let refused = |problem| {
            PublishError::Transport(TransportError::Certificate {
                host: "h".into(),
                problem,
            })
        };
        for dated in [
            CertificateProblem::Expired(String::new()),
            CertificateProblem::NotValidYet(" since 2030-01-01".into()),
        ] {
            let e = refused(dated);
            assert!(e
                .clock_note(Some(false))
                .contains("clock is not synchronised"));
            assert_eq!(
                e.clock_note(Some(true)),
                "",
                "a synchronised clock is not to blame"
            );
            assert_eq!(e.clock_note(None), "", "an unknown clock is not blamed");
        }
        assert_eq!(
            refused(CertificateProblem::UnknownIssuer).clock_note(Some(false)),
            ""
        );
        assert_eq!(PublishError::Closed("x").clock_note(Some(false)), "");
    }

    /// A TLS server on loopback presenting a certificate for localhost that expired in 2021,
    /// signed by a CA in the returned PEM file; its port and the task (abort it when done).
    #[cfg(feature = "tls")]
    async fn expired_tls_server(
        dir: &std::path::Path,
    ) -> (u16, std::path::PathBuf, tokio::task::JoinHandle<()>) {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = ca.self_signed(&ca_key).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let mut leaf = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        leaf.not_before = rcgen::date_time_ymd(2020, 1, 1);
        leaf.not_after = rcgen::date_time_ymd(2021, 1, 1);
        let leaf = leaf.signed_by(&key, &ca, &ca_key).unwrap();
        let ca_file = dir.join("ca.pem");
        std::fs::write(&ca_file, ca.pem()).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            rustls_pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
        )
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let _ = acceptor.accept(sock).await;
            }
        });
        (port, ca_file, task)
    }

    #[cfg(feature = "tls")]
    #[tokio::test]
    async fn an_expired_certificate_while_the_clock_is_unsynchronised_says_so_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let (port, ca_file, server) = expired_tls_server(dir.path()).await;
        for (clock_synced, blamed) in [(Some(false), true), (Some(true), false)] {
            let status = crate::status::SharedStatus::new();
            status.set_health(crate::health::Health {
                clock_synced,
                ..crate::health::Health::default()
            });
            let (_stop, rx) = watch::channel(false);
            let url = RtmpUrl::parse(&format!("rtmps://localhost:{port}/live/key")).unwrap();
            let settings = PublisherSettings {
                max_attempts: Some(1),
                tls: TlsOptions {
                    ca_file: Some(ca_file.clone()),
                    insecure: false,
                },
                ..settings(500, 4000)
            };
            let queue = Arc::new(FrameQueue::new(
                crate::queue::Limits::default(),
                crate::queue::Policy::DropGops,
            ));
            let dest = status.set_destinations(1).remove(0);
            let mut p = Publisher::new(url, settings, queue, SharedHeaders::default(), dest, rx);
            let err = p.run().await.unwrap_err();
            assert!(
                matches!(&err, PublishError::Transport(t) if t.is_certificate()),
                "{err}"
            );
            let last = status.last_error().unwrap();
            assert!(last.contains("has expired"), "{last}");
            assert_eq!(
                last.contains("the system clock is not synchronised"),
                blamed,
                "clock synchronised: {clock_synced:?}: {last}"
            );
        }
        server.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn a_server_that_accepts_and_never_answers_hits_the_publish_deadline() {
        let (port, hold) = crate::transport::silent_server().await;
        let s = PublisherSettings {
            max_attempts: Some(1),
            publish_timeout: Duration::from_secs(10),
            ..settings(500, 4000)
        };
        let (mut p, _status, _stop) = publisher(port, s);
        let start = tokio::time::Instant::now();
        let err = p.run().await.unwrap_err();
        assert!(
            matches!(err, PublishError::Timeout("handshake and publish", d) if d == Duration::from_secs(10)),
            "{err}"
        );
        let waited = start.elapsed();
        assert!(waited >= Duration::from_secs(10) && waited < Duration::from_secs(11));
        hold.abort();
    }
}
