//! `v4l2:DEVICE` and `v4l2-m2m:CAPTURE[,ENCODER]`: H.264 from V4L2 devices, and the policy
//! that keeps them running.
//!
//! Owns: the device side while it is open (an [`H264Capture`] or an [`M2mPipeline`]), the
//! reopen loop with its backoff, the timestamp policy, and keyframe-request rate limiting.
//!
//! Robustness: a device that is absent at start, goes away while streaming (ENODEV), or falls
//! silent (no frame within [`SILENCE`]) is released completely (STREAMOFF, unmap, close), the
//! status becomes `WaitingForSource`, and the device is reopened with a bounded backoff
//! ([`BACKOFF_MIN`] doubling to [`BACKOFF_MAX`]) until it delivers again; then the status goes
//! back to what it was. Publishers are unaffected: they keep their connections and resume with
//! the next keyframe. Only configuration-type problems (the device does not offer H.264, the
//! size or the rate asked for; the encoder rejects a control value) end the source with
//! [`SourceError::Device`], whose message lists what the device supports.
//!
//! Handing back: a source made with [`V4l2Source::hand_back_on_loss`] (as `auto` makes it)
//! releases the device and waits out the backoff as above, then returns [`SourceError::Lost`]
//! instead of reopening by itself: its owner may look for a camera again, and reads this
//! source again if it is still the one to use.
//!
//! Alive: every open attempt and every slice of a backoff notes the source alive
//! ([`SharedStatus::source_alive`]), so the systemd watchdog knows it is trying.
//!
//! Stop: the source holds its pipeline's [`Stop`]. Once it is requested the backoff ends, no
//! reopen is tried, the device is released and the source ends (`Ok(None)`), at the latest one
//! frame wait ([`FIRST_FRAME`]) after the request.
//!
//! Bitrate (the adaptive bitrate, `crate::bitrate`): the encoder's `video_bitrate` control
//! (`V4L2_CID_MPEG_VIDEO_BITRATE`), found by QUERYCTRL at open on the `v4l2-m2m` encoder's own
//! descriptor or on a `v4l2:` H.264 camera, is set while streaming ([`Source::set_bitrate`]);
//! the last value set is applied again when the device is reopened (an opened encoder starts at
//! the configured bitrate). A device without the control (most UVC cameras; `vicodec`, the
//! FWHT codec the guest tests drive this path with, has none either, so the guest tests do not
//! exercise it) keeps its bitrate, and the adaptive bitrate stays off. Known once the device
//! is open ([`Source::adjustable_bitrate`]): a device that appears after start-up gets the
//! adaptive bitrate then (`ingest` looks again after every frame until it has one).
//!
//! Timestamps: the buffer's own timestamp when it is on `CLOCK_MONOTONIC` (driver-stamped, or
//! copied through the encoder from the camera's), else the dequeue time; never decreasing.
//!
//! Per frame: one `poll`, one DQBUF/QBUF pair per queue, one copy from the mmap-ed buffer into
//! the pool slot (`fill_from`). No allocation.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{Capture, Source, SourceError};
use crate::clock::monotonic_us;
use crate::pool::FrameMut;
use crate::status::{SharedStatus, Status, ALIVE_SLICE};
use crate::stop::Stop;
use crate::v4l2::capture::H264Capture;
use crate::v4l2::m2m::{find_encoder, M2mPipeline, M2mRequest};
use crate::v4l2::queue::Dequeued;
use crate::v4l2::{FourCc, V4l2Error, V4l2Settings};

/// A device that delivers nothing for this long is treated as gone.
pub const SILENCE: Duration = Duration::from_secs(2);
/// The first frame after (re)opening may take longer: sensors and encoders warm up.
pub const FIRST_FRAME: Duration = Duration::from_secs(5);
pub const BACKOFF_MIN: Duration = Duration::from_millis(250);
pub const BACKOFF_MAX: Duration = Duration::from_secs(4);
/// At most one forced keyframe per this interval (a stream of requests would make every
/// frame an IDR).
const KEYFRAME_REQUEST_SPACING_US: u64 = 1_000_000;
/// Pool slot size when the device could not be opened at start-up.
const DEFAULT_CAPACITY: usize = 512 * 1024;

