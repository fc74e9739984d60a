//! The `[source]` settings of an `rpicam` source, checked, and the camera app's command line.
//!
//! Owns: [`RawRpicam`] (the values as the configuration file has them), [`RpicamSettings`] (the
//! checked values), [`CameraApp`] (which program runs: `rpicam-vid`, else `libcamera-vid`, on
//! `PATH`) and [`RpicamSettings::argv`], a pure function from settings to arguments.
//!
//! Every option name and accepted value below is taken from rpicam-apps at commit
//! `9270b6013c4575dff2e0625c0f4b8ae750218b0f`:
//! - `core/options.cpp`: `--timeout` (a time string, default `5sec`; `0` = run forever),
//!   `--nopreview`, `--output` (`-` = stdout, `output/file_output.cpp`), `--camera`, `--width`,
//!   `--height`, `--framerate`, `--hflip`, `--vflip`, `--rotation` (0 or 180: the transform may
//!   not transpose), `--autofocus-mode` (default, manual, auto, continuous), `--lens-position`
//!   (dioptres, or `default`), `--denoise` (auto, off, cdn_off, cdn_fast, cdn_hq), `--exposure`
//!   (normal, sport, short, long, custom), `--awb` (auto, normal, incandescent, tungsten,
//!   fluorescent, indoor, daylight, cloudy, custom), `--flush`;
//! - `core/video_options.hpp`: `--codec` (default h264), `--inline` (SPS/PPS with every I-frame),
//!   `--bitrate` (bits per second when no unit is given), `--intra` (keyframe period; 0 leaves
//!   the encoder's default), `--profile`, `--level`, `--libav-format`;
//! - `encoder/h264_encoder.cpp` (the hardware encoder of Pi 0-4): profiles baseline, main, high;
//!   levels `4`, `4.1`, `4.2` only (note: `4`, not `4.0`);
//! - `encoder/encoder.cpp` + `output/output.cpp` + `encoder/libav_encoder.cpp` (Pi 5, no
//!   hardware encoder): `--codec h264` falls back to libx264 through libav, which writes the
//!   output itself; with `--output -` and no `--libav-format` it cannot pick a container and
//!   fails ("libav: cannot allocate output context, try setting with --libav-format"). So campush
//!   always passes `--libav-format h264` to `rpicam-vid` (ignored by the hardware path). libx264
//!   repeats SPS/PPS before each keyframe by itself, because the raw `h264` muxer does not ask
//!   for global headers; `--inline` and `--flush` only act on the hardware path. Without
//!   `--low-latency` (rpicam-apps 2024-11, 6287bff, so not passed by default) libx264 runs
//!   rpicam-apps' "superfast" setup with one B-frame; campush's ingest gives such pictures their
//!   composition offsets. `rpicam_args = ["--low-latency"]` on a Pi 5 trades them for latency.
//! - `libcamera-vid` is the same program under its Bullseye name (renamed in 0ca9f41,
//!   2023-11-13; v1.3.0 and earlier). It predates the Pi 5 and libav's default use, so campush
//!   does not pass `--libav-format` to it; `--autofocus-mode`/`--lens-position` need a 2022-11
//!   or newer build.
//!
//! Defaults: what is not set is not passed, so the app's defaults apply (640x480, 30 fps),
//! except the keyframe period: two seconds' worth of frames (what every platform asks for),
//! where rpicam-vid would leave the encoder's default of 60 frames (4 s at 15 fps).

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::options::check_passthrough;
use crate::setting::Invalid;

/// Default `stall_timeout_s`: no H.264 for this long and the app is replaced.
pub const DEFAULT_STALL_TIMEOUT: Duration = Duration::from_secs(5);

/// Which camera app runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppKind {
    /// `rpicam-vid` (Bookworm and later).
    RpicamVid,
    /// `libcamera-vid` (Bullseye).
    LibcameraVid,
}

impl AppKind {
    pub fn program(self) -> &'static str {
        match self {
            AppKind::RpicamVid => "rpicam-vid",
            AppKind::LibcameraVid => "libcamera-vid",
        }
    }
}

/// The camera app campush runs, found on `PATH`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CameraApp {
    pub path: PathBuf,
    pub kind: AppKind,
}

impl CameraApp {
    /// `rpicam-vid`, else `libcamera-vid`, from the `PATH` of this process.
    pub fn find() -> Option<CameraApp> {
        Self::find_in(&std::env::var_os("PATH").unwrap_or_default())
    }

