//! What the camera app says on stderr: which lines are failures campush acts on, at which level
//! each line goes into campush's log, and how much of it (a rate limit, so the journal never
//! floods).
//!
//! Owns: [`classify`] (a line -> [`Line`]: log level and, for known failures, a [`Failure`]),
//! [`LineAssembler`] (bytes -> lines, in a buffer allocated once) and [`Forwarder`] (the rate
//! limit and the last lines kept for a failure report).
//!
//! The texts come from the real programs (rpicam-apps at commit
//! `9270b6013c4575dff2e0625c0f4b8ae750218b0f`, libcamera, boost::program_options):
//! - `apps/rpicam_vid.cpp`, `main`: any exception ends the app with exit status 255 after
//!   `ERROR: *** <what> *** `; `core/rpicam_app.cpp`, `OpenCamera`: `no cameras available`,
//!   `selected camera is not available`, `failed to acquire camera <id>` (the camera is held by
//!   another process; libcamera logs `Pipeline handler in use by another process` just before);
//! - `apps/rpicam_vid.cpp`, `event_loop`: `ERROR: Device timeout detected, attempting a
//!   restart!!!` after libcamera's `Camera frontend has timed out!` (a sensor stall; the app
//!   keeps running and may loop on it forever, rpicam-apps #660);
//! - boost's parser errors (`unrecognised option '--x'`, `the required argument for option
//!   '--x' is missing`, `the argument ('v') for option '--x' is invalid`, `option '--x' cannot be
//!   specified more than once`, ...) and rpicam-apps' own value checks (`Invalid AWB mode: x`,
//!   `illegal rotation value`, `no such profile x`, ...) are [`Failure::Rejected`]: the same
//!   command line will fail the same way, so restarting does not help.
//! - libcamera's own log lines look like `[0:00:01.234567890] [1234]  INFO Camera
//!   camera_manager.cpp:327 libcamera v0.3.0`: their level is taken from the line.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use log::Level;

/// A failure the camera app reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// No camera is connected (or not the one asked for).
    NoCamera(String),
    /// Another process holds the camera (often an orphaned camera app).
    CameraBusy(String),
    /// The sensor stopped delivering frames; the app tries to restart it itself.
    DeviceTimeout,
    /// The app refused its command line: restarting cannot help.
    Rejected(String),
    /// Any other fatal error the app reported.
    Other(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::NoCamera(t) => write!(f, "no camera: {t}"),
            Failure::CameraBusy(t) => write!(f, "camera busy (held by another process?): {t}"),
            Failure::DeviceTimeout => f.write_str("camera device timeout (sensor stalled)"),
            Failure::Rejected(t) => write!(f, "the camera app refused its options: {t}"),
            Failure::Other(t) => f.write_str(t),
        }
    }
}

/// How one stderr line is treated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub level: Level,
    pub failure: Option<Failure>,
}

const REJECTIONS: &[&str] = &[
    // boost::program_options
    "unrecognised option",
    "the required argument for option",
    "the argument ('",
    "is ambiguous",
    "cannot be specified more than once",
    "too many positional options",
    "does not take any arguments",
    "should follow immediately after the equal sign",
    // rpicam-apps' checks of option values (core/options.cpp, encoder/*.cpp)
    "Invalid ",
    "illegal rotation value",
    "transforms requiring transpose not supported",
    "unrecognised codec",
    "Unrecognised codec",
    "no such profile",
    "no such level",
    "incorrect initial value",
    "incorrect sync value",
    "unrecognised metadata format",
    "Packing indicator should be P or U",
    "try setting with --libav-format",
    "Unable to find an appropriate H.264 codec",
];

/// Classifies one line of the camera app's stderr (without its newline).
pub fn classify(line: &str) -> Line {
    let fail = |level, failure| Line {
        level,
        failure: Some(failure),
    };
    if let Some(what) = line
        .trim_end()
        .strip_prefix("ERROR: *** ")
        .and_then(|s| s.strip_suffix(" ***"))
    {
        let what = what.trim().to_string();
        let failure =
            if what == "no cameras available" || what == "selected camera is not available" {
                Failure::NoCamera(what)
            } else if what.starts_with("failed to acquire camera") {
                Failure::CameraBusy(what)
            } else if REJECTIONS.iter().any(|r| what.contains(r)) {
                Failure::Rejected(what)
            } else {
                Failure::Other(what)
            };
        return fail(Level::Error, failure);
    }
    if line.contains("Device timeout detected") {
        return fail(Level::Error, Failure::DeviceTimeout);
    }
    if let Some(level) = libcamera_level(line) {
        let level = if line.contains("Pipeline handler in use by another process") {
            Level::Warn
        } else {
            level
        };
        return Line {
            level,
            failure: None,
        };
    }
    let level = if line.starts_with("ERROR") || line.starts_with("WARNING") {
        Level::Warn
    } else {
        // rpicam-apps' LOG(1) chatter: mode selection, stream configuration, ...
        Level::Debug
    };
    Line {
        level,
        failure: None,
    }
}

