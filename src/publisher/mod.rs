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
//!    frames captured up to it (interleaved by timestamp); the frames queued when the publisher
//!    wakes go out together while the link keeps up (a batch, at most [`TAKEN_AT_ONCE`] frames):
//!    their chunk headers and audio are chunked into `staged` and the bodies follow from their
//!    pool slots, in one `writev` (fewer system calls and fewer wake-ups of the server than a
//!    write per frame; a live source usually has one frame queued, so a batch adds no delay).
//!    Behind a link that falls behind (the last write not taken whole, or the socket's send queue
//!    long), a frame at a time, so that frames wait in the queue, where the drop policy reaches
//!    them. What the socket does not take now is copied into `out` and written under the write
//!    deadline. Over TLS each frame is copied into `out` and written (and flushed) on its own;
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
//!
//! Files: `mod.rs` the connection loop and the frame path; `settings.rs` the settings and the
//! key file; `error.rs` [`PublishError`]; `retry.rs` when to connect again; `tests.rs`.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

use crate::audio::AudioSource;
use crate::backlog::{Estimate, Meter};
use crate::clock::monotonic_us;
use crate::flv;
use crate::pool::{Frame, TAKEN_AT_ONCE};
use crate::queue::{FrameQueue, SharedHeaders};
use crate::rtmp::session::DEFAULT_WINDOW_ACK_SIZE;
use crate::rtmp::{ClientSession, Framing, RtmpUrl, Scheme, SessionConfig};
use crate::status::{BacklogEstimate, Counters, DestinationStatus, Status};
use crate::transport::{vectored, Connection, Connector, Endpoint};

mod error;
mod retry;
mod settings;
#[cfg(test)]
mod tests;

pub use error::PublishError;
use error::CLOSED_WHILE_PUBLISHING;
pub use retry::{
    backoff_delay, retry_class, retry_delay, Retry, QUICK_AFTER_STREAMING, QUICK_RETRY_CAP,
};
pub use settings::{Output, PublisherSettings, RawNetwork, RawOutput, KEY_FILE_LIMIT};

/// Set (to anything) in the environment, campush ignores the server's RTMP acknowledgements and
/// announces no window: the backlog is measured by the socket's send queue alone. For tests of
/// that fallback against servers that do acknowledge.
pub const IGNORE_ACKS_ENV: &str = "CAMPUSH_IGNORE_RTMP_ACKS";

/// The most bytes a batch (`send_frames`) holds with what the socket still has queued: on a
/// link that keeps up the socket takes about this much in one call.
const BATCH_BYTES: usize = 256 * 1024;

/// How often the backlog is measured while nothing is read or written.
const MEASURE_EVERY: Duration = Duration::from_millis(100);

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
    /// What the socket has not taken yet, and the replies to the server.
    out: Vec<u8>,
    /// What goes before each frame of a batch (stream headers, audio, the first chunk header),
    /// one after the other; [`Staged::staged_end`] says where each frame's part ends.
    staged: Vec<u8>,
    /// The frames of the batch being sent (room for [`TAKEN_AT_ONCE`], allocated once).
    batch: Vec<Staged>,
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
    /// Whether the link keeps up, so that the frames queued at a wake-up may go out together:
    /// the socket took the last write whole. With it, the socket's send queue at the latest
    /// measurement (`None`: not known) leaves the room for a batch.
    last_write_whole: bool,
    socket_queued: Option<u64>,
}

/// One frame of a batch: its body follows `Publisher::staged[..staged_end]`'s last part, and
/// the two take `wire_len` bytes on the wire.
struct Staged {
    frame: Frame,
    framing: Option<Framing>,
    staged_end: usize,
    wire_len: usize,
}

