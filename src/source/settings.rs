//! `[source]` of the configuration file, checked: what to stream, at which rate, and the device
//! settings of a V4L2 source.
//!
//! Owns: the section's keys ([`RawSource`], as written) and their rules ([`SourceSettings::check`]):
//! the spec syntax, the frame rate range, `loop` for files only, and which device keys apply to
//! which source (`width`/`height`/`fps`/`bitrate_kbps` to V4L2 sources, the encoder keys to
//! `v4l2-m2m:` only). The device values themselves are checked by [`V4l2Settings::check`].
//! A board profile's spec is put under the user's keys by `config` before this check runs.

use serde::Deserialize;

use super::SourceSpec;
use crate::setting::Invalid;
use crate::v4l2::{RawV4l2, V4l2Settings};

/// `[source]` as written.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSource {
    /// `file:PATH`, `stdin`, `v4l2:DEVICE`, `v4l2-m2m:CAPTURE[,ENCODER]`.
    pub spec: Option<String>,
    pub fps: Option<f64>,
    #[serde(rename = "loop")]
    pub looping: Option<bool>,
    pub pace: Option<bool>,
    /// Announced in onMetaData, and the encoder's target bit rate (`v4l2-m2m`).
    pub bitrate_kbps: Option<u32>,
    // V4L2 sources (see `v4l2::V4l2Settings`): capture size, raw format, encoder controls.
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub pixel_format: Option<String>,
    pub bitrate_mode: Option<String>,
    pub gop: Option<u32>,
    pub profile: Option<String>,
    pub level: Option<String>,
    pub repeat_sequence_header: Option<bool>,
}

/// `[source]`, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceSettings {
    pub spec: SourceSpec,
    /// The frame rate asked for; `None`: the stream's own (SPS), else 30.
    pub fps: Option<f64>,
    pub looping: bool,
    pub pace: bool,
    pub bitrate_kbps: Option<u32>,
    /// Device settings of `v4l2:` and `v4l2-m2m:` sources.
    pub v4l2: V4l2Settings,
}

/// The device keys that only an encoder (`v4l2-m2m:`) has.
const ENCODER_ONLY: [&str; 6] = [
    "pixel_format",
    "bitrate_mode",
    "gop",
    "profile",
    "level",
    "repeat_sequence_header",
];

impl SourceSettings {
    /// Checks `[source]`; the error names the key and what is accepted.
    pub fn check(raw: &RawSource) -> Result<SourceSettings, Invalid> {
        let Some(spec) = &raw.spec else {
            return Err(Invalid::new(
                "spec",
                "no source: set [source] spec = \"file:PATH\" | \"stdin\" | ... (or --source)",
            ));
        };
        let spec = SourceSpec::parse(spec).map_err(|m| Invalid::new("spec", m))?;
        let fps = match raw.fps {
            Some(f) if !(f.is_finite() && f > 0.0 && f <= 240.0) => {
                return Err(Invalid::new(
                    "fps",
                    format!("{f} is out of range: expected a frame rate above 0, at most 240"),
                ));
            }
            other => other,
        };
        let looping = raw.looping.unwrap_or(false);
        if looping && !matches!(spec, SourceSpec::File(_)) {
            return Err(Invalid::new("loop", "applies only to a file: source"));
        }
        let v4l2 = check_device(raw, &spec)?;
        Ok(SourceSettings {
            spec,
            fps,
            looping,
            pace: raw.pace.unwrap_or(true),
            bitrate_kbps: raw.bitrate_kbps,
            v4l2,
        })
    }
}

/// The V4L2 device keys: checked by `v4l2::V4l2Settings`, and refused by name for sources that
/// have no such device.
fn check_device(s: &RawSource, spec: &SourceSpec) -> Result<V4l2Settings, Invalid> {
    let device_keys = [
        ("width", s.width.is_some()),
        ("pixel_format", s.pixel_format.is_some()),
        ("bitrate_mode", s.bitrate_mode.is_some()),
        ("gop", s.gop.is_some()),
        ("profile", s.profile.is_some()),
        ("level", s.level.is_some()),
        ("repeat_sequence_header", s.repeat_sequence_header.is_some()),
    ];
    for (key, set) in device_keys {
        let applies = match spec {
            SourceSpec::V4l2M2m { .. } => true,
            SourceSpec::V4l2(_) => !ENCODER_ONLY.contains(&key),
            _ => false,
        };
        if set && !applies {
            return Err(Invalid::new(
                key,
                format!(
                    "does not apply to source {spec} (it is for {})",
                    if ENCODER_ONLY.contains(&key) {
                        "v4l2-m2m: sources"
                    } else {
                        "v4l2: and v4l2-m2m: sources"
                    }
                ),
            ));
        }
    }
    V4l2Settings::check(&RawV4l2 {
        width: s.width,
        height: s.height,
        fps: s.fps,
        pixel_format: s.pixel_format.as_deref(),
        bitrate_kbps: s.bitrate_kbps,
        bitrate_mode: s.bitrate_mode.as_deref(),
        gop: s.gop,
        profile: s.profile.as_deref(),
        level: s.level.as_deref(),
        repeat_sequence_header: s.repeat_sequence_header,
    })
}
