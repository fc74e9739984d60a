//! `rpicam[:N]`: a CSI camera through the libcamera camera app (`rpicam-vid`, or `libcamera-vid`
//! on Bullseye), run as campush's child, H.264 read from its stdout, supervised so that the
//! stream comes back whatever the app does.
//!
//! Owns: the restart policy (when to replace the app, the backoff, the restart count), the
//! keyframe gate after a restart, and the timestamps. The process itself (process group, death
//! signal, pipes, stderr) is [`child`]; its messages are [`messages`]; its options [`options`]
//! and [`settings`]; `--list-cameras` is [`cameras`]. Option names, messages and exit codes come
//! from rpicam-apps' source at commit `9270b6013c4575dff2e0625c0f4b8ae750218b0f` (each file
//! cites where).
//!
//! Supervision, per run of the app:
//! 1. start it (lazily, from the thread that reads the source, see [`child`]); its first video
//!    may take [`STARTUP_GRACE`] beyond the stall timeout (libcamera and the encoder start up);
//! 2. read access units; until the first IDR picture of this run, pictures are dropped (units
//!    without a picture, like parameter sets, pass), so every destination resumes with SPS/PPS
//!    and a keyframe (`--inline` repeats SPS/PPS with each IDR; libx264 on a Pi 5 does too);
//! 3. the run ends when the app exits (end of stdout), when no access unit arrives for
//!    `stall_timeout` (SIGTERM to its group, SIGKILL after 2 s), or when its output is not
//!    H.264. A truncated last unit of a dead app is never delivered.
//! 4. the status becomes "waiting for source" (the LED's no-camera pattern) with the reason as
//!    the last error: the app's own failure text when it gave one ("no cameras available",
//!    "failed to acquire camera", "Device timeout detected" — the latter is shown as soon as it
//!    is printed, before the stall timeout decides), else the exit status or the stall; then,
//!    after the backoff, back to 1. The restart is counted in `source_restarts` (status file,
//!    summary line).
//! 5. exception: the app refused its command line (an unknown option, a value it rejects) before
//!    delivering any video. The same command line would fail the same way, so the source ends
//!    with [`SourceError::Device`] (a configuration error) naming the app's complaint.
//!
//! Handing back: a source made with [`RpicamSource::hand_back_on_loss`] (as `auto` makes it)
//! does step 4 but, instead of going back to 1 by itself, returns [`SourceError::Lost`] with the
//! reason; its owner may look for the camera again and read this source again, which then
//! starts the app (a restart, counted). Everything else (backoff, logs, counters) is the same.
//!
//! Alive: while it waits (a backoff, a read with no data yet) the source notes itself alive
//! every second ([`SharedStatus::sleep_alive`]), so the systemd watchdog knows it is trying.
//!
//! Stop: the source holds its pipeline's [`Stop`], looked at in every backoff and every wait
//! for the app's output (each [`crate::stop::SLICE`]). Once it is requested no app is started
//! again; the running one is stopped (SIGTERM, SIGKILL after [`child::KILL_GRACE`]) and reaped,
//! and the source ends (`Ok(None)`) without reporting a failure, before its thread ends.
//!
//! Backoff: [`BACKOFF_MIN`] doubling to [`BACKOFF_MAX`] for runs that fail in a row; a run that
//! delivered video for [`HEALTHY_RUN`] resets it. Failures in a row are logged in full three
//! times, then at every power of two; the app's stderr goes to the log rate-limited
//! ([`messages::Forwarder`]).
//!
//! Timestamps: raw H.264 carries none, so units are stamped on arrival, locked to the frame rate
//! the app was asked for ([`super::arrival`]). One clock lives as long as the source: across
//! restarts time only moves forward (a gap re-anchors the clock on arrival).
//!
//! Per frame: one poll and read of the pipe (into the byte stream's buffer, allocated once), one
//! NAL scan for the keyframe gate, one copy into the pool slot. No allocation.

pub mod cameras;
pub mod child;
pub mod messages;
pub mod options;
pub mod settings;

use std::io;
use std::time::{Duration, Instant};

pub use cameras::{list_cameras, parse_camera_list, CameraInfo, ListError, SensorMode};
pub use messages::Failure;
pub use settings::{
    AppKind, CameraApp, LensPosition, RawRpicam, RpicamSettings, DEFAULT_STALL_TIMEOUT,
};

