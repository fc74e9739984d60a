//! A V4L2 capture device that emits H.264 itself (UVC H.264 cameras, the legacy
//! `bcm2835-v4l2` Pi camera, v4l2loopback carrying H.264), plus the format, size and frame-rate
//! negotiation that `m2m` reuses for raw cameras.
//!
//! Owns: the open device, its MMAP buffer queue (single- or multi-planar), and whether the
//! device has a `force_key_frame` control.
//!
//! Per frame ([`H264Capture::next_frame`]): `poll` with a deadline, `DQBUF`, hand the payload
//! (`bytesused` from `data_offset`, never the whole buffer) to the caller, `QBUF` it back. No
//! allocation. Buffers are skipped, and given straight back, when they are flagged
//! `V4L2_BUF_FLAG_ERROR`, empty, or reported completely full (see the quirk below).
//!
//! Negotiation ([`negotiate`]): the pixel format must be in `ENUM_FMT`; a requested size must be
//! in `ENUM_FRAMESIZES` (when the driver enumerates) and be what `S_FMT` returns; a requested
//! rate must be in `ENUM_FRAMEINTERVALS` (when enumerated) and be what `S_PARM` returns. Any
//! mismatch is [`V4l2Error::Unsupported`] with the list of what the device offers. Except for a
//! size or rate that is only a preference (a board profile's default, see
//! [`V4l2Settings::size_is_preference`]): the device gets the nearest it offers
//! ([`nearest_size`], [`nearest_fps`]) and keeps what its driver settles on, logged. A board
//! asks every camera for its 1080p30, and a UVC camera that tops out at 720p must still stream.
//!
//! Hardware quirks handled here:
//! - Legacy `bcm2835-v4l2` sends SPS/PPS in a buffer of their own before the first IDR: such
//!   a buffer is passed on like any other; the ingest stage caches parameter-only units.
//! - v4l2loopback 0.12.7 marks every buffer full (`bytesused == length`) when a reader calls
//!   `REQBUFS`, so the first dequeued buffer can be a stale access unit followed by ~1 MB of
//!   leftovers: a buffer reported completely full is rejected.
//! - With `exclusive_caps=1`, v4l2loopback offers no capture capability until its writer has
//!   written: that is "not yet a capture device", a transient condition.
//!
//! Spec: "Video Capture Interface", "Streaming I/O (Memory Mapping)", "ioctl VIDIOC_S_PARM".

use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::device::{
    fps_text, poll, BufType, Caps, Device, Format, FourCc, FrameInterval, FrameSize,
};
use super::queue::{Dequeued, Queue};
use super::sys::{v4l2_fract, V4L2_CID_MPEG_VIDEO_BITRATE, V4L2_CID_MPEG_VIDEO_FORCE_KEY_FRAME};
use super::{V4l2Error, V4l2Settings};

/// Buffers requested on a capture queue.
pub const CAPTURE_BUFFERS: u32 = 4;

/// Opens `path` and reads its capabilities; every failure is transient (absent, busy, ...).
pub fn open_device(path: &Path) -> Result<(Arc<Device>, Caps), V4l2Error> {
    let dev = Device::open(path)
        .map_err(|e| V4l2Error::Unavailable(format!("{}: cannot open: {e}", path.display())))?;
    let caps = dev
        .query_caps()
        .map_err(|e| V4l2Error::Unavailable(format!("{}: QUERYCAP: {e}", path.display())))?;
    Ok((Arc::new(dev), caps))
}

/// `path (card)` for messages.
pub fn label(path: &Path, caps: &Caps) -> String {
    format!("{} ({})", path.display(), caps.card)
}

