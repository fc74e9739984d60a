//! V4L2: H.264 from real kernel drivers, either a capture device that emits H.264 itself (UVC
//! H.264 cameras, the legacy `bcm2835-v4l2` camera) or raw frames pushed through a stateful
//! memory-to-memory encoder (`bcm2835-codec-encode` on a Raspberry Pi).
//!
//! Owns: everything campush knows about V4L2, in layers:
//! - [`sys`]: the ABI (structs, constants, ioctl numbers) with compile-time layout checks;
//! - [`device`]: one open node, safe typed ioctl wrappers;
//! - [`queue`]: one buffer queue (MMAP or DMABUF), single- and multi-planar alike;
//! - [`capture`]: an H.264 capture device, and format/rate negotiation shared with `m2m`;
//! - [`m2m`]: raw capture device → encoder pipeline, and the one function that sets every
//!   encoder control;
//! - [`probe`]: `campush probe`, the report a user reads on a new board;
//! - [`V4l2Settings`]: what the configuration may ask of a device.
//!
//! The sources that plug these into the data path live in `source::v4l2`.
//!
//! # Why our own ioctl layer
//!
//! The obvious crates do not fit a static ARM binary cross-built on a PC: `v4l`
//! (libv4l-rs) has no multi-planar support, which the Pi's encoder requires, and generates its
//! bindings with bindgen at build time (libclang for every target); `v4l2r` covers
//! memory-to-memory devices but is explicitly work in progress and also runs bindgen. campush
//! uses about twenty ioctls on twenty structs. Writing them out by hand costs a few hundred
//! lines, needs nothing at build time, and, more importantly, lets every struct carry
//! compile-time size and offset assertions for 32- and 64-bit targets (`sys`), so an ABI
//! mistake breaks the build of that target rather than a stream on a board. The numbers in
//! those assertions were checked against the kernel's C headers compiled for x86_64, aarch64
//! and 32-bit ARM.
//!
//! # Errors
//!
//! [`V4l2Error::Unavailable`] means "release everything and try again later" (device absent,
//! busy, unplugged (ENODEV), silent, not yet a capture device); [`V4l2Error::Unsupported`] means
//! the device cannot do what the configuration asks, and its message lists what it can.

pub mod capture;
pub mod device;
pub mod m2m;
pub mod probe;
pub mod queue;
pub mod sys;

use std::io;
use std::path::Path;

pub use device::FourCc;

use crate::setting::Invalid;

/// Why a V4L2 device cannot deliver frames.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum V4l2Error {
    /// Transient: absent, busy, gone, silent. Release everything, wait, reopen.
    #[error("{0}")]
    Unavailable(String),
    /// Permanent until the configuration changes: lists what the device does support.
    #[error("{0}")]
    Unsupported(String),
}

impl V4l2Error {
    /// An `io::Error` from `what` on `path`: unavailable for the errors a vanishing, busy or
    /// slow device produces, unsupported for the rest (EINVAL on a format request, ...).
    pub fn from_io(path: &Path, what: &str, e: &io::Error) -> V4l2Error {
        let msg = format!("{}: {what}: {e}", path.display());
        match e.raw_os_error() {
            Some(
                libc::ENOENT
                | libc::ENODEV
                | libc::ENXIO
                | libc::EIO
                | libc::EBUSY
                | libc::EPIPE
                | libc::EAGAIN
                | libc::ETIMEDOUT
                | libc::EACCES
                | libc::EPERM
                | libc::ENOMEM
                | libc::EINTR
                | libc::ENOSPC,
            ) => V4l2Error::Unavailable(msg),
            _ => V4l2Error::Unsupported(msg),
        }
    }

    /// Like [`V4l2Error::from_io`], but every error counts as transient: for calls made while
    /// streaming, where any failure means the device is going away.
    pub fn streaming(path: &Path, what: &str, e: &io::Error) -> V4l2Error {
        V4l2Error::Unavailable(format!("{}: {what}: {e}", path.display()))
    }
}

/// Encoder bit rate mode (`V4L2_CID_MPEG_VIDEO_BITRATE_MODE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BitrateMode {
    Vbr,
    Cbr,
}

/// H.264 profiles campush can ask an encoder for, with their V4L2 menu index.
pub const H264_PROFILES: &[(&str, i32)] = &[
    ("baseline", 0),
    ("constrained_baseline", 1),
    ("main", 2),
    ("high", 4),
];

/// H.264 levels with their V4L2 menu index (`enum v4l2_mpeg_video_h264_level`).
pub const H264_LEVELS: &[(&str, i32)] = &[
    ("1.0", 0),
    ("1b", 1),
    ("1.1", 2),
    ("1.2", 3),
    ("1.3", 4),
    ("2.0", 5),
    ("2.1", 6),
    ("2.2", 7),
    ("3.0", 8),
    ("3.1", 9),
    ("3.2", 10),
    ("4.0", 11),
    ("4.1", 12),
    ("4.2", 13),
    ("5.0", 14),
    ("5.1", 15),
    ("5.2", 16),
];