use super::arrival::ArrivalClock;
use super::bytestream::ByteStream;
use super::{Capture, Source, SourceError};
use crate::clock::monotonic_us;
use crate::h264::{nal_type, nal_units};
use crate::pool::FrameMut;
use crate::status::{Counters, SharedStatus, ALIVE_SLICE};
use crate::stop::Stop;
use child::AppProcess;

/// First wait before restarting a failed app.
pub const BACKOFF_MIN: Duration = Duration::from_secs(1);
/// Longest wait between restarts.
pub const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// A run that delivered video this long counts as healthy: the next failure waits only
/// [`BACKOFF_MIN`].
pub const HEALTHY_RUN: Duration = Duration::from_secs(30);
/// Extra time for the first video after a start.
pub const STARTUP_GRACE: Duration = Duration::from_secs(5);

/// Parses `rpicam` / `rpicam:N` (a source spec); `None` when `spec` is another kind of source.
pub fn parse_spec(spec: &str) -> Option<Result<u32, String>> {
    let rest = spec.strip_prefix("rpicam")?;
    if rest.is_empty() {
        return Some(Ok(0));
    }
    let n = rest.strip_prefix(':')?;
    Some(match n.parse::<u32>() {
        Ok(i) if i <= 15 => Ok(i),
        _ => Err(format!(
            "source {spec:?}: expected rpicam or rpicam:N with N the camera number (0 to 15) \
             that --list-cameras shows"
        )),
    })
}

/// Why a run ended, from the reading side.
enum Ended {
    Exited,
    Stalled,
    NotH264(String),
    ReadFailed(io::Error),
}

struct Run {
    started: Instant,
    first_video: Option<Instant>,
    /// Access units delivered in this run.
    delivered: u64,
    /// Pictures dropped before this run's first IDR.
    dropped: u64,
}

/// The camera app as a source; see the module documentation.
pub struct RpicamSource {
    app: CameraApp,
    settings: RpicamSettings,
    args: Vec<String>,
    stream: ByteStream<AppProcess>,
    status: SharedStatus,
    clock: ArrivalClock,
    run: Option<Run>,
    backoff: Duration,
    starts: u64,
    failures_in_a_row: u32,
    hand_back: bool,
    stop: Stop,
}

impl RpicamSource {
    /// A source that will run `app` with `settings`. Nothing starts until the first read, on
    /// the reading thread (the death signal is tied to the thread that starts the app). Once
    /// `stop` is requested the source stops its app and ends (`Ok(None)`).
    pub fn new(app: CameraApp, settings: RpicamSettings, status: SharedStatus, stop: Stop) -> Self {
        let args = settings.argv(app.kind);
        // Silent while streaming for at most: the stall timeout, then the app's stop (SIGTERM,
        // SIGKILL after the grace, its last words), then the source reports waiting.
        status.set_source_stall(settings.stall_timeout + child::KILL_GRACE + ALIVE_SLICE);
        let process = AppProcess::new(app.name(), status.clone(), stop.clone());
        // A whole access unit must fit; the buffer grows (logged) for a larger one.
        let capacity = 2 * settings.frame_capacity_hint();
        RpicamSource {
            stream: ByteStream::new(process, app.name().to_string(), capacity),
            app,
            settings,
            args,
            status,
            clock: ArrivalClock::new(false),
            run: None,
            backoff: BACKOFF_MIN,
            starts: 0,
            failures_in_a_row: 0,
            hand_back: false,
            stop,
        }
    }

    /// After a failed run and its backoff, return [`SourceError::Lost`] instead of starting
    /// the app again by itself (see the module documentation).
    pub fn hand_back_on_loss(mut self) -> Self {
        self.hand_back = true;
        self
    }

    /// The camera this source runs.
    pub fn camera(&self) -> u32 {
        self.settings.camera
    }

    /// The app this source runs.
    pub fn app(&self) -> &CameraApp {
        &self.app
    }

    /// The app's arguments.
    pub fn args(&self) -> &[String] {
        &self.args
    }

    /// How many times the app was started again after its first start.
    pub fn restarts(&self) -> u64 {
        self.starts.saturating_sub(1)
    }

    /// The process id (and process group id) of the running app.
    pub fn app_pid(&self) -> Option<u32> {
        self.stream.reader().pid()
    }

