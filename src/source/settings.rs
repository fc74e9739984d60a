//! `[source]` of the configuration file, checked: what to stream, at which rate, and the
//! settings of the camera behind it.
//!
//! Owns: the section's keys ([`RawSource`], as written), which key applies to which kind of
//! source ([`KEYS`]: a key set for a source it does not apply to is refused by name), the
//! defaults a board profile puts under the user's keys ([`SourceDefaults`]) and their rules
//! ([`SourceSettings::check_under`]). The values themselves are checked by the stage that uses
//! them: [`V4l2Settings::check`] for `v4l2:` and `v4l2-m2m:`, [`RpicamSettings::check`] for
//! `rpicam`; `auto` may become either, so both check its values (a value must suit both).
//!
//! Board defaults (spec, width, height, fps, bitrate, gop) fill every key the file leaves out,
//! where the key applies to the source: a file or pipe has its own timing and gets none; a
//! `v4l2:` camera gets no `gop` (it has no encoder campush controls). For a V4L2 device a
//! board's size and rate are a preference: a camera that does not offer them gets the nearest
//! it does ([`V4l2Settings::size_is_preference`]), where the same values set in the file are
//! demands (an error lists what the device offers). The camera app scales to any size, so
//! `rpicam` takes them as they are.

use std::path::PathBuf;

use serde::Deserialize;

use super::rpicam::{LensPosition, RawRpicam, RpicamSettings};
use super::SourceSpec;
use crate::setting::Invalid;
use crate::v4l2::{RawV4l2, V4l2Settings};

/// `[source]` as written.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSource {
    /// `auto`, `rpicam[:N]`, `file:PATH`, `stdin`, `v4l2:DEVICE`, `v4l2-m2m:CAPTURE[,ENCODER]`.
    pub spec: Option<String>,
    pub fps: Option<f64>,
    #[serde(rename = "loop")]
    pub looping: Option<bool>,
    pub pace: Option<bool>,
    /// Announced in onMetaData, and the encoder's target bit rate (`v4l2-m2m`, `rpicam`).
    pub bitrate_kbps: Option<u32>,
    /// Lower the encoder's bitrate while the slowest destination falls behind, and raise it
    /// again up to `bitrate_kbps` (default: on where the encoder allows it).
    pub adaptive_bitrate: Option<bool>,
    /// The adaptive bitrate's floor (default: a quarter of `bitrate_kbps`, at least 25; 500
    /// without `bitrate_kbps`).
    pub bitrate_min_kbps: Option<u32>,
    // Camera and encoder: V4L2 (see `v4l2::V4l2Settings`) and the camera app (see
    // `rpicam::RpicamSettings`).
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub pixel_format: Option<String>,
    pub bitrate_mode: Option<String>,
    pub gop: Option<u32>,
    pub profile: Option<String>,
    pub level: Option<String>,
    pub repeat_sequence_header: Option<bool>,
    // The camera app only.
    pub hflip: Option<bool>,
    pub vflip: Option<bool>,
    pub rotation: Option<i64>,
    pub autofocus_mode: Option<String>,
    pub lens_position: Option<RawLensPosition>,
    pub denoise: Option<String>,
    pub exposure: Option<String>,
    pub awb: Option<String>,
    pub stall_timeout_s: Option<f64>,
    pub rpicam_args: Option<Vec<String>>,
}

/// `lens_position` as written: dioptres, or a word (`"default"`; others are refused by the
/// check, by key).
#[derive(Debug, Clone, PartialEq)]
pub enum RawLensPosition {
    Dioptres(f64),
    Word(String),
}