/// Which device setup to (re)open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Capture(PathBuf),
    M2m {
        camera: PathBuf,
        encoder: Option<PathBuf>,
        /// H.264 in campush; FWHT when tests drive `vicodec` through the same path.
        coded: FourCc,
    },
}

// One of these exists per source, for the source's lifetime: size does not matter.
#[allow(clippy::large_enum_variant)]
enum Active {
    Capture(H264Capture),
    M2m(M2mPipeline),
}

impl Active {
    fn next_frame<R>(
        &mut self,
        timeout: Duration,
        f: &mut dyn FnMut(&[u8], &Dequeued) -> R,
    ) -> Result<R, V4l2Error> {
        match self {
            Active::Capture(c) => c.next_frame(timeout, f),
            Active::M2m(p) => p.next_frame(timeout, f),
        }
    }

    fn request_keyframe(&mut self) -> bool {
        match self {
            Active::Capture(c) => c.request_keyframe(),
            Active::M2m(p) => p.request_keyframe(),
        }
    }

    fn bitrate(&self) -> Option<u32> {
        match self {
            Active::Capture(c) => c.bitrate(),
            Active::M2m(p) => p.bitrate(),
        }
    }

    fn set_bitrate(&mut self, bps: u32) -> bool {
        match self {
            Active::Capture(c) => c.set_bitrate(bps),
            Active::M2m(p) => p.set_bitrate(bps),
        }
    }

    fn capacity(&self) -> usize {
        match self {
            Active::Capture(c) => c.frame_capacity(),
            Active::M2m(p) => p.frame_capacity(),
        }
    }
}

/// What one delivered frame carried, for callers that look beyond the bytes (tests, tools).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FrameInfo {
    pub timestamp_us: u64,
    /// The driver flagged the buffer as a keyframe (not every driver does; campush itself
    /// detects keyframes from NAL types).
    pub key_flag: bool,
    pub sequence: u32,
    pub len: usize,
}

/// A V4L2 source that survives its device.
pub struct V4l2Source {
    target: Target,
    settings: V4l2Settings,
    status: SharedStatus,
    active: Option<Active>,
    allow_dmabuf: bool,
    capacity: usize,
    backoff: Duration,
    waiting: bool,
    unavailable_logged: u32,
    keyframe_wanted: bool,
    last_keyframe_request_us: u64,
    last_ts: u64,
    delivered: bool,
    opens: u64,
    hand_back: bool,
    stop: Stop,
    /// The bitrate last set by [`Source::set_bitrate`], applied again on a reopen.
    bitrate_set: Option<u32>,
}

impl V4l2Source {
    /// Tries the device once, so the pool can be sized from its `sizeimage` and configuration
    /// errors surface at start-up; a device that is merely unavailable is waited for later.
    /// Once `stop` is requested the source releases the device and ends (`Ok(None)`).
    pub fn new(
        target: Target,
        settings: V4l2Settings,
        status: SharedStatus,
        stop: Stop,
    ) -> Result<V4l2Source, SourceError> {
        // Silent while streaming for at most SILENCE, then it releases the device and waits.
        status.set_source_stall(SILENCE + ALIVE_SLICE);
        let mut s = V4l2Source {
            target,
            settings,
            status,
            active: None,
            allow_dmabuf: std::env::var_os("CAMPUSH_V4L2_NO_DMABUF").is_none(),
            capacity: DEFAULT_CAPACITY,
            backoff: BACKOFF_MIN,
            waiting: false,
            unavailable_logged: 0,
            keyframe_wanted: false,
            last_keyframe_request_us: 0,
            last_ts: 0,
            delivered: false,
            opens: 0,
            hand_back: false,
            stop,
            bitrate_set: None,
        };
        match s.open() {
            Ok(a) => {
                s.capacity = a.capacity();
                s.active = Some(a);
            }
            Err(V4l2Error::Unsupported(m)) => return Err(SourceError::Device(m)),
            Err(V4l2Error::Unavailable(m)) => {
                log::warn!("{m}; waiting for the device");
                s.unavailable_logged = 1;
            }
        }
        Ok(s)
    }