    /// Starts the app; `Err` with the reason (after the backoff) when it cannot be started.
    fn start(&mut self) -> Result<(), String> {
        let now = Instant::now();
        let deadline = now + self.settings.stall_timeout + STARTUP_GRACE;
        let name = self.app.name();
        match self
            .stream
            .reader_mut()
            .start(&self.app.path, &self.args, deadline)
        {
            Ok(pid) => {
                self.starts += 1;
                if self.starts > 1 {
                    Counters::add(&self.status.counters.source_restarts, 1);
                }
                log::info!(
                    "{name}: started (pid {pid}{}): {} {}",
                    if self.starts > 1 {
                        format!(", restart {}", self.starts - 1)
                    } else {
                        String::new()
                    },
                    self.app.path.display(),
                    self.args.join(" ")
                );
                self.stream.clear();
                self.run = Some(Run {
                    started: now,
                    first_video: None,
                    delivered: 0,
                    dropped: 0,
                });
                Ok(())
            }
            Err(e) => {
                let reason = format!("cannot start {}: {e}", self.app.path.display());
                self.wait_after(&reason, false);
                Err(reason)
            }
        }
    }

    /// Ends the current run (stopping the app if it still runs) and waits out the backoff.
    /// Returns the reason; `Err` only when restarting cannot help.
    fn end_run(&mut self, why: Ended) -> Result<String, SourceError> {
        let name = self.app.name();
        let ended = self.stream.reader_mut().stop();
        let run = self.run.take();
        let (status, killed, failure) = match ended {
            Some(e) => (e.status, e.killed, e.failure),
            None => (None, false, None),
        };
        let delivered = run.as_ref().map_or(0, |r| r.delivered);
        if let (Some(Failure::Rejected(text)), 0) = (&failure, delivered) {
            return Err(SourceError::Device(format!(
                "{name} refused its options: {text} (it was run as: {} {})",
                self.app.path.display(),
                self.args.join(" ")
            )));
        }
        let exit = match status {
            Some(s) => s.to_string(),
            None => "not reaped".to_string(),
        };
        let mut reason = match (&failure, &why) {
            (Some(f), _) => f.to_string(),
            (None, Ended::Stalled) => format!(
                "no video for {:.1} s",
                self.settings.stall_timeout.as_secs_f64()
            ),
            (None, Ended::Exited) => format!("exited ({exit})"),
            (None, Ended::NotH264(e)) => format!("its output is not H.264: {e}"),
            (None, Ended::ReadFailed(e)) => format!("reading its output failed: {e}"),
        };
        if matches!(why, Ended::Stalled) {
            reason += if killed {
                "; stopped (SIGKILL: it ignored SIGTERM)"
            } else {
                "; stopped"
            };
        }
        let healthy = run
            .as_ref()
            .and_then(|r| r.first_video)
            .is_some_and(|t| t.elapsed() >= HEALTHY_RUN);
        if healthy {
            self.backoff = BACKOFF_MIN;
            self.failures_in_a_row = 0;
        }
        if let Some(r) = &run {
            log::debug!(
                "{name}: run of {:.1} s, {} access units, {} pictures dropped before the first IDR",
                r.started.elapsed().as_secs_f64(),
                r.delivered,
                r.dropped
            );
        }
        self.wait_after(&reason, true);
        Ok(reason)
    }

    /// Reports `reason`, logs it (spaced), sleeps the backoff and doubles it.
    fn wait_after(&mut self, reason: &str, show_last_words: bool) {
        let name = self.app.name();
        self.failures_in_a_row += 1;
        let n = self.failures_in_a_row;
        if n <= 3 || n.is_power_of_two() {
            log::warn!(
                "{name}: {reason}; starting it again in {:.1} s (failure {n} in a row)",
                self.backoff.as_secs_f64()
            );
            if show_last_words && n <= 3 {
                for line in self.stream.reader_mut().recent_lines() {
                    log::warn!("{name} said: {line}");
                }
            }
        }
        self.stream.reader_mut().report_waiting(&reason);
        self.status.sleep_alive(self.backoff, &self.stop);
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
    }

    /// An access unit arrived: the app is healthy.
    fn delivered(&mut self, arrival_us: u64) {
        let now = Instant::now();
        let stall = self.settings.stall_timeout;
        self.stream.reader_mut().set_deadline(now + stall);
        if let Some(run) = self.run.as_mut() {
            run.delivered += 1;
            if run.first_video.is_none() {
                run.first_video = Some(now);
            }
        }
        // Every unit, not only a run's first: the app can recover by itself within a run (its
        // own restart after "Device timeout detected"), and the status must follow it.
        if self.stream.reader_mut().report_delivering() {
            log::info!("{}: video again", self.app.name());
        }
        if !self.clock.is_locked() {
            self.clock
                .lock_to_rate(self.settings.effective_fps(), arrival_us);
        }
    }
}

