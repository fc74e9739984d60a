//! Sources of H.264 access units: one interface for a file, stdin, and V4L2 devices.
//!
//! Owns: the [`Source`] trait and the [`SourceSpec`] syntax users type (`auto`, `rpicam[:N]`,
//! `file:PATH`, `stdin`, `v4l2:DEVICE`, `v4l2-m2m:CAPTURE[,ENCODER]`). Capture timestamps are on
//! [`crate::clock`]. The sources: [`file`](mod@file), [`stdin`], [`v4l2`] (both V4L2 forms), [`rpicam`]
//! (the libcamera camera app as a supervised child) and [`auto`] (finds the camera, then runs
//! one of the others); [`settings`] is their `[source]` section.
//!
//! Contract of a source: each call to [`Source::next_access_unit`] writes exactly one access unit
//! (Annex B bytes, start codes included) into the pool slot it is given and returns its capture
//! time on `CLOCK_MONOTONIC` in microseconds. It may block (that is why sources run on their own
//! thread), never allocates per frame, and returns `Ok(None)` only at a clean end of input.
//! A source that can produce a keyframe on demand does so when asked (`request_keyframe`).
//!
//! Adaptive bitrate (`crate::bitrate`, run by `ingest`): a source whose encoder takes a new
//! bitrate while streaming says so ([`Source::adjustable_bitrate`]) and takes it
//! ([`Source::set_bitrate`]): the `v4l2-m2m` encoder (`V4L2_CID_MPEG_VIDEO_BITRATE` on the
//! encoder's own descriptor) and a `v4l2:` H.264 camera that lists that control. `rpicam` cannot:
//! the camera app's encoder is set once on its command line and has no runtime control; files
//! and pipes carry what they carry.

pub mod arrival;
pub mod auto;
pub mod bytestream;
pub mod file;
pub mod into_slot;
pub mod rpicam;
pub mod settings;
pub mod stdin;
pub mod v4l2;

use std::path::PathBuf;

use crate::pool::FrameMut;

/// What a source reports with each access unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capture {
    /// Capture time on the monotonic clock, microseconds.
    pub timestamp_us: u64,
}

/// Errors of the source layer. Their kind decides the exit code and the retry policy.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot open {what}: {source}")]
    Open {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("reading {what}: {source}")]
    Read {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what}: an access unit exceeds {limit} bytes; this is not an H.264 byte stream")]
    AccessUnitTooLarge { what: String, limit: usize },
    #[error("{what}: no H.264 start code found in the input; expected an Annex B byte stream")]
    NotAnnexB { what: String },
    #[error("source {0:?} is not supported by this build")]
    Unsupported(String),
    /// The device cannot do what the configuration asks; the message lists what it can.
    #[error("{0}")]
    Device(String),
    /// A source asked to hand back control on loss ([`auto`]) lost its device or program and
    /// waited out its backoff: its owner may look for the camera again, then read it again.
    #[error("{0}")]
    Lost(String),
}

/// A producer of H.264 access units.
pub trait Source: Send {
    /// Blocks until the next access unit is written into `frame`; `Ok(None)` at a clean end.
    fn next_access_unit(&mut self, frame: &mut FrameMut) -> Result<Option<Capture>, SourceError>;

    /// Where the NAL units of the access unit last written begin (the position of each header
    /// byte, just after its start code), counted from the unit's first byte (after the slot's
    /// room), when the source split the stream itself and found them: the ingest then does not
    /// search the bytes again. `None` (the default): it searches.
    fn nal_starts(&self) -> Option<&[u32]> {
        None
    }

    /// Asks for the next access unit to be an IDR picture. Sources that cannot honour it ignore
    /// it; the publisher then waits for the next natural keyframe.
    fn request_keyframe(&mut self) {}

    /// The largest access unit this source expects, used to size the pool's slots.
    fn frame_capacity_hint(&self) -> usize {
        512 * 1024
    }

    /// Bytes of input that were not part of any access unit (garbage, truncated data).
    fn skipped_bytes(&self) -> u64 {
        0
    }

    /// The encoder's target bitrate in bit/s when this source can change it while streaming
    /// ([`Self::set_bitrate`]); `None`: it cannot (the default).
    fn adjustable_bitrate(&self) -> Option<u32> {
        None
    }

    /// Sets the encoder's target bitrate, bit/s, while streaming; `false`: not supported, or
    /// the device refused it. Called only on a change (not per frame).
    fn set_bitrate(&mut self, _bps: u32) -> bool {
        false
    }
}

/// A source as the user names it on the command line or in the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceSpec {
    /// Whatever camera this board has: see [`auto`].
    Auto,
    /// Camera N as libcamera's camera app lists it (`rpicam-vid`, else `libcamera-vid`).
    Rpicam(u32),
    File(PathBuf),
    Stdin,
    V4l2(PathBuf),
    V4l2M2m {
        capture: PathBuf,
        encoder: Option<PathBuf>,
    },
}