    /// After a loss and its backoff, return [`SourceError::Lost`] instead of reopening the
    /// device by itself (see the module documentation).
    pub fn hand_back_on_loss(mut self) -> Self {
        self.hand_back = true;
        self
    }

    /// The device setup this source opens.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// How many times the device was opened successfully.
    pub fn opens(&self) -> u64 {
        self.opens
    }

    fn open(&mut self) -> Result<Active, V4l2Error> {
        self.status.source_alive();
        let active = match &self.target {
            Target::Capture(path) => Active::Capture(H264Capture::open(path, &self.settings)?),
            Target::M2m {
                camera,
                encoder,
                coded,
            } => {
                let encoder = match encoder {
                    Some(e) => e.clone(),
                    None => find_encoder(*coded)?,
                };
                let pipeline = M2mPipeline::open(&M2mRequest {
                    camera,
                    encoder: &encoder,
                    coded: *coded,
                    settings: &self.settings,
                    allow_dmabuf: self.allow_dmabuf,
                })?;
                Active::M2m(pipeline)
            }
        };
        self.opens += 1;
        self.delivered = false;
        Ok(active)
    }

    /// Releases the device and waits out the backoff, reporting `WaitingForSource`.
    fn wait_after(&mut self, reason: &str) {
        if let Some(active) = self.active.take() {
            drop(active);
        }
        if !self.waiting {
            self.waiting = true;
            // The source's own part of the shared status: the destinations keep theirs.
            self.status.set_source(Status::WaitingForSource);
        }
        self.unavailable_logged += 1;
        // Exponentially spaced: the first occurrences in full, then every power of two.
        if self.unavailable_logged <= 3 || self.unavailable_logged.is_power_of_two() {
            log::warn!(
                "{reason}; retrying in {:.2} s (attempt {})",
                self.backoff.as_secs_f64(),
                self.unavailable_logged
            );
        }
        self.status.sleep_alive(self.backoff, &self.stop);
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
    }

    fn recovered(&mut self) {
        if self.waiting {
            self.waiting = false;
            log::info!("the V4L2 device delivers again");
            self.status.set_source(Status::Streaming);
        }
        self.backoff = BACKOFF_MIN;
        self.unavailable_logged = 0;
    }

    /// The next frame from the device, reopening it as often as needed. `f` sees the payload.
    /// `None` once a stop is requested (the device released). Errors only for
    /// configuration-type problems.
    pub fn next_frame_with(
        &mut self,
        f: &mut dyn FnMut(&[u8]),
    ) -> Result<Option<FrameInfo>, SourceError> {
        loop {
            if self.stop.requested() {
                self.active = None;
                return Ok(None);
            }
            if self.active.is_none() {
                match self.open() {
                    Ok(mut a) => {
                        // A reopened encoder starts at the configured bitrate: give it back
                        // the one the adaptive bitrate had set.
                        if let Some(bps) = self.bitrate_set {
                            a.set_bitrate(bps);
                        }
                        self.active = Some(a);
                    }
                    Err(V4l2Error::Unsupported(m)) => return Err(SourceError::Device(m)),
                    Err(V4l2Error::Unavailable(m)) => {
                        self.wait_after(&m);
                        if self.hand_back {
                            return Err(SourceError::Lost(m));
                        }
                        continue;
                    }
                }
            }
            let Some(active) = self.active.as_mut() else {
                continue;
            };
            if self.keyframe_wanted {
                self.keyframe_wanted = false;
                active.request_keyframe();
            }
            let timeout = if self.delivered { SILENCE } else { FIRST_FRAME };
            let got = active.next_frame(timeout, &mut |bytes: &[u8], d: &Dequeued| {
                f(bytes);
                FrameInfo {
                    timestamp_us: d.timestamp_us,
                    key_flag: d.keyframe(),
                    sequence: d.sequence,
                    len: bytes.len(),
                }
                .with_usable_timestamp(d.timestamp_usable())
            });
            match got {
                Ok(mut info) => {
                    self.delivered = true;
                    self.recovered();
                    info.timestamp_us = self.stamp(info.timestamp_us);
                    return Ok(Some(info));
                }
                Err(V4l2Error::Unsupported(m)) => return Err(SourceError::Device(m)),
                Err(V4l2Error::Unavailable(m)) => {
                    self.wait_after(&m);
                    if self.hand_back {
                        return Err(SourceError::Lost(m));
                    }
                }
            }
        }
    }