/// The level of a libcamera log line (`[time] [tid] LEVEL Category file:line message`): its
/// DEBUG and INFO lines are campush's debug, WARN is warn, ERROR and FATAL are error.
fn libcamera_level(line: &str) -> Option<Level> {
    let rest = line.strip_prefix('[')?;
    let (_, rest) = rest.split_once("] [")?;
    let (_, rest) = rest.split_once(']')?;
    match rest.split_whitespace().next()? {
        "DEBUG" | "INFO" => Some(Level::Debug),
        "WARN" => Some(Level::Warn),
        "ERROR" | "FATAL" => Some(Level::Error),
        _ => None,
    }
}

/// Bytes to lines, in a buffer of fixed capacity: a longer line is cut (and its rest ignored up
/// to the newline), so a program that never writes a newline cannot make campush allocate.
pub struct LineAssembler {
    buf: Vec<u8>,
    overlong: bool,
}

/// Longest stderr line kept; the rest of a longer one is dropped.
pub const MAX_LINE: usize = 1024;

impl LineAssembler {
    pub fn new() -> Self {
        LineAssembler {
            buf: Vec::with_capacity(MAX_LINE),
            overlong: false,
        }
    }

    /// Feeds `bytes`; calls `line` for every complete line (lossily decoded).
    pub fn feed(&mut self, bytes: &[u8], mut line: impl FnMut(&str)) {
        for chunk in bytes.split_inclusive(|&b| b == b'\n') {
            let (body, complete) = match chunk.strip_suffix(b"\n") {
                Some(body) => (body, true),
                None => (chunk, false),
            };
            let room = MAX_LINE - self.buf.len();
            if body.len() > room {
                self.overlong = true;
            }
            self.buf.extend_from_slice(&body[..body.len().min(room)]);
            if complete {
                self.emit(&mut line);
            }
        }
    }

    /// Emits what is left (the app exited without a final newline).
    pub fn flush(&mut self, mut line: impl FnMut(&str)) {
        if !self.buf.is_empty() {
            self.emit(&mut line);
        }
    }

    fn emit(&mut self, line: &mut impl FnMut(&str)) {
        let text = String::from_utf8_lossy(&self.buf);
        let text = text.trim_end_matches('\r');
        if self.overlong {
            line(&format!("{text} [...]"));
        } else {
            line(text);
        }
        self.buf.clear();
        self.overlong = false;
    }
}

impl Default for LineAssembler {
    fn default() -> Self {
        Self::new()
    }
}

/// Lines forwarded in a burst before the rate limit applies.
pub const BURST: u32 = 20;
/// After a burst, one line per this interval.
pub const REFILL: Duration = Duration::from_secs(2);
/// Lines kept for the report when the app fails.
pub const KEPT_LINES: usize = 8;

/// Forwards lines into the log through a token bucket ([`BURST`] lines, then one per
/// [`REFILL`]) and keeps the last [`KEPT_LINES`] for a failure report. Suppressed lines are
/// counted and the count is logged once lines flow again.
pub struct Forwarder {
    app: &'static str,
    tokens: f64,
    refilled: Instant,
    suppressed: u64,
    recent: VecDeque<String>,
}

impl Forwarder {
    pub fn new(app: &'static str, now: Instant) -> Self {
        Forwarder {
            app,
            tokens: f64::from(BURST),
            refilled: now,
            suppressed: 0,
            recent: VecDeque::with_capacity(KEPT_LINES),
        }
    }

    /// Logs `line` at `level` if the budget allows (lines the logger would drop cost nothing).
    /// Returns whether it was logged.
    pub fn forward(&mut self, line: &str, level: Level, now: Instant) -> bool {
        self.forward_if(line, level, level <= log::max_level(), now)
    }

    /// [`Self::forward`], with whether the logger takes `level` given.
    fn forward_if(&mut self, line: &str, level: Level, enabled: bool, now: Instant) -> bool {
        if self.recent.len() == KEPT_LINES {
            self.recent.pop_front();
        }
        self.recent.push_back(line.to_string());
        if !enabled {
            return false;
        }
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.refilled = now;
        self.tokens = (self.tokens + elapsed / REFILL.as_secs_f64()).min(f64::from(BURST));
        if self.tokens < 1.0 {
            self.suppressed += 1;
            return false;
        }
        self.tokens -= 1.0;
        if self.suppressed > 0 {
            log::warn!(
                "{}: {} line(s) of its output not logged (rate limit)",
                self.app,
                self.suppressed
            );
            self.suppressed = 0;
        }
        log::log!(level, "{}: {line}", self.app);
        true
    }

    /// The last lines the app wrote (logged or not), oldest first.
    pub fn recent(&self) -> impl Iterator<Item = &str> {
        self.recent.iter().map(String::as_str)
    }

    pub fn clear_recent(&mut self) {
        self.recent.clear();
    }