/// Whether `unit` has a picture and none of its slices is IDR: such units are dropped until a
/// run's first keyframe.
fn is_non_idr_picture(unit: &[u8]) -> bool {
    let mut picture = false;
    for nal in nal_units(unit) {
        match nal_type(nal) {
            crate::h264::nal::nal_type::IDR => return false,
            t if crate::h264::nal::nal_type::is_vcl(t) => picture = true,
            _ => {}
        }
    }
    picture
}

impl Source for RpicamSource {
    fn next_access_unit(&mut self, frame: &mut FrameMut) -> Result<Option<Capture>, SourceError> {
        loop {
            if self.stop.requested() {
                // Stopped and reaped before the thread ends: the next source may want the camera.
                if let Some(pid) = self.app_pid() {
                    log::debug!("{}: stopping (pid {pid})", self.app.name());
                }
                self.stream.reader_mut().stop();
                return Ok(None);
            }
            if !self.stream.reader_mut().is_running() {
                match self.start() {
                    Err(reason) if self.hand_back && !self.stop.requested() => {
                        return Err(SourceError::Lost(reason))
                    }
                    _ => continue,
                }
            }
            let why = match self.stream.next_unit() {
                Ok(Some(unit)) => {
                    let arrival = monotonic_us();
                    let gate = self.run.as_ref().is_some_and(|r| r.first_video.is_none());
                    if gate && is_non_idr_picture(unit) {
                        if let Some(r) = self.run.as_mut() {
                            r.dropped += 1;
                        }
                        continue;
                    }
                    frame.fill_from(unit);
                    self.delivered(arrival);
                    let (timestamp_us, _) = self.clock.stamp(arrival);
                    return Ok(Some(Capture { timestamp_us }));
                }
                // The app's reader never reports a clean end; treat one like an exit.
                Ok(None) => Ended::Exited,
                // The read gave up on the stop request: not a failure (stopped above).
                Err(_) if self.stop.requested() => continue,
                Err(SourceError::Read { source, .. }) => match source.kind() {
                    io::ErrorKind::TimedOut => Ended::Stalled,
                    io::ErrorKind::UnexpectedEof | io::ErrorKind::NotConnected => Ended::Exited,
                    _ => Ended::ReadFailed(source),
                },
                Err(e) => Ended::NotH264(e.to_string()),
            };
            let reason = self.end_run(why)?;
            if self.hand_back && !self.stop.requested() {
                return Err(SourceError::Lost(format!("{}: {reason}", self.app.name())));
            }
        }
    }

    fn frame_capacity_hint(&self) -> usize {
        self.settings.frame_capacity_hint()
    }

    fn skipped_bytes(&self) -> u64 {
        self.stream.skipped_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spec_is_rpicam_or_rpicam_with_a_camera_number() {
        assert_eq!(parse_spec("rpicam"), Some(Ok(0)));
        assert_eq!(parse_spec("rpicam:1"), Some(Ok(1)));
        assert!(parse_spec("rpicam:x").unwrap().is_err());
        assert!(parse_spec("rpicam:16").unwrap().is_err());
        assert_eq!(parse_spec("rpicamera"), None);
        assert_eq!(parse_spec("v4l2:/dev/video0"), None);
    }

    #[test]
    fn only_pictures_without_an_idr_slice_wait_for_the_keyframe() {
        let sps = [0, 0, 0, 1, 0x67, 0x42, 0xc0, 0x1e];
        let pps = [0, 0, 0, 1, 0x68, 0xce, 0x3c, 0x80];
        let idr = [0, 0, 0, 1, 0x65, 0x88, 0x84];
        let p = [0, 0, 0, 1, 0x41, 0x9a, 0x21];
        let sei = [0, 0, 0, 1, 0x06, 0x05, 0x01, 0x80];
        let unit = |parts: &[&[u8]]| parts.concat();
        assert!(!is_non_idr_picture(&unit(&[&sps, &pps, &idr])));
        assert!(!is_non_idr_picture(&unit(&[&idr])));
        assert!(is_non_idr_picture(&unit(&[&p])));
        assert!(is_non_idr_picture(&unit(&[&sei, &p])));
        assert!(
            !is_non_idr_picture(&unit(&[&sps, &pps])),
            "parameter sets alone pass"
        );
    }
}