    /// `rpicam-vid`, else `libcamera-vid`, from a `PATH`-style list of directories.
    pub fn find_in(path_var: &OsStr) -> Option<CameraApp> {
        [AppKind::RpicamVid, AppKind::LibcameraVid]
            .into_iter()
            .find_map(|kind| {
                std::env::split_paths(path_var)
                    .map(|dir| dir.join(kind.program()))
                    .find(|p| is_executable(p))
                    .map(|path| CameraApp { path, kind })
            })
    }

    /// The app at `path` (a stand-in in tests), of the given kind.
    pub fn at(path: impl Into<PathBuf>, kind: AppKind) -> CameraApp {
        CameraApp {
            path: path.into(),
            kind,
        }
    }

    pub fn name(&self) -> &'static str {
        self.kind.program()
    }
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// A focus position for `--lens-position`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LensPosition {
    /// Dioptres (1 / distance in metres); 0 is infinity.
    Dioptres(f64),
    /// The lens driver's default (usually the hyperfocal distance).
    Default,
}

/// Raw `[source]` values for an `rpicam` source, as the configuration file has them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawRpicam<'a> {
    /// Camera index (`rpicam:N`), as `--list-cameras` numbers them.
    pub camera: Option<u32>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub fps: Option<f64>,
    pub bitrate_kbps: Option<u32>,
    pub gop: Option<u32>,
    pub profile: Option<&'a str>,
    pub level: Option<&'a str>,
    pub hflip: Option<bool>,
    pub vflip: Option<bool>,
    pub rotation: Option<i64>,
    pub autofocus_mode: Option<&'a str>,
    pub lens_position: Option<LensPosition>,
    pub denoise: Option<&'a str>,
    pub exposure: Option<&'a str>,
    pub awb: Option<&'a str>,
    pub stall_timeout_s: Option<f64>,
    pub rpicam_args: &'a [String],
}

/// Checked settings of an `rpicam` source.
#[derive(Debug, Clone, PartialEq)]
pub struct RpicamSettings {
    pub camera: u32,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub fps: Option<f64>,
    pub bitrate_bps: Option<u32>,
    /// Frames from one keyframe to the next; default two seconds' worth.
    pub gop: Option<u32>,
    /// `baseline`, `main` or `high`.
    pub profile: Option<&'static str>,
    /// `4`, `4.1` or `4.2`, spelled as rpicam-vid wants it.
    pub level: Option<&'static str>,
    pub hflip: bool,
    pub vflip: bool,
    /// Rotate by 180 degrees (the only rotation besides 0 that rpicam-vid accepts).
    pub rotate_180: bool,
    pub autofocus_mode: Option<&'static str>,
    pub lens_position: Option<LensPosition>,
    pub denoise: Option<&'static str>,
    pub exposure: Option<&'static str>,
    pub awb: Option<&'static str>,
    /// No H.264 for this long: the app is stopped and started again.
    pub stall_timeout: Duration,
    /// `rpicam_args`, passed after campush's own arguments.
    pub extra_args: Vec<String>,
}

impl Default for RpicamSettings {
    fn default() -> Self {
        RpicamSettings {
            camera: 0,
            width: None,
            height: None,
            fps: None,
            bitrate_bps: None,
            gop: None,
            profile: None,
            level: None,
            hflip: false,
            vflip: false,
            rotate_180: false,
            autofocus_mode: None,
            lens_position: None,
            denoise: None,
            exposure: None,
            awb: None,
            stall_timeout: DEFAULT_STALL_TIMEOUT,
            extra_args: Vec::new(),
        }
    }
}

pub const PROFILES: &[&str] = &["baseline", "main", "high"];
pub const AUTOFOCUS_MODES: &[&str] = &["default", "manual", "auto", "continuous"];
pub const DENOISE_MODES: &[&str] = &["auto", "off", "cdn_off", "cdn_fast", "cdn_hq"];
pub const EXPOSURE_MODES: &[&str] = &["normal", "sport", "short", "long", "custom"];
pub const AWB_MODES: &[&str] = &[
    "auto",
    "normal",
    "incandescent",
    "tungsten",
    "fluorescent",
    "indoor",
    "daylight",
    "cloudy",
    "custom",
];