/// What the configuration asks of a V4L2 source. `None` = keep the device's own value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct V4l2Settings {
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub fps: Option<f64>,
    /// Raw format between camera and encoder (`v4l2-m2m` only); default: the first format
    /// both offer, in the encoder's order of preference.
    pub pixel_format: Option<FourCc>,
    /// Encoder settings (`v4l2-m2m` only).
    pub bitrate_bps: Option<u32>,
    pub bitrate_mode: Option<BitrateMode>,
    /// Frames from one IDR to the next; default two seconds' worth.
    pub gop: Option<u32>,
    /// V4L2 menu index of the H.264 profile (see [`H264_PROFILES`]).
    pub profile: Option<i32>,
    /// V4L2 menu index of the H.264 level (see [`H264_LEVELS`]).
    pub level: Option<i32>,
    /// Let the encoder repeat SPS/PPS before every IDR. Off by default: campush caches them
    /// itself, and the Pi encoder has been reported to stall with it after ~20,000 frames
    /// (raspberrypi/linux#4520).
    pub repeat_sequence_header: bool,
    /// `width`/`height` are a preference (a board profile's default), not a demand: a device
    /// that does not offer the size gets the nearest one it does, where a size the user set
    /// is an error listing the offered sizes.
    pub size_is_preference: bool,
    /// The same for `fps`: the nearest rate the device offers.
    pub fps_is_preference: bool,
}

/// Raw `[source]` values for a V4L2 source, as the configuration file has them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawV4l2<'a> {
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub fps: Option<f64>,
    pub pixel_format: Option<&'a str>,
    pub bitrate_kbps: Option<u32>,
    pub bitrate_mode: Option<&'a str>,
    pub gop: Option<u32>,
    pub profile: Option<&'a str>,
    pub level: Option<&'a str>,
    pub repeat_sequence_header: Option<bool>,
    /// `width`/`height` came from a board profile: see [`V4l2Settings::size_is_preference`].
    pub size_is_preference: bool,
    /// `fps` came from a board profile.
    pub fps_is_preference: bool,
}