/// Sets `fourcc`, the requested size and frame rate on queue `ty` of `dev`, and returns the
/// format in force. Errors list what the device offers.
pub fn negotiate(
    dev: &Device,
    label: &str,
    ty: BufType,
    fourcc: FourCc,
    settings: &V4l2Settings,
) -> Result<Format, V4l2Error> {
    let path = dev.path().to_owned();
    let io = |what: &str, e: io::Error| V4l2Error::from_io(&path, what, &e);
    let formats = dev.formats(ty).map_err(|e| io("ENUM_FMT", e))?;
    if !formats.iter().any(|f| f.fourcc == fourcc) {
        let offered: Vec<String> = formats
            .iter()
            .map(|f| format!("{} ({})", f.fourcc, f.description))
            .collect();
        return Err(V4l2Error::Unsupported(format!(
            "{label} does not offer {fourcc} on its {} queue; it offers: {}",
            ty.name(),
            if offered.is_empty() {
                "nothing".to_string()
            } else {
                offered.join(", ")
            }
        )));
    }
    let sizes = dev.frame_sizes(fourcc);
    let list_sizes = || {
        if sizes.is_empty() {
            "(the driver does not enumerate sizes)".to_string()
        } else {
            sizes
                .iter()
                .map(FrameSize::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    let current = dev.get_format(ty).map_err(|e| io("G_FMT", e))?;
    let preference = settings.size_is_preference;
    let (width, height) = match (settings.width, settings.height) {
        (Some(w), Some(h)) => {
            if !sizes.is_empty() && !sizes.iter().any(|s| s.contains(w, h)) {
                if !preference {
                    return Err(V4l2Error::Unsupported(format!(
                        "{label} cannot capture {fourcc} at {w}x{h}; it offers: {}",
                        list_sizes()
                    )));
                }
                let (nw, nh) = nearest_size(&sizes, w, h).unwrap_or((w, h));
                log::info!(
                    "{label}: {w}x{h} (the board's default) is not offered for {fourcc}; using \
                     the nearest size it offers, {nw}x{nh}"
                );
                (nw, nh)
            } else {
                (w, h)
            }
        }
        _ => (current.width, current.height),
    };
    let got = dev
        .set_format(ty, &Format::request(fourcc, width, height))
        .map_err(|e| io(&format!("S_FMT {fourcc} {width}x{height}"), e))?;
    if got.fourcc != fourcc {
        return Err(V4l2Error::Unsupported(format!(
            "{label} replaced {fourcc} by {} when asked to set it",
            got.fourcc
        )));
    }
    if settings.width.is_some() && (got.width, got.height) != (width, height) {
        if !preference {
            return Err(V4l2Error::Unsupported(format!(
                "{label} set {}x{} when asked for {width}x{height}; it offers: {}",
                got.width,
                got.height,
                list_sizes()
            )));
        }
        log::info!(
            "{label}: the driver set {}x{} when asked for {width}x{height} (the board's \
             default): keeping it",
            got.width,
            got.height
        );
    }
    if let Some(fps) = settings.fps {
        set_rate(dev, label, ty, &got, fps, settings.fps_is_preference)?;
    }
    Ok(got)
}

/// The offered size nearest to `width`x`height`: the smallest change of area plus twice the
/// change of aspect ratio, on a log scale (so 1280x720 is as near to 1920x1080 as 2880x1620
/// is, and a 4:3 request prefers a smaller 4:3 size to a 16:9 one of about its area). A stepwise range
/// offers the request clamped into it, rounded to its steps. `None` when nothing is offered.
pub fn nearest_size(sizes: &[FrameSize], width: u32, height: u32) -> Option<(u32, u32)> {
    let distance = |w: u32, h: u32| {
        let area = (f64::from(w) * f64::from(h)) / (f64::from(width) * f64::from(height));
        let aspect = (f64::from(w) / f64::from(h)) / (f64::from(width) / f64::from(height));
        area.ln().abs() + 2.0 * aspect.ln().abs()
    };
    sizes
        .iter()
        .map(|s| match *s {
            FrameSize::Discrete { width, height } => (width, height),
            FrameSize::Stepwise(r) => {
                let fit = |v: u32, min: u32, max: u32, step: u32| {
                    let step = step.max(1);
                    let v = v.clamp(min, max);
                    (min + (v - min) / step * step).max(1)
                };
                (
                    fit(width, r.min_width, r.max_width, r.step_width),
                    fit(height, r.min_height, r.max_height, r.step_height),
                )
            }
        })
        .filter(|&(w, h)| w > 0 && h > 0)
        .min_by(|a, b| distance(a.0, a.1).total_cmp(&distance(b.0, b.1)))
}

/// The offered rate nearest to `fps` (a stepwise range offers `fps` clamped into it). `None` when
/// nothing is offered.
pub fn nearest_fps(intervals: &[FrameInterval], fps: f64) -> Option<f64> {
    intervals
        .iter()
        .map(|i| match *i {
            FrameInterval::Discrete(f) => super::device::fps_of(f),
            FrameInterval::Stepwise { min, max } => {
                let (lo, hi) = (super::device::fps_of(max), super::device::fps_of(min));
                fps.clamp(lo.min(hi), hi.max(lo))
            }
        })
        .filter(|f| f.is_finite() && *f > 0.0)
        .min_by(|a, b| (a - fps).abs().total_cmp(&(b - fps).abs()))
}

fn set_rate(
    dev: &Device,
    label: &str,
    ty: BufType,
    format: &Format,
    fps: f64,
    preference: bool,
) -> Result<(), V4l2Error> {
    let intervals = dev.frame_intervals(format.fourcc, format.width, format.height);
    let list = || {
        if intervals.is_empty() {
            "(the driver does not enumerate frame rates)".to_string()
        } else {
            intervals
                .iter()
                .map(FrameInterval::to_string)
                .collect::<Vec<_>>()
                .join(", ")
                + " fps"
        }
    };
    let asked = fps;
    let mut fps = fps;
    if !intervals.is_empty() && !intervals.iter().any(|i| i.contains_fps(fps)) && preference {
        fps = nearest_fps(&intervals, fps).unwrap_or(fps);
        log::info!(
            "{label}: {} fps (the board's default) is not offered at {}x{}; using the nearest \
             rate it offers, {} fps",
            fps_text(asked),
            format.width,
            format.height,
            fps_text(fps)
        );
    }
    if !intervals.is_empty() && !intervals.iter().any(|i| i.contains_fps(fps)) {
        return Err(V4l2Error::Unsupported(format!(
            "{label} cannot capture {} {}x{} at {} fps; it offers: {}",
            format.fourcc,
            format.width,
            format.height,
            fps_text(fps),
            list()
        )));
    }
    let settable = dev.get_parm(ty).map(|(can, _)| can).unwrap_or(false);
    if !settable {
        log::warn!(
            "{label}: the driver does not set frame rates (no time-per-frame capability); \
             streaming at its own rate instead of {} fps",
            fps_text(fps)
        );
        return Ok(());
    }
    let want = interval_of(fps);
    let got = dev
        .set_frame_interval(ty, want)
        .map_err(|e| V4l2Error::from_io(dev.path(), "S_PARM", &e))?;
    let got_fps = super::device::fps_of(got);
    if (got_fps - fps).abs() > 0.01 * fps && preference {
        log::info!(
            "{label}: the driver chose {} fps when asked for {} fps (the board's default): \
             keeping it",
            fps_text(got_fps),
            fps_text(fps)
        );
        return Ok(());
    }
    if (got_fps - fps).abs() > 0.01 * fps {
        return Err(V4l2Error::Unsupported(format!(
            "{label} chose {} fps when asked for {} fps; it offers: {}",
            fps_text(got_fps),
            fps_text(fps),
            list()
        )));
    }
    Ok(())
}

/// Time per frame for `fps`, exact for whole and NTSC-style rates.
pub fn interval_of(fps: f64) -> v4l2_fract {
    let ntsc = (fps * 1.001).round();
    if (fps - ntsc / 1.001).abs() < 1e-3 && (fps - fps.round()).abs() > 1e-3 {
        v4l2_fract {
            numerator: 1001,
            denominator: (ntsc * 1000.0) as u32,
        }
    } else {
        v4l2_fract {
            numerator: 1000,
            denominator: (fps * 1000.0).round() as u32,
        }
    }
}

/// Whether `dev` has a usable `force_key_frame` control.
pub fn has_force_key_frame(dev: &Device) -> bool {
    dev.control(V4L2_CID_MPEG_VIDEO_FORCE_KEY_FRAME)
        .map(|c| c.usable())
        .unwrap_or(false)
}

/// The current value of `dev`'s `video_bitrate` control (bit/s) when it has a usable one, the
/// adaptive bitrate's handle (`crate::bitrate`); `None`: no such control.
pub fn bitrate_control(dev: &Device) -> Option<u32> {
    dev.control(V4L2_CID_MPEG_VIDEO_BITRATE)
        .ok()
        .filter(|c| c.usable())?;
    dev.get_control(V4L2_CID_MPEG_VIDEO_BITRATE)
        .ok()
        .and_then(|v| u32::try_from(v).ok())
        .filter(|v| *v > 0)
}

/// Sets `dev`'s `video_bitrate` control while streaming; false when refused.
pub fn set_bitrate_control(dev: &Device, bps: u32) -> bool {
    i32::try_from(bps).is_ok_and(|v| dev.set_control(V4L2_CID_MPEG_VIDEO_BITRATE, v).is_ok())
}

/// What the source does with one dequeued buffer: copy it, and learn its metadata.
pub type FrameFn<'a, R> = &'a mut dyn FnMut(&[u8], &Dequeued) -> R;

/// Waits for a readable event on `fd` until `deadline`. `Ok(false)` on timeout.
pub(crate) fn wait_readable(fds: &mut [libc::pollfd], deadline: Instant) -> io::Result<bool> {
    let now = Instant::now();
    if now >= deadline {
        return Ok(false);
    }
    Ok(poll(fds, deadline - now)? > 0)
}

/// An H.264 capture device, streaming.
pub struct H264Capture {
    queue: Queue,
    format: Format,
    label: String,
    path: PathBuf,
    force_key: bool,
    /// The camera's own encoder has a `video_bitrate` control (its value at open).
    bitrate: Option<u32>,
    rejected_full: u64,
}

impl H264Capture {
    /// Opens, negotiates H.264, maps buffers and starts streaming.
    pub fn open(path: &Path, settings: &V4l2Settings) -> Result<H264Capture, V4l2Error> {
        let (dev, caps) = open_device(path)?;
        let label = label(path, &caps);
        let Some(ty) = caps.capture_type().filter(|_| !caps.is_m2m()) else {
            // v4l2loopback with exclusive_caps=1 is output-only until its writer writes.
            return Err(V4l2Error::Unavailable(format!(
                "{label} is not (yet) a video capture device: {}",
                caps.summary()
            )));
        };
        if !caps.streaming() {
            return Err(V4l2Error::Unsupported(format!(
                "{label} cannot stream (no V4L2_CAP_STREAMING); campush needs streaming I/O"
            )));
        }
        let format = negotiate(&dev, &label, ty, FourCc::H264, settings)?;
        let io = |what: &str, e: io::Error| V4l2Error::from_io(path, what, &e);
        let mut queue = Queue::mmap(&dev, ty, CAPTURE_BUFFERS, format.planes.len())
            .map_err(|e| io("REQBUFS", e))?;
        for index in 0..queue.count() as u32 {
            queue.queue_mmap(index, &[], 0).map_err(|e| io("QBUF", e))?;
        }
        queue.stream_on().map_err(|e| io("STREAMON", e))?;
        let force_key = has_force_key_frame(&dev);
        let bitrate = bitrate_control(&dev);
        log::info!(
            "{label}: streaming {format}, {} buffers{}",
            queue.count(),
            if force_key {
                ", keyframes on request"
            } else {
                ""
            }
        );
        Ok(H264Capture {
            queue,
            format,
            label,
            path: path.to_owned(),
            force_key,
            bitrate,
            rejected_full: 0,
        })
    }

    pub fn format(&self) -> &Format {
        &self.format
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    /// Largest access unit the device can deliver (its `sizeimage`).
    pub fn frame_capacity(&self) -> usize {
        self.format.sizeimage().max(self.queue.plane_len(0, 0))
    }

    /// Asks the device for an IDR next; false when it cannot.
    pub fn request_keyframe(&mut self) -> bool {
        self.force_key
            && self
                .queue
                .device()
                .set_control(V4L2_CID_MPEG_VIDEO_FORCE_KEY_FRAME, 1)
                .is_ok()
    }

    pub fn can_force_keyframes(&self) -> bool {
        self.force_key
    }

    /// The camera's bitrate when it has a `video_bitrate` control (bit/s, at open).
    pub fn bitrate(&self) -> Option<u32> {
        self.bitrate
    }

    /// Sets the camera encoder's bitrate while streaming; false without the control.
    pub fn set_bitrate(&mut self, bps: u32) -> bool {
        self.bitrate.is_some() && set_bitrate_control(self.queue.device(), bps)
    }

    /// Waits up to `timeout` for the next H.264 buffer and passes its payload to `f`.
    pub fn next_frame<R>(&mut self, timeout: Duration, f: FrameFn<'_, R>) -> Result<R, V4l2Error> {
        let deadline = Instant::now() + timeout;
        let mut errors_in_a_row = 0;
        loop {
            let dequeued = self
                .queue
                .dequeue()
                .map_err(|e| V4l2Error::streaming(&self.path, "DQBUF", &e))?;
            if let Some(d) = dequeued {
                let full = d.length > 0 && d.bytesused + d.data_offset >= d.length;
                let result = if d.error() || d.bytesused == 0 {
                    None
                } else if full {
                    self.rejected_full += 1;
                    if self.rejected_full.is_power_of_two() {
                        log::warn!(
                            "{}: rejected a buffer reported completely full ({} bytes, {} so far): \
                             not a real access unit",
                            self.label,
                            d.length,
                            self.rejected_full
                        );
                    }
                    None
                } else {
                    Some(f(self.queue.payload(&d), &d))
                };
                self.queue
                    .queue_mmap(d.index, &[], 0)
                    .map_err(|e| V4l2Error::streaming(&self.path, "QBUF", &e))?;
                if let Some(r) = result {
                    return Ok(r);
                }
                continue;
            }
            let mut fds = [libc::pollfd {
                fd: self.queue.device().as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            }];
            let ready = wait_readable(&mut fds, deadline)
                .map_err(|e| V4l2Error::streaming(&self.path, "poll", &e))?;
            if !ready && Instant::now() >= deadline {
                return Err(V4l2Error::Unavailable(format!(
                    "{}: no frame for {:.1} s",
                    self.label,
                    timeout.as_secs_f64()
                )));
            }
            if fds[0].revents & (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0 {
                // DQBUF above reports the reason (ENODEV, EPIPE); if it keeps saying "not
                // ready" the device is broken all the same.
                errors_in_a_row += 1;
                if errors_in_a_row > 3 {
                    return Err(V4l2Error::Unavailable(format!(
                        "{}: the device reports an error condition",
                        self.label
                    )));
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v4l2::sys::v4l2_frmsize_stepwise;

    #[test]
    fn a_preferred_size_becomes_the_nearest_one_offered() {
        let d = |width, height| FrameSize::Discrete { width, height };
        let uvc = [d(640, 480), d(1280, 720), d(800, 600), d(320, 240)];
        assert_eq!(nearest_size(&uvc, 1920, 1080), Some((1280, 720)));
        assert_eq!(nearest_size(&uvc, 1280, 720), Some((1280, 720)));
        assert_eq!(
            nearest_size(&uvc, 1024, 768),
            Some((800, 600)),
            "same aspect first"
        );
        let range = FrameSize::Stepwise(v4l2_frmsize_stepwise {
            min_width: 32,
            max_width: 1280,
            step_width: 16,
            min_height: 32,
            max_height: 720,
            step_height: 8,
        });
        assert_eq!(nearest_size(&[range], 1920, 1080), Some((1280, 720)));
        assert_eq!(nearest_size(&[range], 1000, 500), Some((992, 496)));
        assert_eq!(nearest_size(&[], 1920, 1080), None);
    }

    #[test]
    fn a_preferred_rate_becomes_the_nearest_one_offered() {
        let per = |d| {
            FrameInterval::Discrete(v4l2_fract {
                numerator: 1,
                denominator: d,
            })
        };
        assert_eq!(nearest_fps(&[per(15), per(25), per(60)], 30.0), Some(25.0));
        let range = FrameInterval::Stepwise {
            min: v4l2_fract {
                numerator: 1,
                denominator: 20,
            },
            max: v4l2_fract {
                numerator: 1,
                denominator: 1,
            },
        };
        assert_eq!(nearest_fps(&[range], 30.0), Some(20.0));
        assert_eq!(nearest_fps(&[], 30.0), None);
    }

    #[test]
    fn frame_intervals_are_exact_for_common_rates() {
        let f = |fps| {
            let i = interval_of(fps);
            (i.numerator, i.denominator)
        };
        assert_eq!(f(30.0), (1000, 30000));
        assert_eq!(f(25.0), (1000, 25000));
        assert_eq!(f(29.97), (1001, 30000));
        assert_eq!(f(59.94), (1001, 60000));
        assert_eq!(f(7.5), (1000, 7500));
    }
}