/// The bytes of a batch in the order they go on the wire: each frame's part of `staged`, then
/// its body from its slot (`bodies`, in the batch's order) in chunks, with the continuation
/// headers between them. What one `writev` takes, without a copy.
fn batch_parts<'a, B: std::ops::Deref<Target = Vec<u8>>>(
    staged: &'a [u8],
    batch: &'a [Staged],
    bodies: &'a [B],
) -> impl Iterator<Item = &'a [u8]> + Clone {
    batch
        .iter()
        .zip(bodies)
        .scan(0, move |start, (b, body)| {
            let before = staged.get(*start..b.staged_end).unwrap_or_default();
            *start = b.staged_end;
            let pieces = b.framing.iter().flat_map(move |f| f.pieces(body));
            Some(std::iter::once(before).chain(pieces.flat_map(|(h, c)| [h, c])))
        })
        .flatten()
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
            staged: Vec::with_capacity(64 * 1024),
            batch: Vec::with_capacity(TAKEN_AT_ONCE),
            inbuf: vec![0; 16 * 1024].into_boxed_slice(),
            published_once: false,
            streamed_for: None,
            heard_from_server: false,
            meter,
            use_acks,
            backlog_shown_us: 0,
            last_write_whole: false,
            socket_queued: None,
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
        self.last_write_whole = false;
        self.socket_queued = None;

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
            // `out` holds replies to the server (not frames, which `send_frames` accounts for).
            let mut replies = false;
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
                    replies = true;
                }
                _ = tick.tick() => {}
                frame = self.queue.pop() => match frame {
                    Some(frame) => self.send_frames(conn, session, &mut st, frame)?,
                    None => break Outcome::Finished,
                },
            }
            if !self.out.is_empty() {
                let left = self.out.len();
                self.write_out(conn).await?;
                if replies {
                    self.meter.sent(left as u64, None);
                }
            }
            self.measure_backlog(conn);
        };
        self.finish(conn, session, outcome).await;
        Ok(outcome)
    }

    /// Sends `first` and, while the link keeps up (the socket took the last write whole and
    /// holds little), whatever else is queued now: at most [`TAKEN_AT_ONCE`] frames, about
    /// [`BATCH_BYTES`] with what the socket holds; one frame over TLS, or behind a link that
    /// falls behind. What goes before each frame is chunked into `staged`
    /// ([`write_frame`](Self::write_frame)), then the frames go to the socket with their bodies
    /// straight from their pool slots, in as few `writev` calls as the socket takes now (plain
    /// TCP: a frame or a queue's worth of frames in one call, no copy of a body on a link that
    /// keeps up). What the socket does not take now is left in `out` for
    /// [`write_out`](Self::write_out); over TLS everything is (it is sealed from a copy anyway).
    /// Never waits, so no slot's lock is held across an await. Every frame's bytes are counted
    /// in the backlog meter here, the part left in `out` included.
    fn send_frames(
        &mut self,
        conn: &Connection,
        session: &mut ClientSession,
        st: &mut Stream,
        first: Frame,
    ) -> Result<(), PublishError> {
        // Together only while the link keeps up: behind a link that does not, the socket takes
        // part of a batch and the rest would wait in `out`, out of reach of the queue's drop
        // policy; frame by frame, no more than one frame waits there.
        let room = match self.socket_queued {
            Some(queued) if self.last_write_whole && !conn.is_tls() => {
                BATCH_BYTES.saturating_sub(usize::try_from(queued).unwrap_or(usize::MAX))
            }
            _ => 0,
        };
        self.staged.clear();
        self.batch.clear();
        let mut frame = first;
        let mut bytes = 0;
        loop {
            let framing = self.write_frame(session, st, &frame);
            let body = framing
                .as_ref()
                .map_or(0, |f| f.framed_len(frame.meta().len as usize));
            let staged_end = self.staged.len();
            let wire_len = staged_end - self.batch.last().map_or(0, |b| b.staged_end) + body;
            bytes += wire_len;
            // Cannot allocate: the batch was made with room for `TAKEN_AT_ONCE` frames.
            debug_assert!(self.batch.len() < self.batch.capacity());
            self.batch.push(Staged {
                frame,
                framing,
                staged_end,
                wire_len,
            });
            if self.batch.len() >= TAKEN_AT_ONCE || bytes >= room {
                break;
            }
            match self.queue.try_pop() {
                Ok(Some(next)) => frame = next,
                _ => break,
            }
        }

        let mut bodies: heapless::Vec<_, TAKEN_AT_ONCE> = heapless::Vec::new();
        for staged in &self.batch {
            let _ = bodies.push(staged.frame.bytes());
        }
        let parts = batch_parts(&self.staged, &self.batch, &bodies);
        let written = if conn.is_tls() {
            for part in parts {
                self.out.extend_from_slice(part);
            }
            Ok(0)
        } else {
            vectored::write_now(&mut self.out, parts, |s| conn.try_write_vectored(s))
        };
        drop(bodies);
        let written = match written {
            Ok(n) => n,
            Err(e) => {
                // The connection is lost: let go of the frames now, not at the next
                // connection's first batch (a backoff may last minutes).
                self.batch.clear();
                return Err(e.into());
            }
        };
        self.status.count_bytes_sent(written as u64);
        self.last_write_whole = self.out.is_empty();

        for b in self.batch.drain(..) {
            let ts = b.framing.is_some().then_some(b.frame.meta().timestamp_us);
            self.meter.sent(b.wire_len as u64, ts);
        }
        Ok(())
    }

    /// Chunks what goes before one frame into `staged`: the headers when the parameter sets
    /// changed, every audio frame captured up to it, and the first chunk header of the frame's
    /// own message; returns how the frame's body follows. `None` for a frame a connection
    /// cannot start with.
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
            session.write_metadata(&mut self.staged, &h.metadata);
            session.write_video(&mut self.staged, ts, &h.sequence_header);
            st.sent_gen = h.generation.max(meta.params_gen);
        }
        if let Some(audio) = &mut self.audio {
            if !st.audio_header_sent {
                st.audio_header_sent = true;
                let asc = audio.format().audio_specific_config();
                let tag = self.audio_tag.sequence_header(&asc);
                session.write_audio(&mut self.staged, 0, tag);
            }
            // Interleave by timestamp: the audio captured up to this frame goes first, so the
            // server's muxer never waits on one track for the other.
            while let Some(a) = audio.next_until(meta.timestamp_us) {
                let ats = (a.timestamp_us.saturating_sub(base) / 1000) as u32;
                let tag = self.audio_tag.frame(a.data);
                session.write_audio(&mut self.staged, ats.min(ts), tag);
            }
        }
        let framing = session.write_video_header(&mut self.staged, ts, meta.len as usize);
        self.status.count_frame_sent();
        framing
    }

    /// Updates the backlog beyond the queue from the kernel's send queue (and the server's
    /// acknowledgements, already taken), says once which estimate the connection uses, and
    /// hands the result to the queue's drop policy; every [`MEASURE_EVERY`], shows the
    /// end-to-end backlog (the queue's and in flight, up to now) in the status. No allocation
    /// unless it logs.
    fn measure_backlog(&mut self, conn: &Connection) {
        let now = monotonic_us();
        self.socket_queued = conn.send_queue_bytes();
        self.meter.on_kernel_queue(self.socket_queued);
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