/// One of `table` (case-insensitive), returned as the table spells it.
fn choice(
    value: Option<&str>,
    key: &'static str,
    table: &'static [&'static str],
) -> Result<Option<&'static str>, Invalid> {
    let Some(v) = value else { return Ok(None) };
    table
        .iter()
        .find(|t| t.eq_ignore_ascii_case(v))
        .map(|t| Some(*t))
        .ok_or_else(|| Invalid::new(key, format!("{v:?}: expected one of {}", table.join(", "))))
}

impl RpicamSettings {
    /// Checks the raw values; the error names the key (as written in `[source]`) and what is
    /// accepted.
    pub fn check(raw: &RawRpicam<'_>) -> Result<RpicamSettings, Invalid> {
        let camera = match raw.camera {
            Some(c) if c > 15 => {
                return Err(Invalid::new(
                    "spec",
                    format!("rpicam:{c}: camera numbers go from 0 to 15"),
                ))
            }
            c => c.unwrap_or(0),
        };
        let (width, height) = crate::setting::picture_size(raw.width, raw.height)?;
        let fps = match raw.fps {
            Some(f) if !(f.is_finite() && f > 0.0 && f <= 240.0) => {
                return Err(Invalid::new(
                    "fps",
                    format!("{f} is out of range: expected more than 0, at most 240"),
                ))
            }
            f => f,
        };
        let bitrate_bps = match raw.bitrate_kbps {
            Some(k) if !(25..=25_000).contains(&k) => {
                return Err(Invalid::new(
                    "bitrate_kbps",
                    format!("{k} is out of range: expected 25 to 25000"),
                ))
            }
            k => k.map(|k| k * 1000),
        };
        let gop = match raw.gop {
            Some(g) if !(1..=1000).contains(&g) => {
                return Err(Invalid::new(
                    "gop",
                    format!("{g} is out of range: expected 1 to 1000 frames"),
                ))
            }
            g => g,
        };
        let level = match raw.level {
            None => None,
            Some("4" | "4.0") => Some("4"),
            Some("4.1") => Some("4.1"),
            Some("4.2") => Some("4.2"),
            Some(other) => {
                return Err(Invalid::new(
                    "level",
                    format!("{other:?}: rpicam-vid accepts \"4.0\", \"4.1\" or \"4.2\""),
                ))
            }
        };
        let rotate_180 = match raw.rotation {
            None | Some(0) => false,
            Some(180) => true,
            Some(r) => {
                return Err(Invalid::new(
                    "rotation",
                    format!(
                        "{r}: rpicam-vid accepts 0 or 180 (90 and 270 would need a transpose, \
                         which the camera pipeline cannot do)"
                    ),
                ))
            }
        };
        let autofocus_mode = choice(raw.autofocus_mode, "autofocus_mode", AUTOFOCUS_MODES)?;
        let lens_position = match raw.lens_position {
            Some(LensPosition::Dioptres(d)) if !(d.is_finite() && (0.0..=1000.0).contains(&d)) => {
                return Err(Invalid::new(
                    "lens_position",
                    format!("{d}: expected dioptres (0 = infinity, 2 = 50 cm), or \"default\""),
                ))
            }
            p => p,
        };
        if lens_position.is_some() && matches!(autofocus_mode, Some("auto" | "continuous")) {
            return Err(Invalid::new(
                "lens_position",
                format!(
                    "is ignored with autofocus_mode = {:?}: use \"manual\" (or leave \
                     autofocus_mode unset)",
                    autofocus_mode.unwrap_or_default()
                ),
            ));
        }
        let stall_timeout = match raw.stall_timeout_s {
            None => DEFAULT_STALL_TIMEOUT,
            Some(s) if s.is_finite() && (0.5..=300.0).contains(&s) => Duration::from_secs_f64(s),
            Some(s) => {
                return Err(Invalid::new(
                    "stall_timeout_s",
                    format!("{s} is out of range: expected 0.5 to 300 seconds"),
                ))
            }
        };
        check_passthrough(raw.rpicam_args).map_err(|m| Invalid::new("rpicam_args", m))?;
        Ok(RpicamSettings {
            camera,
            width,
            height,
            fps,
            bitrate_bps,
            gop,
            profile: choice(raw.profile, "profile", PROFILES)?,
            level,
            hflip: raw.hflip.unwrap_or(false),
            vflip: raw.vflip.unwrap_or(false),
            rotate_180,
            autofocus_mode,
            lens_position,
            denoise: choice(raw.denoise, "denoise", DENOISE_MODES)?,
            exposure: choice(raw.exposure, "exposure", EXPOSURE_MODES)?,
            awb: choice(raw.awb, "awb", AWB_MODES)?,
            stall_timeout,
            extra_args: raw.rpicam_args.to_vec(),
        })
    }