    /// The buffer's monotonic timestamp when usable and plausible, else now; never decreasing.
    fn stamp(&mut self, buffer_us: u64) -> u64 {
        let now = monotonic_us();
        let ts = if buffer_us != 0
            && buffer_us <= now + 1_000_000
            && now - buffer_us.min(now) < 10_000_000
        {
            buffer_us
        } else {
            now
        };
        let ts = ts.max(self.last_ts);
        self.last_ts = ts;
        ts
    }

    /// Asks for a keyframe, at most once per second; true if the device can do it.
    pub fn force_keyframe(&mut self) {
        let now = monotonic_us();
        if now.saturating_sub(self.last_keyframe_request_us) >= KEYFRAME_REQUEST_SPACING_US {
            self.last_keyframe_request_us = now;
            self.keyframe_wanted = true;
        }
    }

    /// Whether the open device honours keyframe requests.
    pub fn can_force_keyframes(&self) -> bool {
        match &self.active {
            Some(Active::Capture(c)) => c.can_force_keyframes(),
            Some(Active::M2m(p)) => p.can_force_keyframes(),
            None => false,
        }
    }

    /// The running pipeline's counters (`v4l2-m2m` only).
    pub fn m2m_stats(&self) -> Option<crate::v4l2::m2m::M2mStats> {
        match &self.active {
            Some(Active::M2m(p)) => Some(p.stats()),
            _ => None,
        }
    }

    /// Whether the running pipeline passes frames by DMABUF (`v4l2-m2m` only).
    pub fn zero_copy(&self) -> Option<bool> {
        match &self.active {
            Some(Active::M2m(p)) => Some(p.zero_copy()),
            _ => None,
        }
    }
}

impl FrameInfo {
    fn with_usable_timestamp(mut self, usable: bool) -> FrameInfo {
        if !usable {
            self.timestamp_us = 0;
        }
        self
    }
}

impl Source for V4l2Source {
    fn next_access_unit(&mut self, frame: &mut FrameMut) -> Result<Option<Capture>, SourceError> {
        let info = self.next_frame_with(&mut |bytes| frame.fill_from(bytes))?;
        Ok(info.map(|info| Capture {
            timestamp_us: info.timestamp_us,
        }))
    }

    fn request_keyframe(&mut self) {
        self.force_keyframe();
    }

    fn frame_capacity_hint(&self) -> usize {
        self.capacity
    }

    /// The encoder's `video_bitrate` control: the `v4l2-m2m` encoder's, or a `v4l2:` H.264
    /// camera's when it lists one. Known only once the device is open (`None` before: a device
    /// that is not there at start-up has it once it delivers).
    fn adjustable_bitrate(&self) -> Option<u32> {
        self.active.as_ref().and_then(Active::bitrate)
    }

    fn set_bitrate(&mut self, bps: u32) -> bool {
        self.bitrate_set = Some(bps);
        self.active.as_mut().is_some_and(|a| a.set_bitrate(bps))
    }
}

/// The target for `v4l2:DEVICE`.
pub fn capture_target(path: &Path) -> Target {
    Target::Capture(path.to_owned())
}