impl SourceSpec {
    /// The forms, as error messages list them.
    pub const FORMS: &'static str =
        "auto, rpicam[:N], file:PATH, stdin, v4l2:DEVICE, v4l2-m2m:CAPTURE[,ENCODER]";

    /// Parses `auto | rpicam[:N] | file:PATH | stdin | v4l2:DEVICE | v4l2-m2m:CAPTURE[,ENCODER]`.
    pub fn parse(s: &str) -> Result<SourceSpec, String> {
        let nonempty = |rest: &str, what: &str| {
            if rest.is_empty() {
                Err(format!("source {s:?}: {what} is missing"))
            } else {
                Ok(PathBuf::from(rest))
            }
        };
        if s == "auto" {
            Ok(SourceSpec::Auto)
        } else if let Some(camera) = rpicam::parse_spec(s) {
            camera.map(SourceSpec::Rpicam)
        } else if s == "stdin" || s == "-" {
            Ok(SourceSpec::Stdin)
        } else if let Some(rest) = s.strip_prefix("file:") {
            Ok(SourceSpec::File(nonempty(rest, "the file path")?))
        } else if let Some(rest) = s.strip_prefix("v4l2-m2m:") {
            let (capture, encoder) = match rest.split_once(',') {
                Some((c, e)) => (c, Some(nonempty(e, "the encoder device")?)),
                None => (rest, None),
            };
            Ok(SourceSpec::V4l2M2m {
                capture: nonempty(capture, "the capture device")?,
                encoder,
            })
        } else if let Some(rest) = s.strip_prefix("v4l2:") {
            Ok(SourceSpec::V4l2(nonempty(rest, "the device path")?))
        } else {
            Err(format!("source {s:?} is not one of {}", SourceSpec::FORMS))
        }
    }
}

impl std::fmt::Display for SourceSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SourceSpec::Auto => f.write_str("auto"),
            SourceSpec::Rpicam(n) => write!(f, "rpicam:{n}"),
            SourceSpec::File(p) => write!(f, "file:{}", p.display()),
            SourceSpec::Stdin => f.write_str("stdin"),
            SourceSpec::V4l2(p) => write!(f, "v4l2:{}", p.display()),
            SourceSpec::V4l2M2m { capture, encoder } => {
                write!(f, "v4l2-m2m:{}", capture.display())?;
                if let Some(e) = encoder {
                    write!(f, ",{}", e.display())?;
                }
                Ok(())
            }
        }
    }
}

/// The frame rate announced by the SPS VUI timing info of `unit`, if it carries an SPS with one.
/// Parses once per call (may allocate): for start-up only.
pub fn fps_from_sps(unit: &[u8]) -> Option<f64> {
    let mut params = crate::h264::ParamSets::new();
    params.observe(unit).ok()?;
    params
        .info()?
        .fps
        .filter(|f| f.is_finite() && *f > 0.0 && *f <= 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_documented_source_form() {
        let table: &[(&str, SourceSpec)] = &[
            ("auto", SourceSpec::Auto),
            ("rpicam", SourceSpec::Rpicam(0)),
            ("rpicam:2", SourceSpec::Rpicam(2)),
            ("stdin", SourceSpec::Stdin),
            ("file:clip.h264", SourceSpec::File("clip.h264".into())),
            ("file:/a:b.h264", SourceSpec::File("/a:b.h264".into())),
            ("v4l2:/dev/video0", SourceSpec::V4l2("/dev/video0".into())),
            (
                "v4l2-m2m:/dev/video0",
                SourceSpec::V4l2M2m {
                    capture: "/dev/video0".into(),
                    encoder: None,
                },
            ),
            (
                "v4l2-m2m:/dev/video0,/dev/video11",
                SourceSpec::V4l2M2m {
                    capture: "/dev/video0".into(),
                    encoder: Some("/dev/video11".into()),
                },
            ),
        ];
        for (text, spec) in table {
            assert_eq!(&SourceSpec::parse(text).unwrap(), spec, "{text}");
            assert_eq!(&SourceSpec::parse(&spec.to_string()).unwrap(), spec);
        }
    }

    #[test]
    fn rejects_unknown_or_empty_sources_with_the_accepted_forms() {
        for bad in [
            "",
            "file:",
            "v4l2:",
            "camera",
            "v4l2-m2m:,/dev/video11",
            "rpicam:",
            "rpicam:x",
            "Auto ",
        ] {
            let err = SourceSpec::parse(bad).unwrap_err();
            assert!(err.contains("source"), "{bad}: {err}");
        }
        assert!(SourceSpec::parse("http://x")
            .unwrap_err()
            .contains("auto, rpicam[:N], file:PATH, stdin"));
    }
}