    /// The frame rate the app runs at: the one asked for, else rpicam-vid's default.
    pub fn effective_fps(&self) -> f64 {
        self.fps.unwrap_or(30.0)
    }

    /// The keyframe period passed as `--intra`: `gop`, else two seconds' worth of frames.
    pub fn effective_gop(&self) -> u32 {
        self.gop
            .unwrap_or_else(|| (self.effective_fps() * 2.0).round().max(1.0) as u32)
    }

    /// The app's arguments (without the program name). Pure: the same settings give the same
    /// words.
    pub fn argv(&self, kind: AppKind) -> Vec<String> {
        let mut a: Vec<String> = Vec::with_capacity(40 + self.extra_args.len());
        let mut push = |words: &[&str]| a.extend(words.iter().map(|w| w.to_string()));
        if self.camera != 0 {
            push(&["--camera", &self.camera.to_string()]);
        }
        // What the pipeline needs, always: run forever, no preview window, H.264 with SPS/PPS
        // on every keyframe, one flush per frame, to stdout.
        push(&[
            "--timeout",
            "0",
            "--nopreview",
            "--codec",
            "h264",
            "--inline",
        ]);
        push(&["--flush", "--output", "-"]);
        if kind == AppKind::RpicamVid {
            // Pi 5: the libav encoder needs the container named when writing to stdout.
            push(&["--libav-format", "h264"]);
        }
        if let (Some(w), Some(h)) = (self.width, self.height) {
            push(&["--width", &w.to_string(), "--height", &h.to_string()]);
        }
        if let Some(f) = self.fps {
            push(&["--framerate", &format_number(f)]);
        }
        if let Some(b) = self.bitrate_bps {
            push(&["--bitrate", &b.to_string()]);
        }
        push(&["--intra", &self.effective_gop().to_string()]);
        if let Some(p) = self.profile {
            push(&["--profile", p]);
        }
        if let Some(l) = self.level {
            push(&["--level", l]);
        }
        if self.hflip {
            push(&["--hflip"]);
        }
        if self.vflip {
            push(&["--vflip"]);
        }
        if self.rotate_180 {
            push(&["--rotation", "180"]);
        }
        if let Some(m) = self.autofocus_mode {
            push(&["--autofocus-mode", m]);
        }
        match self.lens_position {
            Some(LensPosition::Dioptres(d)) => push(&["--lens-position", &format_number(d)]),
            Some(LensPosition::Default) => push(&["--lens-position", "default"]),
            None => {}
        }
        if let Some(d) = self.denoise {
            push(&["--denoise", d]);
        }
        if let Some(e) = self.exposure {
            push(&["--exposure", e]);
        }
        if let Some(w) = self.awb {
            push(&["--awb", w]);
        }
        a.extend(self.extra_args.iter().cloned());
        a
    }

    /// One line for `check-config` and the start-up log.
    pub fn describe(&self) -> String {
        let mut parts = vec![format!("camera {}", self.camera)];
        if let (Some(w), Some(h)) = (self.width, self.height) {
            parts.push(format!("size = {w}x{h}"));
        }
        if let Some(f) = self.fps {
            parts.push(format!("fps = {}", format_number(f)));
        }
        if let Some(b) = self.bitrate_bps {
            parts.push(format!("bitrate = {} kbit/s", b / 1000));
        }
        parts.push(format!("gop = {}", self.effective_gop()));
        for (key, value) in [
            ("profile", self.profile),
            ("level", self.level),
            ("autofocus_mode", self.autofocus_mode),
            ("denoise", self.denoise),
            ("exposure", self.exposure),
            ("awb", self.awb),
        ] {
            if let Some(v) = value {
                parts.push(format!("{key} = {v}"));
            }
        }
        match self.lens_position {
            Some(LensPosition::Dioptres(d)) => {
                parts.push(format!("lens_position = {}", format_number(d)))
            }
            Some(LensPosition::Default) => parts.push("lens_position = default".into()),
            None => {}
        }
        for (flag, set) in [
            ("hflip", self.hflip),
            ("vflip", self.vflip),
            ("rotation = 180", self.rotate_180),
        ] {
            if set {
                parts.push(flag.to_string());
            }
        }
        parts.push(format!(
            "stall_timeout_s = {}",
            format_number(self.stall_timeout.as_secs_f64())
        ));
        if !self.extra_args.is_empty() {
            parts.push(format!("rpicam_args = {:?}", self.extra_args));
        }
        parts.join(", ")
    }