impl<'de> Deserialize<'de> for RawLensPosition {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = RawLensPosition;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a number of dioptres or \"default\"")
            }
            fn visit_f64<E>(self, v: f64) -> Result<RawLensPosition, E> {
                Ok(RawLensPosition::Dioptres(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<RawLensPosition, E> {
                Ok(RawLensPosition::Dioptres(v as f64))
            }
            fn visit_u64<E>(self, v: u64) -> Result<RawLensPosition, E> {
                Ok(RawLensPosition::Dioptres(v as f64))
            }
            fn visit_str<E>(self, v: &str) -> Result<RawLensPosition, E> {
                Ok(RawLensPosition::Word(v.to_owned()))
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// What a board profile declares for the source; each value fills the key the file leaves out,
/// where it applies.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SourceDefaults {
    pub spec: Option<String>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub fps: Option<f64>,
    pub bitrate_kbps: Option<u32>,
    pub gop: Option<u32>,
    /// The board's H.264 encoder, for `auto`'s raw-camera route.
    pub encoder: Option<PathBuf>,
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
    /// The adaptive bitrate's floor, kbit/s; `None`: no adaptive bitrate.
    pub adaptive_floor_kbps: Option<u32>,
    /// Device settings of `v4l2:`, `v4l2-m2m:` and `auto` sources.
    pub v4l2: V4l2Settings,
    /// Camera app settings of `rpicam` and `auto` sources.
    pub rpicam: RpicamSettings,
    /// The encoder `auto` puts a raw camera through (the board's); `None`: the first found.
    pub encoder: Option<PathBuf>,
}

/// The kinds of source, as [`KEYS`] names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Stdin,
    V4l2,
    V4l2M2m,
    Rpicam,
    Auto,
}

impl Kind {
    pub fn of(spec: &SourceSpec) -> Kind {
        match spec {
            SourceSpec::File(_) => Kind::File,
            SourceSpec::Stdin => Kind::Stdin,
            SourceSpec::V4l2(_) => Kind::V4l2,
            SourceSpec::V4l2M2m { .. } => Kind::V4l2M2m,
            SourceSpec::Rpicam(_) => Kind::Rpicam,
            SourceSpec::Auto => Kind::Auto,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::File => "file:",
            Kind::Stdin => "stdin",
            Kind::V4l2 => "v4l2:",
            Kind::V4l2M2m => "v4l2-m2m:",
            Kind::Rpicam => "rpicam",
            Kind::Auto => "auto",
        }
    }

    /// A camera: board defaults apply.
    fn is_camera(self) -> bool {
        !matches!(self, Kind::File | Kind::Stdin)
    }
}

const CAMERAS: &[Kind] = &[Kind::V4l2, Kind::V4l2M2m, Kind::Rpicam, Kind::Auto];
const ENCODERS: &[Kind] = &[Kind::V4l2M2m, Kind::Rpicam, Kind::Auto];
const M2M: &[Kind] = &[Kind::V4l2M2m, Kind::Auto];
const APP: &[Kind] = &[Kind::Rpicam, Kind::Auto];
/// The sources whose encoder may take a new bitrate while streaming (a `v4l2:` camera only if
/// it lists the control; `auto` only on its V4L2 route): see `source`'s module documentation.
const ADAPTIVE: &[Kind] = &[Kind::V4l2, Kind::V4l2M2m, Kind::Auto];

/// The lowest `bitrate_min_kbps`: below this an encoder makes mush, or freezes.
pub const MIN_FLOOR_KBPS: u32 = 25;

/// The device keys and the sources they apply to (`spec`, `fps`, `pace`, `bitrate_kbps` apply
/// to every source; `loop` to files only).
pub const KEYS: &[(&str, &[Kind])] = &[
    ("width", CAMERAS),
    ("height", CAMERAS),
    ("pixel_format", M2M),
    ("bitrate_mode", M2M),
    ("repeat_sequence_header", M2M),
    ("gop", ENCODERS),
    ("profile", ENCODERS),
    ("level", ENCODERS),
    ("hflip", APP),
    ("vflip", APP),
    ("rotation", APP),
    ("autofocus_mode", APP),
    ("lens_position", APP),
    ("denoise", APP),
    ("exposure", APP),
    ("awb", APP),
    ("stall_timeout_s", APP),
    ("rpicam_args", APP),
    ("bitrate_min_kbps", ADAPTIVE),
];

fn applies(key: &str, kind: Kind) -> bool {
    KEYS.iter()
        .find(|(k, _)| *k == key)
        .is_none_or(|(_, kinds)| kinds.contains(&kind))
}

impl RawSource {
    /// Which device keys are set, by name.
    fn device_keys_set(&self) -> Vec<&'static str> {
        let set = [
            self.width.is_some(),
            self.height.is_some(),
            self.pixel_format.is_some(),
            self.bitrate_mode.is_some(),
            self.repeat_sequence_header.is_some(),
            self.gop.is_some(),
            self.profile.is_some(),
            self.level.is_some(),
            self.hflip.is_some(),
            self.vflip.is_some(),
            self.rotation.is_some(),
            self.autofocus_mode.is_some(),
            self.lens_position.is_some(),
            self.denoise.is_some(),
            self.exposure.is_some(),
            self.awb.is_some(),
            self.stall_timeout_s.is_some(),
            self.rpicam_args.is_some(),
            self.bitrate_min_kbps.is_some(),
        ];
        KEYS.iter()
            .zip(set)
            .filter(|(_, s)| *s)
            .map(|((k, _), _)| *k)
            .collect()
    }
}

impl SourceSettings {
    /// Checks `[source]` on its own; the error names the key and what is accepted.
    pub fn check(raw: &RawSource) -> Result<SourceSettings, Invalid> {
        Self::check_under(raw, &SourceDefaults::default())
    }

    /// Checks `[source]` with a board's `defaults` under it (see the module documentation).
    pub fn check_under(
        raw: &RawSource,
        defaults: &SourceDefaults,
    ) -> Result<SourceSettings, Invalid> {
        let Some(spec) = raw.spec.as_ref().or(defaults.spec.as_ref()) else {
            return Err(Invalid::new(
                "spec",
                "no source: set [source] spec = \"auto\" | \"rpicam\" | \"v4l2:DEVICE\" | \
                 \"file:PATH\" | \"stdin\" | ... (or --source), or a board",
            ));
        };
        let spec = SourceSpec::parse(spec).map_err(|m| Invalid::new("spec", m))?;
        let kind = Kind::of(&spec);
        if let Some(f) = raw.fps {
            if !(f.is_finite() && f > 0.0 && f <= 240.0) {
                return Err(Invalid::new(
                    "fps",
                    format!("{f} is out of range: expected a frame rate above 0, at most 240"),
                ));
            }
        }
        let looping = raw.looping.unwrap_or(false);
        if looping && kind != Kind::File {
            return Err(Invalid::new("loop", "applies only to a file: source"));
        }
        for key in raw.device_keys_set() {
            if !applies(key, kind) {
                return Err(refused(key, &spec));
            }
        }

        // The board's defaults, where the file is silent and the key applies.
        let camera = kind.is_camera();
        let board_size = camera && raw.width.is_none() && raw.height.is_none();
        let (width, height) = if board_size {
            (defaults.width, defaults.height)
        } else {
            (raw.width, raw.height)
        };
        let board_fps = camera && raw.fps.is_none() && defaults.fps.is_some();
        let fps = if board_fps { defaults.fps } else { raw.fps };
        let bitrate_kbps = raw
            .bitrate_kbps
            .or(defaults.bitrate_kbps.filter(|_| camera));
        let gop = raw
            .gop
            .or(defaults.gop.filter(|_| applies("gop", kind) && camera));
        let adaptive_floor_kbps = adaptive_floor(raw, kind, bitrate_kbps)?;

        let v4l2 = match kind {
            Kind::V4l2 | Kind::V4l2M2m | Kind::Auto => V4l2Settings::check(&RawV4l2 {
                width,
                height,
                fps,
                pixel_format: raw.pixel_format.as_deref(),
                bitrate_kbps,
                bitrate_mode: raw.bitrate_mode.as_deref(),
                gop,
                profile: raw.profile.as_deref(),
                level: raw.level.as_deref(),
                repeat_sequence_header: raw.repeat_sequence_header,
                size_is_preference: board_size && width.is_some(),
                fps_is_preference: board_fps,
            })?,
            _ => V4l2Settings::default(),
        };
        let rpicam = match (kind, &spec) {
            (Kind::Rpicam | Kind::Auto, _) => {
                let lens_position = match &raw.lens_position {
                    None => None,
                    Some(RawLensPosition::Dioptres(d)) => Some(LensPosition::Dioptres(*d)),
                    Some(RawLensPosition::Word(w)) if w.eq_ignore_ascii_case("default") => {
                        Some(LensPosition::Default)
                    }
                    Some(RawLensPosition::Word(w)) => {
                        return Err(Invalid::new(
                            "lens_position",
                            format!("{w:?}: expected dioptres (a number) or \"default\""),
                        ))
                    }
                };
                RpicamSettings::check(&RawRpicam {
                    camera: match spec {
                        SourceSpec::Rpicam(n) => Some(n),
                        _ => None,
                    },
                    width,
                    height,
                    fps,
                    bitrate_kbps,
                    gop,
                    profile: raw.profile.as_deref(),
                    level: raw.level.as_deref(),
                    hflip: raw.hflip,
                    vflip: raw.vflip,
                    rotation: raw.rotation,
                    autofocus_mode: raw.autofocus_mode.as_deref(),
                    lens_position,
                    denoise: raw.denoise.as_deref(),
                    exposure: raw.exposure.as_deref(),
                    awb: raw.awb.as_deref(),
                    stall_timeout_s: raw.stall_timeout_s,
                    rpicam_args: raw.rpicam_args.as_deref().unwrap_or_default(),
                })?
            }
            _ => RpicamSettings::default(),
        };
        Ok(SourceSettings {
            spec,
            fps,
            looping,
            pace: raw.pace.unwrap_or(true),
            bitrate_kbps,
            adaptive_floor_kbps,
            v4l2,
            rpicam,
            encoder: defaults.encoder.clone().filter(|_| kind == Kind::Auto),
        })
    }
}

/// `adaptive_bitrate` and `bitrate_min_kbps`: the floor when the adaptive bitrate is on.
fn adaptive_floor(
    raw: &RawSource,
    kind: Kind,
    bitrate_kbps: Option<u32>,
) -> Result<Option<u32>, Invalid> {
    let supported = ADAPTIVE.contains(&kind);
    match raw.adaptive_bitrate {
        Some(true) if !supported => {
            return Err(Invalid::new(
                "adaptive_bitrate",
                format!(
                    "{} has no encoder that takes a bitrate while streaming (the camera app's \
                     is set once on its command line); it applies to v4l2-m2m:, v4l2: and auto",
                    kind.name()
                ),
            ))
        }
        Some(false) if raw.bitrate_min_kbps.is_some() => {
            return Err(Invalid::new(
                "bitrate_min_kbps",
                "has no effect with adaptive_bitrate = false",
            ))
        }
        Some(false) => return Ok(None),
        _ if !supported => return Ok(None),
        _ => {}
    }
    let Some(floor) = raw.bitrate_min_kbps else {
        // The controller also keeps the floor at most the encoder's own bitrate.
        let quarter = bitrate_kbps.map(|b| (b / 4).max(MIN_FLOOR_KBPS).min(b));
        return Ok(Some(quarter.unwrap_or(500)));
    };
    if floor < MIN_FLOOR_KBPS {
        return Err(Invalid::new(
            "bitrate_min_kbps",
            format!("{floor} is too low: expected at least {MIN_FLOOR_KBPS}"),
        ));
    }
    if let Some(b) = bitrate_kbps.filter(|b| floor > *b) {
        return Err(Invalid::new(
            "bitrate_min_kbps",
            format!("{floor} is above bitrate_kbps ({b}): the floor is at most the bitrate"),
        ));
    }
    Ok(Some(floor))
}

/// `key` is set for a source it does not apply to.
fn refused(key: &'static str, spec: &SourceSpec) -> Invalid {
    let kinds = KEYS
        .iter()
        .find(|(k, _)| *k == key)
        .map_or(&[][..], |(_, kinds)| *kinds);
    let names: Vec<&str> = kinds.iter().map(|k| k.name()).collect();
    let list = match names.split_last() {
        Some((last, [])) => last.to_string(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
        None => String::new(),
    };
    Invalid::new(
        key,
        format!("does not apply to source {spec} (it applies to {list} sources)"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(spec: &str) -> RawSource {
        RawSource {
            spec: Some(spec.into()),
            ..RawSource::default()
        }
    }

    fn board() -> SourceDefaults {
        SourceDefaults {
            spec: Some("auto".into()),
            width: Some(1920),
            height: Some(1080),
            fps: Some(30.0),
            bitrate_kbps: Some(4500),
            gop: Some(60),
            encoder: Some("/dev/video11".into()),
        }
    }

    #[test]
    fn camera_app_keys_reach_the_camera_app_settings() {
        let s = SourceSettings::check(&RawSource {
            width: Some(1280),
            height: Some(720),
            hflip: Some(true),
            rotation: Some(180),
            lens_position: Some(RawLensPosition::Word("default".into())),
            awb: Some("daylight".into()),
            stall_timeout_s: Some(8.0),
            rpicam_args: Some(vec!["--shutter".into(), "8000".into()]),
            ..raw("rpicam:1")
        })
        .unwrap();
        assert_eq!(s.spec, SourceSpec::Rpicam(1));
        let r = &s.rpicam;
        assert_eq!((r.camera, r.width, r.height), (1, Some(1280), Some(720)));
        assert!(r.hflip && r.rotate_180 && !r.vflip);
        assert_eq!(r.lens_position, Some(LensPosition::Default));
        assert_eq!(r.awb, Some("daylight"));
        assert_eq!(r.stall_timeout.as_secs_f64(), 8.0);
        assert_eq!(r.extra_args, ["--shutter", "8000"]);
        assert_eq!(s.v4l2, V4l2Settings::default(), "no V4L2 device");
    }

    #[test]
    fn a_key_set_for_a_source_it_does_not_apply_to_is_refused_by_name() {
        for (spec, key, set, applies_to) in [
            (
                "v4l2:/dev/video0",
                "hflip",
                RawSource {
                    hflip: Some(true),
                    ..RawSource::default()
                },
                "rpicam and auto",
            ),
            (
                "rpicam",
                "pixel_format",
                RawSource {
                    pixel_format: Some("NV12".into()),
                    ..RawSource::default()
                },
                "v4l2-m2m: and auto",
            ),
            (
                "stdin",
                "width",
                RawSource {
                    width: Some(640),
                    height: Some(480),
                    ..RawSource::default()
                },
                "v4l2:, v4l2-m2m:, rpicam and auto",
            ),
            (
                "v4l2:/dev/video0",
                "gop",
                RawSource {
                    gop: Some(30),
                    ..RawSource::default()
                },
                "v4l2-m2m:, rpicam and auto",
            ),
        ] {
            let e = SourceSettings::check(&RawSource {
                spec: Some(spec.into()),
                ..set
            })
            .unwrap_err();
            assert_eq!(e.key, key, "{e}");
            assert!(
                e.message
                    .contains(&format!("it applies to {applies_to} sources")),
                "{e}"
            );
        }
    }

    #[test]
    fn auto_takes_every_camera_key_and_its_values_must_suit_both_routes() {
        let s = SourceSettings::check(&RawSource {
            pixel_format: Some("YU12".into()),
            vflip: Some(true),
            profile: Some("main".into()),
            ..raw("auto")
        })
        .unwrap();
        assert!(s.rpicam.vflip);
        assert_eq!(s.rpicam.profile, Some("main"));
        assert_eq!(s.v4l2.profile, Some(2));
        let e = SourceSettings::check(&RawSource {
            level: Some("3.1".into()),
            ..raw("auto")
        })
        .unwrap_err();
        assert_eq!(e.key, "level", "rpicam-vid takes 4.0 to 4.2 only: {e}");
    }

    #[test]
    fn a_boards_defaults_fill_what_the_file_leaves_out_where_they_apply() {
        let s = SourceSettings::check_under(&RawSource::default(), &board()).unwrap();
        assert_eq!(s.spec, SourceSpec::Auto);
        assert_eq!((s.fps, s.bitrate_kbps), (Some(30.0), Some(4500)));
        assert_eq!(
            (s.rpicam.width, s.rpicam.height, s.rpicam.gop),
            (Some(1920), Some(1080), Some(60))
        );
        assert_eq!(s.rpicam.bitrate_bps, Some(4_500_000));
        assert_eq!((s.v4l2.width, s.v4l2.gop), (Some(1920), Some(60)));
        assert!(s.v4l2.size_is_preference && s.v4l2.fps_is_preference);
        assert_eq!(s.encoder, Some("/dev/video11".into()));

        // A UVC camera: size and rate as preferences, no GOP (it has no encoder of ours).
        let s = SourceSettings::check_under(&raw("v4l2:/dev/video2"), &board()).unwrap();
        assert_eq!((s.v4l2.width, s.v4l2.height), (Some(1920), Some(1080)));
        assert!(s.v4l2.size_is_preference);
        assert_eq!(s.v4l2.gop, None);
        assert_eq!(s.encoder, None);

        // The user's keys win, and are demands.
        let s = SourceSettings::check_under(
            &RawSource {
                width: Some(1280),
                height: Some(720),
                fps: Some(25.0),
                gop: Some(50),
                ..raw("v4l2-m2m:/dev/video0")
            },
            &board(),
        )
        .unwrap();
        assert_eq!(
            (s.v4l2.width, s.v4l2.fps, s.v4l2.gop),
            (Some(1280), Some(25.0), Some(50))
        );
        assert!(!s.v4l2.size_is_preference && !s.v4l2.fps_is_preference);
        assert_eq!(s.bitrate_kbps, Some(4500));

        // A file or a pipe has its own timing.
        let s = SourceSettings::check_under(&raw("stdin"), &board()).unwrap();
        assert_eq!((s.fps, s.bitrate_kbps), (None, None));
    }

    #[test]
    fn the_adaptive_bitrate_is_on_where_the_encoder_allows_it_with_a_quarter_as_floor() {
        let with = |spec: &str, kbps: Option<u32>| {
            SourceSettings::check(&RawSource {
                bitrate_kbps: kbps,
                ..raw(spec)
            })
            .unwrap()
            .adaptive_floor_kbps
        };
        assert_eq!(with("v4l2-m2m:/dev/video0", Some(4000)), Some(1000));
        assert_eq!(with("v4l2:/dev/video0", None), Some(500));
        assert_eq!(with("auto", Some(60)), Some(25), "at least 25");
        assert_eq!(with("rpicam", Some(4000)), None, "the camera app cannot");
        assert_eq!(with("file:a.h264", None), None);
        let off = RawSource {
            adaptive_bitrate: Some(false),
            ..raw("v4l2-m2m:/dev/video0")
        };
        assert_eq!(
            SourceSettings::check(&off).unwrap().adaptive_floor_kbps,
            None
        );
    }

    #[test]
    fn an_adaptive_bitrate_that_cannot_work_or_a_floor_out_of_range_is_refused_by_name() {
        let refused = |r: RawSource| SourceSettings::check(&r).unwrap_err();
        let e = refused(RawSource {
            adaptive_bitrate: Some(true),
            ..raw("rpicam")
        });
        assert_eq!(e.key, "adaptive_bitrate");
        assert!(e.message.contains("command line"), "{}", e.message);
        let e = refused(RawSource {
            bitrate_min_kbps: Some(10),
            ..raw("v4l2-m2m:/dev/video0")
        });
        assert_eq!(e.key, "bitrate_min_kbps");
        assert!(e.message.contains("at least 25"), "{}", e.message);
        let e = refused(RawSource {
            bitrate_kbps: Some(1000),
            bitrate_min_kbps: Some(1500),
            ..raw("v4l2-m2m:/dev/video0")
        });
        assert!(
            e.message.contains("above bitrate_kbps (1000)"),
            "{}",
            e.message
        );
        let e = refused(RawSource {
            bitrate_min_kbps: Some(300),
            ..raw("file:a.h264")
        });
        assert_eq!(e.key, "bitrate_min_kbps");
        let e = refused(RawSource {
            adaptive_bitrate: Some(false),
            bitrate_min_kbps: Some(300),
            ..raw("v4l2-m2m:/dev/video0")
        });
        assert!(e.message.contains("no effect"), "{}", e.message);
    }

    #[test]
    fn a_lens_position_is_dioptres_or_default() {
        let lens = |text: &str| {
            let raw: RawSource = toml::from_str(&format!("lens_position = {text}")).unwrap();
            SourceSettings::check(&RawSource {
                spec: Some("rpicam".into()),
                ..raw
            })
            .map(|s| s.rpicam.lens_position)
        };
        assert_eq!(lens("2").unwrap(), Some(LensPosition::Dioptres(2.0)));
        assert_eq!(lens("0.5").unwrap(), Some(LensPosition::Dioptres(0.5)));
        assert_eq!(lens("\"default\"").unwrap(), Some(LensPosition::Default));
        assert_eq!(lens("\"near\"").unwrap_err().key, "lens_position");
    }
}