/// The target for `v4l2-m2m:CAMERA[,ENCODER]` producing H.264.
pub fn m2m_target(camera: &Path, encoder: Option<&Path>) -> Target {
    Target::M2m {
        camera: camera.to_owned(),
        encoder: encoder.map(Path::to_owned),
        coded: FourCc::H264,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_absent_device_is_waited_for_not_fatal() {
        let status = SharedStatus::new();
        let s = V4l2Source::new(
            capture_target(Path::new("/nonexistent/video99")),
            V4l2Settings::default(),
            status.clone(),
            Stop::new(),
        )
        .expect("absent is transient");
        assert_eq!(s.frame_capacity_hint(), DEFAULT_CAPACITY);
        assert_eq!(s.opens(), 0);
        assert!(!s.can_force_keyframes());
    }

    #[test]
    fn timestamps_prefer_the_buffer_and_never_go_backwards() {
        let mut s = V4l2Source::new(
            capture_target(Path::new("/nonexistent/video99")),
            V4l2Settings::default(),
            SharedStatus::new(),
            Stop::new(),
        )
        .unwrap();
        let now = monotonic_us();
        let a = s.stamp(now - 20_000);
        assert_eq!(a, now - 20_000, "a plausible buffer time is kept");
        let b = s.stamp(now - 40_000);
        assert_eq!(b, a, "never earlier than the previous frame");
        let c = s.stamp(0);
        assert!(c >= now, "no buffer time: the dequeue time");
        let d = s.stamp(now + 3_600_000_000);
        assert!(
            d < now + 1_000_000,
            "a time from another clock is not trusted"
        );
    }

    #[test]
    fn waiting_reports_the_status_and_recovery_restores_it() {
        let status = SharedStatus::new();
        status.set_destinations(1)[0].set(Status::Streaming);
        status.set_source(Status::Streaming);
        let mut s = V4l2Source::new(
            capture_target(Path::new("/nonexistent/video99")),
            V4l2Settings::default(),
            status.clone(),
            Stop::new(),
        )
        .unwrap();
        s.backoff = Duration::from_millis(1);
        s.wait_after("gone");
        assert_eq!(status.get(), Status::WaitingForSource);
        s.recovered();
        assert_eq!(status.get(), Status::Streaming);
        assert_eq!(s.backoff, BACKOFF_MIN);
    }

    #[test]
    fn a_stop_ends_the_wait_for_an_absent_device_and_it_stops_noting_itself_alive() {
        let status = SharedStatus::new();
        let stop = Stop::new();
        let mut s = V4l2Source::new(
            capture_target(Path::new("/nonexistent/video99")),
            V4l2Settings::default(),
            status.clone(),
            stop.clone(),
        )
        .unwrap();
        // Far into the backoff: without a look at the stop, each wait would take 4 s.
        s.backoff = BACKOFF_MAX;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let got = s.next_frame_with(&mut |_| {});
            let _ = tx.send(got.map(|info| info.is_some()));
        });
        std::thread::sleep(Duration::from_millis(300));
        let alive = crate::status::Counters::get(&status.counters.source_alive);
        assert!(alive > 0, "the source notes itself alive while it waits");
        stop.request();
        let ended = rx.recv_timeout(Duration::from_millis(500));
        assert!(
            matches!(ended, Ok(Ok(false))),
            "the source did not end within 0.5 s of the stop: {ended:?}"
        );
        let after = crate::status::Counters::get(&status.counters.source_alive);
        std::thread::sleep(Duration::from_millis(1200));
        assert_eq!(
            crate::status::Counters::get(&status.counters.source_alive),
            after,
            "a stopped source no longer notes itself alive"
        );
    }

    #[test]
    fn keyframe_requests_are_spaced() {
        let mut s = V4l2Source::new(
            capture_target(Path::new("/nonexistent/video99")),
            V4l2Settings::default(),
            SharedStatus::new(),
            Stop::new(),
        )
        .unwrap();
        s.force_keyframe();
        assert!(s.keyframe_wanted);
        s.keyframe_wanted = false;
        s.force_keyframe();
        assert!(
            !s.keyframe_wanted,
            "a second request within a second is ignored"
        );
    }
}