    /// Pool slot size for this resolution: the Pi encoder's own capture buffer sizes (512 KB up
    /// to 720p, 768 KB above); slots grow (logged) if a frame is larger.
    pub fn frame_capacity_hint(&self) -> usize {
        match (self.width, self.height) {
            (Some(w), Some(h)) if u64::from(w) * u64::from(h) > 1280 * 720 => 768 * 1024,
            _ => 512 * 1024,
        }
    }
}

/// `30`, `29.97`, `0.5`: the shortest decimal that reads back as `v`.
fn format_number(v: f64) -> String {
    format!("{v}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(raw: RawRpicam<'_>, kind: AppKind) -> String {
        RpicamSettings::check(&raw).unwrap().argv(kind).join(" ")
    }

    #[test]
    fn with_nothing_set_it_passes_only_what_the_pipeline_needs() {
        assert_eq!(
            argv(RawRpicam::default(), AppKind::RpicamVid),
            "--timeout 0 --nopreview --codec h264 --inline --flush --output - \
             --libav-format h264 --intra 60"
        );
        assert_eq!(
            argv(RawRpicam::default(), AppKind::LibcameraVid),
            "--timeout 0 --nopreview --codec h264 --inline --flush --output - --intra 60",
            "libcamera-vid (Bullseye) gets no libav option"
        );
    }

    #[test]
    fn every_key_maps_to_its_rpicam_vid_option() {
        let extra = vec!["--shutter".to_string(), "8000".to_string()];
        let table: &[(RawRpicam<'_>, &str)] = &[
            (
                RawRpicam {
                    camera: Some(1),
                    ..RawRpicam::default()
                },
                "--camera 1 --timeout 0",
            ),
            (
                RawRpicam {
                    width: Some(1920),
                    height: Some(1080),
                    ..RawRpicam::default()
                },
                "--width 1920 --height 1080",
            ),
            (
                RawRpicam {
                    fps: Some(29.97),
                    ..RawRpicam::default()
                },
                "--framerate 29.97 --intra 60",
            ),
            (
                RawRpicam {
                    fps: Some(15.0),
                    ..RawRpicam::default()
                },
                "--framerate 15 --intra 30",
            ),
            (
                RawRpicam {
                    bitrate_kbps: Some(2500),
                    ..RawRpicam::default()
                },
                "--bitrate 2500000",
            ),
            (
                RawRpicam {
                    gop: Some(50),
                    ..RawRpicam::default()
                },
                "--intra 50",
            ),
            (
                RawRpicam {
                    profile: Some("High"),
                    level: Some("4.0"),
                    ..RawRpicam::default()
                },
                "--profile high --level 4",
            ),
            (
                RawRpicam {
                    hflip: Some(true),
                    vflip: Some(true),
                    rotation: Some(180),
                    ..RawRpicam::default()
                },
                "--hflip --vflip --rotation 180",
            ),
            (
                RawRpicam {
                    autofocus_mode: Some("manual"),
                    lens_position: Some(LensPosition::Dioptres(0.5)),
                    ..RawRpicam::default()
                },
                "--autofocus-mode manual --lens-position 0.5",
            ),
            (
                RawRpicam {
                    lens_position: Some(LensPosition::Default),
                    ..RawRpicam::default()
                },
                "--lens-position default",
            ),
            (
                RawRpicam {
                    denoise: Some("cdn_off"),
                    exposure: Some("sport"),
                    awb: Some("daylight"),
                    ..RawRpicam::default()
                },
                "--denoise cdn_off --exposure sport --awb daylight",
            ),
            (
                RawRpicam {
                    rpicam_args: &extra,
                    ..RawRpicam::default()
                },
                "--intra 60 --shutter 8000",
            ),
        ];
        for (raw, expected) in table {
            let line = argv(raw.clone(), AppKind::RpicamVid);
            assert!(
                line.contains(expected),
                "{raw:?}:\n{line}\nlacks {expected}"
            );
        }
    }

    #[test]
    fn values_outside_what_rpicam_vid_accepts_are_refused_naming_the_key() {
        let owned = vec!["--width".to_string(), "640".to_string()];
        let table: &[(RawRpicam<'_>, (&str, &str))] = &[
            (
                RawRpicam {
                    camera: Some(16),
                    ..RawRpicam::default()
                },
                ("spec", "rpicam:16"),
            ),
            (
                RawRpicam {
                    width: Some(1280),
                    ..RawRpicam::default()
                },
                ("width", "go together"),
            ),
            (
                RawRpicam {
                    fps: Some(0.0),
                    ..RawRpicam::default()
                },
                ("fps", "out of range"),
            ),
            (
                RawRpicam {
                    bitrate_kbps: Some(90_000),
                    ..RawRpicam::default()
                },
                ("bitrate_kbps", "25 to 25000"),
            ),
            (
                RawRpicam {
                    gop: Some(0),
                    ..RawRpicam::default()
                },
                ("gop", "1 to 1000"),
            ),
            (
                RawRpicam {
                    profile: Some("constrained_baseline"),
                    ..RawRpicam::default()
                },
                ("profile", "baseline, main, high"),
            ),
            (
                RawRpicam {
                    level: Some("3.1"),
                    ..RawRpicam::default()
                },
                ("level", "4.1"),
            ),
            (
                RawRpicam {
                    rotation: Some(90),
                    ..RawRpicam::default()
                },
                ("rotation", "0 or 180"),
            ),
            (
                RawRpicam {
                    autofocus_mode: Some("macro"),
                    ..RawRpicam::default()
                },
                ("autofocus_mode", "continuous"),
            ),
            (
                RawRpicam {
                    autofocus_mode: Some("continuous"),
                    lens_position: Some(LensPosition::Dioptres(1.0)),
                    ..RawRpicam::default()
                },
                ("lens_position", "ignored"),
            ),
            (
                RawRpicam {
                    lens_position: Some(LensPosition::Dioptres(-1.0)),
                    ..RawRpicam::default()
                },
                ("lens_position", "dioptres"),
            ),
            (
                RawRpicam {
                    denoise: Some("hq"),
                    ..RawRpicam::default()
                },
                ("denoise", "cdn_hq"),
            ),
            (
                RawRpicam {
                    exposure: Some("night"),
                    ..RawRpicam::default()
                },
                ("exposure", "sport"),
            ),
            (
                RawRpicam {
                    awb: Some("sunny"),
                    ..RawRpicam::default()
                },
                ("awb", "cloudy"),
            ),
            (
                RawRpicam {
                    stall_timeout_s: Some(0.1),
                    ..RawRpicam::default()
                },
                ("stall_timeout_s", "0.5 to 300"),
            ),
            (
                RawRpicam {
                    rpicam_args: &owned,
                    ..RawRpicam::default()
                },
                ("rpicam_args", "source.width"),
            ),
        ];
        for (raw, (key, needle)) in table {
            let err = RpicamSettings::check(raw).unwrap_err();
            assert_eq!(err.key, *key, "{raw:?}: {err}");
            assert!(err.message.contains(needle), "{raw:?}: {err}");
        }
    }

    #[test]
    fn the_same_settings_always_give_the_same_words() {
        let raw = RawRpicam {
            width: Some(1280),
            height: Some(720),
            fps: Some(25.0),
            awb: Some("cloudy"),
            ..RawRpicam::default()
        };
        let s = RpicamSettings::check(&raw).unwrap();
        assert_eq!(s.argv(AppKind::RpicamVid), s.argv(AppKind::RpicamVid));
        assert_eq!(s.effective_gop(), 50);
        assert_eq!(
            s.describe(),
            "camera 0, size = 1280x720, fps = 25, gop = 50, awb = cloudy, stall_timeout_s = 5"
        );
    }

    #[test]
    fn the_app_is_rpicam_vid_else_libcamera_vid_on_path() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        let path = std::env::join_paths([&a, &b]).unwrap();
        assert_eq!(CameraApp::find_in(&path), None);
        let exe = |p: &Path| {
            std::fs::write(p, "#!/bin/sh\n").unwrap();
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
        };
        std::fs::write(a.join("rpicam-vid"), "not executable").unwrap();
        exe(&b.join("libcamera-vid"));
        assert_eq!(
            CameraApp::find_in(&path),
            Some(CameraApp::at(
                b.join("libcamera-vid"),
                AppKind::LibcameraVid
            )),
            "a file that is not executable does not count"
        );
        exe(&b.join("rpicam-vid"));
        assert_eq!(
            CameraApp::find_in(&path).map(|a| a.kind),
            Some(AppKind::RpicamVid),
            "rpicam-vid is preferred wherever it is on PATH"
        );
    }
}