impl V4l2Settings {
    /// Checks the raw values; the error names the key (as written in `[source]`) and what is
    /// accepted.
    pub fn check(raw: &RawV4l2<'_>) -> Result<V4l2Settings, Invalid> {
        let (width, height) = crate::setting::picture_size(raw.width, raw.height)?;
        let pixel_format = match raw.pixel_format {
            None => None,
            Some(s) => Some(FourCc::parse(s).ok_or_else(|| {
                Invalid::new(
                    "pixel_format",
                    format!("{s:?}: expected a four-character code such as \"NV12\", \"YU12\" or \"YUYV\""),
                )
            })?),
        };
        let bitrate_bps = match raw.bitrate_kbps {
            Some(k) if !(25..=25_000).contains(&k) => {
                return Err(Invalid::new(
                    "bitrate_kbps",
                    format!("{k} is out of range: expected 25 to 25000 (the Pi encoder's range)"),
                ))
            }
            other => other.map(|k| k * 1000),
        };
        let bitrate_mode = match raw.bitrate_mode.map(str::to_ascii_lowercase).as_deref() {
            None => None,
            Some("vbr") => Some(BitrateMode::Vbr),
            Some("cbr") => Some(BitrateMode::Cbr),
            Some(other) => {
                return Err(Invalid::new(
                    "bitrate_mode",
                    format!("{other:?}: expected \"cbr\" or \"vbr\""),
                ))
            }
        };
        let gop = match raw.gop {
            Some(g) if !(1..=1000).contains(&g) => {
                return Err(Invalid::new(
                    "gop",
                    format!("{g} is out of range: expected 1 to 1000 frames"),
                ))
            }
            other => other,
        };
        let menu = |v: Option<&str>, key: &'static str, table: &[(&str, i32)]| match v {
            None => Ok(None),
            Some(s) => table
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(s))
                .map(|(_, i)| Some(*i))
                .ok_or_else(|| {
                    let names: Vec<&str> = table.iter().map(|(n, _)| *n).collect();
                    Invalid::new(key, format!("{s:?}: expected one of {}", names.join(", ")))
                }),
        };
        Ok(V4l2Settings {
            width,
            height,
            fps: raw.fps,
            pixel_format,
            bitrate_bps,
            bitrate_mode,
            gop,
            profile: menu(raw.profile, "profile", H264_PROFILES)?,
            level: menu(raw.level, "level", H264_LEVELS)?,
            repeat_sequence_header: raw.repeat_sequence_header.unwrap_or(false),
            size_is_preference: raw.size_is_preference && width.is_some(),
            fps_is_preference: raw.fps_is_preference && raw.fps.is_some(),
        })
    }

    /// One line for `check-config` and the start-up log; empty when nothing is set.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        let nearest = |yes: bool| if yes { " or the nearest offered" } else { "" };
        if let (Some(w), Some(h)) = (self.width, self.height) {
            parts.push(format!(
                "size = {w}x{h}{}",
                nearest(self.size_is_preference)
            ));
        }
        if let (Some(f), true) = (self.fps, self.fps_is_preference) {
            parts.push(format!("fps = {f}{}", nearest(true)));
        }
        if let Some(f) = self.pixel_format {
            parts.push(format!("pixel_format = {f}"));
        }
        if let Some(b) = self.bitrate_bps {
            parts.push(format!("bitrate = {} kbit/s", b / 1000));
        }
        if let Some(m) = self.bitrate_mode {
            parts.push(format!("bitrate_mode = {m:?}").to_lowercase());
        }
        if let Some(g) = self.gop {
            parts.push(format!("gop = {g}"));
        }
        let name = |table: &[(&str, i32)], v: i32| {
            table
                .iter()
                .find(|(_, i)| *i == v)
                .map_or("?".to_string(), |(n, _)| n.to_string())
        };
        if let Some(p) = self.profile {
            parts.push(format!("profile = {}", name(H264_PROFILES, p)));
        }
        if let Some(l) = self.level {
            parts.push(format!("level = {}", name(H264_LEVELS, l)));
        }
        if self.repeat_sequence_header {
            parts.push("repeat_sequence_header = true".into());
        }
        parts.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_accept_names_and_reject_out_of_range_values_by_key() {
        let s = V4l2Settings::check(&RawV4l2 {
            width: Some(1280),
            height: Some(720),
            pixel_format: Some("NV12"),
            bitrate_kbps: Some(2500),
            bitrate_mode: Some("CBR"),
            gop: Some(60),
            profile: Some("high"),
            level: Some("4.0"),
            ..RawV4l2::default()
        })
        .unwrap();
        assert_eq!(s.bitrate_bps, Some(2_500_000));
        assert_eq!(s.bitrate_mode, Some(BitrateMode::Cbr));
        assert_eq!((s.profile, s.level), (Some(4), Some(11)));
        assert!(!s.repeat_sequence_header, "off unless asked for");
        assert_eq!(
            s.describe(),
            "size = 1280x720, pixel_format = NV12, bitrate = 2500 kbit/s, bitrate_mode = cbr, \
             gop = 60, profile = high, level = 4.0"
        );
        for (raw, key, needle) in [
            (
                RawV4l2 {
                    width: Some(1280),
                    ..RawV4l2::default()
                },
                "width",
                "go together",
            ),
            (
                RawV4l2 {
                    width: Some(8),
                    height: Some(8),
                    ..RawV4l2::default()
                },
                "width",
                "out of range",
            ),
            (
                RawV4l2 {
                    pixel_format: Some("NV12X"),
                    ..RawV4l2::default()
                },
                "pixel_format",
                "four-character code",
            ),
            (
                RawV4l2 {
                    bitrate_kbps: Some(90_000),
                    ..RawV4l2::default()
                },
                "bitrate_kbps",
                "25 to 25000",
            ),
            (
                RawV4l2 {
                    bitrate_mode: Some("abr"),
                    ..RawV4l2::default()
                },
                "bitrate_mode",
                "\"cbr\"",
            ),
            (
                RawV4l2 {
                    gop: Some(0),
                    ..RawV4l2::default()
                },
                "gop",
                "1 to 1000 frames",
            ),
            (
                RawV4l2 {
                    profile: Some("high10"),
                    ..RawV4l2::default()
                },
                "profile",
                "baseline",
            ),
            (
                RawV4l2 {
                    level: Some("6.2"),
                    ..RawV4l2::default()
                },
                "level",
                "4.1",
            ),
        ] {
            let e = V4l2Settings::check(&raw).unwrap_err();
            assert_eq!(e.key, key, "{e}");
            assert!(e.message.contains(needle), "{needle}: {e}");
        }
    }

    #[test]
    fn io_errors_of_a_vanishing_device_are_transient_and_the_rest_are_not() {
        let p = Path::new("/dev/video0");
        for errno in [libc::ENOENT, libc::ENODEV, libc::EBUSY, libc::EIO] {
            let e = V4l2Error::from_io(p, "open", &io::Error::from_raw_os_error(errno));
            assert!(matches!(e, V4l2Error::Unavailable(_)), "{e}");
        }
        let e = V4l2Error::from_io(p, "S_FMT", &io::Error::from_raw_os_error(libc::EINVAL));
        assert!(matches!(e, V4l2Error::Unsupported(_)));
        assert!(e.to_string().starts_with("/dev/video0: S_FMT: "), "{e}");
    }
}