    pub fn suppressed(&self) -> u64 {
        self.suppressed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_apps_fatal_errors_are_failures_with_their_text() {
        let table = [
            (
                "ERROR: *** no cameras available ***",
                Failure::NoCamera("no cameras available".into()),
            ),
            (
                "ERROR: *** selected camera is not available ***",
                Failure::NoCamera("selected camera is not available".into()),
            ),
            (
                "ERROR: *** failed to acquire camera /base/soc/i2c0mux/i2c@1/imx708@1a ***",
                Failure::CameraBusy(
                    "failed to acquire camera /base/soc/i2c0mux/i2c@1/imx708@1a".into(),
                ),
            ),
            (
                "ERROR: *** unrecognised option '--frobnicate' ***",
                Failure::Rejected("unrecognised option '--frobnicate'".into()),
            ),
            (
                "ERROR: *** the argument ('abc') for option '--width' is invalid ***",
                Failure::Rejected("the argument ('abc') for option '--width' is invalid".into()),
            ),
            (
                "ERROR: *** Invalid AWB mode: sunny ***",
                Failure::Rejected("Invalid AWB mode: sunny".into()),
            ),
            (
                "ERROR: *** libav: cannot allocate output context, try setting with --libav-format ***",
                Failure::Rejected(
                    "libav: cannot allocate output context, try setting with --libav-format"
                        .into(),
                ),
            ),
            (
                "ERROR: *** failed to start camera ***",
                Failure::Other("failed to start camera".into()),
            ),
            (
                "ERROR: Device timeout detected, attempting a restart!!!",
                Failure::DeviceTimeout,
            ),
        ];
        for (line, failure) in table {
            let c = classify(line);
            assert_eq!(c.failure, Some(failure), "{line}");
            assert_eq!(c.level, Level::Error, "{line}");
        }
    }

    #[test]
    fn libcamera_lines_keep_their_level_and_chatter_is_debug() {
        let table = [
            (
                "[0:00:01.123456789] [1234]  INFO Camera camera_manager.cpp:327 libcamera v0.3.0+65",
                Level::Debug,
            ),
            (
                "[0:00:01.123456789] [1234]  WARN RPiSdn sdn.cpp:40 Using legacy SDN tuning",
                Level::Warn,
            ),
            (
                "[0:59:20.977024792] [3232]  INFO Camera camera.cpp:1021 Pipeline handler in use by another process",
                Level::Warn,
            ),
            (
                "[0:05:01.5] [812] ERROR RPI pipeline_base.cpp:1355 Camera frontend has timed out!",
                Level::Error,
            ),
            ("Mode selection for 1920:1080:12:P", Level::Debug),
            ("    SRGGB10_CSI2P,1536x864/0 - Score: 3400", Level::Debug),
            (
                "WARNING: consider inline headers with 'pause'/split/segment/circular",
                Level::Warn,
            ),
        ];
        for (line, level) in table {
            let c = classify(line);
            assert_eq!((c.level, c.failure), (level, None), "{line}");
        }
    }

    #[test]
    fn lines_are_assembled_across_reads_and_cut_when_overlong() {
        let mut a = LineAssembler::new();
        let mut out = Vec::new();
        a.feed(b"first li", |l| out.push(l.to_string()));
        a.feed(b"ne\r\nsecond\nthi", |l| out.push(l.to_string()));
        assert_eq!(out, ["first line", "second"]);
        a.flush(|l| out.push(l.to_string()));
        assert_eq!(out[2], "thi");
        let long = vec![b'x'; 5000];
        a.feed(&long, |_| panic!("no newline yet"));
        a.feed(b"yy\nok\n", |l| out.push(l.to_string()));
        assert_eq!(out[3].len(), MAX_LINE + " [...]".len());
        assert_eq!(out[4], "ok");
        assert!(a.buf.capacity() <= MAX_LINE, "the buffer never grew");
    }

    #[test]
    fn a_flood_is_cut_to_the_burst_then_one_line_per_refill() {
        let t0 = Instant::now();
        let mut f = Forwarder::new("rpicam-vid", t0);
        let logged = (0..1000)
            .filter(|_| f.forward_if("ERROR: Device timeout detected", Level::Error, true, t0))
            .count();
        assert_eq!(logged, BURST as usize);
        assert_eq!(f.suppressed(), 1000 - u64::from(BURST));
        let later = t0 + REFILL * 10;
        let logged = (0..100)
            .filter(|_| f.forward_if("again", Level::Error, true, later))
            .count();
        assert_eq!(logged, 10, "ten refills in ten intervals");
        assert_eq!(f.recent().count(), KEPT_LINES);
        assert!(f.recent().all(|l| l == "again"));
        assert!(
            !f.forward_if("chatter", Level::Debug, false, later + REFILL * 100),
            "a line below the log level is not logged"
        );
        assert_eq!(
            f.tokens, 0.0,
            "and costs nothing: the bucket was not even refilled"
        );
    }
}
